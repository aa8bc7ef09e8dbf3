"""bench/gpu_check.py — the one prepared GPU check — runs end to end in its CPU smoke form, so it
works the day a GPU is lent (the full-size run needs CUDA and refuses without it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_gpu_check_smoke_runs_every_part(tmp_path: Path) -> None:
    out = tmp_path / "gpu-check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--smoke", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    sd15 = figures["sd15"]
    for key in (
        "ours_it_s",
        "raw_it_s",
        "sdpa_it_s",
        "unfused_lora_it_s",
        "fused_lora_it_s",
        "blindbox_speedup",
    ):
        assert sd15[key] > 0, key
    assert figures["sdxl"]["ours_it_s"] > 0
    assert "blind box, 8 cells" in done.stdout


def test_gpu_check_needs_cuda_for_the_full_run(capsys) -> None:
    import importlib.util

    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the full run would start")
    spec = importlib.util.spec_from_file_location("_gpu_check", ROOT / "bench" / "gpu_check.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([]) == 2
    assert "run with --smoke" in capsys.readouterr().err
