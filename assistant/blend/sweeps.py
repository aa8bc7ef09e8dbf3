"""X/Y sweeps: :func:`sweep` crosses one or two :class:`~.plan.Axis` as A1111's X/Y/Z plot does.

Axes vary a LoRA's weight, the seed, CFG, steps, the sampler or the schedule type; the grid's
columns follow X and its rows Y.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

from .. import limits
from ..infotext import split_sampler
from ..types import GenerationRequest, PlannedLora
from .common import _find_lora, _key, _library_lora, _not_in_plan, _resolve_image_seed, retag_prompt
from .plan import Axis, Cell, Plan, PlanError, PlanLimitError

#: Most cells a sweep or A/B may have unless the caller raises it.
MAX_SWEEP_CELLS = limits.SWEEP_CELLS


def _apply_axis(request: GenerationRequest, axis: Axis, value: Any) -> GenerationRequest:
    if axis.kind == "seed":
        return dataclasses.replace(request, seed=int(value))
    if axis.kind == "cfg":
        return dataclasses.replace(request, cfg=float(value))
    if axis.kind == "steps":
        return dataclasses.replace(request, steps=int(value))
    if axis.kind == "sampler":
        _name, schedule = split_sampler(str(value))
        scheduler = None if schedule is not None else request.scheduler
        return dataclasses.replace(request, sampler=str(value), scheduler=scheduler)
    if axis.kind == "scheduler":
        sampler, _schedule = split_sampler(request.sampler)
        return dataclasses.replace(request, sampler=sampler, scheduler=str(value))
    index = _find_lora(request.loras, str(axis.target))
    assert index is not None  # checked by sweep()
    loras = list(request.loras)
    loras[index] = dataclasses.replace(loras[index], weight=float(value), unet=None)
    return dataclasses.replace(request, loras=tuple(loras))


def sweep(
    base: GenerationRequest,
    x: Axis | None,
    y: Axis | None = None,
    *,
    seed: int | None = None,
    max_cells: int = MAX_SWEEP_CELLS,
    library: Any = None,
) -> Plan:
    """An X/Y grid: columns follow ``x``, rows follow ``y`` (A1111 X/Y/Z plot layout).

    A LoRA axis sets that LoRA's weight (text encoder and UNet); the LoRA must be in the prompt,
    or findable through ``library`` (then it is added). ``base.seed`` -1 becomes one seed for all
    cells, drawn from ``seed`` (None: random). A ``y`` without an ``x`` is used as ``x``.
    """
    if x is None:
        x, y = y, None
    if x is None:
        raise PlanError("a sweep needs at least one axis, e.g. 'catgirl_v1=0.2..1.0x5' or 'cfg=4,7,10'")
    if (
        y is not None
        and x.kind == y.kind
        and (x.kind != "lora" or _key(str(x.target)) == _key(str(y.target)))
    ):
        raise PlanError(f"both axes vary {x.title}; give the Y axis something else")
    count = len(x.values) * (len(y.values) if y else 1)
    if count > max_cells:
        raise PlanLimitError(
            f"this sweep has {count} cells; at most {max_cells} are allowed — use fewer values"
        )
    loras = list(base.loras)
    for axis in (x, y):
        if axis is None or axis.kind != "lora":
            continue
        index = _find_lora(loras, str(axis.target))
        if index is None:
            if library is None:
                raise _not_in_plan(str(axis.target), loras, "sweep")
            loras.append(_library_lora(library, str(axis.target), float(axis.values[0])))
    x = _canonical_target(x, loras)
    y = _canonical_target(y, loras) if y else None
    image_seed = _resolve_image_seed(base.seed, random.Random() if seed is None else random.Random(seed))
    start = dataclasses.replace(base, loras=tuple(loras), seed=image_seed)
    managed = [lora.name for lora in loras]
    cells: list[Cell] = []
    for row, y_value in enumerate(y.values if y else (None,)):
        for col, x_value in enumerate(x.values):
            request = _apply_axis(start, x, x_value)
            label = x.header(x_value)
            if y is not None:
                request = _apply_axis(request, y, y_value)
                label += " · " + y.header(y_value)
            request = dataclasses.replace(
                request, prompt=retag_prompt(base.prompt, managed, request.loras), label=label
            )
            cells.append(Cell(request=request, label=label, row=row, col=col))
    title = f"X/Y sweep: {x.title}" + (f" × {y.title}" if y else "") + f" · seed {image_seed}"
    meta = {"image_seed": image_seed, "x": x.spec or x.title, "y": (y.spec or y.title) if y else None}
    return Plan(kind="sweep", cells=tuple(cells), seed=image_seed, title=title, x_axis=x, y_axis=y, meta=meta)


def _canonical_target(axis: Axis, loras: Sequence[PlannedLora]) -> Axis:
    if axis.kind != "lora":
        return axis
    index = _find_lora(loras, str(axis.target))
    if index is None or loras[index].name == axis.target:
        return axis
    return dataclasses.replace(axis, target=loras[index].name)
