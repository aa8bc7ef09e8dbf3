"""The value every rule takes and returns, and the small helpers rules share.

A rule is ``apply(state: RuleState) -> RuleState``. The state is frozen: a rule returns a new one
built with :meth:`RuleState.edit` (new text, re-parsed so spans are fresh, plus the
:class:`~assistant.types.Change` that explains it) or :meth:`RuleState.warn`. A rule that changes
nothing returns the state it was given.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..prompt import parse, reorder_tags, replace_tag
from ..types import AdviceWarning, Change, LoraInfo, LoraTag, Prompt, format_weight
from .config import RulesConfig

if TYPE_CHECKING:
    from ..library import Library
    from ..prompt import PromptLimits


@dataclass(frozen=True, slots=True)
class RuleState:
    """A prompt on its way through the rules: the two texts and their LoRA tags.

    ``positive_loras``/``negative_loras`` are each prompt's tags in text order, with spans into
    their text (as :class:`Prompt` has them); :meth:`edit` and friends keep them current.
    ``infos`` maps a LoRA name as written in the (rewritten) text to what the library knows;
    resolve-names fills it once, so later rules never search the library again.
    ``excluded`` maps a name to the reason it will not be applied (broken file, base mismatch).
    ``negative_branch`` holds the negative-prompt tags that set a negative-pass weight (name → tag).
    ``symptoms`` are symptom ids from ``config.symptoms``.
    """

    positive: str
    negative: str
    positive_loras: tuple[LoraTag, ...]
    negative_loras: tuple[LoraTag, ...]
    library: Library
    config: RulesConfig
    base: str = "sd15"
    symptoms: tuple[str, ...] = ()
    limits: PromptLimits | None = None
    clip_skip: int = 1
    infos: Mapping[str, LoraInfo] = field(default_factory=dict)
    excluded: Mapping[str, str] = field(default_factory=dict)
    negative_branch: Mapping[str, LoraTag] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()
    warnings: tuple[AdviceWarning, ...] = ()

    @classmethod
    def start(
        cls, prompt: Prompt, *, library: Library, config: RulesConfig, base: str, limits: PromptLimits | None
    ) -> RuleState:
        """The state for a freshly parsed prompt."""
        return cls(
            positive=prompt.positive,
            negative=prompt.negative,
            positive_loras=prompt.positive_loras,
            negative_loras=prompt.negative_loras,
            library=library,
            config=config,
            base=base,
            limits=limits,
        )

    @property
    def loras(self) -> tuple[LoraTag, ...]:
        """Positive-prompt tags, then negative-prompt tags (as :attr:`Prompt.loras`)."""
        return self.positive_loras + self.negative_loras

    def info(self, tag: LoraTag) -> LoraInfo | None:
        """What the library knows about ``tag`` (None: unknown name)."""
        return self.infos.get(tag.name)

    def applied(self, tag: LoraTag) -> bool:
        """True when ``tag`` names a known, loadable LoRA for this base model."""
        return tag.name in self.infos and tag.name not in self.excluded

    def applied_positive(self) -> list[tuple[LoraTag, LoraInfo]]:
        """The positive-prompt tags that will be applied, in text order, with their info."""
        return [(t, self.infos[t.name]) for t in self.positive_loras if self.applied(t)]

    def edit(self, change: Change, *, positive: str | None = None, negative: str | None = None) -> RuleState:
        """A new state with edited text and ``change`` recorded; the tags' spans are brought up to date.

        Only the part of the text that changed is parsed again (see :func:`rebase_tags`), so an
        edit costs a fraction of a full parse.
        """
        changes: dict[str, object] = {"changes": (*self.changes, change)}
        if positive is not None and positive != self.positive:
            changes["positive"] = positive
            changes["positive_loras"] = rebase_tags(
                self.positive, positive, self.positive_loras, False, self.limits
            )
        if negative is not None and negative != self.negative:
            changes["negative"] = negative
            changes["negative_loras"] = rebase_tags(
                self.negative, negative, self.negative_loras, True, self.limits
            )
        return self.replace(**changes)

    def replace_tags(self, change: Change, pairs: Sequence[tuple[LoraTag, LoraTag]]) -> RuleState:
        """Replace tags of one side (``old → new`` pairs) in one edit.

        The text is edited with :func:`assistant.prompt.replace_tag`; the new tags are known
        (rendered text, spans shifted), so nothing is parsed again.
        """
        if not pairs:
            return self
        in_negative = pairs[0][0].in_negative
        text = self.negative if in_negative else self.positive
        by_span = {old.span: new for old, new in pairs}
        for old, new in sorted(pairs, key=lambda p: (p[0].span or (0, 0))[0], reverse=True):
            text = replace_tag(text, old, new)
        side: list[LoraTag] = []
        shift = 0
        for tag in self.negative_loras if in_negative else self.positive_loras:
            new = by_span.get(tag.span)
            if new is None or tag.span is None:
                side.append(_shift(tag, shift))
                continue
            raw = new.render()
            start = tag.span[0] + shift
            side.append(
                LoraTag(
                    new.name,
                    float(format_weight(new.weight)),
                    None if new.unet is None else float(format_weight(new.unet)),
                    new.dyn,
                    in_negative,
                    (start, start + len(raw)),
                    new.tag_type,
                    raw,
                    new.lbw,
                )
            )
            shift += len(raw) - (tag.span[1] - tag.span[0])
        return self._with_side(change, in_negative, text, tuple(side))

    def reorder(self, change: Change, ranked: Sequence[LoraTag]) -> RuleState:
        """Put the positive prompt's tags in the order ``ranked`` (slots keep their positions)."""
        text = reorder_tags(self.positive, ranked)
        slots = sorted(t.span or (0, 0) for t in ranked)
        side: list[LoraTag] = []
        shift = 0
        for (start, end), tag in zip(slots, ranked, strict=True):
            raw = tag.raw or tag.render()
            side.append(
                LoraTag(
                    tag.name,
                    tag.weight,
                    tag.unet,
                    tag.dyn,
                    tag.in_negative,
                    (start + shift, start + shift + len(raw)),
                    tag.tag_type,
                    raw,
                    tag.lbw,
                )
            )
            shift += len(raw) - (end - start)
        return self._with_side(change, False, text, tuple(side))

    def _with_side(
        self, change: Change, in_negative: bool, text: str, side: tuple[LoraTag, ...]
    ) -> RuleState:
        if in_negative:
            return self.replace(negative=text, negative_loras=side, changes=(*self.changes, change))
        return self.replace(positive=text, positive_loras=side, changes=(*self.changes, change))

    def warn(self, rule: str, message: str, lora: str | None = None, zh: str = "") -> RuleState:
        """A new state with one more warning (an identical warning is not repeated); ``zh`` is the
        message in Chinese."""
        warning = AdviceWarning(rule=rule, message=message, lora=lora, message_zh=zh)
        if warning in self.warnings:
            return self
        return self.replace(warnings=(*self.warnings, warning))

    def replace(self, **changes: object) -> RuleState:
        """A copy with ``changes`` (like :func:`dataclasses.replace`, several times faster).

        Rules call this a dozen times per prompt; the generic function's checks cost more than
        the advice itself.
        """
        unknown = changes.keys() - _STATE_FIELDS
        if unknown:
            raise TypeError(f"RuleState has no field(s) {sorted(unknown)}; fields: {sorted(_STATE_FIELDS)}")
        new = object.__new__(RuleState)
        for name in _STATE_FIELDS:
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        return new


_STATE_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(RuleState))


def rebase_tags(
    old: str, new: str, tags: tuple[LoraTag, ...], in_negative: bool, limits: PromptLimits | None
) -> tuple[LoraTag, ...]:
    """The LoRA tags of ``new``, an edit of ``old`` whose tags are ``tags`` — as parsing ``new`` gives.

    The edit is located by the common prefix and suffix of the two texts. Tags entirely before it
    keep their spans, tags entirely after it shift by the change in length, and only the edited
    region, widened to the whole tags it touches, is parsed again. When anything could make a
    partial parse differ from a full one — comment lines (``#``), or ``<``/``>`` characters that
    are not the known tags' own — the whole side is parsed instead.
    """
    n = len(tags)
    if "#" in old or "#" in new or not old.count("<") == old.count(">") == n:
        return _parse_side(new, in_negative, limits)
    p = _common_prefix(old, new)
    s = _common_prefix(old[p:][::-1], new[p:][::-1])
    start, end, delta = p, len(old) - s, len(new) - len(old)
    spans = [t.span or (0, 0) for t in tags]
    for a, b in spans:  # tags are in text order and do not overlap: one pass widens enough
        if a < end and b > start:
            start, end = min(start, a), max(end, b)
    before = tuple(t for t, (_a, b) in zip(tags, spans, strict=True) if b <= start)
    after = tuple(_shift(t, delta) for t, (a, _b) in zip(tags, spans, strict=True) if a >= end)
    region = new[start : end + delta]
    middle = (
        tuple(_shift(t, start) for t in _parse_side(region, in_negative, limits)) if "<" in region else ()
    )
    if not new.count("<") == new.count(">") == len(before) + len(middle) + len(after):
        return _parse_side(new, in_negative, limits)
    return (*before, *middle, *after)


def _parse_side(text: str, in_negative: bool, limits: PromptLimits | None) -> tuple[LoraTag, ...]:
    if in_negative:
        return parse("", text, limits=limits).negative_loras
    return parse(text, "", limits=limits).positive_loras


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix (binary search over slice comparisons, which run in C)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _shift(tag: LoraTag, by: int) -> LoraTag:
    if by == 0 or tag.span is None:
        return tag
    # the constructor, not dataclasses.replace(): this runs for every tag of every edit
    return LoraTag(
        tag.name,
        tag.weight,
        tag.unet,
        tag.dyn,
        tag.in_negative,
        (tag.span[0] + by, tag.span[1] + by),
        tag.tag_type,
        tag.raw,
        tag.lbw,
    )


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------


def strength(tag: LoraTag) -> float:
    """How hard a tag pushes: the larger of its text-encoder and UNet |weight|."""
    return max(abs(tag.te_weight), abs(tag.unet_weight))


def adds(tag: LoraTag) -> bool:
    """Whether the tag adds its LoRA's content (a positive text-encoder or UNet weight), so its
    trigger words and declared negative terms are wanted. ``te=0:unet=0.5`` adds; ``-0.3`` does not."""
    return tag.te_weight > 0 or tag.unet_weight > 0


def floor2(value: float) -> float:
    """Round toward zero to 2 decimals (0.5647 → 0.56, -0.5647 → -0.56).

    Rounding toward zero never makes a weight larger, so scaled weights never sum above the cap.
    The 1e-9 nudge keeps binary noise (0.28 stored as 0.27999…) from losing a whole hundredth.
    """
    return math.copysign(math.floor(abs(value) * 100 + 1e-9) / 100, value) + 0.0


def with_weights(tag: LoraTag, weight: float, unet: float | None) -> LoraTag:
    """``tag`` with new weights; ``unet`` collapses to None when it equals ``weight``."""
    if unet is not None and unet == weight and tag.dyn is None:
        unet = None
    return LoraTag(
        tag.name,
        weight + 0.0,
        None if unet is None else unet + 0.0,
        tag.dyn,
        tag.in_negative,
        tag.span,
        tag.tag_type,
        tag.raw,
        tag.lbw,
    )


def show(tag: LoraTag) -> str:
    """A tag as the user sees it in a reason: the canonical ``<lora:name:w>`` text."""
    return tag.render()


def split_triggers(triggers: tuple[str, ...]) -> list[str]:
    """Trigger words one by one ("catgirl, cat ears" is two), spaces tidied, empties dropped."""
    return [" ".join(part.split()) for raw in triggers for part in raw.split(",") if part.strip()]


def fmt(value: float) -> str:
    return format_weight(value)


_KIND_ZH = {"character": "角色", "clothing": "服装", "concept": "概念", "style": "画风", "other": "其他"}


def kind_zh(kind: str) -> str:
    """A LoRA kind in Chinese, for reasons shown to Chinese users."""
    return _KIND_ZH.get(kind, kind)
