"""Textual-inversion files as A1111 users have them: layouts, bases from widths, refusals.

Pure: headers only (the library never imports torch); the files are real safetensors written here.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

from assistant.embeddings import fits, mentioned, scan, shorthash
from assistant.library import Library

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, tensors: dict[str, list[int]]) -> Path:
    """A safetensors file of zero-filled F32 tensors with these shapes."""
    header: dict[str, dict[str, object]] = {}
    offset = 0
    for name, shape in tensors.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return path


def test_layouts_and_bases(tmp_path: Path) -> None:
    write(tmp_path / "EasyNegative.safetensors", {"emb_params": [8, 768]})
    write(tmp_path / "sd2neg.safetensors", {"string_to_param.*": [4, 1024]})
    write(tmp_path / "star.safetensors", {"*": [1, 768]})
    write(tmp_path / "concept.safetensors", {"<cat-toy>": [768]})
    write(tmp_path / "negativeXL_D.safetensors", {"clip_l": [8, 768], "clip_g": [8, 1280]})
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "odd.safetensors", {"x": [3, 33]})
    (tmp_path / "old.pt").write_bytes(b"\x80\x04pickle")
    write(
        tmp_path / "a_lora.safetensors", {"lora_unet_x.lora_down.weight": [4, 320], "lora_unet_x.alpha": []}
    )
    found, notes = scan([tmp_path, tmp_path / "missing"])
    by = {e.name: e for e in found}
    summary = {n: (e.base, e.vectors, e.width, e.layout, e.status) for n, e in by.items()}
    assert summary == {
        "a_lora": ("unknown", 0, 0, "", "broken"),
        "concept": ("sd15", 1, 768, "single tensor", "ok"),
        "EasyNegative": ("sd15", 8, 768, "emb_params", "ok"),
        "negativeXL_D": ("sdxl", 8, 2048, "clip_l+clip_g", "ok"),
        "odd": ("unknown", 3, 33, "single tensor", "ok"),
        "old": ("unknown", 0, 0, "", "refused"),
        "sd2neg": ("sd2", 4, 1024, "string_to_param", "ok"),
        "star": ("sd15", 1, 768, "string_to_param", "ok"),
    }
    assert "a LoRA or a model?" in by["a_lora"].problem
    assert "convert it to .safetensors" in by["old"].problem
    assert notes == (f"embeddings folder {tmp_path / 'missing'} does not exist",)
    assert fits(by["EasyNegative"], "sd15")
    assert not fits(by["EasyNegative"], "sdxl")
    assert fits(by["negativeXL_D"], "sdxl")


def test_mentioned_matches_whole_names_without_case(tmp_path: Path) -> None:
    write(tmp_path / "EasyNegative.safetensors", {"emb_params": [8, 768]})
    write(tmp_path / "bad-hands-5.safetensors", {"emb_params": [2, 768]})
    found, _ = scan([tmp_path])
    names = [e.name for e in mentioned("(easynegative:1.2), bad-hands-5, EasyNegativeV2", found)]
    assert names == ["EasyNegative", "bad-hands-5"]
    assert mentioned("noteasynegative", found) == []


def test_shorthash_is_a1111s(tmp_path: Path) -> None:
    import hashlib

    path = write(tmp_path / "x.safetensors", {"emb_params": [1, 768]})
    assert shorthash(path) == hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_library_lists_embeddings(tmp_path: Path) -> None:
    (tmp_path / "loras").mkdir()
    (tmp_path / "emb").mkdir()
    write(tmp_path / "emb" / "EasyNegative.safetensors", {"emb_params": [8, 768]})
    library = Library.scan([tmp_path / "loras"], catalog=None, embedding_dirs=[tmp_path / "emb"])
    assert [e.name for e in library.embeddings] == ["EasyNegative"]
    assert [e.name for e in library.refresh().embeddings] == ["EasyNegative"]


def test_loras_command_lists_embeddings(tmp_path: Path) -> None:
    write(tmp_path / "EasyNegative.safetensors", {"emb_params": [8, 768]})
    write(tmp_path / "negativeXL_D.safetensors", {"clip_l": [8, 768], "clip_g": [8, 1280]})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "loras",
            "--embeddings",
            "--embeddings-dir",
            str(tmp_path),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: (row["base"], row["vectors"], row["width"]) for row in json.loads(done.stdout)}
    assert rows == {"EasyNegative": ("sd15", 8, 768), "negativeXL_D": ("sdxl", 8, 2048)}
    table = subprocess.run(
        [sys.executable, "-m", "assistant", "loras", "--embeddings", "--embeddings-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    assert "negativeXL_D  sdxl" in table
