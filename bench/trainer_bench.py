"""Trainer vs a plain loop written like diffusers' ``train_text_to_image_lora.py``, in one run.

    nice -n 10 .venv/bin/python bench/trainer_bench.py [--steps 30] [--rounds 2] [--json]

Both train a LoRA on the same base model (the embedded one, else the random tiny SD1.5) and the
same generated dataset (the catgirl demo set, 20 images x 10 repeats, 128 px, batch 4) for
``--steps`` optimizer steps, each run in its own process so that its peak memory is its own:

- ``reference``: diffusers' example loop, line for line where it matters — ``unet.add_adapter(
  LoraConfig(r, lora_alpha=r, init_lora_weights="gaussian", target_modules=[to_k, to_q, to_v,
  to_out.0]))``, AdamW, accelerate, images transformed per sample every epoch, ``vae.encode(…)
  .latent_dist.sample()`` every step, MSE on the noise, the loss gathered and ``.item()``-ed every
  step;
- ``ours``: ``assistant.train.trainer.train_lora`` with the same targets, rank, alpha, optimizer
  and schedule (``unet_targets="attention"``), no latent cache — the like-for-like comparison;
- ``ours-cached``: the same with ``cache_latents=True`` (what the Train tab and the demo LoRAs use).

Runs alternate (reference, ours, ours-cached, reference, …) so CPU contention from other work on
a shared machine hits every side alike. Reported per side: median step time (the first 3 steps of
each run skipped: warm-up), peak RSS (CPU) or peak CUDA memory, and ratios to the reference.
On a CUDA machine ``--sd15 PATH`` runs the same comparison on a real SD1.5 at 512 px, batch 2,
fp16, and reports it/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def dataset(folder: Path) -> Path:
    from assistant.train.synthetic import LORA_DATASETS, write_kohya_dataset

    if not (folder / "10_catgirl").is_dir():
        write_kohya_dataset(LORA_DATASETS["catgirl_v1"], folder, seed=0)
    return folder


def base_name(sd15: str | None) -> str:
    from assistant.engine import embedded

    if sd15:
        return sd15
    return str(embedded.EMBEDDED_DIR) if embedded.available() else "tiny-sd15"


def peak_memory(device: str) -> int:
    import torch

    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# ----------------------------------------------------------------------------------------------
# The reference: diffusers' examples/text_to_image/train_text_to_image_lora.py, reduced to its loop
# ----------------------------------------------------------------------------------------------


def reference(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler
    from peft import LoraConfig
    from PIL import Image

    from assistant.train.dataset import read_dataset
    from assistant.train.trainer import load_base

    mixed = "fp16" if args.device == "cuda" else "no"
    accelerator = Accelerator(mixed_precision=mixed, cpu=args.device == "cpu")
    set_seed(args.seed)
    base = load_base(args.base)
    noise_scheduler, tokenizer = base.noise_scheduler, base.tokenizer
    text_encoder, vae, unet = base.text_encoder, base.vae, base.unet
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    weight_dtype = torch.float16 if mixed == "fp16" else torch.float32
    unet_lora_config = LoraConfig(
        r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian",
        target_modules=["to_k", "to_q", "to_v", "to_out.0"],
    )  # fmt: skip
    unet.to(accelerator.device, dtype=weight_dtype)
    vae.to(accelerator.device, dtype=weight_dtype)
    text_encoder.to(accelerator.device, dtype=weight_dtype)
    unet.add_adapter(unet_lora_config)
    if mixed == "fp16":
        for p in unet.parameters():
            if p.requires_grad:
                p.data = p.to(torch.float32)
    lora_layers = filter(lambda p: p.requires_grad, unet.parameters())
    optimizer = torch.optim.AdamW(lora_layers, lr=args.lr, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-08)
    items = read_dataset(args.dataset).items()
    resolution = args.resolution

    def transform(path: str) -> torch.Tensor:  # Resize, CenterCrop, ToTensor, Normalize([0.5], [0.5])
        with Image.open(path) as opened:
            rgb = opened.convert("RGB")
        scale = resolution / min(rgb.size)
        resized = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.BILINEAR)
        left, top = (resized.width - resolution) // 2, (resized.height - resolution) // 2
        square = resized.crop((left, top, left + resolution, top + resolution))
        array = np.asarray(square, dtype=np.float32) / 255.0
        return (torch.from_numpy(array).permute(2, 0, 1) - 0.5) / 0.5

    class Examples(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(items)

        def __getitem__(self, i: int) -> dict[str, Any]:
            ids = tokenizer(
                items[i].caption, max_length=tokenizer.model_max_length, padding="max_length",
                truncation=True, return_tensors="pt",
            ).input_ids[0]  # fmt: skip
            return {"pixel_values": transform(items[i].path), "input_ids": ids}

    def collate_fn(examples: list[dict[str, Any]]) -> dict[str, Any]:
        pixel_values = torch.stack([e["pixel_values"] for e in examples])
        pixel_values = pixel_values.to(memory_format=torch.contiguous_format).float()
        return {"pixel_values": pixel_values, "input_ids": torch.stack([e["input_ids"] for e in examples])}

    train_dataloader = torch.utils.data.DataLoader(
        Examples(), shuffle=True, collate_fn=collate_fn, batch_size=args.batch, num_workers=0
    )
    lr_scheduler = get_scheduler(
        "constant", optimizer=optimizer, num_warmup_steps=0, num_training_steps=args.steps
    )
    unet, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        unet, optimizer, train_dataloader, lr_scheduler
    )
    times: list[float] = []
    losses: list[float] = []
    global_step = 0
    unet.train()
    mark = time.perf_counter()
    while global_step < args.steps:
        for batch in train_dataloader:
            with accelerator.accumulate(unet):
                latents = vae.encode(batch["pixel_values"].to(dtype=weight_dtype)).latent_dist.sample()
                latents = latents * vae.config.scaling_factor
                noise = torch.randn_like(latents)
                bsz = latents.shape[0]
                timesteps = torch.randint(
                    0, noise_scheduler.config.num_train_timesteps, (bsz,), device=latents.device
                )
                timesteps = timesteps.long()
                noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
                encoder_hidden_states = text_encoder(batch["input_ids"], return_dict=False)[0]
                target = noise
                model_pred = unet(noisy_latents, timesteps, encoder_hidden_states, return_dict=False)[0]
                loss = F.mse_loss(model_pred.float(), target.float(), reduction="mean")
                avg_loss = accelerator.gather(loss.repeat(args.batch)).mean()
                train_loss = avg_loss.item()
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(lora_layers, 1.0)  # as in the example (an exhausted filter)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                global_step += 1
                now = time.perf_counter()
                times.append(now - mark)
                mark = now
                losses.append(train_loss)
            if global_step >= args.steps:
                break
    return {"step_times": times, "losses": losses, "peak_memory": peak_memory(args.device)}


def ours(args: argparse.Namespace, *, cached: bool) -> dict[str, Any]:
    import torch

    from assistant.train.options import TrainOptions
    from assistant.train.trainer import train_lora

    out = Path(tempfile.mkdtemp(prefix="trainer-bench-")) / "bench.safetensors"
    options = TrainOptions(
        dataset=args.dataset, output=str(out), base=args.base, rank=args.rank, alpha=float(args.rank),
        lr=args.lr, batch_size=args.batch, max_steps=args.steps, resolution=args.resolution,
        scheduler="constant", unet_targets="attention", cache_latents=cached, seed=args.seed,
        mixed_precision="fp16" if args.device == "cuda" else "no", device=args.device,
    )  # fmt: skip
    result = train_lora(options)
    del torch
    return {"step_times": result.step_times, "losses": result.losses, "peak_memory": result.peak_memory}


# ----------------------------------------------------------------------------------------------
# The comparison
# ----------------------------------------------------------------------------------------------

SIDES = ("reference", "ours", "ours-cached")


def child(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    result = reference(args) if args.child == "reference" else ours(args, cached=args.child == "ours-cached")
    print("RESULT " + json.dumps(result))
    return 0


def run_child(side: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", side, "--steps", str(args.steps), "--batch", str(args.batch),
            "--resolution", str(args.resolution), "--rank", str(args.rank), "--lr", str(args.lr),
            "--dataset", args.dataset, "--base", args.base, "--device", args.device,
            "--threads", str(args.threads), "--seed", str(args.seed)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu")
    parser.add_argument("--sd15", help="a real SD1.5 (folder or .safetensors) for the GPU comparison")
    parser.add_argument("--dataset")
    parser.add_argument("--base")
    parser.add_argument("--child", choices=SIDES)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    args.dataset = args.dataset or str(dataset(ROOT / ".cache" / "trainer-bench" / "img"))
    args.base = args.base or base_name(args.sd15)
    if args.sd15:
        args.resolution, args.batch = 512, 2
    load = os.getloadavg()[0]
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for _ in range(args.rounds):
        for side in SIDES:
            runs[side].append(run_child(side, args))
    summary: dict[str, Any] = {
        "base": Path(args.base).name, "device": args.device, "steps": args.steps, "batch": args.batch,
        "resolution": args.resolution, "rank": args.rank, "rounds": args.rounds,
        "load_average": [round(load, 2), round(os.getloadavg()[0], 2)], "cpus": os.cpu_count(),
    }  # fmt: skip
    for side in SIDES:
        times = [t for run in runs[side] for t in run["step_times"][3:]]
        step = statistics.median(times)
        summary[side] = {
            "step_s": round(step, 4),
            "it_per_s": round(1 / step, 2),
            "peak_memory_mb": round(max(run["peak_memory"] for run in runs[side]) / 2**20, 1),
        }
    ref = summary["reference"]
    for side in ("ours", "ours-cached"):
        summary[side]["time_vs_reference"] = round(summary[side]["step_s"] / ref["step_s"], 3)
        summary[side]["memory_vs_reference"] = round(
            summary[side]["peak_memory_mb"] / ref["peak_memory_mb"], 3
        )
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"trainer vs diffusers' LoRA example loop on {summary['base']} ({args.device}), "
              f"{args.steps} steps x {args.rounds} rounds, batch {args.batch}, {args.resolution} px, "
              f"rank {args.rank}; "
              f"load average {summary['load_average']} on {summary['cpus']} CPUs")  # fmt: skip
        for side in SIDES:
            row = summary[side]
            extra = ""
            if side != "reference":
                extra = f"  time x{row['time_vs_reference']}, memory x{row['memory_vs_reference']}"
            print(f"  {side:12s} {row['step_s'] * 1000:8.1f} ms/step  {row['it_per_s']:6.2f} it/s  "
                  f"peak {row['peak_memory_mb']:8.1f} MB{extra}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
