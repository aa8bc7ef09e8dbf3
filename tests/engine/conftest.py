"""Shared fixtures for engine tests: the tiny pipelines, built once per test session.

Other test folders may reuse them (``from tests.engine.conftest import …`` or pytest's
``pytest_plugins``): ``tiny_pipe`` / ``tiny_xl_pipe`` are raw diffusers pipelines,
``tiny_engine`` an :class:`~assistant.engine.core.Engine` wrapping ``tiny_pipe`` with the
random-weight LoRA set (the shipped demo names, shapes of the random tiny model; written once per
session by :func:`assistant.engine.demo_loras.write_random_loras`). The shipped, trained demo
LoRAs belong to the embedded model (``embedded_pipe``). Tests must leave the shared pipelines as
they found them (no adapters left loaded).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
# Two shared cores: torch's OpenMP threads spin against each other and against other processes
# (one 64x64 generation: 0.15 s on one thread, 2-6 s on two under load). Tests are tiny anyway.
torch.set_num_threads(1)

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

from assistant.config import DEFAULT_LORA_DIR, Settings  # noqa: E402
from assistant.engine.demo_loras import write_random_loras  # noqa: E402

#: The shipped demo LoRAs (trained on the embedded model).
DEMO_LORA_DIR = Path(DEFAULT_LORA_DIR)
#: Random-weight LoRAs with the demo names for the random tiny pipelines (written once per session).
RANDOM_LORA_DIR = Path(tempfile.mkdtemp(prefix="lora-mixer-random-loras-"))
write_random_loras(RANDOM_LORA_DIR)
atexit.register(shutil.rmtree, RANDOM_LORA_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_pipe():  # -> StableDiffusionPipeline
    from assistant.engine.tiny import build_tiny_sd15

    return build_tiny_sd15()


@pytest.fixture(scope="session")
def tiny_xl_pipe():  # -> StableDiffusionXLPipeline
    from assistant.engine.tiny import build_tiny_sdxl

    return build_tiny_sdxl()


@pytest.fixture(scope="session")
def tiny_engine(tiny_pipe):  # -> Engine
    from assistant.engine.core import Engine

    engine = Engine(Settings(lora_dirs=(str(RANDOM_LORA_DIR),), adapter_cache_size=8), pipeline=tiny_pipe)
    engine.load()
    return engine


@pytest.fixture
def clean_engine(tiny_engine) -> Iterator[object]:
    """``tiny_engine`` with every adapter unloaded before and after the test."""
    tiny_engine.unload_all()
    yield tiny_engine
    tiny_engine.unload_all()


@pytest.fixture(scope="session")
def embedded_pipe():  # -> StableDiffusionPipeline (the embedded model, fp32 on the CPU)
    from assistant.engine import embedded

    assert embedded.available(), f"the embedded model is missing: {embedded.EMBEDDED_DIR} (train_base.py)"
    return embedded.load()


def lora_path(name: str) -> str:
    """Path of a random-weight LoRA for the random tiny pipelines (the demo names)."""
    return str(RANDOM_LORA_DIR / f"{name}.safetensors")


def shipped_lora_path(name: str) -> str:
    """Path of a shipped demo LoRA (trained on the embedded model)."""
    return str(DEMO_LORA_DIR / f"{name}.safetensors")
