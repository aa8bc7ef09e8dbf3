"""Rewriting tags in text: :func:`render`, :func:`retag` and the advisor's tag edits.

Every rewrite goes through ``_edit_tags`` (one comma tidying, ``append_terms`` for added tags):
:func:`render` writes a :class:`~assistant.types.Prompt` back as A1111 text, :func:`retag` makes
a plan cell's tags match its weights, :func:`replace_tag`, :func:`remove_tag` and
:func:`reorder_tags` are the advisor's edits. Bytes outside an edit never change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import PromptError
from ..types import LoraTag, PlannedLora, Prompt
from .tags import DEFAULT_LIMITS, _allowed, _lora_slots, _RawTag, _render_tag, _tag_values, _TagValues
from .terms import append_terms
from .text import _show, _tidy_join


def _edit_tags(text: str, edits: Sequence[tuple[int, int, str | None]], appended: Sequence[str]) -> str:
    """``text`` with tag ``edits`` (start, end, new text or None = remove, in text order) and the
    ``appended`` tags at the end: the one way tags are rewritten (:func:`render`, :func:`retag`),
    with one comma tidying (:func:`_tidy_join`, :func:`append_terms`)."""
    out = text
    # apply edits right to left so earlier offsets stay valid
    for start, end, new in reversed(edits):
        out = _tidy_join(out[:start], out[end:]) if new is None else out[:start] + new + out[end:]
    return append_terms(out, appended) if appended else out


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
    from ..lbw import ratios_of

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
