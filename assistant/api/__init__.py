"""AUTOMATIC1111-compatible HTTP API (``/sdapi/v1/*``) served by the same server as the app.

Scripts written for A1111 — for example with the ``webuiapi`` client — work unchanged:

    POST /sdapi/v1/txt2img        {prompt, negative_prompt, seed, steps, cfg_scale, width, height,
                                   sampler_name, scheduler, batch_size, n_iter, assistant,
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

The package, one concern a module: ``requests`` (the bodies and what they mean), ``responses``
(the answers, a render's in A1111's shape), ``failures`` (error answers, the 422 handler),
``route`` (the checked route class: credentials, body bound, JSON), ``jobs`` (the render queue's
cancel flags and progress), ``renders`` (txt2img, img2img, png-info, interrupt, progress),
``info`` (LoRAs, samplers, models, options, VAEs, embeddings, schedulers, scripts), ``docs``
(the offline ``/docs`` and ``/redoc``) and ``factory`` (router, app arguments, app).
"""

from __future__ import annotations

from .docs import DOCS_ASSETS, docs_routes
from .factory import DOC_PATHS, app_kwargs, create_app, create_router
from .failures import ErrorBody, validation_handler, validation_message
from .renders import decode_base64
from .requests import Img2ImgRequest, PngInfoRequest, Txt2ImgRequest
from .responses import LoraEntry, ModelEntry, SamplerEntry, Txt2ImgResponse
from .route import PREFIX, JSONBodyRoute

__all__ = [
    "DOCS_ASSETS",
    "DOC_PATHS",
    "PREFIX",
    "ErrorBody",
    "Img2ImgRequest",
    "JSONBodyRoute",
    "LoraEntry",
    "ModelEntry",
    "PngInfoRequest",
    "SamplerEntry",
    "Txt2ImgRequest",
    "Txt2ImgResponse",
    "app_kwargs",
    "create_app",
    "create_router",
    "decode_base64",
    "docs_routes",
    "validation_handler",
    "validation_message",
]
