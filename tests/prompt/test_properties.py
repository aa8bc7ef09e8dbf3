"""Properties that hold for every input (hypothesis)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from assistant.errors import PromptError
from assistant.prompt import encoder_text, parse, parse_attention, remove_tag, render, split_terms
from assistant.types import Prompt

_PIECES = st.sampled_from(
    [
        "<", ">", "(", ")", "[", "]", ":", ",", " ", "\n", "#", "\\", "=", "BREAK", "lora", "lyco",
        "<lora:", "<lyco:", "<hypernet:", "te=", "unet=", "dyn=", "0.5", "-1", "1.2.3", "nan", "猫",
        "\x00", "\x1b", "1girl", "cat ears",
    ]
)  # fmt: skip
_TEXT = st.one_of(st.text(max_size=40), st.lists(_PIECES | st.text(max_size=3), max_size=30).map("".join))
_WEIGHT = st.floats(min_value=-2, max_value=2, allow_nan=False).map(lambda w: f"{w:.3g}")
_NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=":<>="),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip())
_TAG = st.builds(lambda t, n, w: f"<{t}:{n}:{w}>", st.sampled_from(["lora", "lyco"]), _NAME, _WEIGHT)
_GOOD_PROMPT = st.lists(_TAG | st.text(alphabet="abc ,()[]:.1", max_size=8), max_size=8).map(", ".join)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_or_none(positive: str, negative: str = "") -> Prompt | None:
    try:
        return parse(positive, negative)
    except PromptError as err:
        message = str(err)
    assert message.strip()
    assert "\n" not in message
    return None


@SETTINGS
@given(_TEXT, _TEXT)
def test_any_text_gives_a_prompt_or_a_prompt_error(positive: str, negative: str) -> None:
    prompt = _parse_or_none(positive, negative)
    if prompt is None:
        return
    assert render(prompt) == (positive, negative)
    for tag in prompt.loras:
        assert tag.name.strip()
        assert math.isfinite(tag.weight)
        assert math.isfinite(tag.unet_weight)
        text = negative if tag.in_negative else positive
        assert text[tag.span[0] : tag.span[1]] == tag.raw
    for text in (prompt.positive_text, prompt.negative_text):
        assert "<lora:" not in text.lower()
        assert "<lyco:" not in text.lower()
        assert all(math.isfinite(w) for _, w in parse_attention(text))
        split_terms(text)


@SETTINGS
@given(_GOOD_PROMPT, _GOOD_PROMPT)
def test_well_formed_prompts_parse_and_round_trip(positive: str, negative: str) -> None:
    prompt = parse(positive, negative)
    assert render(prompt) == (positive, negative)
    assert len(prompt.loras) == positive.count("<l") + negative.count("<l")
    assert "<l" not in prompt.positive_text
    assert ", ," not in prompt.positive_text or ", ," in positive.replace("<", " ")


@SETTINGS
@given(_GOOD_PROMPT)
def test_removing_every_tag_leaves_the_encoder_text(text: str) -> None:
    prompt = parse(text)
    assume(prompt.loras)
    out = text
    for tag in reversed(prompt.loras):  # right to left keeps earlier spans valid
        out = remove_tag(out, tag)
    assert parse(out).loras == ()
    assert encoder_text(out) == out  # the edits and the encoder tidy the same way


@SETTINGS
@given(st.text(max_size=60))
def test_encoder_text_never_raises(text: str) -> None:
    result = encoder_text(text)
    assert "<lora:" not in result.lower()
