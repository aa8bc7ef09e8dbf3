"""Bad files never break a scan: each one is listed with a status and a specific reason."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.errors import LibraryError
from assistant.library import HEADER_CAP, Library, read_safetensors_header

from . import lorafiles as lf

BROKEN = [
    ("zero", lf.write_zero_byte, r"empty file \(0 bytes\)"),
    ("html", lf.write_html, r"HTML page"),
    ("lfs", lf.write_lfs_pointer, r"Git LFS pointer.*git lfs pull"),
    ("truncated", lf.write_truncated, r"truncated: the tensors need .* data bytes but the file has"),
    ("cut_header", lambda f, n: lf.write_truncated(f, n, keep=40), r"truncated: the header needs"),
    ("tiny", lambda f, n: lf.write_truncated(f, n, keep=5), r"truncated: 5 bytes"),
    ("bad_json", lf.write_invalid_json_header, r"header is not valid JSON"),
    ("huge", lf.write_huge_header_length, r"header length 1,099,511,627,776 bytes is over the 16 MB cap"),
    ("beyond", lf.write_offsets_beyond_file, r"offsets point beyond the end"),
    ("gap", lf.write_offsets_gap, r"gap of 16 bytes"),
    ("trailing", lf.write_trailing_bytes, r"16 bytes after the last tensor"),
    ("nonstring", lf.write_non_string_metadata, r"metadata value for 'ss_network_dim' is int"),
]


@pytest.mark.parametrize(("stem", "writer", "reason"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_file_is_listed_with_its_reason(
    lora_dir: Path, scan: Callable[..., Library], stem: str, writer: Callable[[Path, str], Path], reason: str
) -> None:
    writer(lora_dir, stem)
    lf.write_kohya(lora_dir, "good")
    lib = scan(lora_dir)
    entry = lib.resolve(stem)
    assert entry.status == "broken"
    assert not entry.loadable
    assert re.search(reason, entry.problem), entry.problem
    assert [i.name for i in lib.loadable()] == ["good"]


def test_header_over_the_cap_is_refused_without_reading_it(
    lora_dir: Path, scan: Callable[..., Library]
) -> None:
    path = lf.write_raw_safetensors(lora_dir / "big.safetensors", b"{" + b" " * (HEADER_CAP + 10) + b"}")
    entry = scan(lora_dir).resolve("big")
    assert entry.status == "broken"
    assert "over the 16 MB cap" in entry.problem
    assert path.stat().st_size > HEADER_CAP


def test_pytorch_zip_renamed_to_safetensors_is_refused(lora_dir: Path, scan: Callable[..., Library]) -> None:
    (lora_dir / "renamed.safetensors").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    entry = scan(lora_dir).resolve("renamed")
    assert entry.status == "refused"
    assert "pickle" in entry.problem


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".pth", ".CKPT"])
def test_pickle_formats_are_refused_and_never_unpickled(
    lora_dir: Path, scan: Callable[..., Library], tmp_path: Path, suffix: str
) -> None:
    marker = tmp_path / "unpickled.txt"
    lf.write_pickle(lora_dir, "old_lora", suffix, marker=marker)
    entry = scan(lora_dir).resolve("old_lora")
    assert entry.status == "refused"
    assert "pickle" in entry.problem
    assert "run arbitrary code" in entry.problem
    assert not marker.exists()


def test_pickle_marker_really_runs_when_unpickled(tmp_path: Path) -> None:
    """The marker pickle is a real hazard (so the test above can fail)."""
    import pickle

    marker = tmp_path / "unpickled.txt"
    path = lf.write_pickle(tmp_path, "x", ".pt", marker=marker)
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_safetensors_preferred_over_pickle_with_the_same_stem(
    lora_dir: Path, scan: Callable[..., Library]
) -> None:
    lf.write_pickle(lora_dir, "catgirl_v1", ".ckpt")
    lf.write_kohya(lora_dir, "catgirl_v1")
    lib = scan(lora_dir)
    assert len(lib) == 2
    assert lib.resolve("catgirl_v1").path.endswith(".safetensors")


def test_symlink_escaping_the_roots_is_refused(
    lora_dir: Path, tmp_path: Path, scan: Callable[..., Library]
) -> None:
    outside = lf.write_kohya(tmp_path / "elsewhere", "secret")
    (lora_dir / "sneaky.safetensors").symlink_to(outside)
    entry = scan(lora_dir).resolve("sneaky")
    assert entry.status == "refused"
    assert "outside the LoRA folders" in entry.problem


def test_symlink_inside_the_roots_is_fine(lora_dir: Path, scan: Callable[..., Library]) -> None:
    real = lf.write_kohya(lora_dir / "sub", "real")
    (lora_dir / "linked.safetensors").symlink_to(real)
    lib = scan(lora_dir)
    assert lib.resolve("linked").status == "ok"
    assert lib.resolve("real").status == "ok"


def test_symlink_into_another_root_is_fine(tmp_path: Path, scan: Callable[..., Library]) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    real = lf.write_kohya(first, "shared")
    second.mkdir()
    (second / "alias_file.safetensors").symlink_to(real)
    assert scan(first, second).resolve("alias_file").status == "ok"


def test_folder_symlink_escaping_the_roots_is_not_followed(
    lora_dir: Path, tmp_path: Path, scan: Callable[..., Library]
) -> None:
    lf.write_kohya(tmp_path / "private", "hidden")
    (lora_dir / "more").symlink_to(tmp_path / "private", target_is_directory=True)
    lib = scan(lora_dir)
    assert lib.get("hidden") is None
    assert any("points outside" in note for note in lib.notes)


def test_folder_symlink_loop_terminates(lora_dir: Path, scan: Callable[..., Library]) -> None:
    lf.write_kohya(lora_dir, "one")
    (lora_dir / "loop").symlink_to(lora_dir, target_is_directory=True)
    assert [i.name for i in scan(lora_dir).all()] == ["one"]


def test_dangling_symlink_is_broken(lora_dir: Path, scan: Callable[..., Library]) -> None:
    (lora_dir / "gone.safetensors").symlink_to(lora_dir / "nowhere.safetensors")
    entry = scan(lora_dir).resolve("gone")
    assert entry.status == "broken"
    assert "missing" in entry.problem


def test_sidecar_symlink_escaping_the_roots_is_ignored(
    lora_dir: Path, tmp_path: Path, scan: Callable[..., Library]
) -> None:
    lf.write_kohya(lora_dir, "card")
    outside = lf.write_a1111_sidecar(tmp_path, "outside", activation_text="leaked secret")
    (lora_dir / "card.json").symlink_to(outside)
    assert "leaked secret" not in scan(lora_dir).resolve("card").triggers


def test_directory_named_like_a_lora_is_not_listed(lora_dir: Path, scan: Callable[..., Library]) -> None:
    (lora_dir / "folder.safetensors").mkdir()
    lf.write_kohya(lora_dir / "folder.safetensors", "inside")
    lib = scan(lora_dir)
    assert [i.name for i in lib.all()] == ["inside"]


def test_several_roots_and_subfolders(tmp_path: Path, scan: Callable[..., Library]) -> None:
    lf.write_kohya(tmp_path / "a", "top")
    lf.write_kohya(tmp_path / "a" / "chars" / "deep", "deep_one")
    lf.write_kohya(tmp_path / "b" / "styles", "other_root")
    lf.write_kohya(tmp_path / "a" / ".hidden", "ignored")
    (tmp_path / "a" / "notes.txt").write_text("not a lora")
    lib = scan(tmp_path / "a", tmp_path / "b")
    assert [i.name for i in lib.all()] == ["deep_one", "other_root", "top"]


def test_missing_root_is_a_note_not_an_error(tmp_path: Path, scan: Callable[..., Library]) -> None:
    lib = scan(tmp_path / "missing")
    assert len(lib) == 0
    assert any("does not exist" in note for note in lib.notes)


def test_checkpoint_and_embedding_in_the_lora_folder_are_refused(
    lora_dir: Path, scan: Callable[..., Library]
) -> None:
    import numpy as np

    lf.write_safetensors(
        lora_dir / "model.safetensors",
        {"model.diffusion_model.input_blocks.0.0.weight": np.zeros((4, 4), np.float16)},
    )
    lf.write_safetensors(
        lora_dir / "easynegative.safetensors", {"emb_params": np.zeros((8, 768), np.float16)}
    )
    lib = scan(lora_dir)
    assert "full Stable Diffusion checkpoint" in lib.resolve("model").problem
    assert "embedding" in lib.resolve("easynegative").problem
    assert {i.status for i in lib.all()} == {"refused"}


def test_read_safetensors_header_reports_the_path(lora_dir: Path) -> None:
    good = lf.write_kohya(lora_dir, "good")
    length, tensors, metadata = read_safetensors_header(good)
    assert length > 0
    assert metadata["ss_output_name"] == "good"
    assert tensors["lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.alpha"]["shape"] == []
    bad = lf.write_html(lora_dir, "bad")
    with pytest.raises(LibraryError, match=re.escape(str(bad))):
        read_safetensors_header(bad)


def test_unreadable_file_is_broken_not_fatal(lora_dir: Path, scan: Callable[..., Library]) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read anything")
    path = lf.write_kohya(lora_dir, "locked")
    path.chmod(0)
    try:
        entry = scan(lora_dir, cache=False).resolve("locked")
    finally:
        path.chmod(0o644)
    assert entry.status == "broken"
    assert "cannot read" in entry.problem


def test_macos_appledouble_files_are_skipped(lora_dir: Path, scan: Callable[..., Library]) -> None:
    lf.write_kohya(lora_dir, "real")
    (lora_dir / "._real.safetensors").write_bytes(b"\x00\x05\x16\x07" + b"\0" * 4000)
    assert [i.name for i in scan(lora_dir).all()] == ["real"]
