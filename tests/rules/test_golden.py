"""Golden cases: each tests/cases/*.yaml runs through advise() and must match exactly."""

from __future__ import annotations

import pytest

from assistant.advisor import advise
from assistant.types import Advice

from .golden import GoldenCase, load_cases
from .library_spec import build_library

CASES = load_cases()


def _run(case: GoldenCase, positive: str | None = None, negative: str | None = None) -> Advice:
    inp = case.input
    return advise(
        inp["positive"] if positive is None else positive,
        inp.get("negative", "") if negative is None else negative,
        library=build_library(case.data.get("library")),
        symptoms=inp.get("symptoms", ()),
        base=case.data.get("base", "sd15"),
        clip_skip=inp.get("clip_skip", 1),
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_case(case: GoldenCase) -> None:
    advice = _run(case)
    expect = case.expect
    assert advice.positive == expect["positive"]
    assert advice.negative == expect["negative"]
    assert [c.rule for c in advice.changes] == expect["changes"], [c.reason for c in advice.changes]
    assert [w.rule for w in advice.warnings] == expect["warnings"], [w.message for w in advice.warnings]
    for text in expect.get("warnings_contain", []):
        assert any(text in w.message for w in advice.warnings), (text, [w.message for w in advice.warnings])
    for text in expect.get("reasons_contain", []):
        assert any(text in c.reason for c in advice.changes), (text, [c.reason for c in advice.changes])
    plan = [
        {
            "name": p.name,
            "weight": p.weight,
            **({"unet": p.unet} if p.unet is not None else {}),
            **({"negative_weight": p.negative_weight} if p.negative_weight is not None else {}),
        }
        for p in advice.plan
    ]
    assert plan == expect["plan"]
    assert advice.original_positive == case.input["positive"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_case_is_idempotent(case: GoldenCase) -> None:
    """Advising the output again (same symptoms) changes nothing."""
    first = _run(case)
    again = _run(case, first.positive, first.negative)
    assert again.changes == ()
    assert (again.positive, again.negative) == (first.positive, first.negative)
    # … and plans the same render (a negative-pass weight must survive the rewritten text)
    assert again.plan == first.plan


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_change_has_a_reason_and_nothing_is_silent(case: GoldenCase) -> None:
    advice = _run(case)
    for change in advice.changes:
        assert change.reason.strip(), change
        assert change.before != change.after, change
    if not advice.changes:
        assert (advice.positive, advice.negative) == (case.input["positive"], case.input.get("negative", ""))
    # every positive tag that is not in the plan is explained by a warning naming it
    from assistant.prompt import parse

    planned = {p.name for p in advice.plan}
    for tag in parse(advice.positive, advice.negative).positive_loras:
        if tag.name not in planned:
            assert any(tag.name in w.message or w.lora == tag.name for w in advice.warnings), tag.name


def test_there_are_enough_golden_cases() -> None:
    assert len(CASES) >= 40
    assert sum(1 for c in CASES if not c.expect["changes"] and not c.expect["warnings"]) >= 3  # no-op cases
