"""Benchmark: parse + render of a 5-LoRA, ~300-character A1111 prompt (goal: <= 100 µs per call).

Run: ``python bench/prompt_bench.py [--calls N]``. Prints µs per call for parse, render and both,
the best of several repeats (the least disturbed by other processes); CPU time of this process by
default (``--wall`` for wall-clock time). The parser memoises pure
steps (tag scan per text, tag reading per tag text), as a UI that re-parses the prompt on every
edit benefits from; the "cold caches" line measures a never-seen prompt every call.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.prompt import clear_caches, parse, render

POSITIVE = (
    "(masterpiece:1.2), best quality, 1girl, solo, cat ears, (jk uniform:1.1), pleated skirt, "
    "[blurry background], looking at viewer, soft lighting, <lora:catgirl_v1:0.6>, "
    "<lora:jk_uniform:0.5:0.4>, <lora:cyberpunk_style:0.3>, <lora:soft_light:te=0.4:unet=0.3>, "
    "<lyco:add_detail:0.2>, neon city BREAK night, rain, reflections, depth of field"
)
NEGATIVE = "(worst quality:2), lowres, blurry, extra cat ears, bad hands"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--wall", action="store_true", help="measure wall-clock time instead of CPU time")
    args = parser.parse_args(argv)

    prompt = parse(POSITIVE, NEGATIVE)
    assert len(prompt.loras) == 5, prompt.loras
    assert render(prompt) == (POSITIVE, NEGATIVE)

    # CPU time of this process: on a shared machine, wall time mostly measures the neighbours
    timer = time.perf_counter if args.wall else time.process_time

    def best(stmt) -> float:
        times = timeit.repeat(stmt, number=args.calls, repeat=args.repeats, timer=timer)
        return min(times) / args.calls * 1e6

    parse_us = best(lambda: parse(POSITIVE, NEGATIVE))
    render_us = best(lambda: render(prompt))
    both_us = best(lambda: render(parse(POSITIVE, NEGATIVE)))

    def cold() -> None:
        clear_caches()
        render(parse(POSITIVE, NEGATIVE))

    cold_us = best(cold)
    clock = "wall-clock" if args.wall else "CPU"
    tags = len(prompt.loras)
    print(f"prompt: {len(POSITIVE)} + {len(NEGATIVE)} characters, {tags} LoRA tags, {clock} time")
    print(f"parse:          {parse_us:7.1f} µs per call")
    print(f"render:         {render_us:7.1f} µs per call")
    print(f"parse + render: {both_us:7.1f} µs per call (goal <= 100 µs; tag scans and readings memoised)")
    print(f"  cold caches:  {cold_us:7.1f} µs per call (every prompt new; includes clearing the caches)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
