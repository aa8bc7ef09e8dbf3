"""Whose images these are: the requester of the running action, and where their files go.

Pure Python. A front end binds the :class:`Requester` of each action (the signed-in user, the
browser session, the API caller) with :func:`acting_for` for the duration of the call; the
service reads it with :func:`current` when it saves images and lists the history, and a
:class:`HistoryPolicy` turns it into a folder under the outputs folder:

====================  ==============================  ===================================
requester             saved under ``outputs/``         History shows (private / shared)
====================  ==============================  ===================================
signed-in user        ``users/<name>-<hash8>/<day>/``  their own files / every file
browser session       ``sessions/<hmac>/<day>/``       its own files / every file
API caller, no user   ``api/<day>/``                   (no History) / every file
local (CLI, tests)    ``<day>/``                       every file
====================  ==============================  ===================================

With a shared (server-wide) history only signed-in users get their own folder; everything else
is saved in ``outputs/<day>/`` as before. A session folder's name is an HMAC of the session id
with a per-process secret, so knowing a folder does not reveal a session and a session id sent
by a client cannot name a folder of its choosing. The requester travels as a context variable
— like a request id in a log context — because Gradio runs each handler in a worker thread and
the owner must reach the code that saves the file without every call in between passing it on.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

CHANNELS = ("local", "ui", "api")
HISTORY_MODES = ("auto", "private", "shared")


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked: ``user`` (signed in, UI or API), else ``session`` (one browser page), via ``channel``."""

    user: str | None = None
    session: str | None = None
    channel: str = "local"


LOCAL = Requester()
_current: ContextVar[Requester] = ContextVar("lora_mixer_requester", default=LOCAL)


def current() -> Requester:
    """The requester bound by the front end around this call (:data:`LOCAL` when none is)."""
    return _current.get()


@contextmanager
def acting_for(requester: Requester) -> Iterator[Requester]:
    """Bind ``requester`` for the duration of the ``with`` block (this thread/task and the
    threads it starts with ``asyncio.to_thread``, which copy the context)."""
    token = _current.set(requester)
    try:
        yield requester
    finally:
        _current.reset(token)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def user_folder(user: str) -> str:
    """``users/<sanitised name>-<8 hex of sha256(name)>``: readable, never a path trick, and two
    names that sanitise alike ("a.b", "a_b") or differ in case still get two folders."""
    readable = _SAFE_NAME.sub("_", user).strip("_")[:48] or "user"
    digest = hashlib.sha256(user.encode("utf-8")).hexdigest()[:8]
    return f"users/{readable}-{digest}"


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """Private (each user/session its own files) or shared (one server-wide gallery)."""

    private: bool = False
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False, compare=False)

    def folder(self, requester: Requester) -> str:
        """The requester's folder under the outputs folder ("" = the outputs folder itself)."""
        if requester.user:
            return user_folder(requester.user)
        if not self.private or requester.channel == "local":
            return ""
        if requester.session:
            mac = hmac.new(self.secret, requester.session.encode("utf-8"), hashlib.sha256)
            return f"sessions/{mac.hexdigest()[:32]}"
        return requester.channel if requester.channel in CHANNELS else "anonymous"

    def sees_all(self, requester: Requester) -> bool:
        """Whether the History lists every file (shared gallery, or the server's own process)."""
        return not self.private or requester.channel == "local"


def history_is_private(mode: str, *, signed_in: bool, space: bool, public: bool) -> bool:
    """``--history``: "private" or "shared" as said; "auto" is private whenever more than one
    person can reach the server (sign-in on, a Hugging Face Space, a non-loopback address or
    ``--share``) and shared for the desktop case (loopback, no sign-in: one person)."""
    mode = (mode or "auto").strip().lower()
    if mode not in HISTORY_MODES:
        from .errors import PresetError

        raise PresetError(f"history mode '{mode}' is not known; use one of: {', '.join(HISTORY_MODES)}")
    if mode != "auto":
        return mode == "private"
    return signed_in or space or public
