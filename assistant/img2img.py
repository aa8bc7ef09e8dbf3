"""img2img and the hires fix as A1111 runs them: how many steps, which sizes, which upscalers.

Pure Python (no torch, no Pillow): the numbers the engine, the service, the progress bars and the
tests share. The engine's torch side is :mod:`assistant.engine.passes`.

Steps (A1111's ``sd_samplers_common.setup_img2img_steps`` and ``sample_img2img``)
-------------------------------------------------------------------------------
img2img with ``steps`` and denoising strength ``s`` builds the ``steps``-long schedule, skips its
noisiest part and samples ``t_enc + 1`` steps, where ``t_enc = int(min(s, 0.999) * steps)``:
20 steps at 0.5 run 11 steps from the 10th sigma (A1111's default, ``img2img_fix_steps`` off —
"about strength x steps", one more than the product). With ``img2img_fix_steps`` on, and always in
the hires fix's second pass (which passes its steps explicitly), A1111 instead stretches the
schedule to ``int(steps / min(s, 0.999))`` and samples exactly ``steps`` of it. LoRA Mixer runs
the same counts: :func:`img2img_steps` gives the schedule length and the steps run, and the engine
hands diffusers the schedule length plus the strength that selects exactly that many steps.

Hires fix (A1111's ``StableDiffusionProcessingTxt2Img``)
-------------------------------------------------------
The first pass renders at width x height; the result is upscaled to ``int(width * hr_scale)`` x
``int(height * hr_scale)`` — or, with ``hr_resize_x/y``, to that size (one side 0: the other kept
in proportion; both: cover the box, then crop the overflow, A1111's "truncate") — and denoised
again with ``hr_second_pass_steps`` (0: the first pass's steps) at the denoising strength.
Latent upscalers interpolate the latents (``torch.nn.functional.interpolate`` with A1111's modes);
pixel upscalers decode, resize the image (Lanczos, Nearest; "None" = a plain Lanczos resize) and
encode again. Sizes are whole latents (multiples of 8), as the latent path gives them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import limits
from .errors import PromptError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .types import GenerationRequest, HiresFix

__all__ = [
    "LATENT_UPSCALERS",
    "PIXEL_UPSCALERS",
    "UPSCALERS",
    "HiresTarget",
    "StepPlan",
    "canonical_upscaler",
    "fit_size",
    "hires_target",
    "img2img_steps",
    "sampling_steps",
]

#: A1111's latent upscale modes (``shared.latent_upscale_modes``): name -> (interpolate mode,
#: antialias). "Latent" is A1111's default hires upscaler.
LATENT_UPSCALERS: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
#: A1111's upscalers that need no weights: "None" (a plain Lanczos resize), "Lanczos", "Nearest".
PIXEL_UPSCALERS: tuple[str, ...] = ("None", "Lanczos", "Nearest")
UPSCALERS: tuple[str, ...] = (*LATENT_UPSCALERS, *PIXEL_UPSCALERS)

#: A1111 upscalers that run a neural network: refused by name (their weights are not shipped and
#: nothing is downloaded).
_MODEL_UPSCALERS: dict[str, str] = {
    "r-esrgan": "a Real-ESRGAN network",
    "esrgan": "an ESRGAN network",
    "ldsr": "the LDSR latent diffusion upscaler",
    "scunet": "a ScuNET network",
    "swinir": "a SwinIR network",
    "dat": "a DAT network",
    "ultrasharp": "an ESRGAN network (4x-UltraSharp)",
    "remacri": "an ESRGAN network (Remacri)",
    "animesharp": "an ESRGAN network (AnimeSharp)",
    "nmkd": "an ESRGAN network",
    "hat": "a HAT network",
}


def canonical_upscaler(name: str | None) -> str:
    """A1111's spelling of an accepted hires upscaler (any letter case; None/"" = "Latent").

    Raises :class:`PromptError` naming the upscaler: one that needs model weights (ESRGAN,
    R-ESRGAN, SwinIR, LDSR, ScuNET, DAT …) says so; an unknown one lists the accepted names.
    """
    text = " ".join((name or "").split())
    if not text:
        return "Latent"
    for known in UPSCALERS:
        if text.casefold() == known.casefold():
            return known
    accepted = ", ".join(UPSCALERS)
    lowered = text.casefold()
    for key, network in _MODEL_UPSCALERS.items():
        if key in lowered.replace("_", "-"):
            raise PromptError(
                f"hires upscaler '{text}' needs {network} and its weights, which LoRA Mixer does not ship "
                f"(and never downloads); use one of: {accepted}"
            )
    raise PromptError(f"hires upscaler '{text}' is unknown; use one of: {accepted}")


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One denoising pass over a partial schedule: ``schedule`` steps long, ``run`` of them sampled
    (the last ones), so sampling starts at index ``schedule - run``."""

    schedule: int
    run: int

    @property
    def start(self) -> int:
        return self.schedule - self.run

    @property
    def strength(self) -> float:
        """The strength that makes diffusers' img2img pipeline sample exactly ``run`` steps of a
        ``schedule``-step schedule (it runs ``int(schedule * strength)``; the half step keeps the
        float product off an integer boundary)."""
        if self.schedule <= 0 or self.run >= self.schedule:
            return 1.0
        return (self.run + 0.5) / self.schedule


def img2img_steps(
    steps: int, strength: float, *, requested: int | None = None, fix_steps: bool = False
) -> StepPlan:
    """A1111's ``setup_img2img_steps`` + ``sample_img2img``: the schedule and the steps sampled.

    ``requested`` is the steps a caller passes explicitly (the hires fix's second pass); with it, or
    with ``fix_steps`` (A1111's ``img2img_fix_steps``), exactly those steps run. A strength of 0 in
    that branch makes A1111's schedule empty: no step runs (:attr:`StepPlan.run` 0).
    """
    capped = min(float(strength), 0.999)
    if fix_steps or requested is not None:
        wanted = int(requested or steps)
        schedule = int(wanted / capped) if strength > 0 else 0
        return StepPlan(schedule=schedule, run=wanted if schedule else 0)
    t_enc = int(capped * steps)
    return StepPlan(schedule=int(steps), run=t_enc + 1)


@dataclass(frozen=True, slots=True)
class HiresTarget:
    """Where the hires fix upscales to: A1111's ``hr_upscale_to_x/y`` and its crop ("truncate",
    in latent cells), and the size of the final image (whole latents)."""

    upscale_width: int
    upscale_height: int
    truncate_x: int = 0
    truncate_y: int = 0

    @property
    def width(self) -> int:
        return (self.upscale_width // 8 - self.truncate_x) * 8

    @property
    def height(self) -> int:
        return (self.upscale_height // 8 - self.truncate_y) * 8


def hires_target(width: int, height: int, hires: HiresFix) -> HiresTarget:
    """A1111's ``calculate_target_resolution`` for a first pass of ``width`` x ``height``."""
    rx, ry = int(hires.resize_x), int(hires.resize_y)
    if rx == 0 and ry == 0:
        return HiresTarget(int(width * hires.scale), int(height * hires.scale))
    if ry == 0:
        return HiresTarget(rx, rx * height // width)
    if rx == 0:
        return HiresTarget(ry * width // height, ry)
    if width / height < rx / ry:
        up_x, up_y = rx, rx * height // width
    else:
        up_x, up_y = ry * width // height, ry
    return HiresTarget(up_x, up_y, (up_x - rx) // 8, (up_y - ry) // 8)


def check_hires(width: int, height: int, hires: HiresFix, batch: int = 1) -> HiresTarget:
    """The target of a hires fix, or :class:`PromptError` when a value or the result is out of
    :mod:`assistant.limits` (the message names the value and the limit)."""
    low, high = limits.HIRES_SCALE
    scale = float(hires.scale)
    if not math.isfinite(scale) or not low <= scale <= high:
        raise PromptError(f"hires 'Upscale by' {hires.scale!r} is out of range; use {low:g} to {high:g}")
    for what, value in (("hr_resize_x", hires.resize_x), ("hr_resize_y", hires.resize_y)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limits.SIZE[1]:
            raise PromptError(
                f"hires {what} {value!r} is out of range; use 0 (off) or up to {limits.SIZE[1]}"
            )
    s_low, s_high = limits.HIRES_STEPS
    if (
        isinstance(hires.steps, bool)
        or not isinstance(hires.steps, int)
        or not s_low <= hires.steps <= s_high
    ):
        raise PromptError(
            f"hires steps {hires.steps!r} is out of range; use {s_low} (as the first pass) to {s_high}"
        )
    canonical_upscaler(hires.upscaler)
    target = hires_target(width, height, hires)
    side_low, side_high = limits.SIZE
    if not (side_low <= target.width <= side_high and side_low <= target.height <= side_high):
        raise PromptError(
            f"the hires fix would make a {target.width}x{target.height} image from {width}x{height}; "
            f"each side must be from {side_low} to {side_high} — lower 'Upscale by' or the resize size"
        )
    if target.width * target.height * batch > limits.PIXELS_PER_ACTION:
        raise PromptError(
            f"the hires fix makes {batch} image(s) of {target.width}x{target.height}: over the "
            f"{limits.PIXELS_PER_ACTION:,} pixels one call may hold; lower 'Upscale by' or the batch size"
        )
    return target


def sampling_steps(request: GenerationRequest) -> int:
    """The sampler steps a request really runs (what its progress counts to): the img2img pass's,
    or txt2img's plus the hires fix's second pass."""
    if request.init_image is not None:
        return img2img_steps(request.steps, request.denoising_strength).run
    steps = int(request.steps)
    if request.hires is not None:
        steps += img2img_steps(steps, request.denoising_strength, requested=request.hires.steps or steps).run
    return steps


def fit_size(
    image_width: int, image_height: int, area: int, multiple: int = limits.SIZE_MULTIPLE
) -> tuple[int, int]:
    """A render size with the image's aspect ratio and about ``area`` pixels (sides multiples of
    ``multiple`` within :data:`assistant.limits.SIZE`): a photo rendered at the settings' size
    without being squashed."""
    low, high = limits.SIZE
    ratio = image_width / image_height
    width = math.sqrt(area * ratio)
    height = width / ratio
    shrink = min(1.0, high / width, high / height)
    width, height = width * shrink, height * shrink

    def snap(value: float) -> int:
        return int(max(low, min(high, round(value / multiple) * multiple)))

    return snap(width), snap(height)
