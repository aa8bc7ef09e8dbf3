"""negative-tags: a ``<lora:x:w>`` tag in the NEGATIVE prompt sets x's weight in the negative pass.

AUTOMATIC1111 ignores LoRA tags in the negative prompt without a word, although guides (and the
source articles) tell users to put ``<lora:catgirl_v1:-0.1>`` there "to pull back side effects".
LoRA Mixer gives the tag a meaning and says so: classifier-free guidance runs the model twice, once
for the positive prompt and once for the negative ("unconditional") prompt, and the image moves
toward the first and away from the second. A tag in the negative prompt sets the LoRA's weight for
the negative pass; the positive pass keeps the positive prompt's weight (0 when the LoRA is only in
the negative prompt). Without such a tag both passes use the positive weight (A1111's behaviour).

The tag stays where the user wrote it — so the rewritten negative prompt, the PNG infotext and a
second run of the assistant over its own output all keep it — and becomes the plan's
``PlannedLora.negative_weight``; the engine strips every tag from the text the encoder reads. It
is never silently dropped and never applied to both passes. The rule edits no text, so it
explains itself with a note (an :class:`~assistant.types.AdviceWarning` with this rule's id), given
every time the tag is there: it is how LoRA Mixer differs from A1111. Roughly, the LoRA's effect grows by
(CFG − 1) × (positive weight − negative-pass weight): a negative-pass weight BELOW the positive
weight — like the popular ``-0.1`` — strengthens the LoRA, one ABOVE it tames it. The reason says
which, with the numbers. Tags naming an unknown LoRA or one left out (base, broken) stay put.

Bad:  negative ``worst quality, <lora:catgirl_v1:-0.1>`` (A1111: ignored; the user thinks it helps)
Good: the same negative prompt, plan: catgirl_v1 0.8 in the positive pass and -0.1 in the negative
pass, and a note that says so and that -0.1 makes the LoRA stronger
"""

from __future__ import annotations

from ..types import LoraTag
from .state import RuleState, fmt, show

ID = "negative-tags"


def apply(state: RuleState) -> RuleState:
    branch = dict(state.negative_branch)
    for tag in state.negative_loras:
        if not state.applied(tag) or tag.name in branch:
            continue
        positive = next((t for t in state.positive_loras if t.name == tag.name), None)
        branch[tag.name] = tag
        state = state.warn(ID, _reason(tag, positive), lora=tag.name, zh=_reason_zh(tag, positive))
    return state.replace(negative_branch=branch) if branch else state


def _reason(tag: LoraTag, positive: LoraTag | None) -> str:
    w = tag.weight
    intro = (
        f"{show(tag)} is in the negative prompt, where A1111 ignores LoRA tags. LoRA Mixer runs "
        f"'{tag.name}' at {fmt(w)} in the negative (unconditional) pass of classifier-free guidance "
        "instead (the tag stays in the negative prompt, so a re-run and the infotext keep it). "
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


def _reason_zh(tag: LoraTag, positive: LoraTag | None) -> str:
    w = tag.weight
    intro = (
        f"{show(tag)} 写在负面提示词里,A1111 会悄悄忽略它。LoRA Mixer 让 '{tag.name}' 在无分类器引导的"
        f"负向(无条件)分支里以 {fmt(w)} 生效(标签留在负面提示词里,重跑和图片信息都会保留它)。"
    )
    if positive is None:
        direction = "远离" if w > 0 else "靠近"
        return intro + (
            f"正面提示词里没有 '{tag.name}',所以正向分支不加载它(权重 0):"
            f"画面会{direction}这个 LoRA 画的东西。"
        )
    p = positive.weight
    both = f"正向分支 {fmt(p)},负向分支 {fmt(w)}。"
    if w < p:
        return (
            intro
            + both
            + (
                f"负向权重比正向低,LoRA 反而更强(大约多出 (CFG − 1) × {fmt(p - w)});想压副作用,"
                f"应该用略高于 {fmt(p)} 的值,或者调低 {show(positive)}。"
            )
        )
    if w > p:
        return (
            intro + both + f"负向权重比正向高,会削弱 LoRA(大约弱 (CFG − 1) × {fmt(w - p)}),从而压住副作用。"
        )
    return intro + both + "两个分支权重相同,和 A1111 的效果一样。"
