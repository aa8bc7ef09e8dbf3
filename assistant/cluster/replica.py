"""``EngineReplica``: one :class:`assistant.engine.Engine` as a Ray Serve replica.

A replica loads the model in its constructor (Serve marks it ready afterwards), renders one job
at a time (``max_ongoing_requests=1`` in :mod:`.deploy`; a lock guards the engine against the
control calls, which bypass that limit) and answers:

- ``render(job, route=…)`` — a stream of ``("progress", step, steps, replica)`` (the first step
  at once, then at most one every :data:`PROGRESS_EVERY_S`, the latest only: each item is a trip
  between processes, and on a busy machine a trip costs more than a small render), then
  ``("result", RenderReply)`` or ``("error", err)`` with the engine's own
  :class:`~assistant.errors.LoraMixerError`. The engine runs in a worker thread, so the replica
  keeps answering Serve (queue length, health, cancel) meanwhile; when the caller cancels, the
  render stops after its current step.
- ``configure(settings)`` — load another base model or VAE (a switch; broadcast to every
  replica) with :func:`assistant.backend.swap_engine`'s rules: the running model stays when the
  new one cannot load. A job whose settings differ from the replica's does the same first, so a
  replica Serve started after a switch (from the deployment's original arguments) catches up.
- ``reload_embeddings()`` — scan the textual-inversion folders again (broadcast).
- ``status()`` and ``record_routing_stats()`` — which model, which adapters are loaded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from ..backend import Engine, EngineInfo, create_engine, swap_engine
from ..config import Settings
from ..errors import GenerationError, LoraMixerError
from .routing import RenderJob, RenderReply, ReplicaStatus, RouteHint

log = logging.getLogger(__name__)

Event = tuple[Any, ...]
#: Least time between two progress items of one render (the first step is always sent at once).
PROGRESS_EVERY_S = 0.1


class EngineReplica:
    """The deployment class (decorated with ``serve.deployment`` in :mod:`.deploy`)."""

    def __init__(self, settings: Settings, threads: int | None = None) -> None:
        from ray import serve

        if threads:
            import torch

            torch.set_num_threads(int(threads))
        context = serve.get_replica_context()
        self.replica = context.replica_id.unique_id
        self.actor_name = context.replica_id.to_full_id_str()
        self._lock = threading.Lock()  # one engine use at a time: renders and model switches
        self._settings = settings
        self._engine: Engine = create_engine(settings)
        self._info: EngineInfo = self._engine.load()
        self._adapters: tuple[str, ...] = ()
        self._renders = 0
        log.info("replica %s ready: %s on %s", self.replica, self._info.model_name, self._info.device)

    # -- rendering --------------------------------------------------------------------------------

    async def render(self, job: RenderJob, route: RouteHint | None = None) -> AsyncIterator[Event]:
        """Stream the job's progress, then its results (see the module docstring)."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()
        cancel = threading.Event()

        def emit(event: Event) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        sent = [float("-inf")]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - sent[0] >= PROGRESS_EVERY_S and done < total:  # the last step: the result follows
                sent[0] = now
                emit(("progress", done, total, self.replica))

        def work() -> None:
            try:
                with self._lock:
                    self._follow(job.settings)
                    results = self._run(job, progress, cancel)
                    self._renders += 1
                    self._adapters = tuple(self._loaded_adapters())
                    reply = RenderReply(tuple(results), self.replica, self._adapters, self._renders)
                emit(("result", reply))
            except LoraMixerError as err:
                emit(("error", err))
            except Exception as err:  # a bug, not a user error: logged here, reported there
                log.exception("replica %s failed a render", self.replica)
                reason = f"a replica failed unexpectedly ({type(err).__name__}: {err})"
                emit(("error", GenerationError(reason)))

        worker = loop.run_in_executor(None, work)
        first = True  # the first step is always sent (a busy loop may find it queued behind later ones)
        try:
            while True:
                event = await events.get()
                while event[0] == "progress" and not first and not events.empty():
                    event = events.get_nowait()  # only the latest step matters
                first = first and event[0] != "progress"
                yield event
                if event[0] != "progress":
                    break
        finally:
            cancel.set()  # the caller went away (or is done): stop after the current step
            await asyncio.shield(worker)

    def _run(self, job: RenderJob, progress: Any, cancel: threading.Event) -> list[Any]:
        engine = self._engine
        if job.many:
            return engine.generate_many(job.requests, batched=job.batched, progress=progress, cancel=cancel)
        return [engine.generate(request, progress=progress, cancel=cancel) for request in job.requests]

    def _loaded_adapters(self) -> list[str]:
        loaded = getattr(self._engine, "loaded_adapters", None)
        return list(loaded()) if callable(loaded) else []

    # -- model --------------------------------------------------------------------------------------

    def _follow(self, settings: Settings) -> None:
        """Load ``settings``' model unless it is the running one (call with the lock held)."""
        if settings == self._settings:
            return
        if dataclasses.replace(self._settings, vae=settings.vae) == settings:  # only the VAE changes
            self._info = self._engine.set_vae(settings.vae)
            self._settings = settings
            return
        self._engine, self._info = swap_engine(self._engine, self._info, settings, create_engine)
        self._settings = settings
        self._adapters = ()
        log.info("replica %s switched to %s", self.replica, self._info.model_name)

    async def configure(self, settings: Settings) -> tuple[str, Any]:
        """``("ok", ReplicaStatus)`` once ``settings``' model runs here, else ``("error", err)``."""

        def work() -> tuple[str, Any]:
            try:
                with self._lock:
                    self._follow(settings)
                    return ("ok", self._status())
            except LoraMixerError as err:
                return ("error", err)

        return await asyncio.get_running_loop().run_in_executor(None, work)

    async def reload_embeddings(self) -> tuple[str, Any]:
        """Scan the embeddings folders again: ``("ok", ReplicaStatus)`` or ``("error", err)``."""

        def work() -> tuple[str, Any]:
            try:
                with self._lock:
                    self._engine.reload_embeddings()
                    self._info = self._engine.info
                    return ("ok", self._status())
            except LoraMixerError as err:
                return ("error", err)

        return await asyncio.get_running_loop().run_in_executor(None, work)

    # -- state --------------------------------------------------------------------------------------

    def _status(self) -> ReplicaStatus:
        return ReplicaStatus(
            replica=self.replica,
            actor_name=self.actor_name,
            info=self._info,
            settings=self._settings,
            adapters=self._adapters,
            version=self._renders,
            pid=os.getpid(),
        )

    def status(self) -> ReplicaStatus:
        """This replica: its model, its adapters, how many renders it has done."""
        return self._status()

    def record_routing_stats(self) -> dict[str, Any]:
        """Serve asks every ``request_routing_stats_period_s``; the router reads it."""
        return {"adapters": list(self._adapters), "version": self._renders}
