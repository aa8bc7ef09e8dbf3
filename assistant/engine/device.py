"""Device and dtype choice, and the attention backend.

CUDA: fp16, xformers when it is importable (probed without importing it, like diffusers'
``is_xformers_available``), otherwise PyTorch SDPA (diffusers' default ``AttnProcessor2_0``).
Apple MPS: fp16. CPU: fp32 (fp16 matmuls on CPU are slow and lose precision).

``low_vram`` (setting ``low_vram``, flag ``--low-vram``) is for small GPUs: the VAE decodes one
image at a time and in tiles (a 1024px SDXL decode is the biggest single allocation), and attention
is computed in slices when neither xformers nor a memory-efficient SDPA kernel is in use (diffusers
advises against slicing on top of those: it only slows them down). Slicing changes nothing but
float rounding (tested on CPU); tiling only starts above the VAE's own sample size (512 px for SD1.5,
1024 for SDXL) and may then leave faint seams that the blended tile borders mostly hide.
On CUDA ``low_vram`` also turns on diffusers' model CPU offload: each part (text encoders, UNet,
VAE) moves to the GPU only while it runs, so an SDXL model fits a 6-8 GB card; the engine puts
its inputs on the pipeline's execution device.
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


def configure_attention(pipe: Any, choice: DeviceChoice, *, low_vram: bool = False) -> str:
    """Pick the attention backend; returns its name for the engine info.

    "xformers" or "sdpa"; with ``low_vram`` also the VAE's slicing and tiling, and "sliced"
    attention where SDPA has no memory-efficient kernel (MPS, or CPU) — see the module docstring.
    """
    attention = "sdpa"
    if choice.device.startswith("cuda") and xformers_available():
        try:
            pipe.enable_xformers_memory_efficient_attention()
            attention = "xformers"
        except Exception as exc:  # a wheel built for another torch/CUDA: fall back, say why
            log.warning("xformers is installed but unusable (%s); using PyTorch SDPA", exc)
    if low_vram:
        if choice.device.startswith("cuda"):
            pipe.enable_model_cpu_offload(device=choice.device)
        vae = getattr(pipe, "vae", None)
        for switch in ("enable_slicing", "enable_tiling"):
            if hasattr(vae, switch):
                getattr(vae, switch)()
        if attention == "sdpa" and not choice.device.startswith("cuda"):
            pipe.enable_attention_slicing("auto")
            attention = "sliced"
        offload = " + model CPU offload" if choice.device.startswith("cuda") else ""
        attention += offload + " + low-VRAM VAE"
    return attention
