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
* a **layout** — how each layer is stored (:data:`LAYOUTS`):

  - ``kohya``: ``.lora_down.weight``/``.lora_up.weight``/``.alpha``; conv layers 4-D, the down
    kernel the layer's own, the up kernel 1x1, as ``networks/lora.py`` builds them;
  - ``peft``: diffusers/PEFT ``unet.….lora_A.weight``/``lora_B.weight``, no alpha;
  - ``diffusers``: diffusers' training scripts before PEFT, ``unet.….to_q.lora.down.weight``
    (``text_encoder.text_model.….q_proj.lora_linear_layer.down.weight`` for the text encoder), no alpha;
  - ``diffusers-proc``: diffusers' attention-processor layout, ``…attn1.processor.to_q_lora.down.weight``
    (attention layers only);
  - LyCORIS (``lycoris/modules/*.py`` ``custom_state_dict``, kohya key names): ``loha``
    (``hada_w1_a/b``, ``hada_w2_a/b``, ``alpha``; 3x3 convs flattened to ``(out, in*k*k)``),
    ``loha-tucker`` (3x3 convs with ``hada_t1/t2`` and ``(rank, out)``/``(rank, in)`` factors),
    ``lokr`` (``lokr_w1`` whole + ``lokr_w2_a/b``, LyCORIS' default), ``lokr-both``
    (``lokr_w1_a/b`` + ``lokr_w2_a/b``, ``decompose_both``), ``lokr-full`` (``lokr_w1`` +
    ``lokr_w2``, ``full_matrix``: no rank, scale 1), ``lokr-tucker`` (3x3 convs with ``lokr_t2``),
    ``tucker`` (LoCon Tucker: 3x3 convs as ``lora_down`` 1x1 / ``lora_mid`` kxk / ``lora_up`` 1x1),
    ``dora`` and ``dora-in`` (kohya LoRA + ``dora_scale`` normalised per output row,
    ``wd_on_out=True``, LyCORIS' default — or per input column, ``wd_on_out=False``), ``loha-dora``,
    ``full`` (``diff`` + ``diff_b`` for layers with a bias).

  Factorisation of LoKr shapes: LyCORIS' ``functional/general.py`` ``factorization(dim, factor)``
  (copied below as :func:`factorization`), ``factor`` from :attr:`LayoutSpec.factor`.

Adding a layout is one function ``(target, rng, spec) -> {key: array}`` registered in
:data:`LAYOUTS`; adding a selection is one entry in :data:`SELECTIONS`. DoRA needs the base
weights (``dora_scale`` is a trained magnitude near ``‖W‖``): :attr:`LayoutSpec.base` maps a
kohya stem to the layer's weight; without it the magnitude is drawn around the norm a layer of
that shape has at initialisation.

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
    """Ranks, alphas and value scale of one file (``conv_*`` for 3x3 convs, as kohya's ``conv_dim``);
    ``factor``: LyCORIS' LoKr factorisation factor (-1: as square as possible); ``base``: kohya
    stem -> the layer's base weight (DoRA magnitudes)."""

    rank: int = 4
    alpha: float | None = 2.0
    conv_rank: int = 2
    conv_alpha: float | None = 1.0
    scale: float = 1.0
    factor: int = -1
    base: Mapping[str, np.ndarray] | None = None


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


def _diffusers(target: TargetLike, rng: np.random.Generator, spec: LayoutSpec) -> dict[str, np.ndarray]:
    """diffusers' training scripts before PEFT (``training_utils.unet_lora_state_dict`` and
    ``text_encoder_lora_state_dict``): UNet ``<path>.lora.down/up.weight``, text encoders
    ``<path>.lora_linear_layer.down/up.weight``."""
    rank = spec.conv_rank if _is_3x3(target) else spec.rank
    down, up = _factors(target, rng, rank, spec.scale)
    stem = f"{target.peft}.lora" if target.component == "unet" else f"{target.peft}.lora_linear_layer"
    return {f"{stem}.down.weight": down, f"{stem}.up.weight": up}


def _diffusers_proc(target: TargetLike, rng: np.random.Generator, spec: LayoutSpec) -> dict[str, np.ndarray]:
    """diffusers' attention processors: ``…attn1.processor.to_q_lora.down.weight`` (attention only)."""
    if target.group != "attn":
        return {}
    attention, _, layer = target.peft.rpartition(".")
    if layer == "0":  # to_out.0 -> to_out_lora
        attention, _, layer = attention.rpartition(".")
    down, up = _factors(target, rng, spec.rank, spec.scale)
    stem = f"{attention}.processor.{layer}_lora"
    return {f"{stem}.down.weight": down, f"{stem}.up.weight": up}


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """LyCORIS' ``functional/general.py`` ``factorization``: ``(m, n)``, ``m <= n``, ``m * n = dimension``."""
    if factor > 0 and (dimension % factor) == 0:
        m, n = factor, dimension // factor
        return (n, m) if m > n else (m, n)
    if factor < 0:
        factor = dimension
    m, n = 1, dimension
    length = m + n
    while m < n:
        new_m = m + 1
        while dimension % new_m != 0:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > length or new_m > factor:
            break
        m, n = new_m, new_n
    return (n, m) if m > n else (m, n)


def _target_scale(target: TargetLike, spec: LayoutSpec) -> float:
    """The per-entry size of a kohya LoRA's delta on this layer (what :func:`_factors` gives)."""
    kernel = tuple(target.shape[2:])
    fan_in = target.shape[1] * int(np.prod(kernel)) if kernel else target.shape[1]
    return 0.6 * spec.scale / np.sqrt(fan_in)


def _pair(
    rng: np.random.Generator, rows: int, rank: int, cols: int, gain: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with ``a @ b`` entries of standard deviation ``gain``."""
    std = rank**-0.25
    return rng.standard_normal((rows, rank)) * std * gain, rng.standard_normal((rank, cols)) * std


def _alpha_of(target: TargetLike, spec: LayoutSpec) -> tuple[int, float | None]:
    conv = _is_3x3(target)
    return (spec.conv_rank if conv else spec.rank), (spec.conv_alpha if conv else spec.alpha)


def _with_alpha(
    target: TargetLike, spec: LayoutSpec, tensors: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    _rank, alpha = _alpha_of(target, spec)
    out = {f"{target.kohya}.{k}": v.astype(np.float16) for k, v in tensors.items()}
    if alpha is not None:
        out[f"{target.kohya}.alpha"] = np.array(alpha, dtype=np.float16)
    return out


def _loha(
    target: TargetLike, rng: np.random.Generator, spec: LayoutSpec, *, tucker: bool = False
) -> dict[str, np.ndarray]:
    """LyCORIS LoHa: ΔW = (w1_a @ w1_b) ⊙ (w2_a @ w2_b) · alpha/rank (Tucker cores on kxk convs)."""
    rank, _alpha = _alpha_of(target, spec)
    out_dim, in_dim, *kernel = target.shape
    gain = _target_scale(target, spec)
    if tucker and _is_3x3(target):
        core = rank**-0.5
        return _with_alpha(
            target,
            spec,
            {
                "hada_t1": rng.standard_normal((rank, rank, *kernel)) * core,
                "hada_w1_a": rng.standard_normal((rank, out_dim)) * rank**-0.25,
                "hada_w1_b": rng.standard_normal((rank, in_dim)) * rank**-0.25,
                "hada_t2": rng.standard_normal((rank, rank, *kernel)) * core,
                "hada_w2_a": rng.standard_normal((rank, out_dim)) * rank**-0.25 * gain,
                "hada_w2_b": rng.standard_normal((rank, in_dim)) * rank**-0.25,
            },
        )
    cols = in_dim * int(np.prod(kernel)) if kernel else in_dim
    w1_a, w1_b = _pair(rng, out_dim, rank, cols)
    w2_a, w2_b = _pair(rng, out_dim, rank, cols, gain)
    return _with_alpha(
        target, spec, {"hada_w1_a": w1_a, "hada_w1_b": w1_b, "hada_w2_a": w2_a, "hada_w2_b": w2_b}
    )


def _lokr(
    target: TargetLike, rng: np.random.Generator, spec: LayoutSpec, *, mode: str = "default"
) -> dict[str, np.ndarray]:
    """LyCORIS LoKr (``modules/lokr.py``): ΔW = w1 ⊗ w2 · scale; ``w1`` is (a, c), ``w2`` (b, d[, k, k])
    with out = a·b, in = c·d from ``factorization``; scale = alpha / rank, 1 when both are whole."""
    rank, _alpha = _alpha_of(target, spec)
    out_dim, in_dim, *kernel = target.shape
    (out_l, out_k), (in_m, in_n) = factorization(out_dim, spec.factor), factorization(in_dim, spec.factor)
    gain = _target_scale(target, spec)
    tensors: dict[str, np.ndarray] = {}
    if mode == "both" and rank < max(out_l, in_m) / 2:
        tensors["lokr_w1_a"], tensors["lokr_w1_b"] = _pair(rng, out_l, rank, in_m)
    else:
        tensors["lokr_w1"] = rng.standard_normal((out_l, in_m))
    whole_w2 = mode == "full" or rank >= max(out_k, in_n) / 2
    if whole_w2:
        tensors["lokr_w2"] = rng.standard_normal((out_k, in_n, *kernel)) * gain
    elif mode == "tucker" and kernel and _is_3x3(target):
        tensors["lokr_t2"] = rng.standard_normal((rank, rank, *kernel)) * rank**-0.5
        tensors["lokr_w2_a"] = rng.standard_normal((rank, out_k)) * rank**-0.25 * gain
        tensors["lokr_w2_b"] = rng.standard_normal((rank, in_n)) * rank**-0.25
    else:
        cols = in_n * int(np.prod(kernel)) if kernel else in_n
        tensors["lokr_w2_a"], tensors["lokr_w2_b"] = _pair(rng, out_k, rank, cols, gain)
    if mode == "full":
        tensors.pop("lokr_w1_a", None)
        tensors.pop("lokr_w1_b", None)
    out = _with_alpha(target, spec, tensors)
    if "lokr_w1" in tensors and "lokr_w2" in tensors:
        out[f"{target.kohya}.alpha"] = np.array(rank, dtype=np.float16)  # LyCORIS saves alpha = rank here
    return out


def _tucker(target: TargetLike, rng: np.random.Generator, spec: LayoutSpec) -> dict[str, np.ndarray]:
    """LyCORIS LoCon with ``use_tucker``: kxk convs as down (r, in, 1, 1), mid (r, r, k, k),
    up (out, r, 1, 1)."""
    if not _is_3x3(target):
        return _kohya(target, rng, spec)
    rank, _alpha = _alpha_of(target, spec)
    out_dim, in_dim, *kernel = target.shape
    return _with_alpha(
        target,
        spec,
        {
            "lora_down.weight": rng.standard_normal((rank, in_dim, 1, 1)) / np.sqrt(in_dim),
            "lora_mid.weight": rng.standard_normal((rank, rank, *kernel))
            / np.sqrt(rank * int(np.prod(kernel))),
            "lora_up.weight": rng.standard_normal((out_dim, rank, 1, 1)) * (0.6 * spec.scale / np.sqrt(rank)),
        },
    )


def _magnitude(target: TargetLike, rng: np.random.Generator, spec: LayoutSpec, *, on_out: bool) -> np.ndarray:
    """A trained DoRA magnitude: the base weight's norm per output row (``wd_on_out``) or per
    input column, nudged by a few percent; shape (out, 1[, 1, 1]) or (1, in[, 1, 1])."""
    base = spec.base.get(target.kohya) if spec.base else None
    out_dim, in_dim, *kernel = target.shape
    ones = [1] * len(kernel)
    if base is not None:
        weight = np.asarray(base, dtype=np.float64)
        if on_out:
            norm = np.linalg.norm(weight.reshape(out_dim, -1), axis=1).reshape(out_dim, 1, *ones)
        else:
            norm = np.linalg.norm(np.swapaxes(weight, 0, 1).reshape(in_dim, -1), axis=1).reshape(
                1, in_dim, *ones
            )
    else:  # kaiming-uniform init: entries of std 1/sqrt(3 fan_in)
        fan_in = in_dim * int(np.prod(kernel)) if kernel else in_dim
        count = fan_in if on_out else out_dim * int(np.prod(kernel) if kernel else 1)
        norm = np.full((out_dim, 1, *ones) if on_out else (1, in_dim, *ones), np.sqrt(count / (3 * fan_in)))
    return (norm * (1 + 0.05 * rng.standard_normal(norm.shape))).astype(np.float32)


def _dora(
    target: TargetLike,
    rng: np.random.Generator,
    spec: LayoutSpec,
    *,
    on_out: bool = True,
    base: str = "kohya",
) -> dict[str, np.ndarray]:
    out = _loha(target, rng, spec) if base == "loha" else _kohya(target, rng, spec)
    out[f"{target.kohya}.dora_scale"] = _magnitude(target, rng, spec, on_out=on_out)
    return out


def _full(target: TargetLike, rng: np.random.Generator, spec: LayoutSpec) -> dict[str, np.ndarray]:
    """LyCORIS full (``modules/full.py``): ``diff`` = W' - W, ``diff_b`` for a layer with a bias."""
    out = {
        f"{target.kohya}.diff": (rng.standard_normal(target.shape) * _target_scale(target, spec)).astype(
            np.float16
        )
    }
    if getattr(target, "bias", False):
        out[f"{target.kohya}.diff_b"] = (rng.standard_normal(target.shape[0]) * 0.05 * spec.scale).astype(
            np.float16
        )
    return out


#: layout name -> writer of one layer's tensors
LAYOUTS: dict[str, Callable[[TargetLike, np.random.Generator, LayoutSpec], dict[str, np.ndarray]]] = {
    "kohya": _kohya,
    "peft": _peft,
    "diffusers": _diffusers,
    "diffusers-proc": _diffusers_proc,
    "loha": _loha,
    "loha-tucker": lambda t, r, s: _loha(t, r, s, tucker=True),
    "lokr": _lokr,
    "lokr-both": lambda t, r, s: _lokr(t, r, s, mode="both"),
    "lokr-full": lambda t, r, s: _lokr(t, r, s, mode="full"),
    "lokr-tucker": lambda t, r, s: _lokr(t, r, s, mode="tucker"),
    "tucker": _tucker,
    "dora": _dora,
    "dora-in": lambda t, r, s: _dora(t, r, s, on_out=False),
    "loha-dora": lambda t, r, s: _dora(t, r, s, base="loha"),
    "full": _full,
}

#: The algorithm the library must name for each layout written over a selection with 3x3 convs
#: (``locon``) — and, where it differs, over one without (``kohya``).
EXPECTED_ALGORITHM: dict[str, tuple[str, str]] = {
    "kohya": ("locon", "lora"),
    "peft": ("locon", "lora"),
    "diffusers": ("locon", "lora"),
    "diffusers-proc": ("lora", "lora"),
    "loha": ("loha", "loha"),
    "loha-tucker": ("loha", "loha"),
    "lokr": ("lokr", "lokr"),
    "lokr-both": ("lokr", "lokr"),
    "lokr-full": ("lokr", "lokr"),
    "lokr-tucker": ("lokr", "lokr"),
    "tucker": ("tucker", "lora"),
    "dora": ("dora", "dora"),
    "dora-in": ("dora", "dora"),
    "loha-dora": ("loha+dora", "loha+dora"),
    "full": ("full", "full"),
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


#: LyCORIS layouts and the ``algo`` network argument they are trained with.
LYCORIS_LAYOUTS = {
    "loha": "loha",
    "loha-tucker": "loha",
    "lokr": "lokr",
    "lokr-both": "lokr",
    "lokr-full": "lokr",
    "lokr-tucker": "lokr",
    "tucker": "locon",
    "dora": "locon",
    "dora-in": "locon",
    "loha-dora": "loha",
    "full": "full",
}


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
    """Write one LoRA file; ``base`` adds kohya's metadata for that base (kohya and LyCORIS layouts).

    ``metadata`` is added as given (PEFT files get ``{"format": "pt"}`` like diffusers writes).
    """
    spec = spec or LayoutSpec()
    groups = SELECTIONS[selection] if isinstance(selection, str) else frozenset(selection)
    tensors = lora_tensors(targets, groups, layout=layout, spec=spec, seed=seed)
    meta: dict[str, Any] = {"format": "pt"} if layout == "peft" else {}
    if base is not None and layout == "kohya":
        meta.update(kohya_metadata(path.stem, base, spec, conv=bool(groups & CONV_GROUPS)))
    elif base is not None and layout in LYCORIS_LAYOUTS:
        meta.update(kohya_metadata(path.stem, base, spec, conv=bool(groups & CONV_GROUPS)))
        meta["ss_network_module"] = "lycoris.kohya"
        meta["ss_network_args"] = json.dumps({"algo": LYCORIS_LAYOUTS[layout]})
    meta.update(metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={k: str(v) for k, v in meta.items()} or None)
    return path
