"""``python -m assistant train-lora DATASET --output models/Lora/NAME.safetensors``: train a LoRA.

The dataset is a kohya-ss folder (``DATASET/10_name/`` images with same-stem ``.txt`` captions);
the options carry sd-scripts' names (``--rank`` is ``network_dim``, ``--alpha`` is
``network_alpha``, …); the output is a kohya-layout LoRA with sd-scripts' ``ss_*`` metadata that
A1111, ComfyUI and the LoRA Mixer library read (its trigger words come from the captions).
``--base`` defaults to the configured model, or the embedded one when none is configured.

The dataset and the settings are checked before the model loads: a bad folder costs nothing.
Progress goes to stderr (one line every ``--log-every`` steps); ``--json`` prints the result.
Several GPUs: ``accelerate launch -m assistant train-lora …``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from ..train.options import MIXED_PRECISION, OPTIMIZERS, SAVE_PRECISION, SCHEDULERS, TrainOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset", help="kohya dataset folder holding REPEATS_NAME subfolders (e.g. img/ with 10_catgirl/)"
    )
    parser.add_argument(
        "--output",
        "-o",
        required=True,
        help="the LoRA file to write, e.g. models/Lora/catgirl_v1.safetensors",
    )
    parser.add_argument(
        "--base",
        help="base model: diffusers folder, .safetensors checkpoint or hub id (default: the configured one)",
    )
    net = parser.add_argument_group("network (sd-scripts: --network_dim, --network_alpha, --network_args)")
    net.add_argument("--rank", "--network-dim", type=int, default=16, help="LoRA rank (default 16)")
    net.add_argument(
        "--alpha", "--network-alpha", type=float, default=8.0, help="LoRA alpha (default 8 = rank/2)"
    )
    net.add_argument("--conv-dim", type=int, help="LoCon: also train the 3x3 convolutions at this rank")
    net.add_argument("--conv-alpha", type=float, default=1.0, help="LoCon alpha (default 1)")
    net.add_argument("--train-text-encoder", action="store_true", help="also train the text encoder's LoRA")
    net.add_argument(
        "--network-weights", metavar="LORA", help="continue from an existing LoRA (a 'LoRA of a LoRA')"
    )
    net.add_argument(
        "--unet-targets", choices=("kohya", "attention"), default="kohya",
        help="kohya: every linear layer in the transformer blocks (default); attention: q/k/v/out only",
    )  # fmt: skip
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--lr", "--learning-rate", type=float, default=1e-4, help="learning rate (default 1e-4)")
    opt.add_argument("--unet-lr", type=float, help="UNet learning rate (default: --lr)")
    opt.add_argument("--text-encoder-lr", type=float, help="text-encoder learning rate (default: --lr)")
    opt.add_argument("--batch-size", type=int, default=2, help="images per step (default 2)")
    steps = opt.add_mutually_exclusive_group()
    steps.add_argument("--epochs", "--max-train-epochs", type=int, help="epochs (default 10)")
    steps.add_argument("--max-steps", "--max-train-steps", type=int, help="optimizer steps instead of epochs")
    opt.add_argument(
        "--resolution", type=int, help="training size in px (default: the base model's native size)"
    )
    opt.add_argument("--optimizer", "--optimizer-type", choices=OPTIMIZERS, default="adamw")
    opt.add_argument("--scheduler", "--lr-scheduler", choices=SCHEDULERS, default="cosine_with_restarts")
    opt.add_argument("--lr-warmup-steps", type=int, default=0)
    opt.add_argument("--lr-cycles", "--lr-scheduler-num-cycles", type=int, default=1)
    opt.add_argument("--min-snr-gamma", type=float, help="min-SNR loss weighting (5 is usual)")
    opt.add_argument("--noise-offset", type=float, default=0.0)
    opt.add_argument("--max-grad-norm", type=float, default=1.0)
    opt.add_argument("--gradient-accumulation-steps", type=int, default=1)
    opt.add_argument("--flip-aug", action="store_true", help="random horizontal flips")
    opt.add_argument("--seed", type=int, default=42)
    mem = parser.add_argument_group("memory and speed")
    mem.add_argument("--gradient-checkpointing", action="store_true")
    mem.add_argument(
        "--cache-latents", action="store_true", help="encode every image once instead of every step"
    )
    mem.add_argument("--mixed-precision", choices=MIXED_PRECISION, default="no")
    mem.add_argument("--save-precision", choices=SAVE_PRECISION, default="fp16")
    mem.add_argument("--device", help="cpu, cuda, … (default: what accelerate picks)")
    out = parser.add_argument_group("saving, resuming, samples")
    out.add_argument(
        "--save-every", "--save-every-n-epochs", type=int, help="a file + resumable state every N epochs"
    )
    out.add_argument("--save-every-steps", "--save-every-n-steps", type=int, help="… every N steps")
    out.add_argument("--resume", metavar="STATE", help="continue a run from its NAME-state folder")
    out.add_argument(
        "--sample-prompts", action="append", default=[], metavar="PROMPT", help="sample prompt (repeatable)"
    )
    out.add_argument(
        "--sample-every", "--sample-every-n-steps", type=int, help="render the samples every N steps"
    )
    out.add_argument("--sample-steps", type=int, default=20, help="sampler steps of each sample (default 20)")
    out.add_argument(
        "--samples-dir", help="where sample images go (default: NAME-samples/ next to the output)"
    )
    out.add_argument("--caption-extension", help="caption file extension (default: .txt, then .caption)")
    out.add_argument("--training-comment", help="stored as ss_training_comment")
    out.add_argument(
        "--trigger-phrase",
        help="ModelSpec trigger words (default: the tags in every caption, generic ones left out; "
        "'' for none)",
    )
    out.add_argument("--log-every", type=int, default=10, help="print progress every N steps (default 10)")


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions(
        dataset=args.dataset,
        output=args.output,
        base=args.base,
        rank=args.rank,
        alpha=args.alpha,
        conv_dim=args.conv_dim,
        conv_alpha=args.conv_alpha,
        lr=args.lr,
        unet_lr=args.unet_lr,
        text_encoder_lr=args.text_encoder_lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_steps=args.max_steps,
        resolution=args.resolution,
        optimizer=args.optimizer,
        scheduler=args.scheduler,
        lr_warmup_steps=args.lr_warmup_steps,
        lr_cycles=args.lr_cycles,
        train_text_encoder=args.train_text_encoder,
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        cache_latents=args.cache_latents,
        mixed_precision=args.mixed_precision,
        save_precision=args.save_precision,
        seed=args.seed,
        save_every=args.save_every,
        save_every_steps=args.save_every_steps,
        resume=args.resume,
        network_weights=args.network_weights,
        min_snr_gamma=args.min_snr_gamma,
        noise_offset=args.noise_offset,
        max_grad_norm=args.max_grad_norm,
        flip_aug=args.flip_aug,
        caption_extension=args.caption_extension,
        sample_prompts=tuple(args.sample_prompts),
        sample_every=args.sample_every,
        sample_steps=args.sample_steps,
        samples_dir=args.samples_dir,
        device=args.device,
        training_comment=args.training_comment,
        trigger_phrase=args.trigger_phrase,
        unet_targets=args.unet_targets,
    )


def run(args: argparse.Namespace) -> int:
    from ..train.dataset import describe, read_dataset

    options = options_from_args(args).checked()
    dataset = read_dataset(options.dataset, caption_extension=options.caption_extension)  # fails fast
    for note in dataset.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"dataset {dataset.root}: {dataset.num_images} images, {dataset.num_train_images} with repeats "
        f"({', '.join(f'{s.name} x{s.repeats}' for s in dataset.subsets)})",
        file=sys.stderr,
    )
    from ..train.trainer import TrainEvent, train_lora

    every = max(1, args.log_every)

    def report(event: TrainEvent) -> None:
        if event.kind == "start":
            print(
                f"training {options.output_name}: {event.total} steps, {event.epochs} epochs", file=sys.stderr
            )
            if event.message:
                print(f"note: {event.message}", file=sys.stderr)
        elif event.kind == "step" and (event.step % every == 0 or event.step == event.total):
            eta = event.elapsed / max(1, event.step) * (event.total - event.step)
            print(
                f"step {event.step}/{event.total} epoch {event.epoch}/{event.epochs} loss {event.loss:.4f} "
                f"(avg {event.avg_loss:.4f}) lr {event.lr:.2e} {event.elapsed:.0f}s, eta {eta:.0f}s",
                file=sys.stderr,
                flush=True,
            )
        elif event.kind in ("save", "sample") and event.message:
            print(f"{event.kind}: {event.message}", file=sys.stderr)

    started = time.time()
    result = train_lora(options, callback=report, cancel=threading.Event())
    summary = {
        "ok": True,
        "path": result.path,
        "name": result.name,
        "steps": result.steps,
        "epochs": result.epochs,
        "seconds": round(time.time() - started, 2),
        "final_loss": round(sum(result.losses[-20:]) / max(1, len(result.losses[-20:])), 5)
        if result.losses
        else None,
        "samples": result.samples,
        "notes": result.notes,
        "dataset": describe(dataset),
    }
    if args.json:
        from ..cli import print_json

        print_json(summary)
    else:
        print(
            f"wrote {result.path} ({result.steps} steps in {summary['seconds']} s, "
            f"final loss {summary['final_loss']})"
        )
        print(f"use it as <lora:{result.name}:0.8>")
    return 0
