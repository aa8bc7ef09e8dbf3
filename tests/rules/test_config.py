"""presets/rules.yaml: typed, unknown keys rejected, errors name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from assistant.errors import PresetError
from assistant.rules.config import (
    DEFAULT_RULES_PATH,
    RulesConfig,
    default_rules_config,
    load_rules_config,
    parse_rules_config,
)

SHIPPED = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))


def test_shipped_rules_file_loads_with_the_documented_numbers() -> None:
    config = default_rules_config()
    assert config.strength.cap == 1.2
    assert config.strength.per_lora_max == 1.0
    assert config.order_rank("character") < config.order_rank("clothing") == config.order_rank("concept")
    assert config.order_rank("concept") < config.order_rank("style") < config.order_rank("other")
    assert {
        "extra-ears",
        "extra-limbs",
        "black-image",
        "no-effect",
        "style-drift",
        "oversaturated",
        "stale-cache",
    } <= set(config.symptoms)
    assert config.symptoms["extra-ears"].lower.to == 0.6
    assert config.symptoms["black-image"].lower.to == 0.4
    assert {"negative-weight", "weight"} <= set(config.faq)


def test_every_symptom_and_faq_has_english_and_chinese_keywords() -> None:
    config = default_rules_config()
    for table in (config.symptoms, config.faq):
        for key, entry in table.items():
            assert any(k.isascii() for k in entry.keywords), key
            assert any(not k.isascii() for k in entry.keywords), key


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("多耳怪", ["extra-ears"]),
        ("extra-ears", ["extra-ears"]),
        ("Why is my image BLACK?", ["black-image"]),
        ("出图全黑", ["black-image"]),
        ("画风突变毕加索", ["style-drift"]),
        ("LoRA 不生效", ["no-effect"]),
        ("too saturated", ["oversaturated"]),
        ("缓存见鬼", ["stale-cache"]),
        ("banana", []),
        ("", []),
    ],
)
def test_match_symptoms(text: str, ids: list[str]) -> None:
    assert default_rules_config().match_symptoms(text) == ids


def _with(path: list[str], value: object) -> dict:
    data = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["strength", "cap"], "lots", "strength.cap"),
        (["strength", "cap"], -1, "strength.cap"),
        (["strength", "capp"], 1.0, "strength.capp"),
        (["symptoms", "extra-ears", "lower", "to"], "x", "symptoms.extra-ears.lower.to"),
        (["symptoms", "extra-ears", "colour"], "red", "symptoms.extra-ears.colour"),
        (["symptoms", "black-image", "lower", "kinds"], ["hat"], "symptoms.black-image.lower.kinds"),
        (["order", "wizard"], 2, "order.wizard"),
        (["version"], 2, "version"),
        (["faq", "weight", "answer"], {"en": "only english"}, "faq.weight.answer.zh"),
    ],
)
def test_bad_values_name_file_and_key(path: list[str], value: object, message: str) -> None:
    with pytest.raises(PresetError) as err:
        parse_rules_config(_with(path, value), "presets/rules.yaml")
    assert "presets/rules.yaml" in str(err.value)
    assert message in str(err.value)


def test_missing_order_kind_is_named() -> None:
    data = _with(["order"], {"character": 0, "style": 1})
    with pytest.raises(PresetError, match="missing rank for kind"):
        parse_rules_config(data, "r.yaml")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(PresetError, match=r"rules\.yaml: expected a mapping"):
        load_rules_config(bad)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("strength: [1, 2\n", encoding="utf-8")
    with pytest.raises(PresetError, match="not valid YAML"):
        load_rules_config(bad)
    with pytest.raises(PresetError, match="cannot read"):
        load_rules_config(tmp_path / "missing.yaml")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "rules.yaml"
    empty.write_text("", encoding="utf-8")
    assert load_rules_config(empty) == RulesConfig()


def test_a_custom_cap_changes_the_budget(tmp_path: Path) -> None:
    from assistant.advisor import advise

    from .library_spec import DEMO_LIBRARY

    config = parse_rules_config(_with(["strength", "cap"], 1.0))
    advice = advise(
        "1girl, catgirl, cat ears, JK uniform, <lora:catgirl_v1:0.8>, <lora:jk_uniform:0.6>",
        "extra cat ears",
        library=DEMO_LIBRARY,
        config=config,
    )
    assert sum(p.weight for p in advice.plan) <= 1.0
    assert [c.rule for c in advice.changes] == ["strength-budget"]


def test_reloads_when_the_file_changes(tmp_path: Path) -> None:
    import os

    file = tmp_path / "rules.yaml"
    file.write_text("strength: {cap: 1.1}\n", encoding="utf-8")
    assert load_rules_config(file).strength.cap == 1.1
    file.write_text("strength: {cap: 0.9}\n", encoding="utf-8")
    os.utime(file, ns=(os.stat(file).st_atime_ns, os.stat(file).st_mtime_ns + 1_000_000))
    assert load_rules_config(file).strength.cap == 0.9


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "rules.yaml"
    file.write_text("strength: {cap: 1.2}\nstrength: {cap: 3}\n", encoding="utf-8")
    with pytest.raises(PresetError, match="key 'strength' appears twice"):
        load_rules_config(file)
