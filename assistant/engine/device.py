"""Device and dtype choice, and the attention backend.

CUDA: fp16, xformers when it is importable (probed without importing it, like diffusers'
``is_xformers_available``), otherwise PyTorch SDPA (diffusers' default ``AttnProcessor2_0``).
Apple MPS: fp16. CPU: fp32 (fp16 matmuls on CPU are slow and lose precision).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import GenerationError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    """Where the pipeline runs: ``device`` ("cpu", "cuda", "cuda:1", "mps") and its ``dtype``."""

    device: str
    dtype: torch.dtype

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def choose_device(requested: str | None = None) -> DeviceChoice:
    """Auto-detect (CUDA > MPS > CPU) or honour ``requested``; errors name what is available."""
    available = ["cpu"]
    if torch.cuda.is_available():
        available += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        available.append("mps")
    wanted = (requested or "").strip().lower() or ("cuda" if "cuda" in available else available[-1])
    if wanted == "auto":
        wanted = "cuda" if "cuda" in available else available[-1]
    if wanted not in available:
        raise GenerationError(
            f"Device '{requested}' is not available here; available: {', '.join(available)}."
        )
    dtype = torch.float32 if wanted == "cpu" else torch.float16
    return DeviceChoice(wanted, dtype)


def xformers_available() -> bool:
    """True when xformers can be imported (checked without importing it)."""
    from diffusers.utils import is_xformers_available

    return bool(is_xformers_available())


def configure_attention(pipe: Any, choice: DeviceChoice) -> str:
    """Pick the attention backend; returns its name for the engine info ("xformers" / "sdpa")."""
    if choice.device.startswith("cuda") and xformers_available():
        try:
            pipe.enable_xformers_memory_efficient_attention()
            return "xformers"
        except Exception as exc:  # a wheel built for another torch/CUDA: fall back, say why
            log.warning("xformers is installed but unusable (%s); using PyTorch SDPA", exc)
    return "sdpa"
