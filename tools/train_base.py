"""Train the embedded base model from scratch on the procedural shapes dataset.

    nice -n 10 .venv/bin/python tools/train_base.py --out models/embedded/tiny-shapes-sd15 \\
        --work .cache/train-base --seed 0 --threads 2

A Stable Diffusion 1.x architecture at tiny widths, trained here on a CPU, saved as a standard
diffusers ``StableDiffusionPipeline`` folder (fp16 safetensors), so the whole engine — LoRAs,
samplers, prompt weights — runs on it unchanged:

1. **Tokenizer**: our byte-level BPE (:mod:`assistant.engine.tokenizer`, CLIP layout) with the
   dataset's words added to its corpus (1000 tokens).
2. **VAE**: ``AutoencoderKL`` with SD's 4 blocks (1/8 resolution, 4 latent channels) at widths
   16-32-64-64, no mid-block attention (fully convolutional, so it trains on 64 px crops and
   runs at any size), 4 channels per norm group as SD's decoder (with 2 a flat colour survives the
   last GroupNorm only as a sign). Loss: L1 + L1 of 8x8 means (colours) + image-gradient L1 + KL
   (1e-6, as SD's VAE). Its ``scaling_factor`` is measured (1 / std of the latents), as SD's
   0.18215 was.
3. **Latent cache**: ``--images`` scenes encoded once at 128 px (16x16 latents) and at 64 px
   (8x8): posterior mean and std, so each step samples a latent without running the encoder.
4. **UNet + text encoder**, trained jointly: ``UNet2DConditionModel`` 32-64-128 (cross-attention
   in the two upper levels, like SD's), a 3-layer ``CLIPTextModel`` (hidden 64). SD's noise
   schedule (scaled linear, 1000 steps, epsilon), min-SNR weighting (gamma 5), offset noise
   (0.05: solid black and white backgrounds), 10 % empty captions (classifier-free guidance),
   ``--low-res-share`` of the steps at 64 px (4x cheaper than 128 px), an EMA of the UNet (what
   is shipped), a constant learning rate after warm-up (any checkpoint can be exported).

**Continuing** a shipped model: ``--init-from models/embedded/tiny-shapes-sd15`` loads its UNet and
text encoder (fp32) as the starting point of stage 4 (fresh optimizer, ``--warmup`` steps, the EMA
starting from the same weights), skips stages 1–2 by keeping its tokenizer and VAE (copied into
``--work/init`` and written back byte for byte by the export, so its ``scaling_factor`` stays valid)
and builds the latent cache with that VAE. With ``--lr-end``/``--decay-start`` this is a finishing
run (the shipped model's second run: its model card).

Every stage checkpoints into ``--work`` (``--resume`` is automatic: a rerun continues where the
last one stopped) and logs to ``--work/train.log``. The run is deterministic for a seed on one
machine and thread count (PyTorch CPU kernels), not bit-identical across machines.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.engine.tiny import SD_SCHEDULER_CONFIG  # noqa: E402
from assistant.engine.tokenizer import BOS, EOS, MODEL_MAX_LENGTH, VOCAB_SIZE, write_tokenizer_folder  # noqa: E402
from assistant.train import synthetic  # noqa: E402

VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [16, 32, 64, 64],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": synthetic.IMAGE_SIZE,
    "mid_block_add_attention": False,
}
UNET_CONFIG: dict[str, Any] = {
    "sample_size": synthetic.IMAGE_SIZE // 8,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [32, 64, 128],
    "layers_per_block": 1,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 64,
    "attention_head_dim": 4,
    "norm_num_groups": 16,
}
TEXT_HIDDEN = 64


def text_config(tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids(BOS),
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS),
        pad_token_id=tokenizer.convert_tokens_to_ids(EOS),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=4 * TEXT_HIDDEN,
        num_attention_heads=4,
        num_hidden_layers=3,
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=MODEL_MAX_LENGTH,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )


class Log:
    """Print and append to ``train.log`` (flushed: a run can be followed with ``tail -f``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.time()

    def __call__(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')} +{(time.time() - self.started) / 60:5.1f} min] {message}"
        print(line, flush=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def to_tensor(images: list[Any]) -> torch.Tensor:
    array = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def save_atomic(state: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


# ----------------------------------------------------------------------------------------------
# 1. Tokenizer
# ----------------------------------------------------------------------------------------------


def tokenizer_corpus() -> str:
    words = " ".join([*synthetic.CAPTION_WORDS, *synthetic.FILLER_WORDS])
    return "\n".join([words] * 4)


def make_tokenizer(folder: Path, *, keep: bool = False) -> Any:
    """Write the tokenizer into ``folder``; ``keep``: load the one already there (a continuation
    run keeps the shipped tokenizer byte for byte)."""
    from transformers import CLIPTokenizer

    if not keep:
        write_tokenizer_folder(folder, extra=tokenizer_corpus())
    return CLIPTokenizer.from_pretrained(folder)


# ----------------------------------------------------------------------------------------------
# 1b. Continuing from a pipeline folder (--init-from)
# ----------------------------------------------------------------------------------------------

#: The parts of a pipeline a continuation run keeps exactly (the VAE's scaling factor stays valid).
KEPT_PARTS = ("vae", "tokenizer")


def adopt_pipeline(init: Path, work: Path, log: Log) -> None:
    """Copy ``init``'s VAE and tokenizer folders into ``work`` (once), so stages 1–3 use them
    unchanged and the export writes them back byte for byte."""
    import shutil

    for part in KEPT_PARTS:
        source, target = init / part, work / "init" / part
        if not (source / ("config.json" if part == "vae" else "tokenizer.json")).exists():
            raise SystemExit(f"--init-from {init}: no {part}/ folder (is it a diffusers pipeline folder?)")
        if not target.exists():
            shutil.copytree(source, target)
            log(f"init: kept {source} -> {target}")
    if not (work / "vae" / "config.json").exists():
        shutil.copytree(work / "init" / "vae", work / "vae")


def restore_kept_parts(work: Path, out: Path) -> None:
    """Put the kept VAE/tokenizer files back into the exported folder, byte for byte."""
    import shutil

    for part in KEPT_PARTS:
        shutil.rmtree(out / part, ignore_errors=True)
        shutil.copytree(work / "init" / part, out / part)


# ----------------------------------------------------------------------------------------------
# 2. VAE
# ----------------------------------------------------------------------------------------------


def vae_batch(seed: int, start: int, batch: int, rng: np.random.Generator) -> torch.Tensor:
    """Half 64 px random crops of 128 px images, half whole images shrunk to 64 px."""
    from PIL import Image

    images = []
    for k in range(batch):
        image, _scene = synthetic.base_sample(seed, start + k)
        if k % 2:
            x, y = (int(v) for v in rng.integers(0, 65, size=2))
            images.append(image.crop((x, y, x + 64, y + 64)))
        else:
            images.append(image.resize((64, 64), Image.Resampling.BOX))
    return to_tensor(images)


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def train_vae(args: argparse.Namespace, log: Log) -> Any:
    from diffusers import AutoencoderKL

    final = args.work / "vae"
    if (final / "config.json").exists():
        log(f"VAE: found {final}, skipping")
        return AutoencoderKL.from_pretrained(final, torch_dtype=torch.float32).float()
    torch.manual_seed(args.seed)
    vae = AutoencoderKL(**VAE_CONFIG)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    state_path = args.work / "vae_state.pt"
    step = 0
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        vae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        log(f"VAE: resumed at step {step}")
    log(f"VAE: {sum(p.numel() for p in vae.parameters()) / 1e6:.2f} M parameters, {args.vae_steps} steps")
    rng = np.random.Generator(np.random.PCG64([args.seed, 1, step]))
    vae.train()
    window: list[float] = []
    mark = time.perf_counter()
    while step < args.vae_steps:
        lr = (
            args.vae_lr
            * min(1.0, (step + 1) / 100)
            * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.vae_steps)))
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = vae_batch(args.seed, 10_000_000 + step * args.vae_batch, args.vae_batch, rng)
        posterior = vae.encode(x).latent_dist
        out = vae.decode(posterior.sample()).sample
        gx, gy = image_gradients(out)
        tx, ty = image_gradients(x)
        recon = (out - x).abs().mean()
        colour = (F.avg_pool2d(out, 8) - F.avg_pool2d(x, 8)).abs().mean()  # flat colours first
        edges = (gx - tx).abs().mean() + (gy - ty).abs().mean()
        loss = recon + colour + 0.5 * edges + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        step += 1
        window.append(float(recon.detach()))
        if step % 50 == 0 or step == args.vae_steps:
            rate = 50 * args.vae_batch / (time.perf_counter() - mark)
            log(
                f"VAE step {step}/{args.vae_steps}: L1 {np.mean(window):.4f} (x{255 / 2:.1f} = "
                f"{np.mean(window) * 127.5:.1f}/255), lr {lr:.2e}, {rate:.1f} images/s"
            )
            window.clear()
            mark = time.perf_counter()
        if step % 250 == 0 or step == args.vae_steps:
            save_atomic(
                {"model": vae.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, state_path
            )
    vae.eval()
    # the latent scale, as SD measured 0.18215: 1 / std of the latents
    with torch.no_grad():
        x = to_tensor([synthetic.base_sample(args.seed, 20_000_000 + k)[0] for k in range(64)])
        latents = vae.encode(x).latent_dist.mean
    scale = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=round(scale, 5))
    log(
        f"VAE: latent mean {float(latents.mean()):.3f}, std {float(latents.std()):.3f} "
        f"-> scaling_factor {scale:.5f}"
    )
    vae.save_pretrained(final)
    return vae


# ----------------------------------------------------------------------------------------------
# 3. Latent cache
# ----------------------------------------------------------------------------------------------


def encode_cache(args: argparse.Namespace, vae: Any, log: Log) -> dict[str, torch.Tensor]:
    from PIL import Image

    path = args.work / "latents.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    log(f"latents: encoding {args.images} images at 128 and 64 px")
    means: dict[int, list[torch.Tensor]] = {128: [], 64: []}
    stds: dict[int, list[torch.Tensor]] = {128: [], 64: []}
    scenes: list[dict[str, Any]] = []
    chunk = 64
    with torch.no_grad():
        for start in range(0, args.images, chunk):
            samples = [
                synthetic.base_sample(args.seed, i) for i in range(start, min(start + chunk, args.images))
            ]
            scenes += [
                {"shape": s.shape, "colour": s.colour, "background": s.background, "texture": s.texture}
                for _im, s in samples
            ]
            for size in (128, 64):
                images = [
                    im if size == 128 else im.resize((64, 64), Image.Resampling.BOX) for im, _s in samples
                ]
                dist = vae.encode(to_tensor(images)).latent_dist
                means[size].append(dist.mean.half())
                stds[size].append(dist.std.half())
            if start % 2048 == 0:
                log(f"latents: {start + len(samples)}/{args.images}")
    cache = {
        "mean128": torch.cat(means[128]), "std128": torch.cat(stds[128]),
        "mean64": torch.cat(means[64]), "std64": torch.cat(stds[64]),
        "scenes": scenes,
    }  # fmt: skip
    save_atomic(cache, path)
    return cache


# ----------------------------------------------------------------------------------------------
# 4. UNet + text encoder
# ----------------------------------------------------------------------------------------------


class Captions:
    """Token ids for a scene's varied caption (10 % empty), cached by text."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.cache: dict[str, torch.Tensor] = {}

    def ids(self, text: str) -> torch.Tensor:
        if text not in self.cache:
            self.cache[text] = self.tokenizer(
                text, padding="max_length", max_length=MODEL_MAX_LENGTH, truncation=True, return_tensors="pt"
            ).input_ids[0]
        return self.cache[text]

    def batch(self, scenes: list[dict[str, Any]], rng: np.random.Generator, drop: float) -> torch.Tensor:
        texts = []
        for s in scenes:
            scene = synthetic.Scene(**s, cx=0.5, cy=0.5, radius=0.3, angle=0.0)
            texts.append("" if rng.random() < drop else synthetic.caption(scene, rng))
        return torch.stack([self.ids(t) for t in texts])


def compute_snr(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    alpha = alphas_cumprod[timesteps]
    return alpha / (1 - alpha)


def train_unet(args: argparse.Namespace, tokenizer: Any, cache: dict[str, Any], log: Log) -> tuple[Any, Any]:
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(args.seed)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    text_encoder = CLIPTextModel(text_config(tokenizer))
    ema = UNet2DConditionModel(**UNET_CONFIG)
    ema.load_state_dict(unet.state_dict())
    ema.requires_grad_(False)
    params = [*unet.parameters(), *text_encoder.parameters()]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-2)
    scheduler = DDPMScheduler.from_config({**SD_SCHEDULER_CONFIG})
    alphas = scheduler.alphas_cumprod
    state_path = args.work / "unet_state.pt"
    step = 0
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        log(f"UNet: resumed at step {step}")
    elif args.init_from is not None:
        # a continuation: the shipped UNet (its EMA) and text encoder in fp32, the EMA starting
        # from the same weights, a fresh optimizer (its warm-up is --warmup)
        shipped_unet = UNet2DConditionModel.from_pretrained(args.init_from / "unet")
        shipped_text = CLIPTextModel.from_pretrained(args.init_from / "text_encoder")
        unet.load_state_dict({k: v.float() for k, v in shipped_unet.state_dict().items()})
        text_encoder.load_state_dict({k: v.float() for k, v in shipped_text.state_dict().items()})
        ema.load_state_dict(unet.state_dict())
        log(f"UNet: initialised from {args.init_from} (UNet, text encoder; EMA = the same weights)")
    n_unet = sum(p.numel() for p in unet.parameters()) / 1e6
    n_te = sum(p.numel() for p in text_encoder.parameters()) / 1e6
    log(
        f"UNet: {n_unet:.2f} M parameters, text encoder {n_te:.2f} M; {args.unet_steps} steps of {args.batch}"
    )
    captions = Captions(tokenizer)
    scenes = cache["scenes"]
    total = len(scenes)
    unet.train()
    text_encoder.train()
    losses: list[float] = []
    curve: list[tuple[int, float]] = []
    mark = time.perf_counter()
    seen = 0
    while step < args.unet_steps:
        rng = np.random.Generator(np.random.PCG64([args.seed, 2, step]))
        # warm-up, then constant: the EMA is the model, and a run can stop (and export) at any step;
        # with --lr-end, a cosine decay from --decay-start to the last step (a finishing stage)
        lr = args.lr * min(1.0, (step + 1) / max(1, args.warmup))
        if args.lr_end is not None and step >= args.decay_start:
            done = (step - args.decay_start) / max(1, args.unet_steps - args.decay_start)
            lr = args.lr_end + (args.lr - args.lr_end) * 0.5 * (1 + math.cos(math.pi * done))
        for group in optimizer.param_groups:
            group["lr"] = lr
        size = 64 if rng.random() < args.low_res_share else 128
        index = torch.from_numpy(rng.integers(0, total, size=args.batch))
        mean, std = cache[f"mean{size}"][index].float(), cache[f"std{size}"][index].float()
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**31)))
        latents = (mean + std * torch.randn(mean.shape, generator=generator)) * args.scaling_factor
        noise = torch.randn(latents.shape, generator=generator)
        noise += args.noise_offset * torch.randn(
            (latents.shape[0], latents.shape[1], 1, 1), generator=generator
        )
        timesteps = torch.randint(0, 1000, (args.batch,), generator=generator)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        ids = captions.batch([scenes[int(i)] for i in index], rng, drop=0.1)
        hidden = text_encoder(ids)[0]
        pred = unet(noisy, timesteps, hidden).sample
        snr = compute_snr(alphas, timesteps)
        weights = torch.clamp(snr, max=5.0) / snr
        loss = (F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3)) * weights).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        # from scratch the EMA starts fast (it starts from noise); a continuation's starts good
        decay = args.ema if args.init_from is not None else min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters(), strict=True):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        step += 1
        seen += args.batch
        losses.append(float(loss.detach()))
        if step % 100 == 0 or step == args.unet_steps:
            rate = seen / (time.perf_counter() - mark)
            curve.append((step, float(np.mean(losses))))
            log(
                f"UNet step {step}/{args.unet_steps}: loss {np.mean(losses):.4f}, lr {lr:.2e}, "
                f"{rate:.0f} latents/s"
            )
            losses.clear()
            seen = 0
            mark = time.perf_counter()
        if step % args.save_every == 0 or step == args.unet_steps:
            save_atomic(
                {"unet": unet.state_dict(), "text_encoder": text_encoder.state_dict(),
                 "ema": ema.state_dict(), "optimizer": optimizer.state_dict(), "step": step},
                state_path,
            )  # fmt: skip
            with (args.work / "loss_curve.jsonl").open("a", encoding="utf-8") as handle:
                for point in curve:
                    handle.write(json.dumps({"step": point[0], "loss": round(point[1], 5)}) + "\n")
            curve.clear()
        if args.preview_every and step % args.preview_every == 0:
            preview(args, ema, text_encoder, tokenizer, step=step, log=log)
    return ema, text_encoder


# ----------------------------------------------------------------------------------------------
# 5. Export and preview
# ----------------------------------------------------------------------------------------------


def build_pipeline(vae: Any, unet: Any, text_encoder: Any, tokenizer: Any) -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(SD_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


PREVIEW_PROMPTS = (
    "a red circle on a white background",
    "a blue square on a yellow background",
    "a striped green triangle on a black background",
    "a dotted yellow star on a purple background",
    "an orange circle on a gray background",
    "a white star on a blue background",
    "a purple square on a green background",
    "a black triangle on an orange background",
)


def preview(
    args: argparse.Namespace, unet: Any, text_encoder: Any, tokenizer: Any, *, step: int, log: Log
) -> None:
    from diffusers import AutoencoderKL
    from PIL import Image

    vae = AutoencoderKL.from_pretrained(args.work / "vae")
    was_training = text_encoder.training
    text_encoder.eval()
    pipe = build_pipeline(vae, unet, text_encoder, tokenizer)
    tiles = []
    with torch.no_grad():
        for size in (128, 64):
            for k, prompt in enumerate(PREVIEW_PROMPTS):
                generator = torch.Generator().manual_seed(k)
                image = pipe(prompt, num_inference_steps=20, guidance_scale=5.0, height=size, width=size,
                             generator=generator).images[0]  # fmt: skip
                tiles.append(image.resize((128, 128), Image.Resampling.NEAREST))
    grid = Image.new("RGB", (128 * len(PREVIEW_PROMPTS), 256))
    for i, tile in enumerate(tiles):
        grid.paste(tile, ((i % len(PREVIEW_PROMPTS)) * 128, (i // len(PREVIEW_PROMPTS)) * 128))
    path = args.work / f"preview_{step:06d}.png"
    grid.save(path)
    log(f"preview: {path}")
    with torch.no_grad():
        log(f"preview: {shape_report(pipe)}")
    if was_training:
        text_encoder.train()


#: (shape colour, background) pairs for the shape check: contrasting, as a user would ask.
CHECK_PAIRS = (("red", "white"), ("blue", "yellow"), ("yellow", "blue"), ("white", "black"),
               ("green", "purple"), ("black", "orange"))  # fmt: skip


def shape_report(pipe: Any, seeds: int = 6, size: int = 128) -> str:
    """How often each shape prompt draws that shape (:func:`assistant.train.metrics.shape_of`,
    no classifier), and the texture contrast of striped/dotted vs plain squares."""
    from assistant.train import metrics

    def render(prompt: str, seed: int) -> Any:
        generator = torch.Generator().manual_seed(seed)
        return pipe(prompt, num_inference_steps=20, guidance_scale=7.0, height=size, width=size,
                    generator=generator).images[0]  # fmt: skip

    hits, seen = {}, {}
    for shape in synthetic.SHAPES:
        found = []
        for seed in range(seeds):
            colour, background = CHECK_PAIRS[seed % len(CHECK_PAIRS)]
            found.append(metrics.shape_of(render(f"a {colour} {shape} on a {background} background", seed)))
        hits[shape] = sum(f == shape for f in found)
        seen[shape] = ",".join(f[:2] for f in found)
    contrast = {}
    for texture in ("plain", "striped", "dotted"):
        word = "" if texture == "plain" else f"{texture} "
        images = [render(f"a {word}red square on a blue background", seed) for seed in range(3)]
        contrast[texture] = round(metrics.mean_of(metrics.texture_contrast, images), 3)
    total = sum(hits.values()) / (seeds * len(synthetic.SHAPES))
    shapes = " ".join(f"{k} {hits[k]}/{seeds} ({seen[k]})" for k in synthetic.SHAPES)
    return f"shapes {total:.0%}: {shapes}; texture contrast {contrast}"


def export(
    args: argparse.Namespace, vae: Any, unet: Any, text_encoder: Any, tokenizer: Any, *, log: Log
) -> None:
    pipe = build_pipeline(vae, unet, text_encoder, tokenizer)
    pipe.to(torch.float16)
    args.out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(args.out, safe_serialization=True)
    if args.init_from is not None:
        restore_kept_parts(args.work, args.out)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    log(f"exported {args.out} ({size / 1e6:.1f} MB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "embedded" / "tiny-shapes-sd15")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "train-base")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: best on a shared CPU)")
    parser.add_argument("--vae-steps", type=int, default=1400)
    parser.add_argument("--vae-batch", type=int, default=8)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--images", type=int, default=8192, help="scenes in the latent cache")
    parser.add_argument("--unet-steps", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=7e-4)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--noise-offset", type=float, default=0.05)
    parser.add_argument("--lr-end", type=float, default=None, help="cosine-decay the LR to this value")
    parser.add_argument("--decay-start", type=int, default=0, help="UNet step where the decay starts")
    parser.add_argument("--save-every", type=int, default=500, help="UNet checkpoint every N steps")
    parser.add_argument("--warmup", type=int, default=200, help="UNet LR warm-up steps")
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="continue from this pipeline folder: its UNet and text encoder are trained further "
        "(fresh optimizer), its VAE and tokenizer are kept exactly (the VAE stage is skipped)",
    )
    parser.add_argument("--check-only", action="store_true", help="log the shape check of the last EMA")
    parser.add_argument("--preview-every", type=int, default=1000)
    parser.add_argument(
        "--low-res-share",
        type=float,
        default=0.8,
        help="share of UNet steps at 64 px (8x8 latents, 4x cheaper)",
    )
    parser.add_argument("--export-only", action="store_true", help="export the last UNet checkpoint's EMA")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    log = Log(args.work / "train.log")
    log(f"train_base: {' '.join(sys.argv[1:])} (torch {torch.__version__}, {args.threads} threads)")
    started = time.time()
    if args.init_from is not None:
        adopt_pipeline(args.init_from, args.work, log)
        tokenizer = make_tokenizer(args.work / "init" / "tokenizer", keep=True)
    else:
        tokenizer = make_tokenizer(args.work / "tokenizer")
    # 2. VAE, 3. latents
    vae = train_vae(args, log)
    args.scaling_factor = float(vae.config.scaling_factor)
    cache = encode_cache(args, vae, log)
    # 4. UNet + text encoder
    if args.export_only or args.check_only:
        args.unet_steps = 0  # load the checkpoint, train nothing
    unet, text_encoder = train_unet(args, tokenizer, cache, log)
    if args.check_only:
        unet.eval()
        text_encoder.eval()
        with torch.no_grad():
            log(f"check: {shape_report(build_pipeline(vae, unet, text_encoder, tokenizer))}")
        return 0
    # 5. Export
    unet.eval()
    text_encoder.eval()
    export(args, vae, unet, text_encoder, tokenizer, log=log)
    log(f"done in {(time.time() - started) / 60:.1f} min (this invocation)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
