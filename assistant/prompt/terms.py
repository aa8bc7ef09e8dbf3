"""Terms: the comma-separated words of a prompt, and adding the ones it lacks.

:func:`split_terms`, :func:`has_term` and :func:`missing_terms` (the one "add what is missing"
rule) answer questions about the words of the encoder text; :func:`insert_terms` and
:func:`append_terms` add terms without touching the bytes around them; :func:`term_spans`
locates the top-level terms. Separators are the package docstring's difference 11.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .attention import _attention
from .reader import encoder_text
from .tags import _scan_tags
from .text import _comment_free_regions

_WS = re.compile(r"\s+")


#: What separates terms: the comma, a line break, and the full-width and ideographic commas of
#: Chinese and Japanese input methods.
TERM_SEPARATORS = ",\n\uff0c\u3001"
_SEPARATOR = re.compile(f"[{TERM_SEPARATORS}]")


@lru_cache(maxsize=512)
def _terms(text: str) -> tuple[str, ...]:
    plain = "".join(
        "," if e[0] == "BREAK" and e[1] == -1.0 else e[0] for e in _attention(encoder_text(text))[0]
    )
    out: list[str] = []
    for piece in _SEPARATOR.split(plain):
        term = _WS.sub(" ", piece).strip()
        if term:
            out.append(term)
    return tuple(out)


def split_terms(text: str) -> list[str]:
    """The comma-separated terms of the encoder text, stripped, attention syntax removed.

    >>> split_terms("(masterpiece:1.2), 1girl, [cat ears], <lora:x:1>")
    ['masterpiece', '1girl', 'cat ears']
    """
    return list(_terms(text))


def _norm(term: str) -> str:
    return _WS.sub(" ", term).strip().casefold()


@lru_cache(maxsize=512)
def _term_set(text: str) -> frozenset[str]:
    return frozenset(_norm(t) for t in _terms(text))


def has_term(text: str, term: str) -> bool:
    """Whether ``term`` is one of the terms of ``text`` (case and spacing ignored).

    A comma-separated ``term`` ("cat ears, tail") matches when every one of its terms is present;
    attention syntax in ``term`` is ignored (``"(cat ears:1.2)"`` looks for "cat ears"). An empty
    ``term`` never matches.
    """
    wanted = [_norm(t) for t in _terms(term)]  # attention syntax in ``term`` is ignored too
    if not wanted:
        return False
    present = _term_set(text)
    return all(t in present for t in wanted)


def missing_terms(text: str, terms: Iterable[str]) -> tuple[str, ...]:
    """The ``terms`` that ``text`` lacks (:func:`has_term`), stripped, each once, in order: the
    one "add what is missing" rule (trigger words of a card click, a recipe's terms, negative
    terms of the rules)."""
    missing: list[str] = []
    seen: set[str] = set()
    for given in terms:
        term = given.strip()
        key = _norm(term)
        if key and key not in seen and not has_term(text, term):
            seen.add(key)
            missing.append(term)
    return tuple(missing)


@dataclass(frozen=True, slots=True)
class _Item:
    start: int  # first non-space character
    end: int  # end of the item (before its comma)
    text: str


def term_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level term of ``text`` (separators inside brackets and tags do not
    split; comment lines are skipped), from its first non-space character to its separator."""
    return [(item.start, item.end) for item in _top_level_items(text) if item.text.strip()]


def _top_level_items(text: str) -> list[_Item]:
    """Comma-separated items outside brackets, tags and comment lines."""
    items: list[_Item] = []
    depth = 0
    item_start = 0
    i = 0
    n = len(text)
    tag_ends = {t.start: t.end for t in _scan_tags(text)}
    at_line_start = True

    def close(end: int) -> None:
        piece = text[item_start:end]
        stripped = piece.lstrip()
        start = item_start + len(piece) - len(stripped)
        items.append(_Item(start, end, piece))

    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            if item_start < i:
                close(i)
            newline = text.find("\n", i)
            i = n if newline == -1 else newline + 1
            item_start = i
            continue
        at_line_start = c == "\n"
        if c == "\\":
            i += 2
            continue
        if c == "<" and i in tag_ends:
            i = tag_ends[i]
            continue
        if c in "([":
            depth += 1
        elif c in ")]":
            depth = max(0, depth - 1)
        elif c in TERM_SEPARATORS and depth == 0:
            close(i)
            item_start = i + 1
        i += 1
    if item_start < n:
        close(n)
    return items


def _joined(terms: Iterable[str]) -> str:
    return ", ".join(t.strip() for t in terms if t.strip())


#: Quality and subject words prompts start with (A1111 and Chinese UIs alike); inserted terms go
#: after the leading run of these.
LEADING_TERMS: tuple[str, ...] = (
    "masterpiece", "best quality", "high quality", "highres", "absurdres", "ultra detailed",
    "1girl", "1boy", "2girls", "2boys", "solo", "solo focus",
    "杰作", "最佳质量", "高质量", "一个女孩", "1个女孩", "一个男孩", "1个男孩", "两个女孩",
    "女孩", "少女", "单人",
)  # fmt: skip


def insert_terms(
    text: str,
    terms: Sequence[str],
    *,
    after_leading: Sequence[str] = LEADING_TERMS,
) -> str:
    """Insert ``terms`` (joined with ", ") after the leading run of quality/subject terms.

    ``"(masterpiece:1.2), 1girl, cat ears"`` + ``["catgirl"]`` gives
    ``"(masterpiece:1.2), 1girl, catgirl, cat ears"``. Never inserts inside a tag or brackets;
    when every item is a leading term the terms are appended; empty text gives the terms.
    """
    addition = _joined(terms)
    if not addition:
        return text
    if not text.strip():
        return addition
    leading = {_norm(t) for t in after_leading}
    for item in _top_level_items(text):
        if not item.text.strip():
            continue
        words = _terms(item.text)
        if words and all(_norm(w) in leading for w in words):
            continue
        return text[: item.start] + addition + ", " + text[item.start :]
    return append_terms(text, terms)


def append_terms(text: str, terms: Sequence[str]) -> str:
    """``text`` with ``terms`` (joined with ", ") added at the end; trailing commas are tidied and
    trailing comment lines stay last."""
    addition = _joined(terms)
    if not addition:
        return text
    regions = _comment_free_regions(text)
    end = regions[-1][1] if regions else 0
    head, tail = text[:end], text[end:]
    keep = len(head)
    while keep and (head[keep - 1] == "," or head[keep - 1].isspace()):
        keep -= 1
    core = head[:keep]
    return core + (", " if core else "") + addition + ("\n" if tail else "") + tail
