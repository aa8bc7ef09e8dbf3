"""symptom-fixes: the user says what went wrong; apply the fix from the troubleshooting table.

Symptoms come as text ("多耳怪", "why is my image black") or as an option id ("extra-ears") and are
recognised by the keywords in ``presets/rules.yaml`` (``symptoms:``), which also holds each fix:

- extra ears / limbs (多耳怪, 多手): weighted negative terms — built from the responsible LoRA's
  trigger (``cat ears`` → ``(extra cat ears:1.5)``) or generic ones — and the character LoRA
  lowered to 0.6. An unweighted ``extra cat ears`` already there is raised to the table's weight.
- all-black image (出图全黑): every LoRA lowered to 0.4, plus the VAE-precision note.
- no effect (不生效): a prompt-specific checklist — unknown names, missing triggers, weak weights.
- style drift (画风突变毕加索): which LoRAs do not match the loaded base model.
- oversaturated: style and saturation LoRAs lowered to 0.4.
- stale cache (缓存见鬼): how LoRA Mixer reloads changed files.

Lowering only ever reduces a weight, and a term at or above its weight is left alone, so advising
the result again with the same symptom changes nothing.

Bad:  ``1girl, cat ears, <lora:catgirl_v1:0.9>`` / negative ``lowres`` — and "多耳怪"
Good: ``1girl, cat ears, <lora:catgirl_v1:0.6>`` / negative ``lowres, (extra cat ears:1.5)``
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..prompt import append_terms, has_term, term_spans
from ..types import Change, LoraTag
from .config import LowerConfig, RulesConfig, SymptomConfig
from .state import RuleState, adds, fmt, kind_zh, show, split_triggers, strength, with_weights

ID = "symptom-fixes"


def resolve_symptoms(config: RulesConfig, symptoms: Sequence[str]) -> tuple[list[str], list[str]]:
    """Map what the user wrote to symptom ids: ``(ids in table order, texts that matched none)``."""
    ids: list[str] = []
    unknown: list[str] = []
    for text in symptoms:
        if not text.strip():
            continue
        found = config.match_symptoms(text)
        if not found:
            unknown.append(text)
        ids.extend(found)
    order = list(config.symptoms)
    return sorted(set(ids), key=order.index), unknown


def apply(state: RuleState) -> RuleState:
    for sid in state.symptoms:
        symptom = state.config.symptoms[sid]
        state = _negative_terms(state, symptom)
        if symptom.lower is not None:
            state = _lower(state, symptom, symptom.lower)
        if symptom.check == "names-and-triggers":
            state = _check_no_effect(state, symptom)
        elif symptom.check == "base":
            state = _check_base(state, symptom)
        if symptom.note is not None:
            state = state.warn(
                ID, f"{symptom.title.en}: {symptom.note.en}", zh=f"{symptom.title.zh}:{symptom.note.zh}"
            )
    return state


# 1. Negative terms ------------------------------------------------------------------------------


def _wanted_terms(state: RuleState, symptom: SymptomConfig) -> list[tuple[str, float]]:
    wanted: list[tuple[str, float]] = []
    spec = symptom.negative_from_triggers
    if spec is not None:
        for tag, info in state.applied_positive():
            if not adds(tag):
                continue
            for word in split_triggers(info.triggers):
                if any(c.casefold() in word.casefold() for c in spec.contains):
                    wanted.append((f"extra {word}", spec.weight))
    if not wanted:
        wanted = [_split_weight(t) for t in symptom.negative_terms]
    unique: dict[str, tuple[str, float]] = {}
    for term, weight in wanted:
        unique.setdefault(term.casefold(), (term, weight))
    return list(unique.values())


def _negative_terms(state: RuleState, symptom: SymptomConfig) -> RuleState:
    for term, weight in _wanted_terms(state, symptom):
        weighted = f"({term}:{fmt(weight)})"
        found = find_term(state.negative, term)
        reason = f"{symptom.title.en} ({symptom.title.zh}): {symptom.cause.en}; fix: {symptom.fix.en}."
        reason_zh = f"{symptom.title.zh}:{symptom.cause.zh};解决:{symptom.fix.zh}。"
        if found is None:
            if has_term(state.negative, term):
                continue  # present in a form we do not rewrite (nested syntax): leave the user's text
            change = Change(
                ID,
                "",
                weighted,
                reason + f" Added {weighted} to the negative prompt.",
                reason_zh + f"已把 {weighted} 加进负面提示词。",
            )
            state = state.edit(change, negative=append_terms(state.negative, [weighted]))
        elif found[2] < weight - 1e-9:
            start, end, old = found
            before = state.negative[start:end]
            change = Change(
                ID,
                before,
                weighted,
                reason + f" Raised '{term}' from {fmt(old)} to {fmt(weight)}.",
                reason_zh + f"把 '{term}' 的权重从 {fmt(old)} 提到 {fmt(weight)}。",
            )
            state = state.edit(change, negative=state.negative[:start] + weighted + state.negative[end:])
    return state


_WEIGHTED = re.compile(r"^\((?P<core>[^()]+):\s*(?P<w>[-+]?\d+(?:\.\d+)?)\)$")


def _split_weight(term: str) -> tuple[str, float]:
    """``(extra ears:1.5)`` → ``("extra ears", 1.5)``; a plain term has weight 1."""
    m = _WEIGHTED.match(term.strip())
    if m:
        return m["core"].strip(), float(m["w"])
    return term.strip(), 1.0


def find_term(text: str, term: str) -> tuple[int, int, float] | None:
    """The (start, end, weight) of the comma-separated segment that is ``term``, or None.

    Understands ``term``, ``(term:1.3)`` and ``(term)``/``((term))`` (×1.1 each), letter case and
    spaces ignored; anything more complex returns None (the caller leaves such text alone).
    """
    key = " ".join(term.split()).casefold()
    for start, end in term_spans(text):
        seg = text[start:end]
        core, weight = _segment_weight(seg.strip())
        if " ".join(core.split()).casefold() == key:
            lead = len(seg) - len(seg.lstrip())
            trail = len(seg) - len(seg.rstrip())
            return start + lead, end - trail, weight
    return None


def _segment_weight(seg: str) -> tuple[str, float]:
    m = _WEIGHTED.match(seg)
    if m:
        return m["core"].strip(), float(m["w"])
    depth = 0
    while seg.startswith("(") and seg.endswith(")"):
        seg, depth = seg[1:-1].strip(), depth + 1
    return seg, round(1.1**depth, 4)


# 2. Lower responsible LoRAs ---------------------------------------------------------------------


def _responsible(tag: LoraTag, kind: str, lower: LowerConfig) -> bool:
    name = tag.name.casefold()
    return kind in lower.kinds or any(w.casefold() in name for w in lower.name_contains)


def _lower(state: RuleState, symptom: SymptomConfig, lower: LowerConfig) -> RuleState:
    for tag, info in reversed(state.applied_positive()):
        if not _responsible(tag, info.kind, lower):
            continue
        new_w = _cap(tag.weight, lower)
        new_u = None if tag.unet is None else _cap(tag.unet, lower)
        if (new_w, new_u) == (tag.weight, tag.unet):
            state = _suggest_negative_pass(state, symptom, lower, tag)
            continue
        new_tag = with_weights(tag, new_w, new_u)
        reason = (
            f"{symptom.title.en} ({symptom.title.zh}): {symptom.cause.en}. Lowered '{tag.name}' "
            f"({info.kind}) from {fmt(strength(tag))} to {fmt(strength(new_tag))}."
        )
        reason_zh = (
            f"{symptom.title.zh}:{symptom.cause.zh}。已把 '{tag.name}'({kind_zh(info.kind)})"
            f"从 {fmt(strength(tag))} 降到 {fmt(strength(new_tag))}。"
        )
        change = Change(ID, tag.raw or show(tag), show(new_tag), reason, reason_zh)
        state = state.replace_tags(change, [(tag, new_tag)])
    return state


def _suggest_negative_pass(
    state: RuleState, symptom: SymptomConfig, lower: LowerConfig, tag: LoraTag
) -> RuleState:
    step = lower.suggest_negative_pass
    if step is None or not adds(tag) or any(t.name == tag.name for t in state.negative_loras):
        return state
    suggestion = with_weights(tag, round(tag.weight + step, 2), None)
    return state.warn(
        ID,
        f"{symptom.title.en}: '{tag.name}' is already at {fmt(tag.weight)} (at most {fmt(lower.to)}). If the "
        f"side effect stays, add {show(suggestion)} to the NEGATIVE prompt: LoRA Mixer then runs the "
        "negative pass of guidance a little stronger than the positive one, which tames the LoRA's leaks.",
        tag.name,
        zh=f"{symptom.title.zh}:'{tag.name}' 已经是 {fmt(tag.weight)}(上限 {fmt(lower.to)})。如果副作用还在,"
        f"把 {show(suggestion)} 加到负面提示词里:"
        "LoRA Mixer 会让引导的负向分支比正向略强一点,压住 LoRA 的溢出。",
    )


def _cap(value: float, lower: LowerConfig) -> float:
    if value > lower.to:
        return lower.to
    if lower.signs == "both" and value < -lower.to:
        return -lower.to
    return value


# 3. Checks that explain rather than edit --------------------------------------------------------


def _check_no_effect(state: RuleState, symptom: SymptomConfig) -> RuleState:
    findings: list[tuple[str, str]] = []  # (English, Chinese)
    unknown = ", ".join(t.name for t in state.positive_loras if state.info(t) is None)
    if unknown:
        findings.append(
            (
                f"not in the library (name typo or letter case?): {unknown}",
                f"库里没有(名字拼错或大小写不对?):{unknown}",
            )
        )
    renamed = ", ".join(c.before for c in state.changes if c.rule == "resolve-names")
    if renamed:
        findings.append((f"names corrected: {renamed}", f"已改正的名字:{renamed}"))
    added = ", ".join(c.after for c in state.changes if c.rule == "trigger-words")
    if added:
        findings.append(
            (f"trigger words were missing and are now added: {added}", f"缺少的触发词已补上:{added}")
        )
    left_out = ", ".join(f"{n} ({why})" for n, why in state.excluded.items())
    if left_out:
        findings.append((f"left out of generation: {left_out}", f"不参与生成:{left_out}"))
    weak = ", ".join(
        f"{t.name} at {fmt(t.weight)}" for t, _i in state.applied_positive() if 0 <= strength(t) < 0.3
    )
    if weak:
        findings.append((f"weights too low to show much: {weak}", f"权重太低,效果不明显:{weak}"))
    if not state.positive_loras:
        findings.append(
            ("the positive prompt has no <lora:…> tag at all", "正面提示词里根本没有 <lora:…> 标签")
        )
    if findings:
        message = f"{symptom.title.en}: " + "; ".join(en for en, _zh in findings) + "."
        message_zh = f"{symptom.title.zh}:" + ";".join(zh for _en, zh in findings) + "。"
    else:
        message = (
            f"{symptom.title.en}: every LoRA name resolves, trigger words are present and weights are "
            "at least 0.3. If nothing changes after you replace a file, see 'stale cache'."
        )
        message_zh = (
            f"{symptom.title.zh}:所有 LoRA 名字都找得到,触发词都在,权重都不低于 0.3。"
            "如果换了文件却没有变化,看看“缓存见鬼”那一条。"
        )
    return state.warn(ID, message, zh=message_zh)


def _check_base(state: RuleState, symptom: SymptomConfig) -> RuleState:
    mismatched = ", ".join(
        f"{name} ({why})" for name, why in state.excluded.items() if why.startswith("made for")
    )
    if mismatched:
        message = f"{symptom.title.en}: {symptom.cause.en}: {mismatched}. {symptom.fix.en}."
        message_zh = f"{symptom.title.zh}:{symptom.cause.zh}:{mismatched}。{symptom.fix.zh}。"
    else:
        styles = ", ".join(
            f"{t.name} at {fmt(t.weight)}" for t, i in state.applied_positive() if i.kind == "style"
        )
        extra = f" If it still drifts, lower the style LoRAs ({styles})." if styles else ""
        extra_zh = f"如果还是跑偏,调低画风 LoRA({styles})。" if styles else ""
        message = (
            f"{symptom.title.en}: every LoRA in the prompt matches the loaded {state.base} model.{extra}"
        )
        message_zh = f"{symptom.title.zh}:提示词里的 LoRA 都和当前加载的 {state.base} 模型匹配。{extra_zh}"
    return state.warn(ID, message, zh=message_zh)
