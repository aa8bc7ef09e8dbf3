"""Hostile input at the parser's layer: huge, deep, binary, unclosed, nested. Nothing may hang."""

from __future__ import annotations

import time

import pytest

from assistant.errors import PromptError
from assistant.prompt import (
    encoder_text,
    has_term,
    insert_terms,
    parse,
    parse_attention,
    render,
    split_terms,
)

#: generous: the machine running the suite may be busy; quadratic behaviour takes minutes here
BUDGET_S = 5.0


def _timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    assert time.perf_counter() - started < BUDGET_S, f"{fn.__name__} took too long"
    return result


@pytest.mark.parametrize(
    "text",
    ["(" * 100_000, "<" * 100_000, "1girl, " + "masterpiece " * 90_000, "x" * 1_000_000],
    ids=["100k-parens", "100k-angles", "1MB-words", "1MB-x"],
)
def test_over_long_prompts_are_refused_quickly(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(PromptError, match=r"characters long; the limit is 20,000 characters"):
        parse(text)
    with pytest.raises(PromptError, match=r"negative prompt"):
        parse("1girl", text)
    assert time.perf_counter() - started < BUDGET_S


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "text",
    [
        "(" * 20_000,
        "((((" * 5_000,
        "(a" * 10_000,
        "[a(b" * 5_000,
        "<" * 20_000,
        "<a:" * 6_000,
        "<lora:" * 3_000,
        "<lora:x" + " " * 19_000 + "y",
        ":" + " " * 19_990 + "1",
        "(x:" + "1" * 19_990,
        "BREAK" + " " * 19_990,
        " " * 19_990 + "BREAK",
        "\\" * 20_000,
        "#" + "\n#" * 9_000,
        "a," * 10_000,
        "<a:b> x " * 2_500,
        "+" * 20_000,
        "=" * 20_000,
    ],
    ids=lambda t: repr(t[:12]),
)
def test_20k_character_worst_cases_run_in_linear_time(text: str) -> None:
    try:
        prompt = _timed(parse, text, text)
    except PromptError:
        prompt = None
    if prompt is not None:
        assert _timed(render, prompt) == (text, text)
    _timed(parse_attention, text)
    _timed(encoder_text, text)
    _timed(split_terms, text)
    _timed(has_term, text, "a")
    _timed(insert_terms, text, ["t"])


def test_control_characters_and_nul_in_text_are_kept() -> None:
    text = "1girl\x1b[31m, cat ears\x07\x08, a\x00b"
    prompt = parse(text)
    assert prompt.positive_text == text
    assert render(prompt) == (text, "")


def test_unclosed_tag_is_plain_text_with_a_note() -> None:
    prompt = parse("1girl, <lora:x:0.5")
    assert prompt.loras == ()
    assert prompt.positive_text == "1girl"
    assert prompt.notes


@pytest.mark.parametrize("text", ["<lora:<lora:x:1>:1>", "1girl, <lora:a:0.5, cat <lora:b:0.5>"])
def test_nested_or_runaway_tags_are_refused(text: str) -> None:
    with pytest.raises(PromptError, match=r"contains '<'"):
        parse(text)


def test_many_unknown_tags_give_one_note_per_type() -> None:
    prompt = parse("<wc:a>, <wc:b>, <dp:c>, " * 100)
    assert len(prompt.extras) == 300
    assert len(prompt.notes) == 2


def test_many_malformed_numbers_give_a_bounded_number_of_notes() -> None:
    prompt = parse("(x:1.2.3), " * 500)
    assert len(prompt.notes) == 6
    assert "495 more" in prompt.notes[-1]


def test_long_name_is_refused_with_its_length() -> None:
    with pytest.raises(PromptError, match=r"10000 characters long; the limit is 255"):
        parse(f"<lora:{'a' * 10_000}:1>")


def test_error_messages_are_short_even_for_huge_tags() -> None:
    with pytest.raises(PromptError) as err:
        parse(f"<lora:x:{'9' * 15_000}x>")
    assert len(str(err.value)) < 400
