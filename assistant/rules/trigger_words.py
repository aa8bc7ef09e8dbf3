"""trigger-words: each LoRA's trigger words are in the prompt, once, near the start.

Many LoRAs only show their effect when the prompt contains the words they were trained with
(A1111's "activation text", kohya's tag frequency, Civitai's trained words). Missing ones are
inserted once, after the leading quality/subject terms; the check ignores letter case, extra
spaces and attention syntax, so ``(Cat Ears:1.2)`` already counts as ``cat ears``. Only LoRAs that
are applied with a positive weight get triggers (a disabled, negative-weight, unknown or
wrong-base LoRA does not). When two LoRAs in the prompt declare the same trigger, the word is added
once and the clash is reported: the word then feeds both LoRAs (e.g. two versions of one character).

Bad:  ``1girl, <lora:jk_uniform:0.6>``
Good: ``1girl, JK uniform, <lora:jk_uniform:0.6>``
"""

from __future__ import annotations

from ..prompt import has_term, insert_terms
from ..types import Change
from .state import RuleState, adds, split_triggers

ID = "trigger-words"


def apply(state: RuleState) -> RuleState:
    owners: dict[str, list[str]] = {}  # casefolded trigger -> LoRA names declaring it
    missing: list[str] = []
    missing_keys: set[str] = set()
    needed_by: dict[str, str] = {}
    seen_loras: set[str] = set()
    for tag, info in state.applied_positive():
        if not adds(tag) or info.name in seen_loras:
            continue
        seen_loras.add(info.name)
        for word in split_triggers(info.triggers):
            key = word.casefold()
            if not key:
                continue
            owners.setdefault(key, []).append(info.name)
            if key not in missing_keys and not has_term(state.positive, word):
                missing.append(word)
                missing_keys.add(key)
                needed_by[word] = info.name
    shared: dict[tuple[str, ...], list[str]] = {}  # LoRA names -> the triggers they share
    for key, names in owners.items():
        if len(names) > 1:
            shared.setdefault(tuple(names), []).append(key)
    for names, words in shared.items():
        state = state.warn(
            ID,
            f"LoRAs {', '.join(repr(n) for n in names)} share the trigger(s) "
            f"{', '.join(repr(w) for w in words)}: the words feed all of them (two versions of one "
            "character usually fight; keep one).",
            names[0],
            zh=f"LoRA {'、'.join(repr(n) for n in names)} 共用触发词 {'、'.join(repr(w) for w in words)}:"
            "这些词会同时激活它们(同一角色的两个版本通常会互相打架,留一个就好)。",
        )
    if not missing:
        return state
    by_lora: dict[str, list[str]] = {}
    for word in missing:
        by_lora.setdefault(needed_by[word], []).append(word)
    detail = "; ".join(
        f"'{name}' needs {', '.join(repr(w) for w in words)}" for name, words in by_lora.items()
    )
    reason = (
        f"Trigger words were missing, so the LoRA would barely show: {detail}. Added once, near the start."
    )
    detail_zh = ";".join(
        f"'{name}' 需要 {'、'.join(repr(w) for w in words)}" for name, words in by_lora.items()
    )
    reason_zh = f"缺少触发词,LoRA 几乎不会生效:{detail_zh}。已在开头附近各补一次。"
    change = Change(ID, "", ", ".join(missing), reason, reason_zh)
    return state.edit(change, positive=insert_terms(state.positive, missing))
