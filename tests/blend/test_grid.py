"""assistant.grid: layout size, labels really drawn, CJK font, byte-identical saves, manifest."""

from __future__ import annotations

import hashlib
import json

import pytest
from PIL import Image, ImageChops

from assistant import blend, grid, infotext
from assistant.blend import PlanError
from assistant.types import GenerationRequest, GenerationResult, PlannedLora

CAT = PlannedLora("catgirl_v1", "/loras/catgirl_v1.safetensors", 0.7, hash="0123456789ab")
CYBER = PlannedLora("cyberpunk_style", "/loras/cyberpunk_style.safetensors", 0.5)
BASE = GenerationRequest(
    prompt="1girl, 猫耳, <lora:catgirl_v1:0.7>, neon city, <lora:cyberpunk_style:0.5>",
    negative="lowres",
    loras=(CAT, CYBER),
    seed=7,
    width=64,
    height=64,
)


def images_for(plan: blend.Plan, size: int = 96) -> list[Image.Image]:
    return [Image.new("RGB", (size, size), (30 * i % 256, 120, 200)) for i in range(len(plan.cells))]


def results_for(
    plan: blend.Plan, images: list[Image.Image], *, with_infotext: bool = True
) -> list[GenerationResult]:
    out = []
    for cell, image in zip(plan.cells, images, strict=True):
        params = f"Steps: 2, Sampler: Euler, CFG scale: 7, Seed: {cell.request.seed}, Size: 64x64"
        text = f"{cell.request.prompt}\n{params}"
        out.append(
            GenerationResult(
                images=(image,),
                infotexts=(text,) if with_infotext else (),
                seeds=(cell.request.seed,),
                request=cell.request,
            )
        )
    return out


def test_blind_box_grid_size_and_cells_placed() -> None:
    plan = blend.blind_box(BASE, n=8, seed=7)
    images = images_for(plan)
    sheet = grid.compose(plan, images)
    assert sheet.width == 4 * 96
    bare = grid.compose(plan, images, labels=False)
    assert sheet.height > bare.height  # label bands under the cells
    # each image sits at its cell: sample the centre of the last cell in the bare grid
    title_h = bare.height - 2 * 96
    assert bare.getpixel((3 * 96 + 48, title_h + 96 + 48)) == images[7].getpixel((0, 0))
    # tiny images: the sheet keeps a minimum width and centres the cells
    small = grid.compose(plan, images_for(plan, 32), labels=False)
    assert small.width == grid.MIN_SHEET_WIDTH


def test_labels_are_really_drawn() -> None:
    plan = blend.blind_box(BASE, n=4, seed=7)
    images = images_for(plan)
    sheet = grid.compose(plan, images)
    cell_h = 96
    # below the first row of pictures lies its label band: it must hold dark text pixels
    bare_height = grid.compose(plan, images, labels=False).height
    title_h = bare_height - 2 * cell_h if plan.rows == 2 else bare_height - cell_h
    band = sheet.crop((0, title_h + cell_h, 96, title_h + cell_h + 20)).convert("L")
    assert min(band.getdata()) < 100
    # different labels give different pixels in the band
    other = blend.Plan(
        kind=plan.kind,
        cells=tuple(blend.Cell(c.request, "x", c.row, c.col) for c in plan.cells),
        seed=plan.seed,
        title=plan.title,
        meta=plan.meta,
    )
    changed = ImageChops.difference(sheet, grid.compose(other, images)).getbbox()
    assert changed is not None


def test_sweep_has_column_and_row_headers() -> None:
    plan = blend.sweep(BASE, blend.parse_axis("catgirl_v1=0.2,0.6,1.0,1.4"), blend.parse_axis("cfg=5,9"))
    images = images_for(plan)
    sheet = grid.compose(plan, images)
    bare = grid.compose(plan, images, labels=False)
    assert bare.width == 4 * 96
    assert sheet.width > bare.width  # row header column on the left
    assert sheet.height > bare.height  # column header row on top
    header_w = sheet.width - bare.width
    left = sheet.crop((0, sheet.height - 2 * 96, header_w, sheet.height)).convert("L")
    assert min(left.getdata()) < 100  # row headers drawn
    x_only = blend.sweep(BASE, blend.parse_axis("cfg=5,9,11,13"))
    assert grid.compose(x_only, images_for(x_only)).width == 4 * 96  # no row headers


def test_cjk_font_is_found_and_renders() -> None:
    choice = grid.find_font()
    if choice.path is None:
        pytest.skip(f"no CJK font on this machine: {choice.note}")
    assert choice.note is None
    font = grid._font(24, choice.path, choice.index)
    # a CJK glyph differs from the "missing glyph" box: two different characters draw differently
    a = font.getmask("猫")
    b = font.getmask("耳")
    assert a.getbbox() is not None
    assert bytes(a) != bytes(b)


def test_wrap_keeps_labels_together_and_breaks_cjk() -> None:
    choice = grid.find_font()
    font = grid._font(16, choice.path, choice.index)
    lines = grid._wrap("catgirl 0.55 · cyberpunk 0.65", font, grid._width(font, "cyberpunk 0.65") + 2)
    assert lines == ["catgirl 0.55", "cyberpunk 0.65"]
    cjk = grid._wrap("猫耳少女赛博朋克风格霓虹城市", font, 60)
    assert len(cjk) > 1
    assert "".join(cjk) == "猫耳少女赛博朋克风格霓虹城市"
    assert all(grid._width(font, line) <= 60 for line in cjk)


def test_compose_rejects_wrong_image_count() -> None:
    plan = blend.blind_box(BASE, n=4, seed=1)
    with pytest.raises(PlanError, match="4 cells but 3 images"):
        grid.compose(plan, images_for(plan)[:3])


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_save_is_byte_identical_and_complete(tmp_path) -> None:
    plan = blend.blind_box(BASE, n=4, seed=3)
    images = images_for(plan)
    first = grid.save(plan, results_for(plan, images), tmp_path / "one")
    # a plan rebuilt from the same inputs and the same images give the same bytes
    again = blend.blind_box(BASE, n=4, seed=3)
    second = grid.save(again, results_for(again, images_for(again)), tmp_path / "two")
    assert _digest(first.grid_path) == _digest(second.grid_path)
    assert first.manifest_path.read_bytes() == second.manifest_path.read_bytes()
    assert [_digest(p) for p in first.cell_paths] == [_digest(p) for p in second.cell_paths]
    assert len(first.cell_paths) == 4
    # every cell PNG carries its infotext
    for cell, path in zip(plan.cells, first.cell_paths, strict=True):
        info = infotext.read_png(path)
        assert info is not None
        assert info.prompt == cell.request.prompt
        assert info.seed == cell.request.seed
    # the manifest describes the plan and reproduces it
    manifest = json.loads(first.manifest_path.read_text(encoding="utf-8"))
    assert manifest["seed"] == 3
    assert [c["label"] for c in manifest["cells"]] == [c.label for c in plan.cells]
    assert [c["weights"] for c in manifest["cells"]] == [c.weights for c in plan.cells]
    assert blend.Plan.from_json(manifest["plan"]) == plan
    with Image.open(first.grid_path) as saved:
        assert json.loads(saved.text["lora-mixer-plan"])["seed"] == 3
        assert saved.text["parameters"].startswith(plan.cells[0].request.prompt)


def test_save_builds_infotext_when_the_engine_gave_none(tmp_path) -> None:
    plan = blend.ab(BASE, "catgirl_v1", "cyberpunk_style")
    saved = grid.save(plan, results_for(plan, images_for(plan), with_infotext=False), tmp_path)
    info = infotext.read_png(saved.cell_paths[0])
    assert info is not None
    assert info.lora_hashes == {"catgirl_v1": "0123456789ab"}
    assert (info.sampler, info.schedule_type, info.steps) == ("DPM++ 2M", "Karras", 20)


def test_save_rejects_missing_results(tmp_path) -> None:
    plan = blend.ab(BASE, "catgirl_v1", "cyberpunk_style")
    with pytest.raises(PlanError, match="4 cells but 1 results"):
        grid.save(plan, results_for(plan, images_for(plan))[:1], tmp_path)


def test_missing_font_falls_back_with_a_note(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LORA_MIXER_FONT", str(tmp_path / "missing.ttf"))
    grid.find_font.cache_clear()
    try:
        choice = grid.find_font()
        assert choice.path is None
        assert "fonts-noto-cjk" in (choice.note or "")
        plan = blend.ab(BASE, "catgirl_v1", "cyberpunk_style")
        saved = grid.save(plan, results_for(plan, images_for(plan)), tmp_path / "out")
        assert saved.notes
        manifest = json.loads(saved.manifest_path.read_text(encoding="utf-8"))
        assert manifest["notes"] == list(saved.notes)
    finally:
        monkeypatch.delenv("LORA_MIXER_FONT")
        grid.find_font.cache_clear()
