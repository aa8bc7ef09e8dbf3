"""The routes that describe or set up the server: LoRAs, samplers, models, options, VAEs,
embeddings, schedulers and scripts (A1111's shapes; ``POST /options`` switches model or VAE).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..errors import LoraMixerError
from ..service import Service, model_label
from .failures import _error, _unexpected
from .requests import _OVERRIDES
from .responses import LoraEntry, ModelEntry, SamplerEntry


def add_info_routes(
    router: APIRouter, service: Service, *, responses: dict[int | str, dict[str, Any]]
) -> None:
    """Add the information and settings routes to ``router`` (``/loras`` … ``/scripts``, in order)."""

    @router.get("/loras", response_model=list[LoraEntry])
    async def loras() -> Any:
        """The LoRA library in A1111's shape (``alias`` is ss_output_name or the name)."""
        try:
            infos = await asyncio.to_thread(service.loras)
        except LoraMixerError as err:
            return _error(err)
        return [
            LoraEntry(
                name=info.name,
                alias=(info.aliases[0] if info.aliases else info.name),
                path=info.path,
                metadata=_trim_metadata(info.metadata),
                algorithm=info.algorithm,
                rank=info.rank,
            )
            for info in infos
            if info.status == "ok"
        ]

    @router.post("/refresh-loras")
    async def refresh_loras() -> Any:
        """Rescan the LoRA folders (A1111 answers ``null``; so do we, with the count in a header)."""
        try:
            count = await asyncio.to_thread(service.refresh_loras)
        except LoraMixerError as err:
            return _error(err)
        return JSONResponse(content=None, headers={"X-Lora-Count": str(count)})

    @router.get("/samplers", response_model=list[SamplerEntry])
    async def samplers() -> Any:
        """Sampler names accepted by ``sampler_name``."""
        try:
            names = await asyncio.to_thread(service.samplers)
        except LoraMixerError as err:
            return _error(err)
        return [SamplerEntry(name=name, aliases=[], options={}) for name in names]

    def current_title() -> tuple[str, str]:
        info = service.engine_info
        digest = str(getattr(info, "model_hash", "") or "")
        label = model_label(service.current_model())
        return (f"{label} [{digest}]" if digest else label), digest

    @router.get("/sd-models", response_model=list[ModelEntry])
    async def sd_models() -> Any:
        """The base models one can switch to (``POST /options`` with ``sd_model_checkpoint``)."""
        try:
            await asyncio.to_thread(service.wait_ready)
        except LoraMixerError as err:
            return _error(err)
        current = service.current_model()
        title, digest = current_title()
        entries = []
        for model in service.models():
            label = model_label(model)
            loaded = model == current
            entries.append(
                ModelEntry(
                    title=title if loaded else label,
                    model_name=label,
                    hash=(digest or None) if loaded else None,
                    sha256=None,
                    filename=model,
                )
            )
        return entries

    @router.get("/options")
    async def options() -> Any:
        """A minimal subset of A1111's options."""
        title, digest = current_title()
        return {
            "sd_model_checkpoint": title,
            "sd_checkpoint_hash": digest,
            "samples_format": "png",
            "outdir_samples": str(service.outputs_dir),
            "enable_pnginfo": True,
            "lora_mixer_ready": service.ready,
            "lora_mixer_tiny_model": service.uses_tiny_model,
            **{k: v for k, v in service.options().items() if k in _OVERRIDES},
            "lora_mixer_engine": getattr(service.engine_info, "backend", "") or "in-process",
        }

    @router.post("/options", responses=responses)
    async def set_options(body: dict[str, Any]) -> Any:
        """A1111's way to switch checkpoints: ``{"sd_model_checkpoint": "<title or name>"}``, and
        to set ``CLIP_stop_at_last_layers``, ``randn_source``, ``emphasis`` and ``sd_vae``.

        Renders wait while a new model or VAE loads; when it cannot load, the running one stays
        (4xx with the reason). Other A1111 options are not settable here and are listed as ignored.
        """
        ignored = sorted(k for k in body if k != "sd_model_checkpoint" and k not in _OVERRIDES)
        option_values = {k: body[k] for k in _OVERRIDES if k in body}
        wanted = body.get("sd_model_checkpoint")
        if wanted is not None:
            if not isinstance(wanted, str):
                return JSONResponse(
                    status_code=422,
                    content={
                        "error": "ValidationError",
                        "detail": "sd_model_checkpoint must be a string",
                        "errors": "",
                    },
                )
            try:
                await asyncio.to_thread(service.switch_model, wanted)
            except LoraMixerError as err:
                return _error(err)
            except Exception as exc:
                return _unexpected(exc, "switching the model")
        if option_values:
            try:
                await asyncio.to_thread(
                    service.set_options,
                    clip_skip=option_values.get("CLIP_stop_at_last_layers"),
                    rng=option_values.get("randn_source"),
                    emphasis=option_values.get("emphasis"),
                    vae=option_values.get("sd_vae"),
                )
            except LoraMixerError as err:
                return _error(err)
            except Exception as exc:
                return _unexpected(exc, "setting options")
        current = {k: v for k, v in service.options().items() if k in _OVERRIDES}
        return {"sd_model_checkpoint": current_title()[0], **current, "ignored": ignored}

    @router.get("/sd-vae")
    async def sd_vae() -> Any:
        """The VAE files of the VAE folder, as A1111 lists them (``model_name``, ``filename``)."""
        return service.vae_files()

    @router.get("/embeddings")
    async def embeddings() -> Any:
        """Textual inversions in A1111's shape: ``{"loaded": {name: {step, sd_checkpoint,
        sd_checkpoint_name, shape, vectors}}, "skipped": {…}}`` (skipped: made for another base)."""
        return service.embeddings()

    @router.post("/refresh-embeddings")
    async def refresh_embeddings() -> Any:
        """Scan the embeddings folders again (new files are usable at once)."""
        try:
            await asyncio.to_thread(service.refresh_embeddings)
        except LoraMixerError as err:
            return _error(err)
        return service.embeddings()

    @router.get("/schedulers")
    async def schedulers() -> Any:
        """A1111 1.9+ schedule types (``scheduler`` in txt2img)."""
        return [
            {
                "name": name.lower(),
                "label": name,
                "aliases": None,
                "default_rho": -1,
                "need_inner_model": False,
            }
            for name in ("Automatic", "Karras", "Exponential")
        ]

    @router.get("/scripts")
    async def scripts() -> Any:
        """No A1111 scripts or extensions are available."""
        return {"txt2img": [], "img2img": []}


def _trim_metadata(metadata: Mapping[str, Any], *, limit: int = 300) -> dict[str, Any]:
    """Header metadata without the huge values (tag frequencies, dataset dirs) A1111 clients skip."""
    trimmed: dict[str, Any] = {}
    for key, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        trimmed[key] = value if len(text) <= limit else text[:limit] + "…"
    return trimmed
