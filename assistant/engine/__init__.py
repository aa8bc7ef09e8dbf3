"""The torch side of LoRA Mixer: diffusers pipelines, PEFT adapters, A1111 prompt encoding, schedulers.

This package is the only code that imports torch, diffusers, transformers, peft or ftfy.
``from assistant.engine import Engine`` imports them on first use (the names below are lazy), so
``assistant.engine.tokenizer`` stays importable without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "Engine": "assistant.engine.core",
    "EngineInfo": "assistant.engine.core",
    "build_tiny_sd15": "assistant.engine.tiny",
    "build_tiny_sdxl": "assistant.engine.tiny",
    "sampler_names": "assistant.engine.schedulers",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'assistant.engine' has no attribute '{name}'")
