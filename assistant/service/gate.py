"""The engine gate: how many renders run at once, and in what order the others wait.

:class:`FairLock` serves waiting renders in arrival order (a plain Lock is not fair), tells a
waiting UI how many renders are ahead, ends a wait on cancel, and holds every slot for a model or
VAE change. ``ProgressFn`` and ``WaitFn`` are the callbacks a render reports through.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import Cancelled

#: progress(done, total, description) — ``done``/``total`` count sampler steps over the action.
ProgressFn = Callable[[int, int, str], None]
#: on_wait(ahead) — while a render waits for the engine: how many renders are ahead of it.
WaitFn = Callable[[int], None]


class FairLock:
    """The engine gate: up to ``capacity`` renders at once (1 in-process, one per Ray replica), the
    waiters served in arrival order (a plain Lock is not fair), a wait that a cancel flag can end,
    and the number of renders ahead for the waiting UI. :meth:`exclusive` (a model or VAE change;
    also ``with lock:``) waits its turn, then for every running render to end, and holds all slots."""

    def __init__(self, capacity: int = 1) -> None:
        self.capacity = max(1, int(capacity))
        self._cond = threading.Condition()
        self._waiting: deque[int] = deque()
        self._next = 0
        self._held = 0

    def resize(self, capacity: int) -> None:
        """Another number of slots (the engine's, known once it has loaded)."""
        with self._cond:
            self.capacity = max(1, int(capacity))
            self._cond.notify_all()

    def _free(self, exclusive: bool) -> bool:
        return self._held == 0 if exclusive else self._held < self.capacity

    def acquire(
        self, cancel: threading.Event | None = None, on_wait: WaitFn | None = None, *, exclusive: bool = False
    ) -> None:
        """Wait for this caller's turn; :class:`Cancelled` when ``cancel`` is set meanwhile."""
        with self._cond:
            ticket = self._next
            self._next += 1
            self._waiting.append(ticket)
            try:
                last = -1
                while not self._free(exclusive) or self._waiting[0] != ticket:
                    ahead = self._waiting.index(ticket) + (1 if self._held >= self.capacity else 0)
                    if on_wait is not None and ahead != last:
                        on_wait(ahead)
                        last = ahead
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("cancelled before it started (it was waiting for the engine)")
                    self._cond.wait(0.1 if cancel is not None else None)
                self._held = self.capacity if exclusive else self._held + 1
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()

    def release(self, *, exclusive: bool = False) -> None:
        with self._cond:
            self._held = 0 if exclusive else max(0, self._held - 1)
            self._cond.notify_all()

    @property
    def busy(self) -> int:
        """Renders running or waiting now."""
        with self._cond:
            return len(self._waiting) + self._held

    @contextmanager
    def hold(self, cancel: threading.Event | None = None, on_wait: WaitFn | None = None) -> Iterator[None]:
        self.acquire(cancel, on_wait)
        try:
            yield
        finally:
            self.release()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        self.acquire(exclusive=True)
        try:
            yield
        finally:
            self.release(exclusive=True)

    def __enter__(self) -> FairLock:
        self.acquire(exclusive=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release(exclusive=True)
