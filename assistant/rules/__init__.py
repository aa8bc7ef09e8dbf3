"""The assistant's rules, one module each, run in the order of :data:`RULES`.

Every rule module has ``ID`` (stable, used in ``Change.rule``/``AdviceWarning.rule``, golden cases
and the UI), a docstring that explains it with a ``Bad:`` and a ``Good:`` example, and
``apply(state: RuleState) -> RuleState``. Rules are pure: they read the library through
:class:`RuleState` and return new values. Their numbers live in ``presets/rules.yaml``
(:class:`RulesConfig`).

Why this order: names first (every later rule needs to know which LoRA a tag is), duplicates
before anything counts weights, base-model before anything adds triggers for a LoRA that will not
run; order, trigger words (added in the new LoRA order) and the strength budget shape the
positive prompt; symptom fixes adjust
what the general rules left; negative-prompt rules next, so their reasons quote final weights;
the embedding and clip-skip rules only warn, last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from . import (
    base_model,
    clip_skip,
    duplicates,
    embedding_base,
    negative_embedding,
    negative_tags,
    negative_text,
    order,
    resolve_names,
    strength_budget,
    symptom_fixes,
    trigger_words,
)
from .config import RulesConfig, default_rules_config, load_rules_config, parse_rules_config
from .state import RuleState

__all__ = [
    "RULES",
    "RULE_IDS",
    "Rule",
    "RuleState",
    "RulesConfig",
    "default_rules_config",
    "get_rule",
    "load_rules_config",
    "parse_rules_config",
]


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered rule: its id, its explanation (the module docstring) and its function."""

    id: str
    doc: str
    apply: Callable[[RuleState], RuleState]
    module: ModuleType

    @property
    def summary(self) -> str:
        """The first line of the explanation."""
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""


def _rule(module: ModuleType) -> Rule:
    return Rule(id=module.ID, doc=module.__doc__ or "", apply=module.apply, module=module)


#: The registry, in the order the advisor runs it.
RULES: tuple[Rule, ...] = tuple(
    _rule(m)
    for m in (
        resolve_names,
        duplicates,
        base_model,
        order,
        trigger_words,
        strength_budget,
        symptom_fixes,
        negative_tags,
        negative_text,
        embedding_base,
        negative_embedding,
        clip_skip,
    )
)

RULE_IDS: tuple[str, ...] = tuple(r.id for r in RULES)


def get_rule(rule_id: str) -> Rule:
    """The rule with this id; the error lists the valid ids."""
    for rule in RULES:
        if rule.id == rule_id:
            return rule
    raise KeyError(f"unknown rule id {rule_id!r}; valid: {', '.join(RULE_IDS)}")
