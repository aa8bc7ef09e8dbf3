"""The embedded default model: time to first image from a cold process, and warm render times.

    nice -n 10 .venv/bin/python bench/embedded_bench.py [--runs 3] [--json]

Each run is a fresh ``python`` process (nothing cached in memory) that does what the app does with
no model configured: import the engine, load the embedded pipeline (``models/embedded``), and
render one image at its native 128 px with the UI's defaults (DPM++ 2M Karras, 20 steps, CFG 7).
Reported: import, load, first image and total seconds (median of the runs), then warm renders at
64 and 128 px (median of 5). Goal: a 128 px image in under 2 s on a CPU. Figures are from this run
only; on a shared machine they stretch with the load average (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, time
t0 = time.perf_counter()
import torch
torch.set_num_threads(THREADS)
from assistant.config import Settings
from assistant.engine.core import Engine
from assistant.types import GenerationRequest
t1 = time.perf_counter()
engine = Engine(Settings())
info = engine.load()
t2 = time.perf_counter()
request = GenerationRequest("a striped red star on a blue background", steps=20, cfg=7.0,
                            sampler="DPM++ 2M Karras", width=128, height=128, seed=1)
engine.generate(request)
t3 = time.perf_counter()
warm = {}
for size in (64, 128):
    times = []
    for seed in range(5):
        start = time.perf_counter()
        engine.generate(GenerationRequest("a blue square on a white background", steps=20, cfg=7.0,
                                          sampler="DPM++ 2M Karras", width=size, height=size, seed=seed))
        times.append(time.perf_counter() - start)
    warm[size] = sorted(times)[2]
print("RESULT " + json.dumps({"model": info.model_name, "import_s": t1 - t0, "load_s": t2 - t1,
                              "first_image_s": t3 - t2, "total_s": t3 - t0, "warm_64_s": warm[64],
                              "warm_128_s": warm[128]}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("LORA_MIXER_MODEL", None)
    load_before = os.getloadavg()[0]
    results = []
    for _ in range(args.runs):
        code = CHILD.replace("THREADS", str(args.threads))
        command = [sys.executable, "-c", code]
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(done.stderr[-3000:])
        results.append(json.loads(line.removeprefix("RESULT ")))
    keys = ("import_s", "load_s", "first_image_s", "total_s", "warm_64_s", "warm_128_s")
    summary = {k: round(statistics.median(r[k] for r in results), 3) for k in keys}
    summary.update(model=results[0]["model"], runs=args.runs, threads=args.threads,
                   load_average=[round(load_before, 2), round(os.getloadavg()[0], 2)])  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(
            f"{summary['model']}, {args.runs} cold runs, {args.threads} thread(s), "
            f"load {summary['load_average']}"
        )
        print(f"  import {summary['import_s']:.2f} s, load {summary['load_s']:.2f} s, first 128 px image "
              f"(20 steps) {summary['first_image_s']:.2f} s, total {summary['total_s']:.2f} s")  # fmt: skip
        print(
            f"  warm: 64 px {summary['warm_64_s']:.2f} s, 128 px {summary['warm_128_s']:.2f} s "
            "(20 steps, CFG 7)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
