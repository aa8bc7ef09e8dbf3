"""The app's pure helpers (assistant.ui) and the shared settings validation (assistant.service)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from PIL import Image

from assistant.errors import PromptError
from assistant.service import RenderSettings
from assistant.types import LoraInfo
from assistant.ui import cards, messages, prompts

CATGIRL = LoraInfo(
    name="catgirl_v1",
    path="/loras/catgirl_v1.safetensors",
    kind="character",
    base="sd15",
    triggers=("cat ears", "catgirl"),
    preferred_weight=0.7,
)


# -- prompt edits ---------------------------------------------------------------------------------


def test_insert_lora_appends_tag_and_missing_triggers() -> None:
    assert (
        prompts.insert_lora("1girl, cat ears", CATGIRL) == "1girl, cat ears, <lora:catgirl_v1:0.7>, catgirl"
    )


def test_insert_lora_into_empty_prompt() -> None:
    assert prompts.insert_lora("", CATGIRL) == "<lora:catgirl_v1:0.7>, cat ears, catgirl"


def test_insert_lora_does_not_duplicate_a_present_tag() -> None:
    text = "1girl, <lora:catgirl_v1:0.5>, cat ears, catgirl"
    assert prompts.insert_lora(text, CATGIRL) == text


def test_insert_lora_without_preferred_weight_uses_default() -> None:
    info = dataclasses.replace(CATGIRL, preferred_weight=None, triggers=())
    assert prompts.insert_lora("1girl,", info) == "1girl, <lora:catgirl_v1:0.8>"


def test_trigger_match_is_whole_word() -> None:
    info = dataclasses.replace(CATGIRL, triggers=("cat",))
    # "catgirl" contains "cat" but not as a word: the trigger is still added
    assert prompts.insert_lora("catgirl", info).endswith(", cat")


def test_sliders_follow_positive_tags_only() -> None:
    specs = prompts.sliders_for("1girl, <lora:a:0.8>, <lora:b:-0.3>")
    assert [(s.index, s.name, s.weight) for s in specs] == [(0, "a", 0.8), (1, "b", -0.3)]
    assert prompts.sliders_for("") == []


def test_sliders_are_capped() -> None:
    text = ", ".join(f"<lora:l{i}:0.1>" for i in range(prompts.MAX_SLIDERS + 3))
    assert len(prompts.sliders_for(text)) == prompts.MAX_SLIDERS


def test_set_lora_weight_rewrites_only_that_tag() -> None:
    text = "(masterpiece:1.2), <lora:a:0.8>, 1girl, <lora:b:0.3:0.5>"
    assert (
        prompts.set_lora_weight(text, 1, 0.65) == "(masterpiece:1.2), <lora:a:0.8>, 1girl, <lora:b:0.65:0.5>"
    )
    assert prompts.set_lora_weight(text, 0, 1.0) == "(masterpiece:1.2), <lora:a:1>, 1girl, <lora:b:0.3:0.5>"


def test_set_lora_weight_out_of_range_index_keeps_text() -> None:
    assert prompts.set_lora_weight("<lora:a:0.8>", 3, 0.1) == "<lora:a:0.8>"


def test_adding_missing_terms_is_one_rule() -> None:
    """A card click, a recipe and the rules add the terms a prompt lacks with prompt.missing_terms
    (the card click looked for words anywhere, the recipe for whole pieces, the rules for terms)."""
    from assistant.prompt import missing_terms

    have = "1girl, (cat ears:1.2), neon"
    assert missing_terms(have, ["cat ears", "CAT EARS", " city ", "city", "neon", ""]) == ("city",)
    clicked = prompts.insert_lora("1girl, (Cat Ears:1.1),", CATGIRL)
    assert clicked == "1girl, (Cat Ears:1.1), <lora:catgirl_v1:0.7>, catgirl"


# -- cards ----------------------------------------------------------------------------------------


def test_card_html_escapes_everything() -> None:
    info = dataclasses.replace(CATGIRL, name="<script>x</script>", triggers=("a&b",))
    html = cards.card_html(info, "0123456789ab")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "a&amp;b" in html
    assert "0123456789ab" in html


def test_card_html_shows_problems() -> None:
    broken = dataclasses.replace(CATGIRL, status="broken", problem="truncated header")
    assert "broken: truncated header" in cards.card_html(broken)


def test_thumbnail_placeholder_and_preview(tmp_path: Path) -> None:
    placeholder = Image.open(cards.thumbnail(CATGIRL, tmp_path / "thumbs"))
    assert placeholder.size == (cards.THUMB_SIZE, cards.THUMB_SIZE)
    preview = tmp_path / "catgirl_v1.preview.png"
    Image.new("RGB", (400, 200), (255, 0, 0)).save(preview)
    thumb = cards.thumbnail(dataclasses.replace(CATGIRL, preview=str(preview)), tmp_path / "thumbs")
    with Image.open(thumb) as image:
        assert max(image.size) == cards.THUMB_SIZE
        assert image.convert("RGB").getpixel((10, 10)) == (255, 0, 0)


def test_thumbnail_of_unreadable_preview_falls_back(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    thumb = cards.thumbnail(dataclasses.replace(CATGIRL, preview=str(bad)), tmp_path)
    assert Image.open(thumb).size == (cards.THUMB_SIZE, cards.THUMB_SIZE)


# -- settings validation (shared by UI and API) ----------------------------------------------------


def test_render_settings_normalise_whole_floats() -> None:
    settings = RenderSettings(
        steps=20.0, width=512.0, height=64.0, seed=-1.0, scheduler="Automatic"
    ).validated()  # type: ignore[arg-type]
    assert (settings.steps, settings.width, settings.height, settings.seed) == (20, 512, 64, -1)
    assert isinstance(settings.steps, int)
    assert settings.scheduler is None


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"width": 70}, ("width", "70", "8")),
        ({"height": 0}, ("height", "0", "64")),
        ({"steps": 0}, ("steps", "1", "150")),
        ({"steps": 2.5}, ("steps", "whole number")),
        ({"cfg": math.nan}, ("CFG", "finite")),
        ({"cfg": math.inf}, ("CFG", "finite")),
        ({"batch_size": 1000}, ("batch size", "1000")),
        ({"seed": 2**40}, ("seed",)),
        ({"seed": -5}, ("seed", "-1")),
        ({"width": "wide"}, ("width", "'wide'")),
        ({"width": 2048, "height": 2048, "batch_size": 8}, ("too much",)),
    ],
)
def test_render_settings_errors_name_value_and_range(
    changes: dict[str, object], words: tuple[str, ...]
) -> None:
    with pytest.raises(PromptError) as err:
        RenderSettings(**changes).validated()  # type: ignore[arg-type]
    for word in words:
        assert word in str(err.value)


def test_user_text_keeps_tags_visible() -> None:
    assert messages.user_text("/help") == "/help"
    assert messages.user_text("1girl, <lora:a:0.8>") == "`1girl, <lora:a:0.8>`"
    assert (
        messages.user_text("1girl, <lora:a:1>\nNegative prompt: x")
        == "~~~\n1girl, <lora:a:1>\nNegative prompt: x\n~~~"
    )
    assert messages.inline_code("a `b`") == "`` a `b` ``"
