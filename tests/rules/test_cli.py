"""``python -m assistant advise``: text and JSON output, symptoms, errors → exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "models" / "Lora"

pytestmark = pytest.mark.skipif(not DEMO_DIR.is_dir(), reason="demo LoRA folder models/Lora not present")


def test_advise_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "advise",
            "1girl, <lora:Catgirl_V1:0.8>",
            "--negative",
            "lowres",
            "--lora-dir",
            str(DEMO_DIR),
            "--json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["positive"] == "1girl, catgirl, cat ears, <lora:catgirl_v1:0.8>"
    assert data["negative"] == "lowres, extra cat ears"
    assert [c["rule"] for c in data["changes"]] == ["resolve-names", "trigger-words", "negative-text"]
    assert data["plan"][0]["name"] == "catgirl_v1"
    assert data["plan"][0]["path"].endswith("catgirl_v1.safetensors")


def test_advise_text_with_symptom(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "advise",
            "1girl, catgirl, cat ears, <lora:catgirl_v1:0.9>",
            "--symptom",
            "多耳怪",
            "--lora-dir",
            str(DEMO_DIR),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "positive: 1girl, catgirl, cat ears, <lora:catgirl_v1:0.6>" in out
    assert "(extra cat ears:1.5)" in out
    assert "[symptom-fixes]" in out


def test_advise_sdxl_base_leaves_sd15_loras_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["advise", "1girl, <lora:catgirl_v1:0.7>", "--base", "sdxl", "--lora-dir", str(DEMO_DIR)]) == 0
    )
    out = capsys.readouterr().out
    assert "[base-model]" in out
    assert "(no LoRA will be applied)" in out


def test_advise_bad_folder_and_bad_prompt_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["advise", "1girl", "--lora-dir", "/no/such/folder"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["advise", "<lora:x:abc>", "--lora-dir", str(DEMO_DIR), "--json"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] is False
    assert "not a number" in captured.err
