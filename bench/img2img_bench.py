"""img2img and hires fix cost vs txt2img, in one run (issue 14).

Usage::

    .venv/bin/python bench/img2img_bench.py [--model sd15-reduced|tiny] [--size 256] [--steps 20]
                                            [--repeat 5] [--threads 1] [--json]

One engine, one pipeline (the img2img one is made from it with ``from_pipe``). Per round, the same
prompt and seed are rendered as txt2img, img2img at denoising strength 0.5 (A1111 runs
int(0.5 x steps) + 1 of the steps), the hires fix at 1.5x with the Latent upscaler and with
Lanczos (second pass: as many steps as the first, A1111's default), in that order, interleaved
over ``--repeat`` rounds after a warm-up; the median of each is compared with txt2img's. The step
ratio says what the sampler alone would cost; the rest is the VAE encode (img2img, Lanczos) and the
larger second pass (hires). ``sd15-reduced`` is SD1.5's real module tree at reduced widths (the
shipped config, random weights): the UNet's share of the time is closer to a real model's than the
tiny demo pipeline's. The machine is shared: the ratios, measured in one interleaved run, are
what to read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["sd15-reduced", "tiny"], default="sd15-reduced")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from PIL import Image

    from assistant import images
    from assistant.config import Settings
    from assistant.engine.core import Engine
    from assistant.img2img import sampling_steps
    from assistant.types import GenerationRequest, HiresFix

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model == "tiny":
        engine = Engine(Settings())
    else:
        from bench.gpu_check import build

        engine = Engine(Settings(), pipeline=build("sd15", "cpu", torch.float32, smoke=True))
    engine.load()
    rng = np.random.default_rng(0)
    photo = Image.fromarray((rng.random((args.size, args.size, 3)) * 255).astype("uint8"))
    base = GenerationRequest(
        "1girl, cat ears, city at night, rain",
        "lowres, blurry",
        seed=7,
        steps=args.steps,
        sampler="Euler a",
        width=args.size,
        height=args.size,
    )
    cases = {
        "txt2img": base,
        "img2img 0.5": dataclasses.replace(
            base, init_image=images.from_pil(photo, name="photo"), denoising_strength=0.5
        ),
        "hires 1.5x Latent": dataclasses.replace(
            base, hires=HiresFix(scale=1.5, upscaler="Latent"), denoising_strength=0.7
        ),
        "hires 1.5x Lanczos": dataclasses.replace(
            base, hires=HiresFix(scale=1.5, upscaler="Lanczos"), denoising_strength=0.7
        ),
    }
    for request in cases.values():  # warm-up: the img2img pipeline is made, caches fill
        engine.generate(dataclasses.replace(request, steps=2))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _round in range(args.repeat):
        for name, request in cases.items():
            started = time.perf_counter()
            engine.generate(request)
            times[name].append(time.perf_counter() - started)
    reference = statistics.median(times["txt2img"])
    twin = engine._passes().img2img_pipeline()

    def weights(*pipes: object) -> int:
        seen = {
            id(p): p.numel()
            for pipe in pipes
            for part in ("unet", "vae", "text_encoder")
            for p in getattr(pipe, part).parameters()
        }
        return sum(seen.values())

    shared = weights(engine.pipeline)
    both = weights(engine.pipeline, twin)
    rows = []
    for name, request in cases.items():
        median = statistics.median(times[name])
        rows.append(
            {
                "case": name,
                "sampler_steps": sampling_steps(request),
                "step_ratio": round(sampling_steps(request) / args.steps, 3),
                "median_s": round(median, 3),
                "min_s": round(min(times[name]), 3),
                "ratio_vs_txt2img": round(median / reference, 3),
            }
        )
    report = {
        "model": args.model,
        "size": args.size,
        "steps": args.steps,
        "repeat": args.repeat,
        "threads": torch.get_num_threads(),
        "rows": rows,
        "parameters_txt2img": shared,
        "parameters_txt2img_and_img2img": both,  # from_pipe: the same tensors, nothing added
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.model}, {args.size}x{args.size}, {args.steps} steps, {args.repeat} rounds, interleaved")
    print(f"{'case':22} {'steps':>5} {'step ratio':>10} {'median s':>9} {'ratio':>6}")
    for row in rows:
        print(
            f"{row['case']:22} {row['sampler_steps']:>5} {row['step_ratio']:>10} "
            f"{row['median_s']:>9} {row['ratio_vs_txt2img']:>6}"
        )
    print(f"weights: txt2img pipeline {shared:,}; with its img2img twin (from_pipe) {both:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
