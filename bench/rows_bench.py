"""Per-row LoRA weights: one batched pass vs sequential generations, and negative-branch cost.

``python bench/rows_bench.py [--cells 8] [--steps 8] [--size 128] [--repeat 2] [--threads 1] [--device cpu]``

On the tiny offline SD1.x pipeline with two demo LoRAs from ``models/Lora`` loaded once
(``catgirl_v1``, ``cyberpunk_style``; kohya files, loaded through ``load_lora_weights``):

1. blind box: ``--cells`` cells with the two-LoRA rule (w1 ~ U(0.4, 0.7), w2 = 1 - w1, seeded),
   same image seed for every cell, CFG 7, Euler, full decode to PIL:
   - sequential: one ``set_adapters`` + ``pipe(...)`` per cell (what a plain loop does);
   - batched: :func:`assistant.engine.rows.encode_rows` (one text-encoder batch per branch, per-row
     text-encoder weights) + :func:`~assistant.engine.rows.generate_rows` (one denoising pass of
     2N UNet rows with per-row UNet weights);
   prints both times, the ratio and the largest pixel difference between the two.
2. negative-branch weights: a plain generation vs the same generation whose uncond branch runs
   with its own LoRA weights (hooks active), vs ``generate_rows`` with u == c (no hooks).
3. the per-row multiply alone: one 2-row UNet call, plain vs with a per-row adapter (20 runs each).
4. context cost: entering and leaving ``unet_rows`` (hooks attached and removed), and the number
   of hooks left outside contexts (must be 0: ordinary generation is untouched).

One script run measures both sides; each figure is the best of ``--repeat`` timed runs (the two
sides interleaved) after one warm-up generation, as wall-clock and as process CPU seconds (all
threads). The reference machine is a shared 2-core CPU box where a single wall-clock run can be
off by a factor when neighbours are busy; the CPU figures are the steadier ones there.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from assistant.engine.rows import RowScaler, encode_rows, generate_rows  # noqa: E402
from assistant.engine.tiny import build_tiny_sd15  # noqa: E402

LORA_DIR = ROOT / "models" / "Lora"
LORAS = ("catgirl_v1", "cyberpunk_style")
PROMPT = "1girl, cat ears, jk uniform, city at night, masterpiece"
NEGATIVE = "extra cat ears, worst quality, blurry, lowres"
SEED = 7
CFG = 7.0


class Best:
    """Best wall-clock and best process-CPU seconds over several runs of the same work.

    CPU seconds (all threads) are less sensitive than wall time to neighbours on a shared box.
    """

    def __init__(self) -> None:
        self.wall = float("inf")
        self.cpu = float("inf")

    def run(self, fn):  # -> fn's result
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        self.wall = min(self.wall, time.perf_counter() - wall)
        self.cpu = min(self.cpu, time.process_time() - cpu)
        return result

    def ratio(self, other: Best) -> str:
        return f"{self.wall / other.wall:.2f}x wall, {self.cpu / other.cpu:.2f}x cpu"

    def __str__(self) -> str:
        return f"{self.wall:.2f} s wall / {self.cpu:.2f} s cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per figure (best is shown)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: no OpenMP spin-waits on a shared box)"
    )
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)

    # 1. The pipeline and the LoRAs, loaded once.
    pipe = build_tiny_sd15(device=args.device)
    for name in LORAS:
        path = LORA_DIR / f"{name}.safetensors"
        if not path.is_file():
            print(f"missing demo LoRA {path}; run python -m assistant.engine.demo_loras first")
            return 1
        pipe.load_lora_weights(str(path), adapter_name=name)
    scaler = RowScaler(pipe)
    rng = random.Random(SEED)
    cells = []
    for _ in range(args.cells):
        w1 = round(rng.uniform(0.4, 0.7), 2)
        cells.append((w1, round(1 - w1, 2)))
    common = {
        "num_inference_steps": args.steps,
        "guidance_scale": CFG,
        "height": args.size,
        "width": args.size,
    }

    def generator() -> torch.Generator:
        return torch.Generator(device=args.device).manual_seed(SEED)

    def plain(weights: tuple[float, float]):
        pipe.set_adapters(list(LORAS), list(weights))
        return pipe(PROMPT, negative_prompt=NEGATIVE, generator=generator(), **common).images[0]

    plain(cells[0])  # warm-up (allocator, first-call paths)

    # 2. Blind box: sequential vs one batched pass.
    scales = {name: [c[i] for c in cells] for i, name in enumerate(LORAS)}

    def batched():
        pipe.set_adapters(list(LORAS), [1.0, 1.0])
        cond = encode_rows(pipe, scaler, [PROMPT] * len(cells), scales)
        uncond = encode_rows(pipe, scaler, [NEGATIVE] * len(cells), scales)
        gens = [generator() for _ in cells]
        return generate_rows(
            pipe, scaler, cond=cond, uncond=uncond, cond_scales=scales, generator=gens, **common
        ).images

    t_seq, t_batch = Best(), Best()
    for _ in range(args.repeat):  # interleaved, so that a busy neighbour hurts both sides alike
        sequential = t_seq.run(lambda: [plain(c) for c in cells])
        together = t_batch.run(batched)
    diff = max(
        int(np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max())
        for a, b in zip(sequential, together, strict=True)
    )
    print(
        f"machine: {os.cpu_count()} cpu, {args.threads} torch thread(s), torch {torch.__version__}, "
        f"device {args.device}; "
        f"{args.size}x{args.size}, {args.steps} steps, CFG {CFG}, LoRAs {', '.join(LORAS)}"
    )
    print(f"blind box, {len(cells)} cells: sequential {t_seq}, batched {t_batch}")
    print(f"  speed-up sequential/batched = {t_seq.ratio(t_batch)}; max pixel diff {diff}/255")

    # 3. Negative-branch weights vs a plain generation (one cell).
    c = cells[0]
    repeat = max(3, args.repeat)
    pipe.set_adapters(list(LORAS), [1.0, 1.0])
    cond = encode_rows(pipe, scaler, [PROMPT], {n: [c[i]] for i, n in enumerate(LORAS)})
    uncond = encode_rows(pipe, scaler, [NEGATIVE], {n: [c[i]] for i, n in enumerate(LORAS)})

    def rows(uncond_scales):
        return generate_rows(
            pipe,
            scaler,
            cond=cond,
            uncond=uncond,
            cond_scales={n: [c[i]] for i, n in enumerate(LORAS)},
            uncond_scales=uncond_scales,
            generator=generator(),
            **common,
        ).images[0]

    t_plain, t_same, t_neg = Best(), Best(), Best()
    for _ in range(repeat):
        t_plain.run(lambda: plain(c))
        t_same.run(lambda: rows(None))
        t_neg.run(lambda: rows({LORAS[0]: [-0.1], LORAS[1]: [c[1]]}))
    print(
        f"negative-branch weights: plain {t_plain}; rows u==c {t_same} ({t_same.ratio(t_plain)}); "
        f"rows u!=c {t_neg} ({t_neg.ratio(t_plain)} of plain)"
    )

    # 4. The per-row multiply alone: one CFG-sized UNet call (2 rows), plain vs hooked, many
    #    alternating runs (steadier than whole generations on a busy box).
    size = args.size // 8
    sample = torch.randn(2, 4, size, size, device=args.device)
    context = torch.cat([uncond.embeds, cond.embeds])
    pipe.set_adapters(list(LORAS), list(c))
    split = {LORAS[0]: [-0.1, c[0]], LORAS[1]: [c[1], c[1]]}
    u_plain, u_rows = Best(), Best()
    for _ in range(20):
        u_plain.run(lambda: pipe.unet(sample, 500, encoder_hidden_states=context))
        with scaler.unet_rows(split):
            u_rows.run(lambda: pipe.unet(sample, 500, encoder_hidden_states=context))
    print(
        f"UNet call, 2 rows: plain {u_plain.wall * 1e3:.1f} ms / {u_plain.cpu * 1e3:.1f} ms cpu, "
        f"per-row (uncond != cond) {u_rows.wall * 1e3:.1f} ms / {u_rows.cpu * 1e3:.1f} ms cpu "
        f"({u_rows.ratio(u_plain)})"
    )

    # 5. Context entry/exit and what is left outside.
    mixed = {n: [c[i], -0.1] for i, n in enumerate(LORAS)}
    n_enter = 50
    start = time.perf_counter()
    for _ in range(n_enter):
        with scaler.unet_rows(mixed):
            pass
    per_enter = (time.perf_counter() - start) / n_enter
    with scaler.unet_rows(mixed):
        hooks_inside = sum(len(m._forward_hooks) for m in pipe.unet.modules())
    hooks_outside = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in pipe.unet.modules())
    print(
        f"unet_rows enter+exit: {per_enter * 1e3:.2f} ms ({hooks_inside} lora_B hooks inside); "
        f"hooks outside contexts: {hooks_outside}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
