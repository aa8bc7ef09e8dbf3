"""Images in the page (issue 14), clicked in chromium: a photo sent with a prompt renders img2img
over it; an image sent alone is read (what made it, LoRAs matched by hash) and fills the boxes and
settings; an image without parameters is said to have none; ``/img2img 0.3`` sets the strength;
a PNG dropped anywhere on the prompt panel restores its parameters.

Each of these failed on the code before issue 14: the chat input took no file and a drop on the
prompt panel did nothing.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from assistant.config import DEFAULT_LORA_DIR
from assistant.library import Library

from .helpers import (
    USER,
    bot_texts,
    fast,
    no_error_toast,
    send,
    wait_bot_text,
    wait_chat_images,
    wait_user_text,
)

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.engine, pytest.mark.slow]


def _photo(path: Path, size: tuple[int, int] = (90, 60)) -> Path:
    image = Image.new("RGB", size, (200, 120, 40))
    image.paste((30, 60, 220), (size[0] // 3, 0, 2 * size[0] // 3, size[1]))
    image.save(path)
    return path


def _made(path: Path, text: str) -> Path:
    info = PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (64, 48), (90, 90, 160)).save(path, pnginfo=info)
    return path


def _a1111_text() -> str:
    """What A1111 writes, with the LoRA under the name it had on its author's disk ("my_catgirl")
    and its hash — the same file is catgirl_v1 here — plus one LoRA nobody has."""
    digest = Library.scan([DEFAULT_LORA_DIR]).hashes("catgirl_v1").infotext
    return (
        "1girl, cat ears, <lora:my_catgirl:0.7>, <lora:nowhere_lora:0.3>\nNegative prompt: lowres, blurry\n"
        "Steps: 9, Sampler: Euler a, CFG scale: 6.5, Seed: 4242, Size: 128x96, Model: anything-v5, "
        f'Denoising strength: 0.55, Hires upscale: 1.5, Hires upscaler: Lanczos, Lora hashes: "my_catgirl: '
        f'{digest}, nowhere_lora: 0123456789ab", Version: v1.10.1'
    )


def _attach(page: Any, path: Path) -> None:
    """Pick a file with the chat input's attach button, then wait for its thumbnail (the upload)."""
    page.set_input_files("#chat-input input[type=file]", str(path))
    page.wait_for_function("() => document.querySelector('#chat-input img') !== null", timeout=30_000)


def _open_settings(page: Any) -> None:
    """Open the Settings accordion (its fields are drawn when it opens)."""
    box = page.locator("#steps input[type=number]")
    if not box.is_visible():
        page.get_by_role("button", name="Settings").first.click()
        box.wait_for(state="visible")


def _wait_setting(page: Any, elem_id: str, value: str) -> None:
    _open_settings(page)
    page.wait_for_function(
        "([id, value]) => document.querySelector(`#${id} input`)?.value === value",
        arg=[elem_id, value],
        timeout=30_000,
    )


def test_photo_with_a_prompt_renders_img2img_over_it(page: Any, tmp_path: Path) -> None:
    fast(page)
    _attach(page, _photo(tmp_path / "my_photo.png"))
    send(page, "1girl, watercolor, <lora:catgirl_v1:0.6>")
    wait_user_text(page, "watercolor", timeout=15_000)
    # the photo is echoed in the user's bubble (Gradio draws the file part after the text part)
    page.wait_for_function(
        "(sel) => document.querySelector(sel) !== null", arg=f"{USER} img", timeout=30_000
    )
    text = wait_bot_text(page, -1, r"Seed \d+", timeout=120_000)
    assert "img2img" in text
    assert "my_photo.png" in text
    assert "Rewritten prompt" in text
    wait_chat_images(page, 1)
    # the photo is now the Init image (a Generate click would render over it again)
    page.wait_for_function("() => document.querySelector('#init-image img') !== null", timeout=30_000)
    assert page.locator("#chat-input textarea").input_value() == ""
    assert no_error_toast(page)


def test_image_alone_says_what_made_it_and_fills_the_boxes(page: Any, tmp_path: Path) -> None:
    _attach(page, _made(tmp_path / "found.png", _a1111_text()))
    page.locator("#send").click()
    text = wait_bot_text(page, -1, "What made this image", timeout=60_000)
    assert "v1.10.1" in text
    assert "in your library as catgirl_v1 (same hash" in text  # matched by hash, not by name
    assert "nowhere_lora" in text
    assert "missing" in text
    assert "anything-v5" in text  # another model: said, not silently ignored
    page.wait_for_function(
        "() => document.querySelector('#positive textarea').value.includes('<lora:catgirl_v1:0.7>')",
        timeout=30_000,
    )
    assert "my_catgirl" not in page.locator("#positive textarea").input_value()  # renamed, as A1111 does
    assert page.locator("#negative textarea").input_value() == "lowres, blurry"
    _wait_setting(page, "steps", "9")
    _wait_setting(page, "seed", "4242")
    _wait_setting(page, "width", "128")
    page.locator("#hires-accordion").get_by_text("Hires fix (txt2img)").click()
    page.wait_for_function("() => document.querySelector('#hires input[type=checkbox]')?.checked === true")
    assert len(bot_texts(page)) == 1  # nothing rendered: Send to txt2img only fills


def test_image_without_parameters_says_so(page: Any, tmp_path: Path) -> None:
    page.locator("#positive textarea").fill("kept prompt")
    _attach(page, _photo(tmp_path / "plain.png"))
    page.locator("#send").click()
    text = wait_bot_text(page, -1, "no generation parameters", timeout=60_000)
    assert "with a prompt" in text  # and how to render over it instead
    assert page.locator("#positive textarea").input_value() == "kept prompt"


def test_slash_img2img_sets_the_strength(page: Any) -> None:
    send(page, "/img2img 0.3")
    wait_bot_text(page, -1, "strength set to 0.3", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#strength input[type=number]')?.value === '0.3'", timeout=30_000
    )


DROP = """async ([selector, b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const file = new File([bytes], name, { type: 'image/png' });
  const transfer = new DataTransfer();
  transfer.items.add(file);
  const target = document.querySelector(selector);
  for (const kind of ['dragenter', 'dragover', 'drop']) {
    target.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: transfer }));
  }
}"""


def test_png_dropped_on_the_prompt_panel_restores_its_parameters(
    page: Any, tmp_path: Path, artifacts: Path
) -> None:
    made = _made(tmp_path / "dropped.png", _a1111_text())
    data = base64.b64encode(made.read_bytes()).decode()
    page.evaluate(DROP, ["#negative textarea", data, "dropped.png"])  # on a prompt box, like A1111
    page.wait_for_function(
        "() => document.querySelector('#positive textarea').value.includes('<lora:catgirl_v1:0.7>')",
        timeout=30_000,
    )
    assert page.locator("#negative textarea").input_value() == "lowres, blurry"
    assert "dropped.png" not in page.locator("#negative textarea").input_value()  # not typed as text
    _wait_setting(page, "steps", "9")
    note = page.locator("#restore-note").inner_text()
    assert "What made this image" in note
    assert "same hash" in note
    page.screenshot(path=str(artifacts / "drop-restore.png"), full_page=True)
    # a second drop anywhere else on the panel (the settings area) works too
    page.locator("#positive textarea").fill("")
    page.evaluate(DROP, ["#strength", data, "dropped.png"])
    page.wait_for_function(
        "() => document.querySelector('#positive textarea').value.includes('cat ears')", timeout=30_000
    )
