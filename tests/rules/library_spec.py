"""The small in-memory libraries the rule tests and golden cases use.

``DEMO`` mirrors the shipped catalog (presets/loras.yaml) but is written out here, so the golden
cases do not change when the catalog is edited. A golden case may replace it (``loras:``) or add
to it (``extra_loras:``); each entry takes the :class:`LoraInfo` fields by name. ``embeddings:``
lists textual inversions (:class:`EmbeddingInfo` fields by name; the width follows ``base``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from assistant.embeddings import EmbeddingInfo
from assistant.library import Library
from assistant.types import LoraInfo


def lora(name: str, kind: str = "other", **fields: Any) -> LoraInfo:
    """A LoraInfo with a fake path; list fields may be given as lists."""
    for key in ("triggers", "aliases"):
        if key in fields:
            fields[key] = tuple(fields[key])
    fields.setdefault("base", "sd15")
    return LoraInfo(name=name, path=f"/loras/{name}.safetensors", kind=kind, **fields)  # type: ignore[arg-type]


DEMO: tuple[LoraInfo, ...] = (
    lora(
        "catgirl_v1",
        "character",
        triggers=["catgirl", "cat ears"],
        preferred_weight=0.7,
        negative_text="extra cat ears",
        aliases=["catgirl"],
    ),
    lora(
        "catgirl_v2",
        "character",
        triggers=["catgirl", "cat ears"],
        preferred_weight=0.7,
        negative_text="extra cat ears",
    ),
    lora("cyberpunk_style", "style", triggers=["cyberpunk", "neon lights"], preferred_weight=0.4),
    lora("soft_light", "style", triggers=["soft lighting"], preferred_weight=0.4),
    lora("jk_uniform", "clothing", triggers=["JK uniform"], preferred_weight=0.6),
    lora("add_detail", "concept", preferred_weight=0.5, aliases=["detail_tweaker"]),
    lora("add_saturation", "concept", preferred_weight=0.3),
    lora("add_brightness", "concept", preferred_weight=0.3),
    lora(
        "animeoutlineV4_16",
        "style",
        triggers=["lineart", "monochrome"],
        preferred_weight=1.0,
        aliases=["anime_outline"],
    ),
    lora("watercolor_xl", "style", triggers=["watercolor"], preferred_weight=0.8, base="sdxl"),
)


def build_library(spec: Mapping[str, Any] | None = None) -> Library:
    """The library a golden case asks for: DEMO, ``loras`` instead of it, plus ``extra_loras``."""
    spec = spec or {}
    infos: Iterable[LoraInfo] = DEMO
    if "loras" in spec:
        infos = [lora(**entry) for entry in spec["loras"]]
    extra = [lora(**entry) for entry in spec.get("extra_loras", [])]
    embeddings = [embedding(**entry) for entry in spec.get("embeddings", [])]
    return Library.from_infos([*infos, *extra], embeddings=embeddings)


def embedding(name: str, base: str = "sd15", **fields: Any) -> EmbeddingInfo:
    """An EmbeddingInfo with a fake path; the width follows the base unless given."""
    width = {"sd15": 768, "sd2": 1024, "sdxl": 2048}.get(base, 0)
    fields.setdefault("width", width)
    fields.setdefault("vectors", 8)
    return EmbeddingInfo(name=name, path=f"/embeddings/{name}.safetensors", base=base, **fields)  # type: ignore[arg-type]


DEMO_LIBRARY = build_library()
