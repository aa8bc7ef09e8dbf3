"""Routing decisions of the Ray engine, without Ray: replica ranking, grid splits, the adapter book."""

from __future__ import annotations

import dataclasses

import pytest

from assistant.cluster.routing import (
    AdapterBook,
    ReplicaView,
    RouteHint,
    adapters_of,
    engine_settings,
    rank_replicas,
    split_cells,
)
from assistant.config import DEFAULT_LORA_DIR, Settings
from assistant.engine.adapters import adapter_name_for
from assistant.types import GenerationRequest, PlannedLora

CAT = str(DEFAULT_LORA_DIR / "catgirl_v1.safetensors")
CYBER = str(DEFAULT_LORA_DIR / "cyberpunk_style.safetensors")


def view(name: str, queue: int | None = 0, *adapters: str) -> ReplicaView:
    return ReplicaView(name, queue, frozenset(adapters))


def test_an_idle_replica_holding_the_adapters_comes_first() -> None:
    replicas = [view("a", 0, "x"), view("b", 0, "cat", "cyber"), view("c", 0, "cat")]
    assert rank_replicas(replicas, RouteHint(adapters=("cat", "cyber"))) == ["b", "c", "a"]


def test_a_busy_holder_is_asked_first_and_passed_over_by_serve() -> None:
    """Serve asks a replica that looks full for its real queue and skips it when busy, so ranking
    the holder first costs one question — and wins when the queue count was only stale."""
    replicas = [view("idle", 0), view("busy", 1, "cat")]
    assert rank_replicas(replicas, RouteHint(adapters=("cat",))) == ["busy", "idle"]


def test_without_adapters_the_shortest_queue_first() -> None:
    replicas = [view("long", 3), view("short", 1), view("idle", 0)]
    assert rank_replicas(replicas, RouteHint()) == ["idle", "short", "long"]


def test_equal_adapters_then_the_shorter_queue() -> None:
    replicas = [view("long-cat", 3, "cat"), view("short", 1), view("short-cat", 1, "cat")]
    assert rank_replicas(replicas, RouteHint(adapters=("cat",))) == ["short-cat", "long-cat", "short"]


def test_unknown_queue_counts_as_idle_and_ties_keep_the_given_order() -> None:
    replicas = [view("a", None), view("b", None), view("c", 0)]
    assert rank_replicas(replicas, None) == ["a", "b", "c"]


def test_replicas_to_avoid_come_last_but_stay() -> None:
    replicas = [view("died", 0, "cat"), view("other", 2)]
    assert rank_replicas(replicas, RouteHint(adapters=("cat",), avoid=("died",))) == ["other", "died"]


@pytest.mark.parametrize(
    ("steps", "parts", "expected"),
    [
        ([20] * 8, 2, [[0, 1, 2, 3], [4, 5, 6, 7]]),
        ([20] * 8, 3, [[0, 1, 2], [3, 4, 5], [6, 7]]),
        ([20] * 3, 8, [[0], [1], [2]]),  # never more chunks than cells
        ([20] * 5, 1, [[0, 1, 2, 3, 4]]),
        ([10, 20, 30, 40], 2, [[0, 1, 2], [3]]),  # a steps sweep: balanced by steps, not cells
        ([], 4, []),
    ],
)
def test_split_cells_contiguous_balanced(steps: list[int], parts: int, expected: list[list[int]]) -> None:
    chunks = split_cells(steps, parts)
    assert chunks == expected
    assert [i for chunk in chunks for i in chunk] == list(range(len(steps)))
    assert all(chunks)


@pytest.mark.parametrize("count", range(1, 20))
@pytest.mark.parametrize("parts", [1, 2, 3, 4, 7])
def test_split_cells_never_empty_never_too_many(count: int, parts: int) -> None:
    chunks = split_cells([28] * count, parts)
    assert len(chunks) == min(parts, count)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(count))
    sizes = [len(c) for c in chunks]
    assert max(sizes) - min(sizes) <= 1


def test_adapter_book_takes_the_newer_of_replies_and_routing_stats() -> None:
    book = AdapterBook()
    assert book.adapters("r1") == frozenset()
    assert book.adapters("r1", {"adapters": ["cat"], "version": 1}) == {"cat"}  # stats only
    book.update("r1", 3, ["cat", "cyber"])
    assert book.adapters("r1", {"adapters": ["cat"], "version": 2}) == {"cat", "cyber"}  # stale stats
    assert book.adapters("r1", {"adapters": ["jk"], "version": 4}) == {"jk"}  # newer stats
    book.update("r1", 2, ["old"])  # an older reply never overwrites a newer one
    assert book.adapters("r1") == {"cat", "cyber"}
    book.forget("r1")
    assert book.adapters("r1") == frozenset()


def test_adapters_of_names_what_the_engine_loads() -> None:
    requests = [
        GenerationRequest("a", loras=(PlannedLora("cat", CAT, 0.6), PlannedLora("cyber", CYBER, 0.0))),
        GenerationRequest("b", loras=(PlannedLora("cat", CAT, 0.3),)),
        GenerationRequest("c", loras=(PlannedLora("cyber", CYBER, 0.0, negative_weight=0.4),)),
    ]
    # weight 0 everywhere loads nothing; a negative-pass weight alone does
    assert adapters_of(requests) == (adapter_name_for(CAT), adapter_name_for(CYBER))


def test_engine_settings_ignore_front_only_fields_and_keep_the_rest() -> None:
    front = Settings(lora_dirs=("/front/loras",), outputs_dir="/front/out", model="tiny-sdxl")
    other_front = dataclasses.replace(front, lora_dirs=("/x",), outputs_dir="y", allow_model_switch=False)
    assert engine_settings(front) == engine_settings(other_front)  # no model reload for these
    assert engine_settings(front) != engine_settings(dataclasses.replace(front, model="tiny-sd15"))
    assert engine_settings(front) != engine_settings(dataclasses.replace(front, adapter_cache_size=2))
