"""The ``/sdapi/v1`` router and the app around it: what ``Blocks.launch(app_kwargs=…)`` needs.

:func:`create_router` puts the render routes (:mod:`.renders`) and the information routes
(:mod:`.info`) on one router with the checked route class (:mod:`.route`); :func:`app_kwargs` adds
the docs pages (:mod:`.docs`), the guards (:mod:`assistant.guard`) and the 422 handler
(:mod:`.failures`); :func:`create_app` is a standalone app with only the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.middleware import Middleware

from ..auth import AuthConfig, FailureThrottle
from ..guard import BasicAuthCheck, BasicAuthPaths, LoginThrottle, OutputsGuard
from ..service import Service
from .docs import docs_routes
from .failures import ErrorBody, validation_handler
from .info import add_info_routes
from .renders import add_render_routes
from .route import PREFIX, JSONBodyRoute


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
    responses: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorBody},
        422: {"model": ErrorBody},
        500: {"model": ErrorBody},
        503: {"model": ErrorBody},
    }
    add_render_routes(router, service, max_waiting=max_waiting, responses=responses)
    add_info_routes(router, service, responses=responses)
    return router


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
