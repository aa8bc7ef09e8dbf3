"""Prompt encoding cost: LoRA Mixer's A1111 encoder vs diffusers' encode_prompt (vs compel, if installed).

    python bench/encoder_bench.py [--repeat 30]

Tiny SD1.5 pipeline on the CPU, one thread; A and B interleaved in one run so machine load hits
both alike. Prompts: a plain one (one chunk, no weights), a weighted one, a long one (3 chunks with
weights and BREAK). Prints the median milliseconds per prompt pair and the ratio to diffusers'
own ``encode_prompt`` (which truncates at 77 tokens and knows no weights: the floor). compel was
the engine's encoder before A1111's encoding replaced it; it is measured only where it is
installed (it is no longer a requirement).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPTS = {
    "plain": ("1girl, cat ears, city, night", "lowres, blurry"),
    "weighted": ("1girl, (cat ears:1.3), [city], ((night))", "(worst quality:1.4), blurry"),
    "long": (
        ", ".join(["(masterpiece:1.2), best quality, 1girl, cat ears, neon city"] * 12) + " BREAK red scarf",
        "(worst quality:1.4), lowres, " * 8,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from assistant.engine.encoding import A1111Encoder
    from assistant.engine.tiny import build_tiny_sd15
    from assistant.prompt import encoder_text

    try:
        from assistant.prompt import to_compel  # removed with compel; older checkouts have it
    except ImportError:
        to_compel = None

    pipe = build_tiny_sd15()
    ours = A1111Encoder(pipe)
    compel = None
    try:
        from compel import CompelForSD

        compel = CompelForSD(pipe) if to_compel is not None else None
    except ImportError:
        pass
    import diffusers
    import transformers

    transformers.utils.logging.set_verbosity_error()  # diffusers' truncation warning, per call
    diffusers.utils.logging.set_verbosity_error()
    print(f"torch {torch.__version__}, 1 thread, tiny SD1.5, median of {args.repeat}")
    for name, (pos, neg) in PROMPTS.items():
        times: dict[str, list[float]] = {"ours": [], "diffusers": [], "compel": []}
        for _ in range(args.repeat):
            t = time.perf_counter()
            ours.encode_pair(pos, neg)
            times["ours"].append(time.perf_counter() - t)
            t = time.perf_counter()
            with torch.no_grad():
                pipe.encode_prompt(encoder_text(pos), "cpu", 1, True, negative_prompt=encoder_text(neg))
            times["diffusers"].append(time.perf_counter() - t)
            if compel is not None:
                t = time.perf_counter()
                with torch.no_grad():
                    compel(to_compel(encoder_text(pos)), negative_prompt=to_compel(encoder_text(neg)))  # type: ignore[misc]
                times["compel"].append(time.perf_counter() - t)
        med = {k: statistics.median(v) * 1000 for k, v in times.items() if v}
        ours, ref = med["ours"], med["diffusers"]
        line = f"{name:9s} ours {ours:.2f} ms  diffusers {ref:.2f} ms ({ours / ref:.2f}x)"
        if "compel" in med:
            line += f"  compel {med['compel']:.2f} ms (ours/compel {ours / med['compel']:.2f}x)"
        print(line)


if __name__ == "__main__":
    main()
