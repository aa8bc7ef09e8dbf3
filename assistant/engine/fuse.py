"""The fused fast path: a render whose LoRA mix is the same for every step and every batch row runs
with the LoRA deltas added into the UNet's own weights, then the weights are put back bit for bit
(from copies: in host memory for GPU weights).

Unfused, every LoRA layer computes ``base(x) + scale * up(down(x))`` at every step (LyCORIS layers
rebuild their weight delta); fused, ``W + ΔW`` once and the UNet runs at the speed of the model
without LoRA. :func:`fused` adds each active adapter's delta (PEFT's ``get_delta_weight``, a
:class:`~assistant.engine.lycoris.LycorisLayer`'s ``delta_weight``/``delta_bias``) to the plain
layer under it, switches the tuner layers off for the call (``_disable_adapters``: their forward is
then the plain layer's), and afterwards copies the saved original tensors back (``W + ΔW - ΔW`` is
not ``W`` in floating point; a copy is) and switches the layers back on — also when the render
raised or was cancelled. The adapter state (active adapters, scales) is never touched.

When it is worth it (:func:`worth_fusing`): the fuse and restore cost about one step's worth of
memory traffic over the patched weights, the unfused overhead is paid every step, so a render
fuses from ``min_steps`` sampling steps (``Settings.fuse_min_steps``, ``LORA_MIXER_FUSE_MIN_STEPS``;
0 never fuses). The default comes from ``bench/fuse_bench.py`` (figures in ``bench/RESULTS.md``).

Not fused (the unfused path runs, with the same image): per-row weights (batched grids, negative-
prompt weights; their rows differ), PEFT's DoRA variant (its delta is not a weight sum), a layer
with a bias delta but no bias, low-VRAM mode (offloaded weights move between devices).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["FuseReport", "fused", "worth_fusing"]


@dataclass
class FuseReport:
    """What :func:`fused` did: ``fused`` False with ``reason`` when it left the model as it was."""

    fused: bool = False
    reason: str = ""
    layers: int = 0
    seconds: float = 0.0  # fuse + restore


def worth_fusing(steps: int, min_steps: int) -> bool:
    """Whether a render of ``steps`` sampling steps fuses (``min_steps`` 0: never)."""
    return min_steps > 0 and steps >= min_steps


def _deltas(unet: Any) -> tuple[list[tuple[Any, torch.Tensor | None, torch.Tensor | None]], list[Any], str]:
    """(plain layer, weight delta, bias delta) per patched layer, the tuner layers to switch off,
    or a reason not to fuse."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from .lycoris import LycorisLayer

    sums: dict[int, list[Any]] = {}
    switched: list[Any] = []
    for module in unet.modules():
        if not isinstance(module, BaseTunerLayer) or module.disable_adapters:
            continue
        active = [a for a in module.active_adapters if a in getattr(module, "scaling", {})]
        if not active:
            continue
        if getattr(module, "merged", False):
            return [], [], "a layer is already merged"
        base = module.get_base_layer()
        entry = sums.setdefault(id(base), [base, None, None])
        for adapter in active:
            if isinstance(module, LycorisLayer):
                weight, bias = module.delta_weight(adapter), module.delta_bias(adapter)
            else:
                if getattr(module, "lora_variant", {}).get(adapter) is not None:
                    return [], [], "PEFT's DoRA variant is applied unfused"
                if adapter not in getattr(module, "lora_A", {}):
                    return [], [], f"an adapter of a {type(module).__name__} layer cannot be fused"
                weight, bias = module.get_delta_weight(adapter), None
            if bias is not None and base.bias is None:
                return [], [], "a bias difference on a layer without a bias"
            if weight is not None:
                entry[1] = weight if entry[1] is None else entry[1] + weight
            if bias is not None:
                entry[2] = bias if entry[2] is None else entry[2] + bias
        switched.append(module)
    return [tuple(v) for v in sums.values()], switched, ""  # type: ignore[misc]


def _backup(tensor: torch.Tensor) -> torch.Tensor:
    """A copy to restore from: in host memory for GPU weights (the patched layers are most of the
    UNet; a second copy in VRAM could run a small card out of memory), beside it otherwise."""
    if tensor.is_cuda:
        return tensor.detach().to("cpu", copy=True)
    return tensor.detach().clone()


@contextmanager
def fused(unet: Any) -> Iterator[FuseReport]:
    """The UNet with its active LoRA deltas added into its weights for the ``with`` block."""
    report = FuseReport()
    started = time.perf_counter()
    with torch.no_grad():
        deltas, switched, reason = _deltas(unet)
        if reason or not deltas:
            report.reason = reason or "no active LoRA layer"
            yield report
            return
        saved: list[tuple[torch.Tensor, torch.Tensor]] = []
        try:
            for base, weight, bias in deltas:
                if weight is not None:
                    saved.append((base.weight, _backup(base.weight)))
                    base.weight.add_(weight.to(base.weight.dtype).reshape(base.weight.shape))
                if bias is not None:
                    saved.append((base.bias, _backup(base.bias)))
                    base.bias.add_(bias.to(base.bias.dtype))
            states = [(m, m._disable_adapters) for m in switched]
            for module in switched:
                module._disable_adapters = True
            report.fused, report.layers = True, len(deltas)
            report.seconds = time.perf_counter() - started
            try:
                yield report
            finally:
                mark = time.perf_counter()
                for module, state in states:
                    module._disable_adapters = state
                report.seconds += time.perf_counter() - mark
        finally:
            mark = time.perf_counter()
            for tensor, original in saved:
                tensor.copy_(original)
            report.seconds += time.perf_counter() - mark
