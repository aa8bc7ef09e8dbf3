"""Labelled grid images for blind boxes, A/B strips and X/Y sweeps (Pillow only, no torch).

:func:`compose` draws the cells of a :class:`~assistant.blend.Plan` on a white sheet in the
AUTOMATIC1111 X/Y/Z-plot look: a title block (prompt, plan title with its seeds), column headers
on top and row headers on the left for sweeps, and a label under each cell for blind boxes and
A/B strips. :func:`save` writes the grid, every cell as its own PNG with its A1111 infotext, and a
``manifest.json`` of the plan. Nothing time-dependent goes into any file, so the same plan and
the same images give byte-identical files.

Labels are often Chinese or Japanese, so the font is a CJK one when the system has it (Noto Sans
CJK from the ``fonts-noto-cjk`` package, found at known paths or through ``fc-match``; the
``LORA_MIXER_FONT`` environment variable names another file). Without one, Pillow's built-in
font is used and :func:`font_note` says that CJK text may not render.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import infotext
from .blend import Plan, PlanError, retag_prompt
from .types import GenerationRequest, GenerationResult

if TYPE_CHECKING:  # pragma: no cover - typing only
    from PIL import Image as PILImage
    from PIL import ImageFont

__all__ = ["FontChoice", "SavedPlan", "compose", "find_font", "font_note", "save"]

#: Where CJK fonts live on common systems (Debian/Ubuntu fonts-noto-cjk first).
FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)

BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
SUBTLE = (90, 90, 90)
MAX_TITLE_LINES = 3
#: Narrowest grid sheet: tiny demo images (64 px) would squeeze the title into a column.
MIN_SHEET_WIDTH = 320


@dataclass(frozen=True)
class FontChoice:
    """The font file (``None``: Pillow's built-in font), its face index and a note for the user."""

    path: str | None
    index: int = 0
    note: str | None = None


@dataclass(frozen=True)
class SavedPlan:
    """Where :func:`save` wrote a plan: the grid, each cell's PNG and the manifest."""

    grid_path: Path
    cell_paths: tuple[Path, ...]
    manifest_path: Path
    notes: tuple[str, ...] = ()
    #: the A/B difference map or the sweep's effect chart (``analysis.png``), when there is one
    extra_paths: tuple[Path, ...] = ()
    #: what :mod:`assistant.analysis` measured (JSON-ready), and its sentence for a reply
    analysis: dict[str, Any] | None = None
    summary: str = ""


# ----------------------------------------------------------------------------------------------
# Fonts
# ----------------------------------------------------------------------------------------------


def _sc_face_index(path: str) -> int:
    """The Simplified-Chinese face of a Noto CJK collection (its glyph shapes suit 中文 best)."""
    from PIL import ImageFont

    if not path.lower().endswith(".ttc"):
        return 0
    for index in range(10):
        try:
            font = ImageFont.truetype(path, 12, index=index)
        except OSError:
            break
        family = " ".join(font.getname())
        if " SC" in family or "SC " in family:
            return index
    return 0


def _fc_match() -> str | None:
    if shutil.which("fc-match") is None:
        return None
    try:
        out = subprocess.run(
            ["fc-match", "-f", "%{file}\n%{lang}", "sans-serif:lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) < 2 or "zh-cn" not in lines[1].split("|"):
        return None
    return lines[0] if Path(lines[0]).is_file() else None


@functools.cache
def find_font() -> FontChoice:
    """The label font: ``LORA_MIXER_FONT``, a known CJK font path, ``fc-match``, else built-in."""
    override = os.environ.get("LORA_MIXER_FONT")
    if override:
        if Path(override).is_file():
            return FontChoice(override, _sc_face_index(override))
        return _builtin(f"LORA_MIXER_FONT={override} is not a file; ")
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return FontChoice(candidate, _sc_face_index(candidate))
    found = _fc_match()
    if found:
        return FontChoice(found, _sc_face_index(found))
    return _builtin("")


def _builtin(prefix: str) -> FontChoice:
    return FontChoice(
        None,
        0,
        prefix + "no CJK font found (install fonts-noto-cjk or set LORA_MIXER_FONT to a .ttf/.ttc/.otf); "
        "grid labels use Pillow's built-in font and Chinese/Japanese text may show as boxes",
    )


def font_note() -> str | None:
    """A sentence for the user when grids cannot render CJK text, else None."""
    return find_font().note


@functools.cache
def _font(size: int, path: str | None, index: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    if path is not None:
        try:
            return ImageFont.truetype(path, size, index=index)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


# ----------------------------------------------------------------------------------------------
# Text layout
# ----------------------------------------------------------------------------------------------


def _width(font: Any, text: str) -> float:
    return float(font.getlength(text)) if hasattr(font, "getlength") else float(len(text) * 6)


def _wrap(text: str, font: Any, max_width: float) -> list[str]:
    """Lines of ``text`` no wider than ``max_width``.

    Breaks first between `` · `` separated parts (so ``catgirl 0.55`` stays together), then at
    spaces, then between characters (CJK text, or a word wider than the line).
    """
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for part in _parts(paragraph):
            candidate = current + part
            if _width(font, candidate.rstrip(" ·")) <= max_width:
                current = candidate
                continue
            if current.strip(" ·"):
                lines.append(current.rstrip(" ·"))
            current = ""
            for token in _tokens(part):
                candidate = current + token
                if _width(font, candidate.rstrip(" ·")) <= max_width:
                    current = candidate
                    continue
                if current.strip(" ·"):
                    lines.append(current.rstrip(" ·"))
                current = token.lstrip()
                while len(current) > 1 and _width(font, current.rstrip()) > max_width:
                    cut = len(current) - 1
                    while cut > 1 and _width(font, current[:cut]) > max_width:
                        cut -= 1
                    lines.append(current[:cut].rstrip())
                    current = current[cut:].lstrip()
        lines.append(current.rstrip(" ·"))
    return [line for line in lines if line] or [""]


def _parts(paragraph: str) -> list[str]:
    pieces = paragraph.split(" · ")
    return [piece + " · " for piece in pieces[:-1]] + [pieces[-1]]


def _tokens(paragraph: str) -> list[str]:
    """Words with their trailing space; every CJK character is its own token."""
    tokens: list[str] = []
    current = ""
    for char in paragraph:
        if _is_wide(char):
            if current:
                tokens.append(current)
            tokens.append(char)
            current = ""
        elif char == " ":
            current += char
            tokens.append(current)
            current = ""
        else:
            current += char
    if current:
        tokens.append(current)
    return tokens


def _is_wide(char: str) -> bool:
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF
        or 0xAC00 <= code <= 0xD7AF
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF
        or 0x20000 <= code <= 0x2FFFF
    )


def _clip_lines(lines: list[str], font: Any, max_width: float, max_lines: int) -> list[str]:
    if len(lines) <= max_lines:
        return lines
    kept = lines[:max_lines]
    last = kept[-1]
    while last and _width(font, last + "…") > max_width:
        last = last[:-1]
    kept[-1] = last + "…"
    return kept


@dataclass(frozen=True)
class _Block:
    lines: tuple[str, ...]
    line_height: int

    @property
    def height(self) -> int:
        return len(self.lines) * self.line_height


def _draw_block(draw: Any, block: _Block, font: Any, box: tuple[int, int, int, int], fill: Any) -> None:
    """Draw lines centred horizontally and vertically in ``box`` (left, top, right, bottom)."""
    left, top, right, bottom = box
    y = top + (bottom - top - block.height) // 2
    for line in block.lines:
        x = left + (right - left - _width(font, line)) / 2
        draw.text((round(x), y), line, font=font, fill=fill)
        y += block.line_height


# ----------------------------------------------------------------------------------------------
# Grid
# ----------------------------------------------------------------------------------------------


def _font_size(width: int, height: int) -> int:
    """A1111 uses (width + height) // 25 for grid headers; kept readable on tiny demo images."""
    return max(12, min(40, (width + height) // 25))


def _title_prompt(plan: Plan) -> str:
    """The prompt for the title: the blind box template, else cell 1's, LoRA tags left out
    (the labels and headers show the LoRAs and their weights)."""
    template = plan.meta.get("template")
    text = template if isinstance(template, str) else plan.cells[0].request.prompt
    return retag_prompt(text, [lora.name for cell in plan.cells for lora in cell.request.loras], [])


def compose(
    plan: Plan,
    images: Sequence[PILImage.Image],
    *,
    labels: bool = True,
    column_notes: Sequence[str] = (),
    extra: tuple[PILImage.Image, str] | None = None,
) -> PILImage.Image:
    """The labelled grid of ``plan`` with ``images[i]`` in cell i.

    ``labels=False`` leaves out the per-cell labels and axis headers (the title stays).
    ``column_notes`` adds a line under each sweep column header (the effect curve); ``extra`` is
    one more panel with its label after the first row (the A/B difference map).
    """
    from PIL import Image, ImageDraw

    if len(images) != len(plan.cells):
        raise PlanError(f"the plan has {len(plan.cells)} cells but {len(images)} images were given")
    if not images:
        raise PlanError("the plan has no cells to draw")
    cell_w = max(image.width for image in images)
    cell_h = max(image.height for image in images)
    rows, cols = plan.rows, plan.cols + (1 if extra is not None else 0)
    choice = find_font()
    size = _font_size(cell_w, cell_h)
    font = _font(size, choice.path, choice.index)
    small = _font(max(11, size * 3 // 4), choice.path, choice.index)
    line_h = round(size * 1.25)
    small_h = round(max(11, size * 3 // 4) * 1.25)
    pad = max(4, size // 3)

    sweep = plan.kind == "sweep"
    col_headers = sweep and labels and plan.x_axis is not None
    row_headers = sweep and labels and plan.y_axis is not None
    cell_labels = labels and not sweep

    # Row header column width: the widest header, between 3/4 of a cell (A1111) and one cell.
    row_blocks: list[_Block] = []
    header_w = 0
    if row_headers and plan.y_axis is not None:
        texts = [plan.y_axis.header(v) for v in plan.y_axis.values]
        widest = max(_width(font, t) for t in texts) + 2 * pad
        header_w = int(min(max(widest, cell_w * 3 // 4), max(cell_w, 2 * pad + size * 4)))
        row_blocks = [_Block(tuple(_wrap(t, font, header_w - 2 * pad)), line_h) for t in texts]

    col_blocks: list[_Block] = []
    header_h = 0
    if col_headers and plan.x_axis is not None:
        notes = list(column_notes) + [""] * len(plan.x_axis.values)
        col_blocks = [
            _Block(
                tuple(
                    _wrap(plan.x_axis.header(v), font, cell_w - 2 * pad)
                    + (_wrap(notes[i], font, cell_w - 2 * pad) if notes[i] else [])
                ),
                line_h,
            )
            for i, v in enumerate(plan.x_axis.values)
        ]
        header_h = max(b.height for b in col_blocks) + 2 * pad

    label_blocks: list[_Block] = []
    label_h = 0
    if cell_labels:
        texts = [cell.label for cell in plan.cells] + ([extra[1]] if extra is not None else [])
        label_blocks = [_Block(tuple(_wrap(text, small, cell_w - 2 * pad)), small_h) for text in texts]
        label_h = max(b.height for b in label_blocks) + 2 * pad

    grid_w = header_w + cols * cell_w
    sheet_w = max(grid_w, MIN_SHEET_WIDTH)  # room for the title next to tiny demo images
    x0 = (sheet_w - grid_w) // 2
    prompt_lines = _clip_lines(
        _wrap(_title_prompt(plan), small, sheet_w - 2 * pad), small, sheet_w - 2 * pad, MAX_TITLE_LINES
    )
    title_lines = _wrap(plan.title, font, sheet_w - 2 * pad)
    title_block = _Block(tuple(title_lines), line_h)
    prompt_block = _Block(tuple(prompt_lines), small_h)
    title_h = title_block.height + prompt_block.height + 3 * pad

    row_h = cell_h + label_h
    sheet = Image.new("RGB", (sheet_w, title_h + header_h + rows * row_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    _draw_block(draw, title_block, font, (pad, pad, sheet_w - pad, pad + title_block.height), TEXT)
    top = 2 * pad + title_block.height
    _draw_block(draw, prompt_block, small, (pad, top, sheet_w - pad, top + prompt_block.height), SUBTLE)

    origin_y = title_h + header_h
    for col, block in enumerate(col_blocks):
        left = x0 + header_w + col * cell_w
        _draw_block(draw, block, font, (left, title_h, left + cell_w, title_h + header_h), TEXT)
    for row, block in enumerate(row_blocks):
        top = origin_y + row * row_h
        _draw_block(draw, block, font, (x0, top, x0 + header_w, top + cell_h), TEXT)
    for index, (cell, image) in enumerate(zip(plan.cells, images, strict=True)):
        left = x0 + header_w + cell.col * cell_w
        top = origin_y + cell.row * row_h
        picture = image if image.mode == "RGB" else image.convert("RGB")
        sheet.paste(picture, (left + (cell_w - picture.width) // 2, top + (cell_h - picture.height) // 2))
        if cell_labels:
            box = (left, top + cell_h, left + cell_w, top + cell_h + label_h)
            _draw_block(draw, label_blocks[index], small, box, TEXT)
    if extra is not None:
        panel = extra[0] if extra[0].mode == "RGB" else extra[0].convert("RGB")
        left = x0 + header_w + plan.cols * cell_w
        top = origin_y
        sheet.paste(panel, (left + (cell_w - panel.width) // 2, top + (cell_h - panel.height) // 2))
        if cell_labels:
            box = (left, top + cell_h, left + cell_w, top + cell_h + label_h)
            _draw_block(draw, label_blocks[-1], small, box, TEXT)
    return sheet


def effect_chart(curve: Any, width: int = 320, height: int = 200) -> PILImage.Image:
    """A small line chart of an effect curve: change from weight 0 against weight, sweet spot marked."""
    from PIL import Image, ImageDraw

    from .types import format_weight

    choice = find_font()
    font = _font(12, choice.path, choice.index)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    left, top, right, bottom = 40, 24, width - 12, height - 28
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=SUBTLE, width=1)
    weights = [0.0, *curve.weights] if curve.weights and curve.weights[0] > 0 else list(curve.weights)
    effect = [0.0, *curve.effect] if curve.weights and curve.weights[0] > 0 else list(curve.effect)
    top_value = max(max(effect, default=0.0), 1.0)
    span = (max(weights) - min(weights)) or 1.0

    def point(w: float, e: float) -> tuple[float, float]:
        return (
            left + (w - min(weights)) / span * (right - left),
            bottom - e / top_value * (bottom - top),
        )

    points = [point(w, e) for w, e in zip(weights, effect, strict=True)]
    if len(points) > 1:
        draw.line(points, fill=(99, 102, 241), width=2)
    for x, y in points:
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(99, 102, 241))
    for w in weights:
        x, _ = point(w, 0)
        draw.text((x, bottom + 4), format_weight(w), fill=TEXT, font=font, anchor="mt")
    draw.text((left - 4, top), f"{top_value:.0f}%", fill=TEXT, font=font, anchor="rm")
    draw.text((left - 4, bottom), "0", fill=TEXT, font=font, anchor="rm")
    draw.text((left, 4), f"change from weight 0 — {curve.lora}", fill=TEXT, font=font)
    if curve.sweet_spot is not None:
        x, _ = point(curve.sweet_spot, 0)
        draw.line([(x, top), (x, bottom)], fill=(236, 72, 153), width=1)
        draw.text(
            (x + 3, top), f"sweet spot {format_weight(curve.sweet_spot)}", fill=(190, 24, 93), font=font
        )
    return sheet


# ----------------------------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------------------------


def _fallback_infotext(request: GenerationRequest, seed: int) -> str:
    return infotext.for_request(request, seed)


def save(
    plan: Plan,
    results: Sequence[GenerationResult],
    out_dir: str | os.PathLike[str],
    *,
    reference: GenerationResult | None = None,
) -> SavedPlan:
    """Write ``grid.png``, ``cell-01.png`` … (each with its A1111 infotext) and ``manifest.json``.

    An A/B gets its difference map, a LoRA-weight sweep its effect curve
    (:mod:`assistant.analysis`): drawn into the grid, saved as ``analysis.png``, and written to
    the manifest's ``analysis``. ``reference`` is the weight-0 render of a sweep without a
    weight-0 cell (:func:`assistant.analysis.reference_request`).

    Cell i's image is ``results[i].images[0]``; its infotext is the engine's
    (``results[i].infotexts[0]``), or one built from the cell's request when the result has none.
    The grid carries the first cell's infotext (as A1111 does) and the plan JSON
    (``lora-mixer-plan`` chunk). Existing files of the same names are replaced.
    """
    if len(results) != len(plan.cells):
        raise PlanError(f"the plan has {len(plan.cells)} cells but {len(results)} results were given")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    images: list[Any] = []
    cell_paths: list[Path] = []
    manifest_cells: list[dict[str, Any]] = []
    texts: list[str] = []
    for index, (cell, result) in enumerate(zip(plan.cells, results, strict=True), start=1):
        if not result.images:
            raise PlanError(f"cell {index} ({cell.label}) has no image to save")
        image = result.images[0]
        seed = result.seeds[0] if result.seeds else cell.request.seed
        text = result.infotexts[0] if result.infotexts and result.infotexts[0] else None
        text = text or _fallback_infotext(cell.request, seed)
        path = folder / f"cell-{index:02d}.png"
        image.save(path, format="PNG", pnginfo=infotext.png_info(text))
        images.append(image)
        texts.append(text)
        cell_paths.append(path)
        manifest_cells.append(
            {
                "index": index,
                "file": path.name,
                "label": cell.label,
                "row": cell.row,
                "col": cell.col,
                "seed": seed,
                "weights": cell.weights,
                "prompt": cell.request.prompt,
                "infotext": text,
            }
        )
    notes = tuple(n for n in (font_note(),) if n)
    from . import analysis as measure

    difference = measure.ab_difference(plan, images)
    curve = measure.effect_curve(
        plan, images, reference.images[0] if reference is not None and reference.images else None
    )
    column_notes: list[str] = []
    extra = None
    extra_image = None
    report: dict[str, Any] | None = None
    summary = ""
    if difference is not None:
        extra = (difference.image, f"|A−B| map: {difference.changed:.1f}% changed")
        extra_image, report, summary = (
            difference.image,
            {"ab_difference": difference.to_json()},
            difference.describe(),
        )
    elif curve is not None:
        by_weight = dict(zip(curve.weights, curve.effect, strict=True))
        for value in plan.x_axis.values if plan.x_axis is not None else ():
            effect = by_weight.get(abs(float(value)), by_weight.get(float(value)))
            mark = " ★" if curve.sweet_spot is not None and float(value) == curve.sweet_spot else ""
            column_notes.append("" if effect is None else f"Δ {effect:.1f}%{mark}")
        extra_image, report, summary = (
            effect_chart(curve),
            {"effect_curve": curve.to_json()},
            curve.describe(),
        )
    grid = compose(plan, images, column_notes=column_notes, extra=extra)
    plan_json = plan.to_json()
    grid_info = infotext.png_info(texts[0])
    grid_info.add_text("lora-mixer-plan", json.dumps(plan_json, ensure_ascii=False, separators=(",", ":")))
    grid_path = folder / "grid.png"
    grid.save(grid_path, format="PNG", pnginfo=grid_info)
    extra_paths: tuple[Path, ...] = ()
    if extra_image is not None:
        extra_path = folder / "analysis.png"
        extra_image.save(extra_path, format="PNG")
        extra_paths = (extra_path,)
    manifest = {
        "format": "lora-mixer-manifest/1",
        "kind": plan.kind,
        "title": plan.title,
        "seed": plan.seed,
        "grid": grid_path.name,
        "cells": manifest_cells,
        "notes": list(notes),
        "plan": plan_json,
        "analysis": report,
    }
    manifest_path = folder / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return SavedPlan(
        grid_path=grid_path,
        cell_paths=tuple(cell_paths),
        manifest_path=manifest_path,
        notes=notes,
        extra_paths=extra_paths,
        analysis=report,
        summary=summary,
    )
