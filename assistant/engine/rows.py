"""Per-batch-row LoRA weights: negative-branch weights and blind boxes in one batched pass.

diffusers' ``pipe.set_adapters(names, weights)`` gives every adapter ONE weight for the whole
batch. LoRA Mixer needs a weight per batch ROW:

- negative-branch weights: classifier-free guidance runs the UNet on ``[uncond rows; cond rows]``
  (``torch.cat([negative_prompt_embeds, prompt_embeds])`` in diffusers 0.42's
  ``StableDiffusionPipeline.__call__``; the SDXL pipeline concatenates ``prompt_embeds``,
  ``add_text_embeds`` and ``add_time_ids`` in the same order) and the uncond rows use their own
  adapter weights;
- blind box: N cells that differ only in LoRA weights run as ONE denoising pass of N rows (2N
  with CFG), row i scaled by cell i's weights;
- text encoder: each prompt-encoding call gets its own text-encoder weights.

How (PEFT 0.21, ``peft/tuners/lora/layer.py``)
-----------------------------------------------
For a vanilla LoRA ``Linear``/``Conv1d/2d/3d`` layer PEFT computes, per active adapter::

    result = result + lora_B(lora_A(dropout(x))) * scaling[adapter]

where ``set_adapters(w)`` set ``scaling[adapter] = w * lora_alpha / r`` (``/ sqrt(r)`` with
rsLoRA). Inside :meth:`RowScaler.unet_rows` / :meth:`RowScaler.text_rows`, for an adapter whose
rows differ, each layer's ``scaling[adapter]`` is set to exactly ``1.0`` and a forward hook on
that layer's ``lora_B[adapter]`` multiplies its output by a ``[B, 1, ...]`` tensor holding
``w_row * lora_alpha / r`` (the same float64 expression ``set_scale`` evaluates, rounded to
float32 as PyTorch rounds a Python scalar operand). ``y * f_row * 1.0`` is then bit-for-bit
what the ordinary path computes for that row with ``set_adapters(w_row)`` (checked: a Python
scalar multiplies in float32 "opmath"; for fp16/bf16 outputs the hook multiplies in float32
and rounds back, as the scalar path does). Per-layer alphas (kohya ``.alpha`` per module,
``alpha_pattern``) are honoured because the factor is computed per layer. An adapter whose rows
are all equal (or given as one float) needs no hook at all: ``set_scale(adapter, w)`` on each
layer, i.e. exactly what ``set_adapters`` does. Everything is restored on exit.

The only remaining difference from N separate generations is the batching itself (a GEMM/conv
over 2N rows may round differently from one over 2 rows); the tests measure it.

Alternatives considered
-----------------------
- PEFT's mixed-batch forward (``adapter_names=[...]`` per row): selects ONE adapter per row, no
  per-row weight and no stacking of several LoRAs on a row; per-row weights would need a copy of
  every adapter per distinct weight (memory and load time x N), and diffusers' UNet forward does
  not pass ``adapter_names`` down to the layers. Rejected.
- diffusers' ``cross_attention_kwargs={"scale": s}`` / ``scale_lora_layers``: one scalar for all
  adapters and all rows. Rejected.
- diffusers' ``hooks.HookRegistry``: wraps whole module forwards (built for caching and
  offloading); it would need to re-implement the LoRA sum. A plain ``register_forward_hook`` on
  ``lora_B`` touches only the delta. Rejected.
- A tensor in ``scaling[adapter]``: would break PEFT's merge/scale bookkeeping and needs the
  output rank (2-D ``time_emb_proj``, 3-D attention, 4-D conv), only known at call time.
  Rejected; the hook sees the real output.

Hooks exist ONLY inside a context: they are attached on entry and removed on exit, so outside a
context the pipeline has no extra hook at all and ordinary generation is unchanged bit for bit
(zero cost, not "a pass-through call"). :meth:`RowScaler.refresh` rebuilds the index of LoRA
layers after adapters were loaded or deleted; a context also notices a stale index itself.

Rows are rows of the COMPONENT call: a UNet/text-encoder call whose batch differs from the
number of planned rows raises :class:`RowWeightsError` (checked at the component's forward and
at every hooked ``lora_B``, so a processor that reshapes batch x heads before a LoRA layer
would be caught, not silently mis-scaled; diffusers' attention processors call ``to_q``/``to_k``/
``to_v``/``to_out`` on ``[B, seq, dim]`` before ``head_to_batch_dim``, so they see ``B``).

Refused with a clear error: fused LoRAs (PEFT skips unmerged adapters on a merged layer), DoRA
and other PEFT LoRA variants, embedding/MultiheadAttention LoRA layers with differing rows,
disabled LoRA layers (``disable_lora()``), adapters that are loaded but not active, compiled
components (``torch.compile``), nested or concurrent contexts on one scaler. Not thread-safe by
design: the engine holds one lock around adapter changes and pipeline calls; state lives on the
scaler object, never in globals.

Negative-branch semantics: with weights ``c`` (cond) and ``u`` (uncond) per adapter, every step
computes ``eps = eps(x, uncond; u) + g * (eps(x, cond; c) - eps(x, uncond; u))``, exactly as two
separate UNet calls with ``set_adapters(u)`` and ``set_adapters(c)`` would. A LoRA written only in
the negative prompt gets weight 0 on the cond rows (:func:`unet_row_scales`). Because CFG already
runs both branches in one batch, this costs no extra UNet pass, only the per-row multiply.

Cost: entering a context walks the indexed layers of the requested adapters (a few hundred dict
writes and hook registrations for SD1.5); per hooked layer call one elementwise multiply on the
LoRA delta. ``bench/rows_bench.py`` measures batched vs sequential generation.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import GenerationError

__all__ = [
    "EncodedRows",
    "RowScaler",
    "RowWeightsError",
    "encode_rows",
    "generate_rows",
    "unet_row_scales",
]

#: Components a pipeline may carry, by role.
UNET_COMPONENTS = ("unet",)
TEXT_COMPONENTS = ("text_encoder", "text_encoder_2")

ScaleSpec = float | Sequence[float]


class RowWeightsError(GenerationError, ValueError):
    """Per-row LoRA weights were asked for in a way that cannot be honoured exactly."""


@dataclass
class _Site:
    """One (LoRA layer, adapter) pair: where a per-row factor may be applied."""

    component: str
    module_name: str
    layer: Any  # peft.tuners.lora.LoraLayer or assistant.engine.lycoris.LycorisLayer
    adapter: str
    lora_b: nn.Module | None  # None for layer kinds without a lora_B module (embeddings, LyCORIS)
    block: int = -1  # index into a block-ratio vector (BlockRatios), -1: in no block


@dataclass
class _Active:
    """What a context changed, so that exit restores it exactly."""

    saved_scaling: list[tuple[Any, str, float]] = field(default_factory=list)
    handles: list[torch.utils.hooks.RemovableHandle] = field(default_factory=list)
    row_factors: list[tuple[Any, str]] = field(default_factory=list)  # LyCORIS layers given row factors
    split: str = ""  # why the UNet runs its rows in groups ("" = it does not)


#: Block ratios of one adapter for one row: a vector indexed by ``_Site.block`` (None: all 1).
BlockRatios = Sequence[float] | None


def _vanilla_types() -> tuple[type, ...]:
    from peft.tuners.lora import layer as lora_layer

    return (lora_layer.Linear, lora_layer._ConvNd)


def _lora_layer_types() -> tuple[type, ...]:
    from peft.tuners.lora import LoraLayer

    from .lycoris import LycorisLayer

    return (LoraLayer, LycorisLayer)


def _is_lycoris(layer: Any) -> bool:
    return hasattr(layer, "set_row_factors")


def _ratio(ratios: BlockRatios, block: int) -> float:
    return 1.0 if ratios is None or block < 0 else float(ratios[block])


def _base_factor(layer: Any, adapter: str, weight: float) -> float:
    """``weight * alpha / r`` exactly as the layer's ``set_scale`` evaluates it (PEFT's
    ``LoraLayer``; a LyCORIS layer says it with ``expected_scaling``)."""
    expected = getattr(layer, "expected_scaling", None)
    if expected is not None:
        return float(expected(adapter, weight))
    if layer.use_rslora.get(adapter, False):
        return weight * layer.lora_alpha[adapter] / math.sqrt(layer.r[adapter])
    return weight * layer.lora_alpha[adapter] / layer.r[adapter]


def _opmath(dtype: torch.dtype) -> torch.dtype:
    """The dtype PyTorch multiplies in when a tensor of ``dtype`` meets a Python float."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _first_tensor(args: tuple[Any, ...], kwargs: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for value in args:
        if isinstance(value, torch.Tensor):
            return value
    for key in keys:
        value = kwargs.get(key)
        if isinstance(value, torch.Tensor):
            return value
    return None


def _normalise(scales: Mapping[str, ScaleSpec], what: str) -> tuple[dict[str, list[float]], int | None]:
    """Validate ``scales``; return adapter -> row weights (one entry = all rows) and the row count."""
    if not isinstance(scales, Mapping):
        raise RowWeightsError(
            f"{what}: scales must be a mapping adapter name -> weight or list of row weights, "
            f"got {type(scales).__name__}"
        )
    rows: int | None = None
    first: str | None = None
    out: dict[str, list[float]] = {}
    for name, spec in scales.items():
        if not isinstance(name, str):
            raise RowWeightsError(f"{what}: adapter names must be strings, got {name!r}")
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            values = [float(spec)]
        elif isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
            values = []
            for value in spec:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise RowWeightsError(f"{what}: weight {value!r} for adapter {name!r} is not a number")
                values.append(float(value))
            if not values:
                raise RowWeightsError(f"{what}: adapter {name!r} has an empty list of row weights")
            if rows is None:
                rows, first = len(values), name
            elif len(values) != rows:
                raise RowWeightsError(
                    f"{what}: adapter {name!r} has {len(values)} row weights but {first!r} has {rows}; "
                    "every list must have one weight per batch row"
                )
        else:
            raise RowWeightsError(
                f"{what}: weights for adapter {name!r} must be a number or a list of numbers, got {spec!r}"
            )
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            raise RowWeightsError(f"{what}: adapter {name!r} has a non-finite weight {bad[0]!r}")
        out[name] = values
    return out, rows


def _row_ratios(
    weights: Mapping[str, list[float]],
    ratios: Mapping[str, Sequence[BlockRatios]],
    rows: int | None,
    what: str,
) -> dict[str, list[BlockRatios]]:
    """Block ratios per adapter, one entry per row (or one for all rows); None = no block weights."""
    unknown = [a for a in ratios if a not in weights]
    if unknown:
        raise RowWeightsError(f"{what}: block ratios for adapter(s) {unknown} that have no weights")
    out: dict[str, list[BlockRatios]] = {}
    for adapter in weights:
        given = list(ratios.get(adapter, [None]))
        if not given:
            given = [None]
        if len(given) != 1 and len(given) != (rows or 1):
            raise RowWeightsError(
                f"{what}: adapter {adapter!r} has {len(given)} block-ratio rows for {rows or 1} rows"
            )
        out[adapter] = given
    return out


def _spread(values: Sequence[Any], rows: int) -> list[Any]:
    """``values`` with one entry per row (a single entry stands for all rows)."""
    return list(values) * rows if len(values) == 1 else list(values)


def _key(ratios: BlockRatios) -> tuple[float, ...] | None:
    return None if ratios is None else tuple(float(r) for r in ratios)


def _uniform(values: Sequence[float], ratios: Sequence[BlockRatios]) -> bool:
    """Every row of an adapter has the same weight and the same block ratios."""
    return len(set(values)) == 1 and len({_key(r) for r in ratios}) == 1


def _take(value: Any, index: torch.Tensor, rows: int) -> Any:
    """``value`` cut to the rows in ``index`` when it is batched (first dimension = ``rows``)."""
    if isinstance(value, torch.Tensor):
        batched = value.dim() > 0 and value.shape[0] == rows
        return value.index_select(0, index.to(value.device)) if batched else value
    if isinstance(value, dict):
        return {k: _take(v, index, rows) for k, v in value.items()}
    return value


class RowScaler:
    """Per-batch-row LoRA weights for a diffusers pipeline whose LoRAs are PEFT adapters.

    Construct once per pipeline (loads nothing). Use :meth:`unet_rows` around a pipeline call
    (or a UNet call) and :meth:`text_rows` around prompt encoding. The adapters named in a
    context must be loaded and active (``pipe.set_adapters([...])``); the context overrides their
    weights for its duration and restores them afterwards. Adapters not named keep whatever
    ``set_adapters`` gave them.
    """

    def __init__(self, pipe: Any, block_of: Callable[[str, str], int] | None = None) -> None:
        self._pipe = pipe
        self._block_of = block_of or (lambda _component, _path: -1)
        self._sites: dict[str, dict[str, list[_Site]]] = {}
        self._indexed = False
        self._lock = threading.Lock()
        self._active_roles: set[str] = set()
        #: Why the last UNet context ran its rows in groups ("" when per-row factors did it).
        self.split_reason = ""

    # -- index ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-index the pipeline's LoRA layers (after adapters were loaded or deleted). Idempotent.

        Raises :class:`RowWeightsError` when called while a context is active.
        """
        if self._active_roles:
            raise RowWeightsError(
                f"refresh() while a rows context is active ({sorted(self._active_roles)}); "
                "leave the context first"
            )
        self._reindex()

    def _reindex(self) -> None:
        lora_layer = _lora_layer_types()
        sites: dict[str, dict[str, list[_Site]]] = {}
        for component in (*UNET_COMPONENTS, *TEXT_COMPONENTS):
            model = getattr(self._pipe, component, None)
            if model is None:
                continue
            per_adapter: dict[str, list[_Site]] = {}
            for module_name, module in model.named_modules():
                if not isinstance(module, lora_layer):
                    continue
                lora_b = getattr(module, "lora_B", None)
                block = self._block_of(component, module_name)
                for adapter in module.scaling:
                    b = lora_b[adapter] if isinstance(lora_b, nn.ModuleDict) and adapter in lora_b else None
                    per_adapter.setdefault(adapter, []).append(
                        _Site(component, module_name, module, adapter, b, block)
                    )
            sites[component] = per_adapter
        self._sites = sites
        self._indexed = True

    def close(self) -> None:
        """Forget the index. Hooks only live inside contexts, so none remain after this.

        The scaler may be used again afterwards (it re-indexes on the next context).
        """
        if self._active_roles:
            raise RowWeightsError(f"close() while a rows context is active ({sorted(self._active_roles)})")
        self._sites = {}
        self._indexed = False

    def adapters(self, role: str = "unet") -> list[str]:
        """Adapter names with LoRA layers in the UNet (``role="unet"``) or text encoders (``"text"``)."""
        if not self._indexed:
            self._reindex()
        components = UNET_COMPONENTS if role == "unet" else TEXT_COMPONENTS
        return sorted({a for c in components for a in self._sites.get(c, {})})

    # -- contexts ------------------------------------------------------------------------------

    @contextmanager
    def unet_rows(
        self,
        scales: Mapping[str, ScaleSpec],
        ratios: Mapping[str, Sequence[BlockRatios]] | None = None,
    ) -> Iterator[None]:
        """UNet LoRA weights per batch row: adapter name -> one weight per UNet batch row.

        With classifier-free guidance the UNet batch is ``[uncond rows; cond rows]`` (see
        :func:`unet_row_scales`). A single number instead of a list applies to every row of any
        batch size (exactly ``set_adapters``' behaviour for that adapter). ``ratios``: per adapter,
        one block-ratio vector per row (LoRA block weights, :mod:`assistant.lbw`; a layer's weight
        is the row's weight times the vector's entry for the layer's block), or one for all rows.

        Layers that cannot be weighted per row (PEFT's DoRA variant, embedding layers) make the
        UNet run each group of equal rows as its own call instead (:attr:`split_reason` says why
        afterwards): the same images, more UNet calls.
        """
        with self._rows("unet", UNET_COMPONENTS, scales, ("sample",), ratios):
            yield

    @contextmanager
    def text_rows(self, scales: Mapping[str, ScaleSpec]) -> Iterator[None]:
        """Text-encoder LoRA weights per batch row of every text-encoder call in the context.

        Applies to ``text_encoder`` and ``text_encoder_2`` (SDXL). Note that diffusers'
        ``encode_prompt`` encodes the cond and uncond prompts in separate calls of the same batch
        size, so both get these rows; encode them in separate contexts for separate weights
        (:func:`encode_rows`). Prompt encoders that call the text encoder in their own batches
        (prompt encoding) should be given one number per adapter (uniform), one context per prompt.
        """
        with self._rows("text", TEXT_COMPONENTS, scales, ("input_ids",)):
            yield

    @contextmanager
    def _rows(
        self,
        role: str,
        components: Sequence[str],
        scales: Mapping[str, ScaleSpec],
        input_keys: Sequence[str],
        ratios: Mapping[str, Sequence[BlockRatios]] | None = None,
    ) -> Iterator[None]:
        what = f"{role}_rows"
        weights, rows = _normalise(scales, what)
        row_ratios = _row_ratios(weights, ratios or {}, rows, what)
        if role == "unet":
            self.split_reason = ""
        with self._lock:
            if role in self._active_roles:
                raise RowWeightsError(f"{what}: already active on this scaler (nested or concurrent use)")
            self._active_roles.add(role)
        try:
            present = [c for c in components if getattr(self._pipe, c, None) is not None]
            for component in present:
                model = getattr(self._pipe, component)
                if hasattr(model, "_orig_mod") or getattr(model, "_compiled_call_impl", None) is not None:
                    raise RowWeightsError(
                        f"{what}: pipe.{component} is compiled with torch.compile; per-row weights need "
                        "the uncompiled module (hooks are attached per call)"
                    )
            sites = self._sites_for(weights, present, what)
            active = _Active()
            try:
                self._apply(weights, row_ratios, sites, active, what, split_allowed=role == "unet")
                if rows is not None:
                    for component in present:
                        active.handles.append(
                            getattr(self._pipe, component).register_forward_pre_hook(
                                self._batch_check(component, rows, input_keys, what), with_kwargs=True
                            )
                        )
                if active.split:
                    self.split_reason = active.split
                    active.handles.append(self._split_unet(weights, row_ratios, sites, rows or 1))
                yield
            finally:
                for handle in reversed(active.handles):
                    handle.remove()
                for layer, adapter in active.row_factors:
                    layer.set_row_factors(adapter, None)
                for layer, adapter, value in reversed(active.saved_scaling):
                    layer.scaling[adapter] = value
        finally:
            with self._lock:
                self._active_roles.discard(role)

    def _sites_for(
        self, weights: Mapping[str, list[float]], components: Sequence[str], what: str
    ) -> dict[str, list[_Site]]:
        """The indexed sites of every named adapter, re-indexing if the index is missing or stale."""
        if not self._indexed or self._stale(weights):
            self._reindex()
        known = {a for per in self._sites.values() for a in per}
        unknown = [a for a in weights if a not in known]
        if unknown:
            raise RowWeightsError(
                f"{what}: adapter(s) {unknown} are not loaded in this pipeline; "
                f"loaded adapters: {sorted(known) or 'none'}"
            )
        return {a: [s for c in components for s in self._sites.get(c, {}).get(a, [])] for a in weights}

    def _stale(self, weights: Mapping[str, list[float]]) -> bool:
        """True when a named adapter is unknown or one of its indexed layers no longer holds it."""
        for adapter in weights:
            sites = [s for per in self._sites.values() for s in per.get(adapter, [])]
            if not sites:
                return True
            for site in sites:
                lora_b = getattr(site.layer, "lora_B", None)
                current = lora_b[adapter] if isinstance(lora_b, nn.ModuleDict) and adapter in lora_b else None
                if adapter not in site.layer.scaling or current is not site.lora_b:
                    return True
        return False

    def _apply(
        self,
        weights: Mapping[str, list[float]],
        ratios: Mapping[str, list[BlockRatios]],
        sites: Mapping[str, list[_Site]],
        active: _Active,
        what: str,
        *,
        split_allowed: bool,
    ) -> None:
        """Check every site first, then set scalings, row factors and hooks (recorded in ``active``).

        A site whose layer cannot take per-row factors (PEFT's DoRA variant, embeddings) makes the
        whole call run per group of equal rows (``active.split``) when ``split_allowed``; the
        scalings are then set per group by :meth:`_split_unet`, not here.
        """
        vanilla = _vanilla_types()
        blockers: list[str] = []
        for adapter, adapter_sites in sites.items():
            uniform = _uniform(weights[adapter], ratios[adapter])
            for site in adapter_sites:
                layer, where = site.layer, f"{site.component}.{site.module_name}"
                if layer.merged:
                    raise RowWeightsError(
                        f"{what}: LoRA layer {where} has fused (merged) adapters {layer.merged_adapters}; "
                        "per-row weights need unfused LoRAs: call pipe.unfuse_lora() first"
                    )
                if layer.disable_adapters:
                    raise RowWeightsError(
                        f"{what}: LoRA layers are disabled ({where}); call pipe.enable_lora() first"
                    )
                if adapter not in layer.active_adapters:
                    raise RowWeightsError(
                        f"{what}: adapter {adapter!r} is loaded but not active in {site.component} "
                        f"(active: {list(layer.active_adapters)}); "
                        "call pipe.set_adapters([...]) with it first"
                    )
                if uniform or _is_lycoris(layer):
                    continue
                variant = getattr(layer, "lora_variant", {}).get(adapter)
                if variant is not None:
                    blockers.append(
                        f"adapter {adapter!r} uses the PEFT LoRA variant {type(variant).__name__} (DoRA) "
                        f"at {where}"
                    )
                elif site.lora_b is None or not isinstance(layer, vanilla):
                    blockers.append(f"adapter {adapter!r} has a {type(layer).__name__} LoRA layer at {where}")
        if blockers:
            if not split_allowed:
                raise RowWeightsError(
                    f"{what}: {blockers[0]}; differing row weights work only on Linear/Conv LoRA layers "
                    "(give one weight for all rows)"
                )
            active.split = blockers[0]
            for adapter, adapter_sites in sites.items():
                for site in adapter_sites:
                    active.saved_scaling.append((site.layer, adapter, site.layer.scaling[adapter]))
            return
        for adapter, adapter_sites in sites.items():
            values, row_ratios = weights[adapter], ratios[adapter]
            uniform = _uniform(values, row_ratios)
            for site in adapter_sites:
                layer = site.layer
                active.saved_scaling.append((layer, adapter, layer.scaling[adapter]))
                if uniform:
                    layer.set_scale(adapter, values[0] * _ratio(row_ratios[0], site.block))
                    continue
                factors = [
                    _base_factor(layer, adapter, v * _ratio(r, site.block))
                    for v, r in zip(values, _spread(row_ratios, len(values)), strict=True)
                ]
                if _is_lycoris(layer):
                    layer.set_row_factors(adapter, torch.tensor(factors, dtype=torch.float32))
                    active.row_factors.append((layer, adapter))
                    continue
                layer.scaling[adapter] = 1.0
                hook = self._row_hook(factors, f"{site.component}.{site.module_name}", adapter, what)
                lora_b = site.lora_b
                assert lora_b is not None  # checked above: non-uniform rows need a lora_B module
                active.handles.append(lora_b.register_forward_hook(hook))

    def _split_unet(
        self,
        weights: Mapping[str, list[float]],
        ratios: Mapping[str, list[BlockRatios]],
        sites: Mapping[str, list[_Site]],
        rows: int,
    ) -> Any:
        """Make ``pipe.unet`` run each group of rows with equal weights as its own call.

        Every tensor argument whose first dimension is the batch is cut to the group's rows (the
        sample, the text embeddings, SDXL's ``added_cond_kwargs``); a timestep tensor of one value
        per row too. The outputs are put back in row order. Returns a handle whose ``remove()``
        restores the UNet's own forward.
        """
        unet = self._pipe.unet
        original = unet.forward
        keys: list[tuple[Any, ...]] = []
        for row in range(rows):
            keys.append(
                tuple(
                    (weights[a][min(row, len(weights[a]) - 1)], _key(_spread(ratios[a], rows)[row]))
                    for a in sorted(weights)
                )
            )
        groups: dict[tuple[Any, ...], list[int]] = {}
        for row, key in enumerate(keys):
            groups.setdefault(key, []).append(row)

        def set_group(row: int) -> None:
            for adapter, adapter_sites in sites.items():
                value = weights[adapter][min(row, len(weights[adapter]) - 1)]
                row_ratio = _spread(ratios[adapter], rows)[row]
                for site in adapter_sites:
                    site.layer.set_scale(adapter, value * _ratio(row_ratio, site.block))

        def forward(*args: Any, **kwargs: Any) -> Any:
            sample = args[0] if args else kwargs["sample"]
            if sample.shape[0] != rows:
                raise RowWeightsError(
                    f"unet_rows: the UNet was called with {sample.shape[0]} rows but {rows} row weights "
                    "were given"
                )
            outputs: list[tuple[list[int], torch.Tensor]] = []
            return_dict = kwargs.get("return_dict", True)
            for indices in groups.values():
                set_group(indices[0])
                index = torch.tensor(indices, device=sample.device)
                sub_args = [_take(a, index, rows) for a in args]
                sub_kwargs = {k: _take(v, index, rows) for k, v in kwargs.items()}
                sub_kwargs["return_dict"] = False
                out = original(*sub_args, **sub_kwargs)[0]
                outputs.append((indices, out))
            first = outputs[0][1]
            merged = first.new_empty((rows, *first.shape[1:]))
            for indices, out in outputs:
                merged[torch.tensor(indices, device=merged.device)] = out
            if return_dict:
                from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

                return UNet2DConditionOutput(sample=merged)
            return (merged,)

        unet.forward = forward

        class _Restore:
            def remove(self) -> None:
                if unet.__dict__.get("forward") is forward:
                    del unet.forward

        return _Restore()

    @staticmethod
    def _row_hook(
        factors: Sequence[float], where: str, adapter: str, what: str
    ) -> Callable[[nn.Module, Any, torch.Tensor], torch.Tensor]:
        """A forward hook scaling row i of ``lora_B``'s output by ``factors[i]``."""
        rows = len(factors)
        cache: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}

        def hook(_module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
            if output.shape[0] != rows:
                raise RowWeightsError(
                    f"{what}: LoRA layer {where} (adapter {adapter!r}) got a batch of {output.shape[0]} "
                    f"rows but {rows} row weights were given"
                )
            key = (output.ndim, output.dtype, output.device)
            factor = cache.get(key)
            if factor is None:
                factor = torch.tensor(factors, dtype=_opmath(output.dtype), device=output.device)
                factor = factor.view(rows, *([1] * (output.ndim - 1)))
                cache[key] = factor
            if factor.dtype == output.dtype:
                return output * factor
            return (output.to(factor.dtype) * factor).to(output.dtype)

        return hook

    @staticmethod
    def _batch_check(
        component: str, rows: int, keys: Sequence[str], what: str
    ) -> Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], None]:
        def pre_hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            tensor = _first_tensor(args, kwargs, keys)
            if tensor is not None and tensor.shape[0] != rows:
                raise RowWeightsError(
                    f"{what}: pipe.{component} was called with a batch of {tensor.shape[0]} rows "
                    f"but {rows} row weights were given"
                )

        return pre_hook


# -- helpers for the engine ----------------------------------------------------------------------


def unet_row_scales(
    cond: Mapping[str, Sequence[float]],
    uncond: Mapping[str, Sequence[float]] | None,
    *,
    guidance: bool,
) -> dict[str, list[float]]:
    """UNet row weights for a batch of cells: ``uncond + cond`` with CFG (diffusers' order), else ``cond``.

    ``uncond=None`` means the uncond rows use the cond weights (ordinary generation). An adapter
    named in only one of the two gets weight 0 on the other branch.
    """
    if not guidance:
        return {name: [float(v) for v in values] for name, values in cond.items()}
    uncond = cond if uncond is None else uncond
    n_cond = {len(v) for v in cond.values()}
    n_uncond = {len(v) for v in uncond.values()}
    counts = n_cond | n_uncond
    if len(counts) > 1:
        raise RowWeightsError(
            f"cond and uncond weights need one weight per cell each; got list lengths {sorted(counts)}"
        )
    cells = counts.pop() if counts else 0
    names = list(dict.fromkeys([*uncond, *cond]))
    return {
        name: [float(v) for v in uncond.get(name, [0.0] * cells)]
        + [float(v) for v in cond.get(name, [0.0] * cells)]
        for name in names
    }


@dataclass(frozen=True)
class EncodedRows:
    """Prompt embeddings for a batch of rows (``pooled`` only for SDXL)."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None


def encode_rows(
    pipe: Any,
    scaler: RowScaler,
    prompts: Sequence[str],
    te_scales: Mapping[str, ScaleSpec] | None = None,
) -> EncodedRows:
    """Encode ``prompts`` in ONE text-encoder batch, row i with text-encoder weights ``te_scales[a][i]``.

    Uses the pipeline's own ``encode_prompt`` (no CFG), so embeddings equal the pipeline's for
    the same weights up to batching. SD1.x and SDXL pipelines.
    """
    device = getattr(pipe, "_execution_device", None) or pipe.device
    prompts = list(prompts)
    with scaler.text_rows(te_scales or {}):
        if getattr(pipe, "text_encoder_2", None) is not None:
            embeds, _, pooled, _ = pipe.encode_prompt(
                prompt=prompts, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
            )
            return EncodedRows(embeds, pooled)
        embeds, _ = pipe.encode_prompt(prompts, device, 1, False)
        return EncodedRows(embeds)


def generate_rows(
    pipe: Any,
    scaler: RowScaler,
    *,
    cond: EncodedRows,
    uncond: EncodedRows | None,
    cond_scales: Mapping[str, Sequence[float]],
    uncond_scales: Mapping[str, Sequence[float]] | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    num_inference_steps: int = 28,
    guidance_scale: float = 7.0,
    height: int | None = None,
    width: int | None = None,
    output_type: str = "pil",
    **pipe_kwargs: Any,
) -> Any:
    """Run ``pipe`` once for N cells (N = rows of ``cond.embeds``) with per-cell UNet LoRA weights.

    ``cond_scales``/``uncond_scales``: adapter -> one weight per cell for the cond and uncond
    (negative) branch; ``uncond_scales=None`` = same as cond. Give one generator per cell (seeded
    like the sequential runs) to reproduce them: diffusers draws initial latents and ancestral
    noise row by row from a list of generators. Returns the pipeline's output object. Extra
    keyword arguments (``callback_on_step_end``, ``guidance_rescale``, ...) go to the pipeline.
    The named adapters must be active (``pipe.set_adapters``).
    """
    cells = cond.embeds.shape[0]
    guidance = guidance_scale > 1 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None
    if guidance and uncond is None:
        raise RowWeightsError("generate_rows: guidance_scale > 1 needs the negative (uncond) embeddings")
    if uncond is not None and uncond.embeds.shape[0] != cells:
        raise RowWeightsError(
            f"generate_rows: {cells} cond rows but {uncond.embeds.shape[0]} uncond rows; give one per cell"
        )
    if isinstance(generator, list) and len(generator) != cells:
        raise RowWeightsError(f"generate_rows: {len(generator)} generators for {cells} cells")
    for label, mapping in (("cond_scales", cond_scales), ("uncond_scales", uncond_scales or {})):
        for name, values in mapping.items():
            if len(values) != cells:
                raise RowWeightsError(
                    f"generate_rows: {label}[{name!r}] has {len(values)} weights for {cells} cells"
                )
    scales = unet_row_scales(cond_scales, uncond_scales, guidance=guidance)
    kwargs: dict[str, Any] = {"prompt_embeds": cond.embeds}
    if uncond is not None:
        kwargs["negative_prompt_embeds"] = uncond.embeds
    if cond.pooled is not None:
        kwargs["pooled_prompt_embeds"] = cond.pooled
    if uncond is not None and uncond.pooled is not None:
        kwargs["negative_pooled_prompt_embeds"] = uncond.pooled
    with scaler.unet_rows(scales):
        return pipe(
            **kwargs,
            generator=generator,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            height=height,
            width=width,
            output_type=output_type,
            **pipe_kwargs,
        )
