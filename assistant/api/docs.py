"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, served offline."""

from __future__ import annotations

from typing import Any

from fastapi import Request

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
