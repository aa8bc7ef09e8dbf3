"""The one LoRA-tag grammar: ``<lora:…>`` / ``<lyco:…>`` scanned, read, checked and written.

A1111's ``modules/extra_networks.py`` finds the tags (``<(\\w+):([^>]+)>``) and
``extra_networks_lora.py`` reads their arguments (positional ``name:te:unet:dyn``, named
``te=``/``unet=``/``dyn=``/``lbw=``); :class:`PromptLimits` bounds them. Only this module holds a
``lora|lyco`` pattern (``tests/test_architecture.py``): the parser, the renderer, ``retag`` and
the chat's "does this text start a tag" all read and write tags through it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from .. import limits as _limits
from ..errors import LimitError, PromptError
from ..types import LoraTag
from .text import _CONTROL, _comment_free_regions, _show, _where


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
        from ..lbw import parse_lbw

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


def _lora_slots(text: str) -> list[_RawTag]:
    return [t for t in _scan_tags(text) if t.tag_type.lower() in _LORA_TYPES]


def mentions_lora_tag(text: str) -> bool:
    """Whether ``text`` starts a LoRA tag anywhere (``<lora:``, ``< lyco :`` …), closed or not."""
    return "<" in text and _TAG_START.search(text) is not None
