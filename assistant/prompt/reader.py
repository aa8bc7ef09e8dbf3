"""Reading a prompt pair: :func:`parse` into a :class:`~assistant.types.Prompt`, and the encoder text.

One side of the pair is read once: its tags through the grammar (:mod:`.tags`), every limit
checked, and its encoder text built (tags and comment lines removed, unclosed ``<lora:`` left
out) with the notes the user should read (malformed attention numbers, unsupported A1111
syntax).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..errors import LimitError, PromptError
from ..types import ExtraTag, LoraTag, Prompt
from .attention import _attention
from .tags import (
    _EMPTY_TAG,
    _LORA_TYPES,
    _UNCLOSED,
    DEFAULT_LIMITS,
    KNOWN_EXTRA_TYPES,
    PromptLimits,
    _lora_tag,
    _RawTag,
    _scan_tags,
)
from .text import _comment_free_regions, _remove_spans, _show, _where

#: A weight token whose number might not convert (pre-check before the full attention parse).
_WEIGHT_TOKEN = re.compile(r":\s*([+-]?[.\d]+)\s*\)")


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


def encoder_text(text: str) -> str:
    """``text`` as the text encoder should see it: comment lines and every extra-network tag
    removed (commas and spaces tidied, unclosed ``<lora:`` fragments dropped), attention kept.
    Never raises."""
    encoder = _build_encoder_text(text, _scan_tags(text))
    if "<" in encoder and _UNCLOSED.search(encoder):
        encoder = _remove_unclosed(encoder)
    return encoder
