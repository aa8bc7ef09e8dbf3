"""LoRA switching: changing among 4 loaded LoRA combos vs reloading the files from disk.

Usage::

    .venv/bin/python bench/lora_switch.py [--rounds 20] [--threads 1]

Four combos of the demo LoRAs (characters, styles, adjusters, with per-component weights).
``switch``: the engine's adapter step for a combo whose files are cached (LRU hit, then
``set_adapters`` with the full list). ``reload``: the same step after ``unload_all()`` — what a
pipeline without a cache does (``load_lora_weights`` for every file, every request). Only the
adapter step is timed (the denoising that follows is the same for both). Goal: ≥ 50×.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from assistant.config import DEFAULT_LORA_DIR, Settings
    from assistant.engine.core import Engine
    from assistant.types import PlannedLora

    if args.threads:
        torch.set_num_threads(args.threads)

    def lora(name: str, weight: float, unet: float | None = None) -> PlannedLora:
        return PlannedLora(name, str(DEFAULT_LORA_DIR / f"{name}.safetensors"), weight, unet=unet)

    combos = [
        (lora("catgirl_v1", 0.7), lora("cyberpunk_style", 0.5)),
        (lora("catgirl_v2", 0.6), lora("soft_light", 0.4)),
        (lora("jk_uniform", 0.8, 0.6), lora("add_detail", -0.5)),
        (lora("animeoutlineV4_16", 0.5), lora("add_saturation", 0.3)),
    ]
    engine = Engine(Settings(adapter_cache_size=8))
    info = engine.load()
    with engine.lock:
        for combo in combos:  # load everything once
            engine._prepare_adapters(combo)
        switch, reload = [], []
        for i in range(args.rounds):
            combo = combos[i % len(combos)]
            start = time.perf_counter()
            engine._prepare_adapters(combo)
            switch.append(time.perf_counter() - start)
        for i in range(max(4, args.rounds // 4)):
            combo = combos[i % len(combos)]
            engine.unload_all()
            start = time.perf_counter()
            engine._prepare_adapters(combo)
            reload.append(time.perf_counter() - start)
    s, r = statistics.median(switch), statistics.median(reload)
    result = {
        "bench": "lora_switch",
        "model": info.model_name,
        "switch_median_ms": round(s * 1000, 3),
        "reload_median_ms": round(r * 1000, 3),
        "speedup": round(r / s, 1),
        "goal": ">= 50x",
    }
    print(f"switch {s * 1000:.2f} ms  reload from disk {r * 1000:.2f} ms  speedup {r / s:.0f}x (goal >= 50x)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
