"""The Serve application: ``EngineReplica`` × N with the adapter-affinity router.

:func:`application` is what the front deploys when it finds no running application;
:func:`build` is the same for a cluster operator::

    ray start --head                      # on the head node (then `ray start --address …` on the others)
    serve run --non-blocking docs/ray-serve.yaml        # or, without a file:
    serve run --non-blocking --name lora-mixer assistant.cluster.deploy:build replicas=4 \\
        model=/models/sd15.safetensors
    python app.py --engine ray --ray-address auto --model /models/sd15.safetensors --auth-file users.txt

(``docs/ray-serve.yaml`` also turns Serve's HTTP proxy off: the front needs handles only.)

Every replica asks for one GPU (``num_gpus=1``; ``gpus=0`` or ``device=cpu`` for CPU replicas) and
renders one job at a time; requests beyond that wait in the front's router.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import Settings, load_settings
from ..errors import PresetError
from . import DEPLOYMENT_NAME

ROUTER_CLASS = "assistant.cluster.router.AdapterAffinityRouter"


def application(
    settings: Settings,
    *,
    replicas: int,
    gpus_per_replica: float,
    cpus_per_replica: float = 1.0,
    threads: int | None = None,
) -> Any:
    """A bound Serve application (``serve.run(application(...), name=APP_NAME)``)."""
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    from .replica import EngineReplica
    from .routing import engine_settings

    deployment = serve.deployment(
        EngineReplica,
        name=DEPLOYMENT_NAME,
        num_replicas=replicas,
        max_ongoing_requests=1,  # one render per replica; more wait in the front's router
        ray_actor_options={"num_gpus": gpus_per_replica, "num_cpus": cpus_per_replica},
        request_router_config=RequestRouterConfig(
            request_router_class=ROUTER_CLASS,
            request_routing_stats_period_s=1.0,
            request_routing_stats_timeout_s=5.0,
        ),
        health_check_period_s=5.0,
        health_check_timeout_s=60.0,  # a replica inside a long SDXL step still answers, but slowly
        graceful_shutdown_timeout_s=10.0,
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    # what a job's settings are compared with: a difference in a front-only field never reloads
    return deployment.bind(engine_settings(settings), threads)


def build(args: Mapping[str, str]) -> Any:
    """``serve run assistant.cluster.deploy:build key=value …``: ``replicas`` (default 1),
    ``gpus`` (per replica; default 1, 0 with ``device=cpu``), ``threads`` (torch threads per
    replica), and the engine settings LoRA Mixer otherwise reads from the environment or
    ``lora-mixer.yaml``: ``model``, ``device``, ``adapter_cache_size``, ``low_vram``. (LoRA
    folders are the front's business: a render names its LoRA files.)

    ``serve run`` calls this before it connects to the cluster, so it cannot look at the
    cluster's GPUs: say ``gpus=0`` (or ``device=cpu``) for CPU replicas."""
    values = {
        str(k): str(v) for k, v in args.items()
    }  # strings from the command line, YAML types from a file
    try:
        replicas = int(values.pop("replicas", "1"))
        gpus_text = values.pop("gpus", None)
        threads_text = values.pop("threads", None)
        threads = int(threads_text) if threads_text else None
    except ValueError as err:
        raise PresetError(f"serve run arguments: {err}") from None
    settings = load_settings()
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key == "adapter_cache_size":
            changes[key] = int(value)
        elif key == "low_vram":
            changes[key] = value.strip().lower() in ("1", "true", "yes", "on")
        elif key in ("model", "device"):
            changes[key] = value
        else:
            raise PresetError(f"serve run: unknown argument {key!r}")
    settings = settings.replace(**changes)
    try:
        gpus = float(gpus_text) if gpus_text is not None else (0.0 if settings.device == "cpu" else 1.0)
    except ValueError as err:
        raise PresetError(f"serve run arguments: {err}") from None
    return application(settings, replicas=replicas, gpus_per_replica=gpus, threads=threads)
