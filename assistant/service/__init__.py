"""The one place the Gradio app, the A1111 API and the tests call to *do* something.

A :class:`Service` owns one engine, one LoRA library, the recipes and the settings. It has a
method per user action — chat turn, advise, generate, blind box, A/B, sweep, list LoRAs,
refresh — which converts plain values (strings, numbers) into core types, runs the core, renders
through the engine under ONE lock, saves every image with its A1111 infotext under the outputs
folder, and returns plain result objects. ``assistant/ui/`` and ``assistant/api/`` only convert their
own inputs/outputs around these calls, so both front ends behave identically.

Boundary: this package imports no gradio and no torch at import time. The engine (torch) is
imported when :meth:`Service.start` loads it, in a background thread by default so the web server
answers before the pipeline is ready; actions that render wait for it. The engine is anything
that implements :class:`assistant.backend.Engine`: the in-process one, or Ray Serve replicas
(``EngineOptions(kind="ray")``), which render ``capacity`` requests at once.

Whose files: every image is saved in the folder of the requester bound by the front end
(:mod:`assistant.owners`), and :meth:`Service.history` lists only that requester's files when the
:class:`~assistant.owners.HistoryPolicy` is private.

The modules, one responsibility each (:class:`Service` in :mod:`~assistant.service.facade`
composes the parts over :class:`~assistant.service.core.ServiceCore`'s state):

- ``gate``: :class:`FairLock`, the engine gate (renders at once, waiters in order);
  ``render_settings``: :class:`RenderSettings` and :data:`LIMITS`, the one validation of them;
  ``results``: the plain result objects (:class:`Turn`, :class:`Rendered`, :class:`PlanRendered` …).
- ``core``: state and lifecycle (start, engine load, library scan, base family);
  ``models``: base models and switching; ``catalog``: LoRAs, hashes, recipes, embeddings, PNG Info;
  ``options``: A1111 options and VAE; ``training``: training runs; ``outputs``: saved files, History.
- ``rendering``: prepare (advice or as written), render through the gate, save;
  ``plans``: blind box / A/B / sweep; ``turns``: chat messages and buttons.

The names below are what ``assistant.service`` exported as one module; import them from here.
"""

from __future__ import annotations

from ..messages import render_summary  # app.py imports it from here
from .core import HASH_ON_LIST_MAX_BYTES
from .facade import Service
from .gate import FairLock, ProgressFn, WaitFn
from .models import model_label
from .render_settings import LIMITS, MAX_PIXELS_PER_ACTION, SIZE_MULTIPLE, RenderSettings
from .results import ChatTurn, HistoryItem, PlanRendered, Rendered, RenderJob, Turn
from .turns import restore_fill

__all__ = [
    "HASH_ON_LIST_MAX_BYTES",
    "LIMITS",
    "MAX_PIXELS_PER_ACTION",
    "SIZE_MULTIPLE",
    "ChatTurn",
    "FairLock",
    "HistoryItem",
    "PlanRendered",
    "ProgressFn",
    "RenderJob",
    "RenderSettings",
    "Rendered",
    "Service",
    "Turn",
    "WaitFn",
    "model_label",
    "render_summary",
    "restore_fill",
]
