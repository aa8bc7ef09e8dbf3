"""What ``/sdapi/v1`` answers: the response models and a render's answer in A1111's shape.

A render's answer (txt2img and img2img) is the images as base64 PNGs with their infotexts, the
request's parameters and A1111's ``info`` JSON (seeds, infotexts, the assistant's changes, the
ignored A1111 fields). The error body is :class:`assistant.api.failures.ErrorBody`.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from pydantic import BaseModel, Field

from ..service import Service
from .requests import Img2ImgRequest, _RenderRequest


class Txt2ImgResponse(BaseModel):
    images: list[str] = Field(description="base64 PNGs, each with its infotext in the 'parameters' chunk")
    parameters: dict[str, Any]
    info: str = Field(description="JSON string like A1111's: prompt, seeds, infotexts, assistant changes …")


class LoraEntry(BaseModel):
    name: str
    alias: str
    path: str
    metadata: dict[str, Any]
    algorithm: str = Field(
        default="", description="from the file's keys: lora, locon, tucker, dora, loha, lokr, full (+dora)"
    )
    rank: int | None = Field(default=None, description="the rank most layers have (None: full, whole LoKr)")


class SamplerEntry(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class ModelEntry(BaseModel):
    title: str
    model_name: str
    hash: str | None
    sha256: str | None
    filename: str
    config: str | None = None


def _encode_png(image: Any, infotext: str) -> str:
    from ..infotext import png_info

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info(infotext))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _render_response(service: Service, body: _RenderRequest, rendered: Any) -> dict[str, Any]:
    images = rendered.images
    infotexts = rendered.infotexts
    seeds = rendered.seeds
    request = rendered.request
    info_model = service.engine_info
    advice = rendered.advice
    ignored = body.ignored_fields()
    notes = list(rendered.notes)
    if ignored:
        notes.append("ignored A1111 fields (not supported by LoRA Mixer): " + ", ".join(ignored))
    info: dict[str, Any] = {
        "prompt": request.prompt,
        "all_prompts": [request.prompt] * len(images),
        "negative_prompt": request.negative,
        "all_negative_prompts": [request.negative] * len(images),
        "seed": seeds[0] if seeds else request.seed,
        "all_seeds": list(seeds),
        "subseed": -1,
        "all_subseeds": [-1] * len(images),
        "subseed_strength": 0,
        "width": request.width,
        "height": request.height,
        "sampler_name": request.sampler,
        "scheduler": request.scheduler,
        "cfg_scale": request.cfg,
        "steps": request.steps,
        "batch_size": request.batch_size,
        "sd_model_name": getattr(info_model, "model_name", None),
        "sd_model_hash": getattr(info_model, "model_hash", None),
        "infotexts": infotexts,
        "styles": [],
        "job_timestamp": None,
        "index_of_first_image": 0,
        "saved_paths": list(rendered.paths),
        "assistant": {
            "enabled": body.assistant,
            "original_prompt": body.prompt,
            "original_negative_prompt": body.negative_prompt,
            "changes": [
                {"rule": c.rule, "before": c.before, "after": c.after, "reason": c.reason}
                for c in (advice.changes if advice else ())
            ],
            "warnings": [
                {"rule": w.rule, "message": w.message, "lora": w.lora}
                for w in (advice.warnings if advice else ())
            ],
            "loras": [
                {"name": p.name, "weight": p.te_weight, "unet": p.unet_weight, "hash": p.hash}
                for p in request.loras
            ],
        },
        "ignored_fields": sorted(ignored),
        "notes": notes,
        "denoising_strength": (
            request.denoising_strength if (request.init_image or request.hires) is not None else None
        ),
        "extra_generation_params": _extra_params(request),
    }
    parameters = body.model_dump(mode="json")
    if isinstance(body, Img2ImgRequest) and not body.include_init_images:
        parameters["init_images"] = None  # A1111 leaves the (large) images out unless asked
        parameters["mask"] = None
    return {
        "images": [_encode_png(image, text) for image, text in zip(images, infotexts, strict=False)],
        "parameters": parameters,
        "info": json.dumps(info, ensure_ascii=False, default=str),
    }


def _extra_params(request: Any) -> dict[str, Any]:
    """A1111's ``extra_generation_params`` for the hires fix (``Hires upscale`` …)."""
    hires = request.hires
    if hires is None:
        return {}
    out: dict[str, Any] = {}
    if hires.resize_x or hires.resize_y:
        out["Hires resize"] = f"{hires.resize_x}x{hires.resize_y}"
    else:
        out["Hires upscale"] = hires.scale
    if hires.steps:
        out["Hires steps"] = hires.steps
    out["Hires upscaler"] = hires.upscaler
    return out
