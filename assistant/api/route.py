"""The route class of every ``/sdapi/v1`` route: credentials first, then a bounded, valid JSON body.

A caller without credentials (when the API has passwords) is refused before the body is read; a
body over :data:`~assistant.limits.API_BODY_BYTES` is refused while it streams in; a body that is
not JSON is a 422 in A1111's error shape, never a 400 or 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from ..guard import BasicAuthCheck, client_address
from ..limits import API_BODY_BYTES, IMAGE_BYTES

PREFIX = "/sdapi/v1"


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
