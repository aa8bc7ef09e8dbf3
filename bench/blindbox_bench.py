"""Blind box speed: an N-cell blind box vs N single generations, and batched vs sequential cells.

Usage::

    .venv/bin/python bench/blindbox_bench.py [--n 8] [--size 128] [--steps 8] [--repeat 2]

Uses the configured model (``LORA_MIXER_MODEL``) or the tiny demo pipeline, and the demo LoRAs
catgirl_v1 + cyberpunk_style. All LoRAs are loaded before any timing (one warm-up render), so
the figures compare only what a plan adds:

1. ``single``: N ``engine.generate`` calls of ONE request (same LoRAs, same weights);
2. ``blind box``: :func:`assistant.blend.blind_box` + ``generate_many(batched=False)`` — N cells
   with N different weight mixes, rendered one after another (goal: ≤ 1.05 × ``single``);
3. ``batched``: the same plan through ``generate_many(batched=True)`` (cells that differ only
   in LoRA weights share one denoising pass with per-row weights), and the same cells with the
   LoRA tags left out of the prompt text, so that every cell's text is identical — the engine
   groups cells by their prompt *text*, and a blind box writes each cell's weights into it;
4. the largest pixel difference between batched and sequential images (0-255 scale).

Prints one table and a JSON line (``--json`` prints only the JSON). Best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant import blend
from assistant.config import DEFAULT_LORA_DIR, load_settings
from assistant.types import GenerationRequest, PlannedLora

PROMPT = "1girl, catgirl, cat ears, cyberpunk, neon lights, city at night"


def _timed(action: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _max_pixel_diff(a: Sequence[object], b: Sequence[object]) -> int:
    import numpy as np

    worst = 0
    for left, right in zip(a, b, strict=True):
        x = np.asarray(left.images[0], dtype=np.int16)  # type: ignore[attr-defined]
        y = np.asarray(right.images[0], dtype=np.int16)  # type: ignore[attr-defined]
        worst = max(worst, int(np.abs(x - y).max()))
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8, help="cells (default 8)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--steps", type=int, default=8, help="sampling steps (default 8)")
    parser.add_argument("--sampler", default="Euler a", help="sampler (default Euler a)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement, best kept (default 2)")
    parser.add_argument("--seed", type=int, default=7, help="plan and image seed (default 7)")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time the ratios use: wall (default) or this process's CPU time (for shared machines)",
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from assistant.engine import Engine

    settings = load_settings().replace(lora_dirs=(str(DEFAULT_LORA_DIR),))
    engine = Engine(settings)
    info = engine.info
    lora_dir = Path(DEFAULT_LORA_DIR)
    loras = (
        PlannedLora("catgirl_v1", str(lora_dir / "catgirl_v1.safetensors"), 0.7),
        PlannedLora("cyberpunk_style", str(lora_dir / "cyberpunk_style.safetensors"), 0.5),
    )
    base = GenerationRequest(
        prompt=PROMPT + ", <lora:catgirl_v1:0.7>, <lora:cyberpunk_style:0.5>",
        negative="lowres, blurry",
        loras=loras,
        seed=args.seed,
        steps=args.steps,
        cfg=7.0,
        sampler=args.sampler,
        width=args.size,
        height=args.size,
    )
    log = (lambda *_a: None) if args.json else (lambda *a: print(*a, flush=True))
    log(
        f"model: {info.model_name} ({'tiny demo' if info.is_tiny else info.base}) "
        f"on {info.device}/{info.dtype}"
    )
    log(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    log(f"{args.n} cells, {args.size}x{args.size}, {args.steps} steps, {args.sampler}, best of {args.repeat}")

    engine.generate(base)  # warm-up: loads both adapters, builds caches
    plan = blend.blind_box(base, n=args.n, seed=args.seed)
    same_text = [dataclasses.replace(r, prompt=PROMPT) for r in plan.requests]

    def blind_sequential() -> list[object]:
        return engine.generate_many(blend.blind_box(base, n=args.n, seed=args.seed).requests, batched=False)

    actions: dict[str, Callable[[], object]] = {
        "single": lambda: [engine.generate(base) for _ in range(args.n)],
        "blind_sequential": blind_sequential,
        "blind_batched": lambda: engine.generate_many(plan.requests, batched=True),
        "text_sequential": lambda: engine.generate_many(same_text, batched=False),
        "text_batched": lambda: engine.generate_many(same_text, batched=True),
    }
    # Interleaved rounds (each round runs every measurement once, the order rotating) so that a
    # change in machine load hits all of them alike; the best time of each is kept.
    wall = {name: float("inf") for name in actions}
    cpu = {name: float("inf") for name in actions}
    outputs: dict[str, object] = {}
    names = list(actions)
    for round_index in range(args.repeat):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds, cpu_seconds, outputs[name] = _timed(actions[name])
            wall[name] = min(wall[name], seconds)
            cpu[name] = min(cpu[name], cpu_seconds)
    # On a shared machine wall time swings with other processes' load; CPU time of this process
    # does much less. --clock picks which one the ratios use (both are printed in the JSON).
    times = cpu if args.clock == "cpu" else wall
    single_s, blind_s = times["single"], times["blind_sequential"]
    batched_s, seq_text_s, bat_text_s = (
        times["blind_batched"],
        times["text_sequential"],
        times["text_batched"],
    )
    sequential, batched = outputs["blind_sequential"], outputs["blind_batched"]
    seq_text, bat_text = outputs["text_sequential"], outputs["text_batched"]
    log(f"  ({args.clock} clock)")
    log(f"  {args.n} single generations (same weights): {single_s:8.2f} s")
    log(
        f"  blind box, sequential cells:            {blind_s:8.2f} s   "
        f"ratio {blind_s / single_s:5.3f} (goal ≤ 1.05)"
    )
    passes = sum(1 for r in batched if r.timings.get("batched_cells", 1.0) > 1)  # type: ignore[attr-defined]
    log(
        f"  blind box, batched (as planned):        {batched_s:8.2f} s   "
        f"speed-up {blind_s / batched_s:5.2f}x  ({passes} of {args.n} cells in a shared pass)"
    )
    shared = sum(1 for r in bat_text if r.timings.get("batched_cells", 1.0) > 1)  # type: ignore[attr-defined]
    diff = _max_pixel_diff(seq_text, bat_text)  # type: ignore[arg-type]
    log(
        f"  same text, sequential / batched:        {seq_text_s:8.2f} s / {bat_text_s:.2f} s   "
        f"speed-up {seq_text_s / bat_text_s:5.2f}x  ({shared} of {args.n} cells shared a pass; "
        f"max pixel diff {diff}/255)"
    )
    result = {
        "model": info.model_name,
        "tiny": info.is_tiny,
        "device": info.device,
        "threads": torch.get_num_threads(),
        "cells": args.n,
        "size": args.size,
        "steps": args.steps,
        "sampler": args.sampler,
        "single_s": round(single_s, 3),
        "blindbox_sequential_s": round(blind_s, 3),
        "blindbox_vs_single": round(blind_s / single_s, 4),
        "blindbox_batched_s": round(batched_s, 3),
        "blindbox_batched_speedup": round(blind_s / batched_s, 3),
        "blindbox_cells_batched": passes,
        "same_text_sequential_s": round(seq_text_s, 3),
        "same_text_batched_s": round(bat_text_s, 3),
        "same_text_batched_speedup": round(seq_text_s / bat_text_s, 3),
        "same_text_cells_batched": shared,
        "batched_vs_sequential_max_pixel_diff": diff,
        "sequential_cells_checked": len(sequential),  # type: ignore[arg-type]
        "clock": args.clock,
        "wall_s": {name: round(value, 3) for name, value in wall.items()},
        "cpu_s": {name: round(value, 3) for name, value in cpu.items()},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
