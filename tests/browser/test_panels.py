"""The panels around the chat (issue 15): recipes, settings memory, library, sliders, phone, /docs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.app.conftest import AppServer

from .conftest import wait_loaded
from .helpers import bot_texts, fast, send, wait_bot_count, wait_bot_text, wait_chat_images

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.engine, pytest.mark.slow]


def _pick(page: Any, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _value(page: Any, elem_id: str) -> str:
    return str(page.locator(f"#{elem_id} textarea, #{elem_id} input").first.input_value())


# -- 6. the recipe menu replaces the previous recipe and says what it set ----------------------------


def test_recipe_menu_replaces_the_previous_recipe(page: Any) -> None:
    page.locator("#positive textarea").fill("masterpiece")
    _pick(page, "recipe", "catgirl_cyber_blindbox")
    page.wait_for_function("() => document.querySelector('#positive textarea').value.includes('catgirl_v1')")
    page.wait_for_function("() => /seed 42/i.test(document.querySelector('#recipe-note').innerText)")
    _pick(page, "recipe", "cyber_hotpot")
    page.wait_for_function("() => document.querySelector('#positive textarea').value.includes('soft_light')")
    positive = _value(page, "positive")
    negative = _value(page, "negative")
    assert positive.count("<lora:catgirl_v1:") == 1, positive
    assert positive.count("<lora:cyberpunk_style:") == 1, positive
    assert positive.startswith("masterpiece"), "the user's own words stay"
    assert "extra cat ears" not in negative, "the first recipe's negative prompt is gone"
    assert "extra limbs" in negative
    note = page.locator("#recipe-note").inner_text()
    assert re.search(r"steps 28", note, re.IGNORECASE), note
    assert re.search(r"seed.*-1|seed.*random", note, re.IGNORECASE), "the first recipe's seed is undone"
    page.get_by_text("Settings", exact=True).click()
    page.wait_for_function("() => document.querySelector('#seed input')?.value === '-1'")
    assert page.locator("#steps input[type=number]").input_value() == "28"
    labels = page.locator("input[type=range][aria-label^='range slider for ']").evaluate_all(
        "els => els.filter(e => e.offsetParent !== null).map(e => e.getAttribute('aria-label'))"
    )
    names = [label.removeprefix("range slider for ") for label in labels]
    assert sorted(n for n in names if "_" in n) == ["catgirl_v1", "cyberpunk_style", "soft_light"], names


# -- issue 17: a recipe's range: bounds the Blind box it was picked for ----------------------------------


def test_blind_box_draws_within_the_picked_recipes_ranges(page: Any) -> None:
    page.locator("#positive textarea").fill("1girl")
    _pick(page, "recipe", "catgirl_cyber_blindbox")
    page.wait_for_function("() => document.querySelector('#positive textarea').value.includes('catgirl_v1')")
    fast(page)  # after the recipe, which sets 28 steps at 512x512
    page.get_by_text("Blind box, A/B and sweep options").click()
    count = page.get_by_label("number input for Blind box: images")
    count.wait_for(state="visible")
    count.fill("2")
    count.press("Enter")
    page.locator("#blindbox").click()
    text = wait_bot_text(page, -1, r"recipe catgirl_cyber_blindbox's ranges")
    assert re.search(r"catgirl_v1 0\.4\.\.0\.7", text), text
    wait_chat_images(page, 1)


# -- 11. the apply choice survives a reload ------------------------------------------------------------


def test_apply_choice_is_remembered_after_a_reload(page: Any) -> None:
    box = page.locator("#apply input[type=checkbox]")
    assert box.is_checked()
    before = page.evaluate("() => localStorage.getItem('lora_mixer_apply')")
    box.uncheck()
    # the browser's store is written (encrypted by Gradio, so only a change can be seen)
    page.wait_for_function("(v) => localStorage.getItem('lora_mixer_apply') !== v", arg=before)
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector("#chatbot")
    wait_loaded(page)
    page.wait_for_function(
        "() => { const b = document.querySelector('#apply input[type=checkbox]'); return b && !b.checked; }",
        timeout=15_000,
    )
    # and a chat turn then suggests without applying
    send(page, "1girl, <lora:catgirl_v1:0.8>")
    wait_bot_count(page, 1)
    page.wait_for_function("() => /not applied/i.test(document.querySelector('#chatbot').innerText)")
    box = page.locator("#apply input[type=checkbox]")
    box.check()  # leave the browser's store as the other tests expect it


# -- smaller: the blind box slider takes what /blindbox takes -----------------------------------------


def test_blind_box_slider_range_matches_the_command(page: Any) -> None:
    page.get_by_text("Blind box, A/B and sweep options").click()
    slider = page.locator("input[aria-label='range slider for Blind box: images']")
    slider.wait_for(state="visible")
    assert slider.get_attribute("min") == "1"
    assert slider.get_attribute("max") == "16"


# -- smaller: library search with no match, card click feedback ----------------------------------------


def test_library_says_when_nothing_matches_and_what_a_click_did(page: Any) -> None:
    page.get_by_role("tab", name="Library").click()
    search = page.locator("#lora-search textarea, #lora-search input").first
    search.fill("zzzz-no-such-lora")
    search.press("Enter")
    page.wait_for_function(
        "() => /No LoRA matches/i.test(document.querySelector('#library-note').innerText)", timeout=15_000
    )
    search.fill("")
    search.press("Enter")
    page.locator("#library-cards tbody tr", has_text="watercolor_xl").first.wait_for()
    page.locator("#library-cards tbody tr", has_text="watercolor_xl").first.click()
    page.wait_for_function(
        "() => /watercolor_xl/.test(document.querySelector('#library-note').innerText)", timeout=15_000
    )
    note = page.locator("#library-note").inner_text()
    assert re.search(r"added|inserted", note, re.IGNORECASE), note
    assert re.search(r"sdxl", note, re.IGNORECASE), note
    assert re.search(r"sd15|SD1\.5", note), note
    page.get_by_role("tab", name="Prompt").click()
    assert "<lora:watercolor_xl:" in page.locator("#positive textarea").input_value()


# -- smaller: a weight typed in a slider's box syncs the prompt ----------------------------------------


def test_typing_a_weight_and_enter_updates_the_prompt(page: Any) -> None:
    page.locator("#positive textarea").fill("1girl, <lora:catgirl_v1:0.8>")
    number = page.get_by_label("number input for catgirl_v1")
    number.wait_for(state="visible")
    number.fill("0.45")
    number.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('#positive textarea').value.includes('<lora:catgirl_v1:0.45>')",
        timeout=15_000,
    )


# -- 12. /docs works with no internet -------------------------------------------------------------------


def test_api_docs_render_offline(browser: Any, browser_server: AppServer) -> None:
    context = browser.new_context()
    local = browser_server.url

    def only_local(route: Any) -> None:
        if route.request.url.startswith(local):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    try:
        page.goto(f"{local}/docs", wait_until="domcontentloaded")
        page.locator(".swagger-ui .opblock").first.wait_for(timeout=20_000)
        assert "/sdapi/v1/txt2img" in page.locator(".swagger-ui").inner_text()
    finally:
        context.close()


# -- 10. the phone layout ---------------------------------------------------------------------------------


@pytest.fixture
def phone(browser: Any, browser_server: AppServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 400, "height": 900}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(browser_server.url, wait_until="domcontentloaded")
    page.wait_for_selector("#chatbot")
    wait_loaded(page)
    yield page
    context.close()


def test_phone_layout_input_above_the_fold_and_readable_tables(phone: Any, artifacts: Path) -> None:
    page = phone
    page.wait_for_function("() => document.querySelector('#chat-input textarea') !== null")
    phone_box = page.locator("#chat-input textarea").bounding_box()
    send_box = page.locator("#send").bounding_box()
    page.screenshot(path=str(artifacts / "phone-first-load.png"))
    assert phone_box is not None
    assert send_box is not None
    assert phone_box["y"] + phone_box["height"] <= 900, f"chat input below the fold: {phone_box}"
    assert send_box["y"] + send_box["height"] <= 900, f"Send below the fold: {send_box}"
    send(page, "/loras")
    page.locator("#chatbot table").first.wait_for()
    page.screenshot(path=str(artifacts / "phone-loras.png"))
    # each cell holds its words on one line (the table scrolls sideways instead of squeezing)
    heights = page.locator("#chatbot table tbody tr").evaluate_all(
        "rows => rows.map(r => r.getBoundingClientRect().height)"
    )
    line = page.locator("#chatbot table tbody td").first.evaluate(
        "td => parseFloat(getComputedStyle(td).lineHeight) || 24"
    )
    assert max(heights) < 3 * line, f"rows {max(heights):.0f}px tall for {line:.0f}px lines"
    assert "catgirl_v1" in " ".join(bot_texts(page))
