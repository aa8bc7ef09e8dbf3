"""Engine overhead: ``Engine.generate`` vs the same work done with raw diffusers, in one run.

Usage::

    .venv/bin/python bench/engine_overhead.py [--size 256] [--steps 10] [--repeat 5] [--threads 1]

Both sides use the same pipeline object, the same two demo LoRAs (already loaded), the same
per-component weights, the same scheduler (built from the pipeline config), the same seed and
output. Raw diffusers = ``set_adapters`` + a fresh scheduler + ``pipe(prompt=…)``; the engine
adds input checks, the adapter cache lookup, A1111 prompt encoding, the NaN watch, the progress callback and
infotext. Runs are interleaved (engine, raw, engine, raw, …) and the FASTEST run of each side
compared (on a shared machine the minimum is the least disturbed estimate; medians are printed
too). The engine's own wrapper time (its total minus the pipeline call) is reported separately:
it does not depend on machine load. Goal: ratio ≤ 1.03.
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
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from assistant.config import DEFAULT_LORA_DIR, Settings
    from assistant.engine.core import Engine
    from assistant.engine.schedulers import make_scheduler
    from assistant.types import GenerationRequest, PlannedLora

    if args.threads:
        torch.set_num_threads(args.threads)
    engine = Engine(Settings())
    info = engine.load()
    pipe = engine.pipeline
    loras = (
        PlannedLora("catgirl_v1", str(DEFAULT_LORA_DIR / "catgirl_v1.safetensors"), 0.6, unet=0.5),
        PlannedLora("soft_light", str(DEFAULT_LORA_DIR / "soft_light.safetensors"), 0.4),
    )
    request = GenerationRequest(
        "1girl, cat ears, soft light", "lowres, blurry", loras=loras, seed=3, steps=args.steps,
        cfg=7.0, sampler="DPM++ 2M Karras", width=args.size, height=args.size,
    )  # fmt: skip
    engine.generate(request)  # loads both adapters, warms up
    names = engine.loaded_adapters()
    weights = [{"text_encoder": 0.6, "unet": 0.5}, {"unet": 0.4}]

    def raw() -> np.ndarray:
        with engine.lock:
            pipe.set_adapters(names, weights)
            pipe.scheduler = make_scheduler(pipe.scheduler.config, "DPM++ 2M Karras", None, 3)
            out = pipe(
                prompt=request.prompt, negative_prompt=request.negative, num_inference_steps=args.steps,
                guidance_scale=7.0, width=args.size, height=args.size,
                generator=[torch.Generator().manual_seed(3)],
            )  # fmt: skip
        return np.asarray(out.images[0])

    wrapper: list[float] = []

    def ours() -> np.ndarray:
        result = engine.generate(request)
        wrapper.append(result.timings["total"] - result.timings["denoise"])
        return np.asarray(result.images[0])

    same = np.array_equal(raw(), ours())
    engine_times, raw_times = [], []
    for _ in range(args.repeat):
        for fn, bucket in ((ours, engine_times), (raw, raw_times)):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    e, r = min(engine_times), min(raw_times)
    em, rm = statistics.median(engine_times), statistics.median(raw_times)
    w = statistics.median(wrapper)
    result = {
        "bench": "engine_overhead",
        "model": info.model_name,
        "size": args.size,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "engine_min_s": round(e, 4),
        "raw_min_s": round(r, 4),
        "ratio": round(e / r, 4),
        "engine_median_s": round(em, 4),
        "raw_median_s": round(rm, 4),
        "median_ratio": round(em / rm, 4),
        "engine_wrapper_ms": round(w * 1000, 2),
        "goal": "<= 1.03",
        "identical_images": same,
    }
    print(
        f"engine {e:.3f} s  raw diffusers {r:.3f} s (best of {args.repeat})  "
        f"ratio {e / r:.3f} (goal <= 1.03); "
        f"medians ratio {em / rm:.3f}; engine wrapper {w * 1000:.1f} ms; identical images: {same}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
