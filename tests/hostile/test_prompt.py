"""Hostile prompts through the parser, plus property-based fuzzing of ``assistant.prompt.parse``.

The table is :data:`tests.hostile.cases.PROMPT_CASES`; this file checks the parser's column.
"""

from __future__ import annotations

import math
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.errors import PromptError

from .cases import PROMPT_CASES, PromptCase

prompt_module = pytest.importorskip("assistant.prompt")
parse = prompt_module.parse

#: A parse of any input must finish within this many seconds (1 MB prompts included).
PARSE_BUDGET_S = 2.0


def _assert_mentions(message: str, case: PromptCase) -> None:
    for pattern in case.mentions:
        assert re.search(pattern, message, re.IGNORECASE), (
            f"{case.id}: {message[:300]!r} does not match {pattern!r}"
        )


@pytest.mark.parametrize("case", PROMPT_CASES, ids=lambda c: c.id)
def test_parser_outcome(case: PromptCase) -> None:
    started = time.perf_counter()
    if case.parse == "error":
        with pytest.raises(PromptError) as err:
            parse(case.positive, case.negative)
        message = str(err.value)
        _assert_mentions(message, case)
        # The message is one readable line: no traceback, not an echo of a 1 MB prompt.
        assert "Traceback" not in message
        assert len(message) < 2000, f"{case.id}: message is {len(message)} characters long"
    else:
        prompt = parse(case.positive, case.negative)
        if case.loras is not None:
            assert len(prompt.loras) == case.loras, prompt.loras
        assert "<lora:" not in prompt.positive_text.replace("<lora:x:0.5", "")
        assert all(math.isfinite(t.weight) and math.isfinite(t.unet_weight) for t in prompt.loras)
        assert len(prompt.notes) <= 20, f"{case.id}: {len(prompt.notes)} notes (a reply must stay readable)"
    assert time.perf_counter() - started < PARSE_BUDGET_S, f"{case.id}: parse took too long"


# ----------------------------------------------------------------------------------------------
# Fuzzing: text built from the characters that matter to the grammar.
# ----------------------------------------------------------------------------------------------

_GRAMMAR = st.sampled_from(
    [
        "<",
        ">",
        "(",
        ")",
        "[",
        "]",
        ":",
        ",",
        "\\",
        "|",
        "=",
        " ",
        "\x00",
        "\n",
        "#",
        "BREAK",
        "lora",
        "lyco",
        "te=",
        "unet=",
        "dyn=",
        "nan",
        "inf",
        "1e309",
        "-",
        ".",
        "0.5",
        "1",
        "猫",
        "🐱",
        "%2e",
        "../",
        "hypernet",
    ]
)
_HOSTILE_TEXT = st.lists(_GRAMMAR | st.text(max_size=4), max_size=60).map("".join)
_TAG = st.builds(
    lambda kind, name, args: f"<{kind}:{name}{''.join(':' + a for a in args)}>",
    st.sampled_from(["lora", "lyco", "LORA", "hypernet"]),
    st.text(max_size=12),
    st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), st.text(max_size=5)), max_size=4
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    positive=st.one_of(_HOSTILE_TEXT, st.lists(_TAG | _HOSTILE_TEXT, max_size=8).map(", ".join)),
    negative=_HOSTILE_TEXT,
)
def test_fuzz_parser_raises_only_prompt_error(positive: str, negative: str) -> None:
    try:
        prompt = parse(positive, negative)
    except PromptError as err:
        message = str(err)
    else:
        message = "accepted"
        for tag in prompt.loras:
            assert tag.name, "an accepted LoRA tag has a name"
            assert math.isfinite(tag.weight)
            assert math.isfinite(tag.unet_weight)
    assert message.strip(), "a PromptError must say what is wrong"
