"""Fixtures of the trainer tests: small kohya dataset folders written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.train.synthetic import LORA_DATASETS, LoraDataset, write_kohya_dataset


def write_dataset(root: Path, name: str = "catgirl_v1", images: int = 4, repeats: int = 2) -> Path:
    """A small kohya folder from one of the demo LoRA datasets (``images`` images, ``repeats``)."""
    spec = LORA_DATASETS[name]
    small = LoraDataset(
        spec.name, spec.folder, spec.tags, images=images, repeats=repeats, scene=spec.scene,
        describe=spec.describe, render=spec.render,
    )  # fmt: skip
    return write_kohya_dataset(small, root)


@pytest.fixture
def cat_dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "img")
