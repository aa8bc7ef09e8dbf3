"""The Gradio app on the real server, driven through its API names with ``gradio_client``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.infotext import read_png

from .conftest import TINY, AppServer

pytestmark = [pytest.mark.server, pytest.mark.engine, pytest.mark.slow]

gradio_client = pytest.importorskip("gradio_client")

#: sampler, steps, cfg, width, height, seed, batch — the settings accordion, tiny.
SETTINGS = [
    TINY["sampler_name"],
    TINY["steps"],
    TINY["cfg_scale"],
    TINY["width"],
    TINY["height"],
    TINY["seed"],
    1,
]


@pytest.fixture(scope="module")
def ui(app_server: AppServer) -> Iterator[Any]:
    client = gradio_client.Client(app_server.url, verbose=False)
    yield client
    client.close()


def _files(message: dict[str, Any]) -> list[str]:
    """Paths of the files (images) in one chat message as the client returns it."""
    files = [part["file"] for part in message["content"] if part.get("type") == "file"]
    # gradio_client downloads files and gives local paths; raw JSON holds {"path": …} dicts
    return [f if isinstance(f, str) else f["path"] for f in files]


def message(text: str) -> dict[str, Any]:
    """A chat message as the MultimodalTextbox sends it (text, no image)."""
    return {"text": text, "files": []}


def _text(message: dict[str, Any]) -> str:
    return "\n".join(part["text"] for part in message["content"] if part.get("type") == "text")


def test_every_event_has_an_api_name(ui: Any) -> None:
    endpoints = set(ui.view_api(print_info=False, return_format="dict")["named_endpoints"])
    expected = {"/chat", "/generate", "/blindbox", "/ab", "/sweep", "/loras", "/insert_card", "/insert_lora"}
    expected |= {
        "/refresh_loras",
        "/lora_sliders",
        "/recipe",
        "/history",
        "/cancel",
        "/status",
        "/switch_model",
    }
    assert expected <= endpoints


def test_chat_prompt_turn_renders_the_rewritten_prompt(ui: Any, app_server: AppServer) -> None:
    prompt = "1girl, cat ears, <lora:catgirl_v1:0.8>"
    job = ui.submit(message(prompt), [], "", "", True, *SETTINGS, api_name="/chat")
    history, box, positive, negative = job.result(timeout=120)
    # the message box is cleared by the first update; later ones leave it alone (the user may be
    # typing the next message while this one renders)
    assert job.outputs()[0][1] == {"text": "", "files": []}
    assert box == {"__type__": "update"}
    user, reply = history[-2], history[-1]
    assert user["role"] == "user"
    assert prompt in _text(user)
    assert reply["role"] == "assistant"
    assert "trigger-words" in _text(reply) or "catgirl" in _text(reply)
    files = _files(reply)
    assert len(files) == 1
    # the prompt boxes now hold the assistant's rewrite, which is what was rendered and saved
    assert "<lora:catgirl_v1:" in positive
    assert "catgirl" in positive.replace("<lora:catgirl_v1", "")
    saved = sorted(app_server.outputs_dir.rglob("*.png"), key=lambda p: p.stat().st_mtime)[-1]
    info = read_png(saved)
    assert info is not None
    assert info.prompt == positive
    assert info.negative == negative
    assert "catgirl_v1" in info.lora_hashes


def test_chat_keeps_prompts_when_changes_are_not_applied(ui: Any) -> None:
    prompt = "1girl, cat ears, <lora:catgirl_v1:0.8>"
    history, _, positive, *_ = ui.predict(message(prompt), [], "", "", False, *SETTINGS, api_name="/chat")
    assert positive == prompt  # the prompt as typed, not the assistant's rewrite
    assert "not applied" in _text(history[-1]).lower() or "suggest" in _text(history[-1]).lower()
    assert len(_files(history[-1])) == 1


def test_chat_help_and_errors_are_replies(ui: Any) -> None:
    history, *_ = ui.predict(message("/help"), [], "", "", True, *SETTINGS, api_name="/chat")
    assert "/blindbox" in _text(history[-1])
    bad = [*SETTINGS]
    bad[3] = 70  # width not a multiple of 8: explained in the conversation, not raised
    history, *_ = ui.predict(
        message("1girl, cat ears, <lora:catgirl_v1:0.8>"), [], "", "", True, *bad, api_name="/chat"
    )
    assert "70" in _text(history[-1])
    assert "8" in _text(history[-1])


def test_chat_history_accumulates(ui: Any) -> None:
    history, *_ = ui.predict(message("/help"), [], "", "", True, *SETTINGS, api_name="/chat")
    history, *_ = ui.predict(message("/loras cat"), history, "", "", True, *SETTINGS, api_name="/chat")
    assert len(history) == 4
    assert "catgirl_v1" in _text(history[-1])


def test_generate_button(ui: Any) -> None:
    history, positive, _ = ui.predict(
        "1girl, <lora:cyberpunk_style:0.5>", "", True, *SETTINGS, [], api_name="/generate"
    )
    reply = history[-1]
    assert len(_files(reply)) == 1
    assert "Seed 1234" in _text(reply)
    assert "<lora:cyberpunk_style:" in positive


def test_switching_the_base_model(ui: Any) -> None:
    sdxl_prompt = "1girl, <lora:watercolor_xl:0.5>"
    history, _, _ = ui.predict(sdxl_prompt, "", True, *SETTINGS, [], api_name="/generate")
    assert "SDXL" in _text(history[-1])  # on SD1.5 the SDXL LoRA is left out, with the reason
    try:
        choice, status, _banner, _samplers = ui.predict("tiny-sdxl", api_name="/switch_model")
        assert choice["value"] == "tiny-sdxl"
        assert "tiny-sdxl-demo" in status
        history, _, _ = ui.predict(sdxl_prompt, "", True, *SETTINGS, [], api_name="/generate")
        assert "SDXL" not in _text(history[-1])
        assert len(_files(history[-1])) == 1
        assert "images are noise" in _banner["value"]  # the random-weight SDXL pipeline says so
    finally:
        choice, status, _banner, _samplers = ui.predict("tiny-shapes-sd15", api_name="/switch_model")
    assert choice["value"] == "tiny-shapes-sd15"
    assert "tiny-shapes-sd15" in status
    assert "trained here on shapes" in _banner["value"]


def test_generate_button_reports_bad_settings(ui: Any) -> None:
    bad = [*SETTINGS]
    bad[1] = 0  # steps
    with pytest.raises(Exception, match=r"steps"):
        ui.predict("1girl", "", True, *bad, [], api_name="/generate")


def test_blind_box_grid(ui: Any) -> None:
    prompt = "1girl, <lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.5>"
    history, positive, _negative = ui.predict(prompt, "", True, 4, *SETTINGS, [], api_name="/blindbox")
    reply = history[-1]
    assert "<lora:catgirl_v1:" in positive  # the advised prompt the grid mixed is in the box
    files = _files(reply)
    assert len(files) == 1
    assert "Blind box" in _text(reply) or "blind" in _text(reply).lower()
    manifest = json.loads((Path(_saved_grid_dir(reply)) / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["cells"]) == 4


def _saved_grid_dir(reply: dict[str, Any]) -> str:
    """The outputs folder of a grid, named in the reply ("saved `grid.png` in `00003-blindbox`")."""
    text = _text(reply)
    folder = text.rsplit("in `", 1)[1].split("`", 1)[0]
    (match,) = [p for p in Path(_outputs_root).rglob(folder) if p.is_dir()]
    return str(match)


_outputs_root = ""


@pytest.fixture(autouse=True, scope="module")
def _remember_outputs(app_server: AppServer) -> None:
    global _outputs_root
    _outputs_root = str(app_server.outputs_dir)


def test_ab_strip(ui: Any) -> None:
    prompt = "1girl, <lora:catgirl_v1:0.6>"
    history, *_ = ui.predict(prompt, "", True, "catgirl_v1", "catgirl_v2", *SETTINGS, [], api_name="/ab")
    reply = history[-1]
    files = _files(reply)
    assert len(files) == 2  # the grid and the difference map
    assert "catgirl_v2" in _text(reply)
    assert "How much changed" in _text(reply)
    manifest = json.loads((Path(_saved_grid_dir(reply)) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["analysis"]["ab_difference"]["changed_percent"] >= 0


def test_sweep_grid(ui: Any) -> None:
    history, *_ = ui.predict(
        "1girl, <lora:catgirl_v1:0.6>", "", True, "catgirl_v1=0.2,0.8", "", *SETTINGS, [], api_name="/sweep"
    )
    assert len(_files(history[-1])) == 2  # the grid and the effect curve
    assert "Effect curve of `catgirl_v1`" in _text(history[-1])
    # no axis: the prompt's first LoRA from 0 to 1, said in the reply
    history, *_ = ui.predict(
        "1girl, <lora:catgirl_v1:0.6>", "", True, "", "", *SETTINGS, [], api_name="/sweep"
    )
    assert "No sweep axis was set" in _text(history[-1])
    assert "catgirl_v1: 0.5" in _text(history[-1])


def test_library_listing_and_card_click(ui: Any) -> None:
    _cards, listing, note = ui.predict("cat", "any", "any", api_name="/loras")
    assert "Click a card" in note
    names = [entry["name"] for entry in listing]
    assert "catgirl_v1" in names
    assert "cyberpunk_style" not in names
    catgirl = listing[names.index("catgirl_v1")]
    assert catgirl["kind"] == "character"
    deadline = time.monotonic() + 60  # the server hashes the library in the background after start
    while not catgirl["hash"] and time.monotonic() < deadline:
        time.sleep(0.2)
        _cards, listing, _note = ui.predict("cat", "any", "any", api_name="/loras")
        catgirl = next(entry for entry in listing if entry["name"] == "catgirl_v1")
    assert len(catgirl["hash"]) == 12
    index = names.index("catgirl_v1")
    # the card list of this session is the filtered one, so the index refers to it
    positive, note = ui.predict(index, "1girl", api_name="/insert_card")
    assert "Added to the prompt" in note
    assert positive.startswith("1girl, <lora:catgirl_v1:")
    assert "cat ears" in positive or "catgirl" in positive.split(">", 1)[1]
    by_name = ui.predict("catgirl_v1", "", api_name="/insert_lora")
    assert by_name.startswith("<lora:catgirl_v1:")


def test_library_filters(ui: Any) -> None:
    _, listing, _note = ui.predict("", "style", "any", api_name="/loras")
    names = [entry["name"] for entry in listing]
    assert "cyberpunk_style" in names
    assert "catgirl_v1" not in names


def test_weight_sliders_follow_the_prompt(ui: Any) -> None:
    updates = ui.predict("1girl, <lora:catgirl_v1:0.8>, <lora:cyberpunk_style:0.3>", api_name="/lora_sliders")
    assert updates[0] == {**updates[0], "visible": True, "label": "catgirl_v1", "value": 0.8}
    assert updates[1] == {**updates[1], "visible": True, "label": "cyberpunk_style", "value": 0.3}
    assert updates[2]["visible"] is False
    positive = ui.predict(0.45, "1girl, <lora:catgirl_v1:0.8>", api_name="/set_weight_1")
    assert positive == "1girl, <lora:catgirl_v1:0.45>"


def test_history_lists_saved_images(ui: Any) -> None:
    ui.predict("1girl", "", True, *SETTINGS, [], api_name="/generate")
    items = ui.predict(api_name="/history")
    assert items
    assert any("seed" in (item.get("caption") or "") for item in items)


def test_recipe_fills_prompts(ui: Any) -> None:
    result = ui.predict("catgirl_portrait", "", "", *SETTINGS[:6], api_name="/recipe")
    positive, negative, note = result[:3]
    assert "<lora:catgirl_v1:0.8>" in positive
    assert "1girl" in positive
    assert "extra cat ears" in negative
    assert "Set by the recipe: sampler DPM++ 2M Karras, steps 28" in note
    assert result[4] == 28  # steps


def test_cancel_stops_a_running_render(ui: Any) -> None:
    slow = [*SETTINGS]
    slow[1] = 150  # steps: long enough to be cancelled midway
    slow[3] = slow[4] = 256
    job = ui.submit("1girl", "", True, *slow, [], api_name="/generate")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(  # sampler steps running, shown in the reply
        "step" in _text(out[0][-1]) for out in job.outputs() if out and out[0]
    ):
        time.sleep(0.1)
    ui.predict(api_name="/cancel")
    history, positive, _ = job.result(timeout=120)
    # the running render stopped at the flag, and the conversation says where
    assert "cancelled at step" in _text(history[-1]).lower()
    assert _files(history[-1]) == []
    assert positive == "1girl"
    # the server renders the next request normally
    history, *_ = ui.predict("1girl", "", True, *SETTINGS, [], api_name="/generate")
    assert len(_files(history[-1])) == 1
