"""The limits every :class:`~assistant.types.GenerationRequest` is checked against — pure Python.

One function, :func:`check_request`, used by :meth:`Engine.check_inputs` before a render and by
the CLI's ``--dry-run`` (which never imports torch), so both refuse exactly the same requests with
the same message. The numbers are A1111's UI limits, with the batch kept small for one GPU.
"""

from __future__ import annotations

import math

from .. import limits
from ..errors import GenerationError, LimitError
from ..types import GenerationRequest
from .schedulers import split_name

__all__ = [
    "EMPHASIS_MODES",
    "MAX_BATCH",
    "MAX_CFG",
    "MAX_CLIP_SKIP",
    "MAX_LORA_WEIGHT",
    "MAX_SEED",
    "MAX_SIZE",
    "MAX_STEPS",
    "MIN_SIZE",
    "RNG_SOURCES",
    "check_request",
    "normalize_choice",
    "wrap_seed",
]

# One limit per thing: the numbers are assistant.limits' (the UI, the API and the parser use them too).
MIN_SIZE, MAX_SIZE = limits.SIZE
MAX_STEPS = limits.STEPS[1]
MAX_CFG = limits.CFG[1]
MAX_BATCH = limits.BATCH_SIZE[1]
MAX_SEED = limits.SEED[1]
MAX_LORA_WEIGHT = limits.LORA_WEIGHT[1]
#: A1111's "Clip skip" slider (CLIP_stop_at_last_layers) goes from 1 to 12.
MAX_CLIP_SKIP = limits.CLIP_SKIP[1]
#: A1111's random number sources (``randn_source``); GPU is its default.
RNG_SOURCES = ("GPU", "CPU", "NV")
#: A1111's emphasis modes (``emphasis``); Original is its default.
EMPHASIS_MODES = ("Original", "No norm", "Ignore", "None")


def normalize_choice(what: str, value: str | None, choices: tuple[str, ...]) -> str:
    """``value`` spelled as one of ``choices`` (any letter case; None/"" = the first choice), or
    :class:`GenerationError` listing them."""
    text = (value or choices[0]).strip()
    for choice in choices:
        if text.casefold() == choice.casefold():
            return choice
    raise GenerationError(f"{what} {value!r} is not allowed; use one of {', '.join(choices)}.")


def wrap_seed(seed: int) -> int:
    """A seed past 2**32 - 1 (seed + i of a batch) wrapped into range, so every seed written to an
    infotext can be typed back in."""
    return seed % (MAX_SEED + 1)


def _bad(what: str, value: object, allowed: str) -> LimitError:
    return LimitError(f"{what} {value!r} is not allowed; use {allowed}.")


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_request(request: GenerationRequest) -> None:
    """Raise :class:`GenerationError` naming the first value out of range, and the range."""
    for what, value in (("width", request.width), ("height", request.height)):
        if not _whole(value) or not MIN_SIZE <= value <= MAX_SIZE or value % 8:
            raise _bad(what, value, f"a multiple of 8 from {MIN_SIZE} to {MAX_SIZE}")
    if not _whole(request.steps) or not 1 <= request.steps <= MAX_STEPS:
        raise _bad("steps", request.steps, f"a whole number from 1 to {MAX_STEPS}")
    cfg = request.cfg
    if (
        isinstance(cfg, bool)
        or not isinstance(cfg, (int, float))
        or not math.isfinite(cfg)
        or not 0 <= cfg <= MAX_CFG
    ):
        raise _bad("CFG scale", cfg, f"a number from 0 to {MAX_CFG:g}")
    if not _whole(request.batch_size) or not 1 <= request.batch_size <= MAX_BATCH:
        raise _bad("batch size", request.batch_size, f"1 to {MAX_BATCH}")
    if not _whole(request.seed) or not (request.seed == -1 or 0 <= request.seed <= MAX_SEED):
        raise _bad("seed", request.seed, f"-1 (random) or a whole number from 0 to {MAX_SEED}")
    split_name(request.sampler, request.scheduler)  # raises with the valid names
    if not _whole(request.clip_skip) or not 1 <= request.clip_skip <= MAX_CLIP_SKIP:
        raise _bad("Clip skip", request.clip_skip, f"a whole number from 1 to {MAX_CLIP_SKIP}")
    if request.rng not in RNG_SOURCES:
        raise _bad("RNG", request.rng, " / ".join(RNG_SOURCES))
    if request.emphasis not in EMPHASIS_MODES:
        raise _bad("emphasis", request.emphasis, ", ".join(EMPHASIS_MODES))
    _check_img2img(request)
    for lora in request.loras:
        for value in (lora.weight, lora.unet, lora.negative_weight, lora.negative_unet):
            if value is not None and (not math.isfinite(value) or abs(value) > MAX_LORA_WEIGHT):
                raise _bad(
                    f"LoRA weight for '{lora.name}'",
                    value,
                    f"a number from -{MAX_LORA_WEIGHT:g} to {MAX_LORA_WEIGHT:g}",
                )
        if not lora.path:
            raise GenerationError(f"LoRA '{lora.name}' has no file path; resolve it with the library first.")


def _check_img2img(request: GenerationRequest) -> None:
    """The init image, denoising strength, resize mode and hires fix of a request."""
    from ..errors import PromptError
    from ..img2img import check_hires
    from ..types import RESIZE_MODES, InitImage

    init, hires = request.init_image, request.hires
    if init is None and hires is None:
        return
    strength = request.denoising_strength
    low, high = limits.DENOISING
    if (
        isinstance(strength, bool)
        or not isinstance(strength, (int, float))
        or not math.isfinite(strength)
        or not low <= strength <= high
    ):
        raise _bad("denoising strength", strength, f"a number from {low:g} to {high:g}")
    if init is not None:
        if not isinstance(init, InitImage) or len(init.rgb) != init.width * init.height * 3:
            raise GenerationError(
                "the init image is not a decoded RGB image; read it with assistant.images first"
            )
        if not _whole(request.resize_mode) or not 0 <= request.resize_mode < len(RESIZE_MODES):
            modes = ", ".join(f"{i} {name}" for i, name in enumerate(RESIZE_MODES))
            raise _bad("resize mode", request.resize_mode, modes)
        if hires is not None:
            raise GenerationError(
                "the hires fix is a txt2img option (as in A1111); for a larger img2img, set the width "
                "and height"
            )
    if hires is not None:
        try:
            check_hires(request.width, request.height, hires, request.batch_size)
        except PromptError as exc:
            raise GenerationError(str(exc)) from None
