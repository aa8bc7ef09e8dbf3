"""The one place the Gradio app, the A1111 API and the tests call to *do* something.

A :class:`Service` owns one engine, one LoRA library, the recipes and the settings. It has a
method per user action — chat turn, advise, generate, blind box, A/B, sweep, list LoRAs,
refresh — which converts plain values (strings, numbers) into core types, runs the core, renders
through the engine under ONE lock, saves every image with its A1111 infotext under the outputs
folder, and returns plain result objects. ``app.py`` and ``assistant/api.py`` only convert their
own inputs/outputs around these calls, so both front ends behave identically.

Boundary: this module imports no gradio and no torch at import time. The engine (torch) is
imported when :meth:`Service.start` loads it, in a background thread by default so the web server
answers before the pipeline is ready; actions that render wait for it. The engine is anything
that implements :class:`assistant.backend.Engine`: the in-process one, or Ray Serve replicas
(``EngineOptions(kind="ray")``), which render ``capacity`` requests at once.

Whose files: every image is saved in the folder of the requester bound by the front end
(:mod:`assistant.owners`), and :meth:`Service.history` lists only that requester's files when the
:class:`~assistant.owners.HistoryPolicy` is private.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import limits, owners
from .backend import Engine, EngineInfo, EngineOptions, ScaledEngine, create_engine, swap_engine
from .blend import BLINDBOX_DEFAULT_CELLS
from .config import EMBEDDED_MODEL, TINY_MODELS, VAE_AUTOMATIC, VAE_NONE, Settings
from .engine.checks import wrap_seed
from .errors import (
    Cancelled,
    GenerationError,
    LimitError,
    LoraMixerError,
    ModelSwitchDisabled,
    PromptError,
)
from .img2img import sampling_steps
from .messages import AS_WRITTEN, IMAGE_UNUSED, describe_plan, format_advice, img2img_line, render_summary
from .owners import HistoryPolicy, Requester
from .types import (
    DEFAULT_SAMPLER,
    RESIZE_MODES,
    Advice,
    GenerationRequest,
    GenerationResult,
    HiresFix,
    InitImage,
    LoraInfo,
    PlannedLora,
    format_weight,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .blend import Axis, Plan
    from .chat import ChatAction, ChatMemory, ChatReply
    from .library import Library
    from .pnginfo import ImageReport

log = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------------------------
# Render settings: one validation for UI and API
# ----------------------------------------------------------------------------------------------

#: Inclusive bounds shared by the UI sliders, the API schema and :meth:`RenderSettings.validated`
#: (the numbers live in :mod:`assistant.limits`).
LIMITS: dict[str, tuple[float, float]] = {
    "steps": limits.STEPS,
    "cfg": limits.CFG,
    "width": limits.SIZE,
    "height": limits.SIZE,
    "batch_size": limits.BATCH_SIZE,
    "n_iter": limits.BATCH_COUNT,
    "seed": limits.SEED,
}
SIZE_MULTIPLE = limits.SIZE_MULTIPLE
MAX_PIXELS_PER_ACTION = limits.PIXELS_PER_ACTION  # width*height*images for one call (memory guard)
HASH_ON_LIST_MAX_BYTES = 64 * 1024 * 1024  # listing hashes files up to this size (cached on disk)


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """Sampler settings chosen in the UI's accordion or sent to ``/sdapi/v1/txt2img``."""

    sampler: str = DEFAULT_SAMPLER
    scheduler: str | None = None
    steps: int = limits.STEPS_DEFAULT
    cfg: float = limits.CFG_DEFAULT
    width: int = 512
    height: int = 512
    seed: int = -1
    batch_size: int = 1
    n_iter: int = 1
    #: A1111 model settings for this render (API ``override_settings``); None = the server's
    clip_skip: int | None = None
    rng: str | None = None
    emphasis: str | None = None
    #: img2img (an init image) or txt2img's hires fix; ``denoising_strength`` None = A1111's
    #: default for the one in use (img2img 0.75, hires fix 0.7)
    init_image: InitImage | None = None
    denoising_strength: float | None = None
    resize_mode: int = 0
    hires: HiresFix | None = None
    #: False (default): a LoRA that cannot be applied is left out with a warning naming it and
    #: why, the rest of the mix renders; True: it fails the render (the API's ``"strict": true``)
    strict_loras: bool = False

    def validated(self) -> RenderSettings:
        """This object with numbers normalised, or :class:`LimitError` naming value and range."""
        values: dict[str, Any] = {}
        for name in ("steps", "width", "height", "batch_size", "n_iter", "seed"):
            values[name] = _whole(name, getattr(self, name))
        values["cfg"] = _finite("cfg", self.cfg)
        for name, value in values.items():
            low, high = LIMITS[name]
            if not low <= value <= high:
                raise LimitError(
                    f"{_LABELS[name]} {_fmt(value)} is out of range; "
                    f"use a value from {_fmt(low)} to {_fmt(high)}"
                )
        for name in ("width", "height"):
            if values[name] % SIZE_MULTIPLE:
                raise LimitError(
                    f"{_LABELS[name]} {values[name]} is not a multiple of {SIZE_MULTIPLE}; "
                    f"try {values[name] // SIZE_MULTIPLE * SIZE_MULTIPLE or SIZE_MULTIPLE}"
                )
        pixels = values["width"] * values["height"] * values["batch_size"] * values["n_iter"]
        if pixels > MAX_PIXELS_PER_ACTION:
            raise LimitError(
                f"{values['width']}x{values['height']} x {values['batch_size'] * values['n_iter']} images is "
                f"too much for one call; keep width x height x images under {MAX_PIXELS_PER_ACTION:,} pixels"
            )
        from .engine.checks import EMPHASIS_MODES, MAX_CLIP_SKIP, RNG_SOURCES, normalize_choice

        if self.clip_skip is not None:
            values["clip_skip"] = _whole("clip skip", self.clip_skip)
            if not 1 <= values["clip_skip"] <= MAX_CLIP_SKIP:
                raise LimitError(
                    f"clip skip {values['clip_skip']} is out of range; use a value from 1 to {MAX_CLIP_SKIP}"
                )
        try:
            if self.rng is not None:
                values["rng"] = normalize_choice("RNG", self.rng, RNG_SOURCES)
            if self.emphasis is not None:
                values["emphasis"] = normalize_choice("emphasis", self.emphasis, EMPHASIS_MODES)
        except LoraMixerError as exc:
            raise PromptError(str(exc)) from None
        sampler = (self.sampler or DEFAULT_SAMPLER).strip()
        scheduler = (self.scheduler or "").strip() or None
        if scheduler is not None and scheduler.lower() == "automatic":
            scheduler = None
        values.update(self._img2img_values(values))
        return dataclasses.replace(self, sampler=sampler, scheduler=scheduler, **values)

    def _img2img_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """The img2img / hires-fix fields checked (denoising strength, resize mode, hires target)."""
        from .img2img import canonical_upscaler, check_hires

        out: dict[str, Any] = {}
        if self.denoising_strength is not None:
            strength = _finite("denoising strength", self.denoising_strength)
            low, high = limits.DENOISING
            if not low <= strength <= high:
                raise PromptError(
                    f"denoising strength {_fmt(strength)} is out of range; use {low:g} to {high:g}"
                )
            out["denoising_strength"] = strength
        mode = _whole("resize mode", self.resize_mode)
        if not 0 <= mode < len(RESIZE_MODES):
            names = ", ".join(f"{i} ({name})" for i, name in enumerate(RESIZE_MODES))
            raise PromptError(f"resize mode {mode} is not one of A1111's: {names}")
        out["resize_mode"] = mode
        if self.init_image is not None and not isinstance(self.init_image, InitImage):
            raise PromptError("the init image must be read with assistant.images first")
        if self.hires is not None:
            if self.init_image is not None:
                raise PromptError(
                    "the hires fix is a txt2img option (as in A1111): remove the init image, or set the "
                    "img2img width and height instead"
                )
            hires = dataclasses.replace(self.hires, upscaler=canonical_upscaler(self.hires.upscaler))
            batch = values["batch_size"]
            check_hires(values["width"], values["height"], hires, batch)
            out["hires"] = hires
        return out

    @property
    def strength(self) -> float:
        """The denoising strength a render uses (A1111's defaults when none was given)."""
        if self.denoising_strength is not None:
            return float(self.denoising_strength)
        return limits.HIRES_DENOISING_DEFAULT if self.hires is not None else limits.DENOISING_DEFAULT

    def request(
        self, prompt: str, negative: str, loras: Sequence[PlannedLora], **extra: Any
    ) -> GenerationRequest:
        """A :class:`GenerationRequest` for these settings (call :meth:`validated` first)."""
        return GenerationRequest(
            prompt=prompt,
            negative=negative,
            loras=tuple(loras),
            seed=self.seed,
            steps=self.steps,
            cfg=self.cfg,
            sampler=self.sampler,
            scheduler=self.scheduler,
            width=self.width,
            height=self.height,
            batch_size=self.batch_size,
            **{k: v for k in ("clip_skip", "rng", "emphasis") if (v := getattr(self, k)) is not None},
            init_image=self.init_image,
            denoising_strength=self.strength,
            resize_mode=self.resize_mode,
            hires=self.hires,
            leave_out_unloadable=not self.strict_loras,
            **extra,
        )


_LABELS = {
    "steps": "steps",
    "cfg": "CFG scale",
    "width": "width",
    "height": "height",
    "batch_size": "batch size",
    "n_iter": "batch count (n_iter)",
    "seed": "seed",
    "clip skip": "clip skip",
    "denoising strength": "denoising strength",
    "resize mode": "resize mode",
}


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _whole(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise PromptError(f"{_LABELS[name]} must be a whole number, not {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise PromptError(f"{_LABELS[name]} must be a whole number, not {value!r}")
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise PromptError(f"{_LABELS[name]} must be a whole number, not {value!r}") from None


def _finite(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PromptError(f"{_LABELS[name]} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        low, high = LIMITS[name]
        raise LimitError(
            f"{_LABELS[name]} {value!r} is not a finite number; use a value from {_fmt(low)} to {_fmt(high)}"
        )
    return number


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendered:
    """One generate action: what was asked, what the assistant changed, what came out, where saved."""

    request: GenerationRequest
    results: tuple[GenerationResult, ...]
    paths: tuple[str, ...]
    advice: Advice | None = None
    notes: tuple[str, ...] = ()

    @property
    def images(self) -> list[Any]:
        return [image for result in self.results for image in result.images]

    @property
    def infotexts(self) -> list[str]:
        return [text for result in self.results for text in result.infotexts]

    @property
    def seeds(self) -> list[int]:
        return [seed for result in self.results for seed in result.seeds]


@dataclass(frozen=True, slots=True)
class PlanRendered:
    """A blind box / A/B / sweep: the plan, each cell's result and the saved grid."""

    kind: str
    plan: Plan
    results: tuple[GenerationResult, ...]
    grid_path: str
    cell_paths: tuple[str, ...]
    manifest_path: str
    advice: Advice | None = None
    #: what the grid's analysis found (A/B difference, sweep effect curve), and its images
    notes: tuple[str, ...] = ()
    extra_images: tuple[str, ...] = ()
    analysis: dict[str, Any] | None = None
    #: what saving the grid noticed (a label font missing, labels shortened …)
    saved_notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return self.plan.title or self.kind


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """The assistant's reply to one chat message, ready for any front end."""

    markdown: str
    positive: str
    negative: str
    intent: str
    images: tuple[str, ...] = ()
    advice: Advice | None = None
    rendered: Rendered | PlanRendered | None = None
    memory: ChatMemory | None = None


@dataclass(frozen=True, slots=True)
class RenderJob:
    """A render a turn decided on but has not run: ``run(progress, cancel, on_wait)``.

    ``steps`` counts sampler steps over the whole action (what progress reports count to).
    """

    kind: str
    steps: int
    run: Callable[..., Rendered | PlanRendered]


@dataclass(frozen=True, slots=True)
class Turn:
    """One chat message or button, answered before anything renders.

    ``markdown`` is the reply (the rewrite with its reasons, or the whole answer); ``positive``/
    ``negative`` what the prompt boxes hold after it; ``memory`` the conversation's memory after it
    (chat turns); ``job`` the render to run next, or None when the reply is the whole answer.
    """

    markdown: str
    positive: str
    negative: str
    intent: str
    advice: Advice | None = None
    memory: ChatMemory | None = None
    job: RenderJob | None = None
    #: settings the UI should show after this turn (A1111's "Send to txt2img", an attached image
    #: put in the Init image slot …): RenderSettings field names plus "init_image" (a file path,
    #: or "" to empty the slot) and "hires" (a HiresFix, or None to switch it off). Absent: unchanged.
    fill: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One saved image in the outputs folder (newest first in :meth:`Service.history`)."""

    path: str
    prompt: str
    seed: int | None
    mtime: float = field(default=0.0, compare=False)


# ----------------------------------------------------------------------------------------------
# The service
# ----------------------------------------------------------------------------------------------


def model_label(model: str) -> str:
    """A base model's short name: a checkpoint's stem, a folder's name, a hub id or tiny name as is."""
    path = Path(model)
    if path.suffix in (".safetensors", ".ckpt"):
        return path.stem
    if model.startswith(("/", "~", ".")) or path.is_dir():
        return path.name or model
    return model


class Service:
    """Engine + library + settings behind one gate; the API and the app share one instance.

    ``engine`` and ``library`` can be injected (tests); otherwise :meth:`start` builds them from
    ``settings`` and ``engine_options`` (in-process by default). Rendering methods are
    thread-safe: as many renders run at once as the engine's ``capacity`` (one in-process).
    ``history`` decides whether the History is private per user/session or server-wide.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        library: Library | None = None,
        engine_options: EngineOptions | None = None,
        history: HistoryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self._configured_model = settings.model  # stays first in models() after a switch
        self._engine: Engine | None = engine
        self._engine_options = (engine_options or EngineOptions()).validated()
        self.history_policy = history or HistoryPolicy()
        self._library = library
        self._engine_info: EngineInfo | None = None
        self._engine_error: BaseException | None = None
        self._ready = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()
        self._render_lock = FairLock(self._engine_options.capacity)
        self._save_lock = threading.Lock()
        self._library_lock = threading.Lock()
        self._recipes: dict[str, Any] | None = None
        self._known_hashes: dict[str, str] = {}
        self._training: Any | None = None
        #: the base family advice assumes before a model has loaded (the CLI's ``--base`` in a dry
        #: run); None: guessed from the configured model's name
        self.assumed_base: str | None = None
        self._hash_on_load = True
        self.started_at = time.monotonic()

    # 1. lifecycle ------------------------------------------------------------------------------

    def start(self, *, background: bool = True, hash_library: bool = True) -> None:
        """Scan the library now and load the engine (in a daemon thread when ``background``);
        then hash the library for the listings in a daemon thread unless ``hash_library`` is
        False (a one-shot command: renders hash the files they use anyway)."""
        self.library  # noqa: B018 - scans on first access
        with self._start_lock:
            if self._started:
                return
            self._started = True
            self._hash_on_load = hash_library
        if background:
            threading.Thread(target=self._load_engine, name="engine-load", daemon=True).start()
        else:
            self._load_engine()

    def _load_engine(self) -> None:
        try:
            if self._engine is None:  # torch (or Ray) is imported here, not at module import
                self._engine = create_engine(self.settings, self._engine_options)
            self._engine_info = self._engine.load()
            if isinstance(self._engine, ScaledEngine):
                self._render_lock.resize(self._engine.capacity)
            log.info("engine ready: %s", self._engine_info.banner or self._engine_info.model_name)
        except Exception as exc:  # reported to every later render as a GenerationError
            log.exception("engine failed to load")
            self._engine_error = exc
        finally:
            self._ready.set()
            # then, not before: on two cores hashing would slow the model's start
            if self._hash_on_load:
                threading.Thread(target=self._hash_library, name="hash-loras", daemon=True).start()

    def wait_ready(self, timeout: float | None = 300.0) -> EngineInfo | None:
        """The loaded engine's ``EngineInfo``; raises GenerationError when loading failed."""
        if not self._ready.is_set():
            self.start(background=True)  # no-op when already started
        if not self._ready.wait(timeout):
            raise GenerationError(f"the model is still loading after {timeout:.0f} s; try again in a moment")
        if self._engine_error is not None:
            message = (
                str(self._engine_error)
                if isinstance(self._engine_error, LoraMixerError)
                else f"{type(self._engine_error).__name__}: {self._engine_error}"
            )
            raise GenerationError(f"the model could not be loaded: {message}")
        return self._engine_info

    @property
    def loaded(self) -> bool:
        """True once loading has finished, successfully or not (never blocks)."""
        return self._ready.is_set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._engine_error is None

    @property
    def engine_info(self) -> EngineInfo | None:
        """``EngineInfo`` once loaded, else None (never blocks)."""
        return self._engine_info

    @property
    def capacity(self) -> int:
        """Renders that run at once (the engine's workers); more wait in order."""
        return self._render_lock.capacity

    def close(self) -> None:
        """Free the engine (a Ray engine stops the replicas it started); the service can start again."""
        with self._start_lock:
            engine, self._engine = self._engine, None
            self._started = False
        self._ready.clear()
        self._engine_info = None
        if engine is not None:
            engine.close()

    @property
    def uses_tiny_model(self) -> bool:
        info = self._engine_info
        return info.is_tiny if info is not None else self.settings.uses_tiny_model

    def status_line(self) -> str:
        """One line for the UI header: model, device, LoRA count, or loading/failed."""
        if not self._ready.is_set():
            state = "loading the model…"
        elif self._engine_error is not None:
            state = f"model failed to load: {self._engine_error}"
        else:
            info = self._engine_info
            if info is None:
                state = "model **?**"
            else:
                state = f"model **{info.model_name}**" + (f" ({info.family})" if info.family else "")
                state += f" on {info.device}"
                if info.vae_name:
                    state += f" · VAE {info.vae_name}"
                if info.backend:
                    state += f" · {info.backend}"
        library = self._library
        count = len(library.loadable()) if library is not None else 0
        return f"{state} · {count} LoRA{'s' if count != 1 else ''} in the library"

    # 1b. base models ---------------------------------------------------------------------------

    def models(self) -> list[str]:
        """The base models one can switch to, as ``--model`` values: the configured one, every
        ``.safetensors`` checkpoint and diffusers folder in ``settings.models_dir``, and the two
        tiny demo pipelines."""
        found: list[str] = []
        if self._configured_model:
            found.append(self._configured_model)
        folder = Path(self.settings.models_dir or "").expanduser()
        if self.settings.models_dir and folder.is_dir():
            for entry in sorted(folder.iterdir(), key=lambda p: p.name.casefold()):
                checkpoint = entry.suffix == ".safetensors" and entry.is_file()
                if checkpoint or (entry / "model_index.json").is_file():
                    found.append(str(entry))
        if _embedded_available():
            found.append(EMBEDDED_MODEL)
        found += TINY_MODELS
        return list(dict.fromkeys(found))

    def current_model(self) -> str:
        """The ``--model`` value of the running pipeline (a tiny one's name when it runs)."""
        info = self._engine_info
        if info is not None and info.model_name == EMBEDDED_MODEL:
            return EMBEDDED_MODEL
        if info is not None and info.is_tiny:
            return TINY_MODELS[1] if info.base == "sdxl" else TINY_MODELS[0]
        return self.settings.model or (EMBEDDED_MODEL if _embedded_available() else TINY_MODELS[0])

    def banner(self) -> str:
        """The demo-model banner (markdown) for the UI: what the running tiny model can draw, or
        that its images are noise; "" for a real model."""
        from .ui.messages import EMBEDDED_BANNER, TINY_BANNER

        info = self._engine_info
        if info is not None:
            if not info.is_tiny:
                return ""
            return EMBEDDED_BANNER if info.model_name == EMBEDDED_MODEL else TINY_BANNER
        if self.settings.model and self.settings.model != EMBEDDED_MODEL:
            return TINY_BANNER if self.settings.model in TINY_MODELS else ""
        return EMBEDDED_BANNER if _embedded_available() else TINY_BANNER

    def default_size(self) -> int:
        """The image size renders default to: the model's native size (128 for the embedded one)."""
        info = self._engine_info
        if info is not None:
            return info.default_size
        if not self.settings.model or self.settings.model == EMBEDDED_MODEL:
            return 128 if _embedded_available() else 256
        return 256 if self.settings.model in TINY_MODELS else 512

    def switch_model(self, model: str) -> EngineInfo:
        """Load another base model and render with it from now on; returns its ``EngineInfo``.

        ``model`` is one of :meth:`models` or its :func:`model_label`. The new model loads while
        renders wait; when it cannot load, the running one stays and :class:`GenerationError` says
        why (the engine's fallback to the tiny pipeline is not taken here). On a GPU the running
        model is freed first (two SD models rarely fit at once) and loaded again after a failure.
        A scaled engine (Ray) switches every replica itself, with the same rules.
        """
        if not self.settings.model_switch_allowed:
            raise ModelSwitchDisabled(
                "switching the base model is turned off on this server (a shared Space: one visitor's "
                "switch would change everyone's model); its owner can allow it with "
                "LORA_MIXER_ALLOW_MODEL_SWITCH=1"
            )
        wanted = self._find_model(model)
        self._ready.wait()
        with self._render_lock.exclusive():
            if wanted == self.current_model() and self._engine_error is None and self._engine_info:
                return self._engine_info
            settings = self.settings.replace(model=wanted)
            engine = self._engine
            try:
                if isinstance(engine, ScaledEngine):
                    info = engine.switch_model(settings)
                else:
                    options = self._engine_options
                    engine, info = swap_engine(
                        engine, self._engine_info, settings, lambda s: create_engine(s, options)
                    )
            except LoraMixerError as err:
                raise GenerationError(f"could not switch to {model_label(wanted)}: {err}") from err
            self._engine = engine
            self._engine_info, self._engine_error, self.settings = info, None, settings
        log.info("switched the base model to %s", model_label(wanted))
        return info

    def _find_model(self, model: str) -> str:
        text = (model or "").strip()
        choices = self.models()
        for choice in choices:
            if text in (choice, model_label(choice)):
                return choice
        # A1111 clients send titles ("name [hash]"); infotexts name the model as the engine does
        # ("tiny-sd15-demo", a hub id's last part, a checkpoint's stem)
        folded = text.split(" [")[0].strip().casefold()
        for choice in choices:
            path = Path(choice)
            names = {model_label(choice), path.name, path.stem, f"{choice}-demo"}
            if folded and folded in {n.casefold() for n in names}:
                return choice
        raise PromptError(
            f"unknown base model {text!r}; available: {', '.join(model_label(c) for c in choices)}"
        )

    # 2. library ----------------------------------------------------------------------------------

    @property
    def library(self) -> Library:
        with self._library_lock:
            if self._library is None:
                from .library import Library

                self._library = Library.scan(
                    self.settings.lora_dirs,
                    catalog=self.settings.catalog,
                    cache_dir=self.settings.cache_dir,
                    embedding_dirs=self.settings.embeddings_dirs,
                )
            return self._library

    def loras(self, query: str = "", *, kind: str | None = None, base: str | None = None) -> list[LoraInfo]:
        """LoRAs matching ``query`` (name, alias, trigger), ``kind`` and ``base`` ("" or None: any)."""
        library = self.library
        query = (query or "").strip()
        kind = kind or None
        base = base or None
        if not query and kind is None and base is None:
            return list(library.all())
        return list(library.search(query, kind=kind, base=base))

    def lora_hash(self, info: LoraInfo) -> str:
        """A1111's short LoRA hash (12 hex) for listings, "" while unknown.

        Never reads a LoRA file (a listing must not wait for hundreds of MB): the hash comes from
        the file's embedded ``sshs_model_hash``, a render that used it, or the disk cache, which
        :meth:`start` fills in a background thread (files up to ``HASH_ON_LIST_MAX_BYTES``).
        """
        if info.status != "ok":
            return ""
        known = self._known_hashes.get(info.path)
        if known is not None:
            return known
        try:
            hashes = self.library.cached_hashes(info)
        except (LoraMixerError, OSError):
            return ""
        if hashes is None:
            from .library import embedded_hash

            return embedded_hash(info)[:12]
        self._known_hashes[info.path] = hashes.infotext
        return hashes.infotext

    def _hash_library(self) -> None:
        """Background: hash the library's files into the disk cache so the cards can show them."""
        try:
            read = self.library.hash_all(max_bytes=HASH_ON_LIST_MAX_BYTES)
            if read:
                log.info("hashed %d LoRA file(s) for the library listing", read)
        except Exception:  # a listing without hashes is no reason to stop the server
            log.exception("hashing the LoRA library failed")

    # 2b. training ----------------------------------------------------------------------------------

    @property
    def training(self) -> Any:
        """The :class:`~assistant.train.jobs.TrainingJobs` of this server (one run at a time); a
        finished run rescans the library, so the new LoRA is listed at once."""
        with self._library_lock:
            if self._training is None:
                from .train.jobs import TrainingJobs

                self._training = TrainingJobs(
                    Path(self.settings.cache_dir) / "training", on_done=lambda _state: self.refresh_loras()
                )
            return self._training

    def prepare_training(self, files: Sequence[str], request: Any) -> tuple[Any, Any]:
        """Uploads → a checked kohya dataset and the run's options, writing to the first LoRA
        folder with the running model as the base. DatasetError/TrainingError say what is wrong."""
        from .errors import TrainingError
        from .train.jobs import dataset_from_uploads, safe_name

        if not self.settings.training_allowed:
            raise TrainingError(
                "training is turned off on this server (a shared Space: a run takes the machine for "
                "minutes and writes into everyone's LoRA folder); its owner can allow it with "
                "LORA_MIXER_ALLOW_TRAINING=1"
            )
        name = safe_name(request.name)
        try:
            self.wait_ready(timeout=1.0)
        except GenerationError as err:
            raise TrainingError(f"the base model to train on is not loaded: {err}") from None
        output = Path(self.settings.lora_dirs[0]).expanduser() / f"{name}.safetensors"
        if output.exists():
            raise TrainingError(
                f"{output.name} already exists in {output.parent}: choose another name (or delete the file)"
            )
        job = Path(self.settings.cache_dir) / "training" / name
        trigger = (request.trigger or "").strip() or name
        root = dataset_from_uploads(
            files, job, name=trigger, repeats=request.repeats, caption=request.caption
        )
        options = request.options(
            dataset=str(root), output=str(output), base=self.current_model(), samples_dir=str(job / "samples")
        )
        return options, self.training.check(options)

    def start_training(self, files: Sequence[str], request: Any) -> Any:
        """Check the uploads and settings, then train in the background; returns the job state."""
        options, _dataset = self.prepare_training(files, request)
        return self.training.start(options)

    def refresh_loras(self) -> int:
        """Rescan the LoRA folders; returns how many loadable LoRAs there are now."""
        library = self.library
        with self._library_lock:
            refreshed = library.refresh()
            if refreshed is not None and refreshed is not library:
                self._library = refreshed
        return len(self.library.loadable())

    def recipes(self) -> dict[str, Any]:
        """Named mixes from ``presets/recipes/*.yaml`` (loaded once; errors are PresetError)."""
        if self._recipes is None:
            from .presets import load_recipes

            self._recipes = dict(load_recipes(self.settings.recipes_dir))
        return self._recipes

    def samplers(self) -> list[str]:
        """A1111 sampler names the engine supports (waits for the engine)."""
        self.wait_ready()
        return list(self._engine.samplers())

    # 3. advice -----------------------------------------------------------------------------------

    def advise(self, positive: str, negative: str = "", *, symptoms: Sequence[str] = ()) -> Advice:
        """The assistant's rewrite of a prompt pair, every change with its reason."""
        from .advisor import advise

        return advise(
            positive,
            negative,
            library=self.library,
            symptoms=tuple(symptoms),
            base=self._base(),
            clip_skip=self.settings.clip_skip,
        )

    @property
    def base(self) -> str:
        """The loaded model's base family (before a model has loaded: :attr:`assumed_base`, or
        sdxl for a configured model whose name says XL, else sd15)."""
        return self._base()

    def _base(self) -> str:
        if self._engine_info is not None and self._engine_info.base:
            return self._engine_info.base
        if self.assumed_base:
            return self.assumed_base
        model = str(self.settings.model or "").lower()
        return "sdxl" if "xl" in model else "sd15"

    def plan_as_written(
        self, positive: str, negative: str = "", *, strict: bool = True
    ) -> tuple[tuple[PlannedLora, ...], list[str]]:
        """The LoRAs of a prompt applied exactly as written (assistant off), with notes
        (:func:`assistant.advisor.as_written`, the rule the CLI uses too)."""
        from .advisor import as_written

        _positive, planned, notes = as_written(positive, negative, library=self.library, strict=strict)
        return planned, notes

    def prepare(
        self,
        positive: str,
        negative: str,
        settings: RenderSettings,
        *,
        use_assistant: bool = True,
        symptoms: Sequence[str] = (),
    ) -> tuple[GenerationRequest, Advice | None, list[str]]:
        """Validate settings, run the assistant (or resolve as written) and build the request."""
        settings = self.with_options(settings.validated())
        positive = positive or ""
        negative = negative or ""
        if not positive.strip() and settings.init_image is None:  # A1111 renders img2img without one
            raise PromptError(
                "the prompt is empty; describe what to draw, e.g. '1girl, cat ears, <lora:catgirl_v1:0.8>'"
            )
        # what reading the init image did (first frame of an animation, EXIF rotation …) is said
        image_notes = list(settings.init_image.notes) if settings.init_image is not None else []
        if use_assistant:
            advice = self._advise_for(positive, negative, symptoms, settings)
            request = settings.request(advice.positive, advice.negative, self.with_hashes(advice.plan))
            return request, advice, image_notes
        from .advisor import as_written

        positive, loras, notes = as_written(
            positive, negative, library=self.library, strict=settings.strict_loras
        )
        return settings.request(positive, negative, self.with_hashes(loras)), None, notes + image_notes

    def _advise_for(
        self, positive: str, negative: str, symptoms: Sequence[str], settings: RenderSettings
    ) -> Advice:
        from .advisor import advise

        return advise(
            positive,
            negative,
            library=self.library,
            symptoms=tuple(symptoms),
            base=self._base(),
            clip_skip=settings.clip_skip or self.settings.clip_skip,
        )

    def with_options(self, settings: RenderSettings) -> RenderSettings:
        """``settings`` with the server's clip skip, RNG and emphasis where it names none."""
        return dataclasses.replace(
            settings,
            clip_skip=settings.clip_skip or self.settings.clip_skip,
            rng=settings.rng or self.settings.rng,
            emphasis=settings.emphasis or self.settings.emphasis,
        )

    # 2b. A1111 options: clip skip, RNG, emphasis, VAE ---------------------------------------------

    def options(self) -> dict[str, Any]:
        """The A1111 option names and values this server renders with."""
        info = self._engine_info
        return {
            "CLIP_stop_at_last_layers": self.settings.clip_skip,
            "randn_source": self.settings.rng,
            "emphasis": self.settings.emphasis,
            "sd_vae": self.settings.vae or VAE_AUTOMATIC,
            "sd_vae_loaded": (info.vae_name if info is not None else "") or None,
        }

    def set_options(
        self,
        *,
        clip_skip: int | None = None,
        rng: str | None = None,
        emphasis: str | None = None,
        vae: str | None = None,
    ) -> dict[str, Any]:
        """Change server-wide A1111 options (as A1111's Settings do); returns :meth:`options`.

        Clip skip, RNG and emphasis apply to later renders; a VAE loads at once (renders wait) and
        one that cannot load leaves the current VAE, with the reason. On a shared Space (model
        switching off) the VAE is fixed like the model.
        """
        checked = RenderSettings(clip_skip=clip_skip, rng=rng, emphasis=emphasis).validated()
        changes = {k: getattr(checked, k) for k in ("clip_skip", "rng", "emphasis") if getattr(checked, k)}
        if vae is not None:
            if not self.settings.model_switch_allowed:
                raise ModelSwitchDisabled(
                    "changing the VAE is turned off on this server (a shared Space); its owner can allow it "
                    "with LORA_MIXER_ALLOW_MODEL_SWITCH=1"
                )
            engine_info = self.wait_ready()
            with self._render_lock:
                self._engine_info = self._engine.set_vae(vae) if self._engine is not None else engine_info
            changes["vae"] = vae
        self.settings = self.settings.replace(**changes)
        return self.options()

    def refresh_embeddings(self) -> None:
        """Rescan the embeddings folders: the library lists them, the engine loads the usable ones."""
        self.refresh_loras()
        if self._engine is not None and self.ready:
            with self._render_lock:
                self._engine.reload_embeddings()
                self._engine_info = self._engine.info

    def vae_choices(self) -> list[str]:
        """A1111's ``sd_vae`` menu: Automatic, None, then the VAE folder's files."""
        from .engine.vae import vae_files

        return [VAE_AUTOMATIC, VAE_NONE, *(p.name for p in vae_files(self.settings.vae_dir))]

    def vae_files(self) -> list[dict[str, str]]:
        """``/sdapi/v1/sd-vae``: ``[{"model_name", "filename"}]`` as A1111 lists them."""
        from .engine.vae import vae_files

        return [{"model_name": p.name, "filename": str(p)} for p in vae_files(self.settings.vae_dir)]

    def embeddings(self) -> dict[str, Any]:
        """``/sdapi/v1/embeddings`` in A1111's shape: ``{"loaded": {name: {...}}, "skipped": {...}}``.

        Loaded: usable with the running model (its vector width); skipped: readable files made for
        another base. ``shape`` is the vector width and ``vectors`` their count, as in A1111.
        """
        info = self._engine_info
        loaded_names = set(info.embeddings if info is not None else ())
        out: dict[str, dict[str, Any]] = {"loaded": {}, "skipped": {}}
        for entry in self.library.embeddings:
            if not entry.loadable:
                continue
            item = {
                "step": None,
                "sd_checkpoint": None,
                "sd_checkpoint_name": None,
                "shape": entry.width,
                "vectors": entry.vectors,
            }
            out["loaded" if entry.name in loaded_names else "skipped"][entry.name] = item
        return out

    # 2c. images: PNG Info and init images ------------------------------------------------------

    def describe_image(self, data: bytes, *, name: str = "") -> ImageReport:
        """What made an image (A1111's PNG Info + "Send to txt2img"): its infotext read, its LoRAs
        matched against the library by hash, then by name (:func:`assistant.pnginfo.describe`).

        Library files are hashed as needed (cached on disk); uncached files over
        ``HASH_ON_LIST_MAX_BYTES`` are left to the background hasher. Raises
        :class:`~assistant.errors.ImageError` for what is not a readable image.
        """
        from . import images, pnginfo

        label = f"image '{name}'" if name else "image"
        image = images.open_image(data, what=label)
        text, _items = images.read_infotext(image)
        _rgb, notes = images.to_rgb(image, what=label)
        library = self.library

        def hashes_of(info: LoraInfo) -> Any:
            try:
                known = library.hashes(info, compute=False)
                if known is None and info.size <= HASH_ON_LIST_MAX_BYTES:
                    known = library.hashes(info)
            except (LoraMixerError, OSError):
                return None
            if known is not None:
                self._known_hashes[info.path] = known.infotext
            return known

        engine_info = self._engine_info
        samplers = self._engine.samplers() if self.ready and self._engine is not None else []
        return pnginfo.describe(
            text,
            library,
            hashes_of=hashes_of,
            base=self._base(),
            model_name=engine_info.model_name if engine_info is not None else "",
            server={
                "clip_skip": self.settings.clip_skip,
                "rng": self.settings.rng,
                "emphasis": self.settings.emphasis,
            },
            samplers=samplers,
            notes=[n for n in notes if "first frame" in n],
        )

    @staticmethod
    def png_info(data: bytes) -> dict[str, Any]:
        """``/sdapi/v1/png-info``: A1111's ``{"info", "items", "parameters"}`` for an image file."""
        from . import images
        from .infotext import a1111_parameters

        image = images.open_image(data, what="image")
        text, items = images.read_infotext(image)
        return {"info": text or "", "items": items, "parameters": a1111_parameters(text or "")}

    def with_hashes(self, plan: Sequence[PlannedLora]) -> tuple[PlannedLora, ...]:
        """The plan with each LoRA's A1111 hash filled in (for the infotext's ``Lora hashes``).

        The advisor leaves hashes empty (it must stay fast); the library computes one per file
        once and caches it on disk. A file that cannot be hashed keeps ``""``.
        """
        from .library import with_hashes

        filled = with_hashes(plan, self.library)
        self._known_hashes.update({lora.path: lora.hash for lora in filled if lora.hash})
        return filled

    # 4. rendering --------------------------------------------------------------------------------

    def _render(
        self,
        requests: Sequence[GenerationRequest],
        *,
        progress: ProgressFn | None,
        cancel: threading.Event | None,
        what: str,
        batched: bool = True,
        on_wait: WaitFn | None = None,
    ) -> list[GenerationResult]:
        """Render requests under the service lock, reporting steps over the whole action.

        Several requests (grid cells) go through ``engine.generate_many``, which loads every LoRA
        once and batches cells that differ only in LoRA weights into one denoising pass. Renders
        wait for the engine in arrival order (``on_wait`` hears how many are ahead); a cancel
        raises :class:`Cancelled` with the step it stopped at.
        """
        self.wait_ready()
        total = sum(sampling_steps(r) for r in requests) or 1
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{what} cancelled before it started", step=0, total=total)
        reached = [0]

        def step(done: int, _total: int) -> None:
            reached[0] = min(done, total)
            if progress is not None:
                progress(reached[0], total, what)

        try:
            with self._render_lock.hold(cancel, on_wait):
                if progress is not None:
                    progress(0, total, what)
                if len(requests) == 1 or not batched:
                    results = []
                    done = 0
                    for request in requests:

                        def cell_step(current: int, _steps: int, _done: int = done) -> None:
                            step(_done + current, total)

                        results.append(self._engine.generate(request, progress=cell_step, cancel=cancel))
                        done += sampling_steps(request)
                else:
                    results = list(
                        self._engine.generate_many(requests, batched=True, progress=step, cancel=cancel)
                    )
        except Cancelled as err:
            at = reached[0]
            raise Cancelled(f"{what} cancelled at step {at}/{total}", step=at, total=total) from err
        if progress is not None:
            progress(total, total, what)
        return results

    def generate(
        self,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        use_assistant: bool = True,
        symptoms: Sequence[str] = (),
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> Rendered:
        """Advise (unless ``use_assistant`` is False), render ``n_iter`` batches, save them all."""
        settings = (settings or RenderSettings()).validated()
        request, advice, notes = self.prepare(
            positive, negative, settings, use_assistant=use_assistant, symptoms=symptoms
        )
        return self.render(
            request, n_iter=settings.n_iter, advice=advice, notes=notes, progress=progress, cancel=cancel
        )

    def render(
        self,
        request: GenerationRequest,
        *,
        n_iter: int = 1,
        advice: Advice | None = None,
        notes: Sequence[str] = (),
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        on_wait: WaitFn | None = None,
        folder: str | Path | None = None,
    ) -> Rendered:
        """Render a prepared request ``n_iter`` times (seeds continue like A1111's batch count) and
        save the images (:meth:`save_results`, in ``folder`` when given)."""
        requests = [request]
        if n_iter > 1:
            base_seed = request.seed if request.seed != -1 else limits.random_seed()
            requests = [
                dataclasses.replace(request, seed=wrap_seed(base_seed + i * request.batch_size))
                for i in range(n_iter)
            ]
        # batch-count iterations differ only in their seeds: plain sequential renders
        results = self._render(
            requests, progress=progress, cancel=cancel, what="generating", batched=False, on_wait=on_wait
        )
        paths = self.save_results(results, folder=folder)
        warnings = [w for result in results for w in result.warnings]
        return Rendered(
            request=request,
            results=tuple(results),
            paths=tuple(paths),
            advice=advice,
            notes=(*notes, *dict.fromkeys(warnings)),
        )

    def blindbox(
        self,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        n: int = BLINDBOX_DEFAULT_CELLS,
        seed: int | None = None,
        use_assistant: bool = True,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> PlanRendered:
        """``n`` random LoRA-weight mixes of the prompt, rendered as a labelled grid."""
        plan, advice, _lead = self.plan(
            "blindbox", positive, negative, settings, use_assistant=use_assistant, n=int(n), seed=seed
        )
        return self.render_plan(plan, advice, progress=progress, cancel=cancel)

    def ab(
        self,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        a: str | None = None,
        b: str | None = None,
        use_assistant: bool = True,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> PlanRendered:
        """An A/B strip at one fixed seed (see :func:`assistant.blend.ab` for ``a``/``b``)."""
        plan, advice, _lead = self.plan(
            "ab", positive, negative, settings, use_assistant=use_assistant, a=a, b=b
        )
        return self.render_plan(plan, advice, progress=progress, cancel=cancel)

    def sweep(
        self,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        x_axis: str | Axis = "",
        y_axis: str | Axis = "",
        use_assistant: bool = True,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> PlanRendered:
        """An X/Y sweep; axes in :func:`assistant.blend.parse_axis` syntax, e.g. ``cfg=4,7,10``
        (none: the prompt's first LoRA from 0 to 1)."""
        plan, advice, _lead = self.plan(
            "sweep", positive, negative, settings, use_assistant=use_assistant, x_axis=x_axis, y_axis=y_axis
        )
        return self.render_plan(plan, advice, progress=progress, cancel=cancel)

    def plan(
        self,
        kind: str,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        use_assistant: bool = True,
        **options: Any,
    ) -> tuple[Plan, Advice | None, str]:
        """A blind box, A/B or sweep of the prompt, not rendered: ``(plan, advice, lead)``.

        The one way the buttons, the chat, the API and the CLI build a grid: the base request is
        prepared like a Generate (advice or the prompt as written, a drawn seed), then
        :mod:`assistant.blend` plans it with ``options`` (``n``, ``seed``, ``ranges`` … for a blind
        box, and ``recipe``: a recipe whose ``range:`` values bound the draws of its LoRAs that the
        prompt has; ``a``, ``b``, ``variants`` for an A/B; ``x_axis``, ``y_axis`` — text or an
        Axis — for a sweep). ``lead`` says what was assumed (a sweep without an axis sweeps the
        first LoRA, a recipe's ranges were used).
        """
        from . import blend

        request, advice = self._plan_base(positive, negative, settings, use_assistant)
        lead = ""
        if kind == "blindbox":
            recipe_ranges, lead = self._recipe_ranges(options.pop("recipe", None), request)
            options["ranges"] = {**recipe_ranges, **(options.get("ranges") or {})}
            plan = blend.blind_box(request, **options)
        elif kind == "ab":
            a, b = options.pop("a", None), options.pop("b", None)
            plan = blend.ab(request, a or None, b or None, library=self.library, **options)
        elif kind == "sweep":
            x, y = _axis(options.pop("x_axis", "")), _axis(options.pop("y_axis", ""))
            if x is None and y is None:
                x, lead = _default_sweep_axis(request)
            # an axis LoRA may be off the prompt: the library is asked
            plan = blend.sweep(request, x, y, library=self.library, **options)
        else:
            raise PromptError(f"unknown action '{kind}'; use generate, blindbox, ab or sweep")
        return plan, advice, lead

    def _recipe_ranges(
        self, name: str | None, request: GenerationRequest
    ) -> tuple[dict[str, tuple[float, float]], str]:
        """A recipe's ``range:`` values for the LoRAs of ``request`` (by file name), and a line
        saying so; nothing for no recipe, an unknown one or one without ranges."""
        if not name:
            return {}, ""
        recipe = self.recipes().get(name)
        if recipe is None:
            return {}, ""
        planned = {lora.name.casefold(): lora.name for lora in request.loras}
        ranges = {
            planned[key]: bounds
            for lora_name, bounds in recipe.ranges().items()
            if (key := lora_name.casefold()) in planned
        }
        if not ranges:
            return {}, ""
        shown = ", ".join(f"`{n}` {format_weight(lo)}..{format_weight(hi)}" for n, (lo, hi) in ranges.items())
        return ranges, f"Weights drawn within the recipe **{recipe.name}**'s ranges: {shown}."

    def _plan_base(
        self, positive: str, negative: str, settings: RenderSettings | None, use_assistant: bool
    ) -> tuple[GenerationRequest, Advice | None]:
        request, advice, _notes = self.prepare(
            positive, negative, (settings or RenderSettings()).validated(), use_assistant=use_assistant
        )
        if request.seed == -1:
            request = dataclasses.replace(request, seed=limits.random_seed())
        return request, advice

    def render_plan(
        self,
        plan: Plan,
        advice: Advice | None = None,
        *,
        folder: str | Path | None = None,
        batched: bool = True,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        on_wait: WaitFn | None = None,
    ) -> PlanRendered:
        """Render a plan and save it (:func:`assistant.grid.save`: grid, cells with A1111 infotext,
        manifest) in ``folder`` (None: the next numbered folder of the outputs): the one image-saving
        path of plans, for the app, the API and the CLI."""
        from . import analysis, grid

        kind = plan.kind

        # LoRAs a plan added (a sweep axis off the prompt) get their hash too
        plan = plan.map_loras(self.with_hashes)
        requests = plan.requests
        # a weight sweep without a weight-0 cell renders one more image: the effect curve's zero
        reference = analysis.reference_request(plan)
        if reference is not None:
            requests.append(reference)
        results = self._render(
            requests, progress=progress, cancel=cancel, what=kind, batched=batched, on_wait=on_wait
        )
        reference_result = results.pop() if reference is not None else None
        with self._save_lock:
            target = Path(folder) if folder is not None else self._next_folder(kind)
            saved = grid.save(plan, results, target, reference=reference_result)
        return PlanRendered(
            kind=kind,
            plan=plan,
            results=tuple(results),
            grid_path=str(saved.grid_path),
            cell_paths=tuple(str(p) for p in saved.cell_paths),
            manifest_path=str(saved.manifest_path),
            advice=advice,
            notes=(saved.summary,) if saved.summary else (),
            extra_images=tuple(str(p) for p in saved.extra_paths),
            analysis=saved.analysis,
            saved_notes=tuple(saved.notes),
        )

    # 5. turns: what one chat message or button asks for, decided before anything renders -------

    def chat_turn(
        self,
        message: str,
        *,
        positive: str = "",
        negative: str = "",
        apply_changes: bool = True,
        settings: RenderSettings | None = None,
        memory: ChatMemory | None = None,
        image: str | Path | None = None,
        recipe: str | None = None,
    ) -> Turn:
        """The assistant's answer to one chat message, and the render it implies (not run yet).

        A prompt (or ``/recipe``) renders the rewritten prompt when ``apply_changes``, else the
        prompt as written; ``/blindbox``, ``/ab`` and ``/sweep`` render a grid of the prompt box.
        ``image`` is a file sent with the message: with text it is the img2img source of what the
        text renders (and goes to the Init image slot); alone, its parameters are read and put back
        (A1111's PNG Info + "Send to txt2img"). ``settings.init_image`` (the slot's) is the source
        otherwise. Never raises a :class:`LoraMixerError`: a problem (a bad setting, an unknown
        LoRA, an unreadable image) is explained in the markdown, and then nothing renders. Fast (no
        engine): the UI shows the answer at once and the render's progress under it.
        """
        from .chat import ChatContext, ChatMemory, respond

        settings = settings or RenderSettings()
        fill: dict[str, Any] = {}
        lead = ""
        if image is not None:
            name = Path(image).name
            if not (message or "").strip():
                return self.image_turn(image, positive, negative, had_init=settings.init_image is not None)
            try:
                init = self._read_init(image)
            except LoraMixerError as err:
                return Turn(f"⚠ {err}", positive, negative, "img2img")
            settings, lead = self._attached_size(settings, init)
            settings = dataclasses.replace(settings, init_image=init)
            fill = {"init_image": str(image), "width": settings.width, "height": settings.height}
            lead = f"Your image `{name}` is the img2img source (it is now in the **Init image** slot). {lead}"

        try:
            recipes = self.recipes()
        except LoraMixerError as err:
            log.warning("recipes unavailable in chat: %s", err)
            recipes = {}
        context = ChatContext(
            library=self.library,
            positive=positive or "",
            negative=negative or "",
            base=self._base(),
            apply_changes=apply_changes,
            recipes=recipes,
            memory=memory if memory is not None else ChatMemory(),
            image="attached" if image is not None else ("slot" if settings.init_image is not None else ""),
            strength=settings.strength if settings.init_image is not None else limits.DENOISING_DEFAULT,
        )
        reply = respond(message, context)
        intent = reply.intent
        if intent.kind == "img2img" and intent.args.get("strength") is not None:
            settings = dataclasses.replace(settings, denoising_strength=float(intent.args["strength"]))
            fill["denoising_strength"] = float(intent.args["strength"])
        turn = Turn(
            markdown=reply.text,
            positive=reply.positive,
            negative=reply.negative,
            intent=intent.kind,
            advice=reply.advice,
            memory=reply.memory,
            fill=fill,
        )
        if reply.action is None:  # an answer, an error, or an empty prompt answered with help
            if image is not None and "error" not in intent.args:
                turn = dataclasses.replace(turn, markdown=f"{turn.markdown}\n\n{IMAGE_UNUSED}")
            return turn
        try:
            settings = settings.validated()
            job = self._chat_job(reply.action, reply, settings, apply_changes, recipe=recipe)
        except LoraMixerError as err:
            return dataclasses.replace(turn, markdown=f"{reply.text}\n\n⚠ {err}")
        if settings.init_image is not None:
            lead = f"{lead}\n\n{img2img_line(settings)}".strip()
        markdown = f"{lead}\n\n{reply.text}" if lead else reply.text
        return dataclasses.replace(turn, markdown=markdown, job=job)

    def _read_init(self, path: str | Path) -> InitImage:
        from . import images

        name = Path(path).name
        what = f"image '{name}'"
        return images.init_image(images.read_file(path, what=what), name=name, what=what)

    @staticmethod
    def _attached_size(settings: RenderSettings, init: InitImage) -> tuple[RenderSettings, str]:
        """A photo sent in the chat renders in its own shape, at the Width x Height area (instead of
        squashed into the sliders' shape); the lead says so."""
        from .img2img import fit_size

        ratio = init.width / init.height
        wanted = settings.width / settings.height
        if abs(ratio / wanted - 1) <= 0.02:
            return settings, ""
        width, height = fit_size(init.width, init.height, settings.width * settings.height)
        note = (
            f"It renders at **{width}x{height}** — its own shape, about the Width × Height area "
            f"({settings.width}x{settings.height})."
        )
        return dataclasses.replace(settings, width=width, height=height), note

    def image_turn(
        self, image: str | Path, positive: str, negative: str, *, had_init: bool, compact: bool = False
    ) -> Turn:
        """An image sent alone (or dropped on the prompt panel): what made it (PNG Info), and its
        parameters for the boxes and settings (``Turn.fill``; "Send to txt2img"). ``had_init``:
        the Init image slot holds a picture (emptied for a txt2img image). Never raises a
        :class:`LoraMixerError`: an unreadable image is explained in the markdown."""
        from . import images

        name = Path(image).name
        try:
            data = images.read_file(image, what=f"image '{name}'")
            report = self.describe_image(data, name=name)
        except LoraMixerError as err:
            return Turn(f"⚠ {err}", positive, negative, "pnginfo")
        if not report.found:
            return Turn(report.markdown(), positive, negative, "pnginfo")
        fill = restore_fill(report, had_init=had_init)
        markdown = report.markdown(compact=compact)
        if fill.get("init_image") == "":
            markdown += "\n\nThe **Init image** slot was emptied: this image was made by txt2img."
        elif "denoising_strength" in fill and report.settings.get("hires") is None:
            markdown += (
                "\n\nIt was an **img2img** render (denoising strength "
                f"{fill['denoising_strength']:g}): put its source image in the **Init image** slot to "
                "redo it."
            )
        return Turn(markdown, report.prompt, report.negative, "pnginfo", fill=fill)

    def _chat_job(
        self,
        action: ChatAction,
        reply: ChatReply,
        settings: RenderSettings,
        apply_changes: bool,
        *,
        recipe: str | None = None,
    ) -> RenderJob:
        """The render a chat reply asks for: its advice as a Generate, or a button's plan (a blind
        box within ``recipe``'s ranges, the recipe picked in the menu)."""
        if action.kind != "generate":
            options = dict(action.options)
            if action.kind == "blindbox":
                options["seed"] = settings.seed if settings.seed != -1 else None
                options["recipe"] = recipe
            turn = self.action_turn(
                action.kind, reply.positive, reply.negative, settings, apply_changes=apply_changes, **options
            )
            return turn.job  # type: ignore[return-value]
        advice = reply.advice
        assert advice is not None  # a "generate" action is only made for a reply with advice
        if apply_changes:
            request = settings.request(advice.positive, advice.negative, self.with_hashes(advice.plan))
            notes: list[str] = []
        else:
            request, _none, notes = self.prepare(
                advice.original_positive, advice.original_negative, settings, use_assistant=False
            )
        return self._generate_job(request, settings.n_iter, advice if apply_changes else None, notes)

    def _generate_job(
        self, request: GenerationRequest, n_iter: int, advice: Advice | None, notes: Sequence[str]
    ) -> RenderJob:
        _check_requests([request])

        def run(
            progress: ProgressFn | None = None,
            cancel: threading.Event | None = None,
            on_wait: WaitFn | None = None,
        ) -> Rendered:
            return self.render(
                request,
                n_iter=n_iter,
                advice=advice,
                notes=notes,
                progress=progress,
                cancel=cancel,
                on_wait=on_wait,
            )

        return RenderJob("generate", sampling_steps(request) * max(1, n_iter), run)

    def action_turn(
        self,
        kind: str,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        apply_changes: bool = True,
        n: int = BLINDBOX_DEFAULT_CELLS,
        seed: int | None = None,
        a: str | None = None,
        b: str | None = None,
        x_axis: str | Axis = "",
        y_axis: str | Axis = "",
        recipe: str | None = None,
    ) -> Turn:
        """A button (Generate, Blind box, A/B, Sweep): the advice and the plan now, the render later.

        Raises :class:`LoraMixerError` for what cannot render at all (bad settings, an empty
        prompt, an impossible plan), before anything is queued. A sweep with no axis sweeps the
        prompt's first LoRA from 0 to 1 and says so.
        """

        settings = (settings or RenderSettings()).validated()
        if kind == "generate":
            request, advice, notes = self.prepare(positive, negative, settings, use_assistant=apply_changes)
            job = self._generate_job(request, settings.n_iter, advice, notes)
            text = format_advice(advice) if advice is not None else AS_WRITTEN
            return Turn(text, *self._boxes(advice, positive, negative), kind, advice, job=job)
        options: dict[str, Any] = {
            "blindbox": {"n": int(n), "seed": seed, "recipe": recipe},
            "ab": {"a": a, "b": b},
            "sweep": {"x_axis": x_axis, "y_axis": y_axis},
        }.get(kind, {})
        plan, advice, lead = self.plan(
            kind, positive, negative, settings, use_assistant=apply_changes, **options
        )
        text = format_advice(advice) if advice is not None else AS_WRITTEN
        text = "\n\n".join(p for p in (lead, text, describe_plan(plan)) if p)

        def run(
            progress: ProgressFn | None = None,
            cancel: threading.Event | None = None,
            on_wait: WaitFn | None = None,
        ) -> PlanRendered:
            return self.render_plan(plan, advice, progress=progress, cancel=cancel, on_wait=on_wait)

        _check_requests(plan.requests)
        steps = sum(sampling_steps(cell.request) for cell in plan.cells)
        job = RenderJob(kind, steps, run)
        return Turn(text, *self._boxes(advice, positive, negative), kind, advice, job=job)

    @staticmethod
    def _boxes(advice: Advice | None, positive: str, negative: str) -> tuple[str, str]:
        return (advice.positive, advice.negative) if advice is not None else (positive, negative)

    def chat(
        self,
        message: str,
        *,
        positive: str = "",
        negative: str = "",
        apply_changes: bool = True,
        settings: RenderSettings | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        memory: ChatMemory | None = None,
    ) -> ChatTurn:
        """One chat turn, answered and rendered in one call (the turn API for scripts and tests)."""
        turn = self.chat_turn(
            message,
            positive=positive,
            negative=negative,
            apply_changes=apply_changes,
            settings=settings,
            memory=memory,
        )
        result = ChatTurn(
            markdown=turn.markdown,
            positive=turn.positive,
            negative=turn.negative,
            intent=turn.intent,
            advice=turn.advice,
            memory=turn.memory,
        )
        if turn.job is None:
            return result
        try:
            rendered = turn.job.run(progress, cancel)
        except LoraMixerError as err:
            return dataclasses.replace(result, markdown=f"{turn.markdown}\n\n⚠ {err}")
        summary, images = render_summary(rendered)
        return dataclasses.replace(
            result, markdown=f"{turn.markdown}\n\n{summary}", images=images, rendered=rendered
        )

    # 6. outputs ----------------------------------------------------------------------------------

    @property
    def outputs_dir(self) -> Path:
        return Path(self.settings.outputs_dir).expanduser().resolve()

    def owner_dir(self, requester: Requester | None = None) -> Path:
        """The folder the requester's images go to (the outputs folder itself when shared)."""
        requester = requester or owners.current()
        return self.outputs_dir / self.history_policy.folder(requester)

    def _day_dir(self) -> Path:
        folder = self.owner_dir() / datetime.now(UTC).strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _next_number(self, folder: Path) -> int:
        numbers = [int(m.group(1)) for p in folder.iterdir() if (m := _NUMBERED.match(p.name))]
        return max(numbers, default=-1) + 1

    def _next_folder(self, kind: str) -> Path:
        day = self._day_dir()
        folder = day / f"{self._next_number(day):05d}-{kind}"
        folder.mkdir()
        return folder

    def save_results(
        self, results: Sequence[GenerationResult], *, folder: str | Path | None = None
    ) -> list[str]:
        """Save every image as ``outputs/<day>/<nnnnn>-<seed>.png`` (or ``<folder>/<nnnnn>-<seed>.png``)
        with its infotext chunk: the one image-saving path of single renders (app, API, CLI)."""
        from .infotext import png_info

        paths: list[str] = []
        with self._save_lock:
            if folder is not None:
                day = Path(folder)
                day.mkdir(parents=True, exist_ok=True)
            else:
                day = self._day_dir()
            number = self._next_number(day)
            for result in results:
                for image, text, seed in zip(result.images, result.infotexts, result.seeds, strict=False):
                    path = day / f"{number:05d}-{seed}.png"
                    image.save(path, pnginfo=png_info(text))
                    paths.append(str(path))
                    number += 1
        return paths

    def history(self, limit: int = 40, *, requester: Requester | None = None) -> list[HistoryItem]:
        """The newest saved images and grids, newest first (a grid's cell files are left out).

        With a private :class:`~assistant.owners.HistoryPolicy` only the requester's own folder
        is read (the bound requester when none is given); with a shared one, every file."""
        from .infotext import read_png

        requester = requester or owners.current()
        if self.history_policy.sees_all(requester):
            root = self.outputs_dir
        else:
            root = self.owner_dir(requester)
            if root == self.outputs_dir:  # a private history never falls back to everything
                return []
        if not root.is_dir():
            return []
        files = sorted(
            (p for p in root.rglob("*.png") if p.is_file() and not p.name.startswith("cell-")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )[: max(0, limit)]
        items: list[HistoryItem] = []
        for path in files:
            try:
                info = read_png(path)
            except (OSError, ValueError):
                info = None
            items.append(
                HistoryItem(
                    path=str(path),
                    prompt=info.prompt if info is not None else "",
                    seed=info.seed if info is not None else None,
                    mtime=path.stat().st_mtime,
                )
            )
        return items


_NUMBERED = re.compile(r"^(\d{5})-")
def _check_requests(requests: Sequence[GenerationRequest]) -> None:
    """The engine's own checks (sampler name, sizes, weights) before anything is queued, so a
    request that cannot render is refused at once, not after waiting for its turn (pure: no torch)."""
    from .engine.checks import check_request

    for request in requests:
        check_request(request)


def _default_sweep_axis(request: GenerationRequest) -> tuple[Any, str]:
    """The axis of a sweep asked for without one: the prompt's first LoRA from 0 to 1."""
    from . import blend

    if not request.loras:
        raise PromptError(
            "a sweep needs an axis, e.g. 'catgirl_v1=0.2..1.0x5' or 'cfg=4,7,10', or a <lora:…> tag in "
            "the prompt to sweep (open 'Blind box, A/B and sweep options' to set the axes)"
        )
    name = request.loras[0].name
    count = limits.SWEEP_DEFAULT_VALUES
    lead = (
        f"No sweep axis was set, so this sweeps the prompt's first LoRA, `{name}`, from 0 to 1 in "
        f"{limits.SWEEP_DEFAULT_VALUES} steps (set the axes under 'Blind box, A/B and sweep options')."
    )
    return blend.weight_axis(name, [i / (count - 1) for i in range(count)]), lead


def _axis(axis: str | Axis | None) -> Axis | None:
    """A sweep axis as the UI and API send it (text, :func:`assistant.blend.parse_axis` syntax) or
    as the chat read it already (an Axis); None for no axis."""
    from . import blend

    if axis is None or isinstance(axis, blend.Axis):
        return axis
    return blend.parse_axis(axis) if axis.strip() else None


def restore_fill(report: ImageReport, *, had_init: bool) -> dict[str, Any]:
    """What "Send to txt2img" sets in the UI for an image's parameters (:attr:`Turn.fill`)."""
    values = dict(report.settings)
    fill: dict[str, Any] = {}
    for key in ("sampler", "steps", "cfg", "seed"):
        if key in values:
            fill[key] = values[key]
    if "size" in values:
        fill["width"], fill["height"] = values["size"]
    hires = values.get("hires")
    fill["hires"] = hires
    if "denoising_strength" in values:
        fill["denoising_strength"] = values["denoising_strength"]
    img2img = "denoising_strength" in values and hires is None
    if had_init and not img2img:
        fill["init_image"] = ""  # a txt2img image: rendering it again is txt2img
    return fill


def _embedded_available() -> bool:
    from .engine.embedded import available

    return available()
