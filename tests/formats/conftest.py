"""Fixtures of the format tests: the reduced-width structured models, built once per session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # the shared 2-core box


@dataclass(frozen=True)
class Structured:
    """A structured model and its LoRA-able layers, listed before any adapter wrapped them."""

    key: str  # sd15 | sdxl
    pipe: Any
    targets: list[Any]


def _build(key: str) -> Structured:
    from assistant.engine.structured import build_sd15, build_sdxl, lora_targets

    pipe = build_sd15() if key == "sd15" else build_sdxl()
    return Structured(key, pipe, lora_targets(pipe))


@pytest.fixture(scope="session")
def sd15() -> Structured:
    return _build("sd15")


@pytest.fixture(scope="session")
def sdxl() -> Structured:
    return _build("sdxl")
