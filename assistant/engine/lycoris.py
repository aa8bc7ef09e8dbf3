"""LyCORIS layouts as PEFT tuner layers: LoHa, LoKr, LoCon Tucker, DoRA, full/diff, norms.

diffusers 0.42 loads the plain LoRA layouts (kohya ``lora_down``/``lora_up``, PEFT
``lora_A``/``lora_B``, its own training-script layouts) into PEFT ``LoraLayer`` s; for
``hada_*``, ``lokr_*`` and ``lora_mid`` keys it raises "keys have not been correctly renamed", and
it drops ``dora_scale`` with a warning. This module loads those files itself, with LyCORIS' math,
into :class:`LycorisLayer` — a PEFT ``BaseTunerLayer`` — so that everything the engine does with
adapters keeps working unchanged for them:

- named adapters listed by ``pipe.get_list_adapters()`` (a :class:`LycorisConfig` sits in each
  component's ``peft_config``) and deleted by ``pipe.delete_adapters()`` (PEFT's generic
  ``BaseTunerLayer.delete_adapter``: every per-adapter value lives in the dicts named by
  ``adapter_layer_names``/``other_param_names``) — so the LRU cache, eviction and the rollback of
  a failed load are the ones of :mod:`assistant.engine.adapters`;
- the complete-state invariant: ``_disable_adapters``, ``_active_adapter`` and
  ``set_scale(adapter, weight)`` mean what they mean on a PEFT ``LoraLayer``
  (``scaling[adapter] = weight * alpha / rank``), and :meth:`LycorisLayer.expected_scaling` tells
  ``AdapterCache.verify`` the value to expect;
- per-row weights (:mod:`assistant.engine.rows`): a rows context sets a factor per batch row
  (:meth:`LycorisLayer.set_row_factors`); every algorithm here is linear in the weight, so the row
  path multiplies the same delta by the row's factor — bit for bit what the uniform path computes
  with that weight;
- fusing (:mod:`assistant.engine.fuse`): :meth:`LycorisLayer.delta_weight` /
  :meth:`LycorisLayer.delta_bias` are the exact weight and bias differences at the current scale.

Why not PEFT's own ``LoHaConfig``/``LoKrConfig`` tuners
-------------------------------------------------------
They cover LoHa and LoKr only — not the full/diff layout (with its bias difference), LoCon Tucker
(``lora_mid``), DoRA on any of them in either orientation, or norm layers — and their LoKr derives
factor shapes from one ``decompose_factor`` per model and scales by ``alpha / r`` even where LyCORIS
uses 1 (both Kronecker factors whole), so a file's own shapes and scales would have to be forced
into them layer by layer. One small layer class with LyCORIS' formulas, fed the file's tensors
as they are, is less code than that and is checked against ``lycoris-lora`` itself
(``tests/formats/test_lycoris_reference.py``).

The math (LyCORIS 4.1, ``lycoris/functional``, ``lycoris/modules``; the delta a layer adds at
weight ``w`` is ``w * scale * D``, ``scale = alpha / rank``, alpha missing or 0 = rank):

==========  ====================================================================================
LoRA/LoCon  ``D = up @ down`` (applied as ``up(down(x))``, the cheap path); rank = ``down.shape[0]``
Tucker      ``D = einsum("i j ..., i p, j r -> p r ...", mid, up.T, down)`` (applied as
            ``up(mid(down(x)))``, ``mid`` carrying the layer's stride and padding)
LoHa        ``D = (w1_a @ w1_b) * (w2_a @ w2_b)``; Tucker: ``einsum("i j ..., j r, i p -> p r ...",
            t, w_b, w_a)`` for each half; rank = ``hada_w1_b.shape[0]``
LoKr        ``D = kron(w1, w2)``, ``w1 = lokr_w1`` or ``w1_a @ w1_b``, ``w2 = lokr_w2`` or
            ``w2_a @ w2_b`` (Tucker: ``einsum("i j ..., i p, j r -> p r ...", t2, w2_a, w2_b)``);
            rank = ``w1_b.shape[0]`` else ``w2_b.shape[0]``; both factors whole: scale 1
full        ``D = diff``, bias ``diff_b``; scale 1
norm        ``weight += w * w_norm``, ``bias += w * b_norm``
DoRA        ``W' = (W + scale * D) * dora_scale / (‖W + scale * D‖ + eps)``, the norm per output
            row when ``dora_scale`` is (out, 1, …) (``wd_on_out=True``, LyCORIS' default) and per
            input column when it is (1, in, …) (``wd_on_out=False``); the layer adds
            ``w * (W' - W)``
==========  ====================================================================================

DoRA and the weight: LyCORIS' training module interpolates the magnitude instead
(``W' = (W + scale D) * (w * (m / ‖·‖ - 1) + 1)``), so its weight 0 still adds ``scale * D``.
A1111 (``extensions-builtin/Lora/network.py``), ComfyUI, Forge and InvokeAI scale the difference
``W' - W`` by the weight — weight 0 is the model without the LoRA, and every weight is linear
(per-row weights, negative-prompt weights, block weights and fusing all rely on it). We do what
they do; at weight 1 both are LyCORIS' ``W'`` exactly (the reference test compares both).

Not applied (refused at scan time by :mod:`assistant.layouts`): OFT/BOFT, GLoRA, (IA)^3.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from ..errors import LoraLoadError
from ..layouts import Module
from ..layouts import modules as layout_modules
from .keymap import KeyMap

__all__ = [
    "LoadResult",
    "LycorisConfig",
    "LycorisLayer",
    "attach",
    "load_lycoris",
    "unit_delta",
]

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm)


@dataclass
class LycorisConfig(PeftConfig):
    """What sits in a component's ``peft_config`` for an adapter loaded here (diffusers lists and
    deletes adapters by these keys); ``layers``: the module paths it patches; ``algorithm``: the
    file's algorithm (:mod:`assistant.layouts`)."""

    layers: list[str] = field(default_factory=list)
    algorithm: str = ""


@dataclass(frozen=True, slots=True)
class Spec:
    """How one adapter's tensors on one layer make a delta."""

    kind: str  # lora | loha | lokr | full | norm
    scale: float  # alpha / rank (what set_scale multiplies the weight by); 1 for DoRA, full, norm
    inner: float = 1.0  # DoRA: alpha / rank applied inside the decomposition
    dora: str = ""  # "" | "out" | "in"


class _Factors(nn.Module):
    """One adapter's tensors on one layer, as buffers (never parameters: nothing here trains, so
    nothing can start requiring grad when PEFT toggles adapters)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        for role, tensor in tensors.items():
            self.register_buffer(role, tensor, persistent=False)

    def get(self, role: str) -> torch.Tensor | None:
        return self._buffers.get(role)

    def has(self, role: str) -> bool:
        return role in self._buffers


class LycorisLayer(nn.Module, BaseTunerLayer):
    """A PEFT tuner layer applying LyCORIS adapters to one Linear, Conv or norm layer."""

    adapter_layer_names = ("lyco_factors",)
    other_param_names = ("scaling", "lyco_spec")

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.lyco_factors = nn.ModuleDict()
        self.scaling: dict[str, float] = {}
        self.lyco_spec: dict[str, Spec] = {}
        self._row_factors: dict[str, torch.Tensor] = {}
        self._disable_adapters = False
        self._active_adapter: list[str] = []
        self.merged_adapters: list[str] = []
        base = self.get_base_layer()
        self.kind = type(base).__name__

    def __getattr__(self, name: str) -> Any:
        """The plain layer's attributes (``groups``, ``in_features`` …) read through this one.

        A plain LoRA file loaded after a LyCORIS one on the same layers makes PEFT wrap this
        layer, and PEFT's layer constructors read such attributes off the module they wrap
        (``base_layer.groups``), not off ``get_base_layer()``.
        """
        try:
            return super().__getattr__(name)
        except AttributeError:
            base = self.__dict__.get("_modules", {}).get("base_layer")
            if base is None or name.startswith("lora_") or name in ("base_layer",):
                raise
            return getattr(base, name)

    # -- what the engine reads and sets -----------------------------------------------------

    def set_scale(self, adapter: str, scale: float) -> None:
        """``scaling[adapter] = scale * alpha / rank`` (PEFT's ``set_scale`` contract)."""
        if adapter in self.lyco_spec:
            self.scaling[adapter] = self.expected_scaling(adapter, scale)

    def expected_scaling(self, adapter: str, weight: float) -> float:
        """The ``scaling`` value :meth:`set_scale` sets for ``weight``."""
        return weight * self.lyco_spec[adapter].scale

    def set_row_factors(self, adapter: str, factors: torch.Tensor | None) -> None:
        """Per-batch-row ``scaling`` values for ``adapter`` (None: back to ``scaling``)."""
        if factors is None:
            self._row_factors.pop(adapter, None)
        else:
            self._row_factors[adapter] = factors

    def row_factors(self) -> dict[str, torch.Tensor]:
        return dict(self._row_factors)

    def delta_weight(self, adapter: str) -> torch.Tensor | None:
        """The weight difference ``adapter`` adds at its current scale (None: it changes no weight)."""
        spec = self.lyco_spec[adapter]
        scale = self.scaling[adapter]
        base = self.get_base_layer()
        if spec.kind == "norm":
            w_norm = self.lyco_factors[adapter].get("w")
            return None if w_norm is None else (w_norm.float() * scale).to(base.weight.dtype)
        delta = self._unit_weight(adapter)
        return (delta * scale).to(base.weight.dtype)

    def delta_bias(self, adapter: str) -> torch.Tensor | None:
        """The bias difference at the current scale (full's ``diff_b``, norm's ``b_norm``), or None."""
        spec = self.lyco_spec[adapter]
        factors = self.lyco_factors[adapter]
        bias = (
            factors.get("diff_b")
            if spec.kind == "full"
            else factors.get("b")
            if spec.kind == "norm"
            else None
        )
        if bias is None:
            return None
        base = self.get_base_layer()
        dtype = base.bias.dtype if base.bias is not None else base.weight.dtype
        return (bias.float() * self.scaling[adapter]).to(dtype)

    # -- PEFT's merge contract (diffusers' fuse_lora calls it; the engine fuses in fuse.py) ----

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        base = self.get_base_layer()
        for adapter in adapter_names if adapter_names is not None else self.active_adapters:
            if adapter not in self.lyco_factors or adapter in self.merged_adapters:
                continue
            weight, bias = self.delta_weight(adapter), self.delta_bias(adapter)
            with torch.no_grad():
                if weight is not None:
                    base.weight.data += weight
                if bias is not None:
                    if base.bias is None:
                        raise ValueError(
                            f"adapter {adapter!r} has a bias difference but the layer has no bias"
                        )
                    base.bias.data += bias
            self.merged_adapters.append(adapter)

    def unmerge(self) -> None:
        base = self.get_base_layer()
        while self.merged_adapters:
            adapter = self.merged_adapters.pop()
            weight, bias = self.delta_weight(adapter), self.delta_bias(adapter)
            with torch.no_grad():
                if weight is not None:
                    base.weight.data -= weight
                if bias is not None:
                    base.bias.data -= bias

    # -- forward --------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self._disable_adapters or self.merged:
            return result
        for adapter in self.active_adapters:
            if adapter not in self.lyco_factors:
                continue
            delta = self._unit_output(adapter, x)
            rows = self._row_factors.get(adapter)
            if rows is None:
                result = result + delta * self.scaling[adapter]
                continue
            if delta.shape[0] != rows.shape[0]:
                from .rows import RowWeightsError

                raise RowWeightsError(
                    f"a LyCORIS layer got a batch of {delta.shape[0]} rows but {rows.shape[0]} row weights"
                )
            factor = rows.to(device=delta.device).view(rows.shape[0], *([1] * (delta.dim() - 1)))
            scaled = (
                delta * factor
                if factor.dtype == delta.dtype
                else (delta.to(factor.dtype) * factor).to(delta.dtype)
            )
            result = result + scaled
        return result

    # -- internals ------------------------------------------------------------------------------

    def _conv_args(self) -> dict[str, Any]:
        base = self.get_base_layer()
        return {
            "stride": base.stride,
            "padding": base.padding,
            "dilation": base.dilation,
            "groups": base.groups,
        }

    def _op(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        base = self.get_base_layer()
        if isinstance(base, nn.Linear):
            return F.linear(x, weight, bias)
        if isinstance(base, nn.Conv2d):
            return F.conv2d(x, weight, bias, **self._conv_args())
        if isinstance(base, nn.Conv1d):
            return F.conv1d(x, weight, bias, **self._conv_args())
        return F.conv3d(x, weight, bias, **self._conv_args())

    def _unit_output(self, adapter: str, x: torch.Tensor) -> torch.Tensor:
        """The adapter's output difference at ``scaling`` 1 (the caller multiplies)."""
        spec = self.lyco_spec[adapter]
        factors = self.lyco_factors[adapter]
        base = self.get_base_layer()
        if spec.kind == "norm":
            return self._norm_delta(factors, base, x)
        if spec.kind == "lora" and not spec.dora:
            down, up, mid = factors.get("down"), factors.get("up"), factors.get("mid")
            assert down is not None
            assert up is not None
            x = x.to(down.dtype)
            if isinstance(base, nn.Linear):
                return F.linear(F.linear(x, down), up)
            conv = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}[type(base)]
            args = self._conv_args()
            args["groups"] = 1
            if mid is not None:
                hidden = conv(conv(x, down), mid, None, args["stride"], args["padding"], args["dilation"])
            else:
                hidden = conv(x, down, None, args["stride"], args["padding"], args["dilation"])
            return conv(hidden, up)
        bias = factors.get("diff_b") if spec.kind == "full" else None
        weight = self._unit_weight(adapter).to(x.dtype)
        return self._op(x, weight, None if bias is None else bias.to(x.dtype))

    def _unit_weight(self, adapter: str) -> torch.Tensor:
        """``D`` in the base weight's shape (DoRA: ``W' - W`` at weight 1), in float32 at least."""
        spec = self.lyco_spec[adapter]
        factors = self.lyco_factors[adapter]
        base = self.get_base_layer()
        delta = unit_delta(spec.kind, {k: v for k, v in factors._buffers.items() if v is not None})
        delta = delta.float().reshape(base.weight.shape)
        if not spec.dora:
            return delta
        dora_scale = factors.get("dora_scale")
        assert dora_scale is not None
        weight = base.weight.detach().float()
        merged = weight + spec.inner * delta
        return weight_decompose(merged, dora_scale.float(), on_out=spec.dora == "out") - weight

    def _norm_delta(self, factors: _Factors, base: nn.Module, x: torch.Tensor) -> torch.Tensor:
        w_norm, b_norm = factors.get("w"), factors.get("b")
        if isinstance(base, nn.LayerNorm):
            normed = F.layer_norm(x, base.normalized_shape, None, None, base.eps)
            shape = [1] * (x.dim() - len(base.normalized_shape)) + list(base.normalized_shape)
        else:  # GroupNorm over (N, C, ...)
            normed = F.group_norm(x, base.num_groups, None, None, base.eps)
            shape = [1, base.num_channels] + [1] * (x.dim() - 2)
        out = torch.zeros_like(x) if w_norm is None else normed * w_norm.to(x.dtype).view(shape)
        return out if b_norm is None else out + b_norm.to(x.dtype).view(shape)


def weight_decompose(weight: torch.Tensor, dora_scale: torch.Tensor, *, on_out: bool) -> torch.Tensor:
    """LyCORIS ``functional/general.py`` ``_weight_decompose`` at multiplier 1:
    ``W * dora_scale / (‖W‖ + eps)``, the norm per output row or per input column."""
    dims = weight.dim() - 1
    if on_out:
        norm = weight.reshape(weight.shape[0], -1).norm(dim=1).reshape(weight.shape[0], *[1] * dims)
    else:
        norm = (
            weight.transpose(0, 1)
            .reshape(weight.shape[1], -1)
            .norm(dim=1, keepdim=True)
            .reshape(weight.shape[1], *[1] * dims)
            .transpose(0, 1)
        )
    norm = norm + torch.finfo(weight.dtype).eps
    return weight * (dora_scale.reshape(norm.shape) / norm)


def _tucker(core: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
    """LyCORIS ``rebuild_tucker``: ``einsum("i j ..., i p, j r -> p r ...", t, wa, wb)``."""
    return torch.einsum("i j ..., i p, j r -> p r ...", core, wa, wb)


def unit_delta(kind: str, t: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``D`` of one layer from its tensors (roles as :data:`assistant.layouts.PARAMS` names them),
    computed in float32 (float64 stays float64); not yet reshaped to the layer's weight."""
    dtype = torch.float64 if any(v.dtype == torch.float64 for v in t.values()) else torch.float32

    def get(role: str) -> torch.Tensor:
        return t[role].to(dtype)

    if kind == "lora":
        up, down = get("up"), get("down")
        if "mid" in t:
            up2 = up.reshape(up.shape[0], -1).transpose(0, 1)
            return _tucker(get("mid"), up2, down.reshape(down.shape[0], -1))
        out = up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)
        return out.reshape(up.shape[0], *down.shape[1:])
    if kind == "loha":
        if "t1" in t and "t2" in t:
            return _tucker(get("t1"), get("w1_a"), get("w1_b")) * _tucker(get("t2"), get("w2_a"), get("w2_b"))
        return (get("w1_a") @ get("w1_b")) * (get("w2_a") @ get("w2_b"))
    if kind == "lokr":
        w1 = get("w1") if "w1" in t else get("w1_a") @ get("w1_b")
        if "w2" in t:
            w2 = get("w2")
        elif "t2" in t:
            w2 = _tucker(get("t2"), get("w2_a"), get("w2_b"))
        else:
            w2_b = get("w2_b")
            w2 = (get("w2_a") @ w2_b.reshape(w2_b.shape[0], -1)).reshape(-1, *w2_b.shape[1:])
        for _ in range(w2.dim() - w1.dim()):
            w1 = w1.unsqueeze(-1)
        return torch.kron(w1, w2.contiguous())
    if kind == "full":
        return get("diff")
    raise ValueError(f"no weight delta for layer kind {kind!r}")


def _delta_shape(module: Module, shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The shape of ``D`` from the tensor shapes alone (to check a file before loading it)."""
    s = {role: shapes[key] for role, key in module.tensors.items() if key in shapes}
    if module.kind == "lora":
        up, down = s["up"], s["down"]
        if "mid" in s:
            return (up[0], down[1], *s["mid"][2:])
        return (up[0], *down[1:])
    if module.kind == "loha":
        if "t1" in s:
            return (s["w1_a"][1], s["w1_b"][1], *s["t1"][2:])
        return (s["w1_a"][0], s["w1_b"][1])
    if module.kind == "lokr":
        w1 = s["w1"] if "w1" in s else (s["w1_a"][0], s["w1_b"][1])
        if "w2" in s:
            w2 = s["w2"]
        elif "t2" in s:
            w2 = (s["w2_a"][1], s["w2_b"][1], *s["t2"][2:])
        else:
            w2 = (s["w2_a"][0], *s["w2_b"][1:])
        w1 = tuple(w1) + (1,) * (len(w2) - len(w1))
        return tuple(a * b for a, b in zip(w1, w2, strict=False))
    if module.kind == "full":
        return s["diff"]
    return s.get("w", s.get("b", ()))


def _scale_of(module: Module, tensors: Mapping[str, torch.Tensor]) -> float:
    """``alpha / rank`` as LyCORIS and A1111 read it (1 where they use 1)."""
    roles = module.tensors
    rank: int | None = None
    if module.kind == "lora":
        rank = int(tensors[roles["down"]].shape[0])
    elif module.kind == "loha":
        rank = int(tensors[roles["w1_b"]].shape[0])
    elif module.kind == "lokr":
        for role in ("w1_b", "w2_b"):
            if role in roles:
                rank = int(tensors[roles[role]].shape[0])
                break
    if rank is None:
        return 1.0
    alpha_key = roles.get("alpha")
    alpha = float(tensors[alpha_key].float().reshape(-1)[0]) if alpha_key is not None else 0.0
    if not math.isfinite(alpha) or alpha == 0.0:
        alpha = float(rank)
    return alpha / rank


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What :func:`load_lycoris` applied: components, layers and what it left out, said whole."""

    components: frozenset[str]
    layers: int
    notes: tuple[str, ...] = ()


def _base_dims(base: nn.Module) -> tuple[int, ...]:
    return tuple(int(d) for d in base.weight.shape)


def _fits(delta: tuple[int, ...], base: nn.Module) -> bool:
    want = _base_dims(base)
    return bool(delta) and delta[0] == want[0] and math.prod(delta) == math.prod(want)


def _innermost(module: nn.Module) -> tuple[nn.Module, str, nn.Module]:
    """(parent, attribute, base) where the plain layer hangs inside a chain of tuner layers."""
    parent: nn.Module = module
    while isinstance(getattr(parent, "base_layer", None), BaseTunerLayer):
        parent = parent.base_layer
    return parent, "base_layer", parent.base_layer


def _layer_at(model: nn.Module, path: str) -> LycorisLayer:
    """The :class:`LycorisLayer` for ``path``, inserted innermost (right around the plain layer, below
    any PEFT LoRA layer) so PEFT keeps reusing its own outer layer and chains stay two deep."""
    current = model.get_submodule(path)
    probe: Any = current
    while True:
        if isinstance(probe, LycorisLayer):
            return probe
        if not isinstance(probe, BaseTunerLayer):
            break
        probe = probe.base_layer
    if not isinstance(current, BaseTunerLayer):
        layer = LycorisLayer(current)
        parent_path, _, name = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, name, layer)
        return layer
    holder, attribute, base = _innermost(current)
    layer = LycorisLayer(base)
    setattr(holder, attribute, layer)
    return layer


def load_lycoris(
    pipe: Any,
    adapter: str,
    name: str,
    tensors: Mapping[str, torch.Tensor],
    keymap: KeyMap,
    *,
    algorithm: str = "",
) -> LoadResult:
    """Load ``tensors`` (one file's state dict) as adapter ``adapter`` into ``pipe``.

    Checks everything first (which layers the keys name, every tensor shape against its layer)
    and changes nothing when it raises :class:`~assistant.errors.LoraLoadError`: no key names a
    layer of this model, or tensor shapes do not fit (another base model). Layers whose keys name
    nothing are left out and said in ``notes``; so are incomplete ones.
    """
    found, _unknown = layout_modules(tensors)
    shapes = {key: tuple(int(d) for d in value.shape) for key, value in tensors.items()}
    planned: list[tuple[Module, Any]] = []
    unmatched: list[str] = []
    incomplete: list[str] = []
    misfits: list[str] = []
    for stem, module in sorted(found.items()):
        if module.kind in ("meta", "oft", "glora", "ia3"):
            if module.kind == "meta":
                incomplete.append(stem)
            continue
        layer = keymap.find(stem)
        if layer is None:
            unmatched.append(stem)
            continue
        try:
            delta = _delta_shape(module, shapes)
        except (KeyError, IndexError):
            incomplete.append(stem)
            continue
        base = _base_module(getattr(pipe, layer.component).get_submodule(layer.path))
        if module.kind == "norm":
            ok = isinstance(base, _NORM_TYPES) and (not delta or delta[0] == base.weight.shape[0])
        else:
            ok = not isinstance(base, _NORM_TYPES) and _fits(delta, base)
        if not ok:
            file_shape, model_shape = ", ".join(map(str, delta)), ", ".join(map(str, _base_dims(base)))
            misfits.append(f"{stem} has shape [{file_shape}] in the file but [{model_shape}] in this model")
            continue
        planned.append((module, layer))
    if misfits:
        more = f" (and {len(misfits) - 1} more layers)" if len(misfits) > 1 else ""
        raise LoraLoadError(
            name,
            "its tensor shapes do not fit this model, so it was made for another base model or "
            f"architecture: layer {misfits[0]}{more}; nothing was applied.",
        )
    if not planned:
        examples = ", ".join(f"'{s}'" for s in unmatched[:3])
        raise LoraLoadError(
            name,
            f"none of its {len(unmatched) or len(found)} layer names exist in this model"
            + (f" (e.g. {examples})" if examples else "")
            + ", so it was made for another base model or architecture, or names its layers in a "
            "way LoRA Mixer does not read; nothing was applied.",
        )
    touched: dict[str, list[str]] = {}
    try:
        for module, layer in planned:
            attach(_layer_at(getattr(pipe, layer.component), layer.path), adapter, module, tensors)
            touched.setdefault(layer.component, []).append(layer.path)
        for component, paths in touched.items():
            model = getattr(pipe, component)
            if not hasattr(model, "peft_config"):
                model.peft_config = {}
            model.peft_config[adapter] = LycorisConfig(layers=paths, algorithm=algorithm)
            model._hf_peft_config_loaded = True
    except Exception:
        remove_adapter(pipe, adapter)
        raise
    notes: list[str] = []
    if unmatched:
        examples = ", ".join(f"'{s}'" for s in unmatched[:3])
        notes.append(
            f"{len(unmatched)} of its {len(unmatched) + len(planned)} layers name no layer of this model "
            f"and were left out (e.g. {examples})"
        )
    if incomplete:
        notes.append(
            f"{len(incomplete)} layer(s) have incomplete tensors and were left out (e.g. '{incomplete[0]}')"
        )
    return LoadResult(frozenset(touched), len(planned), tuple(notes))


def attach(layer: LycorisLayer, adapter: str, module: Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Add ``adapter`` to ``layer`` from one file module's tensors (``tensors``: the file's state
    dict, or any mapping holding the module's keys), at weight 1, active or not as the layer is."""
    factors, spec = _prepare(module, tensors, layer.get_base_layer())
    layer.lyco_factors[adapter] = factors
    layer.lyco_spec[adapter] = spec
    layer.scaling[adapter] = spec.scale


def remove_adapter(pipe: Any, adapter: str) -> None:
    """Every trace of ``adapter`` in this module's layers and configs (a failed load's rollback)."""
    for component in getattr(pipe, "_lora_loadable_modules", ("unet", "text_encoder", "text_encoder_2")):
        model = getattr(pipe, component, None)
        if model is None:
            continue
        for module in model.modules():
            if isinstance(module, LycorisLayer):
                module.delete_adapter(adapter)
        config = getattr(model, "peft_config", None)
        if isinstance(config, dict):
            config.pop(adapter, None)


def _base_module(module: nn.Module) -> nn.Module:
    return module.get_base_layer() if isinstance(module, BaseTunerLayer) else module


def _prepare(module: Module, tensors: Mapping[str, torch.Tensor], base: nn.Module) -> tuple[_Factors, Spec]:
    """The adapter's buffers for one layer (the base weight's device and dtype; DoRA magnitudes
    in float32) and its :class:`Spec`."""
    device, dtype = base.weight.device, base.weight.dtype
    roles = {role: tensors[key] for role, key in module.tensors.items() if role not in ("alpha",)}
    kind = module.kind
    scale = _scale_of(module, tensors)
    prepared: dict[str, torch.Tensor] = {}
    for role, tensor in roles.items():
        keep = torch.float32 if role == "dora_scale" else dtype
        prepared[role] = tensor.detach().to(device=device, dtype=keep).contiguous()
    if kind == "lora":
        prepared = _lora_shapes(prepared, base)
    dora = ""
    if "dora_scale" in prepared:
        shape = prepared["dora_scale"].shape
        dora = "in" if len(shape) >= 2 and shape[0] == 1 and base.weight.shape[0] != 1 else "out"
        return _Factors(prepared), Spec(kind, 1.0, inner=scale, dora=dora)
    return _Factors(prepared), Spec(kind, scale)


def _lora_shapes(t: dict[str, torch.Tensor], base: nn.Module) -> dict[str, torch.Tensor]:
    """down/up (and mid) shaped for the layer's own op: Linear 2-D, conv 4-D (1x1 for up)."""
    conv = isinstance(base, _CONV_TYPES)
    down, up = t["down"], t["up"]
    if conv:
        spatial = base.weight.dim() - 2
        if down.dim() == 2:
            down = down.reshape(*down.shape, *([1] * spatial))
        if up.dim() == 2:
            up = up.reshape(*up.shape, *([1] * spatial))
    else:
        down = down.reshape(down.shape[0], -1)
        up = up.reshape(up.shape[0], -1)
    t["down"], t["up"] = down, up
    return t


def layers(pipe: Any) -> Iterable[tuple[str, str, LycorisLayer]]:
    """(component, path, layer) of every :class:`LycorisLayer` in ``pipe``."""
    for component in ("unet", "text_encoder", "text_encoder_2"):
        model = getattr(pipe, component, None)
        if model is None:
            continue
        for path, module in model.named_modules():
            if isinstance(module, LycorisLayer):
                yield component, path, module
