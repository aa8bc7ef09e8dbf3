"""The VAE: A1111's ``sd_vae`` choice, and a decode that survives fp16 NaNs.

Choices (A1111's ``sd_vae`` / ``--vae`` / ``LORA_MIXER_VAE``):

- ``Automatic`` (default): a VAE named like the checkpoint (``model.vae.safetensors`` beside it,
  or ``<model>.safetensors`` / ``<model>.vae.safetensors`` in the VAE folder), else the
  checkpoint's own;
- ``None``: always the checkpoint's own;
- a file name from the VAE folder (A1111's ``models/VAE``), a path to a single-file VAE in the
  original layout (``encoder.down.0.block.0…``, with or without ``first_stage_model.``), a
  diffusers ``AutoencoderKL`` folder, or a hub id (``madebyollin/sdxl-vae-fp16-fix``).

Single files load offline with the family's shipped VAE config (SDXL's scaling factor differs).
Infotext: ``VAE hash`` (first 10 hex of the file's sha256) and ``VAE`` (the file name), as A1111.

Decoding: the pipeline returns latents and :func:`decode` turns them into images with the same
steps diffusers takes (so images are bit-identical on CPU); when a fp16 decode gives NaN/inf (the
SDXL VAE is known for it) it is done again in fp32 and a note says so — A1111's automatic
``--no-half-vae`` retry.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GenerationError

log = logging.getLogger(__name__)

VAE_SUFFIXES = (".safetensors",)


@dataclass(frozen=True, slots=True)
class VaeChoice:
    """A resolved VAE: ``source`` to load ("" = the checkpoint's own), its infotext name and hash."""

    source: str = ""
    name: str = ""
    kind: str = "own"  # own | file | folder | hub


def vae_files(vae_dir: str | Path) -> list[Path]:
    """The VAE files of A1111's ``models/VAE`` layout (subfolders included), sorted by name."""
    root = Path(vae_dir).expanduser()
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.rglob("*") if p.suffix in VAE_SUFFIXES and p.is_file()), key=lambda p: p.name.lower()
    )


def resolve(choice: str | None, *, vae_dir: str | Path, model: str | None) -> VaeChoice:
    """What a ``sd_vae`` value means for this model; :class:`GenerationError` lists the files."""
    wanted = (choice or "Automatic").strip()
    if wanted.casefold() == "none":
        return VaeChoice()
    files = vae_files(vae_dir)
    if wanted.casefold() == "automatic":
        return _automatic(files, model)
    for path in files:
        if wanted in (path.name, path.stem, str(path)):
            return VaeChoice(str(path), path.name, "file")
    path = Path(wanted).expanduser()
    if path.is_file():
        if path.suffix not in VAE_SUFFIXES:
            raise GenerationError(
                f"VAE '{wanted}' is not a .safetensors file; LoRA Mixer loads no pickle files (.pt/.ckpt)."
            )
        return VaeChoice(str(path), path.name, "file")
    if path.is_dir():
        return VaeChoice(str(path), path.name, "folder")
    if "/" in wanted and not wanted.startswith((".", "/", "~")) and wanted.count("/") == 1:
        return VaeChoice(wanted, wanted.rsplit("/", 1)[-1], "hub")
    names = ", ".join(["Automatic", "None", *(p.name for p in files)])
    raise GenerationError(f"VAE '{wanted}' was not found; choose one of: {names} (or a path or hub id).")


def _automatic(files: list[Path], model: str | None) -> VaeChoice:
    if not model:
        return VaeChoice()
    path = Path(model).expanduser()
    stem = path.stem if path.suffix else path.name
    beside = [path.with_name(f"{stem}.vae{suffix}") for suffix in VAE_SUFFIXES] if path.suffix else []
    for candidate in beside:
        if candidate.is_file():
            return VaeChoice(str(candidate), candidate.name, "file")
    for candidate in files:
        if candidate.stem in (stem, f"{stem}.vae"):
            return VaeChoice(str(candidate), candidate.name, "file")
    return VaeChoice()


def file_hash(path: str | Path) -> str:
    """A1111's VAE hash: the first 10 hex digits of the file's sha256."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:10]


def load(choice: VaeChoice, *, family_folder: str, dtype: torch.dtype, configs: str | Path) -> Any:
    """An ``AutoencoderKL`` for ``choice`` (not for "own"), on the CPU in ``dtype``."""
    from diffusers import AutoencoderKL

    if choice.kind == "file":
        return AutoencoderKL.from_single_file(
            choice.source,
            config=str(Path(configs) / family_folder),
            subfolder="vae",
            torch_dtype=dtype,
            local_files_only=True,
        )
    import os

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    return AutoencoderKL.from_pretrained(choice.source, torch_dtype=dtype, local_files_only=offline)


def _nonfinite(image: torch.Tensor) -> bool:
    return not bool(torch.isfinite(image).all())


@torch.no_grad()
def decode(pipe: Any, latents: torch.Tensor) -> tuple[np.ndarray, str]:
    """Latents -> ``[n, h, w, 3]`` floats in 0..1, as the pipeline's own decode; the note is "" or
    says the fp16 decode was NaN and was redone in fp32."""
    vae = pipe.vae
    is_xl = getattr(pipe, "text_encoder_2", None) is not None
    image = _decode(pipe, vae, latents, is_xl)
    note = ""
    if _nonfinite(image) and vae.dtype == torch.float16:
        log.warning("the fp16 VAE decode produced NaN/inf; decoding again in fp32")
        vae.to(torch.float32)
        try:
            image = _decode(pipe, vae, latents.to(torch.float32), is_xl, upcast=False)
        finally:
            vae.to(torch.float16)
        note = (
            "The VAE produced NaN values in half precision; the image was decoded again in full precision "
            "(A1111's --no-half-vae does this always)."
        )
    if is_xl and getattr(pipe, "watermark", None) is not None:
        image = pipe.watermark.apply_watermark(image)
    images = pipe.image_processor.postprocess(image, output_type="np", do_denormalize=[True] * image.shape[0])
    return np.asarray(images), note


def _decode(pipe: Any, vae: Any, latents: torch.Tensor, is_xl: bool, upcast: bool = True) -> torch.Tensor:
    """diffusers' decode step of StableDiffusion(XL)Pipeline.__call__, unchanged."""
    if not is_xl:
        return vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    needs_upcasting = upcast and vae.dtype == torch.float16 and vae.config.force_upcast
    if needs_upcasting:
        pipe.upcast_vae()
        latents = latents.to(next(iter(vae.post_quant_conv.parameters())).dtype)
    elif latents.dtype != vae.dtype:
        latents = latents.to(vae.dtype)
    has_mean = getattr(vae.config, "latents_mean", None) is not None
    has_std = getattr(vae.config, "latents_std", None) is not None
    if has_mean and has_std:
        mean = torch.tensor(vae.config.latents_mean).view(1, 4, 1, 1).to(latents.device, latents.dtype)
        std = torch.tensor(vae.config.latents_std).view(1, 4, 1, 1).to(latents.device, latents.dtype)
        latents = latents * std / vae.config.scaling_factor + mean
    else:
        latents = latents / vae.config.scaling_factor
    image = vae.decode(latents.to(next(vae.parameters()).device), return_dict=False)[0]
    if needs_upcasting:
        vae.to(dtype=torch.float16)
    return image
