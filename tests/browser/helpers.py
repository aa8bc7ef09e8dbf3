"""What a person does in the page, as small functions the browser tests share.

Every wait is on a condition in the page (``wait_for_function``), never a fixed sleep; the
conditions read the conversation the way a user reads it: the text of each message bubble.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

#: The conversation's bubbles, oldest first (Gradio 6 chatbot markup).
USER = "#chatbot [data-testid='user']"
BOT = "#chatbot .message-row.bot-row"

#: A render of a few seconds with the tiny model on 2 cores (long enough to act during it).
SLOW = {"steps": 60, "width": 256, "height": 256}
#: The fastest render: a fraction of a second.
FAST = {"steps": 2, "width": 64, "height": 64}


def set_settings(page: Any, steps: int, width: int, height: int) -> None:
    """Open the Settings accordion (once) and type steps and size into the number boxes.

    Right after the accordion opens its sliders are still being drawn, and a value typed in that
    moment can be reset to the default; what did not take is typed again (a person would see it).
    """
    steps_box = page.locator("#steps input[type=number]")
    if not steps_box.is_visible():
        page.get_by_text("Settings", exact=True).click()
        steps_box.wait_for(state="visible")
    wanted = {"steps": steps, "width": width, "height": height}
    for _attempt in range(3):
        for elem_id, value in wanted.items():
            box = page.locator(f"#{elem_id} input[type=number]")
            if box.input_value() == str(value):
                continue
            box.fill(str(value))
            box.press("Enter")
            box.blur()
        try:
            page.wait_for_function(
                "(wanted) => Object.entries(wanted).every(([id, v]) =>"
                " document.querySelector(`#${id} input[type=number]`).value === String(v))",
                arg=wanted,
                timeout=5_000,
            )
            return
        except Exception:  # not yet: typed again below
            continue
    values = {i: page.locator(f"#{i} input[type=number]").input_value() for i in wanted}
    raise AssertionError(f"settings {wanted} did not take: the boxes hold {values}")


def fast(page: Any) -> None:
    set_settings(page, **FAST)


def send(page: Any, text: str) -> None:
    """Type a chat message and press Send."""
    page.locator("#chat-input textarea").fill(text)
    page.locator("#send").click()


def press_enter(page: Any, text: str) -> None:
    """Type a chat message and press Enter in the box."""
    box = page.locator("#chat-input textarea")
    box.fill(text)
    box.press("Enter")


def bot_texts(page: Any) -> list[str]:
    return [str(t) for t in page.locator(BOT).all_inner_texts()]


def user_texts(page: Any) -> list[str]:
    return [str(t) for t in page.locator(USER).all_inner_texts()]


def wait_bot_count(page: Any, count: int, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length >= n", arg=[BOT, count], timeout=timeout
    )


def wait_bot_text(page: Any, index: int, pattern: str, timeout: float = 60_000) -> str:
    """Wait until bot bubble ``index`` (negative: from the end) matches ``pattern``; its text."""
    page.wait_for_function(
        """([sel, index, pattern]) => {
            const rows = document.querySelectorAll(sel);
            const row = rows[index < 0 ? rows.length + index : index];
            return !!row && new RegExp(pattern, 'i').test(row.innerText);
        }""",
        arg=[BOT, index, pattern],
        timeout=timeout,
    )
    texts = bot_texts(page)
    return texts[index]


def wait_user_text(page: Any, pattern: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "([sel, pattern]) => [...document.querySelectorAll(sel)].some(e => new RegExp(pattern, 'i')"
        ".test(e.innerText))",
        arg=[USER, pattern],
        timeout=timeout,
    )


def chat_images(page: Any) -> int:
    return int(page.locator(f"{BOT} img").count())


def wait_chat_images(page: Any, count: int, timeout: float = 120_000) -> None:
    page.wait_for_function(
        "([sel, n]) => [...document.querySelectorAll(sel)].filter(i => i.complete &&"
        " i.naturalWidth > 0).length >= n",
        arg=[f"{BOT} img", count],
        timeout=timeout,
    )


def bot_images(page: Any, index: int) -> int:
    return int(page.locator(BOT).nth(index).locator("img").count())


def wait_chat_matches(page: Any, pattern: str, timeout: float = 60_000) -> None:
    """Anything in the conversation area (messages or an overlay) matches ``pattern``."""
    page.wait_for_function(
        "(pattern) => new RegExp(pattern, 'i').test(document.querySelector('#chatbot').innerText)",
        arg=pattern,
        timeout=timeout,
    )


def toast_text(page: Any, timeout: float = 20_000) -> str:
    toast = page.locator("[data-testid='toast-text']").first
    toast.wait_for(state="visible", timeout=timeout)
    return str(toast.inner_text())


def no_error_toast(page: Any) -> bool:
    return int(page.locator(".toast-message-item.error").count()) == 0


def record(artifacts: Path, name: str, **values: float) -> None:
    """Add measured numbers to test-artifacts/browser-timings.json (for the closing notes)."""
    path = artifacts / "browser-timings.json"
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            data = {}
    data[name] = {k: round(v, 3) for k, v in values.items()}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.start


def numbers(pattern: str, texts: list[str]) -> list[str]:
    return [m for text in texts for m in re.findall(pattern, text)]
