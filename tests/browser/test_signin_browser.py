"""Sign in with Gradio's form in chromium, render, and find the image only in your own History."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server import LORA_DIR, Server, start_server

from .test_app_browser import _set_tiny_settings

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.engine, pytest.mark.slow]

USERS = {"alice": "pw-alice-b7", "bob": "pw-bob-c4"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    users = ",".join(f"{u}:{p}" for u, p in USERS.items())
    running = start_server(
        LORA_DIR,
        tmp_path_factory.mktemp("signin-browser"),
        extra_args=("--auth", users),
        api_auth=("alice", USERS["alice"]),
    )
    yield running
    running.stop()
    if "Traceback" in running.log():
        print(running.log()[-6000:], file=sys.stderr)


def _sign_in(browser: Any, server: Server, user: str, password: str) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server.url, wait_until="domcontentloaded")
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    return page


def _history_images(page: Any) -> int:
    page.get_by_role("tab", name="History").click()
    page.get_by_role("button", name="Refresh", exact=True).click()
    page.wait_for_timeout(1500)  # the refresh is one short event; no image to wait for when empty
    assert "nobody else sees them" in page.locator("#history").inner_text()  # says it is private
    return page.locator("#history img").count()


def test_sign_in_render_and_only_your_own_history(browser: Any, server: Server, artifacts: Path) -> None:
    wrong = _sign_in(browser, server, "alice", "not-it")
    wrong.get_by_text("Incorrect Credentials", exact=False).wait_for(state="visible")
    assert wrong.locator("#chatbot").count() == 0
    wrong.context.close()

    alice = _sign_in(browser, server, "alice", USERS["alice"])
    alice.wait_for_selector("#chatbot")
    _set_tiny_settings(alice)
    alice.locator("#positive textarea").fill("1girl, alice in the browser, <lora:catgirl_v1:0.6>")
    alice.locator("#generate").click()
    alice.locator("#chatbot img").first.wait_for(state="visible", timeout=180_000)
    assert _history_images(alice) >= 1
    alice.screenshot(path=str(artifacts / "signin-alice-history.png"), full_page=True)

    bob = _sign_in(browser, server, "bob", USERS["bob"])
    bob.wait_for_selector("#chatbot")
    assert _history_images(bob) == 0  # alice's image is not in bob's History
    bob.screenshot(path=str(artifacts / "signin-bob-history.png"), full_page=True)
    saved = list(server.outputs_dir.rglob("*.png"))
    assert saved
    assert all("users" in path.parts for path in saved)
    bob.context.close()
    alice.context.close()
