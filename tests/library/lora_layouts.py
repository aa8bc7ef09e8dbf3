"""LoRA files for every LoRA-able layer of a model, in the layouts trainers write (numpy only).

The layer list comes from :func:`assistant.engine.structured.lora_targets` (any object with the
same fields works: ``component``, ``kohya``, ``peft``, ``group``, ``shape``), so the key names
are exactly what kohya sd-scripts writes for that module tree — diffusers names for SD1.x,
the sgm names (``lora_unet_input_blocks_4_1_…``) for SDXL, ``lora_te_``/``lora_te1_``/
``lora_te2_`` with the ``text_model_`` level — and the tensor shapes fit the model.

Two independent choices make a file:

* a **selection** — which layers a trainer targets (:data:`SELECTIONS`): ``attention``
  (``to_q/k/v/out`` only, diffusers' training scripts and many others), ``kohya`` (the default
  kohya LoRA: every Linear/1x1 conv of the transformer blocks plus the text encoders), ``locon``
  (kohya with ``conv_dim``: the resnet 3x3 convs, shortcuts, time projections and samplers too),
  ``unet`` (kohya without text encoders: the usual Pony/Illustrious layout), ``te`` (text
  encoders only);
* a **layout** — how each layer is stored (:data:`LAYOUTS`): ``kohya``
  (``.lora_down.weight``/``.lora_up.weight``/``.alpha``; conv layers 4-D, the down kernel the
  layer's own, the up kernel 1x1, as ``networks/lora.py`` builds them) and ``peft``
  (diffusers/PEFT ``unet.….lora_A.weight``/``lora_B.weight``, no alpha).

Adding a layout (LoHa, LoKr, DoRA, full …) is one function ``(target, rng, spec) -> {key: array}``
registered in :data:`LAYOUTS`; adding a selection is one entry in :data:`SELECTIONS`.

Tensor values are seeded and scaled so that a LoRA at weight 1 visibly changes a 64x64 render
of the reduced-width models (the stateful tests need differences well above 1/255), without
overflowing float16.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from safetensors.numpy import save_file

__all__ = [
    "LAYOUTS",
    "SELECTIONS",
    "LayoutSpec",
    "TargetLike",
    "lora_tensors",
    "select",
    "write_lora",
]


class TargetLike(Protocol):
    component: str
    kohya: str
    peft: str
    group: str
    shape: tuple[int, ...]


UNET_GROUPS = frozenset({"attn", "proj", "ff"})
CONV_GROUPS = frozenset({"resnet", "sampler"})
TEXT_GROUPS = frozenset({"te_attn", "te_mlp"})

#: selection name -> layer groups it targets
SELECTIONS: dict[str, frozenset[str]] = {
    "attention": frozenset({"attn"}),
    "kohya": UNET_GROUPS | TEXT_GROUPS,
    "locon": UNET_GROUPS | CONV_GROUPS | TEXT_GROUPS,
    "unet": UNET_GROUPS,
    "locon-unet": UNET_GROUPS | CONV_GROUPS,
    "te": TEXT_GROUPS,
}


@dataclass(frozen=True, slots=True)
class LayoutSpec:
    """Ranks, alphas and value scale of one file (``conv_*`` for 3x3 convs, as kohya's ``conv_dim``)."""

    rank: int = 4
    alpha: float | None = 2.0
    conv_rank: int = 2
    conv_alpha: float | None = 1.0
    scale: float = 1.0


def select(targets: Iterable[TargetLike], selection: str | Iterable[str]) -> list[TargetLike]:
    """The targets a selection (a :data:`SELECTIONS` name or a set of groups) covers, in order."""
    groups = SELECTIONS[selection] if isinstance(selection, str) else frozenset(selection)
    chosen = [t for t in targets if t.group in groups]
    if not chosen:
        raise ValueError(f"selection {selection!r} matches no layer")
    return chosen


def _is_3x3(target: TargetLike) -> bool:
    return len(target.shape) == 4 and tuple(target.shape[2:]) != (1, 1)


def _factors(
    target: TargetLike, rng: np.random.Generator, rank: int, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """(down, up) in kohya's shapes: Linear (r, in)/(out, r); Conv2d (r, in, kh, kw)/(out, r, 1, 1)."""
    out_dim, in_dim = target.shape[0], target.shape[1]
    kernel = tuple(target.shape[2:])
    fan_in = in_dim * int(np.prod(kernel)) if kernel else in_dim
    down = rng.standard_normal((rank, in_dim, *kernel)) / np.sqrt(fan_in)
    up = rng.standard_normal((out_dim, rank, *([1, 1] if kernel else []))) * (0.6 * scale / np.sqrt(rank))
    return down.astype(np.float16), up.astype(np.float16)


def _kohya(target: TargetLike, rng: np.random.Generator, spec: LayoutSpec) -> dict[str, np.ndarray]:
    conv = _is_3x3(target)
    rank = spec.conv_rank if conv else spec.rank
    alpha = spec.conv_alpha if conv else spec.alpha
    down, up = _factors(target, rng, rank, spec.scale)
    out = {f"{target.kohya}.lora_down.weight": down, f"{target.kohya}.lora_up.weight": up}
    if alpha is not None:
        out[f"{target.kohya}.alpha"] = np.array(alpha, dtype=np.float16)
    return out


def _peft(target: TargetLike, rng: np.random.Generator, spec: LayoutSpec) -> dict[str, np.ndarray]:
    rank = spec.conv_rank if _is_3x3(target) else spec.rank
    down, up = _factors(target, rng, rank, spec.scale)
    return {f"{target.peft}.lora_A.weight": down, f"{target.peft}.lora_B.weight": up}


#: layout name -> writer of one layer's tensors
LAYOUTS: dict[str, Callable[[TargetLike, np.random.Generator, LayoutSpec], dict[str, np.ndarray]]] = {
    "kohya": _kohya,
    "peft": _peft,
}


def lora_tensors(
    targets: Iterable[TargetLike],
    selection: str | Iterable[str] = "kohya",
    *,
    layout: str = "kohya",
    spec: LayoutSpec | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """All tensors of one file: ``layout`` applied to every target in ``selection``."""
    writer = LAYOUTS[layout]
    spec = spec or LayoutSpec()
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for target in select(targets, selection):
        tensors.update(writer(target, rng, spec))
    return tensors


_BASE_VERSION = {"sd15": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
_ARCHITECTURE = {
    "sd15": "stable-diffusion-v1/lora",
    "sd2": "stable-diffusion-v2-512/lora",
    "sdxl": "stable-diffusion-xl-v1-base/lora",
}


def kohya_metadata(name: str, base: str, spec: LayoutSpec, *, conv: bool) -> dict[str, str]:
    """The ``ss_*`` + ModelSpec metadata kohya sd-scripts writes (the fields the library reads)."""
    meta = {
        "ss_output_name": name,
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(spec.rank),
        "ss_network_alpha": f"{spec.alpha if spec.alpha is not None else spec.rank:g}",
        "ss_base_model_version": _BASE_VERSION[base],
        "ss_v2": str(base == "sd2"),
        "modelspec.architecture": _ARCHITECTURE[base],
    }
    if conv:
        meta["ss_network_args"] = json.dumps(
            {"conv_dim": str(spec.conv_rank), "conv_alpha": f"{spec.conv_alpha or spec.conv_rank:g}"}
        )
    return meta


def write_lora(
    path: Path,
    targets: Iterable[TargetLike],
    selection: str | Iterable[str] = "kohya",
    *,
    layout: str = "kohya",
    spec: LayoutSpec | None = None,
    seed: int = 0,
    base: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write one LoRA file; ``base`` adds kohya's metadata for that base (kohya layout only).

    ``metadata`` is added as given (PEFT files get ``{"format": "pt"}`` like diffusers writes).
    """
    spec = spec or LayoutSpec()
    groups = SELECTIONS[selection] if isinstance(selection, str) else frozenset(selection)
    tensors = lora_tensors(targets, groups, layout=layout, spec=spec, seed=seed)
    meta: dict[str, Any] = {"format": "pt"} if layout == "peft" else {}
    if base is not None and layout == "kohya":
        meta.update(kohya_metadata(path.stem, base, spec, conv=bool(groups & CONV_GROUPS)))
    meta.update(metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={k: str(v) for k, v in meta.items()} or None)
    return path
