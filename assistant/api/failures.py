"""Every error answer of ``/sdapi/v1`` in A1111's shape: ``{"error", "detail", "errors"}``.

A user error (:class:`~assistant.errors.LoraMixerError`) answers its ``http_status``; an
unexpected one answers 500 without a traceback (the log has it); an invalid body answers 422 with
one readable sentence per problem.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..errors import LoraMixerError
from .route import PREFIX

log = logging.getLogger("assistant.api")


class ErrorBody(BaseModel):
    error: str
    detail: str
    errors: list[dict[str, Any]] | str = ""


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
