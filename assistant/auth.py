"""Sign-in: user lists, constant-time checks, a per-client slow-down of failed attempts.

Pure Python (hashlib/hmac only). ``app.py`` turns ``--auth``/``--auth-file``/``--api-auth`` (and
``LORA_MIXER_AUTH``, ``LORA_MIXER_AUTH_FILE``, ``LORA_MIXER_API_AUTH``) into :class:`Credentials`;
:mod:`assistant.guard` and :mod:`assistant.api` use them with a :class:`FailureThrottle`.

- The formats are A1111's: ``user:password`` pairs separated by commas; a file may also put
  one pair per line (``#`` starts a comment line). A password may contain ``:`` (the first one
  separates), not ``,``.
- Only SHA-256 digests of the passwords are kept in memory. :meth:`Credentials.check` compares
  digests with :func:`hmac.compare_digest` against *every* user, so neither a wrong user name
  nor the length or prefix of a wrong password answers faster.
- Nothing here puts a password in a message: a malformed entry is named by its position.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PresetError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class Credentials:
    """User names with the SHA-256 digests of their passwords (never the passwords)."""

    users: tuple[tuple[str, bytes], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.users)

    def __repr__(self) -> str:  # a log line or a traceback must never show a digest either
        return f"Credentials({len(self.users)} user{'s' if len(self.users) != 1 else ''})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.users)

    def check(self, user: str, password: str) -> bool:
        """True when ``user`` exists with ``password``; the time taken depends on neither."""
        user_digest, password_digest = _digest(user or ""), _digest(password or "")
        found = False
        for name, stored in self.users:
            same_user = hmac.compare_digest(_digest(name), user_digest)
            same_password = hmac.compare_digest(stored, password_digest)
            found |= same_user & same_password
        return found

    def __call__(self, user: str, password: str) -> bool:  # Gradio's ``auth=`` callable
        return self.check(user, password)

    def merged(self, other: Credentials) -> Credentials:
        """Both lists; a user named twice keeps the later password."""
        table = dict(self.users)
        table.update(other.users)
        return Credentials(tuple(table.items()))

    @classmethod
    def parse(cls, text: str, *, source: str = "--auth") -> Credentials:
        """``user:pass[,user2:pass2]`` (newlines also separate; ``#`` lines are comments)."""
        users: dict[str, bytes] = {}
        position = 0
        for line in text.splitlines():
            if line.strip().startswith("#"):
                continue
            for raw in line.split(","):
                entry = raw.strip()
                if not entry:
                    continue
                position += 1
                name, sep, password = entry.partition(":")
                name = name.strip()
                if not sep:
                    raise PresetError(f"{source}: entry {position} has no ':'; write user:password")
                if not name:
                    raise PresetError(f"{source}: entry {position} has no user name before ':'")
                if not password:
                    raise PresetError(f"{source}: entry {position} (user '{name}') has an empty password")
                users[name] = _digest(password)
        if not users and text.strip():
            raise PresetError(f"{source}: no user:password entry found")
        return cls(tuple(users.items()))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, source: str = "--auth-file") -> Credentials:
        """The entries of a file (see :meth:`parse`); an unreadable or empty file is an error."""
        file = Path(path).expanduser()
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise PresetError(f"{source} {file}: cannot be read ({type(err).__name__})") from None
        credentials = cls.parse(text, source=f"{source} {file}")
        if not credentials:
            raise PresetError(f"{source} {file}: the file has no user:password entry")
        return credentials


def file_is_private(path: str | os.PathLike[str]) -> bool:
    """False when others than the owner may read the file (it holds passwords)."""
    try:
        mode = Path(path).expanduser().stat().st_mode
    except OSError:
        return True
    return not mode & (stat.S_IRGRP | stat.S_IROTH)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Who may use the UI (``ui``) and the ``/sdapi/v1`` API (``api``); empty = open."""

    ui: Credentials = field(default_factory=Credentials)
    api: Credentials = field(default_factory=Credentials)
    #: Where ``api`` came from: "--api-auth", "the UI's users" (no --api-auth) or "" (open).
    api_source: str = ""

    @property
    def any(self) -> bool:
        return bool(self.ui or self.api)


def load_auth(
    *,
    auth: str | None = None,
    auth_file: str | None = None,
    api_auth: str | None = None,
    environ: dict[str, str] | None = None,
) -> AuthConfig:
    """Flags over ``LORA_MIXER_AUTH`` / ``LORA_MIXER_AUTH_FILE`` / ``LORA_MIXER_API_AUTH``.

    ``--auth`` and ``--auth-file`` together add up. Without ``--api-auth`` the API accepts the
    UI's users (HTTP Basic), so turning sign-in on never leaves ``/sdapi/v1`` open beside it.
    """
    env = os.environ if environ is None else environ
    auth = auth if auth is not None else env.get("LORA_MIXER_AUTH") or None
    auth_file = auth_file if auth_file is not None else env.get("LORA_MIXER_AUTH_FILE") or None
    api_auth = api_auth if api_auth is not None else env.get("LORA_MIXER_API_AUTH") or None
    ui = Credentials()
    if auth:
        ui = ui.merged(Credentials.parse(auth, source="--auth"))
    if auth_file:
        ui = ui.merged(Credentials.from_file(auth_file))
    if api_auth:
        api = Credentials.parse(api_auth, source="--api-auth")
        return AuthConfig(ui=ui, api=api, api_source="--api-auth")
    if ui:
        return AuthConfig(ui=ui, api=ui, api_source="the UI's users")
    return AuthConfig()


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = (host or "").strip().lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def exposure_warnings(*, host: str, share: bool, auth: AuthConfig, space: bool) -> list[str]:
    """Loud start-up warnings: who can reach this server without signing in."""
    reachable = []
    if not is_loopback(host):
        reachable.append(f"every machine that can reach {host}")
    if share:
        reachable.append("anyone with the public gradio.live link (--share)")
    if not reachable:
        return []
    who = " and ".join(reachable)
    warnings: list[str] = []
    if not auth.ui:
        if space:
            warnings.append(
                f"this Space has no sign-in: {who} can render and see the base model; histories are "
                "private per browser session and model switching is off (set LORA_MIXER_AUTH to require "
                "a sign-in)"
            )
        else:
            warnings.append(
                f"NO SIGN-IN: {who} can use this server — render on your hardware, switch the base model "
                "and read the library. Add --auth user:password (or --auth-file) to require a sign-in."
            )
    if not auth.api:
        warnings.append(
            f"the A1111 API (/sdapi/v1) has no password: {who} can call it. Add --api-auth user:password."
        )
    return warnings


class FailureThrottle:
    """Slows down repeated failed sign-ins per client (an IP address).

    The first ``free`` failures cost nothing; each further one makes the client wait
    ``base * 2**k`` seconds (capped at ``cap``) before its next attempt is even checked — a
    correct password during the wait is refused too, so guessing gains nothing from speed. A
    success clears the client; failures are forgotten after ``forget_after`` seconds of quiet.
    At most ``max_clients`` are remembered (the least recently seen go first).
    """

    def __init__(
        self,
        *,
        free: int = 3,
        base: float = 1.0,
        cap: float = 60.0,
        forget_after: float = 900.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.base, self.cap = free, base, cap
        self.forget_after, self.max_clients = forget_after, max_clients
        self._clock = clock
        self._lock = threading.Lock()
        # client -> (failures, time of the last failure, blocked until)
        self._clients: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Seconds ``client`` must still wait (0: it may try now)."""
        now = self._clock()
        with self._lock:
            entry = self._clients.get(client)
            if entry is None:
                return 0.0
            _failures, last, until = entry
            if now - last > self.forget_after:
                del self._clients[client]
                return 0.0
            return max(0.0, until - now)

    def failed(self, client: str) -> float:
        """Record a failure; returns the wait it imposes (0 while failures are still free)."""
        now = self._clock()
        with self._lock:
            failures, last, _until = self._clients.pop(client, (0, now, now))
            if now - last > self.forget_after:
                failures = 0
            failures += 1
            extra = failures - self.free
            delay = 0.0 if extra <= 0 else min(self.cap, self.base * 2 ** (extra - 1))
            self._clients[client] = (failures, now, now + delay)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
            return delay

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def clients(self) -> Iterable[str]:
        with self._lock:
            return list(self._clients)
