"""Sweep axes as text: :func:`parse_axis` reads ``NAME=VALUES`` with A1111's X/Y/Z range syntax.

``catgirl_v1=0.2..1.0x5``, ``cfg=5..9x3``, ``seed=1,2,3``, ``steps=1-5 (+2)``,
``sampler=Euler a,DDIM``: every value checked against :mod:`assistant.limits`.
:func:`weight_axis` builds the same axis from numbers already read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from .. import limits
from ..types import format_weight
from .common import MAX_AXIS_WEIGHT, MAX_SEED
from .plan import Axis, AxisKind, PlanError, PlanLimitError

#: Most values one sweep axis may hold (:mod:`assistant.limits`, like every bound here).
MAX_AXIS_VALUES = limits.SWEEP_VALUES[1]


_AXIS_NAMES: dict[str, AxisKind] = {
    "seed": "seed",
    "seeds": "seed",
    "cfg": "cfg",
    "cfg scale": "cfg",
    "cfg_scale": "cfg",
    "scale": "cfg",
    "steps": "steps",
    "step": "steps",
    "sampler": "sampler",
    "samplers": "sampler",
    "scheduler": "scheduler",
    "schedule": "scheduler",
    "schedule type": "scheduler",
    "schedule_type": "scheduler",
}
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE_DASH = re.compile(
    rf"^\s*({_NUMBER})\s*-\s*({_NUMBER})\s*(?:\(\s*({_NUMBER})\s*\)|\[\s*(\d+)\s*\])?\s*$"
)
#: What may follow a ``from..to`` range (:func:`assistant.limits.split_range`): ``x5``, ``(+0.2)``, ``[5]``.
_RANGE_SUFFIX = re.compile(rf"^(?:[x×*]\s*(\d+)|\(\s*({_NUMBER})\s*\)|\[\s*(\d+)\s*\])?$", re.IGNORECASE)


def weight_axis(name: str, weights: Sequence[float]) -> Axis:
    """A LoRA weight axis from numbers already read (``/sweep NAME 0.2..1.0x5``, the default
    sweep): the same values and checks as :func:`parse_axis` gives its text, without writing the
    numbers out as text to read them again."""
    spec = f"{name}=" + ",".join(format_weight(w) for w in weights)
    values = [_axis_value(spec, "lora", float(w)) for w in weights]
    if len(values) > MAX_AXIS_VALUES:
        raise PlanLimitError(f"axis '{spec}' has {len(values)} values; at most {MAX_AXIS_VALUES} are allowed")
    return Axis(kind="lora", values=tuple(values), target=name, spec=spec)


def parse_axis(spec: str) -> Axis:
    """Read a sweep axis: ``NAME=VALUES`` (``NAME: VALUES`` works too).

    NAME is ``seed``, ``cfg``, ``steps``, ``sampler``, ``scheduler`` or a LoRA name (write
    ``lora:NAME`` for a LoRA named like one of those). VALUES is a comma-separated list whose
    numeric items may be ranges in A1111's X/Y/Z syntax — ``1-5`` (step 1), ``1-5 (+2)``,
    ``10-1 (-3)``, ``0.2-1.0 [5]`` (5 values evenly spaced) — or ``0.2..1.0x5`` / ``0.2..1.0 (+0.2)``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise PlanError(
            "an axis looks like 'catgirl_v1=0.2..1.0x5', 'cfg=5..9x3', 'seed=1,2,3' or 'sampler=Euler a,DDIM'"
        )
    text = spec.strip()
    name, values_text = _split_axis(text)
    lowered = re.sub(r"\s+", " ", name.casefold())
    if lowered.startswith("lora:"):
        kind: AxisKind = "lora"
        target: str | None = name.split(":", 1)[1].strip()
    elif lowered in _AXIS_NAMES:
        kind, target = _AXIS_NAMES[lowered], None
    else:
        kind, target = "lora", name
    if kind == "lora" and not re.fullmatch(r"[^<>:,=]+", target or ""):
        raise PlanError(f"axis '{spec}': '{target}' is not a LoRA name")
    items = [item.strip() for item in values_text.split(",")]
    if not values_text.strip() or any(not item for item in items):
        raise PlanError(
            f"axis '{spec}': a value is empty; separate values with single commas, e.g. '0.2,0.4,0.6'"
        )
    values: list[Any] = []
    for item in items:
        values.extend(_axis_item(spec, kind, item))
    if len(values) > MAX_AXIS_VALUES:
        raise PlanLimitError(f"axis '{spec}' has {len(values)} values; at most {MAX_AXIS_VALUES} are allowed")
    duplicates = sorted({_show(v) for v in values if values.count(v) > 1})
    if duplicates:
        raise PlanError(f"axis '{spec}' repeats {', '.join(duplicates)}; every value must differ")
    return Axis(kind=kind, values=tuple(values), target=target, spec=text)


def _show(value: Any) -> str:
    return format_weight(value) if isinstance(value, float) else str(value)


def _split_axis(text: str) -> tuple[str, str]:
    if "=" in text:
        name, _sep, values = text.partition("=")
    else:
        match = re.match(r"^\s*(lora\s*:\s*[^:]+|[^:]+):(.*)$", text, re.IGNORECASE)
        if match is None:
            raise PlanError(
                f"axis '{text}' needs a name and values, e.g. 'catgirl_v1=0.2,0.4,0.6' or 'cfg=5..9x3'"
            )
        name, values = match.group(1), match.group(2)
    if not name.strip():
        raise PlanError(f"axis '{text}' has no name before '='; e.g. 'cfg=5,7,9'")
    return name.strip(), values


def _axis_item(spec: str, kind: AxisKind, item: str) -> list[Any]:
    if kind in ("sampler", "scheduler"):
        return [item]
    numbers = _expand_range(spec, kind, item)
    return [_axis_value(spec, kind, value) for value in numbers]


def _expand_range(spec: str, kind: AxisKind, item: str) -> list[float]:
    integer = kind in ("seed", "steps")
    if (m := _RANGE_DASH.match(item)) is not None:  # A1111's X/Y/Z form: step 1 unless given
        start, end = float(m.group(1)), float(m.group(2))
        count, step = m.group(4), m.group(3)
        if count is None and step is None:
            step = "1" if end >= start else "-1"
        return _range_values(spec, item, start, end, count=count, step=step)
    span = limits.split_range(item)
    if span is not None and (m := _RANGE_SUFFIX.match(span[2])) is not None:
        start, end = span[0], span[1]
        count = m.group(1) or m.group(3)
        step = m.group(2)
        if count is None and step is None:
            if not integer:
                raise PlanError(
                    f"axis '{spec}': say how many values '{item}' gives, e.g. '{item}x5', or its step, "
                    f"e.g. '{item} (+0.1)'"
                )
            step = "1" if end >= start else "-1"
        return _range_values(spec, item, start, end, count=count, step=step)
    try:
        return [float(item)]
    except ValueError:
        raise PlanError(
            f"axis '{spec}': '{item}' is not a number or a range; use e.g. '0.4', '0.2..1.0x5', "
            "'1-5', '1-5 (+2)' or '0.2-1.0 [5]'"
        ) from None


def _range_values(
    spec: str, item: str, start: float, end: float, *, count: str | None, step: str | None
) -> list[float]:
    if count is not None:
        number = int(count)
        if not 1 <= number <= MAX_AXIS_VALUES:
            raise PlanLimitError(
                f"axis '{spec}': '{item}' asks for {number} values; use 1 to {MAX_AXIS_VALUES}"
            )
        if number == 1:
            return [start]
        return [start + (end - start) * i / (number - 1) for i in range(number)]
    assert step is not None
    delta = float(step)
    if delta == 0 or (end - start) * delta < 0:
        raise PlanError(f"axis '{spec}': the step {step} of '{item}' never gets from {start:g} to {end:g}")
    span = (end - start) / delta
    if span > MAX_AXIS_VALUES:
        raise PlanLimitError(
            f"axis '{spec}': '{item}' gives more than {MAX_AXIS_VALUES} values; use a larger step"
        )
    return [start + delta * i for i in range(math.floor(span + 1e-9) + 1)]


def _axis_value(spec: str, kind: AxisKind, value: float) -> Any:
    if not math.isfinite(value):
        raise PlanError(f"axis '{spec}': {value!r} is not a finite number")
    if kind in ("seed", "steps"):
        if abs(value - round(value)) > 1e-9:
            raise PlanError(f"axis '{spec}': {kind} must be whole numbers; got {value:g}")
        whole = round(value)
        low, high = (0, MAX_SEED) if kind == "seed" else limits.STEPS
        if not low <= whole <= high:
            raise PlanLimitError(f"axis '{spec}': {kind} {whole} is outside {low}..{high}")
        return whole
    number = round(value, 6) + 0.0
    if kind == "cfg" and not limits.CFG[0] < number <= limits.CFG[1]:
        raise PlanLimitError(
            f"axis '{spec}': CFG scale {number:g} is outside "
            f"{limits.CFG[0]:g}..{limits.CFG[1]:g} (0 excluded)"
        )
    if kind == "lora" and abs(number) > MAX_AXIS_WEIGHT:
        raise PlanLimitError(
            f"axis '{spec}': weight {number:g} is outside ±{MAX_AXIS_WEIGHT:g}; images break long before that"
        )
    return number
