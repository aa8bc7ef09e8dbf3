"""Sidecars, Civitai info, the catalog and previews, merged in order (later wins)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.config import PRESETS_DIR
from assistant.errors import PresetError
from assistant.library import Library

from . import lorafiles as lf

ScanFn = Callable[..., Library]


def _catalog(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "loras.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a1111_sidecar_fields(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "card", tags={"x": {"tagged": 5}})
    lf.write_a1111_sidecar(
        lora_dir,
        "card",
        activation_text="card girl, red scarf",
        preferred_weight=0.65,
        sd_version="SDXL",
        negative_text="extra arms",
        notes="my notes",
        description="a card",
    )
    info = scan(lora_dir).resolve("card")
    assert info.triggers == ("card girl", "red scarf")
    assert info.triggers_source == "sidecar"
    assert info.preferred_weight == 0.65
    assert (info.base, info.base_source) == ("sdxl", "sidecar 'sd version' 'SDXL'")
    assert (info.negative_text, info.notes, info.description) == ("extra arms", "my notes", "a card")


def test_a1111_sidecar_unset_values_are_ignored(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "card")
    lf.write_a1111_sidecar(lora_dir, "card", preferred_weight=0, sd_version="Unknown", activation_text="")
    info = scan(lora_dir).resolve("card")
    assert info.preferred_weight is None  # A1111 writes 0 for "not set"
    assert info.base == "sd15"
    assert info.triggers == ()


def test_invalid_sidecar_is_a_warning_not_a_failure(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "card")
    (lora_dir / "card.json").write_text("{not json", encoding="utf-8")
    info = scan(lora_dir).resolve("card")
    assert info.status == "ok"
    assert "sidecar card.json ignored: not valid JSON" in info.problem


def test_civitai_info(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "civ", with_metadata=False)
    lf.write_civitai_info(
        lora_dir, "civ", trained_words=["civ girl, blue hair", "civ outfit"], base_model="Pony"
    )
    info = scan(lora_dir).resolve("civ")
    assert info.triggers == ("civ girl", "blue hair", "civ outfit")
    assert info.triggers_source == "civitai"
    assert (info.base, info.base_source) == ("sdxl", "civitai baseModel 'Pony'")
    assert info.description == "Trained on  20  images."


def test_merge_order_header_sidecar_civitai_catalog(lora_dir: Path, tmp_path: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "mix", tags={"x": {"from header": 3}})
    lf.write_a1111_sidecar(
        lora_dir, "mix", activation_text="from sidecar", notes="sidecar notes", preferred_weight=0.9
    )
    lf.write_civitai_info(lora_dir, "mix", trained_words=["from civitai"])
    assert scan(lora_dir).resolve("mix").triggers == ("from civitai",)
    catalog = _catalog(
        tmp_path, "loras:\n  mix:\n    triggers: [from catalog]\n    kind: style\n    preferred_weight: 0.4\n"
    )
    info = scan(lora_dir, catalog=catalog).resolve("mix")
    assert (info.triggers, info.triggers_source) == (("from catalog",), "catalog")
    assert (info.kind, info.kind_source) == ("style", "catalog")
    assert info.preferred_weight == 0.4
    assert info.notes == "sidecar notes"  # the catalog did not set notes


def test_catalog_empty_triggers_declares_none(lora_dir: Path, tmp_path: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "add_detail", tags={"x": {"detailed background": 9}})
    catalog = _catalog(tmp_path, "loras:\n  add_detail:\n    triggers: []\n")
    assert scan(lora_dir).resolve("add_detail").triggers == ("detailed background",)
    info = scan(lora_dir, catalog=catalog).resolve("add_detail")
    assert (info.triggers, info.triggers_source) == ((), "catalog")


def test_catalog_matches_case_insensitively_and_adds_aliases(
    lora_dir: Path, tmp_path: Path, scan: ScanFn
) -> None:
    lf.write_kohya(lora_dir, "AnimeOutline")
    catalog = _catalog(
        tmp_path, "loras:\n  animeoutline:\n    aliases: [anime_outline]\n    source: civitai:1\n"
    )
    lib = scan(lora_dir, catalog=catalog)
    assert lib.resolve("anime_outline").name == "AnimeOutline"
    assert lib.resolve("AnimeOutline").source == "civitai:1"


def test_catalog_entries_without_files_are_noted(lora_dir: Path, tmp_path: Path, scan: ScanFn) -> None:
    catalog = _catalog(tmp_path, "loras:\n  ghost:\n    kind: style\n")
    lib = scan(lora_dir, catalog=catalog)
    assert lib.notes == ("catalog entries without a file: ghost",)


def test_invalid_catalog_raises_naming_file_and_key(lora_dir: Path, tmp_path: Path, scan: ScanFn) -> None:
    catalog = _catalog(tmp_path, "loras:\n  x:\n    preferred_weight: high\n")
    with pytest.raises(PresetError, match=r"loras\.yaml: loras\.x\.preferred_weight: must be a number"):
        scan(lora_dir, catalog=catalog)


def test_explicit_missing_catalog_is_an_error(lora_dir: Path, tmp_path: Path, scan: ScanFn) -> None:
    with pytest.raises(PresetError, match="file not found"):
        scan(lora_dir, catalog=tmp_path / "nope.yaml")


def test_default_catalog_applies(lora_dir: Path, tmp_path: Path) -> None:
    lf.write_kohya(lora_dir, "catgirl_v1")
    info = Library.scan([lora_dir]).resolve("catgirl")
    assert info.name == "catgirl_v1"
    assert (info.kind, info.preferred_weight, info.negative_text) == ("character", 0.7, "extra cat ears")
    assert (PRESETS_DIR / "loras.yaml").is_file()


@pytest.mark.parametrize("preview", ["card.png", "card.preview.png", "card.jpg", "card.preview.webp"])
def test_preview_image(lora_dir: Path, scan: ScanFn, preview: str) -> None:
    lf.write_kohya(lora_dir, "card")
    (lora_dir / preview).write_bytes(b"\x89PNG fake")
    assert scan(lora_dir).resolve("card").preview == str(lora_dir / preview)


def test_no_preview(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "card")
    (lora_dir / "other.png").write_bytes(b"x")
    assert scan(lora_dir).resolve("card").preview is None


def test_name_that_a_tag_cannot_express_gets_a_warning(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "weird:name")
    info = scan(lora_dir).resolve("weird:name")
    assert info.status == "ok"
    assert "a <lora:…> tag cannot name it" in info.problem


def test_missing_default_catalog_is_fine_even_as_a_string(
    lora_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.library import core

    missing = tmp_path / "presets" / "loras.yaml"
    monkeypatch.setattr(core, "DEFAULT_CATALOG", missing)
    lf.write_kohya(lora_dir, "x")
    assert Library.scan([lora_dir], catalog=str(missing)).resolve("x").status == "ok"
