"""The service's state and lifecycle: one engine, one LoRA library, the settings, the locks.

:class:`ServiceCore` holds what every part of :class:`~assistant.service.Service` shares — the
engine and its ``EngineInfo``, the library, the settings, the render gate and the save lock —
and how it starts: the library is scanned on first use, the engine loads in a background thread
by default (torch, or Ray, is imported then, not at import time) and the library is hashed after
it for the listings. :attr:`ServiceCore.base` is the base family everything else assumes.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from ..backend import Engine, EngineInfo, EngineOptions, ScaledEngine, create_engine
from ..config import Settings
from ..errors import GenerationError, LoraMixerError
from ..owners import HistoryPolicy
from .gate import FairLock

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..library import Library

log = logging.getLogger(__name__)

HASH_ON_LIST_MAX_BYTES = 64 * 1024 * 1024  # listing hashes files up to this size (cached on disk)


class ServiceCore:
    """The state every part of the service shares, and its lifecycle (start, load, close).

    The parts (:mod:`~assistant.service.models`, :mod:`~assistant.service.catalog`, …) add
    methods over this state; :class:`~assistant.service.Service` composes them.
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

    # lifecycle -----------------------------------------------------------------------------------

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

    # the library and the base family ------------------------------------------------------------

    @property
    def library(self) -> Library:
        with self._library_lock:
            if self._library is None:
                from ..library import Library

                self._library = Library.scan(
                    self.settings.lora_dirs,
                    catalog=self.settings.catalog,
                    cache_dir=self.settings.cache_dir,
                    embedding_dirs=self.settings.embeddings_dirs,
                )
            return self._library

    def _hash_library(self) -> None:
        """Background: hash the library's files into the disk cache so the cards can show them."""
        try:
            read = self.library.hash_all(max_bytes=HASH_ON_LIST_MAX_BYTES)
            if read:
                log.info("hashed %d LoRA file(s) for the library listing", read)
        except Exception:  # a listing without hashes is no reason to stop the server
            log.exception("hashing the LoRA library failed")

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
