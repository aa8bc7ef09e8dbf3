"""Render settings: the sampler settings of one action, and the one validation of them.

The UI's accordion and ``/sdapi/v1/txt2img`` both arrive as a :class:`RenderSettings`;
:meth:`RenderSettings.validated` checks every number against :data:`LIMITS` (the bounds in
:mod:`assistant.limits`) and the img2img / hires-fix fields, and :meth:`RenderSettings.request`
turns the checked settings into a :class:`~assistant.types.GenerationRequest`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import limits
from ..errors import LimitError, LoraMixerError, PromptError
from ..types import (
    DEFAULT_SAMPLER,
    RESIZE_MODES,
    GenerationRequest,
    HiresFix,
    InitImage,
    PlannedLora,
)

#: Inclusive bounds shared by the UI sliders, the API schema and :meth:`RenderSettings.validated`
#: (the numbers live in :mod:`assistant.limits`).
LIMITS: dict[str, tuple[float, float]] = {
    "steps": limits.STEPS,
    "cfg": limits.CFG,
    "width": limits.SIZE,
    "height": limits.SIZE,
    "batch_size": limits.BATCH_SIZE,
    "n_iter": limits.BATCH_COUNT,
    "seed": limits.SEED,
}
SIZE_MULTIPLE = limits.SIZE_MULTIPLE
MAX_PIXELS_PER_ACTION = limits.PIXELS_PER_ACTION  # width*height*images for one call (memory guard)


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """Sampler settings chosen in the UI's accordion or sent to ``/sdapi/v1/txt2img``."""

    sampler: str = DEFAULT_SAMPLER
    scheduler: str | None = None
    steps: int = limits.STEPS_DEFAULT
    cfg: float = limits.CFG_DEFAULT
    width: int = 512
    height: int = 512
    seed: int = -1
    batch_size: int = 1
    n_iter: int = 1
    #: A1111 model settings for this render (API ``override_settings``); None = the server's
    clip_skip: int | None = None
    rng: str | None = None
    emphasis: str | None = None
    #: img2img (an init image) or txt2img's hires fix; ``denoising_strength`` None = A1111's
    #: default for the one in use (img2img 0.75, hires fix 0.7)
    init_image: InitImage | None = None
    denoising_strength: float | None = None
    resize_mode: int = 0
    hires: HiresFix | None = None
    #: False (default): a LoRA that cannot be applied is left out with a warning naming it and
    #: why, the rest of the mix renders; True: it fails the render (the API's ``"strict": true``)
    strict_loras: bool = False

    def validated(self) -> RenderSettings:
        """This object with numbers normalised, or :class:`LimitError` naming value and range."""
        values: dict[str, Any] = {}
        for name in ("steps", "width", "height", "batch_size", "n_iter", "seed"):
            values[name] = _whole(name, getattr(self, name))
        values["cfg"] = _finite("cfg", self.cfg)
        for name, value in values.items():
            low, high = LIMITS[name]
            if not low <= value <= high:
                raise LimitError(
                    f"{_LABELS[name]} {_fmt(value)} is out of range; "
                    f"use a value from {_fmt(low)} to {_fmt(high)}"
                )
        for name in ("width", "height"):
            if values[name] % SIZE_MULTIPLE:
                raise LimitError(
                    f"{_LABELS[name]} {values[name]} is not a multiple of {SIZE_MULTIPLE}; "
                    f"try {values[name] // SIZE_MULTIPLE * SIZE_MULTIPLE or SIZE_MULTIPLE}"
                )
        pixels = values["width"] * values["height"] * values["batch_size"] * values["n_iter"]
        if pixels > MAX_PIXELS_PER_ACTION:
            raise LimitError(
                f"{values['width']}x{values['height']} x {values['batch_size'] * values['n_iter']} images is "
                f"too much for one call; keep width x height x images under {MAX_PIXELS_PER_ACTION:,} pixels"
            )
        from ..engine.checks import EMPHASIS_MODES, MAX_CLIP_SKIP, RNG_SOURCES, normalize_choice

        if self.clip_skip is not None:
            values["clip_skip"] = _whole("clip skip", self.clip_skip)
            if not 1 <= values["clip_skip"] <= MAX_CLIP_SKIP:
                raise LimitError(
                    f"clip skip {values['clip_skip']} is out of range; use a value from 1 to {MAX_CLIP_SKIP}"
                )
        try:
            if self.rng is not None:
                values["rng"] = normalize_choice("RNG", self.rng, RNG_SOURCES)
            if self.emphasis is not None:
                values["emphasis"] = normalize_choice("emphasis", self.emphasis, EMPHASIS_MODES)
        except LoraMixerError as exc:
            raise PromptError(str(exc)) from None
        sampler = (self.sampler or DEFAULT_SAMPLER).strip()
        scheduler = (self.scheduler or "").strip() or None
        if scheduler is not None and scheduler.lower() == "automatic":
            scheduler = None
        values.update(self._img2img_values(values))
        return dataclasses.replace(self, sampler=sampler, scheduler=scheduler, **values)

    def _img2img_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """The img2img / hires-fix fields checked (denoising strength, resize mode, hires target)."""
        from ..img2img import canonical_upscaler, check_hires

        out: dict[str, Any] = {}
        if self.denoising_strength is not None:
            strength = _finite("denoising strength", self.denoising_strength)
            low, high = limits.DENOISING
            if not low <= strength <= high:
                raise PromptError(
                    f"denoising strength {_fmt(strength)} is out of range; use {low:g} to {high:g}"
                )
            out["denoising_strength"] = strength
        mode = _whole("resize mode", self.resize_mode)
        if not 0 <= mode < len(RESIZE_MODES):
            names = ", ".join(f"{i} ({name})" for i, name in enumerate(RESIZE_MODES))
            raise PromptError(f"resize mode {mode} is not one of A1111's: {names}")
        out["resize_mode"] = mode
        if self.init_image is not None and not isinstance(self.init_image, InitImage):
            raise PromptError("the init image must be read with assistant.images first")
        if self.hires is not None:
            if self.init_image is not None:
                raise PromptError(
                    "the hires fix is a txt2img option (as in A1111): remove the init image, or set the "
                    "img2img width and height instead"
                )
            hires = dataclasses.replace(self.hires, upscaler=canonical_upscaler(self.hires.upscaler))
            batch = values["batch_size"]
            check_hires(values["width"], values["height"], hires, batch)
            out["hires"] = hires
        return out

    @property
    def strength(self) -> float:
        """The denoising strength a render uses (A1111's defaults when none was given)."""
        if self.denoising_strength is not None:
            return float(self.denoising_strength)
        return limits.HIRES_DENOISING_DEFAULT if self.hires is not None else limits.DENOISING_DEFAULT

    def request(
        self, prompt: str, negative: str, loras: Sequence[PlannedLora], **extra: Any
    ) -> GenerationRequest:
        """A :class:`GenerationRequest` for these settings (call :meth:`validated` first)."""
        return GenerationRequest(
            prompt=prompt,
            negative=negative,
            loras=tuple(loras),
            seed=self.seed,
            steps=self.steps,
            cfg=self.cfg,
            sampler=self.sampler,
            scheduler=self.scheduler,
            width=self.width,
            height=self.height,
            batch_size=self.batch_size,
            **{k: v for k in ("clip_skip", "rng", "emphasis") if (v := getattr(self, k)) is not None},
            init_image=self.init_image,
            denoising_strength=self.strength,
            resize_mode=self.resize_mode,
            hires=self.hires,
            leave_out_unloadable=not self.strict_loras,
            **extra,
        )


_LABELS = {
    "steps": "steps",
    "cfg": "CFG scale",
    "width": "width",
    "height": "height",
    "batch_size": "batch size",
    "n_iter": "batch count (n_iter)",
    "seed": "seed",
    "clip skip": "clip skip",
    "denoising strength": "denoising strength",
    "resize mode": "resize mode",
}


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _whole(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise PromptError(f"{_LABELS[name]} must be a whole number, not {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise PromptError(f"{_LABELS[name]} must be a whole number, not {value!r}")
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise PromptError(f"{_LABELS[name]} must be a whole number, not {value!r}") from None


def _finite(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PromptError(f"{_LABELS[name]} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        low, high = LIMITS[name]
        raise LimitError(
            f"{_LABELS[name]} {value!r} is not a finite number; use a value from {_fmt(low)} to {_fmt(high)}"
        )
    return number
