"""AUTOMATIC1111-compatible HTTP API (``/sdapi/v1/*``) served by the same server as the app.

Scripts written for A1111 — for example with the ``webuiapi`` client — work unchanged:

    POST /sdapi/v1/txt2img        {prompt, negative_prompt, seed, steps, cfg_scale, width, height,
                                   sampler_name, scheduler, batch_size, n_iter, assistant, …}
                                   enable_hr, hr_scale, hr_upscaler, hr_second_pass_steps,
                                   hr_resize_x, hr_resize_y, denoising_strength (hires fix), …}
                                   -> {images: [base64 PNG], parameters: {...}, info: "<json>"}
    POST /sdapi/v1/img2img        {init_images: [base64], denoising_strength, resize_mode, prompt, …
                                   (txt2img's fields)} -> the same shape; a mask (inpainting) is refused
    POST /sdapi/v1/png-info       {image: base64} -> {info, items, parameters} (A1111's PNG Info)
    GET  /sdapi/v1/loras          -> [{name, alias, path, metadata}]
    POST /sdapi/v1/refresh-loras
    GET  /sdapi/v1/samplers       -> [{name, aliases, options}]
    GET  /sdapi/v1/sd-models      -> [{title, model_name, hash, sha256, filename, config}]
    GET  /sdapi/v1/options        -> {sd_model_checkpoint, CLIP_stop_at_last_layers, randn_source, sd_vae, …}
    POST /sdapi/v1/options        <- {sd_model_checkpoint, CLIP_stop_at_last_layers, randn_source, emphasis,
                                      sd_vae}: switch the base model / VAE, set clip skip, RNG, emphasis
    GET  /sdapi/v1/sd-vae         -> [{model_name, filename}] (the VAE folder)
    GET  /sdapi/v1/embeddings     -> {loaded: {name: {step, sd_checkpoint, sd_checkpoint_name, shape,
                                      vectors}}, skipped: {…}}
    POST /sdapi/v1/refresh-embeddings
    GET  /sdapi/v1/schedulers     -> [{name, label, …}] (A1111 1.9+ schedule types)
    POST /sdapi/v1/interrupt      -> stop the API's renders after their current step
    GET  /sdapi/v1/progress       -> A1111's progress shape for the running API render
    GET  /sdapi/v1/scripts        -> {txt2img: [], img2img: []} (no scripts; webuiapi asks)

Every render goes through :class:`assistant.service.Service` — the same assistant and the same
engine lock as the UI. ``assistant: false`` in a txt2img body renders the prompt as written.
Unknown A1111 fields are accepted; the ones with a non-default value are listed in ``info``.
Invalid input is answered with 422 and a readable message (A1111's error body shape:
``{"error", "detail", "errors"}``); other user errors use their ``http_status``.

Sign-in: with ``--api-auth`` (or, without it, the UI's ``--auth`` users) every route asks for
HTTP Basic credentials before it reads the body (A1111's ``--api-auth``; webuiapi's
``set_auth``); failures are slowed down per client (:mod:`assistant.guard`). A render is saved
in the signed-in user's folder (:mod:`assistant.owners`).

Boundary: fastapi/pydantic only — no gradio, no torch. :func:`create_router` builds the routes;
:func:`app_kwargs` gives what ``Blocks.launch(app_kwargs=…)`` needs to serve them.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.middleware import Middleware

from . import owners
from .auth import AuthConfig, FailureThrottle
from .errors import ImageError, LoraMixerError
from .guard import BasicAuthCheck, BasicAuthPaths, LoginThrottle, OutputsGuard, client_address
from .limits import (
    API_BODY_BYTES,
    CFG_DEFAULT,
    DENOISING,
    DENOISING_DEFAULT,
    HIRES_SCALE,
    HIRES_STEPS,
    IMAGE_BYTES,
    PROMPT_CHARS,
    STEPS_DEFAULT,
)
from .service import LIMITS, SIZE_MULTIPLE, RenderSettings, Service, model_label
from .types import DEFAULT_SAMPLER, RESIZE_MODES, HiresFix

log = logging.getLogger(__name__)

PREFIX = "/sdapi/v1"

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


class ErrorBody(BaseModel):
    error: str
    detail: str
    errors: list[dict[str, Any]] | str = ""


def _encode_png(image: Any, infotext: str) -> str:
    from .infotext import png_info

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info(infotext))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _error(err: LoraMixerError) -> JSONResponse:
    status = int(getattr(err, "http_status", 400) or 400)
    return JSONResponse(
        status_code=status, content={"error": type(err).__name__, "detail": str(err), "errors": ""}
    )


def _unexpected(exc: Exception, what: str) -> JSONResponse:
    log.exception("unexpected error in %s", what)
    return JSONResponse(
        status_code=500,
        content={
            "error": "InternalError",
            "detail": f"{what} failed unexpectedly ({type(exc).__name__}); the server log has the details",
            "errors": "",
        },
    )


def _trim_metadata(metadata: Mapping[str, Any], *, limit: int = 300) -> dict[str, Any]:
    """Header metadata without the huge values (tag frequencies, dataset dirs) A1111 clients skip."""
    trimmed: dict[str, Any] = {}
    for key, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        trimmed[key] = value if len(text) <= limit else text[:limit] + "…"
    return trimmed


def validation_message(exc: RequestValidationError) -> str:
    """One readable sentence per problem: ``width: must be a multiple of 8 (got 65)``."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",)) or "body"
        message = str(error.get("msg", "invalid value"))
        message = message.removeprefix("Value error, ")
        received = error.get("input")
        if error.get("type") == "finite_number":
            message = f"must be a finite number, not {received!r}"
        elif received is not None and "got" not in message and not isinstance(received, (dict, list)):
            shown = repr(received)
            message = f"{message} (got {shown if len(shown) <= 60 else shown[:60] + '…'})"
        parts.append(f"{location}: {message}")
    return "; ".join(parts) or "invalid request body"


async def validation_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 in A1111's error shape for /sdapi; FastAPI's default body elsewhere."""
    from fastapi.exception_handlers import request_validation_exception_handler

    if not isinstance(exc, RequestValidationError):  # pragma: no cover - registered for this type only
        raise exc
    if not request.url.path.startswith(PREFIX):
        return await request_validation_exception_handler(request, exc)
    errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    return JSONResponse(
        status_code=422,
        content={"error": "ValidationError", "detail": validation_message(exc), "errors": errors},
    )


class JSONBodyRoute(APIRoute):
    """An APIRoute that checks the caller's password, then answers any undecodable JSON body
    with 422, never 400 or 500.

    With ``api_check`` set (a subclass per router, see :func:`create_router`) the credentials are
    checked before anything else — the body is not even read for a caller without them — and the
    user name is left in ``request.state.api_user``. FastAPI turns only ``JSONDecodeError`` into a
    validation error; invalid UTF-8 and absurdly deep nesting (``RecursionError``) become a bare
    400. Checking the body first gives every broken body the same readable 422 in A1111's shape.
    """

    api_check: BasicAuthCheck | None = None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        api_check = self.api_check

        async def checked(request: Request) -> Response:
            request.state.api_user = None
            if api_check is not None:
                user, refusal = api_check(request.headers.get("authorization"), client_address(request.scope))
                if refusal is not None:
                    status, content, headers = refusal
                    return JSONResponse(status_code=status, content=content, headers=headers)
                request.state.api_user = user
            if request.method in ("POST", "PUT", "PATCH"):
                body = await _bounded_body(request)  # cached by Starlette: the handler reads it again
                if body is None:
                    return JSONResponse(
                        status_code=413,
                        content={
                            "error": "PayloadTooLarge",
                            "detail": f"the request body is over {API_BODY_BYTES // (1024 * 1024)} MiB "
                            f"(an image file may be {IMAGE_BYTES // (1024 * 1024)} MiB); nothing was read "
                            "further or decoded",
                            "errors": "",
                        },
                    )
                if body.strip():
                    try:
                        json.loads(body)
                    except (ValueError, RecursionError) as exc:
                        return JSONResponse(
                            status_code=422,
                            content={
                                "error": "ValidationError",
                                "detail": f"the request body is not valid JSON: {_short(exc)}",
                                "errors": "",
                            },
                        )
            return await handler(request)

        return checked


async def _bounded_body(request: Request, limit: int = API_BODY_BYTES) -> bytes | None:
    """The request body, or None as soon as it is known to be over ``limit`` bytes: a declared
    Content-Length is checked before reading, a chunked body while it streams in (so a huge base64
    image is never held whole in memory, let alone decoded)."""
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Starlette's cache: the handler parses this very body
    return body


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"


class _ApiJob:
    """One txt2img or img2img request: its cancel flag and the sampler step it is at."""

    def __init__(self, what: str = "txt2img") -> None:
        self.what = what
        self.cancel = threading.Event()
        self.sampling_step = 0
        self.sampling_steps = 0

    def step(self, done: int, total: int, what: str = "") -> None:  # a service ProgressFn
        self.sampling_step, self.sampling_steps = done, total


class _ApiJobs:
    """The API's renders in arrival order (the first holds the engine, the rest wait)."""

    def __init__(self) -> None:
        self._jobs: list[_ApiJob] = []
        self._lock = threading.Lock()

    def start(self, what: str = "txt2img") -> _ApiJob:
        job = _ApiJob(what)
        with self._lock:
            self._jobs.append(job)
        return job

    def finish(self, job: _ApiJob) -> None:
        with self._lock:
            self._jobs.remove(job)

    def interrupt(self) -> int:
        with self._lock:
            for job in self._jobs:
                job.cancel.set()
            return len(self._jobs)

    def progress(self) -> dict[str, Any]:
        with self._lock:
            count = len(self._jobs)
            job = self._jobs[0] if self._jobs else None
        step, steps = (job.sampling_step, job.sampling_steps) if job else (0, 0)
        return {
            "progress": round(step / steps, 4) if steps else 0.0,
            "eta_relative": 0.0,
            "state": {
                "skipped": False,
                "interrupted": bool(job and job.cancel.is_set()),
                "job": job.what if job else "",
                "job_count": count,
                "job_no": 0,
                "sampling_step": step,
                "sampling_steps": steps,
            },
            "current_image": None,
            "textinfo": f"{count} API render(s) running or waiting" if count else None,
        }


def create_router(
    service: Service, *, max_waiting: int = 32, api_check: BasicAuthCheck | None = None
) -> APIRouter:
    """The ``/sdapi/v1`` routes bound to one service.

    At most ``max_waiting`` txt2img requests wait for (or hold) the engine at once; more are
    answered 503 with ``Retry-After`` at once instead of piling up threads and memory. With
    ``api_check`` every route needs HTTP Basic credentials (401 without, 429 while slowed down).
    """
    route_class = type("CheckedRoute", (JSONBodyRoute,), {"api_check": api_check})
    router = APIRouter(prefix=PREFIX, tags=["A1111-compatible API"], route_class=route_class)
    renders = {"active": 0}  # touched only on the event loop thread: no lock needed
    jobs = _ApiJobs()
    responses: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorBody},
        422: {"model": ErrorBody},
        500: {"model": ErrorBody},
        503: {"model": ErrorBody},
    }

    async def render(
        body: _RenderRequest, positive: str, settings: RenderSettings, what: str, request: Request
    ) -> Any:
        """One render for txt2img or img2img: bounded, cancellable, the VAE override honoured, saved
        in the signed-in caller's folder."""
        if renders["active"] >= max_waiting:
            return JSONResponse(
                status_code=503,
                headers={"Retry-After": "10"},
                content={
                    "error": "Busy",
                    "detail": f"{renders['active']} renders are already waiting; try again in a few seconds",
                    "errors": "",
                },
            )
        renders["active"] += 1
        job = jobs.start(what)
        vae = body.overrides().get("sd_vae")
        restore = (service.settings.vae or "Automatic") if vae is not None else ""
        requester = owners.Requester(user=request.state.api_user, channel="api")
        try:
            if vae is not None:  # A1111 switches, renders, and (by default) switches back
                await asyncio.to_thread(service.set_options, vae=str(vae))
            with owners.acting_for(requester):  # the render is saved in this user's folder
                rendered = await asyncio.to_thread(
                    service.generate,
                    positive,
                    body.negative_prompt,
                    settings,
                    use_assistant=body.assistant,
                    symptoms=tuple(body.symptoms),
                    progress=job.step,
                    cancel=job.cancel,
                )
        except LoraMixerError as err:
            return _error(err)
        except Exception as exc:
            return _unexpected(exc, what)
        finally:
            if vae is not None and (body.model_extra or {}).get("override_settings_restore_afterwards", True):
                try:
                    await asyncio.to_thread(service.set_options, vae=restore)
                except LoraMixerError as err:
                    log.warning("could not restore the VAE %s: %s", restore, err)
            renders["active"] -= 1
            jobs.finish(job)
        return _render_response(service, body, rendered)

    @router.post("/txt2img", response_model=Txt2ImgResponse, responses=responses)
    async def txt2img(body: Txt2ImgRequest, request: Request) -> Any:
        """Render like A1111's txt2img (``enable_hr``: with its hires fix); the LoRA assistant runs
        first unless ``assistant`` is false."""
        try:
            settings = body.render_settings()
        except LoraMixerError as err:
            return _error(err)
        return await render(body, body.prompt, settings, "txt2img", request)

    @router.post("/img2img", response_model=Txt2ImgResponse, responses=responses)
    async def img2img(body: Img2ImgRequest, request: Request) -> Any:
        """Render like A1111's img2img from ``init_images[0]`` (base64) at ``denoising_strength``,
        resized by ``resize_mode``; the LoRA assistant runs first unless ``assistant`` is false.
        Inpainting (``mask``) is refused."""
        if body.mask is not None or (body.model_extra or {}).get("latent_mask") is not None:
            return _error(
                ImageError(
                    "inpainting is not supported: this request has a mask. LoRA Mixer renders img2img over "
                    "the whole image; send it without 'mask' (and 'latent_mask')"
                )
            )
        try:
            init = await asyncio.to_thread(_init_image, body.init_images[0])
            settings = dataclasses.replace(body.render_settings(), init_image=init)
        except LoraMixerError as err:
            return _error(err)
        return await render(body, body.prompt, settings, "img2img", request)

    @router.post("/png-info", responses=responses)
    async def png_info(body: PngInfoRequest) -> Any:
        """A1111's PNG Info: ``{"image": base64}`` -> ``{"info": the infotext ("" when none), "items":
        the image's other info, "parameters": the infotext as A1111's parser reads it}``."""
        try:
            data = await asyncio.to_thread(decode_base64, body.image, what="image")
            return await asyncio.to_thread(service.png_info, data)
        except LoraMixerError as err:
            return _error(err)
        except Exception as exc:
            return _unexpected(exc, "png-info")

    @router.post("/interrupt")
    async def interrupt() -> dict[str, Any]:
        """Stop the API's renders after their current step (A1111's Interrupt button).

        Only renders started through this API are stopped — never another user's UI session.
        Each stopped request answers 499 ``Cancelled``.
        """
        return {"interrupted": jobs.interrupt()}

    @router.get("/progress")
    async def progress() -> dict[str, Any]:
        """A1111's progress shape for the oldest running API render (0 when idle)."""
        return jobs.progress()

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

    return router


def _init_image(text: str) -> Any:
    """An A1111 API init image (base64) read as an :class:`~assistant.types.InitImage`."""
    from .images import init_image

    return init_image(decode_base64(text, what="init_images[0]"), name="API", what="init_images[0]")


def decode_base64(text: str, *, what: str) -> bytes:
    from .images import decode_base64 as decode

    return decode(text, what=what)


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


#: Where the API docs' scripts and styles are served from (this server, never a CDN).
DOCS_ASSETS = "/docs-assets"


def docs_routes() -> list[Any]:
    """``/docs`` (Swagger UI) and ``/redoc`` that work offline.

    FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on an offline server or behind a
    firewall they stay blank. The ``fastapi-offline`` package (MIT) ships those files; they are
    served from :data:`DOCS_ASSETS` on this server. Without the package the pages say where the
    schema is instead of staying blank.
    """
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from starlette.routing import Mount, Route

    try:
        import fastapi_offline
    except ImportError:  # pragma: no cover - the package is in requirements.txt
        fastapi_offline = None

    async def without_assets(_request: Request) -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><title>LoRA Mixer API</title><h1>LoRA Mixer API</h1>"
            "<p>The interactive docs need the <code>fastapi-offline</code> package "
            "(<code>pip install fastapi-offline</code>). The schema is at "
            '<a href="/openapi.json">/openapi.json</a>; the app\'s own API is listed at '
            '<a href="/?view=api">/?view=api</a>.</p>'
        )

    if fastapi_offline is None:
        return [Route("/docs", without_assets), Route("/redoc", without_assets)]
    from pathlib import Path

    from fastapi.staticfiles import StaticFiles

    static = Path(fastapi_offline.__file__).parent / "static"

    async def swagger(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="LoRA Mixer API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    async def redoc(_request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="LoRA Mixer API",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    return [
        Route("/docs", swagger, include_in_schema=False),
        Route("/redoc", redoc, include_in_schema=False),
        Mount(DOCS_ASSETS, StaticFiles(directory=str(static)), name="docs-assets"),
    ]


#: The API's schema and documentation pages: behind the API's passwords when it has some.
DOC_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


def app_kwargs(
    service: Service,
    *,
    max_waiting: int = 32,
    auth: AuthConfig | None = None,
    throttle: FailureThrottle | None = None,
) -> dict[str, Any]:
    """FastAPI constructor arguments that add the API and the guards to a Gradio server.

    ``Blocks.launch(app_kwargs=app_kwargs(service))`` creates Gradio's FastAPI app with these
    routes registered *before* it starts listening, so ``python app.py`` serves the UI and the
    API on one port, and the OpenAPI schema (``/openapi.json``, docs at ``/docs`` and ``/redoc``,
    both served offline) lists them.
    The middlewares (:mod:`assistant.guard`) refuse direct fetches of the outputs folder, slow
    down failed sign-ins (UI and API share ``throttle``) and, with API passwords, guard the docs.
    """
    throttle = throttle or FailureThrottle()
    api_check = BasicAuthCheck(auth.api, throttle) if auth is not None and auth.api else None
    router = create_router(service, max_waiting=max_waiting, api_check=api_check)
    middleware = [
        Middleware(OutputsGuard, outputs_dir=service.outputs_dir),
        Middleware(LoginThrottle, throttle=throttle),
    ]
    if api_check is not None:
        middleware.append(Middleware(BasicAuthPaths, check=api_check, paths=DOC_PATHS))
    return {
        "routes": [*router.routes, *docs_routes()],
        "middleware": middleware,
        "exception_handlers": {RequestValidationError: validation_handler},
        "docs_url": None,
        "redoc_url": None,
        "title": "LoRA Mixer",
        "description": "AUTOMATIC1111-compatible API (/sdapi/v1) of LoRA Mixer",
    }


def create_app(service: Service, *, max_waiting: int = 32, auth: AuthConfig | None = None) -> FastAPI:
    """A standalone FastAPI app with only the API (for embedding or tests)."""
    return FastAPI(**app_kwargs(service, max_waiting=max_waiting, auth=auth))
