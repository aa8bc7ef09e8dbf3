"""Properties of advise() over generated prompts (hypothesis).

After advise: the applied positive LoRAs' total |weight| is within the cap; every trigger word of
every applied LoRA is in the prompt exactly once; LoRA tags are in kind order; advising the output
again changes nothing.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.advisor import advise
from assistant.prompt import parse, split_terms
from assistant.rules import default_rules_config
from assistant.types import format_weight

from .library_spec import DEMO, DEMO_LIBRARY

CONFIG = default_rules_config()
BY_NAME = {i.name: i for i in DEMO}
FILLER = [
    "1girl",
    "solo",
    "masterpiece",
    "(best quality:1.2)",
    "night city",
    "smile",
    "猫耳",
    "樱花",
    "catgirl",
    "cat ears",
    "Cat Ears",
    "neon lights",
    "JK uniform",
    "soft lighting",
    "[lineart]",
]
NAMES = [*BY_NAME, "CatGirl_V1", "anime_outline", "catgirl", "unknown_lora", "catgrl_v1"]
SYMPTOMS = sorted(CONFIG.symptoms)

weights = st.integers(min_value=-200, max_value=200).map(lambda n: n / 100)


@st.composite
def prompts(draw: st.DrawFn) -> tuple[str, str, list[str], str]:
    terms = draw(st.lists(st.sampled_from(FILLER), unique_by=lambda t: t.casefold(), max_size=6))
    tags = [
        f"<lora:{name}:{format_weight(w)}>"
        for name, w in draw(st.lists(st.tuples(st.sampled_from(NAMES), weights), max_size=5))
    ]
    parts = draw(st.permutations(terms + tags))
    # users separate terms with commas, line breaks and the full-width/ideographic commas alike
    glue = draw(st.lists(st.sampled_from([", ", ", ", "\n", ",\n", "，", "、"]), min_size=6, max_size=6))
    negative_tags = [
        f"<lora:{name}:{format_weight(w)}>"
        for name, w in draw(st.lists(st.tuples(st.sampled_from(NAMES), weights), max_size=2))
    ]
    negative = ", ".join(
        draw(st.sampled_from(["", "lowres", "extra cat ears\nblurry"])).split(", ") + negative_tags
    )
    symptoms = draw(st.lists(st.sampled_from(SYMPTOMS), max_size=2, unique=True))
    base = draw(st.sampled_from(["sd15", "sd15", "sdxl"]))
    positive = "".join(part + glue[i % len(glue)] for i, part in enumerate(parts))
    return positive.rstrip(", \n，、"), negative.strip(", "), symptoms, base


def _strength(weight: float, unet: float | None) -> float:
    return max(abs(weight), abs(weight if unet is None else unet))


COMMON = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@COMMON
@given(prompts())
def test_total_positive_weight_within_cap(case: tuple[str, str, list[str], str]) -> None:
    positive, negative, symptoms, base = case
    advice = advise(positive, negative, library=DEMO_LIBRARY, symptoms=symptoms, base=base)
    total = sum(_strength(p.weight, p.unet) for p in advice.plan)
    assert total <= CONFIG.strength.cap + 1e-9
    assert all(_strength(p.weight, p.unet) <= CONFIG.strength.per_lora_max + 1e-9 for p in advice.plan)


@COMMON
@given(prompts())
def test_every_trigger_present_exactly_once(case: tuple[str, str, list[str], str]) -> None:
    positive, negative, symptoms, base = case
    advice = advise(positive, negative, library=DEMO_LIBRARY, symptoms=symptoms, base=base)
    terms = [" ".join(t.split()).casefold() for t in split_terms(advice.positive)]
    for planned in advice.plan:
        if planned.weight <= 0:
            continue
        for trigger in BY_NAME[planned.name].triggers:
            assert terms.count(trigger.casefold()) == 1, (trigger, advice.positive)


@COMMON
@given(prompts())
def test_lora_tags_are_in_kind_order(case: tuple[str, str, list[str], str]) -> None:
    positive, negative, symptoms, base = case
    advice = advise(positive, negative, library=DEMO_LIBRARY, symptoms=symptoms, base=base)
    ranks = []
    for tag in parse(advice.positive, advice.negative).positive_loras:
        info = DEMO_LIBRARY.get(tag.name)
        ranks.append(CONFIG.order_rank(info.kind if info is not None else "other"))
    assert ranks == sorted(ranks)


@COMMON
@given(prompts())
def test_advise_is_idempotent(case: tuple[str, str, list[str], str]) -> None:
    positive, negative, symptoms, base = case
    first = advise(positive, negative, library=DEMO_LIBRARY, symptoms=symptoms, base=base)
    again = advise(first.positive, first.negative, library=DEMO_LIBRARY, symptoms=symptoms, base=base)
    assert again.changes == (), [c.reason for c in again.changes]
    assert (again.positive, again.negative) == (first.positive, first.negative)
    # … and plans the same render (a negative-pass weight must survive the rewritten text)
    assert again.plan == first.plan


@COMMON
@given(prompts())
def test_no_tag_is_silently_dropped(case: tuple[str, str, list[str], str]) -> None:
    """Every LoRA tag of the input is in the output, in the plan, or named by a change/warning."""
    positive, negative, symptoms, base = case
    advice = advise(positive, negative, library=DEMO_LIBRARY, symptoms=symptoms, base=base)
    out_names = {t.name.casefold() for t in parse(advice.positive, advice.negative).loras}
    planned = {p.name.casefold() for p in advice.plan}
    said = " ".join([*(c.before for c in advice.changes), *(w.message for w in advice.warnings)]).casefold()
    for tag in parse(positive, negative).loras:
        key = tag.name.casefold()
        info = DEMO_LIBRARY.get(tag.name)
        real = info.name.casefold() if info is not None else key
        assert real in out_names or real in planned or key in said, tag.name


@COMMON
@given(prompts())
def test_incremental_spans_equal_a_full_parse(case: tuple[str, str, list[str], str]) -> None:
    """RuleState.edit re-parses only the edited region; the result must equal parsing it all."""
    from assistant.advisor import run_rules

    positive, negative, symptoms, base = case
    state = run_rules(positive, negative, library=DEMO_LIBRARY, symptoms=symptoms, base=base)
    assert state.loras == parse(state.positive, state.negative).loras
