"""A real browser (Debian chromium through Playwright) against the real server.

The tests skip — with the reason — only when chromium is missing AND ``CI`` is not set; in CI
(``.ci/run`` installs chromium) a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.app.conftest import AppServer, start_app, stop_app

CHROMIUM = os.environ.get("LORA_MIXER_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium_available() -> bool:
    return Path(CHROMIUM).is_file() or shutil.which("chromium") is not None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not _chromium_available():
        if os.environ.get("CI"):
            pytest.fail(f"chromium not found at {CHROMIUM}; CI must install it (apt-get install chromium)")
        pytest.skip(f"chromium not found at {CHROMIUM} (install Debian's chromium; required when CI is set)")
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def browser_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = start_app(tmp_path_factory.mktemp("browser-server"))
    try:
        yield server
    finally:
        stop_app(server)


@pytest.fixture
def page(browser: Any, browser_server: AppServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(browser_server.url, wait_until="domcontentloaded")
    page.wait_for_selector("#chatbot")
    wait_loaded(page)
    yield page
    context.close()


def wait_loaded(page: Any) -> None:
    """Wait for the page's load events (the status line's model name comes with them), so a test
    does not type into a box that a late load update then redraws."""
    page.wait_for_function(
        "() => / on |failed/.test(document.querySelector('#status')?.textContent || '')", timeout=60_000
    )


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
