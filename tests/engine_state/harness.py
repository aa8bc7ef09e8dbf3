"""What the engine-state tests share: the structured models, their LoRA files, fresh references.

A :class:`Model` is one structured model (:mod:`assistant.engine.structured`) with a folder of
LoRA files written for it in the layouts people download (:mod:`tests.library.lora_layouts`):

=============  ===================================================================  ==========
kind           what                                                                 metadata
=============  ===================================================================  ==========
attention      ``to_q/k/v/out`` only (diffusers' training scripts, many trainers)   kohya
kohya          kohya's default LoRA: transformer Linear/1x1 layers + text encoders  kohya
locon          kohya with ``conv_dim``: + resnet 3x3 convs, shortcuts, samplers     kohya
unet           UNet only (the usual Pony/Illustrious layout)                        none
te             text encoder(s) only                                                 kohya
peft           diffusers/PEFT ``lora_A``/``lora_B`` (kohya's layers)                ``format``
half           good UNet tensors, text-encoder tensors of the wrong width           none
=============  ===================================================================  ==========

plus ``wrong-base`` (the other model's UNet-only file) and ``corrupt`` (garbage bytes). File
names carry the model (``sd15_kohya.safetensors``) so both models' files share one library.

:class:`FreshRenders` renders a request the way a server started just for it would: a new
:class:`~assistant.engine.core.Engine` on a copy of the pristine pipeline, which loads the
request's LoRAs and renders once. Results are cached per request content (prompt as encoded,
settings, LoRA files and weights), so a sequence that repeats a request pays once.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.engine.core import Engine
from assistant.engine.structured import build_sd15, build_sdxl, lora_targets
from assistant.prompt import encoder_text
from assistant.types import GenerationRequest, PlannedLora
from tests.library.lora_layouts import LayoutSpec, write_lora

SIZE = 64
STEPS = 2
SEED = 11
CFG = 7.0
SAMPLER = "Euler"
PROMPT = "1girl, cat ears, city"
NEGATIVE = "lowres, blurry"

KINDS = ("attention", "kohya", "locon", "unet", "te", "peft")
BAD_KINDS = ("wrong-base", "corrupt", "half")
MODELS = ("sd15", "sdxl")

_SELECTION = {"attention": "attention", "kohya": "kohya", "locon": "locon", "unet": "unet", "te": "te"}


@dataclass
class Model:
    """One structured model, its LoRA files and its cache of fresh renders."""

    key: str  # "sd15" | "sdxl"
    pristine: Any  # the diffusers pipeline, never rendered with
    files: dict[str, Path] = field(default_factory=dict)  # kind -> file
    folder: Path | None = None  # the pipeline saved as a diffusers folder (for the service)
    fresh: FreshRenders | None = None

    def lora(self, kind: str, weight: float = 1.0, **extra: Any) -> PlannedLora:
        """A planned LoRA of this model's ``kind`` file (named as the library names it)."""
        path = self.files[kind]
        return PlannedLora(name=path.stem, path=str(path), weight=weight, **extra)

    def engine(self, cache_size: int = 4) -> Engine:
        """A new engine on a copy of the pristine pipeline (nothing loaded, nothing rendered)."""
        engine = Engine(
            Settings(device="cpu", adapter_cache_size=cache_size), pipeline=copy.deepcopy(self.pristine)
        )
        engine.load()
        return engine


def build_models(folder: Path, *, save: bool = False) -> dict[str, Model]:
    """Both structured models with their LoRA files under ``folder/loras`` (and, with ``save``,
    each model as a diffusers folder under ``folder/models`` for a service to load)."""
    loras = folder / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    models = {"sd15": Model("sd15", build_sd15()), "sdxl": Model("sdxl", build_sdxl())}
    for number, model in enumerate(models.values()):
        targets = lora_targets(model.pristine)
        for index, kind in enumerate(KINDS):
            path = loras / f"{model.key}_{kind}.safetensors"
            seed = 100 * number + index
            if kind == "peft":
                model.files[kind] = write_lora(path, targets, "kohya", layout="peft", seed=seed)
            elif kind == "unet":
                model.files[kind] = write_lora(path, targets, "unet", seed=seed)  # no metadata, as often
            else:
                spec = LayoutSpec(rank=4, alpha=2.0, conv_rank=2, conv_alpha=1.0)
                model.files[kind] = write_lora(
                    path, targets, _SELECTION[kind], spec=spec, seed=seed, base=model.key
                )
        model.files["half"] = _write_half(
            loras / f"{model.key}_half.safetensors", targets, seed=100 * number + 50
        )
        model.fresh = FreshRenders(model)
    models["sd15"].files["wrong-base"] = models["sdxl"].files["unet"]
    models["sdxl"].files["wrong-base"] = models["sd15"].files["kohya"]
    corrupt = loras / "corrupt_download.safetensors"
    corrupt.write_bytes(b"\x00\x01 not a safetensors file, a broken download")
    for model in models.values():
        model.files["corrupt"] = corrupt
    if save:
        for model in models.values():
            model.folder = folder / "models" / f"{model.key}-structured"
            model.pristine.save_pretrained(model.folder, safe_serialization=True)
    return models


def _write_half(path: Path, targets: Sequence[Any], *, seed: int) -> Path:
    """UNet layers that fit, text-encoder layers 8 inputs too wide: diffusers loads the UNet part,
    then fails on the text encoder (the "half adapter" the engine must roll back)."""
    widened = [
        t if t.component == "unet" else replace(t, shape=(t.shape[0], t.shape[1] + 8, *t.shape[2:]))
        for t in targets
    ]
    return write_lora(path, widened, {"attn", "te_attn"}, seed=seed)


def request(loras: Iterable[PlannedLora] = (), **changes: Any) -> GenerationRequest:
    """The small render every engine-state test uses (64x64, 2 steps, CFG 7, fixed seed)."""
    base = GenerationRequest(
        PROMPT, negative=NEGATIVE, seed=SEED, steps=STEPS, cfg=CFG, sampler=SAMPLER, width=SIZE, height=SIZE
    )
    return replace(base, loras=tuple(loras), **changes)


def pixels(result: Any) -> np.ndarray:
    """A result's images as one int16 array (batch, height, width, channels)."""
    return np.stack([np.asarray(image, dtype=np.int16) for image in result.images])


def _key(req: GenerationRequest) -> tuple[Any, ...]:
    """What decides a render's pixels: the encoded prompts, the settings, the applied LoRAs."""
    applied = tuple(
        (
            str(Path(lora.path).resolve()),
            lora.te_weight,
            lora.unet_weight,
            lora.uncond_te_weight,
            lora.uncond_unet_weight,
        )
        for lora in req.loras
        if any((lora.te_weight, lora.unet_weight, lora.uncond_te_weight, lora.uncond_unet_weight))
    )
    return (
        encoder_text(req.prompt),  # what the text encoders see: <lora:…> tags removed
        encoder_text(req.negative),
        req.seed,
        req.steps,
        float(req.cfg),
        req.sampler,
        req.scheduler,
        req.width,
        req.height,
        req.batch_size,
        req.clip_skip,
        req.rng,
        req.emphasis,
        applied,
    )


class FreshRenders:
    """Renders of fresh engines (one per request), cached by request content."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self._cache: dict[tuple[Any, ...], np.ndarray] = {}
        self.renders = 0

    def __call__(self, req: GenerationRequest) -> np.ndarray:
        key = _key(req)
        if key not in self._cache:
            engine = self.model.engine(cache_size=8)
            self._cache[key] = pixels(engine.generate(req))
            self.renders += 1
        return self._cache[key]


def differences(got: np.ndarray, want: np.ndarray) -> str:
    """``max 109/255, mean 8.7, 4096 of 12288 values`` (or the shape mismatch)."""
    if got.shape != want.shape:
        return f"shape {got.shape} vs {want.shape}"
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    changed = int((diff > 0).sum())
    return f"max {int(diff.max())}/255, mean {float(diff.mean()):.2f}, {changed} of {diff.size} values"


def assert_like_fresh(got: np.ndarray, want: np.ndarray, what: str, *, tolerance: int = 0) -> None:
    """Equal bit for bit (``tolerance=0``) or within ``tolerance``/255 per value."""
    if (
        got.shape == want.shape
        and int(np.abs(got.astype(np.int16) - want.astype(np.int16)).max(initial=0)) <= tolerance
    ):
        return
    raise AssertionError(f"{what}: differs from a fresh engine's render ({differences(got, want)})")
