"""Hostile files in the LoRA folder: the scan never breaks, every bad file gets a clear verdict.

One parametrised test over :data:`tests.hostile.cases.FILE_CASES`; the files are real bytes on
disk built by :mod:`tests.hostile.files`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from assistant.errors import LibraryError, LoraNotFound

from .cases import FILE_CASES, GOOD, GOOD2, FileCase
from .conftest import hostile_stem
from .files import write_lora

library_module = pytest.importorskip("assistant.library")
Library = library_module.Library


@pytest.fixture(scope="module")
def library(hostile_lora_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    lib = Library.scan([str(hostile_lora_dir)], cache_dir=str(tmp_path_factory.mktemp("cache")))
    # A folder of 23 files, one 17 MB: a scan reads headers only, never tensors.
    assert time.monotonic() - started < 10
    return lib


def _entry(library, stem: str):  # type: ignore[no-untyped-def]
    matches = [info for info in library.all() if Path(info.path).name.startswith(stem + ".")]
    return matches[0] if matches else None


def test_good_loras_survive_a_hostile_folder(library) -> None:  # type: ignore[no-untyped-def]
    names = {info.name for info in library.loadable()}
    assert {GOOD, GOOD2} <= names
    assert library.resolve(GOOD).status == "ok"


@pytest.mark.parametrize("case", FILE_CASES, ids=lambda c: c.id)
def test_hostile_file_verdict(library, case: FileCase) -> None:  # type: ignore[no-untyped-def]
    stem = hostile_stem(case.id)
    entry = _entry(library, stem)
    if case.status == "absent":
        assert entry is None, f"{case.id}: a directory must not be listed as a LoRA"
        return
    assert entry is not None, f"{case.id}: the file is not listed at all (users would not learn why)"
    assert entry.status == case.status, f"{case.id}: status {entry.status!r}, problem {entry.problem!r}"
    if case.status != "ok":
        assert not entry.loadable
        assert stem not in {info.name for info in library.loadable()}
    for pattern in case.mentions:
        assert re.search(pattern, entry.problem, re.IGNORECASE), f"{case.id}: {entry.problem!r} !~ {pattern}"


@pytest.mark.parametrize(
    "case", [c for c in FILE_CASES if c.status in ("refused", "broken")], ids=lambda c: c.id
)
def test_resolving_a_hostile_file_raises_a_library_error(library, case: FileCase) -> None:  # type: ignore[no-untyped-def]
    """Asking for a refused/broken LoRA by name is a LibraryError that says why, never a crash."""
    stem = hostile_stem(case.id)
    try:
        info = library.resolve(stem)
    except LibraryError as err:
        message = str(err)
    else:  # resolve may return the entry; then it must be marked unusable with the reason
        assert not info.loadable
        message = info.problem
    assert stem in message or any(re.search(p, message, re.IGNORECASE) for p in case.mentions), message


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "..\\..\\secret",
        "%2e%2e%2fetc",
        "a" * 10_000,
        "猫娘_v1",
        "🐱girl",
        "",
    ],
    ids=["traversal", "absolute", "backslash", "url-encoded", "10k", "cjk", "emoji", "empty"],
)
def test_resolve_hostile_names_is_not_found(library, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LoraNotFound) as err:
        library.resolve(name)
    assert len(str(err.value)) < 1000 or name == "a" * 10_000


def test_pickle_is_never_unpickled(library, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Scanning a folder of pickles must not execute them (the exploit writes a marker file)."""
    marker = Path("/tmp/lora-mixer-pickle-ran")
    marker.unlink(missing_ok=True)
    library.refresh()
    assert not marker.exists()


def test_file_replaced_between_scan_and_resolve(tmp_path: Path) -> None:
    """A LoRA deleted (or swapped for garbage) after the scan is reported, not trusted."""
    folder = tmp_path / "Lora"
    folder.mkdir()
    path = write_lora(folder, "vanishing")
    lib = Library.scan([str(folder)], cache_dir=str(tmp_path / "cache"))
    assert lib.resolve("vanishing").status == "ok"
    path.write_bytes(b"<html>gone</html>")
    refreshed = lib.refresh() or lib
    entry = refreshed.resolve("vanishing") if refreshed.all() else None
    assert entry is None or entry.status == "broken"
    path.unlink()
    refreshed = lib.refresh() or lib
    with pytest.raises(LoraNotFound):
        refreshed.resolve("vanishing")
