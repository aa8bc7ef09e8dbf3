"""One conversation per session (assistant.ui.conversation): order, queueing, cancel, boxes."""

from __future__ import annotations

import threading

from assistant.chat import ChatMemory
from assistant.ui.conversation import (
    MAX_MESSAGES,
    Conversation,
    Sessions,
    cancelled_line,
    progress_line,
    queued_line,
)


def test_a_request_is_shown_at_once_and_waits_for_the_earlier_ones() -> None:
    chat = Conversation()
    first = chat.add("first", waiting="…")
    second = chat.add("second", waiting="…")
    # both user messages and both placeholders are in the conversation right away
    assert [m["content"][0] for m in chat.snapshot()] == ["first", "…", "second", "…"]
    assert chat.ahead(first) == 0
    assert chat.ahead(second) == 1
    assert chat.wait_turn(first, 0)
    assert not chat.wait_turn(second, 0.01)
    done = threading.Event()

    def later() -> None:
        chat.wait_turn(second, 5)
        done.set()

    thread = threading.Thread(target=later)
    thread.start()
    chat.set_reply(first, "answer", {"path": "/x.png"})
    chat.finish(first)
    thread.join(5)
    assert done.is_set()
    assert chat.snapshot()[1]["content"] == ["answer", {"path": "/x.png"}]


def test_snapshots_are_copies() -> None:
    chat = Conversation()
    job = chat.add("hi", waiting="…")
    shot = chat.snapshot()
    chat.set_reply(job, "changed")
    assert shot[1]["content"] == ["…"]


def test_cancel_reaches_every_request_sent_so_far_but_not_later_ones() -> None:
    chat = Conversation()
    jobs = [chat.add(str(i), waiting="…") for i in range(3)]
    assert chat.cancel_all() == 3
    assert all(job.cancel.is_set() for job in jobs)
    later = chat.add("later", waiting="…")
    assert not later.cancel.is_set()


def test_a_queued_request_uses_the_boxes_an_earlier_turn_wrote() -> None:
    chat = Conversation()
    first = chat.add("1girl, <lora:x:1>", boxes=("", ""), waiting="…")
    queued = chat.add("/blindbox 4", boxes=("", ""), waiting="…")
    assert chat.boxes_for(first) == ("", "")
    chat.set_boxes("1girl, <lora:x:0.8>", "lowres")  # the first turn's rewrite
    assert chat.boxes_for(queued) == ("1girl, <lora:x:0.8>", "lowres")
    sent_after = chat.add("/ab x y", boxes=("typed by hand", ""), waiting="…")
    assert chat.boxes_for(sent_after) == ("typed by hand", "")


def test_the_clients_history_is_adopted_only_when_idle() -> None:
    chat = Conversation()
    chat.adopt([{"role": "user", "content": ["old"]}])
    assert len(chat.snapshot()) == 1
    chat.memory = ChatMemory(symptoms=("extra-ears",), turns_left=3)
    chat.adopt([])
    assert chat.snapshot() == []
    assert chat.memory == ChatMemory()  # an empty history starts afresh
    chat.add("running", waiting="…")
    chat.adopt([])  # a stale copy from the page while a request runs: the server's is newer
    assert len(chat.snapshot()) == 2


def test_a_long_conversation_is_trimmed() -> None:
    chat = Conversation()
    for i in range(MAX_MESSAGES):
        chat.finish(chat.add(str(i), waiting="…"))
    assert len(chat.snapshot()) == MAX_MESSAGES


def test_sessions_are_bounded_but_a_busy_one_is_kept() -> None:
    sessions = Sessions(limit=2)
    busy = sessions.get("a")
    busy.add("rendering", waiting="…")
    sessions.get("b")
    sessions.get("c")
    assert sessions.get("a") is busy
    sessions.drop("a")
    assert sessions.get("a") is not busy


def test_status_lines() -> None:
    assert progress_line(7, 20, "generating").startswith("⏳ Rendering — step 7/20")
    assert progress_line(7, 20, "generating").endswith("35%")
    assert "1 earlier request of yours" in queued_line(1)
    assert "2 earlier requests" in queued_line(2)
    assert cancelled_line(12, 150, started=True).startswith("⏹ Cancelled at step 12/150")
    assert "before it started" in cancelled_line(None, None, started=False)
