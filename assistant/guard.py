"""HTTP guards around the Gradio/FastAPI app: sign-in slow-down, API passwords, output files.

Plain ASGI middlewares (Starlette only; no gradio, no torch), added through
``Blocks.launch(app_kwargs={"middleware": …})`` by :func:`assistant.api.app_kwargs`:

- :class:`LoginThrottle` counts failed ``POST …/login`` answers (Gradio's sign-in form and
  ``gradio_client``'s ``auth=``) per client address and answers 429 with ``Retry-After``
  while a client must wait (:class:`~assistant.auth.FailureThrottle`).
- :class:`BasicAuthPaths` asks for HTTP Basic credentials on the API's documentation
  (``/openapi.json``, ``/docs``) when the API has passwords; the ``/sdapi/v1`` routes
  themselves check them in a router dependency (:func:`assistant.api.create_router`).
- :class:`OutputsGuard` refuses every request of Gradio's file routes for a path inside the
  outputs folder. Gradio never needs them: an image a handler returns is copied into Gradio's
  cache under a secret-seeded content hash, and that copy is what pages load. So a visitor who
  guesses ``outputs/2026-12-01/00012-42.png`` (or a grid's fixed name) gets 404, whatever the
  history mode.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .auth import Credentials, FailureThrottle

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_REALM = "LoRA Mixer API"


def client_address(scope: Scope) -> str:
    """The client's address as the server saw it (uvicorn applies trusted X-Forwarded-For)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def route_path(scope: Scope) -> str:
    """The path routes are matched against (Starlette's rule: the root path stripped)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", "") or "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path


Refusal = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, headers


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    payload = json.dumps(body).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def too_many(wait: float) -> Refusal:
    seconds = max(1, round(wait + 0.499))
    return (
        429,
        {
            "error": "TooManyAttempts",
            "detail": f"too many failed sign-ins from your address; try again in {seconds} s",
            "errors": "",
        },
        {"Retry-After": str(seconds)},
    )


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic …`` header; None when absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class BasicAuthCheck:
    """HTTP Basic against :class:`Credentials`, with the failure slow-down. Returns the user."""

    def __init__(self, credentials: Credentials, throttle: FailureThrottle) -> None:
        self.credentials = credentials
        self.throttle = throttle

    def __call__(self, authorization: str | None, client: str) -> tuple[str | None, Refusal | None]:
        """(user, None) when allowed, else (None, (status, body, headers)) to answer with."""
        wait = self.throttle.retry_after(client)
        if wait > 0:
            return None, too_many(wait)
        pair = basic_credentials(authorization)
        if pair is not None and self.credentials.check(*pair):
            self.throttle.succeeded(client)
            return pair[0], None
        if pair is not None:  # a wrong password counts; a missing header is a client's first try
            self.throttle.failed(client)
            log.warning("API sign-in failed from %s", client)  # never the user name or password
        return None, (
            401,
            {
                "error": "Unauthorized",
                "detail": (
                    "this API needs a user name and password (HTTP Basic); "
                    "with webuiapi: api.set_auth(user, password)"
                ),
                "errors": "",
            },
            {"WWW-Authenticate": f'Basic realm="{API_REALM}", charset="UTF-8"'},
        )


class LoginThrottle:
    """Refuse sign-in attempts (429) from a client that failed too often; count the outcomes."""

    def __init__(self, app: ASGIApp, throttle: FailureThrottle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not _is_login(route_path(scope)):
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        wait = self.throttle.retry_after(client)
        if wait > 0:
            await send_json(send, *too_many(wait))
            return
        status: dict[str, int] = {}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        code = status.get("code", 0)
        if code == 200:
            self.throttle.succeeded(client)
        elif code in (400, 401, 403):
            self.throttle.failed(client)
            log.warning("sign-in failed from %s", client)


_LOGIN = re.compile(r"(^|/)login/?$")


def _is_login(path: str) -> bool:
    return bool(_LOGIN.search(path))


class BasicAuthPaths:
    """HTTP Basic on a few exact paths (the API's schema and docs when the API has passwords)."""

    def __init__(self, app: ASGIApp, check: BasicAuthCheck, paths: tuple[str, ...]) -> None:
        self.app = app
        self.check = check
        self.paths = frozenset(p.rstrip("/") or "/" for p in paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (route_path(scope).rstrip("/") or "/") not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        _user, refusal = self.check(headers.get("authorization"), client_address(scope))
        if refusal is not None:
            await send_json(send, *refusal)
            return
        await self.app(scope, receive, send)


_FILE_ROUTE = re.compile(r"^/gradio_api/file(?:=|/)(?P<path>.*)$", re.DOTALL)


class OutputsGuard:
    """404 for any request of Gradio's file routes that names a file in the outputs folder."""

    def __init__(self, app: ASGIApp, outputs_dir: str | os.PathLike[str]) -> None:
        self.app = app
        folder = Path(outputs_dir).expanduser()
        self.roots = {os.path.abspath(folder).lower(), str(folder.resolve()).lower()}

    def names_outputs(self, raw: str) -> bool:
        """True when ``raw`` (the route's path parameter) points inside the outputs folder,
        read every way Gradio could read it (as is, URL-decoded again, symlinks resolved)."""
        for text in {raw, unquote(raw)}:
            if not text or "://" in text:
                continue
            candidates = {os.path.abspath(text)}
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                candidates.add(str(Path(text).resolve()))
            for candidate in candidates:
                lowered = candidate.lower()
                if any(lowered == root or lowered.startswith(root.rstrip("/") + "/") for root in self.roots):
                    return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _FILE_ROUTE.match(route_path(scope))
            if match is not None and self.names_outputs(match.group("path")):
                await send_json(send, 404, {"detail": "Not Found"})
                return
        await self.app(scope, receive, send)
