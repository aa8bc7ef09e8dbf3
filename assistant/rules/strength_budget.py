"""strength-budget: no single LoRA beyond the per-LoRA limit, and the total within the cap.

Stacked LoRAs add up: each one shifts the same weights, and past a total of about 1.2 images
break ("强度总和别超 1.2,否则模型当场社死"); a single weight above 1 often breaks one on its own.
Both numbers live in ``presets/rules.yaml`` (``strength.per_lora_max``, ``strength.cap``).

1. Clamp: a weight (text encoder or UNet) beyond ±per_lora_max is set to ±per_lora_max.
2. Budget: when the total |weight| of the applied positive-prompt LoRAs exceeds the cap, every one
   is multiplied by cap / total (proportional, so the mix keeps its balance) and rounded TOWARD
   ZERO to 2 decimals ("floor-round"): 0.5647 → 0.56. Rounding down never raises a weight, so
   the new total never exceeds the cap — it may land a hundredth or two below it.
   A LoRA's |weight| is the larger of its text-encoder and UNet weights; negative weights count by
   their size. Tags of LoRAs that are not applied (unknown, wrong base) and negative-prompt tags
   (negative-pass weights) do not count.
3. Warn: a negative weight on a character, clothing or style LoRA does not take the subject or
   the style away — it pushes the image away from what the LoRA learned and usually breaks it.
   Negative weights are for adjuster (concept) LoRAs such as add_detail. The weight is left as
   written (the user may be experimenting), and the warning says what to do instead.

Bad:  ``<lora:catgirl_v1:0.8>, <lora:cyberpunk_style:0.5>, <lora:soft_light:0.4>`` (total 1.7)
Good: ``<lora:catgirl_v1:0.56>, <lora:cyberpunk_style:0.35>, <lora:soft_light:0.28>`` (1.19)
"""

from __future__ import annotations

from ..types import Change, LoraTag
from .state import RuleState, floor2, fmt, kind_zh, show, strength, with_weights

ID = "strength-budget"


#: Kinds a negative weight inverts usefully (adjusters: add_detail at -0.5 removes detail).
NEGATIVE_OK_KINDS = frozenset({"concept", "other"})


def apply(state: RuleState) -> RuleState:
    return _warn_negative(_budget(_clamp(state)))


def _warn_negative(state: RuleState) -> RuleState:
    for tag, info in state.applied_positive():
        weight = min(tag.weight, tag.weight if tag.unet is None else tag.unet)
        if weight >= 0 or info.kind in NEGATIVE_OK_KINDS:
            continue
        message = (
            f"'{info.name}' is a {info.kind} LoRA at a negative weight ({_weights(tag)}): that does not "
            f"remove the {info.kind}, it pushes the image away from what the LoRA learned and usually "
            "breaks it. Negative weights are for adjuster LoRAs (add_detail, add_saturation); to leave "
            f"'{info.name}' out, remove its tag or set it to 0."
        )
        message_zh = (
            f"'{info.name}' 是{kind_zh(info.kind)} LoRA,现在是负权重({_weights(tag)}):这不会去掉它,"
            "而是把画面往反方向推,多半会崩图。负权重只适合调节类 LoRA(add_detail、add_saturation);"
            f"不想要 '{info.name}' 就删掉它的标签或设为 0。"
        )
        state = state.warn(ID, message, info.name, message_zh)
    return state


def _clamp(state: RuleState) -> RuleState:
    limit = state.config.strength.per_lora_max
    for tag, _info in reversed(state.applied_positive()):
        if strength(tag) <= limit + 1e-9:
            continue
        new_tag = with_weights(
            tag, _clip(tag.weight, limit), None if tag.unet is None else _clip(tag.unet, limit)
        )
        old, new = _weights(tag), _weights(new_tag)
        reason = (
            f"A single LoRA beyond ±{fmt(limit)} usually breaks the image; clamped '{tag.name}' from "
            f"{old} to {new} (the per-LoRA limit in presets/rules.yaml)."
        )
        reason_zh = (
            f"单个 LoRA 超过 ±{fmt(limit)} 通常会把图弄坏;已把 '{tag.name}' 从 {old} "
            f"压到 {new}(presets/rules.yaml 里的单个 LoRA 上限)。"
        )
        change = Change(ID, tag.raw or show(tag), show(new_tag), reason, reason_zh)
        state = state.replace_tags(change, [(tag, new_tag)])
    return state


def _budget(state: RuleState) -> RuleState:
    cap = state.config.strength.cap
    applied = [tag for tag, _info in state.applied_positive()]
    total = sum(strength(t) for t in applied)
    if total <= cap + 1e-9:
        return state
    factor = cap / total
    scaled: list[tuple[LoraTag, LoraTag]] = []
    for tag in applied:
        unet = None if tag.unet is None else floor2(tag.unet * factor)
        scaled.append((tag, with_weights(tag, floor2(tag.weight * factor), unet)))
    new_total = sum(strength(new) for _old, new in scaled)
    before = " + ".join(fmt(strength(t)) for t in applied) + f" = {fmt(total)}"
    after = " + ".join(fmt(strength(new)) for _old, new in scaled) + f" = {fmt(new_total)}"
    reason = (
        f"Stacked LoRAs add up; past a total of {fmt(cap)} images break. Scaled every LoRA by "
        f"{cap:g}/{total:g} ≈ {factor:.3f} (keeps the balance of the mix) and rounded down to 2 decimals "
        f"so the total stays at or under {fmt(cap)}: {before} → {after}."
    )
    reason_zh = (
        f"多个 LoRA 的强度会叠加;总和超过 {fmt(cap)} 就容易崩图。每个 LoRA 都乘以 "
        f"{cap:g}/{total:g} ≈ {factor:.3f}(保持原来的配比),再向下取两位小数,"
        f"保证总和不超过 {fmt(cap)}:{before} → {after}。"
    )
    changed = [(old, new) for old, new in scaled if (old.weight, old.unet) != (new.weight, new.unet)]
    return state.replace_tags(Change(ID, before, after, reason, reason_zh), changed)


def _weights(tag: LoraTag) -> str:
    """The tag's signed weight, or ``te/unet`` when they differ (``-1.5``, ``0.8/1.6``)."""
    return fmt(tag.weight) if tag.unet is None else f"{fmt(tag.weight)}/{fmt(tag.unet)}"


def _clip(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))
