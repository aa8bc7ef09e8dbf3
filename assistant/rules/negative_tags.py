"""negative-tags: a ``<lora:x:w>`` tag in the NEGATIVE prompt sets x's weight in the negative pass.

AUTOMATIC1111 ignores LoRA tags in the negative prompt without a word, although guides (and the
source articles) tell users to put ``<lora:catgirl_v1:-0.1>`` there "to pull back side effects".
LoRA Mixer gives the tag a meaning and says so: classifier-free guidance runs the model twice, once
for the positive prompt and once for the negative ("unconditional") prompt, and the image moves
toward the first and away from the second. A tag in the negative prompt sets the LoRA's weight for
the negative pass; the positive pass keeps the positive prompt's weight (0 when the LoRA is only in
the negative prompt). Without such a tag both passes use the positive weight (A1111's behaviour).

The tag is moved out of the negative text into the plan (``PlannedLora.negative_weight``), never
silently dropped and never applied to both passes. Roughly, the LoRA's effect grows by
(CFG − 1) × (positive weight − negative-pass weight): a negative-pass weight BELOW the positive
weight — like the popular ``-0.1`` — strengthens the LoRA, one ABOVE it tames it. The reason says
which, with the numbers. Tags naming an unknown LoRA or one left out (base, broken) stay put.

Bad:  negative ``worst quality, <lora:catgirl_v1:-0.1>`` (A1111: ignored; the user thinks it helps)
Good: negative ``worst quality`` + plan: catgirl_v1 0.8 in the positive pass, -0.1 in the negative
pass, explained
"""

from __future__ import annotations

from ..prompt import remove_tag
from ..types import Change, LoraTag
from .state import RuleState, fmt, show

ID = "negative-tags"


def apply(state: RuleState) -> RuleState:
    moved = dict(state.negative_branch)
    while True:  # one tag at a time: removing a tag shifts the spans after it
        tag = next((t for t in state.negative_loras if state.applied(t) and t.name not in moved), None)
        if tag is None:
            break
        positive = next((t for t in state.positive_loras if t.name == tag.name), None)
        change = Change(ID, tag.raw or show(tag), "", _reason(tag, positive))
        moved[tag.name] = tag
        state = state.edit(change, negative=remove_tag(state.negative, tag))
    return state.replace(negative_branch=moved)


def _reason(tag: LoraTag, positive: LoraTag | None) -> str:
    w = tag.weight
    intro = (
        f"A1111 ignores LoRA tags in the negative prompt. LoRA Mixer runs '{tag.name}' at {fmt(w)} in the "
        "negative (unconditional) pass of classifier-free guidance instead, so the tag moved from the "
        "negative text into the generation plan. "
    )
    if positive is None:
        direction = "away from" if w > 0 else "toward"
        return intro + (
            f"'{tag.name}' is not in the positive prompt, so the positive pass runs without it (weight 0): "
            f"the image is steered {direction} what this LoRA draws."
        )
    p = positive.weight
    both = f"It runs at {fmt(p)} in the positive pass and {fmt(w)} in the negative pass. "
    if w < p:
        return (
            intro
            + both
            + (
                "A lower negative-pass weight makes the LoRA STRONGER "
                f"(about (CFG − 1) × {fmt(p - w)} extra); to tame its side effects use a value a little "
                f"above {fmt(p)} instead, or lower {show(positive)}."
            )
        )
    if w > p:
        return (
            intro
            + both
            + (
                "A higher negative-pass weight tames the LoRA "
                f"(about (CFG − 1) × {fmt(w - p)} weaker), which pulls back its side effects."
            )
        )
    return intro + both + "Equal weights in both passes are what A1111 does anyway."
