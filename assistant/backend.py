"""The seam between the service and whatever renders: :class:`EngineInfo`, the :class:`Engine`
protocol, and :func:`create_engine`.

Pure Python — importing this module imports no torch, no gradio and no Ray. Two engines
implement the protocol:

- ``local`` (the default): :class:`assistant.engine.Engine`, one diffusers pipeline in this
  process, one render at a time.
- ``ray``: :class:`assistant.cluster.RayEngine`, replicas of that same engine behind Ray Serve
  (an optional extra, ``requirements-ray.txt``). It renders ``capacity`` requests at once,
  splits grids across replicas and switches the model on every replica (:class:`ScaledEngine`).

The service talks to both through this protocol only, so the UI, the API and the CLI do not
know which one runs. ``EngineOptions`` says which one to build; its values come from flags
(``--engine``, ``--ray-address``, ``--replicas``) or the environment (``LORA_MIXER_ENGINE``,
``LORA_MIXER_RAY_ADDRESS``, ``LORA_MIXER_REPLICAS``).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .config import EMBEDDED_MODEL, TINY_MODELS, Settings
from .errors import GenerationError, LoraMixerError, PresetError
from .types import GenerationRequest, GenerationResult

#: progress(step, steps) — sampler steps done so far over one engine call.
StepProgress = Callable[[int, int], None]

ENGINE_KINDS = ("local", "ray")
RAY_INSTALL_HINT = (
    "--engine ray needs the optional Ray extra: pip install -r requirements-ray.txt "
    "(or leave --engine out to render in this process)"
)
#: Most replicas ``--replicas`` accepts (a typo such as 80 must not start 80 model copies).
MAX_REPLICAS = 64


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What the engine runs on; ``banner`` is non-empty when users must be told something.

    ``backend`` names a scale-out engine ("Ray Serve, 2 replicas"); empty for the in-process one.
    """

    model_name: str
    model_hash: str
    base: str  # "sd15" | "sd2" | "sdxl"
    is_tiny: bool
    device: str
    dtype: str
    default_size: int
    banner: str = ""
    attention: str = "sdpa"
    warnings: tuple[str, ...] = ()
    family: str = ""  # what the checkpoint is: "SD1.x", "SD2.x v-prediction", "SDXL" …
    vae_name: str = ""  # an external VAE's file name ("" = the checkpoint's own)
    vae_hash: str = ""
    load_seconds: float = 0.0
    embeddings: tuple[str, ...] = ()  # textual inversions usable with this model
    skipped_embeddings: tuple[str, ...] = ()  # readable ones of another width (another base)
    backend: str = ""


class Engine(Protocol):
    """What the service needs from an engine. Both engines raise :class:`GenerationError`,
    :class:`~assistant.errors.LoraLoadError` and :class:`~assistant.errors.Cancelled` the same way."""

    def load(self) -> EngineInfo:
        """Load the model (once); later calls return the same info."""
        ...

    @property
    def info(self) -> EngineInfo:
        """The loaded model's description (loads it on first access)."""
        ...

    def samplers(self) -> list[str]:
        """Accepted A1111 sampler names."""
        ...

    def generate(
        self,
        request: GenerationRequest,
        *,
        progress: StepProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Render one request (``batch_size`` images)."""
        ...

    def generate_many(
        self,
        requests: Sequence[GenerationRequest],
        *,
        batched: bool = True,
        progress: StepProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenerationResult]:
        """Render grid cells; results in the order of ``requests``."""
        ...

    def close(self) -> None:
        """Free what the engine holds (a later :meth:`load` starts again)."""
        ...

    def set_vae(self, choice: str | None) -> EngineInfo:
        """Another VAE (A1111's ``sd_vae``); the current one stays when it cannot load."""
        ...

    def reload_embeddings(self) -> tuple[str, ...]:
        """Scan the embeddings folders again; the usable names."""
        ...


@runtime_checkable
class ScaledEngine(Engine, Protocol):
    """An engine with several workers: renders ``capacity`` requests at once and switches the
    base model itself (on every worker; the running model stays everywhere when one fails)."""

    @property
    def capacity(self) -> int: ...

    def switch_model(self, settings: Settings) -> EngineInfo: ...


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Which engine to build: ``kind`` local or ray; for Ray the cluster address (None: start a
    private one on this machine) and the number of replicas (one GPU each on a GPU cluster)."""

    kind: str = "local"
    ray_address: str | None = None
    replicas: int = 1
    #: GPUs per replica; None: 1 when the cluster has GPUs and the device is not "cpu", else 0.
    gpus_per_replica: float | None = None

    def validated(self) -> EngineOptions:
        kind = (self.kind or "local").strip().lower()
        if kind not in ENGINE_KINDS:
            raise PresetError(f"engine '{self.kind}' is not known; use one of: {', '.join(ENGINE_KINDS)}")
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise PresetError(f"replicas must be from 1 to {MAX_REPLICAS} (got {self.replicas})")
        if self.gpus_per_replica is not None and self.gpus_per_replica < 0:
            raise PresetError(f"GPUs per replica cannot be negative (got {self.gpus_per_replica})")
        if kind == "ray" and importlib.util.find_spec("ray") is None:
            raise PresetError(RAY_INSTALL_HINT)
        address = (self.ray_address or "").strip() or None
        return EngineOptions(kind, address, self.replicas, self.gpus_per_replica)

    @property
    def capacity(self) -> int:
        """Renders the engine runs at once (the app sizes its queue workers with it)."""
        return self.replicas if self.kind == "ray" else 1

    @classmethod
    def from_env(
        cls,
        *,
        kind: str | None = None,
        ray_address: str | None = None,
        replicas: int | None = None,
    ) -> EngineOptions:
        """Flags (the arguments, None when not given) over ``LORA_MIXER_ENGINE``,
        ``LORA_MIXER_RAY_ADDRESS`` and ``LORA_MIXER_REPLICAS``; validated."""
        env_replicas = os.environ.get("LORA_MIXER_REPLICAS", "").strip()
        if replicas is None and env_replicas:
            try:
                replicas = int(env_replicas)
            except ValueError:
                raise PresetError(
                    f"LORA_MIXER_REPLICAS must be a whole number (got {env_replicas!r})"
                ) from None
        return cls(
            kind=kind or os.environ.get("LORA_MIXER_ENGINE", "") or "local",
            ray_address=ray_address or os.environ.get("LORA_MIXER_RAY_ADDRESS") or None,
            replicas=1 if replicas is None else replicas,
        ).validated()


def create_engine(settings: Settings, options: EngineOptions | None = None) -> Engine:
    """The engine ``options`` ask for, not loaded yet (``load()`` imports torch or Ray)."""
    options = (options or EngineOptions()).validated()
    if options.kind == "ray":
        from .cluster import RayEngine

        return RayEngine(settings, options)
    from .engine import Engine as LocalEngine

    return LocalEngine(settings)


def swap_engine(
    old: Engine | None,
    old_info: EngineInfo | None,
    settings: Settings,
    factory: Callable[[Settings], Engine],
) -> tuple[Engine, EngineInfo]:
    """Load ``settings.model`` in a new engine and return it; ``old`` is closed on success.

    When the new model cannot load, the old engine keeps running and :class:`GenerationError`
    says why; the demo fallback (embedded or random tiny) is refused unless a demo model was asked
    for. On a GPU the old model is freed first (two SD models rarely fit in one card) and loaded
    again after a failure. Used by the service (in-process) and by every Ray replica.
    """
    free_first = old is not None and str(getattr(old_info, "device", "cpu")).startswith("cuda")
    if free_first and old is not None:
        old.close()
    engine = factory(settings)
    try:
        info = engine.load()
        if info.is_tiny and (settings.model or TINY_MODELS[0]) not in (*TINY_MODELS, EMBEDDED_MODEL):
            engine.close()
            raise GenerationError("; ".join(info.warnings) or "it could not be loaded")
    except LoraMixerError:
        if free_first and old is not None:
            old.load()  # the running model again (raises if it cannot)
        raise
    if old is not None and not free_first:
        old.close()
    return engine, info
