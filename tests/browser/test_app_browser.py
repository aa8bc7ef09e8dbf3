"""Click through the app in chromium: chat with an image reply, a library card click."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.engine, pytest.mark.slow]


def _set_tiny_settings(page: Any) -> None:
    """Open the settings accordion and make renders tiny (64x64, 2 steps)."""
    page.get_by_text("Settings", exact=True).click()
    for elem_id, value in (("steps", "2"), ("width", "64"), ("height", "64")):
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(value)
        box.press("Enter")
        box.blur()


def test_chat_prompt_shows_the_image_in_the_conversation(page: Any, artifacts: Path) -> None:
    _set_tiny_settings(page)
    chat_input = page.locator("#chat-input textarea")
    chat_input.fill("1girl, cat ears, <lora:catgirl_v1:0.8>")
    page.locator("#send").click()
    image = page.locator("#chatbot img").first
    image.wait_for(state="visible", timeout=180_000)
    assert page.locator("#chatbot").inner_text().count("catgirl") >= 1
    # the assistant's rewrite landed in the prompt box
    assert "<lora:catgirl_v1:" in page.locator("#positive textarea").input_value()
    page.screenshot(path=str(artifacts / "chat-with-image.png"), full_page=True)


def test_library_card_click_inserts_the_tag(page: Any, artifacts: Path) -> None:
    page.get_by_role("tab", name="Library").click()
    card = page.locator("#library-cards tbody tr", has_text="catgirl_v1").first
    card.click()
    page.get_by_role("tab", name="Prompt").click()
    positive = page.locator("#positive textarea")
    page.wait_for_function(
        "() => document.querySelector('#positive textarea').value.includes('<lora:catgirl_v1:')"
    )
    assert positive.input_value().startswith("<lora:catgirl_v1:")
    # a slider appeared for the inserted LoRA
    page.get_by_label("catgirl_v1").first.wait_for(state="visible")
    page.screenshot(path=str(artifacts / "library-click.png"), full_page=True)


def test_embedded_model_banner_says_what_it_can_draw(page: Any) -> None:
    assert page.locator("#banner").is_visible()
    text = page.locator("#banner").inner_text()
    assert "trained here on shapes" in text
    assert "circle, square, triangle or star" in text
    assert "images are noise" not in text


def test_clip_skip_rng_and_vae_settings(page: Any, browser_server: Any, artifacts: Path) -> None:
    """The Settings row sets the server's clip skip and RNG (GET /options shows them), the VAE
    menu offers A1111's Automatic/None, and the status line names the model family."""
    import httpx

    page.get_by_text("Settings", exact=True).click()
    box = page.locator("#clip-skip input[type=number]")
    box.fill("2")
    box.press("Enter")
    box.blur()
    page.locator("#clip-skip input[type=range]").dispatch_event("pointerup")  # the slider's release
    url = f"{browser_server.url}/sdapi/v1/options"
    try:
        page.wait_for_function(
            "url => fetch(url).then(r => r.json()).then(o => o.CLIP_stop_at_last_layers === 2)", arg=url
        )
        page.locator("#vae input").click()
        options = page.locator("#vae [role=option]")
        options.last.wait_for(state="visible")
        assert [o.get_attribute("aria-label") for o in options.all()] == ["Automatic", "None"]
        page.keyboard.press("Escape")
        assert "(SD1.x, embedded demo)" in page.locator("#status").inner_text()
        page.screenshot(path=str(artifacts / "settings-clip-skip.png"), full_page=True)
    finally:
        httpx.post(url, json={"CLIP_stop_at_last_layers": 1})
