"""The prompt benchmark runs and prints its numbers (a smoke test, no timing assertion)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_prompt_bench_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "prompt_bench.py"), "--calls", "20", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "5 LoRA tags" in done.stdout
    assert "parse + render:" in done.stdout
    assert "µs per call" in done.stdout
