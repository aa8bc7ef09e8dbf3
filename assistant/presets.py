"""Typed YAML presets: the LoRA catalog (``presets/loras.yaml``) and recipes (``presets/recipes/*.yaml``).

Pure Python (pyyaml + pydantic). Every file is read with a *safe* YAML loader (a
:class:`yaml.SafeLoader` subclass that also rejects duplicate keys, which ``safe_load`` would
silently collapse) into frozen pydantic models that reject unknown keys. Any problem becomes one
:class:`~assistant.errors.PresetError` whose message names the file and the key path, e.g.::

    presets/loras.yaml: loras.catgirl_v1.preferred_weight: must be a number between -2 and 2 (got 'abc')

Catalog shape::

    version: 1
    loras:
      catgirl_v1:                      # the file stem in models/Lora
        kind: character                # character | clothing | concept | style | other
        triggers: [catgirl, cat ears]  # or "catgirl, cat ears"
        preferred_weight: 0.7          # -2 .. 2
        base: sd15                     # sd15 | sd2 | sdxl | unknown
        negative_text: extra cat ears
        aliases: [catgirl]
        source: "civitai:…"            # where to get it (informational)
        notes: …
        description: …

Recipe shape::

    name: cyber_hotpot
    description: …
    loras:
      - {name: catgirl_v1, weight: 0.5, range: "0.4..0.7"}
    prompt: "1girl"                    # extra prompt terms (optional)
    negative: "extra limbs"            # optional
    settings: {steps: 28, cfg: 7, sampler: "DPM++ 2M Karras", width: 512, height: 512, seed: -1}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import PresetError
from .limits import CFG, LORA_WEIGHT, SEED, SIZE, SIZE_MULTIPLE, STEPS, split_range
from .types import BASES, KINDS

__all__ = [
    "WEIGHT_MAX",
    "WEIGHT_MIN",
    "Catalog",
    "CatalogEntry",
    "Recipe",
    "RecipeLora",
    "RecipeSettings",
    "load_catalog",
    "load_recipe",
    "load_recipes",
    "parse_range",
]

WEIGHT_MIN, WEIGHT_MAX = LORA_WEIGHT

_STRICT_FLOAT = Annotated[float, Field(strict=True, ge=WEIGHT_MIN, le=WEIGHT_MAX)]
_NAME_RE = re.compile(r"^[^\x00-\x1f<>:]{1,200}$")

#: key (last element of the error location) -> what is allowed, used to word validation errors.
_RULES: dict[str, str] = {
    "preferred_weight": f"must be a number between {WEIGHT_MIN:g} and {WEIGHT_MAX:g}",
    "weight": f"must be a number between {WEIGHT_MIN:g} and {WEIGHT_MAX:g}",
    "kind": "must be one of " + ", ".join(KINDS),
    "base": "must be one of " + ", ".join(BASES),
    "triggers": "must be a list of trigger words (or one comma-separated string)",
    "aliases": "must be a list of names",
    "steps": "must be a whole number from 1 to 150",
    "cfg": "must be a number from 1 to 30",
    "width": "must be a whole number from 64 to 2048, a multiple of 8",
    "height": "must be a whole number from 64 to 2048, a multiple of 8",
    "seed": "must be a whole number, -1 for random",
    "version": "must be 1",
}


# ----------------------------------------------------------------------------------------------
# YAML loading
# ----------------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate mapping keys (safe_load keeps the last silently)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        except TypeError:  # unhashable key: let the SafeLoader report it
            break
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise PresetError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise PresetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PresetError(f"{path}: not valid YAML ({where}{problem})") from None


def _loc(parts: Sequence[int | str]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def _describe(error: Mapping[str, Any], model_fields: Mapping[str, Sequence[str]]) -> str:
    """One validation error as 'key.path: what is allowed (got …)'."""
    loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    kind = error["type"]
    got = error.get("input")
    last = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "extra_forbidden":
        parent = next((p for p in reversed(loc[:-1]) if isinstance(p, str)), "")
        allowed = model_fields.get(parent) or model_fields.get("")
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{_loc(loc)}: unknown key{hint}"
    if kind == "missing":
        return f"{_loc(loc)}: required key is missing"
    if kind == "too_short":
        count = error.get("ctx", {}).get("min_length", 1)
        return f"{_loc(loc)}: needs at least {count} item{'s' if count != 1 else ''} (got none)"
    rule = _RULES.get(last)
    if kind == "value_error" and not loc:  # a model-level check worded with its own key path
        return str(error.get("ctx", {}).get("error") or error["msg"])
    if kind == "value_error":
        rule = str(error.get("ctx", {}).get("error") or error["msg"])
    elif rule is None:
        rule = error["msg"][0].lower() + error["msg"][1:]
    shown = repr(got) if not isinstance(got, dict | list) or len(repr(got)) < 80 else type(got).__name__
    return f"{_loc(loc)}: {rule} (got {shown})"


def _validate(model: type[BaseModel], data: Any, path: Path, fields: Mapping[str, Sequence[str]]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err, fields) for err in exc.errors(include_url=False)]
        first, rest = lines[0], lines[1:]
        more = "".join(f"\n{path}: {line}" for line in rest[:9])
        if len(rest) > 9:
            more += f"\n… and {len(rest) - 9} more"
        raise PresetError(f"{path}: {first}{more}") from None


def _comma_list(value: Any) -> Any:
    """Accept ``"a, b"`` for a list of words; drop blank items."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


# ----------------------------------------------------------------------------------------------
# Catalog
# ----------------------------------------------------------------------------------------------


class CatalogEntry(BaseModel):
    """What the project knows about one LoRA, keyed by its file stem in the catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["character", "clothing", "concept", "style", "other"] | None = None
    #: ``None``: not declared (header/sidecar triggers stay); ``[]``: declared to have none.
    triggers: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] | None = None
    preferred_weight: _STRICT_FLOAT | None = None
    base: Literal["sd15", "sd2", "sdxl", "unknown"] | None = None
    negative_text: str = ""
    source: str = ""
    notes: str = ""
    description: str = ""
    aliases: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] = ()

    @field_validator("triggers", "aliases", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        return _comma_list(value)


class Catalog(BaseModel):
    """The whole ``presets/loras.yaml``: ``loras`` maps a file stem to its :class:`CatalogEntry`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    loras: dict[Annotated[str, Field(min_length=1, max_length=200)], CatalogEntry] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _aliases_are_unique(self) -> Catalog:
        owner: dict[str, str] = {name.casefold(): name for name in self.loras}
        for name, entry in self.loras.items():
            for alias in entry.aliases:
                key = alias.casefold()
                if key in owner and owner[key] != name:
                    other = owner[key]
                    what = "the name" if other.casefold() == key else "an alias"
                    raise ValueError(f"loras.{name}.aliases: '{alias}' is already {what} of '{other}'")
                owner[key] = name
        return self

    def entry(self, name: str) -> CatalogEntry | None:
        """The entry for a file stem: exact, else case-insensitive; ``None`` when absent."""
        found = self.loras.get(name)
        if found is not None:
            return found
        folded = name.casefold()
        for key, value in self.loras.items():
            if key.casefold() == folded:
                return value
        return None


_CATALOG_FIELDS: dict[str, tuple[str, ...]] = {
    "": tuple(Catalog.model_fields),
    "loras": tuple(CatalogEntry.model_fields),
}


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    """Read and validate a catalog file; an empty file is an empty catalog.

    Raises :class:`PresetError` naming the file and the key for any problem.
    """
    file = Path(path)
    data = _read_yaml(file)
    if data is None:
        return Catalog()
    if not isinstance(data, dict):
        raise PresetError(f"{file}: expected a mapping with a 'loras' key at the top level")
    # an unknown key under loras.<name> reports its parent as the LoRA name: map those to entry fields
    fields = dict(_CATALOG_FIELDS)
    loras = data.get("loras")
    if isinstance(loras, dict):
        for name in loras:
            fields[str(name)] = tuple(CatalogEntry.model_fields)
    return _validate(Catalog, data, file, fields)


# ----------------------------------------------------------------------------------------------
# Recipes
# ----------------------------------------------------------------------------------------------

def parse_range(text: str) -> tuple[float, float]:
    """``"0.4..0.7"`` -> ``(0.4, 0.7)``; raises ValueError with the allowed form otherwise."""
    span = split_range(text)
    if span is None or span[2]:
        raise ValueError(f"must look like '0.4..0.7' (low..high), got {text!r}")
    low, high, _rest = span
    if low > high:
        raise ValueError(f"low end {low:g} is above high end {high:g} in {text!r}")
    if low < WEIGHT_MIN or high > WEIGHT_MAX:
        raise ValueError(f"must stay within {WEIGHT_MIN:g}..{WEIGHT_MAX:g}, got {text!r}")
    return low, high


class RecipeLora(BaseModel):
    """One LoRA of a recipe: a fixed ``weight``, and optionally a ``range`` to draw from (blind box).

    When only ``range`` is given, ``weight`` is its midpoint.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=_NAME_RE.pattern)]
    weight: _STRICT_FLOAT
    range: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _weight_from_range(cls, data: Any) -> Any:
        if isinstance(data, dict) and "weight" not in data and isinstance(data.get("range"), str):
            try:
                low, high = parse_range(data["range"])
            except ValueError:
                return data  # the field validator reports it
            return {**data, "weight": round((low + high) / 2, 4)}
        return data

    @field_validator("range")
    @classmethod
    def _check_range(cls, value: str | None) -> str | None:
        if value is not None:
            parse_range(value)
        return value

    @model_validator(mode="after")
    def _weight_inside_range(self) -> RecipeLora:
        if self.range is not None:
            low, high = parse_range(self.range)
            if not low <= self.weight <= high:
                raise ValueError(f"weight {self.weight:g} is outside its range {self.range}")
        return self

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The range as numbers, or ``None``."""
        return parse_range(self.range) if self.range is not None else None


_SIDE = Annotated[int, Field(strict=True, ge=SIZE[0], le=SIZE[1], multiple_of=SIZE_MULTIPLE)]


class RecipeSettings(BaseModel):
    """Generation settings a recipe suggests; unset ones keep the app's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: Annotated[int, Field(strict=True, ge=STEPS[0], le=STEPS[1])] | None = None
    cfg: Annotated[float, Field(strict=True, ge=1, le=CFG[1])] | None = None
    sampler: Annotated[str, Field(min_length=1, max_length=60)] | None = None
    width: _SIDE | None = None
    height: _SIDE | None = None
    seed: Annotated[int, Field(strict=True, ge=SEED[0], le=SEED[1])] | None = None


class Recipe(BaseModel):
    """A named LoRA mix: which LoRAs at which weights, extra prompt terms and settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[\w.\- ]+$")]
    description: str = ""
    loras: tuple[RecipeLora, ...] = Field(min_length=1)
    prompt: str = ""
    negative: str = ""
    settings: RecipeSettings = Field(default_factory=RecipeSettings)

    def lora_names(self) -> tuple[str, ...]:
        return tuple(lora.name for lora in self.loras)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """The weight ranges its LoRAs give a blind box (``range: "0.4..0.7"``), by LoRA name."""
        return {lora.name: lora.bounds for lora in self.loras if lora.bounds is not None}

    def tags(self) -> str:
        """The recipe's LoRAs as A1111 tags, e.g. ``<lora:catgirl_v1:0.5>, <lora:soft_light:0.4>``."""
        from .types import LoraTag

        return ", ".join(LoraTag(name=lora.name, weight=lora.weight).render() for lora in self.loras)


_RECIPE_FIELDS: dict[str, tuple[str, ...]] = {
    "": tuple(Recipe.model_fields),
    "loras": tuple(RecipeLora.model_fields),
    "settings": tuple(RecipeSettings.model_fields),
}


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate one recipe file; raises :class:`PresetError` naming file and key."""
    file = Path(path)
    data = _read_yaml(file)
    if not isinstance(data, dict):
        raise PresetError(f"{file}: expected a mapping with name, loras, … at the top level")
    return _validate(Recipe, data, file, _RECIPE_FIELDS)


def load_recipes(directory: str | os.PathLike[str]) -> dict[str, Recipe]:
    """Every ``*.yaml``/``*.yml`` recipe in a folder, keyed by recipe name (sorted by file name).

    A missing folder is an empty result; two files with the same recipe name are an error.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return {}
    recipes: dict[str, Recipe] = {}
    origin: dict[str, Path] = {}
    for file in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        recipe = load_recipe(file)
        if recipe.name in recipes:
            raise PresetError(
                f"{file}: name: recipe '{recipe.name}' is already defined in {origin[recipe.name]}"
            )
        recipes[recipe.name] = recipe
        origin[recipe.name] = file
    return recipes
