"""order: LoRA tags go character → clothing/concept → style → other, stable within a kind.

Experienced users write the character LoRA first and the style LoRA last ("角色 LoRA 放最前,画风
LoRA 放最后"): prompts read in that order, recipes and infotexts compare cleanly, and tools that
truncate or weight by position (long prompts, BREAK chunks) keep the subject. The ranks live in
``presets/rules.yaml`` (``order:``); LoRAs of one rank keep the user's order, unknown names count
as "other". Tags swap places only: the text between them is not touched.

Bad:  ``1girl, <lora:cyberpunk_style:0.3>, <lora:catgirl_v1:0.5>``
Good: ``1girl, <lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.3>``
"""

from __future__ import annotations

from ..types import Change, LoraTag
from .state import RuleState, kind_zh, show

ID = "order"


def apply(state: RuleState) -> RuleState:
    tags = list(state.positive_loras)
    ranked = sorted(tags, key=lambda t: _rank(state, t))  # sorted() is stable
    if ranked == tags:
        return state
    kinds = ", ".join(f"{t.name} ({_kind(state, t)})" for t in ranked)
    reason = f"Character LoRAs first, clothing/concept next, style last: {kinds}."
    kinds_zh = "、".join(f"{t.name}({kind_zh(_kind(state, t))})" for t in ranked)
    reason_zh = f"角色 LoRA 放最前,服装/概念其次,画风放最后:{kinds_zh}。"
    change = Change(
        ID,
        " ".join(t.raw or show(t) for t in tags),
        " ".join(t.raw or show(t) for t in ranked),
        reason,
        reason_zh,
    )
    return state.reorder(change, ranked)


def _kind(state: RuleState, tag: LoraTag) -> str:
    info = state.info(tag)
    return info.kind if info is not None else "other"


def _rank(state: RuleState, tag: LoraTag) -> int:
    return state.config.order_rank(_kind(state, tag))
