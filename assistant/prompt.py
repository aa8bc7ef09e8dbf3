"""The AUTOMATIC1111 prompt language: extra-network tags, attention weights, BREAK, comments.

Pure Python (``re`` and ``math`` only). Everything here is a function of text:

* :func:`parse` turns a positive/negative prompt pair into a :class:`~assistant.types.Prompt`
  (``<lora:…>``/``<lyco:…>`` tags as :class:`~assistant.types.LoraTag`, other extra-network tags
  as :class:`~assistant.types.ExtraTag`, the text-encoder text, and notes for the user).
* :func:`render` writes a ``Prompt`` back as A1111 text; untouched text comes back byte for byte.
* :func:`parse_attention` is A1111's ``prompt_parser.parse_prompt_attention``; the engine's
  A1111 encoder (``assistant.engine.encoding``) reads its result: the one grammar of weights.
* :func:`encoder_text`, :func:`split_terms`, :func:`has_term` answer questions about the words.
* :func:`replace_tag`, :func:`remove_tag`, :func:`reorder_tags`, :func:`insert_terms`,
  :func:`append_terms` are the text edits the advisor makes; each returns new text and leaves the
  bytes outside the edit unchanged.

A1111 sources these rules follow: ``modules/extra_networks.py`` (``<(\\w+):([^>]+)>``, arguments
split on ``:``, an item with exactly one ``=`` is named), ``extensions-builtin/Lora/
extra_networks_lora.py`` (``te`` defaults to 1.0, ``unet`` to ``te``, ``dyn`` to None; named
``te=``/``unet=``/``dyn=`` override positions), ``modules/prompt_parser.py`` (attention) and
``modules/processing_scripts/comments.py`` (comments).

Intended differences from A1111, each a place where A1111 crashes, silently ignores something the
user meant, or behaves in a way nobody relies on:

1. Errors instead of crashes or silent skips: a LoRA tag with an empty name, a weight that is not
   a finite number, a weight outside :class:`PromptLimits`, a ``dyn`` that is not a positive whole
   number, a name with control characters or longer than a file name can be, a tag that contains
   ``<`` (an earlier tag was not closed), too many LoRA tags or too long a prompt raise
   :class:`~assistant.errors.PromptError` naming the tag and the allowed values.
2. ``<LoRA:…>``/``<LYCO:…>`` (any letter case) count as LoRA tags, with a note; A1111 skips
   unknown extra-network types, and only lower-case ``lora``/``lyco`` are registered.
3. An unclosed ``<lora:…`` (no ``>``) is plain text to A1111. We keep it in the prompt, add a
   note, and leave it out of the encoder text: it is a typo, never words for the text encoder.
4. A malformed attention number such as ``(x:1.2.3)`` crashes A1111 (``float('1.2.3')``). We read
   the text as if the number alternative of the tokenizer had not matched: ``:1.2.3`` is plain
   text and the ``)`` closes a plain ``(…)`` (x1.1); a note says so. The same holds for a number
   that overflows to infinity.
5. ``BREAK`` is always ``("BREAK", -1.0)``. A1111 multiplies the -1 of a BREAK inside brackets
   (``(a BREAK b)`` gives ``("BREAK", -1.1)``), which then is no longer recognised as a break.
6. Comments: a line that starts with ``#`` is removed (with its newline), and extra-network tags
   on it are ignored. A1111 1.8+ also hides the rest of a line after a ``#`` in the middle of a
   line; we keep such text, because ``#`` appears inside ordinary tags (``#1``, colour codes).
7. Deeply nested attention (more than about 50,000 bracket-segment multiplications) switches to
   an equivalent linear algorithm; its weights may differ from A1111's in the last bit because
   the multiplications happen in another order. A1111's own loop is quadratic there.
8. A computed attention weight that overflows is replaced by 1.0, with a note.
9. Encoder text: tags are removed with the commas and spaces around them tidied, so no ``, ,``
   remains (A1111 removes only the tag itself). Comma spacing does change CLIP tokens; the
   tidy only removes separators that belonged to the removed tag.
10. A1111's prompt editing (``[from:to:step]``), alternation (``[a|b]``) and ``AND`` (composable
    diffusion) are not run: the text goes to the encoder as words (brackets as de-emphasis), and a
    note names the first occurrence of each so the user knows. ``<lora:>`` (no name) is refused
    like any nameless tag, although A1111's tag pattern reads it as words.
11. Terms are separated by commas, line breaks and the full-width ``，`` and ideographic ``、``
    commas of Chinese and Japanese input methods (for the edit helpers: ``has_term``,
    ``insert_terms`` …); the encoder text keeps them as written.

Cost: every function is linear in the length of the text (tag scanning stops at the last ``>``,
BREAK splitting widens over whitespace by hand instead of A1111's backtracking ``\\s*`` regex,
deep attention nesting switches algorithm). Pure per-text steps are memoised with
``functools.lru_cache`` (tag scan, tag reading, encoder text): a prompt that is parsed again, as a
UI does on every edit, costs a few tens of microseconds. :func:`clear_caches` frees them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from . import limits as _limits
from .errors import LimitError, PromptError
from .types import ExtraTag, LoraTag, PlannedLora, Prompt

__all__ = [
    "PromptLimits",
    "append_terms",
    "clear_caches",
    "encoder_text",
    "has_term",
    "insert_terms",
    "mentions_lora_tag",
    "missing_terms",
    "parse",
    "parse_attention",
    "remove_tag",
    "render",
    "reorder_tags",
    "replace_tag",
    "retag",
    "split_terms",
]


@dataclass(frozen=True, slots=True)
class PromptLimits:
    """What :func:`parse` accepts. ``max_length`` counts characters per prompt (positive or
    negative); ``max_loras`` counts LoRA tags of both prompts together; ``max_name_length`` is the
    longest LoRA name (a file name stem)."""

    min_weight: float = _limits.LORA_WEIGHT[0]
    max_weight: float = _limits.LORA_WEIGHT[1]
    max_loras: int = _limits.LORA_TAGS
    max_length: int = _limits.PROMPT_CHARS
    max_name_length: int = _limits.LORA_NAME_CHARS

    def __post_init__(self) -> None:
        if not self.min_weight <= self.max_weight:
            raise ValueError(
                f"PromptLimits: min_weight {self.min_weight:g} is above max_weight {self.max_weight:g}"
            )
        if min(self.max_loras, self.max_length, self.max_name_length) < 0:
            raise ValueError("PromptLimits: max_loras, max_length and max_name_length must be 0 or more")


DEFAULT_LIMITS = PromptLimits()

#: Extra-network types A1111 registers (others are removed from the text and skipped).
KNOWN_EXTRA_TYPES = frozenset({"lora", "lyco", "hypernet"})
_LORA_TYPES = frozenset({"lora", "lyco"})

# -- regular expressions (compiled once) --------------------------------------------------------

#: An extra-network tag, A1111's modules/extra_networks.py ``re_extra_net``.
_TAG = re.compile(r"<(\w+):([^>]+)>")
#: An unclosed LoRA tag left in the text (A1111 reads it as words).
_EMPTY_TAG = re.compile(r"<(?:lora|lyco):>", re.IGNORECASE)
#: The start of a LoRA tag as a person may type it (``< lora :`` too): "is this a prompt with LoRAs?"
_TAG_START = re.compile(r"<\s*(?:lora|lyco)\s*:", re.IGNORECASE)
_UNCLOSED = re.compile(r"<(?:lora|lyco):[^,<>\n]*", re.IGNORECASE)
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
#: A weight token whose number might not convert (pre-check before the full attention parse).
_WEIGHT_TOKEN = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WS = re.compile(r"\s+")

#: Products of bracket multipliers beyond this many steps use the linear algorithm.
_ATTENTION_WORK_BUDGET = 50_000
_ROUND = 1.1
_SQUARE = 1 / 1.1


def clear_caches() -> None:
    """Forget memoised tag scans and tag readings (they are pure; this only frees memory, and
    lets benchmarks measure the uncached path)."""
    for cached in (
        _scan_tags,
        _tag_values,
        _cached_lora_tag,
        _allowed,
        _encoder_and_notes,
        _terms,
        _term_set,
    ):
        cached.cache_clear()


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


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


class _RawTag(NamedTuple):
    start: int
    end: int
    tag_type: str  # as written
    args: str


@lru_cache(maxsize=256)
def _scan_tags(text: str) -> tuple[_RawTag, ...]:
    """Every extra-network tag outside comment lines, in text order (A1111's regex).

    ``[^>]+`` only fails (and rescans to the end) after the last ``>``, so each search stops
    there: linear time even for ``<a:<a:<a:…`` without any ``>``.
    """
    if "<" not in text:
        return ()
    tags: list[_RawTag] = []
    for region_start, region_end in _comment_free_regions(text):
        stop = text.rfind(">", region_start, region_end) + 1
        if stop > region_start:
            tags.extend(
                _RawTag(m.start(), m.end(), m.group(1), m.group(2))
                for m in _TAG.finditer(text, region_start, stop)
            )
    return tuple(tags)


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
    out: list[str] = []
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
    acc = _tidy_join(acc, text[run_end:], " " in removed or "\t" in removed)
    out.append(acc)
    return "".join(out)


# ----------------------------------------------------------------------------------------------
# Tags
# ----------------------------------------------------------------------------------------------


def _number(value: str, what: str, raw: str, in_negative: bool, allowed: str) -> float:
    """A weight as A1111 reads it (``float()``), refusing text, NaN and infinities."""
    try:
        number = float(value)
    except ValueError:
        where = _where(in_negative)
        if value.strip():
            raise PromptError(
                f"{what} '{_show(value)}' in {_show(raw)} ({where}) is not a number; {allowed}"
            ) from None
        raise PromptError(f"{what} in {_show(raw)} ({where}) is empty; {allowed}") from None
    if not math.isfinite(number):
        raise PromptError(
            f"{what} '{_show(value)}' in {_show(raw)} ({_where(in_negative)}) is not a finite number; "
            f"{allowed}"
        )
    return number


def _dyn(value: str, raw: str, in_negative: bool) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise PromptError(
            f"dyn '{_show(value)}' in {_show(raw)} ({_where(in_negative)}) must be a whole number "
            "of 1 or more (the rank to keep)"
        )
    return number


class _TagValues(NamedTuple):
    """What a LoRA tag says, before the configurable limits are applied."""

    name: str
    te: float
    te_text: tuple[str, str]  # (label, text as written) for range errors
    unet: float | None
    unet_text: tuple[str, str]
    dyn: int | None
    tag_type: str
    notes: tuple[str, ...]
    lbw: str = ""


@lru_cache(maxsize=2048)
def _tag_values(tag_type_written: str, args: str, raw: str, in_negative: bool, allowed: str) -> _TagValues:
    """Read one ``<lora:…>`` tag the way A1111's extra_networks_lora does (cached: pure).

    ``allowed`` is the "use a value from … to …" hint for error messages."""
    where = _where(in_negative)
    if "<" in args:
        raise PromptError(
            f"tag {_show(raw)} ({where}) contains '<': a tag cannot hold another tag; "
            "close the first tag with '>'"
        )
    if "=" not in args and args.count(":") <= 1:  # the common <lora:name> / <lora:name:w>
        positional = args.split(":")
        named: dict[str, str] = {}
    else:
        positional = []
        named = {}
        for item in args.split(":"):
            parts = item.split("=", 2)
            if len(parts) == 2:
                named[parts[0]] = parts[1]
            else:
                positional.append(item)
    if not positional or not positional[0].strip():
        raise PromptError(
            f"LoRA tag {_show(raw)} ({where}) has no name; write <lora:NAME> or <lora:NAME:WEIGHT>"
        )
    name = positional[0]
    control = _CONTROL.search(name)
    if control:
        raise PromptError(
            f"LoRA name in {_show(raw)} ({where}) contains a control character "
            f"({_show(control.group())}); names are file names without control characters"
        )
    te, te_text = 1.0, ("weight", "1")
    if len(positional) > 1:
        te, te_text = _number(positional[1], "weight", raw, in_negative, allowed), ("weight", positional[1])
    if "te" in named:
        label = "text-encoder weight te"
        te, te_text = _number(named["te"], label, raw, in_negative, allowed), (label, named["te"])
    unet, unet_text = None, ("", "")
    if len(positional) > 2:
        unet, unet_text = (
            _number(positional[2], "UNet weight", raw, in_negative, allowed),
            ("UNet weight", positional[2]),
        )
    if "unet" in named:
        label = "UNet weight unet"
        unet, unet_text = _number(named["unet"], label, raw, in_negative, allowed), (label, named["unet"])
    dyn = _dyn(positional[3], raw, in_negative) if len(positional) > 3 else None
    if "dyn" in named:
        dyn = _dyn(named["dyn"], raw, in_negative)
    notes: list[str] = []
    if len(positional) > 4:
        notes.append(f"{_show(raw)}: arguments after the 4th are ignored (A1111 ignores them too)")
    lbw = ""
    if "lbw" in named:
        from .lbw import parse_lbw

        parse_lbw(named["lbw"], f"{_show(raw)} ({where})")  # raises PromptError saying what is wrong
        lbw = named["lbw"].strip()
    unknown = sorted(k for k in named if k not in ("te", "unet", "dyn", "lbw")) if named else None
    if unknown:
        notes.append(
            f"{_show(raw)}: unknown named argument(s) {', '.join(repr(k) for k in unknown)} ignored; "
            "known: te=, unet=, dyn=, lbw="
        )
    tag_type = tag_type_written.lower()
    if tag_type_written != tag_type:
        notes.append(
            f"{_show(raw)}: read as <{tag_type}:…>; A1111 only knows lower-case '{tag_type}' "
            "and would skip it"
        )
    return _TagValues(name, te, te_text, unet, unet_text, dyn, tag_type, tuple(notes), lbw)


@lru_cache(maxsize=64)
def _allowed(limits: PromptLimits) -> str:
    return f"use a value from {limits.min_weight:g} to {limits.max_weight:g}"


def _check_limits(values: _TagValues, raw: str, in_negative: bool, limits: PromptLimits) -> None:
    lo, hi = limits.min_weight, limits.max_weight
    if not lo <= values.te <= hi or (values.unet is not None and not lo <= values.unet <= hi):
        bad = values.te_text if not lo <= values.te <= hi else values.unet_text
        label, text = bad
        raise LimitError(
            f"{label} {text.strip()} in {_show(raw)} ({_where(in_negative)}) is outside the allowed "
            f"range; {_allowed(limits)}"
        )
    if len(values.name) > limits.max_name_length:
        raise LimitError(
            f"LoRA name in {_show(raw)} ({_where(in_negative)}) is {len(values.name)} characters long; "
            f"the limit is {limits.max_name_length} characters"
        )


def _lora_tag(
    raw_tag: _RawTag, raw: str, in_negative: bool, limits: PromptLimits, notes: list[str]
) -> LoraTag:
    """One ``<lora:…>`` tag, read the way A1111's extra_networks_lora reads it, then validated."""
    tag, tag_notes = _cached_lora_tag(raw_tag, raw, in_negative, limits)
    if tag_notes:
        notes.extend(tag_notes)
    return tag


@lru_cache(maxsize=2048)
def _cached_lora_tag(
    raw_tag: _RawTag, raw: str, in_negative: bool, limits: PromptLimits
) -> tuple[LoraTag, tuple[str, ...]]:
    values = _tag_values(raw_tag.tag_type, raw_tag.args, raw, in_negative, _allowed(limits))
    _check_limits(values, raw, in_negative, limits)
    tag = LoraTag(
        values.name,
        values.te,
        values.unet,
        values.dyn,
        in_negative,
        (raw_tag.start, raw_tag.end),
        values.tag_type,
        raw,
        values.lbw,
    )
    return tag, values.notes


@dataclass(frozen=True, slots=True)
class _Side:
    loras: tuple[LoraTag, ...]
    extras: tuple[ExtraTag, ...]
    encoder: str


def _read_side(text: str, in_negative: bool, limits: PromptLimits, notes: list[str]) -> _Side:
    where = _where(in_negative)
    if len(text) > limits.max_length:
        raise LimitError(
            f"the {where} is {len(text):,} characters long; the limit is {limits.max_length:,} characters"
        )
    loras: list[LoraTag] = []
    extras: list[ExtraTag] = []
    raw_tags = _scan_tags(text)
    noted_types: set[str] = set()
    for raw_tag in raw_tags:
        raw = text[raw_tag.start : raw_tag.end]
        if raw_tag.tag_type.lower() in _LORA_TYPES:
            loras.append(_lora_tag(raw_tag, raw, in_negative, limits, notes))
        else:
            extras.append(
                ExtraTag(
                    tag_type=raw_tag.tag_type,
                    args=tuple(raw_tag.args.split(":")),
                    in_negative=in_negative,
                    span=(raw_tag.start, raw_tag.end),
                    raw=raw,
                )
            )
            if raw_tag.tag_type not in KNOWN_EXTRA_TYPES and raw_tag.tag_type not in noted_types:
                noted_types.add(raw_tag.tag_type)  # one note per unknown type is enough
                notes.append(
                    f"{_show(raw)} ({where}) looks like an extra-network tag of unknown type "
                    f"'{_show(raw_tag.tag_type)}'; it is removed from the text like A1111 does"
                )
    if "<" in text and (empty := _EMPTY_TAG.search(text)) is not None:
        # A1111's tag pattern needs a character after the colon, so it reads `<lora:>` as words
        raise PromptError(
            f"LoRA tag {_show(empty.group())} ({where}) has no name; write <lora:NAME> or <lora:NAME:WEIGHT>"
        )
    encoder, encoder_notes = _encoder_and_notes(text, where)
    notes.extend(encoder_notes)
    return _Side(tuple(loras), tuple(extras), encoder)


@lru_cache(maxsize=256)
def _encoder_and_notes(text: str, where: str) -> tuple[str, tuple[str, ...]]:
    """The encoder text of ``text`` and the notes about it (unclosed tags, bad numbers)."""
    notes: list[str] = []
    encoder = _build_encoder_text(text, _scan_tags(text))
    if "<" in encoder and _UNCLOSED.search(encoder):
        found = [m.group() for m in _UNCLOSED.finditer(encoder)]
        for fragment in found[:3]:
            notes.append(
                f"'{_show(fragment)}' ({where}) is not closed with '>': A1111 reads it as words; "
                "it is left out of the encoder text"
            )
        encoder = _remove_unclosed(encoder)
    _attention_notes(encoder, where, notes)
    _unsupported_syntax_notes(encoder, where, notes)
    return encoder, tuple(notes)


#: A1111 syntax LoRA Mixer does not run (it is read as words, the brackets as de-emphasis).
_UNSUPPORTED = (
    (
        re.compile(r"(?<!\\)\[[^\[\]]*:\s*\d+(?:\.\d+)?\s*\]"),
        "prompt editing [from:to:step] is not supported (the words of both parts are drawn together)",
    ),
    (
        re.compile(r"(?<!\\)\[[^\[\]|]*\|[^\[\]]*\]"),
        "alternation [a|b] is not supported (both words are drawn together)",
    ),
    (re.compile(r"(?:^|\s)AND(?:\s|$)"), "AND (composable diffusion) is not supported; it is read as a word"),
)


def _unsupported_syntax_notes(text: str, where: str, notes: list[str]) -> None:
    if "[" not in text and "AND" not in text:
        return
    for pattern, message in _UNSUPPORTED:
        match = pattern.search(text)
        if match is not None:
            notes.append(f"'{_show(match.group().strip())}' ({where}): A1111 {message}")


def _build_encoder_text(text: str, raw_tags: Sequence[_RawTag]) -> str:
    if "#" in text:
        spans = [(t.start, t.end) for t in raw_tags]
        pieces: list[str] = []
        for start, end in _comment_free_regions(text):
            inside = [(s - start, e - start) for s, e in spans if start <= s < end]
            pieces.append(_remove_spans(text[start:end], inside))
        return "".join(pieces)
    return _remove_spans(text, [(t.start, t.end) for t in raw_tags])


def _remove_unclosed(text: str) -> str:
    spans = [m.span() for m in _UNCLOSED.finditer(text)]
    return _remove_spans(text, spans)


def _attention_notes(text: str, where: str, notes: list[str]) -> None:
    """Notes for malformed attention numbers (the full attention parse runs only when needed)."""
    if ":" not in text or ")" not in text:
        return
    for m in _WEIGHT_TOKEN.finditer(text):
        try:
            value = float(m.group(1))
        except ValueError:
            break
        if not math.isfinite(value) or abs(value) > 1e100:
            break
    else:
        return
    found = _attention(text)[1]
    notes.extend(f"{note} ({where})" for note in found[:_MAX_NOTES_PER_KIND])
    if len(found) > _MAX_NOTES_PER_KIND:
        notes.append(f"… and {len(found) - _MAX_NOTES_PER_KIND} more attention notes ({where})")


_MAX_NOTES_PER_KIND = 5


def parse(positive: str, negative: str = "", *, limits: PromptLimits | None = None) -> Prompt:
    """Parse an A1111 prompt pair into a :class:`~assistant.types.Prompt`.

    Raises :class:`~assistant.errors.PromptError` (and nothing else) when a tag or a limit is
    violated; the message names the offending tag and what is allowed.
    """
    limits = limits or DEFAULT_LIMITS
    if not isinstance(positive, str) or not isinstance(negative, str):
        raise PromptError(
            f"prompts must be text; got {type(positive).__name__} and {type(negative).__name__}"
        )
    notes: list[str] = []
    pos = _read_side(positive, False, limits, notes)
    neg = _read_side(negative, True, limits, notes) if negative else _Side((), (), "")
    count = len(pos.loras) + len(neg.loras)
    if count > limits.max_loras:
        raise LimitError(
            f"{count} LoRA tags (prompt and negative prompt together); at most {limits.max_loras} are allowed"
        )
    return Prompt(
        positive=positive,
        negative=negative,
        loras=pos.loras + neg.loras,
        extras=pos.extras + neg.extras,
        positive_text=pos.encoder,
        negative_text=neg.encoder,
        notes=tuple(notes),
    )


# ----------------------------------------------------------------------------------------------
# Render
# ----------------------------------------------------------------------------------------------


def _render_tag(tag: LoraTag) -> str:
    """``tag.render()``, refusing names and weights that cannot be written as a tag."""
    if not tag.name.strip() or any(c in tag.name for c in ":<>="):
        raise PromptError(
            f"LoRA name '{_show(tag.name)}' cannot be written in a tag: it must be non-empty and "
            "contain none of : < > ="
        )
    try:
        return tag.render()
    except ValueError as exc:
        raise PromptError(f"LoRA '{_show(tag.name)}': {exc}") from None


def _edit_tags(text: str, edits: Sequence[tuple[int, int, str | None]], appended: Sequence[str]) -> str:
    """``text`` with tag ``edits`` (start, end, new text or None = remove, in text order) and the
    ``appended`` tags at the end: the one way tags are rewritten (:func:`render`, :func:`retag`),
    with one comma tidying (:func:`_tidy_join`, :func:`append_terms`)."""
    out = text
    # apply edits right to left so earlier offsets stay valid
    for start, end, new in reversed(edits):
        out = _tidy_join(out[:start], out[end:]) if new is None else out[:start] + new + out[end:]
    return append_terms(out, appended) if appended else out


def _lora_slots(text: str) -> list[_RawTag]:
    return [t for t in _scan_tags(text) if t.tag_type.lower() in _LORA_TYPES]


def _render_side(text: str, tags: Sequence[LoraTag], in_negative: bool) -> str:
    slots = _lora_slots(text)
    by_span = {t.span: t for t in tags if t.span is not None}
    placed: set[tuple[int, int]] = set()
    edits: list[tuple[int, int, str | None]] = []  # (start, end, new text or None = remove)
    for slot in slots:
        span = (slot.start, slot.end)
        tag = by_span.get(span)
        if tag is None:
            edits.append((slot.start, slot.end, None))
            continue
        placed.add(span)
        raw = text[slot.start : slot.end]
        if tag.raw == raw and _same_as_written(tag, slot, raw, in_negative):
            continue
        edits.append((slot.start, slot.end, _render_tag(tag)))
    extra = [_render_tag(t) for t in tags if t.span is None or t.span not in placed]
    return _edit_tags(text, edits, extra)


def retag(text: str, managed: Iterable[str], wanted: Sequence[PlannedLora]) -> str:
    """``text`` with its LoRA tags made to match ``wanted`` (a plan's cell).

    Tags naming one of ``managed`` or ``wanted`` (case-insensitive) are rewritten to the wanted
    weights (kept byte for byte when they already say them) or, when that LoRA is not wanted (or
    is tagged twice), removed with their separator. Wanted LoRAs without a tag are appended. Tags
    of other LoRAs and all other text stay as written. Never raises for an unreadable tag of
    another LoRA (it is left alone).
    """
    from .lbw import ratios_of

    keys = {_name_key(n) for n in managed} | {_name_key(lora.name) for lora in wanted}
    by_key = {_name_key(lora.name): lora for lora in wanted}
    seen: set[str] = set()
    edits: list[tuple[int, int, str | None]] = []
    for slot in _lora_slots(text):
        raw = text[slot.start : slot.end]
        try:
            written: _TagValues | None = _tag_values(
                slot.tag_type, slot.args, raw, False, _allowed(DEFAULT_LIMITS)
            )
        except PromptError:
            written = None
        key = _name_key(written.name if written is not None else slot.args.split(":", 1)[0])
        if key not in keys:
            continue
        lora = by_key.get(key)
        if lora is None or key in seen:
            edits.append((slot.start, slot.end, None))
            continue
        seen.add(key)
        if written is not None and written.name == lora.name:
            says = (written.te, written.te if written.unet is None else written.unet, ratios_of(written.lbw))
            if says == (lora.weight, lora.unet_weight, lora.lbw):
                continue  # already says it
        dyn = written.dyn if written is not None else None
        tag_type = written.tag_type if written is not None else slot.tag_type.lower()
        edits.append((slot.start, slot.end, _render_tag(_planned_tag(lora, dyn=dyn, tag_type=tag_type))))
    appended = [_render_tag(_planned_tag(lora)) for lora in wanted if _name_key(lora.name) not in seen]
    return _edit_tags(text, edits, appended)


def _planned_tag(lora: PlannedLora, *, dyn: int | None = None, tag_type: str = "lora") -> LoraTag:
    unet = lora.unet if lora.unet is not None and lora.unet != lora.weight else None
    lbw = ",".join(f"{r:g}" for r in lora.lbw) if lora.lbw is not None else ""  # all 26 blocks
    return LoraTag(name=lora.name, weight=lora.weight, unet=unet, dyn=dyn, tag_type=tag_type, lbw=lbw)


def _name_key(name: str) -> str:
    return name.strip().casefold()


def mentions_lora_tag(text: str) -> bool:
    """Whether ``text`` starts a LoRA tag anywhere (``<lora:``, ``< lyco :`` …), closed or not."""
    return "<" in text and _TAG_START.search(text) is not None


def _same_as_written(tag: LoraTag, slot: _RawTag, raw: str, in_negative: bool) -> bool:
    try:
        written = _tag_values(slot.tag_type, slot.args, raw, in_negative, _allowed(DEFAULT_LIMITS))
    except PromptError:
        return False
    return (written.name, written.te, written.unet, written.dyn, written.tag_type, written.lbw) == (
        tag.name,
        tag.weight,
        tag.unet,
        tag.dyn,
        tag.tag_type,
        tag.lbw,
    )


def render(prompt: Prompt) -> tuple[str, str]:
    """A1111 text ``(positive, negative)`` for ``prompt``.

    Tags of ``prompt.loras`` whose span points at an unchanged tag in the text are kept exactly as
    written; a changed tag is written in canonical form (:meth:`LoraTag.render`); a tag of the
    text that is no longer in ``prompt.loras`` is removed (commas tidied); a tag without a span
    (or with a span that matches no tag) is appended at the end. Extra tags and all other text are
    kept byte for byte.
    """
    positive_tags = [t for t in prompt.loras if not t.in_negative]
    negative_tags = [t for t in prompt.loras if t.in_negative]
    return (
        _render_side(prompt.positive, positive_tags, False),
        _render_side(prompt.negative, negative_tags, True),
    )


# ----------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Words
# ----------------------------------------------------------------------------------------------


def encoder_text(text: str) -> str:
    """``text`` as the text encoder should see it: comment lines and every extra-network tag
    removed (commas and spaces tidied, unclosed ``<lora:`` fragments dropped), attention kept.
    Never raises."""
    encoder = _build_encoder_text(text, _scan_tags(text))
    if "<" in encoder and _UNCLOSED.search(encoder):
        encoder = _remove_unclosed(encoder)
    return encoder


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


# ----------------------------------------------------------------------------------------------
# Edits
# ----------------------------------------------------------------------------------------------


def _check_tag(text: str, tag: LoraTag) -> tuple[int, int]:
    span = tag.span
    if span is None or not 0 <= span[0] < span[1] <= len(text):
        raise PromptError(
            f"LoRA tag for '{_show(tag.name)}' has no position in this text; parse the text again"
        )
    if tag.raw and text[span[0] : span[1]] != tag.raw:
        raise PromptError(
            f"the text at {span[0]}..{span[1]} is not {_show(tag.raw)}; the text changed since it was parsed"
        )
    return span


def replace_tag(text: str, tag: LoraTag, new: LoraTag) -> str:
    """``text`` with ``tag`` (located by its span) replaced by ``new.render()``."""
    start, end = _check_tag(text, tag)
    return text[:start] + _render_tag(new) + text[end:]


def remove_tag(text: str, tag: LoraTag) -> str:
    """``text`` without ``tag``; the comma and spaces that separated it are removed with it."""
    start, end = _check_tag(text, tag)
    return _tidy_join(text[:start], text[end:])


def reorder_tags(text: str, tags: Sequence[LoraTag]) -> str:
    """Put ``tags`` (the LoRA tags of ``text``, in their new order) into the tag slots of ``text``.

    The slots keep their positions; the i-th slot in text order receives the i-th tag's raw text
    (its canonical form when it has none).
    """
    spans = sorted(_check_tag(text, t) for t in tags)
    if len(set(spans)) != len(spans):
        raise PromptError("reorder_tags got the same tag twice; pass each tag of the text once")
    out: list[str] = []
    pos = 0
    for (start, end), tag in zip(spans, tags, strict=True):
        out.append(text[pos:start])
        out.append(tag.raw or _render_tag(tag))
        pos = end
    out.append(text[pos:])
    return "".join(out)


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
