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

from ..prompt import append_terms, has_term
from ..types import Change, LoraTag
from .config import LowerConfig, RulesConfig, SymptomConfig
from .state import RuleState, fmt, show, split_triggers, strength, with_weights

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
            state = state.warn(ID, f"{symptom.title.en}: {symptom.note.en}")
    return state


# 1. Negative terms ------------------------------------------------------------------------------


def _wanted_terms(state: RuleState, symptom: SymptomConfig) -> list[tuple[str, float]]:
    wanted: list[tuple[str, float]] = []
    spec = symptom.negative_from_triggers
    if spec is not None:
        for tag, info in state.applied_positive():
            if tag.weight <= 0:
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
        if found is None:
            if has_term(state.negative, term):
                continue  # present in a form we do not rewrite (nested syntax): leave the user's text
            change = Change(ID, "", weighted, reason + f" Added {weighted} to the negative prompt.")
            state = state.edit(change, negative=append_terms(state.negative, [weighted]))
        elif found[2] < weight - 1e-9:
            start, end, old = found
            before = state.negative[start:end]
            change = Change(
                ID, before, weighted, reason + f" Raised '{term}' from {fmt(old)} to {fmt(weight)}."
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
    for start, end in _segments(text):
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


def _segments(text: str) -> list[tuple[int, int]]:
    """Spans of the top-level comma-separated parts (commas inside (), [] or <> do not split)."""
    spans: list[tuple[int, int]] = []
    depth, start, i = 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "([<":
            depth += 1
        elif ch in ")]>":
            depth = max(0, depth - 1)
        elif ch in ",\n" and depth == 0:
            spans.append((start, i))
            start = i + 1
        i += 1
    spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


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
        state = state.replace_tags(Change(ID, tag.raw or show(tag), show(new_tag), reason), [(tag, new_tag)])
    return state


def _suggest_negative_pass(
    state: RuleState, symptom: SymptomConfig, lower: LowerConfig, tag: LoraTag
) -> RuleState:
    step = lower.suggest_negative_pass
    if step is None or tag.weight <= 0 or any(t.name == tag.name for t in state.negative_loras):
        return state
    suggestion = with_weights(tag, round(tag.weight + step, 2), None)
    return state.warn(
        ID,
        f"{symptom.title.en}: '{tag.name}' is already at {fmt(tag.weight)} (at most {fmt(lower.to)}). If the "
        f"side effect stays, add {show(suggestion)} to the NEGATIVE prompt: LoRA Mixer then runs the "
        "negative pass of guidance a little stronger than the positive one, which tames the LoRA's leaks.",
        tag.name,
    )


def _cap(value: float, lower: LowerConfig) -> float:
    if value > lower.to:
        return lower.to
    if lower.signs == "both" and value < -lower.to:
        return -lower.to
    return value


# 3. Checks that explain rather than edit --------------------------------------------------------


def _check_no_effect(state: RuleState, symptom: SymptomConfig) -> RuleState:
    findings: list[str] = []
    unknown = [t.name for t in state.positive_loras if state.info(t) is None]
    if unknown:
        findings.append(f"not in the library (name typo or letter case?): {', '.join(unknown)}")
    renamed = [c.before for c in state.changes if c.rule == "resolve-names"]
    if renamed:
        findings.append(f"names corrected: {', '.join(renamed)}")
    added = [c.after for c in state.changes if c.rule == "trigger-words"]
    if added:
        findings.append(f"trigger words were missing and are now added: {', '.join(added)}")
    left_out = [f"{n} ({why})" for n, why in state.excluded.items()]
    if left_out:
        findings.append(f"left out of generation: {', '.join(left_out)}")
    weak = [f"{t.name} at {fmt(t.weight)}" for t, _i in state.applied_positive() if 0 <= strength(t) < 0.3]
    if weak:
        findings.append(f"weights too low to show much: {', '.join(weak)}")
    if not state.positive_loras:
        findings.append("the positive prompt has no <lora:…> tag at all")
    if findings:
        message = f"{symptom.title.en}: " + "; ".join(findings) + "."
    else:
        message = (
            f"{symptom.title.en}: every LoRA name resolves, trigger words are present and weights are "
            "at least 0.3. If nothing changes after you replace a file, see 'stale cache'."
        )
    return state.warn(ID, message)


def _check_base(state: RuleState, symptom: SymptomConfig) -> RuleState:
    mismatched = [f"{name} ({why})" for name, why in state.excluded.items() if why.startswith("made for")]
    if mismatched:
        message = f"{symptom.title.en}: {symptom.cause.en}: {', '.join(mismatched)}. {symptom.fix.en}."
    else:
        styles = [f"{t.name} at {fmt(t.weight)}" for t, i in state.applied_positive() if i.kind == "style"]
        extra = f" If it still drifts, lower the style LoRAs ({', '.join(styles)})." if styles else ""
        message = (
            f"{symptom.title.en}: every LoRA in the prompt matches the loaded {state.base} model.{extra}"
        )
    return state.warn(ID, message)
