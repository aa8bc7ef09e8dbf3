"""The routes that render or read images: txt2img, img2img, png-info, and the render queue
(``/interrupt``, ``/progress``).

A render is admitted only while fewer than ``max_waiting`` wait (503 ``Busy`` beyond), runs
through :meth:`Service.generate <assistant.service.Service.generate>` (the UI's assistant and
engine lock), honours an ``sd_vae`` override, and is saved in the signed-in caller's folder.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import owners
from ..errors import ImageError, LoraMixerError
from ..service import RenderSettings, Service
from .failures import _error, _unexpected
from .jobs import _ApiJobs
from .requests import Img2ImgRequest, PngInfoRequest, Txt2ImgRequest, _RenderRequest
from .responses import Txt2ImgResponse, _render_response

log = logging.getLogger("assistant.api")


def add_render_routes(
    router: APIRouter,
    service: Service,
    *,
    max_waiting: int,
    responses: dict[int | str, dict[str, Any]],
) -> None:
    """Add txt2img, img2img, png-info, interrupt and progress to ``router`` (in that order).

    At most ``max_waiting`` renders wait for (or hold) the engine at once.
    """
    renders = {"active": 0}  # touched only on the event loop thread: no lock needed
    jobs = _ApiJobs()

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


def _init_image(text: str) -> Any:
    """An A1111 API init image (base64) read as an :class:`~assistant.types.InitImage`."""
    from ..images import init_image

    return init_image(decode_base64(text, what="init_images[0]"), name="API", what="init_images[0]")


def decode_base64(text: str, *, what: str) -> bytes:
    from ..images import decode_base64 as decode

    return decode(text, what=what)
