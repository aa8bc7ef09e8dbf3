"""Every bound LoRA Mixer enforces, once: the parser, the chat, the plans, the render settings,
the engine's checks, the UI sliders, the API schema and the README all read their numbers here,
so a limit is the same number in every message a user can read.

Pure Python (no torch, no gradio). :func:`markdown_table` renders the user-facing ones; the
README embeds that table between ``<!-- limits -->`` markers and a test keeps the two equal.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

__all__ = [
    "API_BODY_BYTES",
    "BATCH_COUNT",
    "BATCH_SIZE",
    "BLINDBOX_BUDGET",
    "BLINDBOX_BUDGET_DEFAULT",
    "BLINDBOX_CELLS",
    "BLINDBOX_DEFAULT",
    "BLINDBOX_PER_LORA_DEFAULT",
    "BLINDBOX_SPREAD",
    "BLINDBOX_SPREAD_DEFAULT",
    "CFG",
    "CFG_DEFAULT",
    "CLIP_SKIP",
    "COMMAND_CHARS",
    "DENOISING",
    "DENOISING_DEFAULT",
    "HIRES_DENOISING_DEFAULT",
    "HIRES_SCALE",
    "HIRES_STEPS",
    "IMAGE_BYTES",
    "IMAGE_PIXELS",
    "IMAGE_SIDE",
    "INFOTEXT_CHARS",
    "LIMITS",
    "LORA_NAME_CHARS",
    "LORA_TAGS",
    "LORA_WEIGHT",
    "PIXELS_PER_ACTION",
    "PROMPT_CHARS",
    "SEED",
    "SIZE",
    "SIZE_MULTIPLE",
    "STEPS",
    "STEPS_DEFAULT",
    "SWEEP_CELLS",
    "SWEEP_DEFAULT_VALUES",
    "SWEEP_VALUES",
    "Limit",
    "markdown_table",
    "random_seed",
    "split_range",
]

# -- text ------------------------------------------------------------------------------------------

#: One prompt (positive or negative), and so one chat message: a message holds one prompt (with
#: an optional ``Negative prompt:`` line), and is refused above this before anything is parsed.
PROMPT_CHARS = 20_000
#: A slash command (``/loras filter``, ``/sweep …``); ``/advise <prompt>`` counts as a prompt.
COMMAND_CHARS = 2_000
#: LoRA tags in a prompt pair (positive and negative together).
LORA_TAGS = 20
#: A LoRA name (a file name stem).
LORA_NAME_CHARS = 255

# -- weights ---------------------------------------------------------------------------------------

#: A LoRA weight anywhere: a prompt tag, a slider, a sweep axis, a blind-box range, a recipe,
#: the catalog, the engine's last check. A1111 accepts more; images break long before.
LORA_WEIGHT = (-2.0, 2.0)

# -- plans -----------------------------------------------------------------------------------------

#: Cells of one blind box (``/blindbox N``, the Blind box slider, the CLI's ``-n``).
BLINDBOX_CELLS = (1, 16)
BLINDBOX_DEFAULT = 8
#: A blind box's total |weight| per cell (default: the strength budget of presets/rules.yaml),
#: the ± spread around each planned weight, and the largest |weight| of one LoRA in a cell.
BLINDBOX_BUDGET = (0.0, 10.0)
BLINDBOX_BUDGET_DEFAULT = 1.2
BLINDBOX_SPREAD = (0.0, 2.0)
BLINDBOX_SPREAD_DEFAULT = 0.15
BLINDBOX_PER_LORA_DEFAULT = 1.0
#: Values on one sweep axis (``/sweep NAME 0.2..1.0xN``, ``catgirl_v1=…``, ``--x``).
SWEEP_VALUES = (1, 16)
SWEEP_DEFAULT_VALUES = 5
#: Cells of one X/Y sweep or A/B grid.
SWEEP_CELLS = 64

# -- render settings (UI sliders, API schema, RenderSettings, the engine's check_request) ----------

STEPS = (1, 150)
CFG = (0.0, 30.0)
#: The defaults of the UI, the API, the CLI and a bare GenerationRequest: A1111's txt2img ones
#: (the CLI said 28 before; one number now).
STEPS_DEFAULT = 20
CFG_DEFAULT = 7.0
SIZE = (64, 2048)
SIZE_MULTIPLE = 8
BATCH_SIZE = (1, 8)
BATCH_COUNT = (1, 16)
SEED = (-1, 2**32 - 1)
#: A1111's "Clip skip" (CLIP_stop_at_last_layers).
CLIP_SKIP = (1, 12)
#: width × height × images of one call (a memory guard).
PIXELS_PER_ACTION = 2048 * 2048 * 4

# -- img2img and hires fix -------------------------------------------------------------------------

#: A1111's "Denoising strength" (img2img, and the hires fix's second pass).
DENOISING = (0.0, 1.0)
#: A1111's defaults: img2img 0.75; the txt2img UI's hires fix 0.7.
DENOISING_DEFAULT = 0.75
HIRES_DENOISING_DEFAULT = 0.7
#: A1111's "Upscale by" slider of the hires fix.
HIRES_SCALE = (1.0, 4.0)
#: A1111's "Hires steps" (0 = as many as the first pass).
HIRES_STEPS = (0, 150)

# -- images a user sends (init images, PNG Info) -----------------------------------------------------

#: An image file (upload, chat attachment, CLI --init-image, decoded API base64), before decoding.
IMAGE_BYTES = 20 * 1024 * 1024
#: Pixels of an image file, read from its header before decoding (a decompression bomb stops here;
#: Pillow's own limit is 89,478,485 with a warning and twice that with an error).
IMAGE_PIXELS = 8192 * 8192
#: A side of an image file in pixels.
IMAGE_SIDE = 16384
#: A request body of the API (JSON with base64 images: 4/3 of IMAGE_BYTES plus the other fields),
#: refused before it is read whole.
API_BODY_BYTES = IMAGE_BYTES * 4 // 3 + 1024 * 1024
#: An infotext read from an image (A1111 writes a few hundred characters; two prompts at most).
INFOTEXT_CHARS = 2 * PROMPT_CHARS + 8_000


def random_seed() -> int:
    """A fresh seed in :data:`SEED`'s range: what ``-1`` becomes, and a plan seed nobody gave. The
    one place LoRA Mixer draws a seed from nothing (seeded draws inside a plan use its RNG)."""
    return secrets.randbelow(SEED[1] + 1)


_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
#: How users write a span of values, once: ``0.4..0.7``, ``0.4~0.7``, ``0.4～0.7``, ``0.4-0.7``,
#: ``0.4 to 0.7`` (a recipe's ``range:``, the CLI's ``--range``, ``/sweep``, a sweep axis).
_RANGE = re.compile(
    rf"^\s*(?P<low>{_NUMBER})\s*(?:\.\.|~|\uff5e|-(?=\s*[\d.])|to)\s*(?P<high>{_NUMBER})(?P<rest>.*?)\s*$",
    re.IGNORECASE,
)


def split_range(text: str) -> tuple[float, float, str] | None:
    """``"0.2..1.0x5"`` -> ``(0.2, 1.0, "x5")``: the two ends and what follows them (a count or a
    step, for the caller to read); None when ``text`` does not start with a range. The bounds are
    not checked here (each caller quotes its own limit)."""
    match = _RANGE.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    return float(match["low"]), float(match["high"]), match["rest"].strip()


@dataclass(frozen=True, slots=True)
class Limit:
    """One user-facing limit as the README lists it."""

    what: str
    value: str


def _n(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _range(bounds: tuple[float, float]) -> str:
    return f"{_n(bounds[0])} to {_n(bounds[1])}"


#: The README's limits table, in reading order.
LIMITS: tuple[Limit, ...] = (
    Limit("a prompt (positive or negative), and a chat message", f"{_n(PROMPT_CHARS)} characters"),
    Limit("a chat command (`/loras …`, `/sweep …`)", f"{_n(COMMAND_CHARS)} characters"),
    Limit("LoRA tags in a prompt pair", _n(LORA_TAGS)),
    Limit("a LoRA name", f"{_n(LORA_NAME_CHARS)} characters"),
    Limit("a LoRA weight (tags, sliders, sweeps, blind-box ranges, recipes)", _range(LORA_WEIGHT)),
    Limit("blind box cells", f"{_range(BLINDBOX_CELLS)} (default {BLINDBOX_DEFAULT})"),
    Limit("values on one sweep axis", f"{_range(SWEEP_VALUES)} (default {SWEEP_DEFAULT_VALUES})"),
    Limit("cells of one sweep or A/B grid", _n(SWEEP_CELLS)),
    Limit("steps", f"{_range(STEPS)} (default {STEPS_DEFAULT})"),
    Limit("CFG scale", f"{_range(CFG)} (default {_n(CFG_DEFAULT)})"),
    Limit("width, height", f"{_range(SIZE)}, a multiple of {SIZE_MULTIPLE}"),
    Limit("batch size / batch count", f"{_range(BATCH_SIZE)} / {_range(BATCH_COUNT)}"),
    Limit("seed", f"-1 (random) or 0 to {_n(SEED[1])}"),
    Limit("clip skip", _range(CLIP_SKIP)),
    Limit("pixels per call (width × height × images)", _n(PIXELS_PER_ACTION)),
    Limit("denoising strength (img2img, hires fix)", _range(DENOISING)),
    Limit("hires fix: upscale by / hires steps", f"{_range(HIRES_SCALE)} / {_range(HIRES_STEPS)}"),
    Limit("an image file sent (init image, PNG Info)", f"{_n(IMAGE_BYTES // (1024 * 1024))} MiB"),
    Limit(
        "an image's size, read before decoding",
        f"{_n(IMAGE_PIXELS)} pixels, {_n(IMAGE_SIDE)} pixels a side",
    ),
    Limit("an API request body", f"{_n(API_BODY_BYTES // (1024 * 1024))} MiB"),
)


def markdown_table() -> str:
    """The README's limits table (no trailing newline)."""
    rows = ["| what | limit |", "| --- | --- |"]
    rows += [f"| {limit.what} | {limit.value} |" for limit in LIMITS]
    return "\n".join(rows)
