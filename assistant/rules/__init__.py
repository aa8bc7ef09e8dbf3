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

A new rule is one module here (``ID``, a Bad/Good docstring, ``apply``), one golden case in
``tests/cases/<id>_*.yaml`` and one line in :data:`REGISTRY`; tests/rules/test_meta.py checks that
every module is registered and documented, and that the README's rule table lists the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from .config import RulesConfig, default_rules_config, load_rules_config, parse_rules_config
from .state import RuleState

__all__ = [
    "REGISTRY",
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


#: The registry: the rule modules of this package, in the order the advisor runs them.
REGISTRY: tuple[str, ...] = (
    "resolve_names",
    "duplicates",
    "base_model",
    "order",
    "trigger_words",
    "strength_budget",
    "symptom_fixes",
    "negative_tags",
    "negative_text",
    "embedding_base",
    "negative_embedding",
    "clip_skip",
)


def _rule(name: str) -> Rule:
    module = importlib.import_module(f"{__name__}.{name}")
    return Rule(id=module.ID, doc=module.__doc__ or "", apply=module.apply, module=module)


RULES: tuple[Rule, ...] = tuple(_rule(name) for name in REGISTRY)

RULE_IDS: tuple[str, ...] = tuple(r.id for r in RULES)


def get_rule(rule_id: str) -> Rule:
    """The rule with this id; the error lists the valid ids."""
    for rule in RULES:
        if rule.id == rule_id:
            return rule
    raise KeyError(f"unknown rule id {rule_id!r}; valid: {', '.join(RULE_IDS)}")
