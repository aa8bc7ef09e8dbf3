"""``python -m assistant generate``: advise -> render -> PNGs with A1111 infotext (tiny model)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from assistant import infotext
from assistant.cli import main

pytestmark = pytest.mark.engine


def test_generate_writes_pngs_with_infotext(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("LORA_MIXER_MODEL", raising=False)
    code = main(
        [
            "generate",
            "1girl, cat ears, <lora:catgirl_v1:0.6>",
            "--negative",
            "lowres",
            "--seed",
            "11",
            "--steps",
            "2",
            "--size",
            "64x64",
            "--batch-size",
            "2",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    report = json.loads(captured.out)
    assert report["tiny_model"] is True
    assert "Embedded demo model" in captured.err  # the banner says what it can draw
    assert [image["seed"] for image in report["images"]] == [11, 12]
    for image in report["images"]:
        with Image.open(image["path"]) as png:
            assert png.size == (64, 64)
            parsed = infotext.parse(png.text["parameters"])
        assert parsed.seed == image["seed"]
        assert "catgirl_v1" in parsed.lora_hashes


def test_generate_bad_sampler_is_a_clean_error(tmp_path, capsys) -> None:
    code = main(
        [
            "generate",
            "1girl",
            "--sampler",
            "Eular a",
            "--steps",
            "2",
            "--size",
            "64x64",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "Unknown sampler 'Eular a'" in capsys.readouterr().err


def test_generate_dry_run_renders_nothing(tmp_path, capsys) -> None:
    assert main(["generate", "1girl, <lora:catgirl_v1:0.7>", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lora: catgirl_v1" in out
    assert not list(tmp_path.glob("*.png"))
