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
    layer: Any  # peft.tuners.lora.LoraLayer
    adapter: str
    lora_b: nn.Module | None  # None for layer kinds without a lora_B module (embeddings)


@dataclass
class _Active:
    """What a context changed, so that exit restores it exactly."""

    saved_scaling: list[tuple[Any, str, float]] = field(default_factory=list)
    handles: list[torch.utils.hooks.RemovableHandle] = field(default_factory=list)


def _vanilla_types() -> tuple[type, ...]:
    from peft.tuners.lora import layer as lora_layer

    return (lora_layer.Linear, lora_layer._ConvNd)


def _lora_layer_type() -> type:
    from peft.tuners.lora import LoraLayer

    return LoraLayer


def _base_factor(layer: Any, adapter: str, weight: float) -> float:
    """``weight * alpha / r`` exactly as PEFT's ``LoraLayer.set_scale`` evaluates it."""
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


class RowScaler:
    """Per-batch-row LoRA weights for a diffusers pipeline whose LoRAs are PEFT adapters.

    Construct once per pipeline (loads nothing). Use :meth:`unet_rows` around a pipeline call
    (or a UNet call) and :meth:`text_rows` around prompt encoding. The adapters named in a
    context must be loaded and active (``pipe.set_adapters([...])``); the context overrides their
    weights for its duration and restores them afterwards. Adapters not named keep whatever
    ``set_adapters`` gave them.
    """

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._sites: dict[str, dict[str, list[_Site]]] = {}
        self._indexed = False
        self._lock = threading.Lock()
        self._active_roles: set[str] = set()

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
        lora_layer = _lora_layer_type()
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
                for adapter in module.scaling:
                    b = lora_b[adapter] if isinstance(lora_b, nn.ModuleDict) and adapter in lora_b else None
                    per_adapter.setdefault(adapter, []).append(
                        _Site(component, module_name, module, adapter, b)
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
    def unet_rows(self, scales: Mapping[str, ScaleSpec]) -> Iterator[None]:
        """UNet LoRA weights per batch row: adapter name -> one weight per UNet batch row.

        With classifier-free guidance the UNet batch is ``[uncond rows; cond rows]`` (see
        :func:`unet_row_scales`). A single number instead of a list applies to every row of any
        batch size (exactly ``set_adapters``' behaviour for that adapter).
        """
        with self._rows("unet", UNET_COMPONENTS, scales, ("sample",)):
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
    ) -> Iterator[None]:
        what = f"{role}_rows"
        weights, rows = _normalise(scales, what)
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
                self._apply(weights, sites, active, what)
                if rows is not None:
                    for component in present:
                        active.handles.append(
                            getattr(self._pipe, component).register_forward_pre_hook(
                                self._batch_check(component, rows, input_keys, what), with_kwargs=True
                            )
                        )
                yield
            finally:
                for handle in reversed(active.handles):
                    handle.remove()
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
        sites: Mapping[str, list[_Site]],
        active: _Active,
        what: str,
    ) -> None:
        """Check every site first, then set scalings and attach hooks (recorded in ``active``)."""
        vanilla = _vanilla_types()
        for adapter, adapter_sites in sites.items():
            uniform = len(set(weights[adapter])) == 1
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
                variant = getattr(layer, "lora_variant", {}).get(adapter)
                if variant is not None:
                    raise RowWeightsError(
                        f"{what}: adapter {adapter!r} uses the PEFT LoRA variant {type(variant).__name__} "
                        f"(e.g. DoRA) at {where}; only plain LoRA supports per-row weights"
                    )
                if not uniform and (site.lora_b is None or not isinstance(layer, vanilla)):
                    raise RowWeightsError(
                        f"{what}: adapter {adapter!r} has a {type(layer).__name__} LoRA layer at {where}; "
                        "differing row weights work only on Linear/Conv layers (give one weight for all rows)"
                    )
        for adapter, adapter_sites in sites.items():
            values = weights[adapter]
            uniform = len(set(values)) == 1
            for site in adapter_sites:
                layer = site.layer
                active.saved_scaling.append((layer, adapter, layer.scaling[adapter]))
                if uniform:
                    layer.set_scale(adapter, values[0])
                    continue
                layer.scaling[adapter] = 1.0
                factors = [_base_factor(layer, adapter, v) for v in values]
                hook = self._row_hook(factors, f"{site.component}.{site.module_name}", adapter, what)
                lora_b = site.lora_b
                assert lora_b is not None  # checked above: non-uniform rows need a lora_B module
                active.handles.append(lora_b.register_forward_hook(hook))

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
