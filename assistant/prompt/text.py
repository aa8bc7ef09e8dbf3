"""Text primitives of the prompt package: comment lines, tidy removal, error-message quoting.

Every other module of :mod:`assistant.prompt` cuts text with these, so a removed tag or term
leaves no ``, ,`` or double space behind (intended difference 9 of the package docstring) and
comment lines (difference 6) are skipped the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _show(text: str, limit: int = 80) -> str:
    """``text`` for an error message: control characters escaped, long text shortened."""
    if len(text) > limit:
        text = text[: limit - 20] + "…" + text[-19:]
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _where(in_negative: bool) -> str:
    return "negative prompt" if in_negative else "prompt"


def _comment_free_regions(text: str) -> list[tuple[int, int]]:
    """(start, end) ranges of ``text`` outside comment lines (lines starting with ``#``)."""
    if "#" not in text:
        return [(0, len(text))]
    regions: list[tuple[int, int]] = []
    start = 0
    pos = 0
    n = len(text)
    while pos < n:
        newline = text.find("\n", pos)
        line_end = n if newline == -1 else newline + 1
        if text.startswith("#", pos):
            if start < pos:
                regions.append((start, pos))
            start = line_end
        pos = line_end
    if start < n:
        regions.append((start, n))
    return regions


def _strip_comment_lines(text: str) -> str:
    if "#" not in text:
        return text
    return "".join(text[s:e] for s, e in _comment_free_regions(text))


def _tidy_join(left: str, right: str, gap: bool = False) -> str:
    """Join the text before and after a removed piece without leaving ``, ,`` or double spaces.

    ``gap`` says the removed piece itself contained a space, so the words around it stay apart.
    """
    lhs = left.rstrip(" \t")
    rhs = right.lstrip(" \t")
    gap = gap or len(lhs) != len(left) or len(rhs) != len(right)
    # an opening bracket starts a list and a closing one ends it, like the text's own ends
    opens = lhs.endswith(("(", "[")) and not lhs.endswith(("\\(", "\\["))
    closes = rhs.startswith((")", "]"))
    if rhs.startswith(",") and (not lhs or lhs.endswith((",", "\n")) or opens):
        rhs = rhs[1:].lstrip(" \t")
    if (not rhs or rhs.startswith("\n") or closes) and lhs.endswith(","):
        lhs = lhs[:-1].rstrip(" \t")
    if lhs.endswith("\n") and rhs.startswith("\n"):
        rhs = rhs[1:]  # the removed piece stood on a line of its own
    if not lhs or not rhs or lhs.endswith("\n") or rhs.startswith(("\n", ",")) or opens or closes:
        return lhs + rhs
    return lhs + (" " if gap else "") + rhs


_SEPARATORS_ONLY = re.compile(r"[ \t,]*")


def _remove_spans(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` without the given (sorted, disjoint) spans, tidied at each removal site.

    Spans separated only by spaces and commas are removed as one run.
    """
    if not spans:
        return text
    acc = text[: spans[0][0]]
    run_start, run_end = spans[0]
    for start, end in spans[1:]:
        if _SEPARATORS_ONLY.fullmatch(text, run_end, start):
            run_end = end
            continue
        removed = text[run_start:run_end]
        acc = _tidy_join(acc, text[run_end:start], " " in removed or "\t" in removed)
        run_start, run_end = start, end
    removed = text[run_start:run_end]
    return _tidy_join(acc, text[run_end:], " " in removed or "\t" in removed)
