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
    """The text of a card as escaped HTML: name, kind · base · weight, algorithm · rank, triggers,
    hash, problems."""
    weight = format_weight(info.preferred_weight) if info.preferred_weight is not None else "—"
    parts = [
        f'<div class="lm-card"><b class="lm-name">{escape(info.name)}</b>',
        f"<br>{escape(info.kind)} · {escape(info.base)} · weight {escape(weight)}",
    ]
    if info.algorithm:
        rank = f" · rank {info.rank}" if info.rank else ""
        parts.append(f"<br>{escape(info.algorithm)}{escape(rank)}")
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


def search_note(query: str, kind: str | None, base: str | None, found: int, total: int) -> str:
    """The line above the cards: how to use them, or that nothing matched (never a blank area)."""
    if found:
        return "Click a card to insert its tag and trigger words into the prompt."
    filters = [f"'{query.strip()}'"] if query.strip() else []
    filters += [f"kind {kind}"] if kind else []
    filters += [f"base {base}"] if base else []
    what = " with ".join(filters[:1]) + (" and " + ", ".join(filters[1:]) if filters[1:] else "")
    if not total:
        return "The LoRA library is empty: put `.safetensors` LoRAs in the LoRA folder and press Rescan."
    return (
        f"No LoRA matches {what or 'these filters'} — {total} LoRA{'s' if total != 1 else ''} in the "
        "library. Clear the search or set Kind and Base to 'any' to see them all."
    )


def insert_note(info: LoraInfo, before: str, after: str, base: str) -> str:
    """What a card click did to the prompt, said on the Library tab, with a base-model warning."""
    if after == before:
        text = f"`{info.name}` is already in the prompt (with its trigger words)."
    else:
        added = after[len(before) :].lstrip(", ") if after.startswith(before) else after
        text = f"Added to the prompt (Prompt tab): `{added}`"
    if info.base not in ("unknown", base) and base != "unknown":
        text += (
            f"\n\n⚠ `{info.name}` is made for {info.base}, but the loaded model is {base}: the assistant "
            f"will leave it out of the render (with the reason) until you load a {info.base} model."
        )
    if not info.loadable:
        text += f"\n\n⚠ `{info.name}` cannot be used: {info.status} ({info.problem})."
    return text


def slider_label(name: str, library: Any, base: str) -> str:
    """A weight slider's label: the LoRA's name, and why it will not be applied when it won't."""
    from ..errors import LoraMixerError

    try:
        info = library.resolve(name)
    except LoraMixerError:
        return f"{name} (not in the library — not applied)"
    if not info.loadable:
        return f"{info.name} ({info.status} — not applied)"
    if info.base not in ("unknown", base) and base != "unknown":
        return f"{info.name} (made for {info.base} — not applied on {base})"
    return info.name
