"""Fused vs unfused LoRA at full SD1.5 size: per-step UNet time without LoRA, with a rank-16 kohya
LoRA and with a LyCORIS LoHa, each unfused and fused (:mod:`assistant.engine.fuse`).

Usage::

    nice -n 10 .venv/bin/python bench/fuse_bench.py [--rounds 3] [--threads 1] [--size 256]

The UNet is the released SD1.5 config (859,520,964 parameters) with random weights, at
``--size``² (latents size/8), CFG batch 2, one timestep per call; the modes run interleaved, in a new
order each round, so a loaded machine slows them alike; the paired figures divide each round's
step by the same round's no-LoRA step. Also timed: the fuse + restore itself (what a
render pays once), and switching between two cached LoRA mixes vs loading a file again. Goals
(issue 12): fused ≤ 1.01x the no-LoRA step; a switch ≥ 50x cheaper than a reload.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()

    import torch

    from assistant.engine.adapters import AdapterCache
    from assistant.engine.fuse import fused
    from assistant.engine.structured import build_sd15, lora_targets
    from tests.library.lora_layouts import LayoutSpec, write_lora

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pipe = build_sd15("full", device="meta")
    pipe.unet.to_empty(device="cpu")
    pipe.text_encoder.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in [*pipe.unet.parameters(), *pipe.text_encoder.parameters()]:
            tensor.normal_(0.0, 0.02, generator=generator)
    targets = lora_targets(pipe)
    parameters = sum(p.numel() for p in pipe.unet.parameters())
    build_seconds = time.perf_counter() - started
    folder = Path(tempfile.mkdtemp(prefix="fuse-bench-"))
    spec = LayoutSpec(rank=16, alpha=8.0)
    files = {
        "lora": write_lora(folder / "lora.safetensors", targets, "unet", layout="kohya", spec=spec, seed=1),
        "loha": write_lora(folder / "loha.safetensors", targets, "unet", layout="loha", spec=spec, seed=2),
    }
    cache = AdapterCache(pipe, capacity=4, base="sd15")
    adapters = {kind: cache.ensure(kind, file) for kind, file in files.items()}

    latent = args.size // 8
    sample = torch.randn(2, 4, latent, latent, generator=generator)
    context = torch.randn(2, 77, 768, generator=generator) * 0.1

    def step() -> float:
        mark = time.perf_counter()
        with torch.no_grad():
            pipe.unet(sample, 500, encoder_hidden_states=context)
        return time.perf_counter() - mark

    def mode(kind: str, fuse: bool) -> tuple[float, float]:
        if kind == "none":
            cache.activate([], [])
            return step(), 0.0
        cache.activate([adapters[kind]], [{"unet": 0.8}])
        if not fuse:
            return step(), 0.0
        with fused(pipe.unet) as report:
            assert report.fused, report.reason
            seconds = step()
        return seconds, report.seconds

    modes = [("none", False), ("lora", False), ("lora", True), ("loha", False), ("loha", True)]
    times: dict[str, list[float]] = {f"{k}{'-fused' if f else ''}": [] for k, f in modes}
    fuse_cost: dict[str, list[float]] = {"lora": [], "loha": []}
    step()  # warm-up
    order = random.Random(0)
    for _ in range(args.rounds):
        for kind, fuse in order.sample(modes, len(modes)):  # a new order each round: no position bias
            seconds, cost = mode(kind, fuse)
            times[f"{kind}{'-fused' if fuse else ''}"].append(seconds)
            if fuse:
                fuse_cost[kind].append(cost)

    # switching among cached mixes vs loading a file again
    switches, reloads = [], []
    for i in range(args.rounds * 3):
        kind = ("lora", "loha")[i % 2]
        mark = time.perf_counter()
        cache.activate([adapters[kind]], [{"unet": 0.5 + i * 0.01}])
        switches.append(time.perf_counter() - mark)
    for _ in range(args.rounds):
        cache.unload_all()
        mark = time.perf_counter()
        adapters["lora"] = cache.ensure("lora", files["lora"])
        cache.activate([adapters["lora"]], [{"unet": 0.8}])
        reloads.append(time.perf_counter() - mark)

    base = statistics.median(times["none"])
    result = {
        "unet_parameters": parameters,
        "size": args.size,
        "rounds": args.rounds,
        "threads": args.threads,
        "build_seconds": round(build_seconds, 1),
        "step_seconds": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "step_vs_no_lora_median": {k: round(statistics.median(v) / base, 3) for k, v in times.items()},
        # paired: each round's step over the same round's no-LoRA step (load changes between rounds)
        "step_vs_no_lora_paired": {
            k: round(statistics.median(a / b for a, b in zip(v, times["none"], strict=True)), 3)
            for k, v in times.items()
        },
        "fuse_plus_restore_seconds": {k: round(statistics.median(v), 3) for k, v in fuse_cost.items()},
        "switch_ms": round(statistics.median(switches) * 1000, 2),
        "reload_ms": round(statistics.median(reloads) * 1000, 1),
        "reload_over_switch": round(statistics.median(reloads) / statistics.median(switches), 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
