"""duplicates: one LoRA, one tag — the first tag wins, later copies are removed.

A1111 applies every tag it finds, so the same LoRA written twice is applied twice (the weights
add up: ``0.8`` and ``0.5`` act like ``1.3``), which over-cooks the image and is almost never
meant — usually a tag pasted twice or left behind while editing. The rule keeps the FIRST tag
(its position and weights) and removes the later ones, each with a reason. Names are compared
after resolve-names, so ``Catgirl_V1`` and an alias count as the same LoRA. The positive and the
negative prompt are checked separately: the same LoRA once in each is not a duplicate (see
negative-tags).

Bad:  ``1girl, <lora:catgirl_v1:0.8>, cat ears, <lora:catgirl_v1:0.5>``
Good: ``1girl, <lora:catgirl_v1:0.8>, cat ears``
"""

from __future__ import annotations

from ..prompt import remove_tag
from ..types import Change, LoraTag
from .state import RuleState, fmt, show

ID = "duplicates"


def apply(state: RuleState) -> RuleState:
    while (pair := _first_duplicate(state)) is not None:
        first, later = pair
        reason = (
            f"'{first.name}' appears twice; A1111 would apply it twice (in effect "
            f"{fmt(first.weight)} + {fmt(later.weight)} = {fmt(first.weight + later.weight)}). "
            f"Kept the first tag {show(first)} and removed the later one."
        )
        reason_zh = (
            f"'{first.name}' 写了两次;A1111 会叠加两次(实际相当于 "
            f"{fmt(first.weight)} + {fmt(later.weight)} = {fmt(first.weight + later.weight)})。"
            f"保留第一个 {show(first)},删掉后面那个。"
        )
        change = Change(ID, later.raw or show(later), "", reason, reason_zh)
        if later.in_negative:
            state = state.edit(change, negative=remove_tag(state.negative, later))
        else:
            state = state.edit(change, positive=remove_tag(state.positive, later))
    return state


def _first_duplicate(state: RuleState) -> tuple[LoraTag, LoraTag] | None:
    for group in (state.positive_loras, state.negative_loras):
        seen: dict[str, LoraTag] = {}
        for tag in group:
            key = tag.name.casefold()
            if key in seen:
                return seen[key], tag
            seen[key] = tag
    return None
