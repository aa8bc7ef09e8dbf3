"""The shape of the assistant/library/ package (issue 17 item 8): small modules, the old public
names, and a scan index that an older library module's cache cannot be misread into."""

from __future__ import annotations

import marshal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import assistant.library as library
from assistant.library import Library, cache

from . import lorafiles as lf

PACKAGE = Path(library.__file__).parent
ScanFn = Callable[..., Library]

#: Every public name importers used from the single-file ``assistant/library.py``.
OLD_PUBLIC_NAMES = (
    "BASE_LABELS",
    "DEFAULT_CATALOG",
    "GENERIC_TAGS",
    "HEADER_CAP",
    "KEPT_METADATA",
    "LOADABLE_SUFFIXES",
    "PICKLE_SUFFIXES",
    "PREVIEW_EXTENSIONS",
    "Hashes",
    "Library",
    "LibraryError",
    "base_mismatch",
    "embedded_hash",
    "file_base",
    "info_to_dict",
    "read_safetensors_header",
    "with_hashes",
)


def test_the_old_public_names_are_still_importable() -> None:
    assert sorted(library.__all__) == sorted(OLD_PUBLIC_NAMES)
    for name in OLD_PUBLIC_NAMES:
        assert getattr(library, name) is not None, name


def test_the_package_re_exports_no_private_helper() -> None:
    """A private helper re-exported here would be a copy: monkeypatching it on the package would
    silently patch nothing. Helpers are patched in the module that uses them."""
    private = sorted(n for n in vars(library) if n.startswith("_") and not n.startswith("__"))
    assert private == []


def test_the_code_digest_covers_every_module_and_the_layout_table(monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []
    real = Path.read_bytes

    def recording(self: Path) -> bytes:
        read.append(str(self.relative_to(PACKAGE.parent)))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", recording)
    digest = cache._code_digest()
    expected = sorted(f"library/{p.name}" for p in PACKAGE.glob("*.py"))
    assert read == [*expected, "layouts.py"]
    assert digest == cache._CODE_DIGEST


@pytest.mark.parametrize(
    ("version", "misread"),
    [
        ("current", True),
        ("7/3.11/0123456789ab", False),  # the single-file module's index
        (f"7/{sys.version_info[0]}.{sys.version_info[1]}/{cache._CODE_DIGEST}", False),  # old number
    ],
)
def test_an_index_of_another_version_is_ignored_not_misread(
    lora_dir: Path, scan: ScanFn, tmp_path: Path, version: str, misread: bool
) -> None:
    """The index of the old single-file module (version 7) is rebuilt, whatever its code digest;
    the same edit under the current version is read as is (so this test can tell them apart)."""
    lf.write_kohya(lora_dir, "kept", tags={"x": {"real trigger": 3}})
    assert scan(lora_dir).resolve("kept").triggers == ("real trigger",)
    (index,) = (tmp_path / "cache").glob("lora-index-*.marshal")
    data = marshal.loads(index.read_bytes())
    for entry in data["entries"].values():
        entry[3]["triggers"] = ("planted",)
    data["version"] = cache._index_version() if version == "current" else version
    index.write_bytes(marshal.dumps(data))
    triggers = scan(lora_dir).resolve("kept").triggers
    assert triggers == (("planted",) if misread else ("real trigger",))
