"""The embedded default model: a tiny Stable Diffusion 1.x trained here on shapes.

When no model is configured, LoRA Mixer runs this pipeline (a standard diffusers folder under
``models/embedded/``, fp16 safetensors, about 10 MB) instead of random weights, so a fresh
install, a free CPU Space or CI draws real pictures and shows what a LoRA, a weight, a stack or a
blind box does. It was trained by ``tools/train_base.py`` on the procedural dataset of
:mod:`assistant.train.synthetic`; the demo LoRAs in ``models/Lora`` were trained on it by the
project's own trainer (``tools/make_demo_loras.py``).

What it can draw is exactly its training vocabulary (:data:`VOCABULARY`): a circle, square,
triangle or star in red, green, blue, yellow, white, black, purple or orange, striped, dotted or
plain, on a background of one of those colours or gray — 64 to 128 px, in well under two seconds
on a CPU. Other words are ignored (the captions it learnt from had filler words like
"masterpiece, 1girl" mixed in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import EMBEDDED_MODEL, PROJECT_ROOT

EMBEDDED_NAME = EMBEDDED_MODEL
EMBEDDED_DIR = PROJECT_ROOT / "models" / "embedded" / EMBEDDED_NAME
#: The size it was trained at (it also draws 64 px; larger sizes repeat shapes).
EMBEDDED_SIZE = 128
VOCABULARY = (
    "shapes: circle, square, triangle, star; colours: red, green, blue, yellow, white, black, purple, "
    "orange; textures: striped, dotted, plain; backgrounds: any of those colours or gray"
)
BANNER = (
    "Embedded demo model: a tiny Stable Diffusion trained here on shapes. It paints the colour and "
    "the background you ask for (red, green, blue, yellow, white, black, purple, orange; e.g. “a "
    "striped red square on a blue background”) with the shape you ask for — circle, square, triangle "
    "or star — about 8 times in 10 at 128 px (stars are the weakest); stripes show, dots faintly. "
    "Shapes are soft-edged, blurrier at 64 px. Configure a real model (LORA_MIXER_MODEL or --model) "
    "for anything else."
)


def available() -> bool:
    """Whether the embedded model's files are present (a partial checkout may lack them)."""
    return (EMBEDDED_DIR / "model_index.json").is_file() and (EMBEDDED_DIR / "unet").is_dir()


def load(device: str = "cpu", dtype: Any = None) -> Any:
    """The embedded ``StableDiffusionPipeline`` (fp32 on the CPU unless ``dtype`` says otherwise)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # "Loading pipeline components" on every start
    pipe = StableDiffusionPipeline.from_pretrained(
        str(EMBEDDED_DIR),
        torch_dtype=dtype or torch.float32,
        safety_checker=None,
        requires_safety_checker=False,
        local_files_only=True,
        use_safetensors=True,
    )
    pipe.set_progress_bar_config(disable=True)
    pipe._lora_mixer_name = EMBEDDED_NAME
    return pipe.to(device)


def folder() -> Path:
    return EMBEDDED_DIR
