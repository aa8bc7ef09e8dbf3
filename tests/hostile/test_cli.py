"""Hostile input through the command line: exit code 2 and ONE line on stderr naming the problem.

The table is run in-process through :func:`assistant.cli.main` (what ``python -m assistant`` calls)
so it stays fast; a few cases also run as real subprocesses to prove the exit code reaches the
shell. Arguments longer than Linux's 128 KiB per-argument limit cannot be passed on a command
line at all, so those rows are left to the other layers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.cli import main
from tests.server import PROJECT_ROOT

from .cases import FILE_CASES, GOOD, PROMPT_CASES, FileCase, PromptCase
from .conftest import hostile_stem

ARG_MAX = 128 * 1024 - 1
CLI_CASES = [c for c in PROMPT_CASES if len(c.positive.encode()) < ARG_MAX and "\x00" not in c.positive]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _one_line_error(stderr: str, case_id: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"{case_id}: expected one line on stderr, got {len(lines)}: {stderr[:500]!r}"
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    return lines[0]


def _mentions(text: str, patterns: tuple[str, ...], case_id: str) -> None:
    for pattern in patterns:
        assert re.search(pattern, text, re.IGNORECASE), f"{case_id}: {text[:300]!r} !~ {pattern!r}"


@pytest.mark.skipif(not _has("assistant.commands.parse"), reason="the parse command is not built yet")
@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_cli_parse(case: PromptCase, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["parse", case.positive] + (["--negative", case.negative] if case.negative else [])
    code = main(argv)
    captured = capsys.readouterr()
    if case.parse == "error":
        assert code == 2, f"{case.id}: exit {code}"
        _mentions(_one_line_error(captured.err, case.id), case.mentions, case.id)
    else:
        assert code == 0, f"{case.id}: exit {code}: {captured.err[:300]}"


@pytest.mark.skipif(not _has("assistant.commands.advise"), reason="the advise command is not built yet")
@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_cli_advise(
    case: PromptCase, hostile_lora_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["advise", case.positive, "--lora-dir", str(hostile_lora_dir)]
    if case.negative:
        argv += ["--negative", case.negative]
    code = main(argv)
    captured = capsys.readouterr()
    if case.user == "error":
        assert code == 2, f"{case.id}: exit {code}"
        _mentions(_one_line_error(captured.err, case.id), case.mentions, case.id)
    else:
        assert code == 0, f"{case.id}: exit {code}: {captured.err[:300]}"
        if case.user == "skip":
            _mentions(captured.out + captured.err, case.mentions, case.id)


@pytest.mark.skipif(not _has("assistant.commands.loras"), reason="the loras command is not built yet")
def test_cli_loras_lists_every_hostile_file(
    hostile_lora_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``loras`` over a hostile folder exits 0 and names each bad file with its problem."""
    code = main(["loras", "--lora-dir", str(hostile_lora_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert GOOD in out
    for case in FILE_CASES:
        if case.status in ("refused", "broken"):
            assert hostile_stem(case.id) in out, f"{case.id} missing from the listing"


@pytest.mark.skipif(not _has("assistant.commands.parse"), reason="the parse command is not built yet")
@pytest.mark.parametrize("case_id", ["weight-nan", "weight-plus-100", "name-empty"])
def test_cli_exit_code_reaches_the_shell(case_id: str) -> None:
    case = next(c for c in PROMPT_CASES if c.id == case_id)
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "parse", case.positive],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    _mentions(_one_line_error(done.stderr, case.id), case.mentions, case.id)


@pytest.mark.skipif(not _has("assistant.commands.advise"), reason="the advise command is not built yet")
@pytest.mark.parametrize(
    "case",
    [c for c in FILE_CASES if c.status in ("refused", "broken") or c.user == "skip"],
    ids=lambda c: c.id,
)
def test_cli_advise_names_the_bad_file(
    case: FileCase, hostile_lora_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused/broken/wrong-base LoRA in a prompt: exit 0, a warning naming it and why, not planned."""
    stem = hostile_stem(case.id)
    code = main(["advise", f"1girl, <lora:{stem}:0.5>", "--lora-dir", str(hostile_lora_dir), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    advice = json.loads(captured.out)
    warnings = " | ".join(json.dumps(w, ensure_ascii=False) for w in advice["warnings"])
    _mentions(warnings, (re.escape(stem), *case.mentions, *case.user_mentions), case.id)
    assert advice["plan"] == [], "a LoRA that cannot be used must not be planned"


GENERATE_CASES = {
    "size-70x64": (["--size", "70x64"], (r"70x64", r"multiples of 8")),
    "size-0x0": (["--size", "0x0"], (r"0x0",)),
    "size-100000": (["--size", "100000x64"], (r"100000x64", r"2048")),
    "size-not-a-size": (["--size", "abcx64"], (r"abcx64", r"WIDTHxHEIGHT")),
    "seed-2-70": (["--seed", str(2**70)], (r"seed", str(2**70))),
    "seed-minus-5": (["--seed", "-5"], (r"seed -5", r"-1 for random")),
    # Checked by the engine's own limits (assistant.engine.checks), still without torch:
    "steps-0": (["--steps", "0"], (r"steps 0", r"1 to 150")),
    "steps-10000": (["--steps", "10000"], (r"steps 10000", r"1 to 150")),
    "cfg-nan": (["--cfg", "nan"], (r"CFG scale nan", r"0 to 30")),
    "cfg-inf": (["--cfg", "inf"], (r"CFG scale inf", r"0 to 30")),
    "batch-1000": (["--batch-size", "1000"], (r"batch size 1000", r"1 to 8")),
    "sampler-unknown": (["--sampler", "Euler z"], (r"Unknown sampler 'Euler z'", r"DPM\+\+ 2M Karras")),
    "sampler-bad-schedule": (["--sampler", "DDIM Karras"], (r"'DDIM' has no 'Karras'",)),
    "schedule-unknown": (
        ["--sampler", "DPM++ 2M", "--scheduler", "Linear"],
        (r"schedule type 'Linear'", r"Karras"),
    ),
}


@pytest.mark.skipif(not _has("assistant.commands.generate"), reason="the generate command is not built yet")
@pytest.mark.parametrize("name", list(GENERATE_CASES))
def test_cli_generate_refuses_settings(
    name: str, hostile_lora_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Settings refused before any model loads (``--dry-run`` never imports torch)."""
    extra, mentions = GENERATE_CASES[name]
    argv = [
        "generate",
        "1girl",
        *extra,
        "--lora-dir",
        str(hostile_lora_dir),
        "--out",
        str(tmp_path),
        "--dry-run",
    ]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, f"{name}: exit {code}"
    _mentions(_one_line_error(captured.err, name), mentions, name)
    assert not any(tmp_path.iterdir()), "nothing may be written for a refused request"


@pytest.mark.engine
@pytest.mark.skipif(not _has("assistant.commands.generate"), reason="the generate command is not built yet")
def test_cli_generate_refuses_zero_steps_after_loading(tmp_path: Path) -> None:
    """A setting only the engine checks: exit 2, the error as the last stderr line, nothing saved."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LORA_MIXER_MODEL": "", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "generate", "1girl", "--steps", "0", "--size", "64x64",
         "--out", str(tmp_path / "out")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-500:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr[-500:]
    _mentions(errors[0], (r"steps 0", r"1 to 150"), "steps-0")
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("*.png")), "nothing may be saved for a refused request"
