"""The A/B difference map and the sweep effect curve (assistant.analysis), on images built here."""

from __future__ import annotations

import dataclasses

import pytest
from PIL import Image

from assistant import analysis
from assistant.blend import ab, parse_axis, sweep
from assistant.types import GenerationRequest, PlannedLora

CAT = PlannedLora(name="catgirl_v1", path="/l/catgirl_v1.safetensors", weight=0.6)
STYLE = PlannedLora(name="cyberpunk_style", path="/l/cyberpunk_style.safetensors", weight=0.4)
BASE = GenerationRequest(prompt="1girl, <lora:catgirl_v1:0.6>", loras=(CAT,), seed=7, width=64, height=64)


def grey(level: int, size: int = 16) -> Image.Image:
    return Image.new("RGB", (size, size), (level, level, level))


def test_change_is_mean_absolute_difference_in_percent() -> None:
    assert analysis.change(grey(0), grey(0)) == 0.0
    assert analysis.change(grey(0), grey(255)) == pytest.approx(100.0)
    assert analysis.change(grey(100), grey(151)) == pytest.approx(20.0)


def test_colour_map_is_black_where_nothing_changed_and_bright_where_it_did() -> None:
    a = grey(0)
    b = grey(0)
    b.paste(grey(255, 8), (0, 0))
    heat = analysis.colour_map(a, b)
    assert heat.size == a.size
    assert heat.getpixel((12, 12)) == (0, 0, 4)  # unchanged: the ramp's black
    assert sum(heat.getpixel((2, 2))) > 600  # changed by full scale: the ramp's yellow


def test_ab_difference_compares_a_with_b_else_with_none() -> None:
    plan = ab(BASE, "catgirl_v1", None)  # one LoRA: cells a and none
    assert [c.label.split(":")[0] for c in plan.cells] == ["A", "none"]
    diff = analysis.ab_difference(plan, [grey(0), grey(51)])
    assert diff is not None
    assert diff.changed == pytest.approx(20.0)
    assert diff.pixels_changed == 1.0
    assert diff.image.size == (16, 16)
    assert "20.0% mean |A−B|" in diff.describe()
    two = ab(dataclasses.replace(BASE, loras=(CAT, STYLE)), None, None)
    images = [grey(0), grey(10), grey(200), grey(255)]  # a, b, both, none
    assert analysis.ab_difference(two, images).changed == pytest.approx(10 / 255 * 100)  # type: ignore[union-attr]


def _sweep(spec: str) -> object:
    return sweep(BASE, parse_axis(spec))


def test_effect_curve_finds_where_the_change_stops_growing() -> None:
    plan = _sweep("catgirl_v1=0,0.25,0.5,0.75,1")
    # change grows fast to 0.5, then barely: the sweet spot is 0.5
    images = [grey(0), grey(40), grey(80), grey(85), grey(88)]
    curve = analysis.effect_curve(plan, images)  # type: ignore[arg-type]
    assert curve is not None
    assert curve.reference == "cell"
    assert curve.weights == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert curve.sweet_spot == 0.5
    assert curve.verdict == "sweet-spot"
    assert "Sweet spot ≈ 0.5" in curve.describe()


def test_effect_curve_that_keeps_growing_or_stays_flat_says_so() -> None:
    plan = _sweep("catgirl_v1=0,0.5,1")
    growing = analysis.effect_curve(plan, [grey(0), grey(50), grey(100)])  # type: ignore[arg-type]
    assert growing is not None
    assert growing.verdict == "growing"
    assert growing.sweet_spot is None
    assert "keeps growing" in growing.describe()
    flat = analysis.effect_curve(plan, [grey(0), grey(1), grey(2)])  # type: ignore[arg-type]
    assert flat is not None
    assert flat.verdict == "flat"
    assert "No visible effect" in flat.describe()


def test_a_sweep_without_weight_zero_gets_a_reference_render() -> None:
    plan = _sweep("catgirl_v1=0.5,1")
    reference = analysis.reference_request(plan)  # type: ignore[arg-type]
    assert reference is not None
    assert [lora.name for lora in reference.loras] == []  # weight 0 renders like no LoRA
    assert reference.seed == plan.cells[0].request.seed  # type: ignore[attr-defined]
    assert analysis.effect_curve(plan, [grey(50), grey(60)]) is None  # type: ignore[arg-type]
    curve = analysis.effect_curve(plan, [grey(50), grey(60)], reference=grey(0))  # type: ignore[arg-type]
    assert curve is not None
    assert curve.reference == "extra render"
    assert analysis.reference_request(_sweep("catgirl_v1=0,1")) is None  # type: ignore[arg-type]
    assert analysis.reference_request(_sweep("cfg=4,7")) is None  # type: ignore[arg-type]
    assert analysis.effect_curve(_sweep("cfg=4,7"), [grey(0), grey(9)]) is None  # type: ignore[arg-type]
