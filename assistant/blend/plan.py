"""The data of a plan: :class:`Plan`, :class:`Cell`, :class:`Axis`, the plan errors, and JSON.

A :class:`Plan` is a list of :class:`Cell` — one :class:`~assistant.types.GenerationRequest`
each, with a grid label and a grid position — plus the seed that made it;
:meth:`Plan.to_json` / :meth:`Plan.from_json` store one so that any cell can be rendered again
exactly. :class:`Axis` is one sweep axis as data (its text syntax is :mod:`.axes`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import LimitError, PromptError
from ..types import GenerationRequest, PlannedLora, format_weight

PlanKind = Literal["blindbox", "ab", "sweep"]
AxisKind = Literal["lora", "seed", "cfg", "steps", "sampler", "scheduler"]
AXIS_KINDS: tuple[AxisKind, ...] = ("lora", "seed", "cfg", "steps", "sampler", "scheduler")


class PlanError(PromptError):
    """A blind box / A/B / sweep cannot be planned as asked (bad count, range, axis or name)."""


class PlanLimitError(PlanError, LimitError):
    """A plan asks for more than :mod:`assistant.limits` allows (cells, axis values, a weight, a
    step count or CFG out of range): a PlanError, and the LimitError every limit raises."""


@dataclass(frozen=True)
class Axis:
    """One sweep axis: what varies (``kind``; ``target`` names the LoRA for kind "lora") and its values.

    ``values`` are floats for "lora"/"cfg", ints for "seed"/"steps" and strings for
    "sampler"/"scheduler". ``spec`` is the text it was parsed from ("" when built by code).
    """

    kind: AxisKind
    values: tuple[Any, ...]
    target: str | None = None
    spec: str = ""

    def __post_init__(self) -> None:
        if self.kind not in AXIS_KINDS:
            raise PlanError(f"axis kind '{self.kind}' is unknown; use one of: {', '.join(AXIS_KINDS)}")
        if self.kind == "lora" and not self.target:
            raise PlanError("a LoRA weight axis needs the LoRA's name, e.g. 'catgirl_v1=0.2,0.5,0.8'")
        if not self.values:
            raise PlanError(f"axis '{self.title}' has no values")

    @property
    def title(self) -> str:
        """The axis name as A1111's X/Y/Z plot writes it (``catgirl_v1``, ``CFG Scale`` …)."""
        if self.kind == "lora":
            return str(self.target)
        return {
            "seed": "Seed",
            "cfg": "CFG Scale",
            "steps": "Steps",
            "sampler": "Sampler",
            "scheduler": "Schedule type",
        }[self.kind]

    def format_value(self, value: Any) -> str:
        """A value as text: weights and CFG without trailing zeros, others as they are."""
        if self.kind in ("lora", "cfg"):
            return format_weight(float(value))
        return str(value)

    def header(self, value: Any) -> str:
        """A grid header in A1111's X/Y/Z look: ``catgirl_v1: 0.4``, ``Seed: 3``."""
        return f"{self.title}: {self.format_value(value)}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "values": list(self.values), "spec": self.spec}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Axis:
        return cls(
            kind=data["kind"],
            values=tuple(data["values"]),
            target=data.get("target"),
            spec=data.get("spec", ""),
        )


@dataclass(frozen=True)
class Cell:
    """One image of a plan: what to render, its grid label and its grid position (0-based)."""

    request: GenerationRequest
    label: str
    row: int
    col: int

    @property
    def weights(self) -> dict[str, float]:
        """LoRA name -> (text-encoder) weight applied in this cell."""
        return {lora.name: lora.weight for lora in self.request.loras}


@dataclass(frozen=True)
class Plan:
    """A blind box, A/B or sweep: the cells to render, in grid order, and how they were made.

    ``seed`` is the plan seed for a blind box (the random draws) and the image seed for A/B and
    sweeps. ``meta`` holds the inputs (ranges, totals, budget, template …), JSON-compatible.
    """

    kind: PlanKind
    cells: tuple[Cell, ...]
    seed: int
    title: str
    x_axis: Axis | None = None
    y_axis: Axis | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return max((c.row for c in self.cells), default=-1) + 1

    @property
    def cols(self) -> int:
        return max((c.col for c in self.cells), default=-1) + 1

    @property
    def requests(self) -> list[GenerationRequest]:
        return [cell.request for cell in self.cells]

    def map_loras(self, change: Callable[[tuple[PlannedLora, ...]], tuple[PlannedLora, ...]]) -> Plan:
        """This plan with ``change`` applied to every cell's LoRAs (e.g. ``library.with_hashes``)."""
        cells = tuple(
            dataclasses.replace(
                cell, request=dataclasses.replace(cell.request, loras=change(cell.request.loras))
            )
            for cell in self.cells
        )
        return dataclasses.replace(self, cells=cells)

    def describe(self) -> str:
        """A plain-text listing a user can reproduce every cell from."""
        base = self.cells[0].request if self.cells else None
        lines = [self.title]
        if base is not None:
            lines.append(
                f"steps {base.steps} · CFG {format_weight(base.cfg)} · {base.sampler}"
                + (f" ({base.scheduler})" if base.scheduler else "")
                + f" · {base.width}x{base.height}"
            )
            if base.negative:
                lines.append(f"negative: {base.negative}")
        for index, cell in enumerate(self.cells, start=1):
            lines.append(f"  [{index}] {cell.label.replace(chr(10), ' | ')}  (seed {cell.request.seed})")
            lines.append(f"      {cell.request.prompt}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict holding everything needed to rebuild the plan."""
        return {
            "format": "lora-mixer-plan/1",
            "kind": self.kind,
            "seed": self.seed,
            "title": self.title,
            "x_axis": self.x_axis.to_dict() if self.x_axis else None,
            "y_axis": self.y_axis.to_dict() if self.y_axis else None,
            "meta": self.meta,
            "cells": [
                {"label": c.label, "row": c.row, "col": c.col, "request": _request_to_dict(c.request)}
                for c in self.cells
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """The plan :meth:`to_json` wrote (PlanError on anything else)."""
        if not isinstance(data, Mapping) or data.get("format") != "lora-mixer-plan/1":
            raise PlanError("not a LoRA Mixer plan: expected a JSON object with format 'lora-mixer-plan/1'")
        try:
            cells = tuple(
                Cell(
                    request=_request_from_dict(c["request"]),
                    label=str(c["label"]),
                    row=int(c["row"]),
                    col=int(c["col"]),
                )
                for c in data["cells"]
            )
            return cls(
                kind=data["kind"],
                cells=cells,
                seed=int(data["seed"]),
                title=str(data["title"]),
                x_axis=Axis.from_dict(data["x_axis"]) if data.get("x_axis") else None,
                y_axis=Axis.from_dict(data["y_axis"]) if data.get("y_axis") else None,
                meta=dict(data.get("meta") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"plan JSON is incomplete or malformed ({type(exc).__name__}: {exc})") from None


def _request_to_dict(request: GenerationRequest) -> dict[str, Any]:
    data = {f.name: getattr(request, f.name) for f in dataclasses.fields(GenerationRequest)}
    data["loras"] = [dataclasses.asdict(lora) for lora in request.loras]
    data["extra"] = dict(request.extra)
    # an img2img source is named (file name, size, sha256 of its pixels), never stored in the JSON
    data["init_image"] = request.init_image.describe() if request.init_image is not None else None
    data["hires"] = dataclasses.asdict(request.hires) if request.hires is not None else None
    return data


def _planned_from_dict(values: dict[str, Any]) -> PlannedLora:
    """A plan file's LoRA; its block weights (a JSON list) back to the 26 ratios."""
    lbw = values.get("lbw")
    if lbw is not None:
        try:
            ratios = tuple(float(r) for r in lbw)
        except (TypeError, ValueError):
            ratios = ()
        if len(ratios) != 26:
            raise PlanError(
                f"LoRA '{values.get('name')}' in this plan has block weights (lbw) that are not 26 numbers"
            )
        values["lbw"] = ratios
    return PlannedLora(**values)


def _request_from_dict(data: Mapping[str, Any]) -> GenerationRequest:
    known = {f.name for f in dataclasses.fields(GenerationRequest)}
    values = {k: v for k, v in data.items() if k in known}
    lora_fields = {f.name for f in dataclasses.fields(PlannedLora)}
    values["loras"] = tuple(
        _planned_from_dict({k: v for k, v in lora.items() if k in lora_fields})
        for lora in data.get("loras", ())
    )
    values["extra"] = dict(data.get("extra") or {})
    if values.get("init_image") is not None:
        raise PlanError(
            "this plan renders over an init image, which a plan file names but does not hold "
            f"({values['init_image'].get('name') or 'unnamed'}); render it again from the image itself"
        )
    values.pop("init_image", None)
    if isinstance(values.get("hires"), Mapping):
        from ..types import HiresFix

        fields = {f.name for f in dataclasses.fields(HiresFix)}
        values["hires"] = HiresFix(**{k: v for k, v in values["hires"].items() if k in fields})
    return GenerationRequest(**values)
