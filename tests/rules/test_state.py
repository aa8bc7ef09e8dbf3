"""RuleState helpers: span rebasing after edits, floor-rounding, weights, term lookup."""

from __future__ import annotations

import pytest

from assistant.prompt import append_terms, insert_terms, parse, remove_tag, reorder_tags, replace_tag
from assistant.rules.state import floor2, rebase_tags, strength, with_weights
from assistant.rules.symptom_fixes import find_term
from assistant.types import LoraTag


def _tags(text: str, negative: bool = False) -> tuple[LoraTag, ...]:
    return parse("", text).loras if negative else parse(text).loras


TEXT = "(masterpiece:1.2), 1girl, <lora:a:0.5>, smile, <lora:b:0.3>, night, <lora:c:1>"


@pytest.mark.parametrize(
    "edit",
    [
        lambda t, tags: insert_terms(t, ["catgirl", "cat ears"]),
        lambda t, tags: append_terms(t, ["soft lighting"]),
        lambda t, tags: remove_tag(t, tags[1]),
        lambda t, tags: remove_tag(t, tags[0]),
        lambda t, tags: remove_tag(t, tags[2]),
        lambda t, tags: replace_tag(t, tags[1], LoraTag("b_long_name", 0.25)),
        lambda t, tags: replace_tag(t, tags[0], LoraTag("a", 0.5, unet=0.2)),
        lambda t, tags: reorder_tags(t, [tags[2], tags[0], tags[1]]),
        lambda t, tags: t.replace("smile", "big smile"),
        lambda t, tags: t + ", # comment <lora:x:1>",
        lambda t, tags: t.replace("smile", "x > y"),  # a stray '>': full parse
        lambda t, tags: t.replace("night", "<hypernet:h:1>"),
    ],
)
@pytest.mark.parametrize("negative", [False, True])
def test_rebase_tags_equals_a_full_parse(edit, negative: bool) -> None:
    tags = _tags(TEXT, negative)
    new = edit(TEXT, tags)
    assert rebase_tags(TEXT, new, tags, negative, None) == _tags(new, negative)


def test_rebase_tags_with_identical_text_keeps_tags() -> None:
    tags = _tags(TEXT)
    assert rebase_tags(TEXT, TEXT, tags, False, None) == tags


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.8 * 1.2 / 1.7, 0.56),
        (0.5 * 1.2 / 1.7, 0.35),
        (0.4 * 1.2 / 1.7, 0.28),
        (0.28, 0.28),
        (-0.5647, -0.56),
        (0.0, 0.0),
        (-0.001, 0.0),
        (1.0, 1.0),
        (0.29, 0.29),
        (0.57, 0.57),
    ],
)
def test_floor2_rounds_toward_zero(value: float, expected: float) -> None:
    assert floor2(value) == expected
    assert abs(floor2(value)) <= abs(value) + 1e-9


def test_with_weights_and_strength() -> None:
    tag = LoraTag("x", 0.8, unet=0.5)
    assert strength(tag) == 0.8
    assert with_weights(tag, 0.6, 0.6).unet is None  # equal weights collapse to one
    assert with_weights(tag, 0.6, 0.4).unet == 0.4


@pytest.mark.parametrize(
    ("text", "term", "found"),
    [
        ("worst quality, extra cat ears, blurry", "extra cat ears", "extra cat ears"),
        ("worst quality, (Extra  Cat Ears:1.2)", "extra cat ears", "(Extra  Cat Ears:1.2)"),
        ("((extra cat ears)), lowres", "extra cat ears", "((extra cat ears))"),
        ("lowres, extra cat ears tail", "extra cat ears", None),
        ("(a, extra cat ears:1.3)", "extra cat ears", None),
        ("", "extra cat ears", None),
    ],
)
def test_find_term(text: str, term: str, found: str | None) -> None:
    hit = find_term(text, term)
    assert (text[hit[0] : hit[1]] if hit else None) == found


def test_find_term_weights() -> None:
    assert find_term("(extra cat ears:1.2)", "extra cat ears")[2] == 1.2
    assert find_term("extra cat ears", "extra cat ears")[2] == 1.0
    assert find_term("((extra cat ears))", "extra cat ears")[2] == 1.21
