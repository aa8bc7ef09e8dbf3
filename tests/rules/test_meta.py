"""Every registered rule is documented (id, Bad/Good docstring) and covered by golden cases."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from assistant.rules import REGISTRY, RULE_IDS, RULES, get_rule
from assistant.rules.state import RuleState

from .golden import load_cases

ID_RE = re.compile(r"^[a-z]+(-[a-z]+)*$")
ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "assistant" / "rules"


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_has_id_and_bad_good_docstring(rule) -> None:
    assert ID_RE.match(rule.id), rule.id
    assert rule.doc.startswith(f"{rule.id}:"), "the docstring starts with the rule id"
    assert "\nBad:" in rule.doc
    assert "\nGood:" in rule.doc
    assert rule.doc.index("Bad:") < rule.doc.index("Good:")


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_has_the_common_signature(rule) -> None:
    sig = inspect.signature(rule.apply)
    assert list(sig.parameters) == ["state"]
    assert sig.return_annotation in ("RuleState", RuleState)


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_has_golden_cases(rule) -> None:
    cases = load_cases()
    changing = [c.id for c in cases if rule.id in c.expect["changes"]]
    warning = [c.id for c in cases if rule.id in c.expect["warnings"]]
    assert changing or warning, f"no golden case exercises {rule.id}"
    named = [c.id for c in cases if c.id.startswith(rule.id.replace("-", "_") + "_")]
    assert named, f"add a tests/cases/{rule.id.replace('-', '_')}_*.yaml case"


def test_ids_are_unique_and_registry_order_is_stable() -> None:
    assert len(set(RULE_IDS)) == len(RULE_IDS)
    assert RULE_IDS[0] == "resolve-names"
    assert RULE_IDS.index("duplicates") < RULE_IDS.index("trigger-words")
    assert RULE_IDS.index("strength-budget") < RULE_IDS.index("negative-tags")


def test_get_rule_names_valid_ids() -> None:
    assert get_rule("order").id == "order"
    with pytest.raises(KeyError, match="valid: resolve-names"):
        get_rule("nope")


def test_change_and_warning_ids_in_cases_are_known() -> None:
    known = {*RULE_IDS, "plan", "prompt"}
    for case in load_cases():
        assert set(case.expect["changes"]) <= set(RULE_IDS), case.id
        assert set(case.expect["warnings"]) <= known, case.id


def test_every_rule_module_is_registered() -> None:
    """A rule file without its registry line would never run: every module of assistant/rules
    (but the shared config and state) is in REGISTRY, and its ID is its file name."""
    modules = sorted(p.stem for p in RULES_DIR.glob("*.py") if p.stem not in ("__init__", "config", "state"))
    assert sorted(REGISTRY) == modules
    assert [r.id.replace("-", "_") for r in RULES] == list(REGISTRY)


def test_readme_rule_table_lists_the_registry_in_order() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What the assistant changes, and why", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| ([a-z]+(?:-[a-z]+)*) \|", section, re.MULTILINE)
    assert listed[0] == "rule"  # the header
    assert tuple(listed[1:]) == RULE_IDS


def test_warning_only_rules_come_last() -> None:
    assert RULE_IDS[-3:] == ("embedding-base", "negative-embedding", "clip-skip")
