"""The files beside a LoRA: A1111's ``<stem>.json``, Civitai's ``<stem>.civitai.info``, previews.

Each sidecar reader returns the fields it found (odd or unknown values are skipped) or, for an
unreadable file, ``{"warning": …}``: a bad sidecar never breaks the entry. Previews follow
A1111's order (png, jpg, jpeg, webp, gif; ``<stem>.<ext>`` before ``<stem>.preview.<ext>``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any

from ..limits import LORA_WEIGHT
from ..types import KINDS

PREVIEW_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")


_PREVIEW_RANK = {f".{ext}": rank for rank, ext in enumerate(PREVIEW_EXTENSIONS)}


def _previews(listing: Iterable[str]) -> dict[str, str]:
    """stem -> preview file name, in A1111's order: png, jpg, jpeg, webp, gif; ``<stem>.<ext>``
    before ``<stem>.preview.<ext>``."""
    ranked: dict[str, tuple[int, str]] = {}
    for file_name in listing:
        dot = file_name.rfind(".")
        rank = _PREVIEW_RANK.get(file_name[dot:].lower()) if dot > 0 else None
        if rank is None:
            continue
        stem, rank = file_name[:dot], rank * 2
        if stem.lower().endswith(".preview"):
            stem, rank = stem[: -len(".preview")], rank + 1
        if stem not in ranked or rank < ranked[stem][0]:
            ranked[stem] = (rank, file_name)
    return {stem: file_name for stem, (_rank, file_name) in ranked.items()}


def _read_json_object(path: str) -> dict[str, Any]:
    with open(path, "rb") as handle:
        raw = handle.read(4 * 1024 * 1024 + 1)
    if len(raw) > 4 * 1024 * 1024:
        raise ValueError("larger than 4 MB")
    data = json.loads(raw.decode("utf-8-sig"))
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    return data


def _split_words(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    words: list[str] = []
    for item in items:
        if isinstance(item, str):
            words.extend(w.strip() for w in item.split(",") if w.strip())
    seen: set[str] = set()
    return [w for w in words if not (w.casefold() in seen or seen.add(w.casefold()))][:20]  # type: ignore[func-returns-value]


_A1111_SD_VERSION = {"sd1": "sd15", "sd15": "sd15", "sd2": "sd2", "sdxl": "sdxl"}


def _a1111_sidecar_facts(path: str) -> dict[str, Any]:
    """Fields of A1111's ``<stem>.json`` user-metadata sidecar (unknown/odd values are skipped)."""
    try:
        data = _read_json_object(path)
    except (OSError, ValueError) as exc:
        return {"warning": f"sidecar {os.path.basename(path)} ignored: {_short_error(exc)}"}
    facts: dict[str, Any] = {}
    triggers = _split_words(data.get("activation text"))
    if triggers:
        facts["triggers"] = triggers
    weight = data.get("preferred weight")
    if (
        isinstance(weight, int | float)
        and not isinstance(weight, bool)
        and weight != 0
        and LORA_WEIGHT[0] <= weight <= LORA_WEIGHT[1]
    ):
        facts["preferred_weight"] = float(weight)  # A1111 stores 0 for "not set"
    version = data.get("sd version")
    if isinstance(version, str) and version.strip().lower() in _A1111_SD_VERSION:
        facts["base"] = _A1111_SD_VERSION[version.strip().lower()]
        facts["base_source"] = f"sidecar 'sd version' {version.strip()!r}"
    for src, dst in (("negative text", "negative_text"), ("notes", "notes"), ("description", "description")):
        if isinstance(data.get(src), str) and data[src].strip():
            facts[dst] = data[src].strip()[:5000]
    kind = data.get("kind")
    if isinstance(kind, str) and kind.strip().lower() in KINDS:
        facts["kind"] = kind.strip().lower()
    return facts


def _civitai_base(value: str) -> str | None:
    low = value.lower()
    if low.startswith(("sdxl", "pony", "illustrious", "noobai")):
        return "sdxl"
    if low.startswith("sd 1"):
        return "sd15"
    if low.startswith("sd 2"):
        return "sd2"
    if low in ("", "other"):
        return None
    return "unknown"


def _civitai_facts(path: str) -> dict[str, Any]:
    """Fields of Civitai's ``<stem>.civitai.info`` (a model-version JSON)."""
    try:
        data = _read_json_object(path)
    except (OSError, ValueError) as exc:
        return {"warning": f"{os.path.basename(path)} ignored: {_short_error(exc)}"}
    facts: dict[str, Any] = {}
    triggers = _split_words(data.get("trainedWords"))
    if triggers:
        facts["triggers"] = triggers
    base_model = data.get("baseModel")
    if isinstance(base_model, str):
        base = _civitai_base(base_model.strip())
        if base:
            facts["base"] = base
            facts["base_source"] = f"civitai baseModel {base_model.strip()!r}"
    description = data.get("description")
    if isinstance(description, str) and description.strip():
        facts["description"] = re.sub(r"<[^>]{0,500}>", " ", description).strip()[:5000]
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("name"), str):
        facts["model_name"] = model["name"][:200]
    return facts


def _short_error(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at line {exc.lineno})"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(exc)
