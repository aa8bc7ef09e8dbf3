"""LoRA Mixer web app: a chat-first Gradio UI and the A1111-compatible API on one server.

    python app.py --host 127.0.0.1 --port 7860 --model <hub id | folder | .safetensors> --lora-dir <folder>

Thin shell: the handlers below convert component values, call :class:`assistant.service.Service`
(the same object the ``/sdapi/v1`` routes call), and format the result. Global state is only that
shared service (engine, library); each user's choices live in their session (components,
``gr.BrowserState``). Importing this module builds nothing and launches nothing.
"""

# Gradio passes component values to handlers positionally, one parameter per input component:
# ruff: noqa: PLR0917

from __future__ import annotations

import argparse
import functools
import html
import inspect
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

# Gradio's usage analytics phone home at launch; off unless the user opts in (set it to "True").
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from assistant import limits, owners
from assistant.auth import AuthConfig, exposure_warnings, file_is_private, is_loopback, load_auth
from assistant.backend import ENGINE_KINDS, EngineOptions
from assistant.blend import BLINDBOX_DEFAULT_CELLS
from assistant.commands import add_model_options, model_settings
from assistant.config import Settings, load_settings
from assistant.engine.checks import MAX_CLIP_SKIP, RNG_SOURCES
from assistant.errors import Cancelled, LoraMixerError
from assistant.service import LIMITS, RenderSettings, Service, Turn, model_label, render_summary
from assistant.types import DEFAULT_SAMPLER
from assistant.ui import cards, messages, prompts
from assistant.ui import train as train_ui
from assistant.ui.conversation import (
    Conversation,
    Job,
    Sessions,
    cancelled_line,
    progress_line,
    queued_line,
    waiting_line,
)
from assistant.ui.img2img import CSS as IMAGE_CSS
from assistant.ui.img2img import DROP_JS, ImageInputs, bind, build_panel, fill_values

log = logging.getLogger("lora_mixer.app")

F = TypeVar("F", bound=Callable[..., Any])

#: Sampler names offered before the engine has loaded (replaced by the engine's list on load).
KNOWN_SAMPLERS = ["DPM++ 2M Karras", "DPM++ 2M", "DPM++ SDE Karras", "Euler a", "Euler", "DDIM"]
HISTORY_LIMIT = 40
#: Seconds between two progress updates of one reply (a render reports every sampler step).
PROGRESS_INTERVAL = 0.2
GENERIC_ERROR = "Something went wrong on the server; nothing was changed. The server log has the details."

try:  # Hugging Face ZeroGPU: run renders on a GPU slice when the `spaces` package is present
    import spaces  # type: ignore[import-not-found]

    gpu = spaces.GPU
except ImportError:  # everywhere else: a no-op decorator

    def gpu(fn: F | None = None, **_kwargs: Any) -> Any:
        return fn if fn is not None else (lambda f: f)


# ----------------------------------------------------------------------------------------------
# Handlers (functions first; the layout below only wires them)
# ----------------------------------------------------------------------------------------------


def setting_slider(*args: Any, **kwargs: Any) -> gr.Slider:
    """A ``gr.Slider`` that leaves range checks to :class:`RenderSettings` (shared with the API).

    Gradio's own check answers "Value 0 is less than minimum value 1." without saying which
    setting; ours names it and the allowed range. The override is per instance: a Slider
    subclass would make Gradio write an ``app.pyi`` stub next to this file.
    """
    slider = gr.Slider(*args, **kwargs)
    slider.preprocess = _unchecked  # type: ignore[method-assign]
    return slider


def _unchecked(payload: float | None) -> float | None:
    return payload


def thumbs_dir(settings: Settings) -> Path:
    """Where library-card thumbnails are written (served; the LoRA folders are not)."""
    return Path(settings.cache_dir).expanduser().resolve() / "thumbs"


def _toast(message: str) -> gr.Error:
    """A toast for ``message``. Toasts render HTML, so ``<lora:…>`` would vanish (cutting the
    message mid-quote): the text is escaped."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def requester_of(request: gr.Request | None) -> owners.Requester:
    """Who sent a UI event: the signed-in user, else the browser session (one page load)."""
    if request is None:
        return owners.current()
    return owners.Requester(
        user=getattr(request, "username", None) or None,
        session=getattr(request, "session_hash", None) or None,
        channel="ui",
    )


def friendly(fn: F) -> F:
    """Show LoraMixerError messages as gr.Error; log anything else and show a generic message.

    Works for plain handlers and for generator handlers (streamed replies) alike. A plain
    handler runs as its sender (:func:`requester_of` the ``gr.Request`` Gradio passes), so the
    images it saves go to that user's or session's folder (:mod:`assistant.owners`); a streamed
    request's render runs in its own thread, bound to its sender there (``Handlers._render``).
    """

    def explain(err: Exception) -> gr.Error:
        if isinstance(err, gr.Error):
            return err
        if isinstance(err, LoraMixerError):
            return _toast(str(err))
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(GENERIC_ERROR, print_exception=False)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def streaming(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:
                raise explain(err) from None

        return streaming  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        request = next((v for v in (*args, *kwargs.values()) if isinstance(v, gr.Request)), None)
        try:
            with owners.acting_for(requester_of(request)):
                return fn(*args, **kwargs)
        except Exception as err:
            raise explain(err) from None

    return wrapper  # type: ignore[return-value]


def _settings(
    sampler: str, steps: float, cfg: float, width: float, height: float, seed: float, batch: float
) -> RenderSettings:
    return RenderSettings(
        sampler=sampler or DEFAULT_SAMPLER,
        steps=steps,  # type: ignore[arg-type]  # validated() turns whole floats into ints
        cfg=cfg,
        width=width,  # type: ignore[arg-type]
        height=height,  # type: ignore[arg-type]
        seed=seed,  # type: ignore[arg-type]
        batch_size=batch,  # type: ignore[arg-type]
    )


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


def _img2img_suffix(image: ImageInputs | None) -> str:
    if image is not None and image.init_path:
        return f" (img2img over the init image, strength {image.strength:g})"
    if image is not None and image.hires:
        return f" (hires fix ×{image.hr_scale:g}, {image.hr_upscaler})"
    return ""


class Handlers:
    """Event handlers bound to one :class:`Service`; one conversation per session hash."""

    def __init__(self, service: Service, *, max_waiting: int = 32) -> None:
        self.service = service
        self.sessions = Sessions()
        self.max_waiting = max_waiting
        self._active = 0
        self._active_lock = threading.Lock()
        self.thumbs_dir = thumbs_dir(service.settings)

    # -- chat and buttons: one flow ------------------------------------------------------------
    #
    # Each request (a chat message or a button) is one generator: the user's message and a
    # placeholder reply appear at once; the request waits for the session's earlier ones; the
    # assistant's answer (the rewrite and its reasons) appears; the render's progress lives in that
    # answer and the image replaces it. Every update sends the session's whole conversation
    # (assistant.ui.conversation), so a message sent during a render is shown, queued, never lost.

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
        positive: str,
        negative: str,
        apply_changes: bool,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
        batch: float,
        recipe: prompts.AppliedRecipe | None,
        request: gr.Request,
        image: ImageInputs | None = None,
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
        panel = image or ImageInputs()
        settings = _settings(sampler, steps, cfg, width, height, seed, batch)  # bad ones: said in the reply
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
        apply_changes: bool,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
        batch: float,
        history: list[dict[str, Any]] | None,
        request: gr.Request,
        image: ImageInputs | None = None,
    ) -> Iterator[tuple[Any, Any, Any]]:
        """Generate button: advise (if applied), render, the image in the conversation."""
        boxes = (positive or "", negative or "")
        turn = self.service.action_turn(
            "generate",
            *boxes,
            _with_panel(_settings(sampler, steps, cfg, width, height, seed, batch), image),
            apply_changes=bool(apply_changes),
        )
        user = f"Generate: {messages.inline_code(positive or '')}" + _img2img_suffix(image)
        yield from self._button("generate", user, history, request, turn, boxes)

    def blindbox(
        self,
        positive: str,
        negative: str,
        apply_changes: bool,
        count: float,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
        batch: float,
        history: list[dict[str, Any]] | None,
        recipe: prompts.AppliedRecipe | None,
        request: gr.Request,
        image: ImageInputs | None = None,
    ) -> Iterator[tuple[Any, Any, Any]]:
        """Blind box button: ``count`` random weight mixes as one labelled grid in the chat (within
        the ranges of the recipe picked in the menu, for its LoRAs the prompt still has)."""
        boxes = (positive or "", negative or "")
        n = int(count if count is not None else BLINDBOX_DEFAULT_CELLS)
        turn = self.service.action_turn(
            "blindbox",
            *boxes,
            _with_panel(_settings(sampler, steps, cfg, width, height, seed, 1), image),
            apply_changes=bool(apply_changes),
            n=n,
            seed=None if seed is None or int(seed) == -1 else int(seed),
            recipe=recipe.name if recipe is not None else None,
        )
        user = f"Blind box ×{n}: {messages.inline_code(positive or '')}" + _img2img_suffix(image)
        yield from self._button("blindbox", user, history, request, turn, boxes)

    def ab(
        self,
        positive: str,
        negative: str,
        apply_changes: bool,
        a: str | None,
        b: str | None,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
        batch: float,
        history: list[dict[str, Any]] | None,
        request: gr.Request,
        image: ImageInputs | None = None,
    ) -> Iterator[tuple[Any, Any, Any]]:
        """A/B button: the same seed with variant A and variant B, side by side, and their difference."""
        boxes = (positive or "", negative or "")
        turn = self.service.action_turn(
            "ab",
            *boxes,
            _with_panel(_settings(sampler, steps, cfg, width, height, seed, 1), image),
            apply_changes=bool(apply_changes),
            a=(a or "").strip() or None,
            b=(b or "").strip() or None,
        )
        user = f"A/B: {messages.inline_code(positive or '')}" + _img2img_suffix(image)
        yield from self._button("ab", user, history, request, turn, boxes)

    def sweep(
        self,
        positive: str,
        negative: str,
        apply_changes: bool,
        x_axis: str | None,
        y_axis: str | None,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
        batch: float,
        history: list[dict[str, Any]] | None,
        request: gr.Request,
        image: ImageInputs | None = None,
    ) -> Iterator[tuple[Any, Any, Any]]:
        """Sweep button: an X/Y grid over LoRA weights, CFG, steps, seeds or samplers (no axis: the
        prompt's first LoRA from 0 to 1)."""
        x_axis, y_axis = (x_axis or "").strip(), (y_axis or "").strip()
        boxes = (positive or "", negative or "")
        turn = self.service.action_turn(
            "sweep",
            *boxes,
            _with_panel(_settings(sampler, steps, cfg, width, height, seed, 1), image),
            apply_changes=bool(apply_changes),
            x_axis=x_axis,
            y_axis=y_axis,
        )
        axes = f" X {messages.inline_code(x_axis)}" if x_axis else ""
        axes += f", Y {messages.inline_code(y_axis)}" if y_axis else ""
        user = f"Sweep{axes}: {messages.inline_code(positive or '')}" + _img2img_suffix(image)
        yield from self._button("sweep", user, history, request, turn, boxes)

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

    # -- library ----------------------------------------------------------------------------------

    def library(self, query: str, kind: str, base: str) -> tuple[Any, list[str], list[dict[str, Any]], str]:
        """Cards matching the search box and filters, their names in card order, the same entries
        as JSON (what API clients read), and the note above the cards (what matched, or nothing)."""
        kind_filter = None if kind in ("", "any") else kind
        base_filter = None if base in ("", "any") else base
        infos = self.service.loras(query or "", kind=kind_filter, base=base_filter)
        rows, names = cards.card_rows(infos, self.thumbs_dir, self.service.lora_hash)
        note = cards.search_note(
            query or "", kind_filter, base_filter, len(infos), len(self.service.library.all())
        )
        return gr.Dataset(samples=rows), names, cards.listing(infos, self.service.lora_hash), note

    def refresh_library(
        self, query: str, kind: str, base: str
    ) -> tuple[Any, list[str], list[dict[str, Any]], str]:
        """Rescan the LoRA folders, then show the cards again."""
        count = self.service.refresh_loras()
        dataset, names, listing, note = self.library(query, kind, base)
        rescanned = f"Library rescanned: {count} loadable LoRA{'s' if count != 1 else ''}."
        return dataset, names, listing, f"{rescanned} {note}"

    def insert_card(self, index: int | None, names: list[str], positive: str) -> tuple[str, str]:
        """A card click: ``<lora:name:preferred_weight>`` and its trigger words go into the prompt,
        and the note on the Library tab says what was added (and when the LoRA cannot run on the
        loaded model)."""
        if index is None or not names or not 0 <= int(index) < len(names):
            return positive, gr.skip()
        info = self.service.library.resolve(names[int(index)])
        new = prompts.insert_lora(positive or "", info)
        return new, cards.insert_note(info, positive or "", new, self.service.base)

    def insert_lora(self, name: str, positive: str) -> str:
        """Insert a LoRA by name (what a card click does; for API clients)."""
        info = self.service.library.resolve((name or "").strip())
        return prompts.insert_lora(positive or "", info)

    # -- prompt tools -----------------------------------------------------------------------------

    def sliders(self, positive: str) -> list[Any]:
        """One visible slider per LoRA tag of the prompt (hidden ones beyond)."""
        specs = prompts.sliders_for(positive or "")
        low, high = limits.LORA_WEIGHT
        updates: list[Any] = []
        for i in range(prompts.MAX_SLIDERS):
            if i < len(specs):
                label = cards.slider_label(specs[i].name, self.service.library, self.service.base)
                value = max(low, min(high, specs[i].weight))
                updates.append(gr.Slider(visible=True, label=label, value=value))
            else:
                updates.append(gr.Slider(visible=False))
        return updates

    def weight_setter(self, index: int) -> Callable[[float, str], str]:
        """The release handler of slider ``index``: rewrites that LoRA tag's weight in the prompt."""

        def set_weight(weight: float, positive: str) -> str:
            return prompts.set_lora_weight(positive or "", index, float(weight))

        set_weight.__name__ = f"set_weight_{index + 1}"
        return set_weight

    def recipe(
        self,
        name: str,
        positive: str,
        negative: str,
        applied: prompts.AppliedRecipe | None,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
    ) -> tuple[Any, ...]:
        """Pick a recipe: the previous one's tags, terms and settings are taken back, this one's
        added, and the note says which settings it set and which it put back. "" removes it."""
        recipe = None
        if name:
            recipe = self.service.recipes().get(name)
            if recipe is None:
                raise gr.Error(f"Unknown recipe '{name}'; choose one from the list.", print_exception=False)
        current = dict(zip(prompts.RECIPE_SETTINGS, (sampler, steps, cfg, width, height, seed), strict=True))
        current = {k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in current.items()}
        new_positive, new_negative, updates, now, set_now, restored = prompts.apply_recipe(
            positive or "", negative or "", current, applied, recipe
        )
        lines = []
        if recipe is not None:
            lines.append(f"**{recipe.name}**" + (f" — {recipe.description}" if recipe.description else ""))
            if set_now:
                lines.append("Set by the recipe: " + ", ".join(set_now) + ".")
        elif applied is not None and applied.name:
            lines.append(f"Recipe **{applied.name}** taken back out of the prompt.")
        if restored:
            lines.append("Put back as before the recipe: " + ", ".join(restored) + ".")
        values = [updates.get(key, gr.skip()) for key in prompts.RECIPE_SETTINGS]
        return (new_positive, new_negative, "\n\n".join(lines), now, *values)

    # -- status and history -----------------------------------------------------------------------

    def status(self) -> tuple[str, Any, Any, Any]:
        """Header line, banner visibility, sampler choices; the poll timer stops once loaded."""
        info = self.service.engine_info
        samplers = KNOWN_SAMPLERS
        if info is not None and self.service.ready:
            try:
                samplers = self.service.samplers()
            except LoraMixerError:
                samplers = KNOWN_SAMPLERS
        return (
            self.service.status_line(),
            gr.Markdown(self.service.banner(), visible=bool(self.service.banner())),
            gr.Dropdown(choices=samplers),
            gr.Timer(active=not self.service.loaded),
        )

    def switch_model(self, model: str) -> tuple[Any, str, Any, Any]:
        """The base-model dropdown: load the chosen model (renders wait), then refresh the header.

        When it cannot load, the running model stays, the dropdown goes back to it and a
        ``gr.Warning`` says why (never an error page: the app keeps working)."""
        try:
            info = self.service.switch_model(model)
            gr.Info(f"Base model: {info.model_name} ({info.base}).")
        except LoraMixerError as err:
            gr.Warning(str(err))
        _status, banner, samplers, _timer = self.status()
        return gr.Dropdown(value=self.service.current_model()), self.service.status_line(), banner, samplers

    def set_options(self, clip_skip: float, rng: str, vae: str) -> tuple[Any, Any, Any, str]:
        """Clip skip, RNG and VAE for later renders (server-wide, as A1111's settings); a VAE that
        cannot load leaves the current one and a warning says why."""
        wanted_vae = vae if vae != (self.service.settings.vae or "Automatic") else None
        try:
            self.service.set_options(clip_skip=int(clip_skip), rng=rng, vae=wanted_vae)
        except LoraMixerError as err:
            gr.Warning(str(err))
        options = self.service.options()
        return (
            gr.Slider(value=options["CLIP_stop_at_last_layers"]),
            gr.Dropdown(value=options["randn_source"]),
            gr.Dropdown(value=options["sd_vae"], choices=self.service.vae_choices()),
            self.service.status_line(),
        )

    def history(self, request: gr.Request) -> list[tuple[str, str]]:
        """Saved images, newest first, captioned with seed and prompt: the sender's own when the
        history is private (per user, or per browser session), every one when it is shared."""
        items = self.service.history(HISTORY_LIMIT, requester=requester_of(request))
        return [
            (
                item.path,
                f"seed {item.seed} · {item.prompt[:80]}" if item.seed is not None else item.prompt[:80],
            )
            for item in items
        ]


# ----------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------

CSS = """
#banner {background: #fef3c7; border: 1px solid #f59e0b; border-radius: 8px; padding: 4px 12px;}
#library-cards img {max-width: 72px; max-height: 72px;}
#library-cards .lm-card {text-align: left; line-height: 1.5;}
#library-cards td {cursor: pointer;}
/* the Clear / Copy icons float over the top of the conversation: the messages scroll below them */
#chatbot .bubble-wrap {margin-top: 40px; height: calc(100% - 40px);}
/* tables in replies (/loras) scroll sideways instead of squeezing a word into one letter a line */
#chatbot .message table {display: block; overflow-x: auto; max-width: 100%;}
#chatbot .message th, #chatbot .message td {white-space: nowrap;}
/* a phone: the conversation and its input fit on the first screen */
@media (max-width: 640px) {
  #subtitle, #status {display: none;}
  #banner {padding: 2px 8px;}
  #banner p {font-size: 12px; line-height: 1.35; margin: 2px 0;}
  #banner code {font-size: 11px;}
  #chatbot {height: 46vh !important; max-height: 46vh !important; min-height: 240px;}
}
"""

CHAT_EXAMPLES = [
    "1girl, cat ears, <lora:catgirl_v1:0.8>, <lora:cyberpunk_style:0.7>",
    "/blindbox 4",
    "/loras",
    "/help",
    "一个猫耳女孩, <lora:catgirl_v1:0.8>",
]


def build_demo(service: Service, *, max_waiting: int = 32) -> gr.Blocks:
    """The Blocks app over ``service`` (not launched); at most ``max_waiting`` requests queue."""
    h = Handlers(service, max_waiting=max_waiting)
    recipe_names: list[str]
    try:
        recipe_names = sorted(service.recipes())
    except LoraMixerError as err:
        log.warning("recipes not loaded: %s", err)
        recipe_names = []
    initial_rows, initial_names = cards.card_rows(service.loras(), h.thumbs_dir, service.lora_hash)

    with gr.Blocks(title="LoRA Mixer", fill_width=True) as demo:
        # Gradio's BrowserState never writes a falsy value (False would be forgotten): keep a dict.
        apply_store = gr.BrowserState({"apply": True}, storage_key="lora_mixer_apply")
        prompt_store = gr.BrowserState(["", ""], storage_key="lora_mixer_prompts")
        card_names = gr.State(initial_names)
        recipe_state = gr.State(None)

        gr.Markdown("# LoRA Mixer", elem_id="title")
        gr.Markdown(
            "Chat with an assistant that mixes LoRAs the way an experienced A1111 user would.",
            elem_id="subtitle",
        )
        status = gr.Markdown(service.status_line(), elem_id="status")
        banner = gr.Markdown(service.banner(), visible=bool(service.banner()), elem_id="banner")

        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    height=620,
                    elem_id="chatbot",
                    buttons=["copy", "copy_all"],
                    feedback_options=None,
                    placeholder=(
                        "**Write a prompt the A1111 way** — e.g. `1girl, cat ears, <lora:catgirl_v1:0.8>` — "
                        "or a command: `/blindbox 8`, `/ab`, `/sweep`, `/loras`, `/help`. English or 中文."
                    ),
                )
                with gr.Row():
                    message = gr.MultimodalTextbox(
                        placeholder="Prompt, question or /command … — attach an image to render over it, "
                        "or send one alone to read what made it",
                        show_label=False,
                        scale=5,
                        lines=1,
                        max_lines=6,
                        file_types=["image"],
                        file_count="single",
                        sources=["upload"],
                        submit_btn=False,
                        elem_id="chat-input",
                    )
                    send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
                with gr.Row():
                    apply_changes = gr.Checkbox(True, label="Apply the assistant's changes", elem_id="apply")
                    cancel = gr.Button(
                        "Cancel", variant="stop", size="sm", scale=0, min_width=90, elem_id="cancel"
                    )
                examples = [{"text": text, "files": []} for text in CHAT_EXAMPLES]
                gr.Examples(examples, inputs=[message], label="Try")

            with gr.Column(scale=2, min_width=360), gr.Tabs():
                with gr.Tab("Prompt", id="prompt-tab"), gr.Column(elem_id="prompt-panel"):
                    positive = gr.Textbox(label="Prompt", lines=4, elem_id="positive")
                    negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="negative")
                    weight_sliders = [
                        gr.Slider(
                            *limits.LORA_WEIGHT, value=1.0, step=0.05, visible=False, label=f"LoRA {i + 1}"
                        )
                        for i in range(prompts.MAX_SLIDERS)
                    ]
                    panel = build_panel()  # init image + strength, hires fix, drop-a-PNG restore
                    with gr.Row():
                        generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                        blindbox_btn = gr.Button("Blind box", elem_id="blindbox")
                        ab_btn = gr.Button("A/B", elem_id="ab")
                        sweep_btn = gr.Button("Sweep", elem_id="sweep")
                    with gr.Accordion("Blind box, A/B and sweep options", open=False):
                        blind_count = gr.Slider(
                            *limits.BLINDBOX_CELLS,
                            value=limits.BLINDBOX_DEFAULT,
                            step=1,
                            label="Blind box: images",
                            elem_id="blind-count",
                        )
                        with gr.Row():
                            ab_a = gr.Textbox(
                                label="A/B: variant A",
                                placeholder="e.g. catgirl_v1 (blank: the prompt's first LoRA)",
                            )
                            ab_b = gr.Textbox(
                                label="A/B: variant B",
                                placeholder="e.g. catgirl_v2 (blank: the prompt's second LoRA, or none)",
                            )
                        with gr.Row():
                            sweep_x = gr.Textbox(
                                label="Sweep X axis",
                                placeholder="catgirl_v1=0.2..1.0x5 (blank: the first LoRA, 0..1x5)",
                            )
                            sweep_y = gr.Textbox(label="Sweep Y axis", placeholder="cfg=4,7,10")
                    recipe = gr.Dropdown(
                        choices=["", *recipe_names],
                        value="",
                        label="Recipe",
                        elem_id="recipe",
                        allow_custom_value=False,
                    )
                    recipe_note = gr.Markdown(elem_id="recipe-note")
                    with gr.Accordion("Settings", open=False):
                        sampler = gr.Dropdown(
                            KNOWN_SAMPLERS,
                            value=DEFAULT_SAMPLER,
                            label="Sampler",
                            allow_custom_value=True,
                        )
                        with gr.Row():
                            steps = setting_slider(
                                *LIMITS["steps"],
                                value=limits.STEPS_DEFAULT,
                                step=1,
                                label="Steps",
                                elem_id="steps",
                            )
                            cfg = setting_slider(
                                *LIMITS["cfg"],
                                value=limits.CFG_DEFAULT,
                                step=0.5,
                                label="CFG scale",
                                elem_id="cfg",
                            )
                        with gr.Row():
                            size = service.default_size()  # the model's native size (128 embedded)
                            width = setting_slider(
                                *LIMITS["width"], value=size, step=8, label="Width", elem_id="width"
                            )
                            height = setting_slider(
                                *LIMITS["height"], value=size, step=8, label="Height", elem_id="height"
                            )
                        with gr.Row():
                            seed = gr.Number(-1, label="Seed (-1 = random)", precision=0, elem_id="seed")
                            batch = setting_slider(*LIMITS["batch_size"], value=1, step=1, label="Batch size")
                        model_choice = gr.Dropdown(
                            [(model_label(m), m) for m in service.models()],
                            value=service.current_model(),
                            label="Base model (--model; checkpoints in --models-dir)",
                            info="Switching loads the new model; renders wait meanwhile."
                            if service.settings.model_switch_allowed
                            else "Fixed on this shared server (LORA_MIXER_ALLOW_MODEL_SWITCH=1 allows it).",
                            interactive=service.settings.model_switch_allowed,
                            elem_id="base-model",
                        )
                        with gr.Row():  # A1111's quicksettings: server-wide, like its Settings page
                            clip_skip = setting_slider(
                                1,
                                MAX_CLIP_SKIP,
                                value=service.settings.clip_skip,
                                step=1,
                                label="Clip skip",
                                elem_id="clip-skip",
                            )
                            rng = gr.Dropdown(
                                list(RNG_SOURCES), value=service.settings.rng, label="RNG", elem_id="rng"
                            )
                            vae = gr.Dropdown(
                                service.vae_choices(),
                                value=service.settings.vae or "Automatic",
                                label="VAE",
                                info="--vae; files in --vae-dir",
                                interactive=service.settings.model_switch_allowed,
                                elem_id="vae",
                            )
                with gr.Tab("Library", id="library-tab"):
                    with gr.Row():
                        search = gr.Textbox(
                            placeholder="Search name, alias or trigger",
                            show_label=False,
                            scale=3,
                            elem_id="lora-search",
                        )
                        kind = gr.Dropdown(
                            ["any", "character", "clothing", "concept", "style", "other"],
                            value="any",
                            label="Kind",
                            scale=1,
                        )
                        base = gr.Dropdown(
                            ["any", "sd15", "sd2", "sdxl", "unknown"], value="any", label="Base", scale=1
                        )
                    refresh = gr.Button("Rescan LoRA folders", size="sm")
                    library_note = gr.Markdown(
                        "Click a card to insert its tag and trigger words into the prompt.",
                        elem_id="library-note",
                    )
                    library_cards = gr.Dataset(
                        components=[gr.Image(type="filepath", visible=False), gr.HTML(visible=False)],
                        headers=["Preview", "LoRA"],
                        samples=initial_rows,
                        samples_per_page=12,
                        type="index",
                        layout="table",
                        elem_id="library-cards",
                        label="LoRA library",
                    )
                with gr.Tab("History", id="history-tab"):
                    history_refresh = gr.Button("Refresh", size="sm")
                    history_gallery = gr.Gallery(
                        label="Your saved images (newest first; nobody else sees them)"
                        if service.history_policy.private
                        else "Saved images (newest first)",
                        columns=4,
                        height=560,
                        elem_id="history",
                    )
                with gr.Tab("Train", id="train-tab"):
                    train_tab = train_ui.build_tab(service)

        library_listing = gr.JSON(visible=False)
        settings_inputs = [sampler, steps, cfg, width, height, seed, batch]

        # -- events --------------------------------------------------------------------------------
        # Requests stream (generators) and queue per session themselves (assistant.ui.conversation),
        # so they take no Gradio concurrency slot while they wait, and a second message or click
        # during a render is accepted (trigger_mode="multiple"), shown as queued and run after.
        stream = {
            "concurrency_limit": None,
            "trigger_mode": "multiple",
            "show_progress": "hidden",
        }
        # the image panel's values reach each handler as one ImageInputs (assistant.ui.img2img.bind);
        # what a turn fills in (an image's parameters, an attached photo) goes through fill_state
        fill_state = gr.State({})
        fill_outputs = [
            sampler, steps, cfg, width, height, seed,
            panel.init_image, panel.strength, panel.hires, panel.hr_upscaler, panel.hr_scale, panel.hr_steps,
            panel.hr_strength,
        ]  # fmt: skip
        gr.on(
            [send.click, message.submit],
            gpu(friendly(bind(h.chat, head=13))),
            inputs=[
                message,
                chatbot,
                positive,
                negative,
                apply_changes,
                *settings_inputs,
                recipe_state,
                *panel.inputs,
            ],
            outputs=[chatbot, message, positive, negative, fill_state],
            api_name="chat",
            **stream,
        )
        generate_btn.click(
            gpu(friendly(bind(h.generate, head=11))),
            inputs=[positive, negative, apply_changes, *settings_inputs, chatbot, *panel.inputs],
            outputs=[chatbot, positive, negative],
            api_name="generate",
            **stream,
        )
        blindbox_btn.click(
            gpu(friendly(bind(h.blindbox, head=13))),
            inputs=[
                positive,
                negative,
                apply_changes,
                blind_count,
                *settings_inputs,
                chatbot,
                recipe_state,
                *panel.inputs,
            ],
            outputs=[chatbot, positive, negative],
            api_name="blindbox",
            **stream,
        )
        ab_btn.click(
            gpu(friendly(bind(h.ab, head=13))),
            inputs=[positive, negative, apply_changes, ab_a, ab_b, *settings_inputs, chatbot, *panel.inputs],
            outputs=[chatbot, positive, negative],
            api_name="ab",
            **stream,
        )
        sweep_btn.click(
            gpu(friendly(bind(h.sweep, head=13))),
            inputs=[
                positive,
                negative,
                apply_changes,
                sweep_x,
                sweep_y,
                *settings_inputs,
                chatbot,
                *panel.inputs,
            ],
            outputs=[chatbot, positive, negative],
            api_name="sweep",
            **stream,
        )
        panel.restore_file.upload(
            friendly(h.restore),
            inputs=[panel.restore_file, panel.init_image, positive, negative],
            outputs=[positive, negative, fill_state, panel.restore_note, panel.restore_file],
            api_name="restore_image",
            concurrency_limit=None,
        )
        fill_state.change(
            apply_fill,
            inputs=[fill_state, *fill_outputs],
            outputs=fill_outputs,
            api_name="apply_fill",
            api_visibility="private",
            concurrency_limit=None,
            show_progress="hidden",
        )
        demo.load(None, None, None, js=DROP_JS)
        # Cancel sets the session's flags: the running render stops after its current step and says
        # where; queued requests say they were cancelled before they started. (Gradio's own
        # `cancels=` would kill the stream before it could say so.)
        cancel.click(friendly(h.cancel), None, None, api_name="cancel", concurrency_limit=None, queue=False)
        chatbot.clear(h.clear, None, None, api_name="clear_chat", api_visibility="private", queue=False)
        demo.unload(h.forget)

        gr.on(
            [search.submit, kind.change, base.change],
            friendly(h.library),
            inputs=[search, kind, base],
            outputs=[library_cards, card_names, library_listing, library_note],
            api_name="loras",
            concurrency_limit=None,
        )
        refresh.click(
            friendly(h.refresh_library),
            inputs=[search, kind, base],
            outputs=[library_cards, card_names, library_listing, library_note],
            api_name="refresh_loras",
        )
        library_cards.click(
            friendly(h.insert_card),
            inputs=[library_cards, card_names, positive],
            outputs=[positive, library_note],
            api_name="insert_card",
            concurrency_limit=None,
        )
        insert_name = gr.Textbox(visible=False)
        insert_btn = gr.Button(visible=False)
        insert_btn.click(
            friendly(h.insert_lora),
            inputs=[insert_name, positive],
            outputs=[positive],
            api_name="insert_lora",
            concurrency_limit=None,
        )

        positive.change(
            friendly(h.sliders),
            inputs=[positive],
            outputs=weight_sliders,
            api_name="lora_sliders",
            concurrency_limit=None,
            show_progress="hidden",
        )
        for i, slider in enumerate(weight_sliders):
            # dragging, and typing a number into the slider's box (each keystroke is an input),
            # write the weight into the prompt; the last value wins
            gr.on(
                [slider.input, slider.release],
                friendly(h.weight_setter(i)),
                inputs=[slider, positive],
                outputs=[positive],
                api_name=f"set_weight_{i + 1}",
                concurrency_limit=None,
                show_progress="hidden",
                trigger_mode="always_last",
            )
        recipe.change(
            friendly(h.recipe),
            inputs=[recipe, positive, negative, recipe_state, sampler, steps, cfg, width, height, seed],
            outputs=[positive, negative, recipe_note, recipe_state, sampler, steps, cfg, width, height, seed],
            api_name="recipe",
            concurrency_limit=None,
        )
        history_refresh.click(h.history, None, [history_gallery], api_name="history", concurrency_limit=None)
        # a finished training rescans the library (the service does); the cards show the new LoRA
        train_ui.wire(train_tab, train_ui.TrainHandlers(service), wrap=friendly).then(
            friendly(h.library),
            inputs=[search, kind, base],
            outputs=[library_cards, card_names, library_listing, library_note],
            api_visibility="private",
        )

        # -- per-session state: the apply choice and the prompts survive a reload ------------------
        apply_changes.change(
            lambda value: {"apply": bool(value)},
            [apply_changes],
            [apply_store],
            api_name="remember_apply",
            api_visibility="private",
        )
        gr.on(
            [positive.change, negative.change],
            lambda p, n: [p, n],
            [positive, negative],
            [prompt_store],
            api_name="remember_prompts",
            api_visibility="private",
            show_progress="hidden",
        )

        def _restore(apply_value: Any, stored: Any) -> tuple[Any, Any, Any]:
            """The stored choice and prompts; nothing stored means nothing to set (a box the user
            typed into while the page loaded keeps what they typed)."""
            stored_apply = apply_value.get("apply") if isinstance(apply_value, dict) else apply_value
            p, n = ([*stored, "", ""])[:2] if isinstance(stored, list) else ("", "")
            return (
                stored_apply if stored_apply is False else gr.skip(),
                str(p) if p else gr.skip(),
                str(n) if n else gr.skip(),
            )

        demo.load(
            _restore,
            [apply_store, prompt_store],
            [apply_changes, positive, negative],
            api_name="restore",
            api_visibility="private",
        )
        model_choice.input(
            h.switch_model,
            [model_choice],
            [model_choice, status, banner, sampler],
            api_name="switch_model",
        )
        gr.on(
            [clip_skip.release, rng.input, vae.input],
            h.set_options,
            [clip_skip, rng, vae],
            [clip_skip, rng, vae, status],
            api_name="set_options",
        )
        status_timer = gr.Timer(2.0)
        gr.on(
            [demo.load, status_timer.tick],
            h.status,
            None,
            [status, banner, sampler, status_timer],
            api_name="status",
            concurrency_limit=None,
            show_progress="hidden",
        )
        demo.load(
            h.history,
            None,
            [history_gallery],
            api_name="history_on_load",
            api_visibility="private",
            concurrency_limit=None,
        )
    return demo


# ----------------------------------------------------------------------------------------------
# Launch
# ----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python app.py", description="LoRA Mixer web app and A1111-compatible API"
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on (0.0.0.0 for all)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        help="port (default 7860)",
    )
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument(
        "--model", help="base model: hub id, diffusers folder or .safetensors (default: tiny demo pipeline)"
    )
    parser.add_argument(
        "--lora-dir", action="append", dest="lora_dirs", metavar="DIR", help="LoRA folder (repeatable)"
    )
    parser.add_argument(
        "--models-dir", help="checkpoints to switch between in the UI (default: models/Stable-diffusion)"
    )
    parser.add_argument("--outputs", help="folder for generated images (default: ./outputs)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 … (default: auto)")
    add_model_options(parser)  # --clip-skip --rng --emphasis --vae --vae-dir --embeddings-dir --low-vram
    parser.add_argument("--config", help="YAML settings file (default: lora-mixer.yaml if present)")
    parser.add_argument(
        "--max-queue", type=int, default=32, help="waiting requests before new ones are refused"
    )
    parser.add_argument(
        "--max-file-size",
        default=f"{limits.IMAGE_BYTES // (1024 * 1024)}mb",
        help="largest upload accepted (default: the image limit of assistant.limits)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    access = parser.add_argument_group("sign-in and histories (see README, 'Shared servers')")
    access.add_argument(
        "--auth",
        metavar="USER:PASS[,USER2:PASS2]",
        help="require a sign-in for the UI (LORA_MIXER_AUTH); prefer --auth-file: flags show in `ps`",
    )
    access.add_argument(
        "--auth-file", metavar="FILE", help="user:password entries, one per line (LORA_MIXER_AUTH_FILE)"
    )
    access.add_argument(
        "--api-auth",
        metavar="USER:PASS[,…]",
        help="HTTP Basic for /sdapi/v1 (LORA_MIXER_API_AUTH; default: the UI's users when --auth is set)",
    )
    access.add_argument(
        "--history",
        choices=owners.HISTORY_MODES,
        default=None,
        help="private: each user/browser session sees its own images; shared: one server-wide gallery; "
        "auto (default, LORA_MIXER_HISTORY): private unless only this machine can reach the server",
    )
    scale = parser.add_argument_group("scale-out (optional extra: pip install -r requirements-ray.txt)")
    scale.add_argument(
        "--engine", choices=ENGINE_KINDS, default=None, help="local (default) or ray (LORA_MIXER_ENGINE)"
    )
    scale.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to join: auto, HOST:6379 (LORA_MIXER_RAY_ADDRESS; default: start one here)",
    )
    scale.add_argument(
        "--replicas",
        type=int,
        default=None,
        metavar="N",
        help="engine replicas, one GPU each (LORA_MIXER_REPLICAS)",
    )
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Defaults < YAML < environment < these command-line flags."""
    settings = load_settings(args.config)
    settings = settings.replace(
        model=args.model,
        lora_dirs=tuple(args.lora_dirs) if args.lora_dirs else None,
        outputs_dir=args.outputs,
        device=args.device,
        models_dir=args.models_dir,
    )
    return model_settings(settings, args)


def blocked_paths(settings: Settings) -> list[str]:
    """Folders the web server must never serve: LoRA folders, a local model, the models folder."""
    paths = [str(Path(d).expanduser().resolve()) for d in settings.lora_dirs]
    for model in (settings.model, settings.models_dir):
        if model and Path(model).expanduser().exists():
            paths.append(str(Path(model).expanduser().resolve()))
    return paths


def warn_exposure(args: argparse.Namespace, auth: AuthConfig) -> None:
    """A loud start-up warning when people other than this machine's can use the server unsigned."""
    for warning in exposure_warnings(
        host=args.host, share=args.share, auth=auth, space=bool(os.environ.get("SPACE_ID"))
    ):
        bar = "!" * 78
        log.warning("\n%s\n!! %s\n%s", bar, warning, bar)
    auth_file = args.auth_file or os.environ.get("LORA_MIXER_AUTH_FILE")
    if auth_file and not file_is_private(auth_file):
        log.warning("%s can be read by other users of this machine; chmod 600 it", auth_file)


def launch(service: Service, args: argparse.Namespace, auth: AuthConfig | None = None) -> None:
    """Build the UI, add the API routes, serve both on one port, then load the engine.

    The pipeline loads in a background thread *after* the server listens, so the page answers
    at once (torch imports would otherwise slow Gradio's start); renders wait for it. Blocks
    until the server stops (Ctrl+C), then frees the engine (a Ray engine stops its replicas).
    """
    from assistant import api

    auth = auth or AuthConfig()
    warn_exposure(args, auth)
    # renders queue in the service (one per engine worker: one in-process, one per Ray replica)
    demo = build_demo(service, max_waiting=args.max_queue)
    demo.queue(default_concurrency_limit=1, max_size=args.max_queue)
    outputs = service.outputs_dir
    outputs.mkdir(parents=True, exist_ok=True)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=args.max_file_size,
        allowed_paths=[str(outputs), str(thumbs_dir(service.settings))],
        blocked_paths=blocked_paths(service.settings),
        enable_monitoring=False,
        show_error=False,
        ssr_mode=False,
        footer_links=["api", "gradio"],
        auth=auth.ui or None,
        auth_message="Sign in to LoRA Mixer." if auth.ui else None,
        app_kwargs=api.app_kwargs(service, max_waiting=args.max_queue, auth=auth),
        css=CSS + IMAGE_CSS,
        theme=gr.themes.Soft(primary_hue="indigo", secondary_hue="pink"),
        prevent_thread_lock=True,
    )
    service.start(background=True)
    try:
        demo.block_thread()
    finally:
        service.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_args(args)
        auth = load_auth(auth=args.auth, auth_file=args.auth_file, api_auth=args.api_auth)
        options = EngineOptions.from_env(
            kind=args.engine, ray_address=args.ray_address, replicas=args.replicas
        )
        private = owners.history_is_private(
            args.history or os.environ.get("LORA_MIXER_HISTORY", "auto"),
            signed_in=bool(auth.ui),
            space=bool(os.environ.get("SPACE_ID")),
            public=args.share or not is_loopback(args.host),
        )
    except LoraMixerError as err:  # never echoes a password (see assistant.auth)
        log.error("%s", err)
        return 2
    service = Service(settings, engine_options=options, history=owners.HistoryPolicy(private=private))
    log.info(
        "histories are %s; engine: %s",
        "private (each user or browser session sees its own)" if private else "shared (one gallery)",
        options.kind if options.kind == "local" else f"{options.kind}, {options.replicas} replica(s)",
    )
    launch(service, args, auth)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
