"""The trainer's settings, with kohya-ss's names for the knobs, checked before anything loads.

Pure Python. :class:`TrainOptions` is what the CLI (``python -m assistant train-lora``), the
Train tab and the tests build; :meth:`TrainOptions.check` returns every problem at once. The
kohya ``train_network.py`` flag each field mirrors is in its comment.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainingError

OPTIMIZERS = ("adamw", "adamw8bit", "adafactor", "prodigy")
#: diffusers' ``get_scheduler`` names, which are sd-scripts' ``--lr_scheduler`` names.
SCHEDULERS = (
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
)
MIXED_PRECISION = ("no", "fp16", "bf16")
SAVE_PRECISION = ("fp16", "bf16", "float")
MAX_RANK = 1024
MAX_STEPS = 1_000_000


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """One training run. Paths are strings; ``None`` means "the default" as documented per field."""

    dataset: str  # --train_data_dir
    output: str  # --output_dir + --output_name (+ .safetensors)
    base: str | None = (
        None  # --pretrained_model_name_or_path; None: the configured model (or the embedded one)
    )
    rank: int = 16  # --network_dim
    alpha: float = 8.0  # --network_alpha
    conv_dim: int | None = None  # --network_args conv_dim (LoCon); None: attention/linear layers only
    conv_alpha: float = 1.0  # --network_args conv_alpha
    lr: float = 1e-4  # --learning_rate
    unet_lr: float | None = None  # --unet_lr (None: lr)
    text_encoder_lr: float | None = None  # --text_encoder_lr (None: lr)
    batch_size: int = 2  # --train_batch_size
    epochs: int | None = None  # --max_train_epochs (None: 10 unless max_steps is set)
    max_steps: int | None = None  # --max_train_steps
    resolution: int | None = None  # --resolution (square); None: the base model's native size
    optimizer: str = "adamw"  # --optimizer_type
    scheduler: str = "cosine_with_restarts"  # --lr_scheduler
    lr_warmup_steps: int = 0  # --lr_warmup_steps
    lr_cycles: int = 1  # --lr_scheduler_num_cycles
    train_text_encoder: bool = False  # (sd-scripts trains it unless --network_train_unet_only)
    gradient_checkpointing: bool = False  # --gradient_checkpointing
    gradient_accumulation_steps: int = 1  # --gradient_accumulation_steps
    cache_latents: bool = False  # --cache_latents
    mixed_precision: str = "no"  # --mixed_precision
    save_precision: str = "fp16"  # --save_precision
    seed: int = 42  # --seed
    save_every: int | None = None  # --save_every_n_epochs (a file + a resumable state)
    save_every_steps: int | None = None  # --save_every_n_steps
    resume: str | None = None  # --resume (a state folder written by save_every)
    network_weights: str | None = None  # --network_weights (continue from an existing LoRA)
    min_snr_gamma: float | None = None  # --min_snr_gamma
    noise_offset: float = 0.0  # --noise_offset
    max_grad_norm: float = 1.0  # --max_grad_norm
    flip_aug: bool = False  # --flip_aug
    caption_extension: str | None = None  # --caption_extension (None: .txt, then .caption)
    sample_prompts: tuple[str, ...] = ()  # --sample_prompts (one per line in sd-scripts' file)
    sample_every: int | None = None  # --sample_every_n_steps
    sample_steps: int = 20
    samples_dir: str | None = None  # None: NAME-samples/ next to the output
    device: str | None = None  # None: what accelerate picks (CUDA when there is one)
    training_comment: str | None = None  # --training_comment
    #: --metadata_trigger_phrase (ModelSpec). None: the tags every caption has, generic ones
    #: ("1girl", "solo", quality words) left out; "" writes none.
    trigger_phrase: str | None = None
    unet_targets: str = "kohya"  # "kohya" (every linear/1x1 layer in transformer blocks) | "attention"

    def replace(self, **changes: object) -> TrainOptions:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def output_name(self) -> str:
        """The file stem: sd-scripts' ``--output_name`` and the LoRA's name in prompts."""
        return Path(self.output).name.removesuffix(".safetensors")

    @property
    def output_path(self) -> Path:
        path = Path(self.output).expanduser()
        return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")

    @property
    def samples_path(self) -> Path:
        return (
            Path(self.samples_dir)
            if self.samples_dir
            else self.output_path.with_name(self.output_name + "-samples")
        )

    @property
    def state_dir(self) -> Path:
        """Where resumable training state is kept: ``.NAME-state`` next to the output (sd-scripts
        writes ``NAME-state``; the dot keeps it out of A1111's and our library's LoRA scans)."""
        return self.output_path.with_name("." + self.output_name + "-state")

    def check(self) -> list[str]:
        """Every problem with these settings (empty: fine). Files are checked for existence only."""
        problems: list[str] = []

        def need(ok: bool, message: str) -> None:
            if not ok:
                problems.append(message)

        need(1 <= self.rank <= MAX_RANK, f"--rank {self.rank}: must be 1 to {MAX_RANK}")
        need(self.alpha > 0, f"--alpha {self.alpha:g}: must be above 0 (sd-scripts' usual value is rank/2)")
        if self.conv_dim is not None:
            need(1 <= self.conv_dim <= MAX_RANK, f"--conv-dim {self.conv_dim}: must be 1 to {MAX_RANK}")
            need(self.conv_alpha > 0, f"--conv-alpha {self.conv_alpha:g}: must be above 0")
        for name, value in (
            ("--lr", self.lr),
            ("--unet-lr", self.unet_lr),
            ("--text-encoder-lr", self.text_encoder_lr),
        ):
            if value is not None:
                need(0 <= value <= 10, f"{name} {value:g}: must be 0 to 10 (1e-4 is usual; prodigy uses 1)")
        need(1 <= self.batch_size <= 256, f"--batch-size {self.batch_size}: must be 1 to 256")
        need(
            1 <= self.gradient_accumulation_steps <= 1024,
            f"--gradient-accumulation-steps {self.gradient_accumulation_steps}: must be 1 to 1024",
        )
        if self.epochs is not None and self.max_steps is not None:
            problems.append("give --epochs or --max-steps, not both")
        if self.epochs is not None:
            need(1 <= self.epochs <= 10_000, f"--epochs {self.epochs}: must be 1 to 10000")
        if self.max_steps is not None:
            need(1 <= self.max_steps <= MAX_STEPS, f"--max-steps {self.max_steps}: must be 1 to {MAX_STEPS}")
        if self.resolution is not None:
            need(
                64 <= self.resolution <= 2048 and self.resolution % 8 == 0,
                f"--resolution {self.resolution}: must be a multiple of 8 from 64 to 2048",
            )
        need(self.optimizer in OPTIMIZERS, f"--optimizer {self.optimizer}: valid: {', '.join(OPTIMIZERS)}")
        need(self.scheduler in SCHEDULERS, f"--scheduler {self.scheduler}: valid: {', '.join(SCHEDULERS)}")
        need(self.lr_warmup_steps >= 0, f"--lr-warmup-steps {self.lr_warmup_steps}: must be 0 or more")
        need(self.lr_cycles >= 1, f"--lr-cycles {self.lr_cycles}: must be 1 or more")
        need(
            self.mixed_precision in MIXED_PRECISION,
            f"--mixed-precision {self.mixed_precision}: valid: {', '.join(MIXED_PRECISION)}",
        )
        need(
            self.save_precision in SAVE_PRECISION,
            f"--save-precision {self.save_precision}: valid: {', '.join(SAVE_PRECISION)}",
        )
        for name, value in (("--save-every", self.save_every), ("--save-every-steps", self.save_every_steps)):
            if value is not None:
                need(value >= 1, f"{name} {value}: must be 1 or more")
        if self.sample_every is not None:
            need(self.sample_every >= 1, f"--sample-every {self.sample_every}: must be 1 or more")
            need(bool(self.sample_prompts), "--sample-every needs --sample-prompts")
        need(1 <= self.sample_steps <= 150, f"--sample-steps {self.sample_steps}: must be 1 to 150")
        if self.min_snr_gamma is not None:
            need(
                self.min_snr_gamma > 0,
                f"--min-snr-gamma {self.min_snr_gamma:g}: must be above 0 (5 is usual)",
            )
        need(
            0 <= self.noise_offset <= 1,
            f"--noise-offset {self.noise_offset:g}: must be 0 to 1 (0.05-0.1 is usual)",
        )
        need(self.max_grad_norm >= 0, f"--max-grad-norm {self.max_grad_norm:g}: must be 0 (off) or more")
        need(
            self.unet_targets in ("kohya", "attention"),
            f"unet_targets {self.unet_targets!r}: kohya or attention",
        )
        name = self.output_name
        need(
            bool(name) and not name.startswith(".") and all(c not in name for c in '<>:"|?*\0'),
            f"--output {self.output}: the file name '{name}' cannot be a LoRA name "
            f"(it goes into <lora:{name}:1>)",
        )
        need(
            ":" not in name,
            f"--output {self.output}: a LoRA name cannot contain ':' (A1111 tags split on it)",
        )
        parent = self.output_path.parent
        need(
            not parent.exists() or (parent.is_dir() and os.access(parent, os.W_OK)),
            f"--output {self.output}: cannot write into {parent}",
        )
        if self.network_weights is not None:
            weights = Path(self.network_weights).expanduser()
            need(weights.is_file(), f"--network-weights {self.network_weights}: no such file")
            need(
                weights.suffix == ".safetensors",
                f"--network-weights {self.network_weights}: "
                "only .safetensors LoRA files are read (no pickles)",
            )
        if self.resume is not None:
            need(
                (Path(self.resume).expanduser() / "train_state.json").is_file(),
                f"--resume {self.resume}: not a training state folder (no train_state.json); "
                f"--save-every writes one as {self.state_dir}",
            )
        return problems

    def checked(self) -> TrainOptions:
        """Self, or TrainingError listing every problem."""
        problems = self.check()
        if problems:
            raise TrainingError(
                "Training settings are not valid:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        return self
