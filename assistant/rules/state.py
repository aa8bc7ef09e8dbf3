"""The value every rule takes and returns, and the small helpers rules share.

A rule is ``apply(state: RuleState) -> RuleState``. The state is frozen: a rule returns a new one
built with :meth:`RuleState.edit` (new text, re-parsed so spans are fresh, plus the
:class:`~assistant.types.Change` that explains it) or :meth:`RuleState.warn`. A rule that changes
nothing returns the state it was given.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..prompt import parse
from ..types import AdviceWarning, Change, LoraInfo, LoraTag, Prompt, format_weight
from .config import RulesConfig

if TYPE_CHECKING:
    from ..library import Library
    from ..prompt import PromptLimits


@dataclass(frozen=True, slots=True)
class RuleState:
    """A prompt on its way through the rules.

    ``infos`` maps a LoRA name as written in the (rewritten) text to what the library knows;
    resolve-names fills it once, so later rules never search the library again.
    ``excluded`` maps a name to the reason it will not be applied (broken file, base mismatch).
    ``negative_branch`` holds tags moved out of the negative prompt by negative-tags (name → tag).
    ``symptoms`` are symptom ids from ``config.symptoms``.
    """

    prompt: Prompt
    library: Library
    config: RulesConfig
    base: str = "sd15"
    symptoms: tuple[str, ...] = ()
    limits: PromptLimits | None = None
    infos: Mapping[str, LoraInfo] = field(default_factory=dict)
    excluded: Mapping[str, str] = field(default_factory=dict)
    negative_branch: Mapping[str, LoraTag] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()
    warnings: tuple[AdviceWarning, ...] = ()

    @property
    def positive(self) -> str:
        return self.prompt.positive

    @property
    def negative(self) -> str:
        return self.prompt.negative

    def info(self, tag: LoraTag) -> LoraInfo | None:
        """What the library knows about ``tag`` (None: unknown name)."""
        return self.infos.get(tag.name)

    def applied(self, tag: LoraTag) -> bool:
        """True when ``tag`` names a known, loadable LoRA for this base model."""
        return tag.name in self.infos and tag.name not in self.excluded

    def applied_positive(self) -> list[tuple[LoraTag, LoraInfo]]:
        """The positive-prompt tags that will be applied, in text order, with their info."""
        return [(t, self.infos[t.name]) for t in self.prompt.positive_loras if self.applied(t)]

    def edit(self, change: Change, *, positive: str | None = None, negative: str | None = None) -> RuleState:
        """A new state with edited text (re-parsed) and ``change`` recorded."""
        new_positive = self.positive if positive is None else positive
        new_negative = self.negative if negative is None else negative
        prompt = parse(new_positive, new_negative, limits=self.limits)
        return dataclasses.replace(self, prompt=prompt, changes=(*self.changes, change))

    def warn(self, rule: str, message: str, lora: str | None = None) -> RuleState:
        """A new state with one more warning (an identical warning is not repeated)."""
        warning = AdviceWarning(rule=rule, message=message, lora=lora)
        if warning in self.warnings:
            return self
        return dataclasses.replace(self, warnings=(*self.warnings, warning))

    def replace(self, **changes: object) -> RuleState:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------


def strength(tag: LoraTag) -> float:
    """How hard a tag pushes: the larger of its text-encoder and UNet |weight|."""
    return max(abs(tag.te_weight), abs(tag.unet_weight))


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
    return dataclasses.replace(tag, weight=weight + 0.0, unet=None if unet is None else unet + 0.0)


def show(tag: LoraTag) -> str:
    """A tag as the user sees it in a reason: the canonical ``<lora:name:w>`` text."""
    return tag.render()


def fmt(value: float) -> str:
    return format_weight(value)
