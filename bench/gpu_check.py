"""One prepared GPU check, no hub: full-size SD1.5-structure (and SDXL) models from the shipped configs.

    python bench/gpu_check.py                 # on a CUDA machine: fp16, 512x512, 28 steps (< 5 min)
    python bench/gpu_check.py --smoke         # anywhere: reduced widths, 64x64, 2 steps (CI runs it)
    python bench/gpu_check.py --json out.json # also write the figures as JSON

Random weights (seeded) in the real module trees built from ``assistant/engine/configs`` — the
speed of a real checkpoint of the same family, without downloading one. In ONE run, A and B
interleaved so a busy machine hits both alike, it prints:

1. it/s of LoRA Mixer's engine vs raw diffusers (the same pipeline, prompt, sampler, seed);
2. SDPA vs xformers attention (xformers only where it is installed);
3. a LoRA (rank 16 on the attention projections) unfused (PEFT adapter, what the engine runs) vs
   fused into the weights with diffusers' ``fuse_lora``, and the time ``fuse_lora`` itself takes;
4. an 8-cell blind box (8 LoRA-weight mixes) as one batched pass vs 8 sequential renders;
5. peak GPU memory of each part; SDXL (1024x1024) ours vs raw when the card has room.

On a machine without CUDA it refuses to run the full-size check and says so; ``--smoke`` runs every
code path at reduced widths on the CPU in about half a minute (tests/engine/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.engine.checkpoints import CONFIGS_DIR, tokenizers_for

#: Reduced widths for --smoke (same blocks, layers and key names as the real models).
_SMOKE = {
    "sd15": {
        "unet": {"block_out_channels": [32, 32, 64, 64], "cross_attention_dim": 32},
        "text_encoder": {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4},
        "vae": {"block_out_channels": [32, 32, 32, 32]},
    },
    "sdxl": {
        "unet": {
            "block_out_channels": [32, 64, 64],
            "attention_head_dim": [2, 4, 4],
            "cross_attention_dim": 80,
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 6 * 8 + 48,
        },
        "text_encoder": {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4},
        "text_encoder_2": {
            "hidden_size": 48,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "projection_dim": 48,
        },
        "vae": {"block_out_channels": [32, 32, 32, 32]},
    },
}
PROMPT = "1girl, cat ears, (neon city:1.2), night, rain, masterpiece"
NEGATIVE = "lowres, worst quality, blurry"


def _config(folder: str, part: str, smoke: bool) -> dict[str, Any]:
    name = "scheduler_config.json" if part == "scheduler" else "config.json"
    data = json.loads((CONFIGS_DIR / folder / part / name).read_text())
    if smoke:
        data.update(_SMOKE[folder].get(part, {}))
    return data


def build(folder: str, device: str, dtype: torch.dtype, smoke: bool) -> Any:
    """A pipeline of random weights from the shipped config folder (built on the device)."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        PNDMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(_config(folder, "unet", smoke)).to(dtype)
        vae = AutoencoderKL.from_config(_config(folder, "vae", smoke)).to(dtype)
        text = CLIPTextModel(CLIPTextConfig(**_config(folder, "text_encoder", smoke))).to(dtype)
        if folder == "sdxl":
            text_2 = CLIPTextModelWithProjection(
                CLIPTextConfig(**_config(folder, "text_encoder_2", smoke))
            ).to(dtype)
    scheduler_cls = EulerDiscreteScheduler if folder == "sdxl" else PNDMScheduler
    scheduler = scheduler_cls.from_config(_config(folder, "scheduler", smoke))
    if folder == "sdxl":
        pipe = StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=text,
            text_encoder_2=text_2,
            unet=unet,
            scheduler=scheduler,
            **tokenizers_for(folder),
        )
    else:
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            **tokenizers_for(folder),
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def write_lora(pipe: Any, folder: Path, name: str, seed: int, rank: int = 16) -> Path:
    """A random LoRA of ``rank`` on the UNet's attention projections, saved as diffusers does."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        init_lora_weights="gaussian",
    )
    pipe.unet.add_adapter(config, adapter_name="_bench")
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet, adapter_name="_bench"))
    pipe.unet.delete_adapters("_bench")
    type(pipe).save_lora_weights(
        folder, unet_lora_layers=state, weight_name=f"{name}.safetensors", safe_serialization=True
    )
    return folder / f"{name}.safetensors"


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def peak_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def check(
    folder: str, args: argparse.Namespace, device: str, dtype: torch.dtype, out: dict[str, Any]
) -> None:
    from assistant.config import Settings
    from assistant.engine.core import Engine
    from assistant.types import GenerationRequest, PlannedLora

    size = args.size or (64 if args.smoke else 1024 if folder == "sdxl" else 512)
    steps = args.steps or (2 if args.smoke else 28)
    repeat = 1 if args.smoke else args.repeat
    results: dict[str, Any] = {"size": size, "steps": steps}
    out[folder] = results
    started = time.perf_counter()
    pipe = build(folder, device, dtype, args.smoke)
    results["build_s"] = round(time.perf_counter() - started, 2)
    engine = Engine(Settings(device=device), pipeline=pipe)
    engine.load()
    request = GenerationRequest(
        PROMPT, NEGATIVE, seed=1, steps=steps, width=size, height=size, sampler="Euler", rng="GPU"
    )

    def ours() -> None:
        engine.generate(request)

    def raw() -> None:
        generator = torch.Generator(device).manual_seed(1)
        pipe(
            PROMPT,
            negative_prompt=NEGATIVE,
            num_inference_steps=steps,
            width=size,
            height=size,
            generator=generator,
        )

    timed(ours)  # warm-up (cuDNN autotune, allocator)
    peak_reset()
    samples: dict[str, list[float]] = {"ours": [], "raw": []}
    for _ in range(repeat):
        samples["ours"].append(timed(ours))
        samples["raw"].append(timed(raw))
    o, r = statistics.median(samples["ours"]), statistics.median(samples["raw"])
    results["ours_it_s"], results["raw_it_s"] = round(steps / o, 2), round(steps / r, 2)
    results["ours_vs_raw"] = round(o / r, 3)
    results["peak_gib"] = peak_gib()
    print(
        f"[{folder}] {size}x{size}, {steps} steps: ours {steps / o:.2f} it/s, "
        f"raw diffusers {steps / r:.2f} it/s (time ratio {o / r:.3f})"
    )
    if folder == "sdxl":
        return  # SDXL: the engine-vs-raw figure only (time budget)
    # 2. attention backends
    from diffusers.models.attention_processor import AttnProcessor2_0
    from diffusers.utils import is_xformers_available

    pipe.unet.set_attn_processor(AttnProcessor2_0())
    sdpa = statistics.median(timed(raw) for _ in range(repeat))
    results["sdpa_it_s"] = round(steps / sdpa, 2)
    if is_xformers_available() and device.startswith("cuda"):
        pipe.enable_xformers_memory_efficient_attention()
        xf = statistics.median(timed(raw) for _ in range(repeat))
        results["xformers_it_s"] = round(steps / xf, 2)
        pipe.unet.set_attn_processor(AttnProcessor2_0())
        print(f"[{folder}] attention: SDPA {steps / sdpa:.2f} it/s, xformers {steps / xf:.2f} it/s")
    else:
        results["xformers_it_s"] = None
        print(f"[{folder}] attention: SDPA {steps / sdpa:.2f} it/s, xformers not installed here")
    # 3. LoRA unfused vs fused, 4. blind box batched vs sequential
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        files = [write_lora(pipe, Path(tmp), f"bench_{i}", seed=i) for i in range(2)]
        loras = tuple(PlannedLora(f"bench_{i}", str(path), 0.6) for i, path in enumerate(files))
        with_lora = GenerationRequest(
            PROMPT, NEGATIVE, loras=loras[:1], seed=1, steps=steps, width=size, height=size, sampler="Euler"
        )
        timed(lambda: engine.generate(with_lora))
        unfused = statistics.median(timed(lambda: engine.generate(with_lora)) for _ in range(repeat))
        with engine.lock:
            fuse_s = timed(lambda: pipe.fuse_lora(lora_scale=0.6, components=["unet"]))
            fused = statistics.median(timed(raw) for _ in range(repeat))
            pipe.unfuse_lora(components=["unet"])
        results.update(
            unfused_lora_it_s=round(steps / unfused, 2),
            fused_lora_it_s=round(steps / fused, 2),
            fuse_lora_s=round(fuse_s, 3),
        )
        print(
            f"[{folder}] LoRA r16: unfused (PEFT adapter) {steps / unfused:.2f} it/s, "
            f"fused {steps / fused:.2f} it/s, fuse_lora took {fuse_s:.2f} s"
        )
        cells = [
            GenerationRequest(
                PROMPT,
                NEGATIVE,
                loras=(
                    PlannedLora("bench_0", str(files[0]), 0.3 + 0.05 * i),
                    PlannedLora("bench_1", str(files[1]), 0.6 - 0.05 * i),
                ),
                seed=1,
                steps=steps,
                width=size,
                height=size,
                sampler="Euler",
            )
            for i in range(8)
        ]
        peak_reset()
        batched = timed(lambda: engine.generate_many(cells, batched=True))
        batched_peak = peak_gib()
        sequential = timed(lambda: engine.generate_many(cells, batched=False))
        results.update(
            blindbox8_batched_s=round(batched, 2),
            blindbox8_sequential_s=round(sequential, 2),
            blindbox_speedup=round(sequential / batched, 2),
            blindbox_batched_peak_gib=batched_peak,
        )
        print(
            f"[{folder}] blind box, 8 cells: one batched pass {batched:.2f} s vs "
            f"8 sequential {sequential:.2f} s ({sequential / batched:.2f}x)"
        )
        engine.unload_all()
    results["peak_gib_total"] = peak_gib()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="reduced widths, 64x64, 2 steps (CPU is fine)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per figure (median)")
    parser.add_argument("--no-sdxl", action="store_true", help="skip SDXL")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print("no CUDA device here: run with --smoke for the CPU smoke version", file=sys.stderr)
        return 2
    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    device = "cuda" if cuda else "cpu"
    dtype = torch.float16 if cuda else torch.float32
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "smoke": args.smoke,
        "dtype": str(dtype).removeprefix("torch."),
    }
    started = time.perf_counter()
    print(f"device: {out['device']}, {out['dtype']}, torch {out['torch']}, diffusers {out['diffusers']}")
    check("sd15", args, device, dtype, out)
    room = cuda and torch.cuda.get_device_properties(0).total_memory > 20 * 2**30
    if not args.no_sdxl and (args.smoke or room):
        torch.cuda.empty_cache() if cuda else None
        check("sdxl", args, device, dtype, out)
    out["total_s"] = round(time.perf_counter() - started, 1)
    print(f"total {out['total_s']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
