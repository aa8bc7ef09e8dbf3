"""Attention syntax with A1111's semantics."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.prompt import attention as attention_module
from assistant.prompt import parse, parse_attention

# A1111 modules/prompt_parser.py, parse_prompt_attention's doctest examples, with its outputs.
A1111_DOCSTRING_EXAMPLES = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.5730000000000004),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641000000000006),
            (".", 1.1),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), A1111_DOCSTRING_EXAMPLES)
def test_a1111_docstring_examples_exactly(text: str, expected: list[tuple[str, float]]) -> None:
    # exact float equality: the multiplications happen in A1111's order
    assert parse_attention(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [("", 1.0)]),
        ("[x]", [("x", 1 / 1.1)]),
        ("[[x]]", [("x", 1 / 1.1 / 1.1)]),
        ("(x:1.3)", [("x", 1.3)]),
        ("(x: 1.3 )", [("x", 1.3)]),
        ("(x:-0.5)", [("x", -0.5)]),
        ("(x:.5)", [("x", 0.5)]),
        ("((x:1.5):2)", [("x", 3.0)]),
        ("[(x)]", [("x", 1.1 / 1.1)]),
        ("a:b", [("a:b", 1.0)]),  # a bare colon is text
        ("x:1.5)", [("x:1.5)", 1.0)]),  # a weight without an open ( is text
        ("x)", [("x)", 1.0)]),
        ("x]", [("x]", 1.0)]),
        ("\\\\", [("\\", 1.0)]),
        ("a\\b", [("ab", 1.0)]),  # A1111 drops a lone backslash
        ("\\)(a)", [(")", 1.0), ("a", 1.1)]),
        # ( and [ close independently (A1111 keeps one stack per kind)
        ("([a)b]", [("a", 1.1 / 1.1), ("b", 1 / 1.1)]),
        # runs of equal weight merge
        ("(a)(b:1.1)c", [("ab", 1.1), ("c", 1.0)]),
    ],
)
def test_attention_cases(text: str, expected: list[tuple[str, float]]) -> None:
    got = parse_attention(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected], rel=1e-12)


def test_break_is_its_own_entry() -> None:
    assert parse_attention("a BREAK b") == [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]
    assert parse_attention("a\nBREAK\nb") == [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]
    # BREAK must be a whole word
    assert parse_attention("BREAKFAST, aBREAK") == [("BREAKFAST, aBREAK", 1.0)]


def test_break_inside_brackets_stays_a_break() -> None:
    # intended difference: A1111 would give ("BREAK", -1.1), which it then no longer treats as a break
    assert parse_attention("(a BREAK b)") == [("a", 1.1), ("BREAK", -1.0), ("b", 1.1)]


def test_break_splitting_matches_a1111_regex() -> None:
    import re

    a1111 = re.compile(r"\s*\bBREAK\b\s*", re.S)
    for text in ["a  BREAK  b", "BREAK", "x BREAK BREAK y", " BREAK", "a\tBREAK\u3000b", "a BREAK\x1cb"]:
        assert attention_module._split_break(text) == a1111.split(text), text


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["BREAK", " ", "\t", "\n", "\u3000", "\x1c", "a", "_", "1"]), max_size=12).map(
        "".join
    )
)
def test_break_splitting_matches_a1111_regex_everywhere(text: str) -> None:
    import re

    assert attention_module._split_break(text) == re.split(r"\s*\bBREAK\b\s*", text)


def test_comment_lines_are_removed() -> None:
    text = "# quality first\n(masterpiece:1.2), 1girl\n#(old:1.5)\ncat ears # not a comment"
    assert parse_attention(text) == [
        ("masterpiece", 1.2),
        (", 1girl\ncat ears # not a comment", 1.0),
    ]


def test_malformed_number_is_text_with_a_note() -> None:
    # A1111 crashes with float('1.2.3'); we read ':1.2.3' as text and ')' as a plain close
    assert parse_attention("(x:1.2.3), y") == [("x:1.2.3", 1.1), (", y", 1.0)]
    assert parse_attention("(x:.), y") == [("x:.", 1.1), (", y", 1.0)]
    prompt = parse("(1girl:1.2.3), cat ears")
    assert len(prompt.notes) == 1
    assert "1.2.3" in prompt.notes[0]
    assert "not a number" in prompt.notes[0]
    assert prompt.positive_text == "(1girl:1.2.3), cat ears"  # the text itself is untouched


def test_overflowing_numbers_stay_finite() -> None:
    huge = "9" * 400  # float() gives inf
    assert parse_attention(f"(x:{huge})") == [(f"x:{huge}", 1.1)]
    big = "9" * 300  # finite, but the product overflows
    result = parse_attention(f"((x:{big}):{big})")
    assert all(math.isfinite(w) for _, w in result)
    assert any("overflow" in n for n in parse(f"((x:{big}):{big})").notes)


def test_deep_nesting_is_fast_and_matches_the_exact_algorithm() -> None:
    text = "(a" * 3000 + "[b" * 3000
    started = time.perf_counter()
    result = parse_attention(text)
    assert time.perf_counter() - started < 5
    assert len(result) == 6000
    # unclosed brackets reach to the end: the k-th "a" is inside k "(", the last "b" inside all
    assert result[0] == ("a", pytest.approx(1.1))
    assert result[2999] == ("a", pytest.approx(1.1**3000))
    assert result[-1] == ("b", pytest.approx(1.0))
    assert all(math.isfinite(w) for _, w in result)


def test_20k_open_parens_parse_fast() -> None:
    started = time.perf_counter()
    assert parse_attention("(" * 20_000) == [("", 1.0)]
    assert parse("(" * 20_000).positive_text == "(" * 20_000
    assert parse_attention("((((a" * 4000)[0][0] == "a"
    assert time.perf_counter() - started < 10


_ATTENTION_ALPHABET = st.sampled_from(
    ["a", "b", " ", ",", "(", ")", "[", "]", ":", ":1.5)", ":0.5)", "\\(", "\\", "BREAK", "x:2)", "."]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ATTENTION_ALPHABET, max_size=40).map("".join))
def test_linear_algorithm_agrees_with_exact(text: str) -> None:
    exact = attention_module._finish_attention(attention_module._attention_exact(text, []), [])
    linear = attention_module._finish_attention(attention_module._attention_linear(text, []), [])

    # merging depends on float equality, so compare per character
    def per_char(entries: list[tuple[str, float]]) -> list[tuple[str, float]]:
        return [(c, w) for t, w in entries for c in t]

    got, want = per_char(linear), per_char(exact)
    assert [c for c, _ in got] == [c for c, _ in want]
    assert [w for _, w in got] == pytest.approx([w for _, w in want], rel=1e-9)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_attention_never_raises_and_keeps_every_character(text: str) -> None:
    result = parse_attention(text)
    assert all(math.isfinite(w) for _, w in result)
    assert result


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("1girl, [cat:dog:10], smile", "'[cat:dog:10]' (prompt): A1111 prompt editing"),
        ("[cat ears:0.5], 1girl", "'[cat ears:0.5]' (prompt): A1111 prompt editing"),
        ("[red|blue] hair", "'[red|blue]' (prompt): A1111 alternation"),
        ("a cat AND a dog", "'AND' (prompt): A1111 AND (composable diffusion)"),
    ],
)
def test_a1111_syntax_we_do_not_run_is_named(text: str, note: str) -> None:
    notes = parse(text).notes
    assert len(notes) == 1
    assert notes[0].startswith(note)


@pytest.mark.parametrize(
    "text", ["(masterpiece:1.2), [blurry]", r"a \[x:5\] b", "android, sand", "[a], (b:0.5)"]
)
def test_ordinary_brackets_get_no_syntax_note(text: str) -> None:
    assert parse(text).notes == ()
