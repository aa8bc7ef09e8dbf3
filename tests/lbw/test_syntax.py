"""The ``lbw=`` syntax of sd-webui-lora-block-weight: presets, list lengths, messages, round trips
through the prompt parser, the assistant and the infotext (pure: no torch)."""

from __future__ import annotations

import pytest

from assistant import infotext
from assistant.advisor import advise
from assistant.config import DEFAULT_LORA_DIR
from assistant.errors import PromptError
from assistant.lbw import BLOCKS26, PRESETS, describe, parse_lbw
from assistant.library import Library
from assistant.prompt import parse
from assistant.types import GenerationRequest


def block(ratios: tuple[float, ...], name: str) -> float:
    return ratios[BLOCKS26.index(name)]


def test_presets_are_the_extensions_17_value_lists() -> None:
    outd = parse_lbw("OUTD")
    assert block(outd, "BASE") == 1
    assert [block(outd, b) for b in ("OUT03", "OUT04", "OUT05", "OUT06")] == [1, 1, 1, 1]
    assert [block(outd, b) for b in ("IN01", "M00", "OUT07", "OUT11")] == [0, 0, 0, 0]
    ins = parse_lbw("INS")
    assert [block(ins, b) for b in ("BASE", "IN01", "IN02", "IN04", "IN05")] == [1, 1, 1, 1, 0]
    assert set(PRESETS) >= {"NONE", "ALL", "INS", "IND", "INALL", "MIDD", "OUTD", "OUTS", "OUTALL"}
    # blocks a 17-value list does not name get 0, as the extension's to26 does
    assert [block(parse_lbw("ALL"), b) for b in ("IN00", "IN03", "OUT00", "OUT02")] == [0, 0, 0, 0]


def test_every_list_length_maps_onto_its_blocks() -> None:
    sdxl = parse_lbw("1,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.1,1.2")
    assert [block(sdxl, b) for b in ("BASE", "IN04", "IN08", "M00", "OUT00", "OUT05")] == [
        1,
        0.1,
        0.4,
        0.5,
        0.6,
        1.2,
    ]
    full = parse_lbw(",".join(str(i) for i in range(26)))
    assert full == tuple(float(i) for i in range(26))
    xl_full = parse_lbw(",".join(["1"] * 20))
    assert block(xl_full, "OUT08") == 1
    assert block(xl_full, "OUT09") == 0
    assert len(parse_lbw("1," * 16 + "1")) == 26


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,0,1", "lbw in <t> has 3 values; sd-webui-lora-block-weight reads 12, 17, 20, 26"),
        ("OUTX", "lbw=OUTX in <t> is not a known preset"),
        ("1,R,0,0,0,0,0,0,0,0,0,0", "lbw value 'R' in <t> (the extension's random/inherited value) is not"),
        ("1,a,0,0,0,0,0,0,0,0,0,0", "lbw value 'a' in <t> is not a number"),
        ("1,inf,0,0,0,0,0,0,0,0,0,0", "lbw value 'inf' in <t> is not a finite number"),
        ("", "lbw= is empty in <t>"),
    ],
)
def test_bad_values_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(PromptError) as caught:
        parse_lbw(text, "<t>")
    assert str(caught.value).startswith(message)


def test_the_tag_keeps_its_lbw_through_parse_and_render() -> None:
    prompt = parse("1girl, <lora:cyber:0.8:lbw=OUTD>, city")
    (tag,) = prompt.loras
    assert (tag.name, tag.weight, tag.lbw) == ("cyber", 0.8, "OUTD")
    assert tag.render() == "<lora:cyber:0.8:lbw=OUTD>"
    with pytest.raises(
        PromptError, match=r"lbw=NOPE in <lora:cyber:0.8:lbw=NOPE> \(prompt\) is not a known preset"
    ):
        parse("<lora:cyber:0.8:lbw=NOPE>")
    assert describe(parse_lbw("OUTD")) == (
        "text encoder 1, IN00–IN11 0, M00 0, OUT00–OUT02 0, OUT03–OUT06 1, OUT07–OUT11 0"
    )


def test_the_assistant_plans_and_explains_block_weights() -> None:
    library = Library.scan([DEFAULT_LORA_DIR])
    name = next(i.name for i in library.all() if i.status == "ok" and i.base in ("sd15", "unknown"))
    advice = advise(f"1girl, <lora:{name}:0.7:lbw=OUTD>", library=library)
    (planned,) = [p for p in advice.plan if p.name == name]
    assert planned.lbw == parse_lbw("OUTD")
    assert "lbw=OUTD>" in advice.positive  # the rewritten prompt keeps the tag's block weights
    (said,) = [w for w in advice.warnings if w.rule == "lbw"]
    assert said.message.startswith(f"LoRA '{name}' uses block weights lbw=OUTD (sd-webui-lora-block-weight)")
    assert "OUT03–OUT06 1" in said.message


def test_infotext_round_trip() -> None:
    text = "1girl, <lora:cyber:0.8:lbw=1,0,0,0,0,1,1,1,1,1,1,1>"
    request = GenerationRequest(prompt=text, seed=3, steps=20)
    written = infotext.for_request(request, 3)
    back = infotext.parse(written)
    assert back.prompt == text
    (tag,) = parse(back.prompt).loras
    assert parse_lbw(tag.lbw) == parse_lbw("1,0,0,0,0,1,1,1,1,1,1,1")


def test_blind_box_cells_and_plan_files_keep_block_weights() -> None:
    import dataclasses
    import json

    from assistant import blend
    from assistant.blend import Plan
    from assistant.types import PlannedLora

    cat = PlannedLora("catgirl_v1", "/loras/catgirl_v1.safetensors", 0.7, lbw=parse_lbw("OUTD"))
    cyber = PlannedLora("cyberpunk_style", "/loras/cyberpunk_style.safetensors", 0.5)
    base = GenerationRequest(
        prompt="1girl, <lora:catgirl_v1:0.7:lbw=OUTD>, <lora:cyberpunk_style:0.5>",
        loras=(cat, cyber),
        seed=7,
        width=64,
        height=64,
    )
    plan = blend.blind_box(base, n=3, seed=2)
    for cell in plan.cells:
        (planned,) = [p for p in cell.request.loras if p.name == "catgirl_v1"]
        assert planned.lbw == parse_lbw("OUTD")
        (tag,) = [t for t in parse(cell.request.prompt).loras if t.name == "catgirl_v1"]
        assert parse_lbw(tag.lbw) == parse_lbw("OUTD")  # the cell's text (infotext) says it too
    data = json.loads(json.dumps(plan.to_json()))
    assert Plan.from_json(data) == plan
    bad = json.loads(json.dumps(plan.to_json()))
    bad["cells"][0]["request"]["loras"][0]["lbw"] = [1, 2]
    with pytest.raises(Exception, match="not 26 numbers"):
        Plan.from_json(bad)
    assert dataclasses.asdict(cat)["lbw"] == parse_lbw("OUTD")
