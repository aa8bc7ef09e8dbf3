"""Shared fixtures: a LoRA folder and a scan helper that never touches the project's cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.library import Library


@pytest.fixture
def lora_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "Lora"
    folder.mkdir()
    return folder


@pytest.fixture
def scan(tmp_path: Path) -> Callable[..., Library]:
    """``scan(*roots, catalog=None, cache=True)``: Library.scan with a per-test cache folder."""

    def _scan(*roots: Path, catalog: Path | None = None, cache: bool = True) -> Library:
        return Library.scan(
            [str(r) for r in roots], catalog=catalog, cache_dir=str(tmp_path / "cache") if cache else None
        )

    return _scan
