"""The chat behaves like a chat (issue 15): each reproduction from the issue, clicked in chromium.

One server for the whole browser session (``browser_server``), a fresh page (a new Gradio
session) per test. Renders are tiny (64², 2 steps) except where the test needs time to act
during a render (``SLOW``: a few seconds on 2 cores).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    BOT,
    SLOW,
    Stopwatch,
    bot_images,
    bot_texts,
    chat_images,
    fast,
    no_error_toast,
    press_enter,
    record,
    send,
    set_settings,
    toast_text,
    user_texts,
    wait_bot_count,
    wait_bot_text,
    wait_chat_images,
    wait_chat_matches,
    wait_user_text,
)

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.engine, pytest.mark.slow]

PROGRESS = r"step \d+\s*/\s*\d+"


# -- 4. the chat flow: echo, rewrite, progress in the message, image -----------------------------


def test_echo_then_rewrite_then_progress_then_image(page: Any, artifacts: Path) -> None:
    set_settings(page, **SLOW)
    clock = Stopwatch()
    send(page, "1girl, <lora:catgirl_v1:0.8>")
    wait_user_text(page, "catgirl_v1", timeout=10_000)
    echo = clock()
    assert chat_images(page) == 0
    assert page.locator("#chat-input textarea").input_value() == ""  # the box is free at once
    text = wait_bot_text(page, -1, "Rewritten prompt", timeout=10_000)
    rewrite = clock()
    assert chat_images(page) == 0, "the rewrite must come before the image"
    assert "trigger-words" in text
    # progress lives inside the assistant's message, under the rewrite
    text = wait_bot_text(page, -1, PROGRESS, timeout=60_000)
    progress = clock()
    assert "Rewritten prompt" in text
    wait_chat_images(page, 1)
    done = clock()
    final = bot_texts(page)[-1]
    assert not re.search(PROGRESS, final), "the image replaces the progress"
    assert "Rewritten prompt" in final
    assert "Seed" in final
    assert len(page.locator(BOT).all()) == 1
    page.screenshot(path=str(artifacts / "chat-flow-done.png"), full_page=True)
    record(artifacts, "chat_flow", echo_s=echo, rewrite_s=rewrite, first_progress_s=progress, image_s=done)


# -- 2. a message sent during a render is queued visibly, then rendered ---------------------------


def test_message_sent_during_a_render_is_queued_and_rendered(page: Any, artifacts: Path) -> None:
    set_settings(page, steps=80, width=256, height=256)
    send(page, "1girl, <lora:catgirl_v1:0.7>")
    wait_chat_matches(page, PROGRESS + "|generating")  # the first render is running
    clock = Stopwatch()
    press_enter(page, "1girl, <lora:jk_uniform:0.6>")
    wait_user_text(page, "jk_uniform", timeout=15_000)
    echo = clock()
    assert page.locator("#chat-input textarea").input_value() == ""
    wait_bot_text(page, -1, "queued|waiting", timeout=10_000)
    page.screenshot(path=str(artifacts / "chat-queued.png"), full_page=True)
    wait_chat_images(page, 2, timeout=180_000)
    texts = bot_texts(page)
    assert len(texts) == 2
    assert "catgirl_v1" in texts[0]
    assert "jk_uniform" in texts[1]
    assert not re.search("queued|waiting", texts[1], re.IGNORECASE)
    assert user_texts(page)[1].count("jk_uniform") == 1
    record(artifacts, "queued_message", echo_during_render_s=echo)


# -- 5. cancel says where it stopped and keeps the rewrite ----------------------------------------


def test_cancel_says_the_step_and_keeps_the_rewrite(page: Any, artifacts: Path) -> None:
    set_settings(page, steps=150, width=256, height=256)
    send(page, "1girl, <lora:catgirl_v1:0.8>")
    wait_bot_text(page, -1, PROGRESS, timeout=60_000)
    clock = Stopwatch()
    page.locator("#cancel").click()
    text = wait_bot_text(page, -1, r"cancelled at step \d+\s*/\s*150", timeout=20_000)
    latency = clock()
    assert "Rewritten prompt" in text, "the rewrite stays"
    assert "catgirl_v1" in user_texts(page)[0], "the request stays"
    assert chat_images(page) == 0
    assert "catgirl" in page.locator("#positive textarea").input_value()
    page.screenshot(path=str(artifacts / "chat-cancelled.png"), full_page=True)
    step = int(re.search(r"cancelled at step (\d+)", text, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    assert 0 <= step < 150
    record(artifacts, "cancel", click_to_message_s=latency)


# -- 1. the Sweep button with the options closed ----------------------------------------------------


def test_sweep_button_with_closed_options_sweeps_the_prompt_lora(page: Any) -> None:
    fast(page)
    page.locator("#positive textarea").fill("1girl, <lora:catgirl_v1:0.8>")
    page.locator("#sweep").click()
    wait_chat_images(page, 1)
    text = bot_texts(page)[-1]
    assert "catgirl_v1" in text
    assert "Error" not in text
    assert no_error_toast(page)


# -- 3. /ab and /sweep on an empty prompt box ---------------------------------------------------------


def test_ab_and_sweep_commands_on_an_empty_prompt_ask_for_one(page: Any) -> None:
    fast(page)
    send(page, "/ab catgirl_v1 catgirl_v2")
    # the answer, not the "⏳ Working on it…" placeholder that precedes it ("." matched that too)
    first = wait_bot_text(page, 0, "prompt")
    send(page, "/sweep catgirl_v1 0.2..1.0x5")
    wait_bot_count(page, 2)
    second = wait_bot_text(page, 1, "prompt")
    for text in (first, second):
        assert "rendered with" not in text, text
        assert "same seed for every cell" not in text, text
        assert re.search(r"prompt box|needs a prompt|send a prompt", text, re.IGNORECASE), text
    assert chat_images(page) == 0


# -- 7. one limit for a message, quoted the same everywhere -----------------------------------------


def test_long_messages_are_refused_with_one_limit(page: Any) -> None:
    fast(page)
    filler = "1girl, cat ears, "
    longest = (filler * 3000)[:49_972]
    long = ("1girl, <lora:catgirl_v1:0.8>, " + filler * 2000)[:30_022]
    send(page, longest)
    first = wait_bot_text(page, 0, "limit")
    send(page, long)
    wait_bot_count(page, 2)
    second = wait_bot_text(page, 1, "limit")
    quoted = re.findall(r"limit is ([\d,]+)", first + "\n" + second)
    assert len(quoted) >= 2, (first[:300], second[:300])
    assert len(set(quoted)) == 1, f"two limits quoted: {quoted}"
    assert "49,972" in first
    assert "30,022" in second


# -- 8. a symptom discussed in the last turns is applied to the next prompt ------------------------


def test_symptom_discussed_is_applied_to_the_next_prompt(page: Any) -> None:
    fast(page)
    send(page, "多耳怪怎么办")
    wait_bot_text(page, 0, "多")
    send(page, "一个猫耳女孩, <lora:catgirl_v1:1.2>")
    text = wait_bot_text(page, 1, "改写|Rewritten")
    wait_chat_images(page, 1)
    text = bot_texts(page)[1]
    assert "<lora:catgirl_v1:0.6>" in text, text
    assert "extra cat ears:1.5" in text, text
    assert "多耳" in text, "the reply says which earlier symptom it applied"


# -- 9. replies never contradict themselves -----------------------------------------------------------


def test_unknown_lora_and_negative_character_weight_are_not_called_fine(page: Any) -> None:
    fast(page)
    send(page, "1girl, <lora:nonexistent:0.8>")
    text = wait_bot_text(page, 0, "nonexistent")
    wait_bot_text(page, 0, r"Seed|not render|cannot", timeout=60_000)
    text = bot_texts(page)[0]
    assert "already follows the rules" not in text
    assert "catgirl_v1" in text or "/loras" in text, "the reply says what exists"
    # the weight slider of a LoRA that is not applied says so
    page.wait_for_function(
        "() => [...document.querySelectorAll('label, [data-testid=block-info]')]"
        ".some(l => /nonexistent.*not in the library/i.test(l.innerText))",
        timeout=10_000,
    )
    send(page, "1girl, <lora:catgirl_v1:-0.5>")
    wait_bot_count(page, 2)
    text = wait_bot_text(page, 1, r"Seed|cancel", timeout=60_000)
    assert "already follows the rules" not in text
    assert re.search(r"negative weight", text, re.IGNORECASE), text


# -- smaller: the carried negative prompt is shown as carried ---------------------------------------


def test_negative_prompt_carried_from_the_previous_turn_says_so(page: Any) -> None:
    fast(page)
    send(page, "1girl, <lora:catgirl_v1:0.8>")
    wait_chat_images(page, 1)
    assert "extra cat ears" in page.locator("#negative textarea").input_value()
    send(page, "1girl, solo, <lora:cyberpunk_style:0.5>")
    wait_chat_images(page, 2)
    text = bot_texts(page)[1]
    assert re.search(r"carried", text, re.IGNORECASE), text
    assert "extra cat ears" in text


# -- smaller: plurals ---------------------------------------------------------------------------------


def test_one_image_blind_box_says_one_image(page: Any) -> None:
    fast(page)
    page.locator("#positive textarea").fill("1girl, <lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.5>")
    send(page, "/blindbox 1")
    wait_chat_images(page, 1)
    text = " ".join(bot_texts(page))
    assert not re.search(r"\b1 (images|mixes|cells)\b", text), text


# -- smaller: the empty-prompt message is shown whole ------------------------------------------------


def test_empty_prompt_message_is_not_cut(page: Any) -> None:
    page.locator("#generate").click()
    text = toast_text(page)
    assert "<lora:catgirl_v1:0.8>'" in text, text


# -- smaller: the chat's icons leave the first message readable --------------------------------------


def test_chat_icons_do_not_cover_the_first_message(page: Any) -> None:
    send(page, "/loras")  # a long table: the conversation scrolls to its end
    page.locator("#chatbot table").first.wait_for()
    log = page.locator("#chatbot [role='log']").bounding_box()
    bubble = page.locator("#chatbot [data-testid='user']").first.bounding_box()
    assert log is not None
    assert bubble is not None
    for name in ("Clear", "Copy conversation"):
        box = page.locator(f"#chatbot button[aria-label='{name}']").first.bounding_box()
        assert box is not None
        # the messages scroll below the icons, never under them
        assert log["y"] >= box["y"] + box["height"], f"the {name} icon floats over the messages"
        overlap_x = min(bubble["x"] + bubble["width"], box["x"] + box["width"]) - max(bubble["x"], box["x"])
        overlap_y = min(bubble["y"] + bubble["height"], box["y"] + box["height"]) - max(bubble["y"], box["y"])
        assert overlap_x <= 0 or overlap_y <= 0, f"the {name} icon covers the first message"


# -- smaller: the A/B fields say what blank means ------------------------------------------------------


def test_ab_blank_fields_do_what_their_placeholders_say(page: Any) -> None:
    fast(page)
    page.locator("#positive textarea").fill("1girl, <lora:catgirl_v1:0.6>, <lora:cyberpunk_style:0.4>")
    page.get_by_text("Blind box, A/B and sweep options").click()
    a = page.get_by_label("A/B: variant A").get_attribute("placeholder") or ""
    b = page.get_by_label("A/B: variant B").get_attribute("placeholder") or ""
    page.locator("#ab").click()
    wait_chat_images(page, 1)
    text = bot_texts(page)[-1]
    # blank A is the prompt's first LoRA, blank B its second: the placeholders must say that
    assert re.search(r"first", a, re.IGNORECASE), a
    assert re.search(r"second", b, re.IGNORECASE), b
    assert re.search(r"A: catgirl", text), text
    assert re.search(r"B: cyber", text), text


# -- A/B difference map and sweep effect curve in the chat ---------------------------------------------


def test_ab_reply_has_a_difference_map_and_sweep_reply_a_sweet_spot(page: Any) -> None:
    fast(page)
    page.locator("#positive textarea").fill("1girl, <lora:catgirl_v1:0.6>")
    send(page, "/ab catgirl_v1 catgirl_v2")
    wait_chat_images(page, 2)
    text = bot_texts(page)[-1]
    assert re.search(r"changed", text, re.IGNORECASE), text
    assert "%" in text, text
    assert bot_images(page, 0) == 2, "the grid and the difference map"
    send(page, "/sweep catgirl_v1 0..1x5")
    wait_bot_count(page, 2)
    wait_chat_images(page, 3)
    text = bot_texts(page)[-1]
    assert re.search(r"effect", text, re.IGNORECASE), text
    assert re.search(r"sweet spot|keeps growing|no visible effect", text, re.IGNORECASE), text
