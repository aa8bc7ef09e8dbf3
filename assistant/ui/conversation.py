"""One conversation per browser session: its messages, its requests in order, its memory.

Pure (``threading`` only; no gradio). The app's handlers are generators, one per request (a chat
message or a button): each adds the user's message and a placeholder reply at once, waits for
its turn in the session (earlier requests first), shows the assistant's answer, renders with the
progress inside that answer, and puts the image in place of the progress. Every update sends the
whole conversation from here, so two requests of one session never overwrite each other's
messages, and a message sent while another renders is shown — queued — instead of lost.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from ..chat import ChatMemory

#: Sessions kept at once (the oldest idle ones are forgotten first).
MAX_SESSIONS = 1000
#: Messages kept per conversation (the oldest go first; a long session stays light).
MAX_MESSAGES = 200

_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    """One request of a session: the user's bubble, the reply bubble it fills, its cancel flag.

    ``boxes`` are the prompt boxes when it was sent; ``boxes_version`` the conversation's box
    version then (a turn that finished after it was sent changed the boxes it should use).
    """

    user: str
    kind: str = "chat"
    boxes: tuple[str, str] = ("", "")
    boxes_version: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    id: int = field(default_factory=lambda: next(_ids))
    reply: dict[str, Any] = field(default_factory=dict)


class Conversation:
    """The messages (Gradio's message dicts), the queue of requests and the memory of one session."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.messages: list[dict[str, Any]] = []
        self._jobs: deque[Job] = deque()
        self.memory = ChatMemory()
        self._boxes: tuple[str, str] | None = None
        self.boxes_version = 0

    # -- requests -----------------------------------------------------------------------------

    def add(
        self,
        user: str,
        *,
        kind: str = "chat",
        boxes: tuple[str, str] = ("", ""),
        waiting: str,
        files: tuple[str, ...] | list[str] = (),
    ) -> Job:
        """Queue a request: its user bubble (the text, then any image sent with it) and a reply
        bubble saying ``waiting`` appear at once."""
        with self._lock:
            job = Job(user=user, kind=kind, boxes=boxes, boxes_version=self.boxes_version)
            job.reply = {"role": "assistant", "content": [waiting]}
            content: list[Any] = [user] if user else []
            content += [{"path": str(path)} for path in files]
            self.messages.append({"role": "user", "content": content or [user]})
            self.messages.append(job.reply)
            self._trim()
            self._jobs.append(job)
            return job

    def ahead(self, job: Job) -> int:
        """Requests of this session before ``job`` (0: its turn)."""
        with self._lock:
            return self._jobs.index(job) if job in self._jobs else 0

    def wait_turn(self, job: Job, timeout: float) -> bool:
        """True once ``job`` is the session's oldest request (waits up to ``timeout`` seconds)."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._jobs or self._jobs[0] is job, timeout)

    def finish(self, job: Job) -> None:
        with self._lock:
            if job in self._jobs:
                self._jobs.remove(job)
            self._lock.notify_all()

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._jobs)

    def cancel_all(self) -> int:
        """Cancel every request sent so far (the running one stops after its step); how many."""
        with self._lock:
            for job in self._jobs:
                job.cancel.set()
            return len(self._jobs)

    # -- messages -----------------------------------------------------------------------------

    def set_reply(self, job: Job, *content: Any) -> None:
        """Replace the content of ``job``'s reply bubble (text first, then images)."""
        with self._lock:
            job.reply["content"] = [c for c in content if c is not None and c != ""]

    def snapshot(self) -> list[dict[str, Any]]:
        """The conversation as Gradio's Chatbot value (a copy: later edits do not leak into it)."""
        with self._lock:
            return copy.deepcopy(self.messages)

    def adopt(self, history: list[dict[str, Any]] | None) -> None:
        """Take the client's history as the conversation when nothing is running.

        The browser sends what it shows (this conversation), an API client its own history (``[]``
        starts afresh). While a request runs, the server's copy is the newer one and is kept.
        """
        with self._lock:
            if self._jobs or history is None:
                return
            self.messages = [dict(m) for m in history if isinstance(m, dict) and "role" in m]
            self._trim()
            if not self.messages:  # a fresh start forgets what the old conversation remembered
                self.memory = ChatMemory()

    def clear(self) -> None:
        """The Clear button: no messages, nothing waiting, a fresh memory."""
        with self._lock:
            for job in self._jobs:
                job.cancel.set()
            self.messages = []
            self.memory = ChatMemory()

    def _trim(self) -> None:
        if len(self.messages) > MAX_MESSAGES:
            del self.messages[: len(self.messages) - MAX_MESSAGES]

    # -- prompt boxes -------------------------------------------------------------------------

    def boxes_for(self, job: Job) -> tuple[str, str]:
        """The prompt boxes ``job`` should use: as sent, unless an earlier request of this session
        finished after it was sent and wrote the boxes (a queued ``/blindbox`` mixes the prompt the
        message before it just rewrote)."""
        with self._lock:
            if self._boxes is not None and self.boxes_version != job.boxes_version:
                return self._boxes
            return job.boxes

    def set_boxes(self, positive: str, negative: str) -> None:
        with self._lock:
            self._boxes = (positive, negative)
            self.boxes_version += 1


class Sessions:
    """Conversations by Gradio session hash, bounded (least recently used forgotten first)."""

    def __init__(self, limit: int = MAX_SESSIONS) -> None:
        self._limit = limit
        self._items: OrderedDict[str, Conversation] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Conversation:
        with self._lock:
            conversation = self._items.get(key)
            if conversation is None:
                conversation = self._items[key] = Conversation()
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                oldest, old = next(iter(self._items.items()))
                if old.busy:  # never forget a session while it renders
                    self._items.move_to_end(oldest)
                    break
                self._items.pop(oldest)
            return conversation

    def drop(self, key: str) -> None:
        with self._lock:
            conversation = self._items.pop(key, None)
        if conversation is not None:
            conversation.cancel_all()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


# -- what the reply bubble says while it waits and renders ----------------------------------------

BAR_CELLS = 12


def progress_line(done: int, total: int, what: str = "rendering") -> str:
    """``⏳ Rendering — step 7/20 ▰▰▰▰▱▱▱▱▱▱▱▱ 35%``."""
    total = max(1, total)
    done = max(0, min(done, total))
    filled = round(BAR_CELLS * done / total)
    bar = "▰" * filled + "▱" * (BAR_CELLS - filled)
    label = {"generating": "Rendering", "blindbox": "Rendering the blind box", "ab": "Rendering the A/B"}
    name = label.get(what, "Rendering the sweep" if what == "sweep" else what.capitalize())
    return f"⏳ {name} — step {done}/{total} {bar} {round(100 * done / total)}%"


def queued_line(ahead: int) -> str:
    """A request waiting behind earlier ones of the same session."""
    if ahead <= 0:
        return "⏳ Working on it…"
    return (
        f"⏳ Queued — {ahead} earlier request{'s' if ahead != 1 else ''} of yours first. "
        "It runs by itself when its turn comes (Cancel stops everything sent so far)."
    )


def waiting_line(ahead: int) -> str:
    """A render waiting for the engine, which someone else's render holds."""
    if ahead <= 0:
        return "⏳ Starting the render…"
    return f"⏳ Waiting for the engine — {ahead} render{'s' if ahead != 1 else ''} ahead (other users)."


def cancelled_line(step: int | None, total: int | None, started: bool) -> str:
    if not started:
        return "⏹ Cancelled before it started — nothing was rendered."
    where = f" at step {step}/{total}" if step is not None and total else ""
    return f"⏹ Cancelled{where} — nothing was saved. The prompt above stays in the prompt box."
