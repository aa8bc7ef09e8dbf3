"""The LoRA training loop (torch side): diffusers + PEFT + accelerate, writing kohya files.

Built the way diffusers' ``examples/text_to_image/train_text_to_image_lora.py`` trains — frozen
base, a PEFT ``LoraConfig`` adapter added to the UNet (and optionally the text encoder),
noise-prediction MSE with optional min-SNR weighting, accelerate for devices, mixed precision,
gradient accumulation and several GPUs (``accelerate launch -m assistant train-lora …``) —
with sd-scripts' choices where users expect them:

- **Targets**: every linear and 1x1-conv layer inside the UNet's transformer blocks (attention
  q/k/v/out, feed-forward, proj_in/out) and the text encoder's attention + MLP, as sd-scripts'
  ``networks.lora``; ``conv_dim`` adds LoCon (the 3x3 convs of ResNet, down- and up-sampling
  blocks, at their own rank and alpha). ``unet_targets="attention"`` gives diffusers' set.
- **Output**: a kohya-layout ``.safetensors`` (:mod:`assistant.train.kohya`) with the ``ss_*``
  metadata and the precomputed hashes, written atomically (the library never sees half a file).
- **network_weights**: the adapters start from an existing kohya LoRA (same modules, ranks and
  alphas as the file), the "LoRA of a LoRA" of the seed articles.
- **Resumable**: ``save_every``/``save_every_steps`` write an intermediate file and a state folder
  (LoRA weights, optimizer, LR schedule, step, RNG); ``resume`` continues from it, skipping the
  batches already seen in that epoch.

Everything that can be checked without a model is checked first (options, dataset, optimizer
availability, precision on this device); the model loads next, and any problem there is a
:class:`~assistant.errors.TrainingError` before the first step.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import Cancelled, DatasetError, TrainingError
from . import kohya
from .dataset import Dataset, read_dataset
from .options import TrainOptions

log = logging.getLogger(__name__)

#: sd-scripts' ``networks.lora`` targets inside the UNet (module types) and the text encoder.
_UNET_BLOCKS = ("Transformer2DModel",)
_CONV_BLOCKS = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
_TE_BLOCKS = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP")
_ATTENTION = re.compile(r"\.(to_q|to_k|to_v|to_out\.0)$")
_ADAPTER = "default"
_PART = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}


@dataclass(frozen=True, slots=True)
class TrainEvent:
    """Progress reported to the caller: ``kind`` is start | step | sample | save | done."""

    kind: str
    step: int = 0
    total: int = 0
    epoch: int = 0
    epochs: int = 0
    loss: float | None = None  # this step's loss
    avg_loss: float | None = None  # moving average over the last 20 steps (sd-scripts shows the same)
    lr: float | None = None
    elapsed: float = 0.0
    message: str = ""
    images: tuple[Any, ...] = ()  # PIL images of a sample event
    path: str = ""  # the file a save/done event wrote


@dataclass(slots=True)
class TrainResult:
    """What a finished run produced."""

    path: str
    name: str
    steps: int
    epochs: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    peak_memory: int = 0  # bytes: CUDA max allocated, else the process's peak RSS
    notes: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)


Callback = Callable[[TrainEvent], None]


# ----------------------------------------------------------------------------------------------
# Base model
# ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Base:
    """The frozen parts of the base model the trainer needs."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    noise_scheduler: Any
    scheduler_config: dict[str, Any]
    kind: str  # "sd15" | "sd2"
    name: str  # ss_sd_model_name
    file_hash: str | None
    native_size: int


def default_base() -> str:
    """The configured model (``LORA_MIXER_MODEL``/``lora-mixer.yaml``), else the embedded one."""
    from ..config import load_settings
    from ..engine.embedded import EMBEDDED_DIR

    model = (load_settings().model or "").strip()
    return model or str(EMBEDDED_DIR)


def load_base(base: str | None) -> Base:
    """Load the base model's components (fp32; the trainer casts). TrainingError when it cannot."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline

    from ..engine import embedded, tiny

    source = (base or default_base()).strip()
    try:
        if source == embedded.EMBEDDED_NAME:
            source = str(embedded.EMBEDDED_DIR)
        if source in ("tiny", "tiny-sd15", tiny.TINY_MODEL_NAME):
            pipe = tiny.build_tiny_sd15()
            name, file_hash = tiny.TINY_MODEL_NAME, None
        elif source in ("tiny-sdxl", tiny.TINY_XL_MODEL_NAME):
            raise TrainingError("SDXL training is not supported yet: choose an SD 1.x or 2.x base model.")
        else:
            path = Path(source).expanduser()
            offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
            if path.is_file():
                if path.suffix != ".safetensors":
                    raise TrainingError(
                        f"Base model '{source}' is not a .safetensors file (no pickles are loaded)."
                    )
                pipe = StableDiffusionPipeline.from_single_file(str(path), local_files_only=offline)
                file_hash = _sha256(path)
            else:
                if path.is_dir():
                    source = str(path)
                pipe = StableDiffusionPipeline.from_pretrained(
                    source, safety_checker=None, local_files_only=offline, use_safetensors=True
                )
                file_hash = None
            name = (
                embedded.EMBEDDED_NAME
                if path.resolve() == embedded.EMBEDDED_DIR.resolve()
                else path.name or source
            )
    except TrainingError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        raise TrainingError(
            f"Base model '{source}' could not be loaded ({type(exc).__name__}: {first}). Give --base a "
            "diffusers folder, a single-file .safetensors SD checkpoint or a hub id that is downloaded."
        ) from exc
    if getattr(pipe, "text_encoder_2", None) is not None:
        raise TrainingError("SDXL training is not supported yet: choose an SD 1.x or 2.x base model.")
    hidden = int(pipe.text_encoder.config.hidden_size)
    kind = "sd2" if hidden == 1024 else "sd15"
    vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    return Base(
        unet=pipe.unet,
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        noise_scheduler=DDPMScheduler.from_config(pipe.scheduler.config),
        scheduler_config=dict(pipe.scheduler.config),
        kind=kind,
        name=name,
        file_hash=file_hash,
        native_size=int(pipe.unet.config.sample_size) * vae_scale,
    )


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# Targets and adapters
# ----------------------------------------------------------------------------------------------


def _inside(model: Any, block_types: Sequence[str]) -> Iterator[tuple[str, Any]]:
    """(full name, module) of every Linear/Conv2d inside modules whose class is in ``block_types``."""
    seen: set[str] = set()
    for name, module in model.named_modules():
        if type(module).__name__ not in block_types:
            continue
        for child_name, child in module.named_modules():
            if isinstance(child, (torch.nn.Linear, torch.nn.Conv2d)) and child_name:
                full = f"{name}.{child_name}" if name else child_name
                if full not in seen:
                    seen.add(full)
                    yield full, child


def unet_targets(unet: Any, options: TrainOptions) -> dict[str, tuple[int, float]]:
    """UNet module name -> (rank, alpha) for these options (sd-scripts' networks.lora set)."""
    targets: dict[str, tuple[int, float]] = {}
    for name, module in _inside(unet, _UNET_BLOCKS):
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1):
            continue
        if options.unet_targets == "attention" and not _ATTENTION.search(name):
            continue
        targets[name] = (options.rank, options.alpha)
    if options.conv_dim:
        for name, module in _inside(unet, _CONV_BLOCKS):
            if isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1):
                targets[name] = (options.conv_dim, options.conv_alpha)
            else:  # time_emb_proj, conv_shortcut: linear-like, at the network rank (as sd-scripts)
                targets[name] = (options.rank, options.alpha)
    return targets


def text_encoder_targets(text_encoder: Any, options: TrainOptions) -> dict[str, tuple[int, float]]:
    return {name: (options.rank, options.alpha) for name, _m in _inside(text_encoder, _TE_BLOCKS)}


def _lora_config(targets: dict[str, tuple[int, float]]) -> Any:
    from peft import LoraConfig

    ranks = {rank for rank, _a in targets.values()}
    alphas = {alpha for _r, alpha in targets.values()}
    rank = max(ranks, key=lambda r: sum(1 for v in targets.values() if v[0] == r))
    alpha = max(alphas, key=lambda a: sum(1 for v in targets.values() if v[1] == a))
    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        init_lora_weights=True,  # kohya's init: down kaiming-uniform, up zeros (the LoRA starts as a no-op)
        target_modules=sorted(targets),
        rank_pattern={f"^{re.escape(n)}$": r for n, (r, _a) in targets.items() if r != rank},
        alpha_pattern={f"^{re.escape(n)}$": a for n, (_r, a) in targets.items() if a != alpha},
    )


def read_network_weights(path: str, index: dict[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """A kohya LoRA file as ``{component: {module path: {"down", "up", "alpha"}}}``.

    ``index`` maps kohya module names to (component, module path). TrainingError when the file is
    not a kohya LoRA/LoCon or names modules this base model does not have.
    """
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
    except Exception as exc:
        raise TrainingError(f"--network-weights {path}: not a readable .safetensors file ({exc})") from exc
    modules: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []
    other: set[str] = set()
    for key, tensor in tensors.items():
        module, part = kohya.split_key(key)
        if part not in ("lora_down.weight", "lora_up.weight", "alpha"):
            other.add(part)
            continue
        if module not in index:
            unknown.append(module)
            continue
        modules.setdefault(module, {})[_PART[part]] = tensor
    if other:
        raise TrainingError(
            f"--network-weights {path}: only kohya LoRA/LoCon files can be continued "
            f"(found {', '.join(sorted(other)[:4])} tensors)"
        )
    if unknown:
        raise TrainingError(
            f"--network-weights {path}: {len(set(unknown))} module(s) are not in this base model "
            f"(e.g. {sorted(set(unknown))[0]}); was it trained for another base model?"
        )
    if not modules:
        raise TrainingError(f"--network-weights {path}: no LoRA tensors in the file")
    out: dict[str, dict[str, Any]] = {}
    for module, parts in modules.items():
        if "down" not in parts or "up" not in parts:
            raise TrainingError(f"--network-weights {path}: module {module} lacks lora_down or lora_up")
        component, name = index[module]
        rank = int(parts["down"].shape[0])
        alpha = float(parts["alpha"]) if "alpha" in parts else float(rank)
        out.setdefault(component, {})[name] = {
            "down": parts["down"],
            "up": parts["up"],
            "rank": rank,
            "alpha": alpha,
        }
    return out


def _copy_into_adapter(model: Any, weights: dict[str, dict[str, Any]]) -> None:
    for name, module in model.named_modules():
        if name in weights and hasattr(module, "lora_A"):
            w = weights[name]
            with torch.no_grad():
                module.lora_A[_ADAPTER].weight.copy_(w["down"].reshape(module.lora_A[_ADAPTER].weight.shape))
                module.lora_B[_ADAPTER].weight.copy_(w["up"].reshape(module.lora_B[_ADAPTER].weight.shape))


def _adapter_weights(
    model: Any, component: str, targets: dict[str, tuple[int, float]]
) -> dict[str, torch.Tensor]:
    """The trained adapter of ``model`` as kohya tensors (fp32, cpu)."""
    out: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if name not in targets or not hasattr(module, "lora_A"):
            continue
        key = kohya.kohya_module_name(component, name)
        out[f"{key}.lora_down.weight"] = module.lora_A[_ADAPTER].weight.detach().float().cpu().contiguous()
        out[f"{key}.lora_up.weight"] = module.lora_B[_ADAPTER].weight.detach().float().cpu().contiguous()
        out[f"{key}.alpha"] = torch.tensor(float(targets[name][1]))
    return out


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


class _Images(torch.utils.data.Dataset):
    """(pixels or cache index, token ids) per sample of one epoch (images × repeats)."""

    def __init__(self, dataset: Dataset, tokenizer: Any, resolution: int, flip: bool, seed: int) -> None:
        self.seed = seed
        self.epoch = 0
        self.unique = [image for s in dataset.subsets for image in s.images]
        position = {id(image): i for i, image in enumerate(self.unique)}
        self.order = [position[id(image)] for image in dataset.items()]
        self.resolution = resolution
        self.flip = flip
        self.ids = [
            tokenizer(
                image.caption,
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids[0]
            for image in self.unique
        ]
        self._pixels: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.order)

    def pixels(self, unique: int) -> torch.Tensor:
        if unique not in self._pixels:
            self._pixels[unique] = load_pixels(self.unique[unique].path, self.resolution)
            if len(self._pixels) > 512:  # a bounded cache for big datasets
                self._pixels.pop(next(iter(self._pixels)))
        return self._pixels[unique]

    def __getitem__(self, index: int) -> dict[str, Any]:
        unique = self.order[index]
        # a flip decided by (seed, epoch, sample), not by a running RNG: accelerate reads one batch
        # ahead, so a stateful RNG would make a resumed run differ from an uninterrupted one
        flip = self.flip and bool(np.random.default_rng([self.seed, self.epoch, index]).random() < 0.5)
        pixels = self.pixels(unique)
        return {
            "index": unique,
            "flip": flip,
            "pixel_values": torch.flip(pixels, dims=[2]) if flip else pixels,
            "input_ids": self.ids[unique],
        }


def load_pixels(path: str, resolution: int) -> torch.Tensor:
    """An image as a [-1, 1] CHW tensor: shorter side resized to ``resolution``, centre-cropped."""
    from PIL import Image

    with Image.open(path) as opened:
        rgb = opened.convert("RGB")
    scale = resolution / min(rgb.size)
    size = (max(resolution, round(rgb.width * scale)), max(resolution, round(rgb.height * scale)))
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    square = rgb.resize(size, Image.Resampling.LANCZOS).crop((left, top, left + resolution, top + resolution))
    array = np.asarray(square, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class _EpochSampler(torch.utils.data.Sampler[int]):
    """A seeded permutation per epoch (the same on every process, as accelerate needs)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "index": torch.tensor([i["index"] for i in items]),
        "flip": torch.tensor([i["flip"] for i in items]),
        "pixel_values": torch.stack([i["pixel_values"] for i in items]),
        "input_ids": torch.stack([i["input_ids"] for i in items]),
    }


# ----------------------------------------------------------------------------------------------
# Optimizer
# ----------------------------------------------------------------------------------------------


def check_optimizer(name: str, device_type: str) -> None:
    """TrainingError (with an install hint) when the optimizer cannot run here."""
    import importlib.util

    if name == "adamw8bit":
        if device_type != "cuda":
            raise TrainingError(
                "--optimizer adamw8bit needs a CUDA GPU (bitsandbytes); use adamw or adafactor here."
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise TrainingError("--optimizer adamw8bit needs bitsandbytes: pip install bitsandbytes")
    if name == "prodigy" and importlib.util.find_spec("prodigyopt") is None:
        raise TrainingError("--optimizer prodigy needs the prodigyopt package: pip install prodigyopt")


def make_optimizer(name: str, groups: list[dict[str, Any]]) -> tuple[Any, str]:
    """(optimizer, sd-scripts' ``ss_optimizer`` text)."""
    if name == "adamw":
        return torch.optim.AdamW(groups, weight_decay=1e-2), "torch.optim.adamw.AdamW"
    if name == "adamw8bit":
        import bitsandbytes as bnb  # type: ignore[import-not-found]

        return bnb.optim.AdamW8bit(groups, weight_decay=1e-2), "bitsandbytes.optim.adamw.AdamW8bit"
    if name == "adafactor":
        from transformers.optimization import Adafactor

        opt = Adafactor(groups, scale_parameter=False, relative_step=False, warmup_init=False)
        return (
            opt,
            "transformers.optimization.Adafactor(scale_parameter=False,relative_step=False,warmup_init=False)",
        )
    if name == "prodigy":
        from prodigyopt import Prodigy  # type: ignore[import-not-found]

        return Prodigy(groups, weight_decay=1e-2), "prodigyopt.prodigy.Prodigy"
    raise TrainingError(f"unknown optimizer {name!r}")


# ----------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def train_lora(
    options: TrainOptions,
    *,
    callback: Callback | None = None,
    cancel: threading.Event | None = None,
    base: Base | None = None,
) -> TrainResult:
    """Train one LoRA. Raises DatasetError/TrainingError before training, Cancelled when cancelled.

    ``base`` may be given pre-loaded (tests, benchmarks: the same frozen model for several runs);
    it is modified (adapters added) and cleaned up again at the end.
    """
    # 1. Check everything that needs no model
    options = options.checked()
    dataset = read_dataset(options.dataset, caption_extension=options.caption_extension)
    notes = list(dataset.notes)
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    cpu = options.device == "cpu" or (options.device is None and not torch.cuda.is_available())
    if options.mixed_precision == "fp16" and cpu:
        raise TrainingError("--mixed-precision fp16 needs a CUDA GPU; use bf16 or no on the CPU.")
    accelerator = Accelerator(
        mixed_precision=options.mixed_precision,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        cpu=cpu,
    )
    check_optimizer(options.optimizer, accelerator.device.type)
    emit = callback or (lambda _event: None)
    set_seed(options.seed)
    # 2. The base model (frozen), its adapters
    own_base = base is None
    base = base or load_base(options.base)
    resolution = options.resolution or base.native_size
    vae_scale = 2 ** (len(base.vae.config.block_out_channels) - 1)
    if resolution % vae_scale:
        raise TrainingError(f"--resolution {resolution}: must be a multiple of {vae_scale} for this model")
    try:
        run = _Run(
            options, dataset, base, accelerator, resolution=resolution, notes=notes, emit=emit, cancel=cancel
        )
        return run.run()
    finally:
        _remove_adapters(base)
        if own_base:
            del base
            import gc

            gc.collect()


def _remove_adapters(base: Base) -> None:
    """Take the training adapter out of the UNet and text encoder: each LoRA-wrapped layer is put
    back as the original layer (unless another adapter still uses it), so the base is as loaded."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for model in (base.unet, base.text_encoder):
        config = getattr(model, "peft_config", None)
        if not config or _ADAPTER not in config:
            continue
        wrapped = [(n, m) for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
        for name, module in wrapped:
            if _ADAPTER in module.lora_A:
                module.delete_adapter(_ADAPTER)
            if not module.lora_A:
                parent_name, _, attr = name.rpartition(".")
                parent = model.get_submodule(parent_name) if parent_name else model
                setattr(parent, attr, module.get_base_layer())
        config.pop(_ADAPTER)
        if not config:
            del model.peft_config
            model._hf_peft_config_loaded = False


class _Run:
    """One training run's state, built step by step by :meth:`setup` (numbered as in the loop)."""

    def __init__(
        self,
        options: TrainOptions,
        dataset: Dataset,
        base: Base,
        accelerator: Any,
        *,
        resolution: int,
        notes: list[str],
        emit: Callback,
        cancel: threading.Event | None,
    ) -> None:
        self.options = options
        self.dataset = dataset
        self.base = base
        self.accelerator = accelerator
        self.resolution = resolution
        self.notes = notes
        self.emit = emit
        self.cancel = cancel
        self.started = time.time()
        self.device = accelerator.device
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            accelerator.mixed_precision, torch.float32
        )
        self.unet, self.text_encoder = base.unet, base.text_encoder
        self.generator = torch.Generator(device="cpu").manual_seed(options.seed)
        self.step = 0

    # -- setup ------------------------------------------------------------------------------------

    def setup(self) -> None:
        from diffusers.optimization import get_scheduler

        options, accelerator, base = self.options, self.accelerator, self.base
        for model in (base.unet, base.vae, base.text_encoder):
            model.requires_grad_(False)
        # 2a. targets: from --network-weights (its modules, ranks, alphas), else from the options
        start = self._targets()
        for model in (base.unet, base.vae, base.text_encoder):
            if model.device != self.device or model.dtype != self.weight_dtype:
                model.to(self.device, dtype=self.weight_dtype)
        if self.u_targets:
            base.unet.add_adapter(_lora_config(self.u_targets), adapter_name=_ADAPTER)
            _copy_into_adapter(base.unet, start.get("unet", {}))
        if self.t_targets:
            base.text_encoder.add_adapter(_lora_config(self.t_targets), adapter_name=_ADAPTER)
            _copy_into_adapter(base.text_encoder, start.get("text_encoder", {}))
        self.train_te = bool(self.t_targets) and options.train_text_encoder
        unet_params = [p for n, p in base.unet.named_parameters() if "lora_" in n]
        te_params = [p for n, p in base.text_encoder.named_parameters() if "lora_" in n]
        for p in unet_params + te_params:
            p.data = p.data.float()  # trainable weights in fp32 (diffusers' cast_training_params)
            p.requires_grad_(True)
        for p in [] if self.train_te else te_params:
            p.requires_grad_(False)  # a text-encoder part from --network-weights, kept as it is
        self.params = [*unet_params, *(te_params if self.train_te else [])]
        if options.gradient_checkpointing:
            base.unet.enable_gradient_checkpointing()
            if self.train_te:
                base.text_encoder.gradient_checkpointing_enable()
        # 2b. data: one epoch = every image x its folder's repeats, in a seeded order per epoch
        self.images = _Images(self.dataset, base.tokenizer, self.resolution, options.flip_aug, options.seed)
        self.sampler = _EpochSampler(len(self.images), options.seed)
        loader = torch.utils.data.DataLoader(
            self.images, batch_size=options.batch_size, sampler=self.sampler, collate_fn=_collate
        )
        unet_lr = options.unet_lr if options.unet_lr is not None else options.lr
        groups = [{"params": unet_params, "lr": unet_lr}]
        if self.train_te:
            te_lr = options.text_encoder_lr if options.text_encoder_lr is not None else options.lr
            groups.append({"params": te_params, "lr": te_lr})
        optimizer, optimizer_name = make_optimizer(options.optimizer, groups)
        processes = accelerator.num_processes
        num_batches = math.ceil(len(self.images) / (options.batch_size * processes))
        self.steps_per_epoch = math.ceil(num_batches / options.gradient_accumulation_steps)
        if options.max_steps is not None:
            self.total = options.max_steps
            self.epochs = math.ceil(self.total / self.steps_per_epoch)
        else:
            self.epochs = options.epochs or 10
            self.total = self.epochs * self.steps_per_epoch
        lr_scheduler = get_scheduler(
            options.scheduler,
            optimizer=optimizer,
            num_warmup_steps=options.lr_warmup_steps * processes,
            num_training_steps=self.total * processes,
            num_cycles=options.lr_cycles,
        )
        if self.train_te:
            self.unet, self.text_encoder, self.optimizer, self.loader, self.lr_scheduler = (
                accelerator.prepare(base.unet, base.text_encoder, optimizer, loader, lr_scheduler)
            )
        else:
            self.unet, self.optimizer, self.loader, self.lr_scheduler = accelerator.prepare(
                base.unet, optimizer, loader, lr_scheduler
            )
        # 2c. cached latents: mean and std of each image (and its mirror), sampled per step
        self.cache = (
            _cache_latents(self.images, base.vae, self.device, options.flip_aug)
            if options.cache_latents
            else None
        )
        self.metadata = kohya.training_metadata(
            options=options,
            dataset=self.dataset,
            base=base.kind,
            model_name=base.name,
            resolution=(self.resolution, self.resolution),
            num_batches_per_epoch=num_batches,
            num_epochs=self.epochs,
            max_train_steps=self.total,
            session_id=secrets.randbelow(2**32),
            started_at=self.started,
            optimizer_name=optimizer_name,
            total_batch_size=options.batch_size * processes * options.gradient_accumulation_steps,
            model_hash=base.file_hash,
        )

    def _targets(self) -> dict[str, dict[str, Any]]:
        """Set ``u_targets``/``t_targets``; returns the starting weights from --network-weights."""
        options, unet, text_encoder = self.options, self.base.unet, self.base.text_encoder
        if not options.network_weights:
            self.u_targets = unet_targets(unet, options)
            self.t_targets = text_encoder_targets(text_encoder, options) if options.train_text_encoder else {}
            return {}
        names = [("unet", n) for n, _m in _inside(unet, _UNET_BLOCKS + _CONV_BLOCKS)]
        names += [("text_encoder", n) for n, _m in _inside(text_encoder, _TE_BLOCKS)]
        index = {kohya.kohya_module_name(component, n): (component, n) for component, n in names}
        start = read_network_weights(str(Path(options.network_weights).expanduser()), index)
        self.u_targets = {n: (w["rank"], w["alpha"]) for n, w in start.get("unet", {}).items()}
        self.t_targets = {n: (w["rank"], w["alpha"]) for n, w in start.get("text_encoder", {}).items()}
        ranks = sorted({r for r, _a in [*self.u_targets.values(), *self.t_targets.values()]})
        self.notes.append(
            f"continuing from {Path(options.network_weights).name}: its "
            f"{len(self.u_targets) + len(self.t_targets)} modules (rank {'/'.join(map(str, ranks))}) are "
            "trained further; --rank/--alpha apply only to parts it lacks"
        )
        if options.train_text_encoder and not self.t_targets:
            self.t_targets = text_encoder_targets(text_encoder, options)
        if self.t_targets and not options.train_text_encoder:
            self.notes.append(
                "its text-encoder part is kept as it is (add --train-text-encoder to train it too)"
            )
        return start

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        options, accelerator = self.options, self.accelerator
        self.setup()
        # 3. resume
        epoch, skip = 0, 0
        if options.resume:
            epoch, skip = self._load_state(options.resume)
            self.notes.append(f"resumed from {options.resume} at step {self.step} (epoch {epoch + 1})")
        self.emit(
            TrainEvent("start", self.step, self.total, epoch, self.epochs, message="; ".join(self.notes))
        )
        result = TrainResult(
            path="", name=options.output_name, steps=0, epochs=self.epochs, seconds=0.0, notes=self.notes
        )
        recent: list[float] = []
        self.unet.train()
        if self.train_te:
            self.text_encoder.train()
        done = self.step >= self.total
        mark = time.perf_counter()
        # 4. the loop: epochs of batches; an optimizer step every gradient_accumulation_steps batches
        while not done and epoch < self.epochs:
            self.images.epoch = epoch
            batches: Any = self.loader
            if skip:
                batches = accelerator.skip_first_batches(
                    self.loader, skip * options.gradient_accumulation_steps
                )
                skip = 0
            # accelerate's loaders count their own epochs and pass them to the sampler on each
            # iteration; a resumed run's fresh loader must be told which epoch this is
            for loader in {id(self.loader): self.loader, id(batches): batches}.values():
                if hasattr(loader, "set_epoch"):
                    loader.set_epoch(epoch)
            self.sampler.set_epoch(epoch)
            for batch in batches:
                self._check_cancel()
                with accelerator.accumulate(self.unet):
                    loss = self._loss(batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and options.max_grad_norm:
                        accelerator.clip_grad_norm_(self.params, options.max_grad_norm)
                    self.optimizer.step()
                    self.lr_scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                if not accelerator.sync_gradients:
                    continue
                self.step += 1
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingError(
                        f"the loss became {value} at step {self.step}: lower --lr (now {options.lr:g}) "
                        "or use "
                        "--mixed-precision no; nothing was saved"
                    )
                now = time.perf_counter()
                result.losses.append(value)
                result.step_times.append(now - mark)  # data, forward, backward, optimizer
                recent = [*recent, value][-20:]
                self.emit(
                    TrainEvent(
                        "step", self.step, self.total, epoch + 1, self.epochs, loss=value,
                        avg_loss=float(np.mean(recent)), lr=float(self.lr_scheduler.get_last_lr()[0]),
                        elapsed=time.time() - self.started,
                    )
                )  # fmt: skip
                self._check_cancel()
                if options.sample_every and self.step % options.sample_every == 0:
                    result.samples += self.samples(epoch)
                every = options.save_every_steps
                if every and self.step % every == 0 and self.step < self.total:
                    # resume point: the next batch of this epoch, or the start of the next one
                    in_epoch = self.step % self.steps_per_epoch
                    self.checkpoint(
                        epoch if in_epoch else epoch + 1, step_in_epoch=in_epoch, label=f"step{self.step:08d}"
                    )
                mark = time.perf_counter()  # samples and saves are not step time
                if self.step >= self.total:
                    done = True
                    break
            if done:
                break
            epoch += 1
            if options.save_every and epoch % options.save_every == 0:
                self.checkpoint(epoch, step_in_epoch=0, label=f"{epoch:06d}")
        # 5. save the LoRA (and samples of the result, the first one as the card preview)
        accelerator.wait_for_everyone()
        final_epoch = min(epoch + 1, self.epochs)
        path = options.output_path
        if accelerator.is_main_process:
            self.save(path, final_epoch)
            if options.sample_prompts and options.sample_every is None:
                result.samples += self.samples(epoch)
            if result.samples:
                _preview(result.samples[-len(options.sample_prompts)], path)
        result.path = str(path)
        result.steps = self.step
        result.seconds = time.time() - self.started
        result.peak_memory = _peak_memory(self.device)
        self.emit(
            TrainEvent("done", self.step, self.total, final_epoch, self.epochs, elapsed=result.seconds,
                       path=str(path), avg_loss=float(np.mean(recent)) if recent else None)
        )  # fmt: skip
        return result

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(
                f"Training cancelled at step {self.step} of {self.total}; no LoRA file was written."
            )

    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """Noise-prediction MSE for one batch (min-SNR weighted when asked), as diffusers' example."""
        options, device, dtype, g = self.options, self.device, self.weight_dtype, self.generator
        vae, noise_scheduler = self.base.vae, self.base.noise_scheduler
        scaling = float(vae.config.scaling_factor)
        shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
        if self.cache is not None:
            which = batch["index"] + batch["flip"].long() * len(self.images.unique)
            mean, std = self.cache["mean"][which], self.cache["std"][which]
        else:
            with torch.no_grad():
                dist = vae.encode(batch["pixel_values"].to(device, dtype=vae.dtype)).latent_dist
                mean, std = dist.mean, dist.std
        latents = ((mean + std * torch.randn(mean.shape, generator=g).to(device) - shift) * scaling).to(dtype)
        noise = torch.randn(latents.shape, generator=g).to(device, dtype)
        if options.noise_offset:
            offset = torch.randn((latents.shape[0], latents.shape[1], 1, 1), generator=g)
            noise = noise + options.noise_offset * offset.to(device, dtype)
        timesteps = torch.randint(
            0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=g
        ).to(device)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        hidden = self.text_encoder(batch["input_ids"].to(device), return_dict=False)[0]
        v_pred = noise_scheduler.config.prediction_type == "v_prediction"
        target = noise_scheduler.get_velocity(latents, noise, timesteps) if v_pred else noise
        pred = self.unet(noisy, timesteps, hidden, return_dict=False)[0]
        if options.min_snr_gamma is None:
            return F.mse_loss(pred.float(), target.float(), reduction="mean")
        alphas = noise_scheduler.alphas_cumprod.to(device)[timesteps]
        snr = alphas / (1 - alphas)
        weights = torch.clamp(snr, max=options.min_snr_gamma) / (snr + 1 if v_pred else snr)
        per_image = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        return (per_image * weights).mean()

    # -- saving, resuming, samples ----------------------------------------------------------------

    def _unwrapped(self) -> tuple[Any, Any]:
        return self.accelerator.unwrap_model(self.unet), self.accelerator.unwrap_model(self.text_encoder)

    def save(self, path: Path, epoch: int) -> Path:
        unet, text_encoder = self._unwrapped()
        return save_kohya(
            path, unet, text_encoder, self.u_targets, self.t_targets,
            metadata=kohya.saved_metadata(self.metadata, steps=self.step, epoch=epoch),
            precision=self.options.save_precision,
        )  # fmt: skip

    def checkpoint(self, epoch: int, *, step_in_epoch: int, label: str) -> None:
        """An intermediate LoRA (``NAME-000002.safetensors`` per epoch, ``NAME-step00000100`` per
        step) and the resumable state folder ``.NAME-state`` (replaced each time)."""
        import shutil

        options = self.options
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        path = self.save(options.output_path.with_name(f"{options.output_name}-{label}.safetensors"), epoch)
        state = options.state_dir
        tmp = state.with_name(state.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        unet, text_encoder = self._unwrapped()
        weights = {
            **_adapter_weights(unet, "unet", self.u_targets),
            **_adapter_weights(text_encoder, "text_encoder", self.t_targets),
        }
        torch.save(
            {
                "weights": weights,
                "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.lr_scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "generator": self.generator.get_state(),
            },
            tmp / "state.pt",
        )
        info = {"current_step": self.step, "current_epoch": epoch, "step_in_epoch": step_in_epoch,
                "output_name": options.output_name}  # fmt: skip
        (tmp / "train_state.json").write_text(json.dumps(info), encoding="utf-8")
        if state.exists():
            shutil.rmtree(state)
        tmp.replace(state)
        message = f"saved {path.name} and the resumable state {state}"
        elapsed = time.time() - self.started
        self.emit(
            TrainEvent("save", self.step, self.total, epoch, self.epochs, elapsed=elapsed, path=str(path),
                       message=message)
        )  # fmt: skip

    def _load_state(self, folder: str) -> tuple[int, int]:
        """Restore a state folder: sets the step; returns (epoch to continue, batches to skip in it)."""
        root = Path(folder).expanduser()
        info = json.loads((root / "train_state.json").read_text(encoding="utf-8"))
        state = torch.load(root / "state.pt", weights_only=True, map_location="cpu")  # tensors only, no code
        unet, text_encoder = self._unwrapped()
        index = {
            **{kohya.kohya_module_name("unet", n): ("unet", n) for n in self.u_targets},
            **{kohya.kohya_module_name("text_encoder", n): ("text_encoder", n) for n in self.t_targets},
        }
        by_module: dict[str, dict[str, dict[str, Any]]] = {"unet": {}, "text_encoder": {}}
        for key, tensor in state["weights"].items():
            module, part = kohya.split_key(key)
            if module not in index:
                raise TrainingError(
                    f"--resume {folder}: the state does not match these settings (module {module})"
                )
            component, name = index[module]
            if part in _PART:
                by_module[component].setdefault(name, {})[_PART[part]] = tensor
        _copy_into_adapter(unet, by_module["unet"])
        _copy_into_adapter(text_encoder, by_module["text_encoder"])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        except (ValueError, KeyError) as exc:
            raise TrainingError(
                f"--resume {folder}: the state does not match these settings ({exc})"
            ) from exc
        torch.set_rng_state(state["torch_rng"])
        self.generator.set_state(state["generator"])
        self.step = int(info["current_step"])
        return int(info["current_epoch"]), int(info.get("step_in_epoch", 0))

    def samples(self, epoch: int) -> list[str]:
        """Render the sample prompts with the LoRA as it is now; PNGs in ``NAME-samples/``."""
        from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

        options, base = self.options, self.base
        if not self.accelerator.is_main_process:
            return []
        unet, text_encoder = self._unwrapped()
        pipe = StableDiffusionPipeline(
            vae=base.vae, text_encoder=text_encoder, tokenizer=base.tokenizer, unet=unet,
            scheduler=EulerDiscreteScheduler.from_config(base.scheduler_config),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )  # fmt: skip
        pipe.set_progress_bar_config(disable=True)
        folder = options.samples_path
        folder.mkdir(parents=True, exist_ok=True)
        was = unet.training, text_encoder.training
        unet.eval()
        text_encoder.eval()
        images, paths = [], []
        try:
            with torch.no_grad(), self.accelerator.autocast():
                for k, prompt in enumerate(options.sample_prompts):
                    generator = torch.Generator().manual_seed(options.seed + k)
                    image = pipe(
                        prompt, num_inference_steps=options.sample_steps, guidance_scale=7.0,
                        height=self.resolution, width=self.resolution, generator=generator,
                    ).images[0]  # fmt: skip
                    path = folder / f"{options.output_name}_{self.step:06d}_{k:02d}.png"
                    image.save(path)
                    images.append(image)
                    paths.append(str(path))
        finally:
            unet.train(was[0])
            text_encoder.train(was[1])
        self.emit(TrainEvent("sample", self.step, self.total, epoch + 1, self.epochs,
                             elapsed=time.time() - self.started, images=tuple(images),
                             message=" | ".join(options.sample_prompts)))  # fmt: skip
        return paths


def _cache_latents(images: _Images, vae: Any, device: torch.device, flip: bool) -> dict[str, torch.Tensor]:
    means, stds = [], []
    variants = [False, True] if flip else [False]
    with torch.no_grad():
        for mirrored in variants:
            for start in range(0, len(images.unique), 8):
                chunk = [images.pixels(i) for i in range(start, min(start + 8, len(images.unique)))]
                pixels = torch.stack([torch.flip(p, dims=[2]) if mirrored else p for p in chunk])
                dist = vae.encode(pixels.to(device, dtype=vae.dtype)).latent_dist
                means.append(dist.mean.float())
                stds.append(dist.std.float())
    return {"mean": torch.cat(means), "std": torch.cat(stds)}


def save_kohya(
    path: Path,
    unet: Any,
    text_encoder: Any,
    u_targets: dict[str, tuple[int, float]],
    t_targets: dict[str, tuple[int, float]],
    *,
    metadata: dict[str, str],
    precision: str = "fp16",
) -> Path:
    """Write the adapters as a kohya LoRA with sd-scripts' hashes, atomically. Returns ``path``."""
    from safetensors.torch import save

    tensors = {
        **_adapter_weights(unet, "unet", u_targets),
        **_adapter_weights(text_encoder, "text_encoder", t_targets),
    }
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "float": torch.float32}[precision]
    tensors = {k: v.to(dtype).contiguous() for k, v in sorted(tensors.items())}
    ss_only = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    model_hash, legacy_hash = kohya.addnet_hashes(save(tensors, ss_only))
    final = {**metadata, "sshs_model_hash": model_hash, "sshs_legacy_hash": legacy_hash}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(save(tensors, final))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _preview(sample: str, lora: Path) -> None:
    """The first sample prompt's last image as A1111's card preview ``NAME.preview.png``."""
    import shutil

    preview = lora.with_name(lora.name.removesuffix(".safetensors") + ".preview.png")
    shutil.copyfile(sample, preview)


__all__ = ["Base", "DatasetError", "TrainEvent", "TrainResult", "load_base", "save_kohya", "train_lora"]
