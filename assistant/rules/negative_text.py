"""negative-text: a LoRA's declared negative terms are in the negative prompt.

LoRA authors often ship a recommended negative prompt (A1111 sidecar ``negative text``, the catalog
``negative_text``) — for a cat-girl character that is ``extra cat ears``, the side effect the LoRA
is known for. The missing terms are appended once to the negative prompt (letter case, spaces and
attention syntax ignored when checking), for every applied LoRA with a positive weight.

Bad:  positive ``1girl, <lora:catgirl_v1:0.7>``, negative ``worst quality``
Good: positive unchanged, negative ``worst quality, extra cat ears``
"""

from __future__ import annotations

from ..prompt import append_terms, has_term, split_terms
from ..types import Change
from .state import RuleState, adds

ID = "negative-text"


def apply(state: RuleState) -> RuleState:
    missing: list[str] = []
    owners: dict[str, list[str]] = {}
    for tag, info in state.applied_positive():
        if not adds(tag) or not info.negative_text.strip():
            continue
        for term in split_terms(info.negative_text):
            key = " ".join(term.split()).casefold()
            if not key or has_term(state.negative, term):
                continue
            if key not in owners:
                missing.append(term)
            owners.setdefault(key, []).append(info.name)
    if not missing:
        return state
    names = sorted({n for ns in owners.values() for n in ns})
    reason = (
        f"{', '.join(repr(n) for n in names)} declare{'s' if len(names) == 1 else ''} negative terms for "
        f"their known side effects: added {', '.join(repr(t) for t in missing)} to the negative prompt."
    )
    reason_zh = (
        f"{'、'.join(repr(n) for n in names)} 自带针对已知副作用的负面词:已把 "
        f"{'、'.join(repr(t) for t in missing)} 加进负面提示词。"
    )
    change = Change(ID, "", ", ".join(missing), reason, reason_zh)
    return state.edit(change, negative=append_terms(state.negative, missing))
