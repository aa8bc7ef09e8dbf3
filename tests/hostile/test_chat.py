"""Hostile chat messages through :func:`assistant.chat.respond` (the layer under the chat box).

``respond`` never raises: every bad message gets a reply that names the problem. A reply that is
the generic "something went wrong on my side" text means a bug was swallowed, so it fails here.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from .cases import FILE_CASES, GOOD, PROMPT_CASES, PromptCase
from .conftest import hostile_stem

chat = pytest.importorskip("assistant.chat")
library_module = pytest.importorskip("assistant.library")

#: The reply to a swallowed internal error (see assistant/chat.py): never acceptable here.
INTERNAL = re.compile(r"something went wrong on my side|内部错误")
#: A reply may quote the (at most 20,000-character) prompt once, but must not grow with hostile
#: input beyond that (a 1 MB message, 10k-character names, thousands of notes).
MAX_REPLY = 28_000
#: One reply must not hold the (single, shared) chat worker for longer than this.
RESPOND_BUDGET_S = 3.0


@pytest.fixture(scope="module")
def context(hostile_lora_dir: Path):  # type: ignore[no-untyped-def]
    library = library_module.Library.scan([str(hostile_lora_dir)])
    return chat.ChatContext(library=library, positive=f"1girl, <lora:{GOOD}:0.6>")


def _check(reply_text: str, mentions: tuple[str, ...], case_id: str) -> None:
    assert not INTERNAL.search(reply_text), f"{case_id}: an internal error was swallowed"
    assert "Traceback" not in reply_text
    for pattern in mentions:
        assert re.search(pattern, reply_text, re.IGNORECASE), (
            f"{case_id}: {reply_text[:400]!r} !~ {pattern!r}"
        )
    assert len(reply_text) <= MAX_REPLY, f"{case_id}: reply is {len(reply_text)} characters"


@pytest.mark.parametrize("case", PROMPT_CASES, ids=lambda c: c.id)
def test_chat_prompt(context, case: PromptCase) -> None:  # type: ignore[no-untyped-def]
    message = case.positive if not case.negative else f"{case.positive}\nNegative prompt: {case.negative}"
    reply = chat.respond(message, context)
    _check(reply.text, case.mentions if case.user != "ok" else (), case.id)
    if case.user == "error":
        assert reply.advice is None or not reply.advice.plan


@pytest.mark.parametrize(
    "case",
    [c for c in FILE_CASES if c.status in ("refused", "broken") or c.user == "skip"],
    ids=lambda c: c.id,
)
def test_chat_names_bad_file(context, case) -> None:  # type: ignore[no-untyped-def]
    stem = hostile_stem(case.id)
    reply = chat.respond(f"1girl, <lora:{stem}:0.5>", context)
    _check(reply.text, (re.escape(stem), *case.mentions, *case.user_mentions), case.id)
    assert reply.advice is not None
    assert reply.advice.plan == ()


COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "blindbox-huge": ("/blindbox 100000", (r"1 to 16", r"100000")),
    "blindbox-negative": ("/blindbox -1", (r"1 to 16", r"-1")),
    "blindbox-nan": ("/blindbox nan", (r"'nan'", r"whole number")),
    "sweep-1e309": (f"/sweep {GOOD} 0..1e309", (r"1e309", r"range")),
    "sweep-100k-steps": (f"/sweep {GOOD} 0..1 x 100000", (r"1 to 16", r"100000")),
    "sweep-traversal": ("/sweep ../../etc/passwd 0..1", (r"not found", r"\.\./\.\./etc/passwd")),
    "ab-traversal": (f"/ab ../../etc/passwd {GOOD}", (r"not found", r"\.\./\.\./etc/passwd")),
    "ab-pickle": (
        f"/ab {hostile_stem('pickle-ckpt')} {GOOD}",
        (re.escape(hostile_stem("pickle-ckpt")), r"pickle"),
    ),
    "recipe-traversal": ("/recipe ../../etc/passwd", (r"no recipe", r"\.\./\.\./etc/passwd")),
    "unknown-command": ("/rm -rf /", (r"don't know the command", r"/rm")),
    "nul-then-command": ("\x00/help", (r"not sure what you mean",)),
    "question-zh": ("为什么出图全黑", (r"出图全黑",)),
    "only-spaces": ("   \t  ", ()),
    "unknown-command-20k": ("/" + "a" * 20_000, (r"20,001 characters", r"limit is 2,000")),
    "loras-filter-20k": ("/loras " + "x" * 20_000, (r"20,007 characters", r"limit is 2,000")),
    "loras-filter-1k": ("/loras " + "x" * 1_000, (r"no LoRA matches",)),
    "blindbox-20k-digits": ("/blindbox " + "9" * 20_000, (r"20,010 characters", r"limit is 2,000")),
    "blindbox-1k-digits": ("/blindbox " + "9" * 1_000, (r"1 to 16",)),
    "loras-filter-1mb": ("/loras " + "x" * 1_000_000, (r"1,000,007 characters", r"limit is 2,000")),
    "prompt-1mb": ("1girl, " * 150_000, (r"1,049,999 characters", r"limit is 20,000")),
    "advise-30k": ("/advise " + "1girl, " * 5_000, (r"35,007 characters", r"limit is 20,000")),
    "prompt-1mb-zh": ("一个女孩," * 200_000, (r"1,000,000 个字符", r"20,000")),
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_chat_command(context, name: str) -> None:  # type: ignore[no-untyped-def]
    message, mentions = COMMANDS[name]
    started = time.perf_counter()
    reply = chat.respond(message, context)
    assert time.perf_counter() - started < RESPOND_BUDGET_S, f"{name}: the chat worker was blocked"
    _check(reply.text, mentions, name)
