"""The Ray engine against the in-process engine, in one run: overhead at 1 replica, scaling at N.

Usage::

    .venv/bin/python bench/ray_bench.py [--replicas 1] [--cells 8] [--size 256] [--steps 20] \\
        [--rounds 5] [--sequential] [--no-write]

Starts a private Ray instance on loopback with ``--replicas`` CPU replicas of the tiny demo
model (one torch thread each) and, in this process, the in-process engine on the same model.
Then, round after round (interleaved, so that load from other jobs hits both sides alike):

- ``grid``: an N-cell blind box (catgirl_v1 + cyberpunk_style, one seed) through
  ``generate_many`` — batched cells unless ``--sequential``; the in-process engine with one
  torch thread (what one replica has) and, with 2+ replicas, with as many threads as replicas
  (the whole box in one process, the fair baseline for scaling);
- ``single``: one render of one cell (the per-request cost of routing and streaming).

Every round checks the images: equal bit for bit (sequential) or within 1/255 (batched).
Prints medians, the ratios (goal at 1 replica: grid ≤ 1.05×) and the overhead in ms, and
appends one row to ``bench/RESULTS.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from results_table import append_row  # noqa: E402  (bench/ is the script folder)

from assistant.blend import blind_box  # noqa: E402
from assistant.config import DEFAULT_LORA_DIR, Settings  # noqa: E402
from assistant.types import GenerationRequest, PlannedLora  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Ray engine (`bench/ray_bench.py`)"
TABLE_HEAD = (
    "| when (UTC) | machine | replicas | grid | in-process 1 thread s | in-process N threads s | Ray s "
    "| Ray / 1 thread | Ray / N threads | grid overhead ms | single: in-process / Ray ms | images |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def cells(count: int, size: int, steps: int) -> list[GenerationRequest]:
    def lora(name: str, weight: float) -> PlannedLora:
        return PlannedLora(name, str(DEFAULT_LORA_DIR / f"{name}.safetensors"), weight)

    base = GenerationRequest(
        "1girl, cat ears, city",
        negative="lowres",
        loras=(lora("catgirl_v1", 0.6), lora("cyberpunk_style", 0.5)),
        seed=1234,
        steps=steps,
        sampler="Euler a",
        width=size,
        height=size,
    )
    return list(blind_box(base, n=count, seed=7).requests)


def pixels(results: list[Any]) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.int16) for r in results for image in r.images])


def timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = action()
    return time.perf_counter() - started, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sequential", action="store_true", help="cells one by one (default: batched)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.replicas <= 8 or not 1 <= args.rounds <= 50 or not 1 <= args.cells <= 16:
        parser.error("keep it bounded: 1-8 replicas, 1-50 rounds, 1-16 cells")

    import torch

    from assistant.backend import EngineOptions
    from assistant.cluster.front import RayEngine
    from assistant.engine.core import Engine

    settings = Settings(lora_dirs=(str(DEFAULT_LORA_DIR),))
    batched = not args.sequential
    grid = cells(args.cells, args.size, args.steps)
    single = grid[:1]
    local = Engine(settings)
    local.load()
    temp = tempfile.mkdtemp(prefix="ray-bench-")
    os.environ["LORA_MIXER_RAY_TEMP_DIR"] = temp
    os.environ["LORA_MIXER_REPLICA_THREADS"] = "1"
    started = time.perf_counter()
    ray_engine = RayEngine(settings, EngineOptions(kind="ray", replicas=args.replicas))
    ray_engine.load()
    print(f"Ray + {args.replicas} replica(s) ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    threads = [1] if args.replicas == 1 else [1, args.replicas]
    times: dict[str, list[float]] = {"ray": [], "ray_single": [], "local_single": []}
    for count in threads:
        times[f"local_{count}"] = []
    worst = 0
    try:
        # warm-up: LoRAs loaded everywhere, kernels chosen
        torch.set_num_threads(1)
        reference = local.generate_many(grid, batched=batched)
        ray_engine.generate_many(grid, batched=batched)
        for round_number in range(args.rounds):
            for count in threads:
                torch.set_num_threads(count)
                elapsed, _ = timed(lambda: local.generate_many(grid, batched=batched))
                times[f"local_{count}"].append(elapsed)
            torch.set_num_threads(1)
            elapsed, ours = timed(lambda: ray_engine.generate_many(grid, batched=batched))
            times["ray"].append(elapsed)
            worst = max(worst, int(np.abs(pixels(ours) - pixels(reference)).max()))
            times["local_single"].append(timed(lambda: local.generate(single[0]))[0])
            times["ray_single"].append(timed(lambda: ray_engine.generate(single[0]))[0])
            print(
                f"round {round_number + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in times.items()),
                file=sys.stderr,
            )
    finally:
        ray_engine.close()
        shutil.rmtree(temp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    one = med["local_1"]
    many = med[f"local_{threads[-1]}"]
    figures = {
        "replicas": args.replicas,
        "grid": f"{args.cells} cells {args.size} px {args.steps} steps "
        + ("batched" if batched else "sequential"),
        "local_1_s": one,
        "local_n_s": many,
        "ray_s": med["ray"],
        "ratio_1": med["ray"] / one,
        # paired per round (load from other jobs changes between rounds, not within one)
        "paired_ratio_1": statistics.median(
            r / a for r, a in zip(times["ray"], times["local_1"], strict=True)
        ),
        "ratio_n": med["ray"] / many,
        "overhead_ms": (med["ray"] - one) * 1000 if args.replicas == 1 else float("nan"),
        "single_local_ms": med["local_single"] * 1000,
        "single_ray_ms": med["ray_single"] * 1000,
        "max_pixel_diff": worst,
        "load_avg": os.getloadavg()[0],
    }
    for key, value in figures.items():
        print(f"{key:>16}: {value:.3f}" if isinstance(value, float) else f"{key:>16}: {value}")
    if not args.no_write:
        append_row(SECTION, TABLE_HEAD, row(figures, threads[-1]))
        print(f"appended to {RESULTS.relative_to(ROOT)}")
    return 0


def row(f: dict[str, Any], n: int) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    overhead = "—" if f["replicas"] != 1 else f"{f['overhead_ms']:+.0f}"
    images = "identical" if f["max_pixel_diff"] == 0 else f"max diff {f['max_pixel_diff']}/255"
    return (
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {platform.machine()}, {cores} cores (shared), "
        f"load {f['load_avg']:.1f} | {f['replicas']} × 1 thread | {f['grid']} | {f['local_1_s']:.3f} | "
        f"{f['local_n_s']:.3f} ({n} threads) | {f['ray_s']:.3f} | {f['ratio_1']:.3f} "
        f"(paired {f['paired_ratio_1']:.3f}) | {f['ratio_n']:.3f} | "
        f"{overhead} | {f['single_local_ms']:.0f} / {f['single_ray_ms']:.0f} | {images} |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
