"""Hostile input through the UI's own path: the Gradio queue, driven by ``gradio_client``.

The chat answers every message with a reply (never an exception); the Generate button answers
bad settings with a ``gr.Error`` whose message names the setting. After each case the server is
up and the next normal API request gives the baseline image bit for bit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server import TINY, Server

from .cases import PROMPT_CASES, PromptCase
from .conftest import NORMAL_PROMPT, assert_unharmed

pytestmark = [pytest.mark.server, pytest.mark.engine, pytest.mark.slow]

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def ui(server: Server) -> Iterator[Any]:
    client = gradio_client.Client(server.url, verbose=False)
    yield client
    client.close()


def _settings(**overrides: Any) -> list[Any]:
    values = {
        "sampler": TINY["sampler_name"],
        "steps": TINY["steps"],
        "cfg": TINY["cfg_scale"],
        "width": TINY["width"],
        "height": TINY["height"],
        "seed": TINY["seed"],
        "batch": 1,
    }
    values.update(overrides)
    return list(values.values())


def _chat(ui: Any, message: str, positive: str = "", negative: str = "") -> str:
    """One chat turn; returns everything the user sees as one string (reply text and file names)."""
    chat_message = {"text": message, "files": []}  # the MultimodalTextbox's value
    result = ui.predict(chat_message, [], positive, negative, True, *_settings(), api_name="/chat")
    history = result[0]
    assert history, "the chat must answer"
    return json.dumps(history[-1], ensure_ascii=False)


# Messages that cannot be typed into a chat box in a meaningful way are still sent: the reply
# must explain. (The 1 MB and 100k cases are kept: a browser would send them just the same.)
CHAT_CASES = [c for c in PROMPT_CASES if c.user in ("error", "skip")]


@pytest.mark.parametrize("case", CHAT_CASES, ids=lambda c: c.id)
def test_chat_explains(ui: Any, server: Server, http: httpx.Client, baseline: str, case: PromptCase) -> None:
    reply = _chat(ui, case.positive, negative=case.negative)
    for pattern in case.mentions:
        # json.dumps escapes non-ASCII only with ensure_ascii; we keep it readable, so search as is.
        assert re.search(pattern, reply, re.IGNORECASE), f"{case.id}: {reply[:400]!r} !~ {pattern!r}"
    assert "Traceback" not in reply
    assert_unharmed(server, http, baseline)


UI_SETTING_CASES = {
    "width-not-multiple-of-8": ({"width": 70}, (r"width", r"70", r"8")),
    "steps-zero": ({"steps": 0}, (r"steps",)),
    "steps-10000": ({"steps": 10_000}, (r"steps",)),
    "batch-1000": ({"batch": 1000}, (r"batch",)),
    "unknown-sampler": ({"sampler": "Euler z"}, (r"Euler z",)),
    "seed-too-large": ({"seed": 2**40}, (r"seed",)),
    "height-negative": ({"height": -64}, (r"height",)),
}


@pytest.mark.parametrize("name", list(UI_SETTING_CASES))
def test_generate_button_rejects_settings(
    ui: Any, server: Server, http: httpx.Client, baseline: str, name: str
) -> None:
    overrides, mentions = UI_SETTING_CASES[name]
    with pytest.raises(gradio_client.exceptions.AppError) as err:
        ui.predict(NORMAL_PROMPT, "", True, *_settings(**overrides), [], api_name="/generate")
    message = str(err.value)
    for pattern in mentions:
        assert re.search(pattern, message, re.IGNORECASE), f"{name}: {message!r} !~ {pattern!r}"
    assert "Traceback" not in message
    assert_unharmed(server, http, baseline)


def test_empty_chat_message_is_a_friendly_error(
    ui: Any, server: Server, http: httpx.Client, baseline: str
) -> None:
    with pytest.raises(gradio_client.exceptions.AppError, match=r"(?i)type a prompt"):
        ui.predict({"text": "   ", "files": []}, [], "", "", True, *_settings(), api_name="/chat")
    assert_unharmed(server, http, baseline)


def test_cancel_a_running_render(ui: Any, server: Server, http: httpx.Client, baseline: str) -> None:
    """Cancel from the UI while a long render runs: a "⏹ … cancelled" note in the conversation
    (a cancel is not an error), no image, then business as usual.

    The cancel is repeated until the job ends: a cancel that lands before the handler starts is
    (rightly) cleared when the new render begins, so one early click is not enough to test.
    """
    import time

    job = ui.submit(
        NORMAL_PROMPT, "", True, *_settings(steps=150, width=256, height=256), [], api_name="/generate"
    )
    deadline = time.monotonic() + 240
    while not job.done() and time.monotonic() < deadline:
        ui.predict(api_name="/cancel")
        time.sleep(0.3)
    assert job.done(), "the render did not stop between steps"
    history = job.result(timeout=10)[0]
    reply = json.dumps(history[-1], ensure_ascii=False)
    assert re.search(r"(?i)⏹.*cancel", reply), reply[:300]
    assert ".png" not in reply, "a cancelled render must not deliver an image"
    assert_unharmed(server, http, baseline)
