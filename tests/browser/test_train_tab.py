"""The Train tab in a real browser: upload a dataset, train, watch the loss and samples, cancel.

Its own server (the shared one writes into the repository's ``models/Lora``): a temporary LoRA
folder holding the shipped demo LoRAs, the embedded model as the base.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.engine.demo_loras import write_demo_loras
from tests.server import Server, start_server
from tests.train.conftest import write_dataset

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def train_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("train-tab")
    write_demo_loras(root / "Lora")
    server = start_server(root / "Lora", root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def train_page(browser: Any, train_server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(train_server.url, wait_until="domcontentloaded")
    page.wait_for_selector("#chatbot")
    page.get_by_role("tab", name="Train").click()
    yield page
    context.close()


def _fill(page: Any, files: list[str], name: str, steps: int) -> None:
    page.set_input_files("#train-files input[type=file]", files)
    page.locator("#train-name textarea, #train-name input").first.fill(name)
    page.locator("#train-trigger textarea, #train-trigger input").first.fill("catgirl")
    page.get_by_text("Training settings").click()
    page.locator("#train-steps input").fill(str(steps))
    page.locator("#train-res input").fill("64")


def test_train_a_lora_and_find_it_in_the_library(
    train_page: Any, train_server: Server, tmp_path: Path, artifacts: Path
) -> None:
    data = write_dataset(tmp_path / "img", images=4, repeats=2)
    files = sorted(str(p) for p in (data / "2_catgirl").iterdir())
    _fill(train_page, files, "browser_mascot", steps=8)
    train_page.click("#train-btn")
    train_page.wait_for_selector("#train-status:has-text('Done')")
    assert "<lora:browser_mascot:0.8>" in train_page.locator("#train-status").inner_text()
    train_page.locator("#train-loss").scroll_into_view_if_needed()
    train_page.wait_for_selector("#train-loss g.mark-line path", state="attached")
    assert train_page.locator("#train-samples img").count() >= 1
    train_page.screenshot(path=str(artifacts / "train-tab.png"), full_page=True)
    assert (train_server.lora_dir / "browser_mascot.safetensors").is_file()
    assert (train_server.lora_dir / "browser_mascot.preview.png").is_file()
    # at once in the library: the API lists it, and the Library tab shows its card
    names = [lora["name"] for lora in httpx.get(f"{train_server.url}/sdapi/v1/loras", timeout=60).json()]
    assert "browser_mascot" in names
    train_page.get_by_role("tab", name="Library").click()
    train_page.locator("#library-cards").get_by_text("browser_mascot").first.wait_for()


def test_bad_uploads_are_explained_and_nothing_is_written(
    train_page: Any, train_server: Server, tmp_path: Path
) -> None:
    junk = tmp_path / "notes.exe"
    junk.write_bytes(b"MZ")
    _fill(train_page, [str(junk)], "junk_lora", steps=5)
    train_page.click("#train-btn")
    # the file picker only offers images, captions and zips: the junk file never reaches the server
    train_page.get_by_text(
        re.compile("no files were uploaded|none of the uploads is an image")
    ).first.wait_for()
    assert not (train_server.lora_dir / "junk_lora.safetensors").exists()
