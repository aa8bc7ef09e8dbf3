"""The service's engine gate: one slot per engine worker, arrival order, cancellable waits,
and an exclusive hold (a model or VAE change) that waits for every running render."""

from __future__ import annotations

import threading
import time

import pytest

from assistant.errors import Cancelled
from assistant.service import FairLock


def _hold_in_thread(
    lock: FairLock, started: threading.Event, release: threading.Event, log: list[str], name: str
) -> threading.Thread:
    def run() -> None:
        with lock.hold():
            log.append(f"{name} in")
            started.set()
            release.wait(10)
            log.append(f"{name} out")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_one_slot_per_worker_and_the_rest_in_arrival_order() -> None:
    lock = FairLock(capacity=2)
    release = threading.Event()
    log: list[str] = []
    first, second = threading.Event(), threading.Event()
    a = _hold_in_thread(lock, first, release, log, "a")
    b = _hold_in_thread(lock, second, release, log, "b")
    assert first.wait(5)
    assert second.wait(5)
    assert lock.busy == 2
    ahead: list[int] = []
    waiting = threading.Thread(target=lambda: lock.acquire(on_wait=ahead.append) or log.append("c in"))
    waiting.start()
    time.sleep(0.3)
    assert "c in" not in log
    assert ahead == [1]  # one slot must free up first
    release.set()
    for thread in (a, b, waiting):
        thread.join(5)
    assert log.index("c in") > min(log.index("a out"), log.index("b out"))  # after a slot freed
    lock.release()
    assert lock.busy == 0


def test_exclusive_waits_for_every_running_render_and_holds_all_slots() -> None:
    lock = FairLock(capacity=2)
    release = threading.Event()
    log: list[str] = []
    started = threading.Event()
    running = _hold_in_thread(lock, started, release, log, "render")
    assert started.wait(5)
    switched = threading.Event()

    def switch() -> None:
        with lock.exclusive():
            log.append("switch")
            switched.set()
            time.sleep(0.2)

    switcher = threading.Thread(target=switch)
    switcher.start()
    time.sleep(0.2)
    assert not switched.is_set()  # a free slot is not enough: the running render must end
    late = threading.Thread(target=lambda: lock.acquire() or log.append("late in"))
    late.start()
    release.set()
    for thread in (running, switcher, late):
        thread.join(5)
    assert log == ["render in", "render out", "switch", "late in"]  # nothing slipped past the switch
    lock.release()


def test_a_cancelled_wait_ends_at_once_and_a_resize_frees_slots() -> None:
    lock = FairLock(capacity=1)
    lock.acquire()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled, match="waiting for the engine"):
        lock.acquire(cancel)
    got = threading.Event()
    waiter = threading.Thread(target=lambda: lock.acquire() or got.set())
    waiter.start()
    time.sleep(0.2)
    assert not got.is_set()
    lock.resize(2)  # the Ray engine loaded with two replicas
    assert got.wait(5)
    waiter.join(5)
