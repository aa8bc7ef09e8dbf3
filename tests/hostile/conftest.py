"""Fixtures of the hostile suite: a LoRA folder full of bad files next to good ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cases import FILE_CASES, GOOD, GOOD2
from .files import BUILDERS, write_lora


def hostile_stem(case_id: str) -> str:
    """The file stem a file case is written under (``bad-<id>``)."""
    return f"bad-{case_id}"


def build_hostile_folder(root: Path) -> Path:
    """``root/Lora``: the demo LoRAs of the tiny pipeline plus one file per FILE_CASES row.

    The demo LoRAs (catgirl_v1, cyberpunk_style, … and the SDXL watercolor_xl) are the project's
    own files matching the tiny model, so the same folder serves the library, engine and server
    tests. Without the engine package the two good names are plain SD1.5-layout files.
    """
    folder = root / "Lora"
    folder.mkdir(parents=True)
    try:
        from assistant.engine.demo_loras import write_demo_loras
    except ImportError:
        write_lora(folder, GOOD)
        write_lora(folder, GOOD2)
    else:
        write_demo_loras(folder)
    for case in FILE_CASES:
        BUILDERS[case.builder](folder, hostile_stem(case.id))
    return folder


@pytest.fixture(scope="session")
def hostile_lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA root holding every hostile file (built once; tests must not modify it)."""
    return build_hostile_folder(tmp_path_factory.mktemp("hostile"))
