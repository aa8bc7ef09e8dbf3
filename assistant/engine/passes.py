"""img2img and the hires fix on the loaded pipeline: the torch side of :mod:`assistant.img2img`.

No second model: the img2img pipeline is made once with ``from_pipe`` from the loaded txt2img
pipeline (``StableDiffusionImg2ImgPipeline`` / ``StableDiffusionXLImg2ImgPipeline``): the SAME
UNet, text encoders and VAE modules — so the LoRA adapters loaded into them, the per-row weights
of :mod:`assistant.engine.rows`, the prompt embeddings of :mod:`assistant.engine.encoding`, the VAE
choice and the sampler all apply unchanged. Before each call it takes the engine pipeline's current
scheduler (one per request, from the A1111 sampler name) and VAE.

What the engine's :meth:`~assistant.engine.core.Engine._run` hands over is one pipeline-call
dictionary (embeddings, CFG, the step callback); :class:`Passes` runs:

- img2img: the init image resized as A1111's resize mode says (:func:`assistant.images.resize_image`;
  mode 3 encodes the image at its own size and resizes the latents bilinearly, as A1111), encoded
  by the VAE, then denoised from A1111's point of the schedule (:func:`assistant.img2img.img2img_steps`);
- hires fix: the txt2img pass, the upscale (latent interpolation, or decode → Lanczos/Nearest →
  encode), A1111's crop, then a second img2img pass with noise drawn afresh from the same seeds at
  the new size (A1111 makes a new ``ImageRNG`` there).

Noise: the VAE posterior is sampled with its own CPU generator per image seed, so each seed's
generator draws exactly A1111's noise first (A1111 samples the posterior from torch's global RNG).
With A1111's NV RNG the pipeline's draws come from the Philox generators
(:func:`assistant.engine.noise.philox_step_noise` over the pipeline's module and the scheduler's).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from .. import images as image_tools
from ..img2img import LATENT_UPSCALERS, StepPlan, canonical_upscaler, hires_target, img2img_steps
from ..types import GenerationRequest, InitImage
from . import noise
from . import vae as vae_module

log = logging.getLogger(__name__)

__all__ = ["Passes"]


class Passes:
    """img2img and hires-fix passes over one txt2img pipeline (its img2img twin made on first use)."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._img2img: Any = None

    @property
    def is_xl(self) -> bool:
        return getattr(self._pipe, "text_encoder_2", None) is not None

    def img2img_pipeline(self) -> Any:
        """The img2img pipeline sharing every module of the txt2img one (``from_pipe``), with the
        txt2img pipeline's current scheduler and VAE."""
        if self._img2img is None:
            from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

            cls = StableDiffusionXLImg2ImgPipeline if self.is_xl else StableDiffusionImg2ImgPipeline
            self._img2img = cls.from_pipe(self._pipe)
            self._img2img.set_progress_bar_config(disable=True)
        pipe = self._img2img
        if pipe.scheduler is not self._pipe.scheduler:
            pipe.scheduler = self._pipe.scheduler
        if pipe.vae is not self._pipe.vae:
            pipe.vae = self._pipe.vae
        return pipe

    # -- the whole request -----------------------------------------------------------------------

    def run(
        self,
        call: dict[str, Any],
        request: GenerationRequest,
        generators: Sequence[Any],
        *,
        device: str,
    ) -> torch.Tensor:
        """The latents of an img2img or hires-fix request. ``call`` is the engine's txt2img call
        (embeddings, ``guidance_scale``, ``num_images_per_prompt``, ``callback_on_step_end``,
        ``output_type="latent"``, and ``generator`` or ``latents`` for NV)."""
        images = _rows(call) * int(call.get("num_images_per_prompt", 1))
        seeds = [_seed_of(g) for g in generators]
        if request.init_image is not None:
            init = self.encode(self.source(request.init_image, request), seeds, rows=images)
            if request.resize_mode == 3:
                init = _resize_latents(init, request.height // 8, request.width // 8, "bilinear", False)
            plan = img2img_steps(request.steps, request.denoising_strength)
            latents = self.denoise(call, init, plan, generators, device=device)
        else:
            latents = self.txt2img(call, generators)
        if request.hires is not None:
            latents = self.hires(call, latents, request, seeds, device=device)
        return latents

    def txt2img(self, call: dict[str, Any], generators: Sequence[Any]) -> torch.Tensor:
        with noise.philox_step_noise(self._pipe.scheduler, generators):
            return self._pipe(**call).images

    def hires(
        self,
        call: dict[str, Any],
        latents: torch.Tensor,
        request: GenerationRequest,
        seeds: Sequence[int],
        *,
        device: str,
    ) -> torch.Tensor:
        """A1111's hires fix after the first pass: upscale, crop, a second img2img pass."""
        hires = request.hires
        assert hires is not None
        target = hires_target(request.width, request.height, hires)
        upscaler = canonical_upscaler(hires.upscaler)
        if upscaler in LATENT_UPSCALERS:
            mode, antialias = LATENT_UPSCALERS[upscaler]
            size = (target.upscale_height // 8, target.upscale_width // 8)
            upscaled = _resize_latents(latents, size[0], size[1], mode, antialias)
        else:
            images, _note = vae_module.decode(self._pipe, latents)
            width, height = target.upscale_width // 8 * 8, target.upscale_height // 8 * 8
            sources = [_pixel_upscale(image_tools_pil(image), width, height, upscaler) for image in images]
            upscaled = torch.cat(
                [self.encode(src, [seed], rows=1) for src, seed in zip(sources, seeds, strict=True)]
            )
        upscaled = _truncate(upscaled, target.truncate_x, target.truncate_y)
        plan = img2img_steps(
            request.steps, request.denoising_strength, requested=hires.steps or request.steps
        )
        if plan.run == 0:  # denoising 0: the upscaled latents as they are (A1111's schedule is empty)
            return upscaled
        fresh = noise.generators(seeds, request.rng, device)  # A1111: a new ImageRNG at the new size
        return self.denoise(call, upscaled, plan, fresh, device=device)

    # -- pieces ------------------------------------------------------------------------------

    def source(self, init: InitImage, request: GenerationRequest) -> Any:
        """The init image as A1111 feeds it to the VAE for ``request.resize_mode``."""
        image = init.to_pil()
        if request.resize_mode == 3:
            width, height = image_tools.latent_source_size(image.width, image.height)
            return (
                image if (width, height) == image.size else image_tools.resize_image(0, image, width, height)
            )
        return image_tools.resize_image(request.resize_mode, image, request.width, request.height)

    @torch.no_grad()
    def encode(self, image: Any, seeds: Sequence[int], *, rows: int) -> torch.Tensor:
        """VAE latents of one RGB image, ``rows`` times (rows use the seeds in turn), scaled as the
        UNet expects (SDXL: with the VAE's latents mean/std when it has them)."""
        pipe = self._pipe
        vae = pipe.vae
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        pixels = pixels * 2.0 - 1.0
        upcast = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
        dtype = torch.float32 if upcast else vae.dtype
        device = next(vae.parameters()).device
        with _vae_in(vae, dtype if upcast else None):
            posterior = vae.encode(pixels.to(device=device, dtype=dtype)).latent_dist
        out = []
        for row in range(rows):
            generator = torch.Generator("cpu").manual_seed(int(seeds[row % len(seeds)]) if seeds else 0)
            sample = posterior.mean + posterior.std * torch.randn(
                posterior.mean.shape, generator=generator, dtype=torch.float32
            ).to(device=posterior.mean.device, dtype=posterior.mean.dtype)
            out.append(sample)
        latents = torch.cat(out).to(dtype=pipe.unet.dtype)
        config = vae.config
        mean = getattr(config, "latents_mean", None)
        std = getattr(config, "latents_std", None)
        if self.is_xl and mean is not None and std is not None:
            mean_t = torch.tensor(mean).view(1, -1, 1, 1).to(latents.device, latents.dtype)
            std_t = torch.tensor(std).view(1, -1, 1, 1).to(latents.device, latents.dtype)
            return (latents - mean_t) * config.scaling_factor / std_t
        return latents * config.scaling_factor

    def denoise(
        self,
        call: dict[str, Any],
        init: torch.Tensor,
        plan: StepPlan,
        generators: Sequence[Any],
        *,
        device: str,
    ) -> torch.Tensor:
        """One img2img pass: ``plan.run`` steps of a ``plan.schedule``-step schedule from ``init``."""
        pipe = self.img2img_pipeline()
        kwargs = {k: v for k, v in call.items() if k not in ("generator", "latents", "width", "height")}
        rows = _rows(kwargs) * int(kwargs.get("num_images_per_prompt", 1))
        if init.shape[0] != rows:
            raise ValueError(f"img2img latents hold {init.shape[0]} images for {rows} rows")
        philox = bool(generators) and isinstance(generators[0], noise.PhiloxGenerator)
        kwargs.update(
            image=init.to(device=device),
            strength=plan.strength,
            num_inference_steps=plan.schedule,
            generator=None if philox else list(generators),
        )
        with noise.philox_step_noise(pipe.scheduler, generators), noise.philox_step_noise(pipe, generators):
            return pipe(**kwargs).images


# -- helpers -----------------------------------------------------------------------------------


def image_tools_pil(image: np.ndarray) -> Any:
    """A decoded float image (0..1, HxWx3) as an 8-bit Pillow image, as A1111 makes it."""
    from PIL import Image

    return Image.fromarray((np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8))


def _pixel_upscale(image: Any, width: int, height: int, upscaler: str) -> Any:
    """A1111's ``resize_image(0, …, upscaler_name=…)`` for the weight-free upscalers."""
    from PIL import Image

    lanczos = Image.Resampling.LANCZOS
    scale = max(width / image.width, height / image.height)
    if upscaler != "None" and scale > 1.0:
        resample = Image.Resampling.NEAREST if upscaler == "Nearest" else lanczos
        image = image.resize((int(image.width * scale), int(image.height * scale)), resample=resample)
    if image.size != (width, height):
        image = image.resize((width, height), resample=lanczos)
    return image


def _resize_latents(
    latents: torch.Tensor, height: int, width: int, mode: str, antialias: bool
) -> torch.Tensor:
    if tuple(latents.shape[-2:]) == (height, width) and not antialias:
        return latents
    kwargs: dict[str, Any] = {"size": (height, width), "mode": mode}
    if mode in ("bilinear", "bicubic"):
        kwargs["antialias"] = antialias
    original = latents.dtype
    out = torch.nn.functional.interpolate(latents.float(), **kwargs)
    return out.to(original)


def _truncate(latents: torch.Tensor, truncate_x: int, truncate_y: int) -> torch.Tensor:
    """A1111's crop after a hires resize to a box of another aspect (in latent cells)."""
    if not truncate_x and not truncate_y:
        return latents
    h, w = latents.shape[2], latents.shape[3]
    return latents[
        :, :, truncate_y // 2 : h - (truncate_y + 1) // 2, truncate_x // 2 : w - (truncate_x + 1) // 2
    ]


def _rows(call: dict[str, Any]) -> int:
    embeds = call.get("prompt_embeds")
    return int(embeds.shape[0]) if isinstance(embeds, torch.Tensor) else 1


def _seed_of(generator: Any) -> int:
    if isinstance(generator, noise.PhiloxGenerator):
        return int(generator.seed)
    return int(generator.initial_seed())


@contextlib.contextmanager
def _vae_in(vae: Any, dtype: torch.dtype | None) -> Iterator[None]:
    """The VAE in ``dtype`` for the block (SDXL's fp16 VAE encodes in fp32, as diffusers does)."""
    if dtype is None or vae.dtype == dtype:
        yield
        return
    original = vae.dtype
    vae.to(dtype)
    try:
        yield
    finally:
        vae.to(original)
