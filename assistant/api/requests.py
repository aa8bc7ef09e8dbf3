"""What an ``/sdapi/v1`` request may say: the txt2img, img2img and png-info bodies.

A1111's field names and limits (from :mod:`assistant.limits`), the fields LoRA Mixer does not
implement (their "off" values, which are not worth a note), and how a body becomes
:class:`~assistant.service.RenderSettings` (``override_settings``, hires fix, img2img).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..limits import (
    CFG_DEFAULT,
    DENOISING,
    DENOISING_DEFAULT,
    HIRES_SCALE,
    HIRES_STEPS,
    PROMPT_CHARS,
    STEPS_DEFAULT,
)
from ..service import LIMITS, SIZE_MULTIPLE, RenderSettings
from ..types import DEFAULT_SAMPLER, RESIZE_MODES, HiresFix

#: A1111 txt2img fields LoRA Mixer does not implement, with the value that means "off" in A1111.
#: An unknown field is noted in ``info.ignored_fields`` unless it has this value (webuiapi sends
#: every field with its default on each call, so only real requests are reported).
_A1111_OFF_VALUES: dict[str, tuple[Any, ...]] = {
    "restore_faces": (False, None),
    "tiling": (False, None),
    "subseed": (-1,),
    "subseed_strength": (0, 0.0),
    "seed_resize_from_h": (0, -1),
    "seed_resize_from_w": (0, -1),
    "styles": ([], None),
    "override_settings": ({}, None),
    "script_name": (None, ""),
    "script_args": ([], None),
    "alwayson_scripts": ({}, None),
    "s_churn": (0, 0.0),
    "s_tmax": (0, 0.0, None),
    "s_tmin": (0, 0.0),
    "s_noise": (1, 1.0),
    "eta": (None, 1, 1.0, 0, 0.0),
    "refiner_checkpoint": (None, ""),
    # hires fix fields LoRA Mixer does not implement (only read when enable_hr is true)
    "hr_sampler_name": (None, ""),
    "hr_scheduler": (None, "", "Automatic", "automatic"),
    "hr_checkpoint_name": (None, ""),
    "hr_prompt": ("", None),
    "hr_negative_prompt": ("", None),
    "hr_cfg": (None,),
    "hr_additional_modules": ([], None),
    "firstphase_width": (0, None),
    "firstphase_height": (0, None),
    # img2img: the instruct-pix2pix image CFG and the noise multiplier (A1111's defaults are "off")
    "image_cfg_scale": (None, 1.5, 1, 1.0),
    "initial_noise_multiplier": (None, 1, 1.0),
}
#: img2img inpainting fields: with no ``mask`` they mean nothing (webuiapi always sends them); a
#: ``mask`` (or ``latent_mask``) is refused: LoRA Mixer does not inpaint.
_MASK_FIELDS = frozenset(
    {
        "mask_blur",
        "mask_blur_x",
        "mask_blur_y",
        "inpainting_fill",
        "inpaint_full_res",
        "inpaint_full_res_padding",
        "inpainting_mask_invert",
        "mask_round",
    }
)
#: ``override_settings`` / ``POST /options`` keys LoRA Mixer applies (A1111's option names).
_OVERRIDES = frozenset({"CLIP_stop_at_last_layers", "randn_source", "emphasis", "sd_vae"})
#: Fields that only matter when ``enable_hr`` is true (hires fix).
_HIRES_PREFIXES = ("hr_", "firstphase_", "denoising_strength")
#: Fields about delivery/saving, not about the image: never worth a note.
_QUIET_FIELDS = frozenset(
    {
        "send_images",
        "save_images",
        "do_not_save_samples",
        "do_not_save_grid",
        "override_settings_restore_afterwards",
        "disable_extra_networks",
        "comments",
        "force_task_id",
        "infotext",
    }
)


def _bounded_int(name: str, *, default: int) -> Any:
    low, high = LIMITS[name]
    return Field(default=default, ge=int(low), le=int(high))


#: ``multipleOf`` in the schema; the check itself is ``_multiple_of_8`` (its message names the value).
_MULTIPLE_OF_8 = Field(json_schema_extra={"multipleOf": SIZE_MULTIPLE})


class _RenderRequest(BaseModel):
    """Fields A1111's txt2img and img2img requests share (``StableDiffusionProcessing``'s).

    Other A1111 fields are accepted (``extra="allow"``) and ignored; see ``info.ignored_fields``.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, str_max_length=PROMPT_CHARS, strict=True)

    negative_prompt: str = Field(default="", max_length=PROMPT_CHARS)
    seed: Annotated[int, _bounded_int("seed", default=-1)] = -1
    steps: Annotated[int, _bounded_int("steps", default=STEPS_DEFAULT)] = STEPS_DEFAULT
    cfg_scale: Annotated[float, Field(ge=LIMITS["cfg"][0], le=LIMITS["cfg"][1], allow_inf_nan=False)] = (
        CFG_DEFAULT
    )
    width: Annotated[int, _bounded_int("width", default=512), _MULTIPLE_OF_8] = 512
    height: Annotated[int, _bounded_int("height", default=512), _MULTIPLE_OF_8] = 512
    sampler_name: str | None = Field(default=None, max_length=100)
    sampler_index: str | None = Field(default=None, max_length=100, description="deprecated A1111 alias")
    scheduler: str | None = Field(default=None, max_length=100)
    batch_size: Annotated[int, _bounded_int("batch_size", default=1)] = 1
    n_iter: Annotated[int, _bounded_int("n_iter", default=1)] = 1
    assistant: bool = Field(
        default=True, description="run the LoRA assistant (rewrite + checks) before rendering"
    )
    symptoms: list[str] = Field(
        default_factory=list, max_length=10, description="e.g. 'extra ears', 'black image'"
    )
    strict: bool = Field(
        default=False,
        description="a LoRA that cannot be applied (unsupported layout, layers this model does not have, "
        "another base model) fails the request with 422 instead of being left out with a note in "
        "info.notes",
    )

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        if value % SIZE_MULTIPLE:
            raise ValueError(f"must be a multiple of {SIZE_MULTIPLE} (got {value})")
        return value

    def overrides(self) -> dict[str, Any]:
        """The ``override_settings`` LoRA Mixer applies to this render (A1111 option names)."""
        given = (self.model_extra or {}).get("override_settings") or {}
        return {k: v for k, v in given.items() if k in _OVERRIDES} if isinstance(given, dict) else {}

    def _quiet(self, key: str) -> bool:
        """An extra field that cannot matter for this request (delivery options and the like)."""
        return key in _QUIET_FIELDS

    def ignored_fields(self) -> dict[str, Any]:
        """Unknown A1111 fields sent with a value that would have changed the result in A1111."""
        extra = dict(self.model_extra or {})
        given = extra.get("override_settings")
        if isinstance(given, dict):
            rest = {k: v for k, v in given.items() if k not in _OVERRIDES}
            extra["override_settings"] = rest
        ignored: dict[str, Any] = {}
        for key, value in sorted(extra.items()):
            if self._quiet(key):
                continue
            if any(_same(value, off) for off in _A1111_OFF_VALUES.get(key, ())):
                continue
            ignored[key] = value
        return ignored

    def render_settings(self) -> RenderSettings:
        overrides = self.overrides()
        return RenderSettings(
            clip_skip=overrides.get("CLIP_stop_at_last_layers"),
            rng=overrides.get("randn_source"),
            emphasis=overrides.get("emphasis"),
            sampler=self.sampler_name or self.sampler_index or DEFAULT_SAMPLER,
            scheduler=self.scheduler,
            steps=self.steps,
            cfg=self.cfg_scale,
            width=self.width,
            height=self.height,
            seed=self.seed,
            batch_size=self.batch_size,
            n_iter=self.n_iter,
            strict_loras=self.strict,
        )


class Txt2ImgRequest(_RenderRequest):
    """The A1111 ``StableDiffusionTxt2ImgProcessingAPI`` fields LoRA Mixer uses, hires fix included.

    Other A1111 fields are accepted (``extra="allow"``) and ignored; see ``info.ignored_fields``.
    """

    prompt: str = Field(
        pattern=r"\S",
        max_length=PROMPT_CHARS,
        description="the positive prompt (required, not blank), A1111 syntax with <lora:name:weight> tags",
    )
    enable_hr: bool = Field(default=False, description="A1111's hires fix: render, upscale, denoise again")
    hr_scale: Annotated[float, Field(ge=HIRES_SCALE[0], le=HIRES_SCALE[1], allow_inf_nan=False)] = 2.0
    hr_upscaler: str | None = Field(
        default=None,
        max_length=100,
        description="Latent (default), Latent (antialiased), Latent (bicubic), Latent (bicubic antialiased), "
        "Latent (nearest), Latent (nearest-exact), Lanczos, Nearest or None; upscalers that need model "
        "weights (ESRGAN …) are refused",
    )
    hr_second_pass_steps: Annotated[int, Field(ge=HIRES_STEPS[0], le=HIRES_STEPS[1])] = 0
    hr_resize_x: Annotated[int, Field(ge=0, le=int(LIMITS["width"][1]))] = 0
    hr_resize_y: Annotated[int, Field(ge=0, le=int(LIMITS["height"][1]))] = 0
    denoising_strength: Annotated[
        float | None, Field(ge=DENOISING[0], le=DENOISING[1], allow_inf_nan=False)
    ] = Field(default=None, description="the hires fix's second pass (A1111's API default 0.75)")

    def _quiet(self, key: str) -> bool:
        return super()._quiet(key) or (key.startswith(_HIRES_PREFIXES) and not self.enable_hr)

    def render_settings(self) -> RenderSettings:
        settings = super().render_settings()
        if not self.enable_hr:
            return settings
        hires = HiresFix(
            scale=self.hr_scale,
            resize_x=self.hr_resize_x,
            resize_y=self.hr_resize_y,
            steps=self.hr_second_pass_steps,
            upscaler=self.hr_upscaler or "Latent",
        )
        strength = DENOISING_DEFAULT if self.denoising_strength is None else self.denoising_strength
        return dataclasses.replace(settings, hires=hires, denoising_strength=strength)


class Img2ImgRequest(_RenderRequest):
    """The A1111 ``StableDiffusionImg2ImgProcessingAPI`` fields LoRA Mixer uses.

    One init image (base64, with or without a ``data:image/…;base64,`` prefix). Inpainting (a
    ``mask``) is refused; the other mask fields mean nothing without one and are not reported.
    """

    prompt: str = Field(
        default="",
        max_length=PROMPT_CHARS,
        description="the positive prompt (may be empty, as in A1111's img2img), with <lora:name:weight> tags",
    )
    init_images: list[str] = Field(
        min_length=1,
        max_length=1,
        description="one base64 image (PNG, JPEG, WebP, GIF, BMP or TIFF), a data: URL prefix allowed",
    )
    denoising_strength: Annotated[float, Field(ge=DENOISING[0], le=DENOISING[1], allow_inf_nan=False)] = (
        DENOISING_DEFAULT
    )
    resize_mode: Annotated[int, Field(ge=0, le=len(RESIZE_MODES) - 1)] = Field(
        default=0, description=", ".join(f"{i} {name}" for i, name in enumerate(RESIZE_MODES))
    )
    include_init_images: bool = Field(default=False, description="echo the init images in 'parameters'")
    mask: str | None = Field(default=None, description="inpainting is not supported: a mask is refused")

    def _quiet(self, key: str) -> bool:
        return super()._quiet(key) or (key in _MASK_FIELDS and self.mask is None)

    def render_settings(self) -> RenderSettings:
        settings = super().render_settings()
        return dataclasses.replace(
            settings, denoising_strength=self.denoising_strength, resize_mode=self.resize_mode
        )


def _same(value: Any, off: Any) -> bool:
    if isinstance(value, bool) or isinstance(off, bool):
        return value is off
    return value == off


class PngInfoRequest(BaseModel):
    """A1111's ``PNGInfoRequest``: one base64 image (a ``data:`` URL prefix allowed)."""

    model_config = ConfigDict(extra="allow")

    image: str = Field(description="base64 image file (PNG, JPEG, WebP …), a data: URL prefix allowed")
