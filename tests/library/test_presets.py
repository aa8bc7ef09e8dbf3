"""Typed YAML presets: the shipped catalog and recipes, and errors that name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import PRESETS_DIR
from assistant.errors import PresetError
from assistant.presets import Recipe, load_catalog, load_recipe, load_recipes, parse_range

DEMO = {
    # name: (kind, triggers, preferred_weight, base, negative_text)
    "catgirl_v1": ("character", ("catgirl", "cat ears"), 0.7, "sd15", "extra cat ears"),
    "catgirl_v2": ("character", ("catgirl", "cat ears"), 0.7, "sd15", "extra cat ears"),
    "cyberpunk_style": ("style", ("cyberpunk", "neon lights"), 0.4, "sd15", ""),
    "soft_light": ("style", ("soft lighting",), 0.4, "sd15", ""),
    "jk_uniform": ("clothing", ("JK uniform",), 0.6, "sd15", ""),
    "add_detail": ("concept", (), 0.5, "sd15", ""),
    "add_saturation": ("concept", (), 0.3, "sd15", ""),
    "add_brightness": ("concept", (), 0.3, "sd15", ""),
    "animeoutlineV4_16": ("style", ("lineart", "monochrome"), 1.0, "sd15", ""),
    "watercolor_xl": ("style", ("watercolor",), 0.8, "sdxl", ""),
}


def test_shipped_catalog_has_exactly_the_demo_loras() -> None:
    catalog = load_catalog(PRESETS_DIR / "loras.yaml")
    assert set(catalog.loras) == set(DEMO)
    for name, (kind, triggers, weight, base, negative) in DEMO.items():
        entry = catalog.loras[name]
        assert (
            entry.kind,
            entry.triggers or (),
            entry.preferred_weight,
            entry.base,
            entry.negative_text,
        ) == (
            kind,
            triggers,
            weight,
            base,
            negative,
        ), name
    assert "anime_outline" in catalog.loras["animeoutlineV4_16"].aliases
    assert "negative weight reduces detail" in catalog.loras["add_detail"].notes


def test_shipped_recipes_load_and_use_catalog_loras() -> None:
    recipes = load_recipes(PRESETS_DIR / "recipes")
    assert {"cyber_hotpot", "catgirl_portrait", "detail_boost", "outline_manga"} <= set(recipes)
    for recipe in recipes.values():
        assert set(recipe.lora_names()) <= set(DEMO), recipe.name
    hotpot = recipes["cyber_hotpot"]
    assert hotpot.tags() == "<lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.3>, <lora:soft_light:0.4>"
    assert sum(lora.weight for lora in hotpot.loras) == pytest.approx(1.2)
    assert recipes["catgirl_portrait"].negative == "extra cat ears, worst quality, blurry, lowres"
    assert recipes["catgirl_portrait"].settings.sampler == "DPM++ 2M Karras"


def _write(tmp_path: Path, text: str, name: str = "loras.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "loras:\n  catgirl_v1:\n    preferred_weight: abc\n",
            "loras.catgirl_v1.preferred_weight: must be a number between -2 and 2 (got 'abc')",
        ),
        (
            "loras:\n  catgirl_v1:\n    preferred_weight: 3\n",
            "loras.catgirl_v1.preferred_weight: must be a number between -2 and 2 (got 3)",
        ),
        (
            "loras:\n  catgirl_v1:\n    preferred_weight: true\n",
            "loras.catgirl_v1.preferred_weight: must be a number between -2 and 2 (got True)",
        ),
        (
            "loras:\n  x:\n    kind: hairstyle\n",
            "loras.x.kind: must be one of character, clothing, concept, style, other (got 'hairstyle')",
        ),
        (
            "loras:\n  x:\n    base: sd3\n",
            "loras.x.base: must be one of sd15, sd2, sdxl, unknown (got 'sd3')",
        ),
        ("loras:\n  x:\n    trigger: cat\n", "loras.x.trigger: unknown key; allowed keys: kind, triggers,"),
        ("lora:\n  x: {}\n", "lora: unknown key; allowed keys: version, loras"),
        ("loras:\n  x:\n    triggers: [1, 2]\n", "loras.x.triggers[0]: must be a list of trigger words"),
        (
            "loras:\n  x: {}\n  x: {}\n",
            "not valid YAML (line 3, column 3: duplicate key 'x' (first on line 2))",
        ),
        ("loras:\n  x: [\n", "not valid YAML (line 3"),
        ("- a\n- b\n", "expected a mapping with a 'loras' key"),
        (
            "loras:\n  a:\n    aliases: [cat]\n  b:\n    aliases: cat\n",
            "loras.b.aliases: 'cat' is already an alias of 'a'",
        ),
        ("loras:\n  a: {}\n  b:\n    aliases: [A]\n", "loras.b.aliases: 'A' is already the name of 'a'"),
        ("version: 2\nloras: {}\n", "version: must be 1 (got 2)"),
    ],
)
def test_catalog_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PresetError) as err:
        load_catalog(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_catalog_accepts_comma_separated_triggers_and_empty_file(tmp_path: Path) -> None:
    catalog = load_catalog(_write(tmp_path, "loras:\n  x:\n    triggers: 'cat ears, catgirl'\n"))
    assert catalog.loras["x"].triggers == ("cat ears", "catgirl")
    assert load_catalog(_write(tmp_path, "", "empty.yaml")).loras == {}


def test_catalog_models_are_frozen(tmp_path: Path) -> None:
    catalog = load_catalog(_write(tmp_path, "loras:\n  x:\n    kind: style\n"))
    with pytest.raises(ValueError, match="frozen"):
        catalog.loras["x"].kind = "other"  # type: ignore[misc]


def test_missing_catalog_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"nope\.yaml: file not found"):
        load_catalog(tmp_path / "nope.yaml")


RECIPE = """name: test_mix
description: a test
loras:
  - {name: catgirl_v1, weight: 0.6, range: "0.4..0.7"}
  - {name: soft_light, range: "0.2..0.4"}
prompt: 1girl
settings: {steps: 20, cfg: 6.5, width: 512, height: 768, seed: 3}
"""


def test_recipe_loads_and_fills_weight_from_range(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path, RECIPE, "mix.yaml"))
    assert isinstance(recipe, Recipe)
    assert recipe.loras[1].weight == pytest.approx(0.3)
    assert recipe.loras[0].bounds == (0.4, 0.7)
    assert recipe.settings.height == 768
    assert recipe.tags() == "<lora:catgirl_v1:0.6>, <lora:soft_light:0.3>"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("weight: 0.6,", "weight: 0.9,"), "loras[0]: weight 0.9 is outside its range 0.4..0.7"),
        (('range: "0.2..0.4"', 'range: "0.4..0.2"'), "loras[1].range: low end 0.4 is above high end 0.2"),
        (('range: "0.2..0.4"', 'range: "low"'), "loras[1].range: must look like '0.4..0.7'"),
        (("steps: 20", "steps: 0"), "settings.steps: must be a whole number from 1 to 150 (got 0)"),
        (
            ("height: 768", "height: 500"),
            "settings.height: must be a whole number from 64 to 2048, a multiple of 8",
        ),
        (("seed: 3", "sampler_name: Euler"), "settings.sampler_name: unknown key; allowed keys: steps, cfg"),
        (("prompt: 1girl", "promt: 1girl"), "promt: unknown key; allowed keys: name, description"),
        (("name: test_mix", "name: ../evil"), "name: string should match pattern"),
        (
            ("  - {name: soft_light", "  - {nme: soft_light"),
            "loras[1].nme: unknown key; allowed keys: name, weight",
        ),
    ],
)
def test_recipe_errors_name_file_and_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    assert change[0] in RECIPE
    path = _write(tmp_path, RECIPE.replace(*change), "mix.yaml")
    with pytest.raises(PresetError) as err:
        load_recipe(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_recipe_without_loras_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: empty\nloras: []\n", "empty.yaml")
    with pytest.raises(PresetError, match=r"empty\.yaml: loras: needs at least 1 item \(got none\)"):
        load_recipe(path)


def test_duplicate_recipe_names_across_files(tmp_path: Path) -> None:
    _write(tmp_path, RECIPE, "a.yaml")
    _write(tmp_path, RECIPE, "b.yaml")
    with pytest.raises(
        PresetError, match=r"b\.yaml: name: recipe 'test_mix' is already defined in .*a\.yaml"
    ):
        load_recipes(tmp_path)


def test_load_recipes_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert load_recipes(tmp_path / "none") == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.4..0.7", (0.4, 0.7)), (" -1 .. 1 ", (-1.0, 1.0)), ("0.4-0.7", (0.4, 0.7)), ("0.4~0.7", (0.4, 0.7))],
)
def test_parse_range(text: str, expected: tuple[float, float]) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize("text", ["0.4..0.7x5", "1..3", "a..b", ""])
def test_parse_range_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"0\.4\.\.0\.7|within|above"):
        parse_range(text)
