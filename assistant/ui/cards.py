"""Library cards: a thumbnail and a short (escaped) HTML text per LoRA.

Previews live in the LoRA folders, which the web server must never serve (they are in Gradio's
``blocked_paths``), so each card gets a small copy in a thumbnails folder the app may serve; a
LoRA without a preview gets a generated placeholder (its initials on a colour per kind).
Pillow only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

from ..types import LoraInfo, format_weight

THUMB_SIZE = 96

#: Placeholder background per kind (RGB).
KIND_COLOURS: dict[str, tuple[int, int, int]] = {
    "character": (99, 102, 241),
    "clothing": (236, 72, 153),
    "concept": (20, 184, 166),
    "style": (245, 158, 11),
    "other": (100, 116, 139),
}


def _initials(name: str) -> str:
    words = [w for w in name.replace("-", "_").split("_") if w]
    letters = "".join(w[0] for w in words[:2]) or name[:2]
    return letters.upper()[:2]


def thumbnail(info: LoraInfo, folder: str | Path) -> str:
    """Path of a ``THUMB_SIZE`` PNG for the card (cached by path, mtime and preview).

    Any problem reading the preview falls back to the placeholder: a card always has an image.
    """
    from PIL import Image, ImageDraw, ImageFont

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = f"{info.path}|{info.mtime}|{info.preview}|{info.kind}|{THUMB_SIZE}"
    target = folder / f"{hashlib.sha1(key.encode('utf-8')).hexdigest()[:16]}.png"
    if target.is_file():
        return str(target)
    image = None
    if info.preview:
        try:
            with Image.open(info.preview) as source:
                source.thumbnail((THUMB_SIZE, THUMB_SIZE))
                image = source.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError):
            image = None
    if image is None:
        image = Image.new("RGB", (THUMB_SIZE, THUMB_SIZE), KIND_COLOURS.get(info.kind, KIND_COLOURS["other"]))
        draw = ImageDraw.Draw(image)
        try:
            font = ImageFont.load_default(size=36)
        except TypeError:  # pragma: no cover - Pillow < 10.1
            font = ImageFont.load_default()
        draw.text(
            (THUMB_SIZE / 2, THUMB_SIZE / 2), _initials(info.name), fill="white", font=font, anchor="mm"
        )
    tmp = target.with_suffix(".tmp")
    image.save(tmp, format="PNG")
    tmp.replace(target)
    return str(target)


def card_html(info: LoraInfo, lora_hash: str = "") -> str:
    """The text of a card as escaped HTML: name, kind · base · weight, triggers, hash, problems."""
    weight = format_weight(info.preferred_weight) if info.preferred_weight is not None else "—"
    parts = [
        f'<div class="lm-card"><b class="lm-name">{escape(info.name)}</b>',
        f"<br>{escape(info.kind)} · {escape(info.base)} · weight {escape(weight)}",
    ]
    if info.triggers:
        parts.append("<br>triggers: " + ", ".join(f"<code>{escape(t)}</code>" for t in info.triggers))
    if lora_hash:
        parts.append(f"<br>hash <code>{escape(lora_hash)}</code>")
    if info.status != "ok":
        parts.append(f"<br>⚠ {escape(info.status)}: {escape(info.problem)}")
    parts.append("</div>")
    return "".join(parts)


def card_rows(
    infos: list[LoraInfo], thumbs: str | Path, hash_of: Callable[[LoraInfo], str]
) -> tuple[list[list[str]], list[str]]:
    """Dataset rows ``[thumbnail, html]`` and the LoRA name of each row (same order)."""
    rows: list[list[str]] = []
    names: list[str] = []
    for info in infos:
        rows.append([thumbnail(info, thumbs), card_html(info, hash_of(info))])
        names.append(info.name)
    return rows, names


def listing(infos: list[LoraInfo], hash_of: Callable[[LoraInfo], str]) -> list[dict[str, Any]]:
    """The cards' facts as JSON-ready dicts (for API clients of the app)."""
    return [
        {
            "name": info.name,
            "kind": info.kind,
            "base": info.base,
            "triggers": list(info.triggers),
            "preferred_weight": info.preferred_weight,
            "hash": hash_of(info),
            "status": info.status,
            "problem": info.problem,
        }
        for info in infos
    ]
