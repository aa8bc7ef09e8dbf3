"""The typed model of ``presets/rules.yaml``: the assistant's numbers and its symptom table.

Loaded with ``yaml.safe_load`` into pydantic models that reject unknown keys; any problem becomes a
:class:`~assistant.errors.PresetError` whose message names the file and the key path
(``presets/rules.yaml: symptoms.extra-ears.lower.to: Input should be a valid number``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import PresetError
from ..types import Kind

DEFAULT_RULES_PATH = Path(__file__).resolve().parents[2] / "presets" / "rules.yaml"

Language = Literal["en", "zh"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Model):
    """A sentence in English and Chinese."""

    en: str
    zh: str

    def get(self, language: str) -> str:
        return self.zh if language == "zh" else self.en


class StrengthConfig(_Model):
    cap: float = Field(1.2, gt=0, le=10)
    per_lora_max: float = Field(1.0, gt=0, le=10)


class LowerConfig(_Model):
    """Lower the matching LoRAs' weights to ``to``: by kind, or by a word in the name."""

    kinds: tuple[Kind, ...] = ()
    name_contains: tuple[str, ...] = ()
    to: float = Field(gt=0, le=2)
    #: "positive": only weights above ``to``; "both": also weights below ``-to``.
    signs: Literal["positive", "both"] = "positive"
    #: When a responsible LoRA is already at or below ``to``: suggest a negative-pass weight this
    #: much above its weight (a ``<lora:x:w>`` tag in the negative prompt tames the LoRA).
    suggest_negative_pass: float | None = Field(None, gt=0, le=1)


class TriggerNegative(_Model):
    """Negative terms built from the responsible LoRA's triggers: ``(extra cat ears:1.5)``."""

    contains: tuple[str, ...]
    weight: float = Field(1.5, gt=0, le=3)


class SymptomConfig(_Model):
    title: Text
    keywords: tuple[str, ...] = Field(min_length=1)
    cause: Text
    fix: Text
    negative_terms: tuple[str, ...] = ()
    negative_from_triggers: TriggerNegative | None = None
    lower: LowerConfig | None = None
    check: Literal["names-and-triggers", "base"] | None = None
    note: Text | None = None


class FaqConfig(_Model):
    title: Text
    keywords: tuple[str, ...] = Field(min_length=1)
    answer: Text


def _order_default() -> dict[str, int]:
    return {"character": 0, "clothing": 1, "concept": 1, "style": 2, "other": 3}


class RulesConfig(_Model):
    """Everything the rules read from ``presets/rules.yaml``."""

    version: Literal[1] = 1
    strength: StrengthConfig = StrengthConfig()
    order: dict[Kind, int] = Field(default_factory=_order_default)
    symptoms: dict[str, SymptomConfig] = Field(default_factory=dict)
    faq: dict[str, FaqConfig] = Field(default_factory=dict)
    #: Textual-inversion names known to be negative embeddings (matched without letter case).
    negative_embeddings: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _every_kind_ordered(self) -> RulesConfig:
        missing = [k for k in ("character", "clothing", "concept", "style", "other") if k not in self.order]
        if missing:
            raise ValueError(f"order: missing rank for kind(s) {', '.join(missing)}")
        return self

    def order_rank(self, kind: str) -> int:
        return self.order.get(kind, self.order["other"])  # type: ignore[call-overload]

    def match_symptoms(self, text: str) -> list[str]:
        """Symptom ids whose id or keywords occur in ``text`` (table order, no duplicates)."""
        return _match(text, {sid: (sid, *s.keywords) for sid, s in self.symptoms.items()})

    def match_faq(self, text: str) -> list[str]:
        """FAQ ids whose keywords occur in ``text``."""
        return _match(text, {fid: f.keywords for fid, f in self.faq.items()})


_ASCII_WORD = re.compile(r"^[\x00-\x7f]+$")


@lru_cache(maxsize=1024)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    # ASCII keywords match whole words ("nan" must not match "banana"); CJK ones match as substrings.
    escaped = re.escape(keyword.casefold())
    if _ASCII_WORD.match(keyword):
        return re.compile(rf"(?<![a-z0-9]){escaped}(?![a-z0-9])")
    return re.compile(escaped)


def _match(text: str, table: dict[str, Iterable[str]]) -> list[str]:
    folded = " ".join(text.casefold().split())
    return [key for key, words in table.items() if any(_keyword_pattern(w).search(folded) for w in words)]


def _format_error(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{path}: {where}: {err['msg']}")
    return "; ".join(lines)


def parse_rules_config(data: object, path: Path | str = "<rules>") -> RulesConfig:
    """Validate already-loaded YAML data; errors name ``path`` and the key."""
    path = Path(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PresetError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return RulesConfig.model_validate(data)
    except ValidationError as exc:
        raise PresetError(_format_error(path, exc)) from None


def load_rules_config(path: str | Path | None = None) -> RulesConfig:
    """Read and validate a rules file (default ``presets/rules.yaml``); cached by path and mtime."""
    resolved = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        mtime = resolved.stat().st_mtime_ns
    except OSError as exc:
        raise PresetError(f"{resolved}: cannot read the rules file ({exc.strerror})") from None
    return _load_cached(str(resolved), mtime)


class _UniqueKeyLoader(yaml.SafeLoader):
    """``safe_load`` that rejects a key given twice (plain ``safe_load`` keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: int) -> RulesConfig:
    file = Path(path)
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise PresetError(f"{file}: not valid YAML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"{file}: cannot read the rules file ({exc})") from None
    return parse_rules_config(data, file)


def default_rules_config() -> RulesConfig:
    """The shipped ``presets/rules.yaml``."""
    return load_rules_config(None)
