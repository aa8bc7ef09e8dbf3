"""LoRA Mixer: a rule-based assistant for LoRA prompts, and a diffusers engine that renders them.

The pure core (``prompt``, ``library``, ``rules``, ``advisor``, ``chat``, ``blend``, ``infotext``,
``grid``) imports neither torch, diffusers nor gradio; only ``assistant.engine`` touches torch and
only the app (``app.py`` and the gradio side of ``assistant.ui``) touches gradio. ``import
assistant`` stays light: the names below that live in other modules are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    AmbiguousLoraName,
    Cancelled,
    GenerationError,
    LibraryError,
    LoraLoadError,
    LoraMixerError,
    LoraNotFound,
    PresetError,
    PromptError,
)
from .types import (
    Advice,
    AdviceWarning,
    Change,
    ExtraTag,
    GenerationRequest,
    GenerationResult,
    LoraInfo,
    LoraTag,
    PlannedLora,
    Prompt,
)

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily by __getattr__)
_LAZY: dict[str, str] = {
    "parse": "assistant.prompt",
    "render": "assistant.prompt",
    "parse_attention": "assistant.prompt",
    "Library": "assistant.library",
    "advise": "assistant.advisor",
    "Settings": "assistant.config",
    "load_settings": "assistant.config",
}

__all__ = [
    "Advice",
    "AdviceWarning",
    "AmbiguousLoraName",
    "Cancelled",
    "Change",
    "ExtraTag",
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "Library",
    "LibraryError",
    "LoraInfo",
    "LoraLoadError",
    "LoraMixerError",
    "LoraNotFound",
    "LoraTag",
    "PlannedLora",
    "PresetError",
    "Prompt",
    "PromptError",
    "Settings",
    "__version__",
    "advise",
    "load_settings",
    "parse",
    "parse_attention",
    "render",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'assistant' has no attribute '{name}'")
