"""Fixtures of the engine-state tests: both structured models and their LoRA files, built once.

Renders here are 64x64 with 2 steps on the reduced-width SD1.5 and SDXL module trees (well under
a second each on one core). The fresh-render caches live on the session's models, so every test
of the session shares them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # the shared 2-core box: one thread per test process

from .harness import Model, build_models  # noqa: E402


@pytest.fixture(scope="session")
def structured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Model]:
    """``{"sd15": Model, "sdxl": Model}``, each saved as a diffusers folder too (for the service)."""
    return build_models(Path(tmp_path_factory.mktemp("structured")), save=True)
