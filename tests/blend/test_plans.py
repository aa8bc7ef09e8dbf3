"""assistant.blend: blind box properties, A/B variants, sweeps, axis syntax, JSON round trips."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant import blend
from assistant.blend import Axis, Plan, PlanError
from assistant.errors import LoraMixerError, LoraNotFound, PromptError
from assistant.types import GenerationRequest, LoraInfo, PlannedLora

CAT = PlannedLora("catgirl_v1", "/loras/catgirl_v1.safetensors", 0.7, hash="0123456789ab")
CYBER = PlannedLora("cyberpunk_style", "/loras/cyberpunk_style.safetensors", 0.5, hash="ba9876543210")
SOFT = PlannedLora("soft_light", "/loras/soft_light.safetensors", 0.4)
DETAIL = PlannedLora("add_detail", "/loras/add_detail.safetensors", -0.3)


def request(*loras: PlannedLora, prompt: str | None = None, seed: int = 7) -> GenerationRequest:
    if prompt is None:
        prompt = "1girl, cat ears, " + ", ".join(f"<lora:{lora.name}:{lora.weight}>" for lora in loras)
    return GenerationRequest(prompt=prompt, negative="lowres", loras=loras, seed=seed, width=64, height=64)


def weights(cell: blend.Cell) -> list[float]:
    return [lora.weight for lora in cell.request.loras]


# ---- blind box: properties -------------------------------------------------------------------

_center = st.floats(0.1, 0.9).map(lambda x: round(x, 2))
_adjuster = st.floats(-0.8, -0.1).map(lambda x: round(x, 2))


@st.composite
def blind_box_inputs(draw):
    k = draw(st.integers(1, 4))
    centres = [draw(_center) for _ in range(k)]
    loras = [PlannedLora(f"lora_{i}", f"/l/{i}.safetensors", w) for i, w in enumerate(centres)]
    if draw(st.booleans()):
        loras.append(PlannedLora("adjuster", "/l/adj.safetensors", draw(_adjuster)))
    budget = draw(st.floats(1.0, 2.5).map(lambda x: round(x, 2)))
    spread = draw(st.floats(0.1, 0.3).map(lambda x: round(x, 2)))
    n = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31))
    return loras, budget, spread, n, seed


@settings(max_examples=120, deadline=None)
@given(blind_box_inputs())
def test_blind_box_properties(inputs) -> None:
    loras, budget, spread, n, seed = inputs
    base = request(*loras)
    try:
        plan = blend.blind_box(base, n=n, seed=seed, budget=budget, spread=spread)
    except PlanError as exc:  # a too-small space must be reported, never silently shrunk
        message = str(exc)
        plan = None
    if plan is None:
        assert "distinct" in message or "budget" in message
        return
    assert len(plan.cells) == n
    ranges = plan.meta["ranges"]
    keys = set()
    for cell in plan.cells:
        ws = weights(cell)
        assert [lora.name for lora in cell.request.loras] == [lora.name for lora in loras]
        for lora in cell.request.loras:
            low, high = ranges[lora.name]
            assert low - 1e-9 <= lora.weight <= high + 1e-9
            assert abs(lora.weight) <= 1.0 + 1e-9
            assert round(lora.weight, 2) == lora.weight  # 2 decimals
        assert sum(abs(w) for w in ws) <= budget + 1e-9
        assert cell.request.seed == plan.cells[0].request.seed  # one shared image seed
        keys.add(tuple(ws))
    assert len(keys) == n  # no two cells identical
    again = blend.blind_box(base, n=n, seed=seed, budget=budget, spread=spread)
    assert again == plan  # deterministic


def test_two_lora_rule_matches_the_seed_article() -> None:
    """DOMAIN.md: w1 = uniform(0.4, 0.7), w2 = 1 − w1."""
    plan = blend.blind_box(request(CAT, CYBER), n=10, seed=1, ranges={"catgirl_v1": (0.4, 0.7)}, total=1.0)
    for cell in plan.cells:
        w1, w2 = weights(cell)
        assert 0.4 <= w1 <= 0.7
        assert round(w1 + w2, 2) == 1.0


def test_default_total_is_the_planned_sum_capped_by_the_budget() -> None:
    plan = blend.blind_box(request(CAT, CYBER), n=8, seed=3)
    assert plan.meta["total"] == 1.2
    assert {round(sum(weights(c)), 2) for c in plan.cells} == {1.2}
    heavy = request(dataclasses.replace(CAT, weight=0.9), dataclasses.replace(CYBER, weight=0.8))
    capped = blend.blind_box(heavy, n=8, seed=3, budget=1.2)
    assert capped.meta["total"] == 1.2
    assert all(sum(weights(c)) <= 1.2 + 1e-9 for c in capped.cells)


def test_three_loras_use_a_dirichlet_split_within_ranges() -> None:
    plan = blend.blind_box(request(CAT, CYBER, SOFT), n=12, seed=5, budget=1.6, max_cells=16)
    sums = {round(sum(weights(c)), 2) for c in plan.cells}
    assert sums == {1.6}
    spread_seen = [max(ws) - min(ws) for ws in zip(*(weights(c) for c in plan.cells), strict=True)]
    assert all(s > 0 for s in spread_seen)  # every LoRA actually varies


def test_negative_adjuster_varies_independently() -> None:
    plan = blend.blind_box(request(CAT, DETAIL), n=6, seed=2)
    for cell in plan.cells:
        cat, detail = weights(cell)
        assert -0.45 <= detail <= -0.15
        assert cat + abs(detail) <= 1.2 + 1e-9


def test_seed_changes_the_draw_and_plan_seed_is_recorded() -> None:
    a = blend.blind_box(request(CAT, CYBER), n=8, seed=1)
    b = blend.blind_box(request(CAT, CYBER), n=8, seed=2)
    assert [weights(c) for c in a.cells] != [weights(c) for c in b.cells]
    assert a.seed == 1
    assert a.meta["plan_seed"] == 1
    random_plan = blend.blind_box(request(CAT, CYBER), n=2, seed=None)
    assert isinstance(random_plan.seed, int)
    replay = blend.blind_box(request(CAT, CYBER), n=2, seed=random_plan.seed)
    assert replay == random_plan


def test_image_seed_shared_drawn_or_per_cell() -> None:
    fixed = blend.blind_box(request(CAT, CYBER, seed=42), n=4, seed=1)
    assert {c.request.seed for c in fixed.cells} == {42}
    drawn = blend.blind_box(request(CAT, CYBER, seed=-1), n=4, seed=1)
    seeds = {c.request.seed for c in drawn.cells}
    assert len(seeds) == 1
    assert seeds.pop() >= 0
    assert drawn == blend.blind_box(request(CAT, CYBER, seed=-1), n=4, seed=1)
    per_cell = blend.blind_box(request(CAT, CYBER, seed=42), n=4, seed=1, cell_seeds=True)
    assert [c.request.seed for c in per_cell.cells] == [42, 43, 44, 45]
    assert "seed 43" in per_cell.cells[1].label


def test_cell_prompt_tags_and_labels_follow_the_weights() -> None:
    plan = blend.blind_box(request(CAT, CYBER), n=3, seed=9)
    for cell in plan.cells:
        w1, w2 = weights(cell)
        assert f"<lora:catgirl_v1:{blend.format_weight(w1)}>" in cell.request.prompt
        assert f"<lora:cyberpunk_style:{blend.format_weight(w2)}>" in cell.request.prompt
        assert cell.label == f"catgirl {blend.format_weight(w1)} · cyberpunk {blend.format_weight(w2)}"
        assert cell.request.label == cell.label
    assert [(c.row, c.col) for c in plan.cells] == [(0, 0), (0, 1), (0, 2)]


def test_grid_positions_for_eight() -> None:
    plan = blend.blind_box(request(CAT, CYBER), n=8, seed=9)
    assert (plan.rows, plan.cols) == (2, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 17}, "1 to 16 cells"),
        ({"n": 0}, "1 to 16 cells"),
        ({"ranges": {"nope": (0.1, 0.2)}}, "'nope' is not in the prompt"),
        ({"ranges": {"catgirl_v1": (0.8, 0.2)}}, "low ≤ high"),
        ({"ranges": {"catgirl_v1": (0.2, 1.5)}}, "per-LoRA limit"),
        ({"total": 2.0}, "total must be"),
        ({"spread": 0.0, "n": 4}, "distinct"),
        ({"ranges": {"catgirl_v1": (0.6, 0.62)}, "total": 1.0, "n": 5}, "distinct"),
        ({"ranges": {"catgirl_v1": (0.1, 0.2), "cyberpunk_style": (0.1, 0.2)}, "total": 1.0}, "cannot sum"),
    ],
)
def test_blind_box_rejects_bad_inputs(kwargs, message) -> None:
    with pytest.raises(PlanError, match=message):
        blend.blind_box(request(CAT, CYBER), **{"seed": 1, **kwargs})


def test_blind_box_needs_loras() -> None:
    with pytest.raises(PromptError, match="has none"):
        blend.blind_box(request(), n=4)
    assert issubclass(PlanError, LoraMixerError)


# ---- prompt variation ----------------------------------------------------------------------


def test_prompt_variation_is_seeded_and_labelled(tmp_path) -> None:
    (tmp_path / "hair.txt").write_text("red hair\nblue hair\ngreen hair\n", encoding="utf-8")
    base = request(CAT, CYBER, prompt="1girl, {smile|frown}, __hair__, <lora:catgirl_v1:0.7>")
    one = blend.blind_box(base, n=6, seed=4, wildcards_dir=str(tmp_path))
    two = blend.blind_box(base, n=6, seed=4, wildcards_dir=str(tmp_path))
    assert one == two
    prompts = [c.request.prompt for c in one.cells]
    assert all("__hair__" not in p and "{" not in p for p in prompts)
    assert all(any(h in p for h in ("red hair", "blue hair", "green hair")) for p in prompts)
    assert len(set(prompts)) > 1
    assert all("\n" in c.label for c in one.cells)  # weights line + varied words
    assert all("<lora:cyberpunk_style:" in p for p in prompts)  # missing tag appended
    other = blend.blind_box(base, n=6, seed=5, wildcards_dir=str(tmp_path))
    assert [c.request.prompt for c in other.cells] != prompts


def test_unknown_wildcard_and_bad_syntax_are_errors(tmp_path) -> None:
    with pytest.raises(PlanError, match="__nothing__"):
        blend.blind_box(request(CAT, prompt="a __nothing__"), n=2, seed=1, wildcards_dir=str(tmp_path))
    with pytest.raises(PlanError, match="variation syntax"):
        blend.blind_box(request(CAT, prompt="a {b|c"), n=2, seed=1, vary_prompt=True)
    with pytest.raises(PlanError, match="does not exist"):
        blend.blind_box(request(CAT), n=2, seed=1, wildcards_dir=str(tmp_path / "missing"))


# ---- retagging -------------------------------------------------------------------------------


def test_retag_rewrites_removes_and_appends() -> None:
    text = "1girl, <lora:catgirl_v1:0.7>, neon, <lora:Cyberpunk_Style:0.5>, <lora:other:1>"
    cat = dataclasses.replace(CAT, weight=0.55)
    out = blend.retag_prompt(text, ["catgirl_v1", "cyberpunk_style"], [cat])
    assert out == "1girl, <lora:catgirl_v1:0.55>, neon, <lora:other:1>"
    out = blend.retag_prompt("1girl, neon", ["catgirl_v1"], [cat])
    assert out == "1girl, neon, <lora:catgirl_v1:0.55>"
    out = blend.retag_prompt("<lora:catgirl_v1:0.7>, 1girl", ["catgirl_v1"], [])
    assert out == "1girl"
    split = dataclasses.replace(CAT, weight=0.8, unet=0.4)
    assert blend.retag_prompt("<lyco:catgirl_v1:1>", [], [split]) == "<lyco:catgirl_v1:0.8:0.4>"


def test_short_names_avoid_collisions() -> None:
    assert blend.short_names(["catgirl_v1", "cyberpunk_style"]) == {
        "catgirl_v1": "catgirl",
        "cyberpunk_style": "cyberpunk",
    }
    assert blend.short_names(["add_detail", "jk_uniform", "soft_light"]) == {
        "add_detail": "add_detail",
        "jk_uniform": "jk_uniform",
        "soft_light": "soft",
    }
    assert blend.short_names(["catgirl_v1", "catgirl_v2"]) == {
        "catgirl_v1": "catgirl_v1",
        "catgirl_v2": "catgirl_v2",
    }


# ---- A/B -------------------------------------------------------------------------------------


class FakeLibrary:
    def __init__(self, *infos: LoraInfo) -> None:
        self.infos = {i.name: i for i in infos}

    def resolve(self, name: str) -> LoraInfo:
        if name not in self.infos:
            raise LoraNotFound(name, [n for n in self.infos if n[:3] == name[:3]])
        return self.infos[name]


def test_ab_four_variants_same_seed() -> None:
    base = request(CAT, CYBER, SOFT)
    plan = blend.ab(base, "catgirl_v1", "cyberpunk_style")
    assert [c.label.split(":")[0] for c in plan.cells] == ["A", "B", "A+B", "none"]
    names = [[lora.name for lora in c.request.loras] for c in plan.cells]
    assert names == [
        ["catgirl_v1", "soft_light"],
        ["cyberpunk_style", "soft_light"],
        ["catgirl_v1", "cyberpunk_style", "soft_light"],
        ["soft_light"],
    ]
    assert {c.request.seed for c in plan.cells} == {7}
    assert "<lora:cyberpunk_style" not in plan.cells[0].request.prompt
    assert "<lora:soft_light:0.4>" in plan.cells[3].request.prompt
    assert [(c.row, c.col) for c in plan.cells] == [(0, 0), (0, 1), (0, 2), (0, 3)]


def test_ab_subset_and_defaults() -> None:
    plan = blend.ab(request(CAT, CYBER), None, None, variants=("both", "none"))
    assert [c.label.split(":")[0] for c in plan.cells] == ["A+B", "none"]
    single = blend.ab(request(CAT), None, None)
    assert [c.label.split(":")[0] for c in single.cells] == ["A", "none"]


def test_ab_version_swap_through_the_library() -> None:
    v2 = LoraInfo(name="catgirl_v2", path="/loras/catgirl_v2.safetensors", preferred_weight=0.9)
    plan = blend.ab(
        request(CAT, CYBER), "catgirl_v1", "catgirl_v2", variants=("a", "b"), library=FakeLibrary(v2)
    )
    a, b = plan.cells
    assert [lo.name for lo in a.request.loras] == ["catgirl_v1", "cyberpunk_style"]
    assert [lo.name for lo in b.request.loras] == ["catgirl_v2", "cyberpunk_style"]  # same position
    assert b.request.loras[0].weight == 0.7  # the swapped version keeps the weight
    assert b.request.loras[0].hash == ""  # filled by library.with_hashes before a render
    assert "<lora:catgirl_v2:0.7>" in b.request.prompt
    assert "catgirl_v1" not in b.request.prompt
    assert plan.meta["version_swap"] is True
    assert "catgirl_v1 0.7" in a.label
    assert "catgirl_v2 0.7" in b.label


def test_ab_errors() -> None:
    with pytest.raises(LoraNotFound, match="catgirl_v3"):
        blend.ab(request(CAT, CYBER), "catgirl_v1", "catgirl_v3")
    with pytest.raises(LoraNotFound, match="catgirl_v3"):
        blend.ab(request(CAT, CYBER), "catgirl_v1", "catgirl_v3", library=FakeLibrary())
    with pytest.raises(PlanError, match="same LoRA"):
        blend.ab(request(CAT, CYBER), "catgirl_v1", "CATGIRL_V1")
    with pytest.raises(PlanError, match="variants"):
        blend.ab(request(CAT, CYBER), "catgirl_v1", "cyberpunk_style", variants=("a", "c"))
    with pytest.raises(PlanError, match="needs two LoRAs"):
        blend.ab(request(), None, None)


# ---- axes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "target", "values"),
    [
        ("catgirl_v1=0.2..1.0x5", "lora", "catgirl_v1", (0.2, 0.4, 0.6, 0.8, 1.0)),
        ("catgirl_v1=0.2,0.4,0.6", "lora", "catgirl_v1", (0.2, 0.4, 0.6)),
        ("catgirl_v1: 0.2, 0.5, 0.8", "lora", "catgirl_v1", (0.2, 0.5, 0.8)),
        ("seed=1,2,3", "seed", None, (1, 2, 3)),
        ("cfg=5..9x3", "cfg", None, (5.0, 7.0, 9.0)),
        ("CFG Scale: 4, 7", "cfg", None, (4.0, 7.0)),
        ("steps=10,20", "steps", None, (10, 20)),
        ("steps=1-5", "steps", None, (1, 2, 3, 4, 5)),
        ("steps=1-5 (+2)", "steps", None, (1, 3, 5)),
        ("seed=10-1 (-3)", "seed", None, (10, 7, 4, 1)),
        ("x=0.2-1.0 [5]", "lora", "x", (0.2, 0.4, 0.6, 0.8, 1.0)),
        ("x=-0.5-0.5 [3]", "lora", "x", (-0.5, 0.0, 0.5)),
        ("x=0.2..1.0 (+0.2)", "lora", "x", (0.2, 0.4, 0.6, 0.8, 1.0)),
        ("x=0.1, 0.5-0.7 (+0.1)", "lora", "x", (0.1, 0.5, 0.6, 0.7)),
        ("sampler=Euler a,DDIM", "sampler", None, ("Euler a", "DDIM")),
        ("scheduler=Karras, Exponential", "scheduler", None, ("Karras", "Exponential")),
        ("lora:seed=0.1,0.2", "lora", "seed", (0.1, 0.2)),
    ],
)
def test_parse_axis(spec, kind, target, values) -> None:
    axis = blend.parse_axis(spec)
    assert (axis.kind, axis.target, axis.values) == (kind, target, values)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "an axis looks like"),
        ("nothing", "needs a name and values"),
        ("=1,2", "no name"),
        ("x=", "empty"),
        ("x=1,,2", "empty"),
        ("x=a,b", "not a number or a range"),
        ("x=0.2..1.0", "how many values"),
        ("steps=1.5", "whole numbers"),
        ("steps=0,10", "outside 1..150"),
        ("cfg=0", "CFG scale"),
        ("x=1,1", "repeats 1"),
        ("x=9", "outside ±2"),
        ("steps=1-100 (+1)", "more than 16"),
        ("x=1-0 (+0.5)", "never gets"),
        ("x=0..1x40", "40 values"),
        ("catgirl_v1=nan,0.5", "nan is not a finite number"),
        ("seed=nan", "nan is not a finite number"),
        ("steps=inf", "inf is not a finite number"),
        ("cfg=-inf,7", "-inf is not a finite number"),
    ],
)
def test_parse_axis_errors(spec, message) -> None:
    with pytest.raises(PlanError, match=message):
        blend.parse_axis(spec)


# ---- sweeps ----------------------------------------------------------------------------------


def test_sweep_xy_layout_and_values() -> None:
    x = blend.parse_axis("catgirl_v1=0.2..1.0x5")
    y = blend.parse_axis("cfg=5,7,9")
    plan = blend.sweep(request(CAT, CYBER), x, y)
    assert (plan.rows, plan.cols) == (3, 5)
    cell = next(c for c in plan.cells if c.row == 2 and c.col == 1)
    assert cell.request.cfg == 9.0
    assert cell.weights == {"catgirl_v1": 0.4, "cyberpunk_style": 0.5}
    assert "<lora:catgirl_v1:0.4>" in cell.request.prompt
    assert cell.label == "catgirl_v1: 0.4 · CFG Scale: 9"
    assert {c.request.seed for c in plan.cells} == {7}
    assert plan.x_axis == x
    assert plan.y_axis == y


def test_sweep_samplers_seeds_steps() -> None:
    base = dataclasses.replace(request(CAT), sampler="DPM++ 2M", scheduler="Karras")
    plan = blend.sweep(base, blend.parse_axis("sampler=Euler a,DPM++ 2M SDE Exponential"))
    assert [(c.request.sampler, c.request.scheduler) for c in plan.cells] == [
        ("Euler a", "Karras"),
        ("DPM++ 2M SDE Exponential", None),
    ]
    plan = blend.sweep(request(CAT), blend.parse_axis("seed=1,2"), blend.parse_axis("steps=2,4"))
    assert [(c.request.seed, c.request.steps) for c in plan.cells] == [(1, 2), (2, 2), (1, 4), (2, 4)]
    plan = blend.sweep(
        dataclasses.replace(base, sampler="DPM++ 2M Karras", scheduler=None),
        None,
        blend.parse_axis("scheduler=Exponential"),
    )
    assert (plan.cells[0].request.sampler, plan.cells[0].request.scheduler) == ("DPM++ 2M", "Exponential")


def test_sweep_random_seed_is_fixed_once() -> None:
    plan = blend.sweep(request(CAT, seed=-1), blend.parse_axis("cfg=5,7"), seed=3)
    seeds = {c.request.seed for c in plan.cells}
    assert len(seeds) == 1
    assert seeds.pop() >= 0
    assert plan == blend.sweep(request(CAT, seed=-1), blend.parse_axis("cfg=5,7"), seed=3)


def test_sweep_errors_and_library_lookup() -> None:
    with pytest.raises(PlanError, match="not in the prompt"):
        blend.sweep(request(CAT), blend.parse_axis("catgirl_v2=0.2,0.4"))
    with pytest.raises(PlanError, match="both axes"):
        blend.sweep(request(CAT), blend.parse_axis("cfg=1,2"), blend.parse_axis("cfg=3,4"))
    with pytest.raises(PlanError, match="at least one axis"):
        blend.sweep(request(CAT), None)
    with pytest.raises(PlanError, match="at most 4"):
        blend.sweep(request(CAT), blend.parse_axis("cfg=1,2,3"), blend.parse_axis("seed=1,2"), max_cells=4)
    v2 = LoraInfo(name="catgirl_v2", path="/loras/catgirl_v2.safetensors")
    plan = blend.sweep(request(CAT), blend.parse_axis("catgirl_v2=0.2,0.4"), library=FakeLibrary(v2))
    assert [c.weights for c in plan.cells] == [
        {"catgirl_v1": 0.7, "catgirl_v2": 0.2},
        {"catgirl_v1": 0.7, "catgirl_v2": 0.4},
    ]
    # a case-insensitive axis name is matched to the planned LoRA
    plan = blend.sweep(request(CAT), blend.parse_axis("CatGirl_V1=0.3"))
    assert plan.x_axis is not None
    assert plan.x_axis.target == "catgirl_v1"


# ---- JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["blindbox", "ab", "sweep"])
def test_plan_json_round_trip(kind) -> None:
    base = request(CAT, CYBER)
    plan = {
        "blindbox": lambda: blend.blind_box(base, n=4, seed=2),
        "ab": lambda: blend.ab(base, "catgirl_v1", "cyberpunk_style"),
        "sweep": lambda: blend.sweep(
            base, blend.parse_axis("cfg=5,7"), blend.parse_axis("catgirl_v1=0.2,0.4")
        ),
    }[kind]()
    data = json.loads(json.dumps(plan.to_json()))
    assert Plan.from_json(data) == plan
    with pytest.raises(PlanError, match="not a LoRA Mixer plan"):
        Plan.from_json({"cells": []})
    broken = dict(data)
    del broken["cells"]
    with pytest.raises(PlanError, match="malformed"):
        Plan.from_json(broken)


def test_describe_lists_every_cell_with_its_seed() -> None:
    plan = blend.blind_box(request(CAT, CYBER), n=3, seed=2)
    text = plan.describe()
    assert plan.title in text
    assert text.count("(seed 7)") == 3
    for cell in plan.cells:
        assert cell.request.prompt in text


def test_axis_validation() -> None:
    with pytest.raises(PlanError, match="needs the LoRA's name"):
        Axis(kind="lora", values=(0.1,))
    with pytest.raises(PlanError, match="unknown"):
        Axis(kind="colour", values=(1,))  # type: ignore[arg-type]
    axis = Axis(kind="cfg", values=(7.0,))
    assert axis.header(7.0) == "CFG Scale: 7"


# ---- one range grammar -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.4..0.7", (0.4, 0.7, "")),
        ("0.2..1.0x5", (0.2, 1.0, "x5")),
        ("0.2 to 1.0", (0.2, 1.0, "")),
        ("0.2\uff5e0.6x3", (0.2, 0.6, "x3")),
        ("-0.5..-0.2", (-0.5, -0.2, "")),
        ("0.3 - 0.6", (0.3, 0.6, "")),
        ("abc", None),
        ("0.4", None),
    ],
)
def test_one_range_grammar(text: str, expected: tuple[float, float, str] | None) -> None:
    """Recipes' ``range:``, the CLI's ``--range``, ``/sweep`` and sweep axes read ranges with
    limits.split_range (four regexes before, each accepting other separators)."""
    from assistant import limits
    from assistant.commands.blindbox import _range
    from assistant.presets import parse_range

    assert limits.split_range(text) == expected
    if expected is not None and not expected[2]:
        assert parse_range(text) == expected[:2]
        assert _range(f"x={text}") == ("x", expected[:2])


def test_a_weight_axis_from_numbers_is_the_parsed_axis() -> None:
    """``/sweep`` and the default sweep build their axis from numbers (no text round trip)."""
    built = blend.weight_axis("catgirl_v1", [0.2, 0.6, 1.0])
    parsed = blend.parse_axis("catgirl_v1=0.2..1.0x3")
    assert (built.kind, built.target, built.values) == (parsed.kind, parsed.target, parsed.values)
    assert built == blend.parse_axis(built.spec)
    with pytest.raises(PlanError, match="outside"):
        blend.weight_axis("catgirl_v1", [0.2, 9.0])


def test_retag_is_the_prompt_modules_rewriter_with_its_tidying() -> None:
    """blend had its own tag regex and comma tidying; cells are now retagged by prompt.retag."""
    from assistant import prompt

    assert blend.retag_prompt is prompt.retag
    # a tag that already says the weight is kept as written (render's rule), dyn is kept
    assert prompt.retag("<lora:catgirl_v1:0.70>, 1girl", [], [CAT]) == "<lora:catgirl_v1:0.70>, 1girl"
    assert prompt.retag("<lora:catgirl_v1:1:1:8>", [], [CAT]) == "<lora:catgirl_v1:0.7:0.7:8>"
    # an unreadable tag of another LoRA is left alone; a comment line stays last
    text = "1girl, <lora:broken:abc>, <lora:catgirl_v1:0.2>\n# notes"
    assert prompt.retag(text, [], [CAT]) == "1girl, <lora:broken:abc>, <lora:catgirl_v1:0.7>\n# notes"
    assert prompt.retag("1girl,\n# notes", [], [CAT]) == "1girl, <lora:catgirl_v1:0.7>\n# notes"
    # a LoRA tagged twice keeps its first tag; removal tidies like render
    twice = "a, <lora:catgirl_v1:0.2>, (b:1.1), <lora:CATGIRL_V1:0.3>, c"
    assert prompt.retag(twice, [], [CAT]) == "a, <lora:catgirl_v1:0.7>, (b:1.1), c"
