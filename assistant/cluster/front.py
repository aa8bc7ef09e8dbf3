"""``RayEngine``: the engine protocol over Ray Serve replicas, for the one front process.

What it does, in the order a render meets it:

1. ``load()`` joins the Ray cluster at ``--ray-address`` (``auto``: the one started on this
   machine with ``ray start``) or starts a private one on loopback (random ports, a temporary
   folder, no dashboard), then uses the running ``lora-mixer`` Serve application or deploys it
   (:mod:`.deploy`; one GPU per replica when the cluster has GPUs). Every replica is told the
   front's model; one that runs another model loads it.
2. A single render is one job, routed by :class:`.router.AdapterAffinityRouter`: an idle
   replica first, preferring the one that already holds the mix's adapters.
3. Grid cells (``generate_many``) are split into one contiguous chunk per replica
   (:func:`.routing.split_cells`), rendered at once and gathered in order. With the same seeds
   the images equal the in-process engine's: bit for bit with sequential cells, within the
   usual 1/255 of a batched pass with batched ones (a chunk is batched on its own).
4. Progress comes back step by step; a cancel stops the replicas after their current step.
5. A replica that dies under a job (killed, out of memory, node lost) has the job's cells
   rendered again on another replica (at most 3 attempts); the grid completes and nothing
   rendered is lost. Serve replaces the dead replica; it loads the current model first.
6. ``switch_model()`` reaches every replica (a broadcast); when one cannot load the new
   model, those that did go back and the running model stays everywhere.
7. ``close()`` stops what this front started (a private cluster; an application it deployed
   on someone's cluster) and leaves the rest running.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..backend import RAY_INSTALL_HINT, EngineInfo, EngineOptions, StepProgress
from ..config import PROJECT_ROOT, Settings
from ..engine.checks import check_request
from ..errors import Cancelled, GenerationError, LoraMixerError
from ..types import GenerationRequest, GenerationResult
from . import APP_NAME, DEPLOYMENT_NAME
from .routing import (
    BOOK,
    RenderJob,
    RenderReply,
    ReplicaStatus,
    RouteHint,
    adapters_of,
    engine_settings,
    split_cells,
)

log = logging.getLogger(__name__)

#: Attempts per job: the first, and reruns after replicas died under it.
MAX_ATTEMPTS = 3
#: Environment the replicas get from the front (offline hub, thread counts, state checks).
FORWARDED_ENV = (
    "HF_HUB_OFFLINE",
    "HF_HOME",
    "HF_ENDPOINT",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "LORA_MIXER_CHECK_STATE",
    "CUDA_VISIBLE_DEVICES",
)


def _import_ray() -> tuple[Any, Any]:
    # Before Ray is imported: a private cluster listens on loopback only (Ray otherwise binds the
    # machine's network address so that other nodes could join).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # Never start a Ray instance behind our back: after close(), Serve's router threads still
    # call the (gone) controller, and Ray's auto-connect would start a new instance for them.
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    try:
        import ray
        from ray import serve
    except ImportError as err:
        raise GenerationError(f"{RAY_INSTALL_HINT} ({err})") from None
    return ray, serve


def _off_event_loop(method: Any) -> Any:
    """Ray's blocking handle calls refuse to run in a thread whose asyncio loop is running (an
    async web handler; Playwright's sync API in a test): such a caller's call runs in a helper
    thread instead, and this thread waits for it."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return method(self, *args, **kwargs)
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ray-call") as helper:
            return helper.submit(method, self, *args, **kwargs).result()

    return wrapper


def _flagged(flags: Sequence[threading.Event]) -> bool:
    return any(flag.is_set() for flag in flags)


class _CancelWatch:
    """Cancels a job's stream as soon as one of its flags is set: the thread iterating the
    stream is blocked in ``next()`` (a long step, or a job still waiting for a replica)."""

    def __init__(self, period: float = 0.05) -> None:
        self._period = period
        self._jobs: dict[int, tuple[Any, tuple[threading.Event, ...]]] = {}
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, stream: Any, flags: tuple[threading.Event, ...]) -> int:
        with self._lock:
            self._next += 1
            self._jobs[self._next] = (stream, flags)
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="ray-cancel-watch", daemon=True)
                self._thread.start()
            return self._next

    def remove(self, token: int) -> None:
        with self._lock:
            self._jobs.pop(token, None)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            with self._lock:
                jobs = list(self._jobs.items())
            for token, (stream, flags) in jobs:
                if _flagged(flags):
                    self.remove(token)
                    try:
                        stream.cancel()
                    except Exception:  # the stream ended meanwhile
                        log.debug("cancelling a finished stream", exc_info=True)


class _LifecycleThread:
    """Runs Ray's start and stop on one long-lived thread, whichever thread asks.

    ``ray.init`` in one thread and ``ray.shutdown`` in another can hang (the service loads the
    engine in a background thread; the app closes it from the main thread; a CLI run closes it
    from ``atexit``). A daemon thread, not an executor: executors refuse work once the
    interpreter is exiting, which is when ``atexit`` needs it.
    """

    def __init__(self) -> None:
        self._calls: queue.Queue[tuple[Any, concurrent.futures.Future[Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, fn: Any) -> Any:
        if threading.current_thread() is self._thread:
            return fn()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="ray-lifecycle", daemon=True)
                self._thread.start()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._calls.put((fn, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            fn, future = self._calls.get()
            try:
                future.set_result(fn())
            except BaseException as err:  # handed to the caller, whatever it is
                future.set_exception(err)


class RayEngine:
    """:class:`assistant.backend.ScaledEngine` on Ray Serve (see the module docstring)."""

    def __init__(self, settings: Settings, options: EngineOptions | None = None) -> None:
        self.settings = settings
        self.options = (options or EngineOptions(kind="ray")).validated()
        self._info: EngineInfo | None = None
        self._handle: Any = None
        self._replicas = self.options.replicas
        self._lock = threading.RLock()
        self._watch = _CancelWatch()
        self._lifecycle = _LifecycleThread()
        self._started_ray = False
        self._deployed_here = False
        self._temp_dir: str | None = None
        self._engine_settings = engine_settings(_portable(settings))
        #: Cells rendered again because a replica died under them (for logs, tests, benchmarks).
        self.rerun_cells = 0

    # -- protocol: loading ------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Renders at once: one per replica."""
        return self._replicas

    @property
    def info(self) -> EngineInfo:
        return self._info or self.load()

    def load(self) -> EngineInfo:
        """Join or start Ray, deploy or find the application, make every replica run our model."""
        if self._info is not None:
            return self._info
        return self._lifecycle.run(self._load)

    def _load(self) -> EngineInfo:
        with self._lock:
            if self._info is not None:
                return self._info
            ray, serve = _import_ray()
            started = time.perf_counter()
            self._start_or_join(ray, serve)
            self._handle = self._deploy_or_find(ray, serve)
            statuses = self._configure_all(self._engine_settings)
            self._replicas = len(statuses)
            self._info = self._describe(statuses[0])
            log.info(
                "Ray engine ready in %.1f s: %d replica(s) of %s on %s",
                time.perf_counter() - started,
                self._replicas,
                self._info.model_name,
                self._info.device,
            )
            return self._info

    def _start_or_join(self, ray: Any, serve: Any) -> None:
        if not ray.is_initialized():
            env_vars = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
            paths = [str(PROJECT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
            env_vars["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
            common: dict[str, Any] = {
                "runtime_env": {"env_vars": env_vars},
                "logging_level": logging.WARNING,
            }
            address = self.options.ray_address or os.environ.get("RAY_ADDRESS") or None
            if address:
                log.info("joining the Ray cluster at %s", address)
                ray.init(address=address, **common)
            else:
                self._temp_dir = os.environ.get("LORA_MIXER_RAY_TEMP_DIR") or tempfile.mkdtemp(
                    prefix="ray-lora-mixer-"
                )
                store_mb = int(os.environ.get("LORA_MIXER_RAY_OBJECT_STORE_MB", "512"))
                log.info("starting a private Ray instance on loopback (%s)", self._temp_dir)
                ray.init(
                    address="local",
                    num_cpus=max(self.options.replicas, os.cpu_count() or 1),
                    include_dashboard=False,
                    object_store_memory=store_mb * 1024 * 1024,
                    _temp_dir=self._temp_dir,
                    **common,
                )
                self._started_ray = True
                atexit.register(self.close)  # a CLI run that ends without close() still cleans up
        # handles only (no Serve HTTP port is opened); Serve's per-request logs stay out of ours
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        serve.start(
            proxy_location="Disabled", logging_config={"log_level": "WARNING", "enable_access_log": False}
        )

    def _deploy_or_find(self, ray: Any, serve: Any) -> Any:
        state = self._app_status(serve)
        deadline = time.monotonic() + 600
        while state in ("DEPLOYING", "DELETING") and time.monotonic() < deadline:
            time.sleep(1.0)
            state = self._app_status(serve)
        # UNHEALTHY: a replica died and Serve is replacing it; the application itself is fine
        if state not in ("RUNNING", "UNHEALTHY"):
            if state is not None:
                log.warning("the Serve application %s is %s; deploying it again", APP_NAME, state)
            from .deploy import application

            gpus = self.options.gpus_per_replica
            if gpus is None:
                has_gpus = ray.cluster_resources().get("GPU", 0) >= 1
                gpus = 1.0 if has_gpus and (self.settings.device or "") != "cpu" else 0.0
            threads_text = os.environ.get("LORA_MIXER_REPLICA_THREADS", "")
            threads = int(threads_text) if threads_text else None
            if threads is None and not gpus and self._started_ray:
                threads = max(1, (os.cpu_count() or 1) // self.options.replicas)
            app = application(
                self._engine_settings,
                replicas=self.options.replicas,
                gpus_per_replica=gpus,
                threads=threads,
            )
            log.info("deploying %d engine replica(s) (%s GPU each)", self.options.replicas, f"{gpus:g}")
            try:
                serve.run(app, name=APP_NAME, route_prefix=None)
            except Exception as err:
                with contextlib.suppress(Exception):
                    serve.delete(APP_NAME)
                raise GenerationError(f"the engine replicas could not start: {_first_line(err)}") from err
            self._deployed_here = True
        return serve.get_deployment_handle(DEPLOYMENT_NAME, app_name=APP_NAME)

    @staticmethod
    def _app_status(serve: Any) -> str | None:
        app = serve.status().applications.get(APP_NAME)
        return None if app is None else str(getattr(app.status, "value", app.status))

    def _configure_all(self, settings: Settings) -> list[ReplicaStatus]:
        """Every live replica on ``settings``' model; raises (and restores the others) on failure."""
        replies = self._handle.broadcast("configure", settings).results(return_exceptions=True)
        statuses = [reply[1] for reply in replies if isinstance(reply, tuple) and reply[0] == "ok"]
        failures = [reply[1] if isinstance(reply, tuple) else reply for reply in replies]
        failures = [f for f in failures if not isinstance(f, ReplicaStatus)]
        model_errors = [f for f in failures if isinstance(f, LoraMixerError)]
        if model_errors or not statuses:
            if statuses and settings != self._engine_settings:  # back to the running model
                self._handle.broadcast("configure", self._engine_settings).results(return_exceptions=True)
            reason = model_errors[0] if model_errors else (failures[0] if failures else "no replica answered")
            raise GenerationError(str(reason) if isinstance(reason, LoraMixerError) else _first_line(reason))
        for failure in failures:  # a replica that died meanwhile: Serve replaces it
            log.warning("a replica did not answer the model change: %s", _first_line(failure))
        for status in statuses:
            BOOK.update(status.replica, status.version, status.adapters)
        return statuses

    def _describe(self, status: ReplicaStatus) -> EngineInfo:
        plural = "s" if self._replicas != 1 else ""
        return dataclasses.replace(status.info, backend=f"Ray Serve, {self._replicas} replica{plural}")

    # -- protocol: rendering ----------------------------------------------------------------------

    def samplers(self) -> list[str]:
        from ..engine.schedulers import sampler_names

        return sampler_names()

    @_off_event_loop
    def generate(
        self,
        request: GenerationRequest,
        *,
        progress: StepProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """One render on the replica the router picks."""
        self.load()
        check_request(request)
        cell = _portable_request(request)
        flags = (cancel,) if cancel is not None else ()
        (result,) = self._run_job([cell], many=False, batched=False, progress=progress, flags=flags)
        return _restored(request, result)

    @_off_event_loop
    def generate_many(
        self,
        requests: Sequence[GenerationRequest],
        *,
        batched: bool = True,
        progress: StepProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenerationResult]:
        """Grid cells split across the replicas, gathered in order (see the module docstring)."""
        self.load()
        for request in requests:
            check_request(request)
        cells = [_portable_request(r) for r in requests]
        chunks = split_cells([r.steps for r in cells], self.capacity)
        flags = (cancel,) if cancel is not None else ()
        if len(chunks) <= 1:
            results = self._run_job(cells, many=True, batched=batched, progress=progress, flags=flags)
        else:
            results = self._run_chunks(cells, chunks, batched=batched, progress=progress, flags=flags)
        return [_restored(r, result) for r, result in zip(requests, results, strict=True)]

    def _run_chunks(
        self,
        cells: list[GenerationRequest],
        chunks: list[list[int]],
        *,
        batched: bool,
        progress: StepProgress | None,
        flags: tuple[threading.Event, ...],
    ) -> list[GenerationResult]:
        """One job per chunk at once; progress summed and reported from this (the caller's) thread."""
        stop = threading.Event()  # set when one chunk fails: the others stop after their step
        steps = [[0, 0] for _ in chunks]
        steps_lock = threading.Lock()

        def reporter(index: int) -> StepProgress:
            def report(step: int, total: int) -> None:
                with steps_lock:
                    steps[index] = [step, total]

            return report

        with concurrent.futures.ThreadPoolExecutor(len(chunks), thread_name_prefix="ray-chunk") as pool:
            futures = [
                pool.submit(
                    self._run_job,
                    [cells[i] for i in chunk],
                    many=True,
                    batched=batched,
                    progress=reporter(index),
                    flags=(*flags, stop),
                )
                for index, chunk in enumerate(chunks)
            ]
            errors: list[BaseException] = []
            pending: set[concurrent.futures.Future[list[GenerationResult]]] = set(futures)
            last: tuple[int, int] | None = None
            while pending:
                finished, pending = concurrent.futures.wait(
                    pending, timeout=0.1, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in finished:
                    if future.exception() is not None:
                        errors.append(future.exception())  # type: ignore[arg-type]
                        stop.set()
                if progress is not None:
                    with steps_lock:
                        now = (sum(s[0] for s in steps), sum(s[1] for s in steps))
                    if now != last and now[1]:
                        progress(*now)
                        last = now
        if errors:
            # the error that stopped the grid, not the "cancelled" answers of the chunks it stopped
            raise next((e for e in errors if not isinstance(e, Cancelled)), errors[0])
        return [result for future in futures for result in future.result()]

    def _run_job(
        self,
        cells: list[GenerationRequest],
        *,
        many: bool,
        batched: bool,
        progress: StepProgress | None,
        flags: tuple[threading.Event, ...],
    ) -> list[GenerationResult]:
        """Send one job, follow its stream, rerun it elsewhere if its replica dies under it."""
        from ray.exceptions import RayActorError, RayError
        from ray.serve.exceptions import RequestCancelledError

        job = RenderJob(tuple(cells), self._engine_settings, many=many, batched=batched)
        adapters = adapters_of(cells)
        avoid: list[str] = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if _flagged(flags):
                raise Cancelled("Generation cancelled before it started.")
            stream = self._handle.options(stream=True).render.remote(
                job, route=RouteHint(adapters, tuple(avoid))
            )
            token = self._watch.add(stream, flags)
            replica = ""
            step = (0, 0)
            reply: RenderReply | None = None
            try:
                # read the stream to its end: the replica's slot is free again when this returns
                for event in stream:
                    kind = event[0]
                    if kind == "progress":
                        step, replica = (int(event[1]), int(event[2])), str(event[3])
                        if progress is not None:
                            progress(*step)
                    elif kind == "result":
                        reply = event[1]
                        BOOK.update(reply.replica, reply.version, reply.adapters)
                        if progress is not None and step[1] and step[0] < step[1]:
                            progress(step[1], step[1])  # the replica does not send its last step
                    elif kind == "error":
                        raise event[1]
                if reply is None:
                    raise GenerationError("a replica ended a render without sending its result")
                return list(reply.results)
            except RequestCancelledError:
                raise _cancelled(step) from None
            except RayActorError as err:
                if _flagged(flags):
                    raise _cancelled(step) from None
                if replica:
                    avoid.append(replica)
                    BOOK.forget(replica)
                self.rerun_cells += len(cells)
                log.warning(
                    "replica %s stopped while rendering %d cell(s) (%s); rendering them again on "
                    "another replica (attempt %d of %d)",
                    replica or "?",
                    len(cells),
                    _first_line(err),
                    attempt + 1,
                    MAX_ATTEMPTS,
                )
            except RayError as err:
                log.error("the Ray engine failed a render: %s", err)
                raise GenerationError(f"the Ray engine failed: {_first_line(err)}") from err
            finally:
                self._watch.remove(token)
        raise GenerationError(
            f"{MAX_ATTEMPTS} replicas in a row stopped while rendering these cells; the cluster may be "
            "short of memory (the replicas' logs say why)"
        )

    # -- protocol: model and lifecycle ------------------------------------------------------------

    @_off_event_loop
    def switch_model(self, settings: Settings) -> EngineInfo:
        """Load ``settings``' model on every replica; the running one stays when any fails."""
        self.load()
        with self._lock:
            target = engine_settings(_portable(settings))
            statuses = self._configure_all(target)
            self.settings, self._engine_settings = settings, target
            self._replicas = max(self._replicas, len(statuses))
            self._info = self._describe(statuses[0])
            return self._info

    def set_vae(self, choice: str | None) -> EngineInfo:
        """Another VAE on every replica (they keep the model; the old VAE stays if one fails)."""
        return self.switch_model(dataclasses.replace(self.settings, vae=choice))

    @_off_event_loop
    def reload_embeddings(self) -> tuple[str, ...]:
        """Every replica scans its embeddings folders again; the names the first one can use."""
        self.load()
        with self._lock:
            replies = self._handle.broadcast("reload_embeddings").results(return_exceptions=True)
            statuses = [r[1] for r in replies if isinstance(r, tuple) and r[0] == "ok"]
            errors = [r[1] for r in replies if isinstance(r, tuple) and r[0] == "error"]
            if errors or not statuses:
                raise GenerationError(str(errors[0]) if errors else "no replica answered")
            self._info = self._describe(statuses[0])
            return self._info.embeddings

    @_off_event_loop
    def replicas(self) -> list[ReplicaStatus]:
        """What every live replica reports (model, adapters, renders, actor name)."""
        self.load()
        replies = self._handle.broadcast("status").results(return_exceptions=True)
        return [reply for reply in replies if isinstance(reply, ReplicaStatus)]

    def close(self) -> None:
        """Stop what this front started; leave a cluster and an application it joined running."""
        if self._handle is None and not self._started_ray:
            return
        self._lifecycle.run(self._close)

    def _close(self) -> None:
        with self._lock:
            self._watch.stop()
            handle, self._handle, self._info = self._handle, None, None
            if handle is None and not self._started_ray:
                return
            ray, serve = _import_ray()
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.shutdown()  # its router thread stops asking the controller for news
            with contextlib.suppress(Exception):  # already stopped: nothing left to do
                if self._started_ray:
                    ray.shutdown()  # a private instance: everything in it stops with it
                elif self._deployed_here:
                    serve.delete(APP_NAME, _blocking=False)
            if self._started_ray and self._temp_dir and not os.environ.get("LORA_MIXER_RAY_TEMP_DIR"):
                shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._started_ray = self._deployed_here = False


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _portable(settings: Settings) -> Settings:
    """Settings a replica can use whatever its working folder: local model paths made absolute."""
    model = settings.model
    if model and Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    return dataclasses.replace(settings, model=model)


def _portable_request(request: GenerationRequest) -> GenerationRequest:
    """The request with absolute LoRA paths (a replica's working folder is not ours)."""
    loras = tuple(
        dataclasses.replace(lora, path=str(Path(lora.path).expanduser().resolve())) for lora in request.loras
    )
    return dataclasses.replace(request, loras=loras) if loras != request.loras else request


def _restored(original: GenerationRequest, result: GenerationResult) -> GenerationResult:
    """The result as the in-process engine returns it: the caller's LoRA paths in its request."""
    if result.request is None or result.request.loras == original.loras:
        return result
    return dataclasses.replace(result, request=dataclasses.replace(result.request, loras=original.loras))


def _cancelled(step: tuple[int, int]) -> Cancelled:
    if step[1]:
        return Cancelled(f"Generation cancelled after step {step[0]} of {step[1]}.")
    return Cancelled("Generation cancelled.")


def _first_line(err: object) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else ""
    return f"{type(err).__name__}: {line}"[:300] if isinstance(err, BaseException) else line[:300]
