"""Chat messages and the render buttons (Generate, Blind box, A/B, Sweep): one queued, streamed flow.

Each request (a chat message or a button) is one generator: the user's message and a
placeholder reply appear at once; the request waits for the session's earlier ones; the
assistant's answer (the rewrite and its reasons) appears; the render's progress lives in that
answer and the image replaces it. Every update sends the session's whole conversation
(:mod:`assistant.ui.conversation`), so a message sent during a render is shown, queued, never lost.

The handlers take the Settings accordion as ONE :class:`~assistant.service.RenderSettings` and the
image panel as ONE :class:`~assistant.ui.img2img.ImageInputs`; :func:`assistant.ui.binding.bind`
gives Gradio the spelled-out signature (the API's parameter names) and packs the values.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from .. import owners
from ..blend import BLINDBOX_DEFAULT_CELLS
from ..errors import Cancelled, LoraMixerError
from ..service import RenderSettings, Service, Turn, render_summary
from . import messages, prompts
from .conversation import (
    Conversation,
    Job,
    Sessions,
    cancelled_line,
    progress_line,
    queued_line,
    waiting_line,
)
from .events import GENERIC_ERROR, requester_of
from .img2img import ImageInputs, fill_values

__all__ = ["FILL_OUTPUTS", "FlowHandlers", "apply_fill"]

log = logging.getLogger("lora_mixer.app")

#: Seconds between two progress updates of one reply (a render reports every sampler step).
PROGRESS_INTERVAL = 0.2


def _image_message(paths: Sequence[str]) -> list[dict[str, str]]:
    return [{"path": p} for p in paths]


#: What the chat's message box holds after a send: nothing (text and attachment cleared).
_EMPTY_MESSAGE: dict[str, Any] = {"text": "", "files": []}
#: Components a chat turn (or a dropped PNG) may fill, after the chat's four outputs.
FILL_OUTPUTS = (
    "sampler", "steps", "cfg", "width", "height", "seed",
    "init_image", "strength", "hires", "hr_upscaler", "hr_scale", "hr_steps", "hr_strength",
)  # fmt: skip


def _message_parts(message: dict[str, Any] | str | None) -> tuple[str, list[str]]:
    """The text and attached file paths of a MultimodalTextbox value (a plain string: text only)."""
    if isinstance(message, dict):
        files = [str(f) for f in message.get("files") or [] if f]
        return str(message.get("text") or "").strip(), files
    return (message or "").strip(), []


_fill_count = itertools.count(1)


def _fill_state(fill: dict[str, Any] | None) -> Any:
    """What a turn writes to the hidden fill state: its fill (numbered, so the same fill twice is
    still a change), or nothing when it fills nothing."""
    return {**fill, "_n": next(_fill_count)} if fill else gr.skip()


def apply_fill(fill: dict[str, Any] | None, *current: Any) -> list[Any]:
    """The fill state's change: each ``FILL_OUTPUTS`` component gets its filled value, or keeps its
    current one. Plain values, never ``gr.skip()``: Gradio rebuilds a component for a session on any
    update dict, and the rebuilt sliders would lose the app's own range messages (setting_slider)."""
    values = fill_values({k: v for k, v in (fill or {}).items() if k != "_n"})
    return [values.get(name, value) for name, value in zip(FILL_OUTPUTS, current, strict=True)]


@functools.lru_cache(maxsize=2)
def _read_slot(path: str, size: int, mtime: float) -> Any:
    from assistant import images

    name = Path(path).name
    what = f"init image '{name}' (the Init image slot)"
    return images.init_image(images.read_file(path, what=what), name=name, what=what)


def _slot_image(path: str | None) -> Any:
    """The Init image slot's picture as an InitImage (read once per file), or None when empty."""
    if not path:
        return None
    try:
        stat = Path(path).stat()
    except OSError:
        return None  # the upload expired: the slot is empty as far as a render goes
    return _read_slot(path, stat.st_size, stat.st_mtime)


def _with_panel(settings: RenderSettings, image: ImageInputs | None) -> RenderSettings:
    panel = image or ImageInputs()
    return panel.apply(settings, _slot_image(panel.init_path))


def _one_image(settings: RenderSettings) -> RenderSettings:
    """A grid's settings: one image per cell (the batch size is Generate's)."""
    return dataclasses.replace(settings, batch_size=1)


def _img2img_suffix(image: ImageInputs | None) -> str:
    if image is not None and image.init_path:
        return f" (img2img over the init image, strength {image.strength:g})"
    if image is not None and image.hires:
        return f" (hires fix ×{image.hr_scale:g}, {image.hr_upscaler})"
    return ""


class FlowHandlers:
    """The chat and render-button handlers bound to one :class:`Service`; one conversation per
    session hash, at most ``max_waiting`` requests running or waiting server-wide."""

    def __init__(self, service: Service, *, max_waiting: int = 32) -> None:
        self.service = service
        self.sessions = Sessions()
        self.max_waiting = max_waiting
        self._active = 0
        self._active_lock = threading.Lock()

    def _conversation(self, request: gr.Request | None) -> Conversation:
        return self.sessions.get(getattr(request, "session_hash", None) or "_")

    def _admit(self) -> None:
        """Refuse a request at once when too many wait (the queue stays bounded)."""
        with self._active_lock:
            if self._active >= self.max_waiting:
                raise gr.Error(
                    f"The server is busy: {self._active} requests are running or waiting "
                    f"(the limit is {self.max_waiting}). Try again in a moment.",
                    print_exception=False,
                )
            self._active += 1

    def _release(self) -> None:
        with self._active_lock:
            self._active -= 1

    def cancel(self, request: gr.Request) -> None:
        """Stop this session's running render after its current step, and drop its queued ones."""
        count = self._conversation(request).cancel_all()
        gr.Info("Cancelling after the current step…" if count else "Nothing is running.")

    def forget(self, request: gr.Request) -> None:
        """The page closed: stop its requests and forget its conversation."""
        self.sessions.drop(getattr(request, "session_hash", None) or "_")

    def clear(self, request: gr.Request) -> None:
        """The conversation's Clear button: forget the messages and the memory."""
        self._conversation(request).clear()

    def chat(
        self,
        message: dict[str, Any] | str | None,
        history: list[dict[str, Any]] | None,
        *,
        positive: str,
        negative: str,
        apply_changes: bool,
        settings: RenderSettings,
        recipe: prompts.AppliedRecipe | None,
        image: ImageInputs | None = None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """One chat message (text, an image, or both): echoed at once, answered, rendered with
        progress in the answer (a ``/blindbox`` within the ranges of the recipe picked in the menu).

        Yields (conversation, message box, prompt, negative prompt, fill state — the settings and
        image panel values the turn sets, see ``apply_fill``); the message box is cleared by the
        first update, so the next message can be typed (and sent: it queues) at once. An image with
        text renders over it (img2img); an image alone is read like A1111's PNG Info and its
        parameters fill the boxes.
        """
        text, files = _message_parts(message)
        if not text and not files:
            raise gr.Error(
                "Type a prompt, a question or a command such as /help — or attach an image.",
                print_exception=False,
            )
        panel = image or ImageInputs()  # settings out of range: said in the reply
        conversation = self._conversation(request)
        conversation.adopt(history)
        self._admit()
        shown = messages.user_text(text) if text else ""
        job = conversation.add(
            shown, boxes=(positive or "", negative or ""), waiting=queued_line(0), files=files[:1]
        )

        def answer() -> Turn:
            boxes = conversation.boxes_for(job)
            attached = files[0] if files else None
            slot = None if attached is not None else _slot_image(panel.init_path)
            turn = self.service.chat_turn(
                text,
                positive=boxes[0],
                negative=boxes[1],
                apply_changes=bool(apply_changes),
                settings=panel.apply(settings, slot) if slot is not None else panel.apply(settings, None),
                memory=conversation.memory,
                image=attached,
                recipe=recipe.name if recipe is not None else None,
            )
            if turn.memory is not None:
                conversation.memory = turn.memory
            return turn

        for update in self._run(conversation, job, answer, requester_of(request), clear_input=True):
            *head, fill = update
            yield (*head, _fill_state(fill))

    def _button(
        self,
        kind: str,
        user: str,
        history: list[dict[str, Any]] | None,
        request: gr.Request | None,
        *,
        turn: Turn,
        boxes: tuple[str, str],
    ) -> Iterator[tuple[Any, Any, Any]]:
        """A button's request: checked and planned already (``turn``), then queued like a message."""
        conversation = self._conversation(request)
        conversation.adopt(history)
        self._admit()
        job = conversation.add(user, kind=kind, boxes=boxes, waiting=queued_line(0))
        for history_, _box, positive, negative, _fill in self._run(
            conversation, job, lambda: turn, requester_of(request)
        ):
            yield history_, positive, negative

    def _run(
        self,
        conversation: Conversation,
        job: Job,
        answer: Callable[[], Turn],
        requester: owners.Requester,
        *,
        clear_input: bool = False,
    ) -> Iterator[tuple[Any, Any, Any, Any, Any]]:
        skip = gr.skip()
        try:
            conversation.set_reply(job, queued_line(conversation.ahead(job)))
            yield conversation.snapshot(), (_EMPTY_MESSAGE if clear_input else skip), skip, skip, None
            # 1. this session's earlier requests first (the placeholder says how many)
            shown = conversation.ahead(job)
            while not conversation.wait_turn(job, 0.25):
                if job.cancel.is_set():
                    break
                ahead = conversation.ahead(job)
                if ahead != shown:
                    shown = ahead
                    conversation.set_reply(job, queued_line(ahead))
                    yield conversation.snapshot(), skip, skip, skip, None
            if job.cancel.is_set():
                conversation.set_reply(job, cancelled_line(None, None, started=False))
                yield conversation.snapshot(), skip, skip, skip, None
                return
            # 2. the answer: the rewrite and its reasons, before anything renders
            try:
                turn = answer()
            except LoraMixerError as err:
                conversation.set_reply(job, f"⚠ {err}")
                yield conversation.snapshot(), skip, skip, skip, None
                return
            conversation.set_boxes(turn.positive, turn.negative)
            if turn.job is None:
                conversation.set_reply(job, turn.markdown)
                yield conversation.snapshot(), skip, turn.positive, turn.negative, turn.fill
                return
            conversation.set_reply(job, f"{turn.markdown}\n\n{waiting_line(0)}")
            yield conversation.snapshot(), skip, turn.positive, turn.negative, turn.fill
            # 3. the render, its progress inside the answer; 4. the image in place of the progress
            for _ in self._render(conversation, job, turn, requester):
                yield conversation.snapshot(), skip, skip, skip, None
            # the last update carries the boxes again: an API client reads only the last one
            yield conversation.snapshot(), skip, turn.positive, turn.negative, turn.fill
        except GeneratorExit:  # the page went away: stop the render after its current step
            job.cancel.set()
            raise
        except Exception:
            log.exception("request %s failed", job.kind)
            conversation.set_reply(job, f"⚠ {GENERIC_ERROR}")
            yield conversation.snapshot(), skip, skip, skip, None
        finally:
            conversation.finish(job)
            self._release()

    def _render(
        self, conversation: Conversation, job: Job, turn: Turn, requester: owners.Requester
    ) -> Iterator[None]:
        """Run ``turn.job`` in a worker thread, as ``requester`` (whose folder the images go to);
        each yield means the reply bubble changed."""
        assert turn.job is not None
        render = turn.job
        events: queue.Queue[tuple[Any, ...]] = queue.Queue()

        def work() -> None:
            try:
                with owners.acting_for(requester):
                    result = render.run(
                        lambda done, total, what: events.put(("step", done, total, what)),
                        job.cancel,
                        lambda ahead: events.put(("wait", ahead)),
                    )
                events.put(("done", result))
            except BaseException as exc:  # handed to the generator, which explains it
                events.put(("error", exc))

        threading.Thread(target=work, name=f"render-{job.id}", daemon=True).start()
        started = False
        last_yield = 0.0
        while True:
            event = events.get()
            batch = [event]
            while not events.empty():
                batch.append(events.get_nowait())
            final = next((e for e in batch if e[0] in ("done", "error")), None)
            status = None
            for item in batch:
                if item[0] == "step":
                    started = True
                    status = progress_line(item[1], item[2], item[3])
                elif item[0] == "wait":
                    status = waiting_line(item[1])
            if final is not None:
                break
            if status is not None:
                conversation.set_reply(job, f"{turn.markdown}\n\n{status}")
                pause = PROGRESS_INTERVAL - (time.monotonic() - last_yield)
                if pause > 0:  # at most a few updates a second: the page need not redraw each step
                    time.sleep(pause)
                last_yield = time.monotonic()
                yield
        if final[0] == "done":
            summary, images = render_summary(final[1])
            conversation.set_reply(job, f"{turn.markdown}\n\n{summary}", *_image_message(images))
        else:
            error = final[1]
            if isinstance(error, Cancelled):
                line = cancelled_line(error.step, error.total, started=started)
            elif isinstance(error, LoraMixerError):
                line = f"⚠ {error}"
            else:
                log.error("render failed", exc_info=error)
                line = f"⚠ {GENERIC_ERROR}"
            conversation.set_reply(job, f"{turn.markdown}\n\n{line}")
        yield

    def generate(
        self,
        positive: str,
        negative: str,
        *,
        apply_changes: bool,
        settings: RenderSettings,
        history: list[dict[str, Any]] | None,
        image: ImageInputs | None = None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, Any, Any]]:
        """Generate button: advise (if applied), render, the image in the conversation."""
        boxes = (positive or "", negative or "")
        turn = self.service.action_turn(
            "generate",
            *boxes,
            _with_panel(settings, image),
            apply_changes=bool(apply_changes),
        )
        user = f"Generate: {messages.inline_code(positive or '')}" + _img2img_suffix(image)
        yield from self._button("generate", user, history, request, turn=turn, boxes=boxes)

    def blindbox(
        self,
        positive: str,
        negative: str,
        *,
        apply_changes: bool,
        count: float,
        settings: RenderSettings,
        history: list[dict[str, Any]] | None,
        recipe: prompts.AppliedRecipe | None,
        image: ImageInputs | None = None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, Any, Any]]:
        """Blind box button: ``count`` random weight mixes as one labelled grid in the chat (within
        the ranges of the recipe picked in the menu, for its LoRAs the prompt still has)."""
        boxes = (positive or "", negative or "")
        n = int(count if count is not None else BLINDBOX_DEFAULT_CELLS)
        turn = self.service.action_turn(
            "blindbox",
            *boxes,
            _with_panel(_one_image(settings), image),
            apply_changes=bool(apply_changes),
            n=n,
            seed=None if settings.seed is None or int(settings.seed) == -1 else int(settings.seed),
            recipe=recipe.name if recipe is not None else None,
        )
        user = f"Blind box ×{n}: {messages.inline_code(positive or '')}" + _img2img_suffix(image)
        yield from self._button("blindbox", user, history, request, turn=turn, boxes=boxes)

    def ab(
        self,
        positive: str,
        negative: str,
        *,
        apply_changes: bool,
        a: str | None,
        b: str | None,
        settings: RenderSettings,
        history: list[dict[str, Any]] | None,
        image: ImageInputs | None = None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, Any, Any]]:
        """A/B button: the same seed with variant A and variant B, side by side, and their difference."""
        boxes = (positive or "", negative or "")
        turn = self.service.action_turn(
            "ab",
            *boxes,
            _with_panel(_one_image(settings), image),
            apply_changes=bool(apply_changes),
            a=(a or "").strip() or None,
            b=(b or "").strip() or None,
        )
        user = f"A/B: {messages.inline_code(positive or '')}" + _img2img_suffix(image)
        yield from self._button("ab", user, history, request, turn=turn, boxes=boxes)

    def sweep(
        self,
        positive: str,
        negative: str,
        *,
        apply_changes: bool,
        x_axis: str | None,
        y_axis: str | None,
        settings: RenderSettings,
        history: list[dict[str, Any]] | None,
        image: ImageInputs | None = None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, Any, Any]]:
        """Sweep button: an X/Y grid over LoRA weights, CFG, steps, seeds or samplers (no axis: the
        prompt's first LoRA from 0 to 1)."""
        x_axis, y_axis = (x_axis or "").strip(), (y_axis or "").strip()
        boxes = (positive or "", negative or "")
        turn = self.service.action_turn(
            "sweep",
            *boxes,
            _with_panel(_one_image(settings), image),
            apply_changes=bool(apply_changes),
            x_axis=x_axis,
            y_axis=y_axis,
        )
        axes = f" X {messages.inline_code(x_axis)}" if x_axis else ""
        axes += f", Y {messages.inline_code(y_axis)}" if y_axis else ""
        user = f"Sweep{axes}: {messages.inline_code(positive or '')}" + _img2img_suffix(image)
        yield from self._button("sweep", user, history, request, turn=turn, boxes=boxes)

    def restore(
        self, path: str | None, init_path: str | None, positive: str, negative: str
    ) -> tuple[Any, ...]:
        """A PNG dropped on the prompt panel: its parameters back in the boxes and settings (A1111's
        PNG Info + "Send to txt2img") and a note saying what made it. Outputs: positive, negative,
        the fill state (``apply_fill``), the note, and the (emptied) restore file."""
        if not path:
            return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), None)
        turn = self.service.image_turn(
            path, positive or "", negative or "", had_init=bool(init_path), compact=True
        )
        restored = turn.intent == "pnginfo" and bool(turn.fill)
        name = Path(path).name
        gr.Info(f"Parameters restored from {name}." if restored else f"Nothing restored from {name}.")
        boxes = (turn.positive, turn.negative) if restored else (gr.skip(), gr.skip())
        return (*boxes, _fill_state(turn.fill), turn.markdown, None)
