"""``python -m assistant loras`` in a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import lorafiles as lf

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LORA_MIXER_CACHE": str(cwd / "cache"), "PYTHONPATH": str(ROOT)}
    env.pop("LORA_MIXER_LORA_DIRS", None)
    return subprocess.run(
        [sys.executable, "-m", "assistant", "loras", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cli")
    first, second = base / "a", base / "b"
    lf.write_kohya(first, "catgirl_v1")
    lf.write_kohya(first, "猫娘_v1", tags={"x": {"猫耳": 5}})
    lf.write_html(first, "download_failed")
    lf.write_sdxl(second / "xl", "watercolor_xl")
    lf.write_pickle(second, "old", ".ckpt")
    return first, second


def test_json_lists_every_entry_with_catalog_data(folders: tuple[Path, Path]) -> None:
    first, second = folders
    result = _run("--lora-dir", str(first), "--lora-dir", str(second), "--json", cwd=first.parent)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    by_name = {item["name"]: item for item in data}
    assert set(by_name) == {"catgirl_v1", "猫娘_v1", "download_failed", "watercolor_xl", "old"}
    assert by_name["catgirl_v1"]["triggers"] == ["catgirl", "cat ears"]
    assert by_name["catgirl_v1"]["kind_source"] == "catalog"
    assert by_name["watercolor_xl"]["base"] == "sdxl"
    assert by_name["猫娘_v1"]["triggers"] == ["猫耳"]
    assert by_name["download_failed"]["status"] == "broken"
    assert by_name["old"]["status"] == "refused"
    assert by_name["old"]["loadable"] is False
    assert (first.parent / "cache").is_dir()


def test_table_and_filters(folders: tuple[Path, Path]) -> None:
    first, second = folders
    result = _run("--lora-dir", str(first), "--lora-dir", str(second), cwd=first.parent)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "BASE", "TYPE", "TRIGGERS", "WEIGHT", "STATUS"]
    row = next(line for line in lines if line.startswith("catgirl_v1"))
    assert row.split()[:7] == ["catgirl_v1", "character", "sd15", "lora", "r4", "catgirl,", "cat"]
    assert "0.7" in row
    assert any("broken: an HTML page" in line for line in lines)
    assert "5 shown (3 loadable) of 5" in result.stdout

    style = _run(
        "--lora-dir", str(first), "--lora-dir", str(second), "--kind", "style", "--json", cwd=first.parent
    )
    assert [item["name"] for item in json.loads(style.stdout)] == ["watercolor_xl"]
    found = _run("--lora-dir", str(first), "--filter", "CAT EARS", "--json", cwd=first.parent)
    assert [item["name"] for item in json.loads(found.stdout)] == ["catgirl_v1"]


def test_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    result = _run("--lora-dir", str(tmp_path / "nope"), cwd=tmp_path)
    assert result.returncode == 2
    assert f"--lora-dir {tmp_path / 'nope'}: no such folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_kind_is_rejected_by_argparse(tmp_path: Path) -> None:
    result = _run("--kind", "hairstyle", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'hairstyle'" in result.stderr
