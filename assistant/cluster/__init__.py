"""Scale-out on Ray Serve: the in-process engine as Serve replicas, one front process.

An optional extra (``pip install -r requirements-ray.txt``); nothing else in LoRA Mixer imports
Ray. The pieces:

- :mod:`.routing` (pure): which replica a render should go to (the one already holding its
  LoRA adapters, idle ones first), how a grid is split into per-replica chunks, the jobs and
  replies that travel between front and replicas.
- :mod:`.replica`: ``EngineReplica``, the Serve deployment — one :class:`assistant.engine.Engine`
  per replica (one GPU each with ``num_gpus=1``), progress streamed back step by step.
- :mod:`.router`: ``AdapterAffinityRouter``, a Serve request router (it runs in the front)
  that ranks replicas with :func:`.routing.rank_replicas`.
- :mod:`.front`: :class:`RayEngine`, the :class:`assistant.backend.ScaledEngine` the service
  uses: starts or joins a Ray cluster, deploys or finds the application, routes single
  renders, splits and gathers grids, reruns the cells of a replica that died, switches the
  model on every replica, cancels between steps.
- :mod:`.deploy`: ``build`` for ``serve run assistant.cluster.deploy:build …`` on a cluster.

``from assistant.cluster import RayEngine`` does not import Ray; loading the engine does.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The Serve application and deployment names the front deploys or looks for.
APP_NAME = "lora-mixer"
DEPLOYMENT_NAME = "EngineReplica"

_LAZY = {"RayEngine": "assistant.cluster.front"}

__all__ = ["APP_NAME", "DEPLOYMENT_NAME", "RayEngine"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'assistant.cluster' has no attribute '{name}'")
