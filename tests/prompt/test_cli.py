"""``python -m assistant parse`` through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant", "parse", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_parse_json_reports_tags_texts_and_attention() -> None:
    done = _run(
        "(masterpiece:1.2), 1girl, cat ears, <lora:catgirl_v1:0.8>",
        "--negative",
        "(worst quality:2), blurry, extra cat ears, <lora:catgirl_v1:-0.1>",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True
    assert data["loras"] == [
        {
            "name": "catgirl_v1",
            "te": 0.8,
            "unet": 0.8,
            "dyn": None,
            "in_negative": False,
            "span": [36, 57],
            "type": "lora",
            "raw": "<lora:catgirl_v1:0.8>",
        },
        {
            "name": "catgirl_v1",
            "te": -0.1,
            "unet": -0.1,
            "dyn": None,
            "in_negative": True,
            "span": [43, 65],
            "type": "lora",
            "raw": "<lora:catgirl_v1:-0.1>",
        },
    ]
    assert data["positive_text"] == "(masterpiece:1.2), 1girl, cat ears"
    assert data["negative_text"] == "(worst quality:2), blurry, extra cat ears"
    assert data["attention"]["positive"] == [["masterpiece", 1.2], [", 1girl, cat ears", 1.0]]
    assert data["attention"]["negative"] == [["worst quality", 2.0], [", blurry, extra cat ears", 1.0]]
    assert data["notes"] == []


def test_parse_human_output_is_readable() -> None:
    done = _run("1girl, <lora:猫娘 v1:0.5:0.3>, <hypernet:h:1>, (x:1.2.3)")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "LoRA tags: 1" in out
    assert "猫娘 v1  (te 0.5, unet 0.3)" in out
    assert "<hypernet:h:1>" in out
    assert "Notes:" in out
    assert "1.2.3" in out


def test_bad_weight_exits_2_with_a_message_on_stderr() -> None:
    done = _run("1girl, <lora:catgirl_v1:abc>")
    assert done.returncode == 2
    assert "abc" in done.stderr
    assert "<lora:catgirl_v1:abc>" in done.stderr
    assert "Traceback" not in done.stderr
    done = _run("1girl, <lora:catgirl_v1:5>", "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["ok"] is False
    assert "-2 to 2" in done.stderr


def test_max_weight_option() -> None:
    assert _run("<lora:x:3>", "--max-weight", "4").returncode == 0
    assert _run("<lora:x:3>").returncode == 2


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "abc"])
def test_bad_max_weight_is_a_usage_error_not_a_traceback(value: str) -> None:
    done = _run("<lora:x:0.5>", "--max-weight", value)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"--max-weight: '{value}'" in done.stderr
