"""Routing decisions and the messages between the front and the replicas — pure Python.

No Ray here: :mod:`.router` and :mod:`.front` call these functions, and the tests check them
without a cluster.

- :func:`rank_replicas` orders replicas for one render: the one already holding most of the
  render's LoRA adapters first (a LoRA load costs from 0.1 s to several seconds), then the
  least loaded; Serve passes over a busy one (it would make the render wait a whole render).
- :func:`split_cells` cuts a grid into contiguous chunks of about equal sampler steps, one per
  replica. Contiguous chunks keep cells that batch together (same prompt, different weights)
  in one batched pass per replica.
- :class:`AdapterBook` remembers which adapters each replica holds: from the replies the
  front receives (exact, immediate) and from Serve's routing stats (periodic, also for
  replicas this front has not used yet); the newer of the two wins.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backend import EngineInfo
from ..config import Settings
from ..types import GenerationRequest, GenerationResult


@dataclass(frozen=True, slots=True)
class RouteHint:
    """What the router needs to place one render: its adapters, and replicas to stay away from
    (ones that died under an earlier attempt of the same cells)."""

    adapters: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RenderJob:
    """Cells for one replica. ``many``: render them as grid cells (``generate_many``, batched
    when ``batched``); else one request (``generate``). ``settings``: the front's current
    settings — a replica started before a model switch loads the new model first."""

    requests: tuple[GenerationRequest, ...]
    settings: Settings
    many: bool = False
    batched: bool = True


@dataclass(frozen=True, slots=True)
class RenderReply:
    """A replica's answer: the results in job order, who rendered them, what it now holds."""

    results: tuple[GenerationResult, ...]
    replica: str
    adapters: tuple[str, ...] = ()
    version: int = 0  # the replica's render count: orders this against its routing stats


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """One replica as a broadcast reports it."""

    replica: str
    actor_name: str
    info: EngineInfo
    settings: Settings
    adapters: tuple[str, ...] = ()
    version: int = 0
    pid: int = 0


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """What the router knows about one replica when it ranks them."""

    replica: str
    queue: int | None  # renders running or waiting there (None: unknown)
    adapters: frozenset[str] = frozenset()


#: Settings that do not change what a replica loads (folders the front reads, UI switches, the
#: model-hash cache, the per-render defaults that every request carries): left at their defaults
#: in what replicas receive, so a difference there never reloads a model.
_FRONT_ONLY_FIELDS = (
    "lora_dirs",
    "outputs_dir",
    "cache_dir",
    "catalog",
    "rules",
    "recipes_dir",
    "models_dir",
    "allow_model_switch",
    "clip_skip",  # these three travel in every GenerationRequest
    "rng",
    "emphasis",
)


def engine_settings(settings: Settings) -> Settings:
    """``settings`` as a replica compares them: the front-only fields at their defaults.

    Any other field — including ones added later — counts, so a new engine setting reloads the
    replicas' model rather than being silently ignored."""
    defaults = Settings()
    return dataclasses.replace(settings, **{name: getattr(defaults, name) for name in _FRONT_ONLY_FIELDS})


def adapters_of(requests: Iterable[GenerationRequest]) -> tuple[str, ...]:
    """The adapter names the requests will activate (LoRAs at weight 0 everywhere load nothing)."""
    from ..engine.adapters import adapter_name_for  # pure: hashlib on the path

    names: dict[str, None] = {}
    for request in requests:
        for lora in request.loras:
            if any((lora.te_weight, lora.unet_weight, lora.uncond_te_weight, lora.uncond_unet_weight)):
                names[adapter_name_for(lora.path)] = None
    return tuple(names)


def rank_replicas(replicas: Sequence[ReplicaView], hint: RouteHint | None) -> list[str]:
    """Replica ids in the order Serve should try them: most of the render's adapters held first,
    then the shortest known queue, then the given order.

    Busy replicas are not put last here: Serve asks a replica whose cached queue is full for
    its real queue and passes over one that is busy (``max_ongoing_requests=1``), so a busy
    holder costs one quick question and the render goes to the next replica — while a holder
    that only *looks* busy (a queue count not yet updated after its last render) still gets it.
    Replicas in ``hint.avoid`` (they died under an earlier attempt) come last, kept rather than
    dropped: if they are all that is left, Serve's own checks decide.
    """
    hint = hint or RouteHint()
    wanted = frozenset(hint.adapters)
    avoid = frozenset(hint.avoid)

    def key(item: tuple[int, ReplicaView]) -> tuple[bool, int, int, int]:
        index, view = item
        return (view.replica in avoid, -len(wanted & view.adapters), view.queue or 0, index)

    ordered = sorted(enumerate(replicas), key=key)
    return [view.replica for _, view in ordered]


def split_cells(steps: Sequence[int], parts: int) -> list[list[int]]:
    """Cell indices in at most ``parts`` contiguous, non-empty chunks of about equal total steps."""
    count = len(steps)
    parts = max(1, min(parts, count))
    if count == 0:
        return []
    total = float(sum(max(1, s) for s in steps))
    chunks: list[list[int]] = []
    current: list[int] = []
    done = 0.0
    for index, cell_steps in enumerate(steps):
        current.append(index)
        done += max(1, cell_steps)
        left_cells = count - index - 1
        left_chunks = parts - len(chunks) - 1
        boundary = total * (len(chunks) + 1) / parts
        if left_chunks > 0 and (done >= boundary - 1e-9 or left_cells == left_chunks):
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks


@dataclass
class AdapterBook:
    """Which adapters each replica holds, with the replica's render count as the version."""

    _entries: dict[str, tuple[int, frozenset[str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, replica: str, version: int, adapters: Iterable[str]) -> None:
        with self._lock:
            known = self._entries.get(replica)
            if known is None or version >= known[0]:
                self._entries[replica] = (version, frozenset(adapters))

    def adapters(self, replica: str, stats: Mapping[str, Any] | None = None) -> frozenset[str]:
        """The newer of what the front saw last and what ``stats`` (Serve's routing stats) say."""
        with self._lock:
            known = self._entries.get(replica)
        reported: tuple[int, frozenset[str]] | None = None
        if stats and "adapters" in stats:
            reported = (int(stats.get("version", 0)), frozenset(stats["adapters"]))
        if known is None:
            return reported[1] if reported else frozenset()
        if reported is not None and reported[0] > known[0]:
            return reported[1]
        return known[1]

    def forget(self, replica: str) -> None:
        with self._lock:
            self._entries.pop(replica, None)


#: The book of this process: the front updates it, the router (same process) reads it.
BOOK = AdapterBook()
