"""A1111's attention syntax: ``(x)``, ``[x]``, ``(x:1.3)``, escapes and ``BREAK``.

:func:`parse_attention` is A1111's ``prompt_parser.parse_prompt_attention`` (same multiplication
order, so the same floats), with the package docstring's differences 4, 5, 7 and 8; the engine's
A1111 encoder (``assistant.engine.encoding``) reads its result: the one grammar of weights.
"""

from __future__ import annotations

import math
import re

from .text import _show, _strip_comment_lines

#: A1111's attention tokenizer, verbatim (modules/prompt_parser.py).
_RE_ATTENTION = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
#: A1111 splits text on ``\s*\bBREAK\b\s*``; we find the word and widen by hand (linear time).
_BREAK_WORD = re.compile(r"\bBREAK\b")


#: Products of bracket multipliers beyond this many steps use the linear algorithm.
_ATTENTION_WORK_BUDGET = 50_000
_ROUND = 1.1
_SQUARE = 1 / 1.1


class _TooDeep(Exception):
    pass


def _attention(text: str) -> tuple[list[tuple[str, float]], list[str]]:
    """A1111's parse_prompt_attention plus notes (see the module docstring for differences)."""
    text = _strip_comment_lines(text)
    notes: list[str] = []
    try:
        res = _attention_exact(text, notes)
    except _TooDeep:
        notes.clear()
        res = _attention_linear(text, notes)
    return _finish_attention(res, notes), notes


def _weight_of(m: re.Match[str], text: str, notes: list[str]) -> float | None:
    """The number of a ``:1.2)`` token, or None (with a note) when it is not a finite number."""
    value = m.group(1)
    try:
        weight = float(value)
    except ValueError:
        weight = math.nan
    if math.isfinite(weight):
        return weight
    context = _show(text[max(0, m.start() - 24) : m.end()], 60)
    notes.append(
        f"attention weight '{_show(value)}' in '{context}' is not a number; it is kept as plain text "
        "and its parentheses count as a plain ( ) x1.1"
    )
    return None


def _split_break(text: str) -> list[str]:
    """``re.split(r"\\s*\\bBREAK\\b\\s*", text)`` without its quadratic worst case on long spaces."""
    parts: list[str] = []
    pos = 0
    n = len(text)
    for m in _BREAK_WORD.finditer(text):
        start, end = m.start(), m.end()
        if start < pos:
            continue
        while start > pos and text[start - 1].isspace():
            start -= 1
        while end < n and text[end].isspace():
            end += 1
        parts.append(text[pos:start])
        pos = end
    parts.append(text[pos:])
    return parts


def _append_text(res: list[list], text: str) -> None:
    """Append plain text, splitting out BREAK entries (entries are [text, weight, is_break])."""
    if "BREAK" not in text:
        res.append([text, 1.0, False])
        return
    parts = _split_break(text)
    for i, part in enumerate(parts):
        if i > 0:
            res.append(["BREAK", -1.0, True])
        res.append([part, 1.0, False])


def _attention_exact(text: str, notes: list[str]) -> list[list]:
    """A1111's algorithm step for step (same multiplication order, so the same floats)."""
    res: list[list] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []
    work = 0

    def multiply_range(start: int, multiplier: float) -> None:
        nonlocal work
        work += len(res) - start
        if work > _ATTENTION_WORK_BUDGET:
            raise _TooDeep
        for entry in res[start:]:
            if not entry[2]:
                entry[1] *= multiplier

    for m in _RE_ATTENTION.finditer(text):
        token = m.group(0)
        if token[0] == "\\":
            res.append([token[1:], 1.0, False])
        elif token == "(":
            round_brackets.append(len(res))
        elif token == "[":
            square_brackets.append(len(res))
        elif m.group(1) is not None and round_brackets:
            weight = _weight_of(m, text, notes)
            if weight is None:
                _append_text(res, token[:-1])
                multiply_range(round_brackets.pop(), _ROUND)
            else:
                multiply_range(round_brackets.pop(), weight)
        elif token == ")" and round_brackets:
            multiply_range(round_brackets.pop(), _ROUND)
        elif token == "]" and square_brackets:
            multiply_range(square_brackets.pop(), _SQUARE)
        else:
            _append_text(res, token)
    for pos in round_brackets:
        multiply_range(pos, _ROUND)
    for pos in square_brackets:
        multiply_range(pos, _SQUARE)
    return res


def _attention_linear(text: str, notes: list[str]) -> list[list]:
    """The same result in linear time: each entry remembers the innermost open bracket of each
    kind; a bracket's multiplier is known when it closes (or at the end); an entry's weight is the
    product along its two bracket chains."""
    res: list[list] = []
    owners: list[tuple[int, int]] = []  # per entry: (round node, square node); 0 = none
    parent = [0]
    multiplier = [1.0]
    round_stack: list[int] = []
    square_stack: list[int] = []

    def new_node(stack: list[int], default: float) -> None:
        parent.append(stack[-1] if stack else 0)
        multiplier.append(default)
        stack.append(len(parent) - 1)

    def add(text_: str) -> None:
        before = len(res)
        _append_text(res, text_)
        owner = (round_stack[-1] if round_stack else 0, square_stack[-1] if square_stack else 0)
        owners.extend([owner] * (len(res) - before))

    for m in _RE_ATTENTION.finditer(text):
        token = m.group(0)
        if token[0] == "\\":
            add(token[1:])
        elif token == "(":
            new_node(round_stack, _ROUND)
        elif token == "[":
            new_node(square_stack, _SQUARE)
        elif m.group(1) is not None and round_stack:
            weight = _weight_of(m, text, notes)
            if weight is None:
                add(token[:-1])
                round_stack.pop()
            else:
                multiplier[round_stack.pop()] = weight
        elif token == ")" and round_stack:
            round_stack.pop()
        elif token == "]" and square_stack:
            square_stack.pop()
        else:
            add(token)
    product = [1.0] * len(parent)
    for node in range(1, len(parent)):  # parents are created before their children
        product[node] = product[parent[node]] * multiplier[node]
    for entry, (r, s) in zip(res, owners, strict=True):
        if not entry[2]:
            entry[1] = product[r] * product[s]
    return res


def _finish_attention(res: list[list], notes: list[str]) -> list[tuple[str, float]]:
    if not res:
        return [("", 1.0)]
    overflowed = False
    for entry in res:
        if not math.isfinite(entry[1]):
            entry[1] = 1.0
            overflowed = True
    if overflowed:
        notes.append("an attention weight overflowed (numbers too large); 1.0 is used instead")
    merged: list[list] = [res[0]]
    for entry in res[1:]:
        last = merged[-1]
        if not entry[2] and not last[2] and last[1] == entry[1]:
            last[0] += entry[0]
        else:
            merged.append(entry)
    return [(e[0], e[1]) for e in merged]


def parse_attention(text: str) -> list[tuple[str, float]]:
    """A1111's ``parse_prompt_attention``: ``[(text, weight), …]`` with runs of equal weight merged.

    ``(x)`` x1.1, ``[x]`` /1.1, ``(x:1.3)``, nesting multiplies, ``\\(`` ``\\)`` ``\\[`` ``\\]``
    ``\\\\`` are literal characters, unbalanced brackets apply to the end of the text, ``BREAK`` is
    its own ``("BREAK", -1.0)`` entry, comment lines are removed. Never raises; see the module
    docstring for the few intended differences. Pass text without extra-network tags (use
    :func:`encoder_text` first).

    >>> parse_attention("an (important) word")
    [('an ', 1.0), ('important', 1.1), (' word', 1.0)]
    """
    return _attention(text)[0]
