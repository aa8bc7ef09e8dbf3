"""Plans of several generations: blind boxes ("抽盲盒"), A/B comparisons and X/Y sweeps.

A :class:`Plan` is a list of :class:`Cell` — one :class:`~assistant.types.GenerationRequest`
each, with a grid label and a grid position — plus the seed that made it. Plans are pure data,
drawn with ``random.Random(seed)`` only, so the same inputs and seed give the same plan on every
machine and Python version; :meth:`Plan.to_json` / :meth:`Plan.from_json` store one so that any
cell can be rendered again exactly.

- :func:`blind_box` varies the LoRA weights of a prompt's plan (the two-LoRA rule of the seed
  articles, ``w1 ~ U(a, b), w2 = total − w1``, and a Dirichlet split of the total for more LoRAs),
  optionally with prompt variation (``{a|b|c}`` and ``__wildcard__`` files, via dynamicprompts).
- :func:`ab` renders the same prompt and seed with LoRA A, LoRA B, both and none — or two versions
  of one LoRA swapped for each other.
- :func:`sweep` crosses one or two :class:`Axis` (LoRA weight, seed, CFG, steps, sampler,
  schedule type) as A1111's X/Y/Z plot does; :func:`parse_axis` reads A1111's range syntax.

Every cell's prompt text carries ``<lora:name:weight>`` tags matching the weights it applies, so
the infotext of a cell pasted into A1111 reproduces it. Weights are rounded to 2 decimals.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from . import limits
from .errors import LimitError, LoraNotFound, PromptError
from .infotext import split_sampler
from .prompt import encoder_text, retag
from .types import GenerationRequest, PlannedLora, format_weight

__all__ = [
    "AXIS_KINDS",
    "MAX_AXIS_VALUES",
    "Axis",
    "Cell",
    "Plan",
    "PlanError",
    "PlanLimitError",
    "ab",
    "blind_box",
    "grid_shape",
    "parse_axis",
    "retag_prompt",
    "short_names",
    "sweep",
]

PlanKind = Literal["blindbox", "ab", "sweep"]
AxisKind = Literal["lora", "seed", "cfg", "steps", "sampler", "scheduler"]
AXIS_KINDS: tuple[AxisKind, ...] = ("lora", "seed", "cfg", "steps", "sampler", "scheduler")

#: Most values one sweep axis may hold (:mod:`assistant.limits`, like every bound here).
MAX_AXIS_VALUES = limits.SWEEP_VALUES[1]
#: Largest |weight| a sweep axis or a blind-box range may set (A1111 accepts more, images break
#: long before).
MAX_AXIS_WEIGHT = limits.LORA_WEIGHT[1]
#: Most cells a sweep or A/B may have unless the caller raises it.
MAX_SWEEP_CELLS = limits.SWEEP_CELLS
#: Highest seed (A1111 seeds are unsigned 32-bit).
MAX_SEED = limits.SEED[1]
#: A/B weight for a LoRA that is neither in the prompt nor given a preferred weight by the catalog.
DEFAULT_AB_WEIGHT = 0.7

_ABVariant = Literal["a", "b", "both", "none"]
_AB_VARIANTS: tuple[str, ...] = ("a", "b", "both", "none")


class PlanError(PromptError):
    """A blind box / A/B / sweep cannot be planned as asked (bad count, range, axis or name)."""


class PlanLimitError(PlanError, LimitError):
    """A plan asks for more than :mod:`assistant.limits` allows (cells, axis values, a weight, a
    step count or CFG out of range): a PlanError, and the LimitError every limit raises."""


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


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
        from .types import HiresFix

        fields = {f.name for f in dataclasses.fields(HiresFix)}
        values["hires"] = HiresFix(**{k: v for k, v in values["hires"].items() if k in fields})
    return GenerationRequest(**values)


# ----------------------------------------------------------------------------------------------
# Prompt text and labels
# ----------------------------------------------------------------------------------------------

def _key(name: str) -> str:
    return name.strip().casefold()


#: A cell's prompt with its LoRA tags made to match the cell: the prompt module's one tag rewriter.
retag_prompt = retag

_VERSION_TOKEN = re.compile(r"^(v\d+([._]\d+)*|\d+)$", re.IGNORECASE)


def short_names(names: Sequence[str], max_len: int = 12) -> dict[str, str]:
    """Short label names: ``catgirl_v1`` -> ``catgirl``, ``cyberpunk_style`` -> ``cyberpunk``.

    The first word of the name (two when the first is 3 letters or fewer: ``add_detail``),
    version tokens dropped; names whose short forms would collide
    (``catgirl_v1`` and ``catgirl_v2``) keep their full names.
    """
    shorts: dict[str, str] = {}
    for name in names:
        tokens = [t for t in re.split(r"[_\-\s.]+", name) if t]
        words = [t for t in tokens if not _VERSION_TOKEN.match(t)]
        short = words[0] if words else name
        if len(short) <= 3 and len(words) > 1:  # "add_detail", "jk_uniform": one word says too little
            short = f"{words[0]}_{words[1]}"
        if len(short) > max_len:
            short = short[: max_len - 1] + "…"
        shorts[name] = short
    counts: dict[str, int] = {}
    for short in shorts.values():
        counts[short.casefold()] = counts.get(short.casefold(), 0) + 1
    return {name: (short if counts[short.casefold()] == 1 else name) for name, short in shorts.items()}


def _weights_label(loras: Sequence[PlannedLora], shorts: Mapping[str, str]) -> str:
    return " · ".join(f"{shorts.get(lora.name, lora.name)} {format_weight(lora.weight)}" for lora in loras)


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) for ``n`` cells: near square, preferring no empty cells (8 -> 2x4, 9 -> 3x3)."""
    if n <= 0:
        return (0, 0)
    side = math.ceil(math.sqrt(n))
    for cols in range(side, 2 * side + 1):
        if n % cols == 0:
            return (n // cols, cols)
    return (math.ceil(n / side), side)


def _find_lora(loras: Sequence[PlannedLora], name: str) -> int | None:
    for index, lora in enumerate(loras):
        if lora.name == name:
            return index
    for index, lora in enumerate(loras):
        if _key(lora.name) == _key(name):
            return index
    return None


def _not_in_plan(name: str, loras: Sequence[PlannedLora], what: str) -> PlanError:
    names = [lora.name for lora in loras]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    message = f"{what}: LoRA '{name}' is not in the prompt's LoRAs"
    message += f" ({', '.join(names)})" if names else " (the prompt has none)"
    if close:
        message += f"; did you mean {', '.join(repr(c) for c in close)}?"
    else:
        message += f"; add <lora:{name}:0.7> to the prompt first"
    return PlanError(message)


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{name} must be a whole number from {low} to {high}; got {value!r}")
    if not low <= value <= high:
        raise PlanLimitError(f"{name} must be from {low} to {high}; got {value}")
    return value


def _check_float(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PlanError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(number) or number > high or number < low or (low_open and number == low):
        bound = f"above {format_weight(low)}" if low_open else f"from {format_weight(low)}"
        raise PlanLimitError(f"{name} must be {bound} to {format_weight(high)}; got {value!r}")
    return number


def _resolve_image_seed(base_seed: int, rng: random.Random) -> int:
    return base_seed if base_seed >= 0 else rng.randrange(MAX_SEED + 1)


# ----------------------------------------------------------------------------------------------
# Blind box
# ----------------------------------------------------------------------------------------------


def _cents(value: float) -> int:
    return round(value * 100)


@dataclass(frozen=True)
class _Slot:
    """One LoRA of a blind box: its allowed range in cents and whether it joins the split."""

    lora: PlannedLora
    low: int
    high: int
    center: float
    explicit: bool


#: A blind box's default and largest number of cells (one grid stays readable up to 4x4).
BLINDBOX_DEFAULT_CELLS, BLINDBOX_MAX_CELLS = limits.BLINDBOX_DEFAULT, limits.BLINDBOX_CELLS[1]


def blind_box(
    base: GenerationRequest,
    *,
    n: int = BLINDBOX_DEFAULT_CELLS,
    seed: int | None = 0,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    total: float | None = None,
    budget: float = limits.BLINDBOX_BUDGET_DEFAULT,
    spread: float = limits.BLINDBOX_SPREAD_DEFAULT,
    per_lora_limit: float = limits.BLINDBOX_PER_LORA_DEFAULT,
    cell_seeds: bool = False,
    wildcards_dir: str | None = None,
    vary_prompt: bool = False,
    max_cells: int = BLINDBOX_MAX_CELLS,
) -> Plan:
    """``n`` distinct random weight mixes of ``base.loras`` ("抽盲盒").

    Ranges: ``ranges[name] = (low, high)`` where given, else the planned weight ± ``spread``
    (the plan's weight already reflects the prompt, a recipe or the catalog's preferred weight),
    always within ``±per_lora_limit``. LoRAs whose range is positive share a ``total``
    (default: the sum of their planned weights, capped by ``budget``; the centres are scaled to
    it): one LoRA draws ``w ~ U(low, high)``; two follow the seed articles' rule
    ``w1 ~ U(a, b), w2 = total − w1`` (a LoRA without an explicit range gets ``total − range`` of
    the other); three or more take a Dirichlet split of the total (concentration set so the
    spread matches ``spread``) clipped to their ranges. LoRAs with a negative range (adjusters
    such as add_detail at −0.5) draw independently. Weights are rounded to 2 decimals, the sum of
    |weights| stays within ``budget``, and no two cells are the same.

    A cell's weight applies to the text encoder and the UNet alike (a planned ``unet`` multiplier
    is dropped); negative-branch weights (``negative_weight``) are kept as planned.

    ``seed`` seeds the draws (None: a random seed, recorded in the plan). All cells share one image
    seed (``base.seed``, or one drawn from the plan seed when it is -1), so only the weights
    differ; ``cell_seeds=True`` gives cell i the seed ``base.seed + i`` (random distinct seeds
    when -1). ``vary_prompt`` (implied by ``wildcards_dir``) expands ``{a|b}`` and
    ``__wildcard__`` in the prompt with dynamicprompts, seeded from the plan seed.
    """
    _check_int("max_cells", max_cells, 1, 1024)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= max_cells:
        raise PlanLimitError(f"a blind box has 1 to {max_cells} cells; got n={n!r}")
    if not base.loras:
        raise PlanError(
            "a blind box mixes the prompt's LoRAs, and this prompt has none; "
            "add some, e.g. '1girl, <lora:catgirl_v1:0.6>, <lora:cyberpunk_style:0.5>'"
        )
    names = [lora.name for lora in base.loras]
    if len({_key(n_) for n_ in names}) != len(names):
        raise PlanError(f"the prompt names a LoRA twice ({', '.join(names)}); keep one tag per LoRA")
    budget = _check_float("budget", budget, *limits.BLINDBOX_BUDGET, low_open=True)
    spread = _check_float("spread", spread, *limits.BLINDBOX_SPREAD)
    per_lora_limit = _check_float("per_lora_limit", per_lora_limit, 0.0, MAX_AXIS_WEIGHT, low_open=True)
    if total is not None:
        total = _check_float("total", total, 0.0, budget, low_open=True)
    if seed is None:
        seed = limits.random_seed()
    _check_int("seed", seed, 0, 2**63 - 1)  # a plan seed seeds random.Random: any whole number

    slots = _blind_box_slots(base.loras, ranges or {}, spread, per_lora_limit)
    positive = [i for i, s in enumerate(slots) if s.low >= 0 and s.high > 0]
    free = [i for i in range(len(slots)) if i not in positive]
    free_max = sum(max(abs(slots[i].low), abs(slots[i].high)) for i in free)
    budget_c = math.floor(budget * 100 + 1e-6)
    split_total_c = _split_total(slots, positive, total, budget_c, free_max)
    if len(positive) >= 2:
        slots = _scale_centres(slots, positive, split_total_c, spread, per_lora_limit)
    if len(positive) == 2:
        slots = _couple_pair(slots, positive, split_total_c, per_lora_limit)

    rng = random.Random(seed)
    seed_rng = random.Random(f"lora-mixer/blindbox/{seed}/seeds")
    image_seed = _resolve_image_seed(base.seed, seed_rng)
    seeds = _cell_seeds(base.seed, image_seed, n, seed_rng) if cell_seeds else [image_seed] * n
    vary = vary_prompt or wildcards_dir is not None
    prompts = _vary_prompts(base.prompt, n, seed, wildcards_dir) if vary else [base.prompt] * n
    _check_space(slots, positive, free, total_c=split_total_c, n=n, other=vary or cell_seeds)

    concentration = _concentration(slots, positive, split_total_c, spread)
    shorts = short_names(names)
    cells: list[Cell] = []
    seen: set[tuple[Any, ...]] = set()
    _rows, cols = grid_shape(n)
    attempts = 0
    max_attempts = 200 + 100 * n
    while len(cells) < n and attempts < max_attempts:
        attempts += 1
        weights_c = _draw(rng, slots, positive, free, total_c=split_total_c, concentration=concentration)
        if weights_c is None or sum(abs(w) for w in weights_c) > budget_c:
            continue
        index = len(cells)
        key = (tuple(weights_c), prompts[index], seeds[index])
        if key in seen:
            continue
        seen.add(key)
        loras = tuple(
            dataclasses.replace(slot.lora, weight=w / 100, unet=None)
            for slot, w in zip(slots, weights_c, strict=True)
        )
        label = _weights_label(loras, shorts)
        if cell_seeds:
            label += f" · seed {seeds[index]}"
        if vary:
            varied = _varied_part(base.prompt, prompts[index])
            if varied:
                label += "\n" + varied
        request = dataclasses.replace(
            base,
            prompt=retag_prompt(prompts[index], names, loras),
            loras=loras,
            seed=seeds[index],
            label=label,
        )
        cells.append(Cell(request=request, label=label, row=index // cols, col=index % cols))
    if len(cells) < n:
        raise PlanError(
            f"only {len(cells)} distinct mixes found in {attempts} draws for n={n}: the weight ranges "
            f"({_ranges_text(slots)}) are too narrow at 2 decimals; widen the spread or the ranges, "
            "or ask for fewer cells"
        )
    meta = {
        "plan_seed": seed,
        "image_seed": image_seed,
        "n": n,
        "ranges": {s.lora.name: [s.low / 100, s.high / 100] for s in slots},
        "split": [slots[i].lora.name for i in positive],
        "total": split_total_c / 100 if len(positive) >= 2 else None,
        "budget": budget,
        "spread": spread,
        "per_lora_limit": per_lora_limit,
        "cell_seeds": cell_seeds,
        "vary_prompt": vary,
        "template": base.prompt,
        "wildcards_dir": wildcards_dir,
        "draws": attempts,
    }
    seed_text = "per-cell seeds" if cell_seeds else f"image seed {image_seed}"
    title = f"Blind box: {n} {'mix' if n == 1 else 'mixes'} · plan seed {seed} · {seed_text}"
    return Plan(kind="blindbox", cells=tuple(cells), seed=seed, title=title, meta=meta)


def _blind_box_slots(
    loras: Sequence[PlannedLora], ranges: Mapping[str, tuple[float, float]], spread: float, limit: float
) -> list[_Slot]:
    limit_c = math.floor(limit * 100 + 1e-6)
    explicit: dict[int, tuple[float, float]] = {}
    for name, bounds in ranges.items():
        index = _find_lora(loras, name)
        if index is None:
            raise _not_in_plan(name, loras, "blind box range")
        try:
            low, high = (float(b) for b in bounds)
        except (TypeError, ValueError):
            raise PlanError(f"range for '{name}' must be two numbers (low, high); got {bounds!r}") from None
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise PlanError(f"range for '{name}' must be low..high with low ≤ high; got {bounds!r}")
        if low < -limit - 1e-9 or high > limit + 1e-9:
            raise PlanError(
                f"range {format_weight(low)}..{format_weight(high)} for '{name}' leaves the per-LoRA limit "
                f"±{format_weight(limit)}; narrow it or raise the limit"
            )
        explicit[index] = (low, high)
    slots: list[_Slot] = []
    for index, lora in enumerate(loras):
        center = lora.weight
        if index in explicit:
            low, high = explicit[index]
            low_c, high_c = math.ceil(low * 100 - 1e-6), math.floor(high * 100 + 1e-6)
            if low_c > high_c:
                raise PlanError(f"range for '{lora.name}' holds no 2-decimal weight; widen it")
            slots.append(_Slot(lora, low_c, high_c, min(max(center, low), high), True))
            continue
        low_c = _cents(center - spread)
        high_c = _cents(center + spread)
        if center > 0:
            low_c = max(low_c, 0)
        elif center == 0:
            low_c, high_c = 0, _cents(spread)
        low_c, high_c = max(low_c, -limit_c), min(high_c, limit_c)
        if low_c > high_c:
            raise PlanError(
                f"'{lora.name}' is planned at {format_weight(center)}, outside the per-LoRA limit "
                f"±{format_weight(limit)}; lower its weight or raise the limit"
            )
        slots.append(_Slot(lora, low_c, high_c, center, False))
    return slots


def _split_total(
    slots: Sequence[_Slot], positive: Sequence[int], total: float | None, budget_c: int, free_max: int
) -> int:
    if not positive:
        return 0
    room = budget_c - free_max
    if total is not None:
        total_c = _cents(total)
        if total_c > room:
            raise PlanError(
                f"total {format_weight(total)} plus the negative-weight LoRAs (up to {free_max / 100:g}) "
                f"exceeds the strength budget {budget_c / 100:g}; lower the total or raise the budget"
            )
        return total_c
    if room <= 0:
        raise PlanError(
            f"the negative-weight LoRAs alone can use the whole strength budget {budget_c / 100:g}; "
            "narrow their ranges or raise the budget"
        )
    if len(positive) == 1:
        return room
    return min(_cents(sum(slots[i].center for i in positive)), room)


def _scale_centres(
    slots: list[_Slot], positive: Sequence[int], total_c: int, spread: float, limit: float
) -> list[_Slot]:
    """Scale the split LoRAs' centres to the total; default ranges follow their new centre."""
    centre_sum = sum(slots[i].center for i in positive)
    if centre_sum <= 0:
        return slots
    factor = total_c / 100 / centre_sum
    limit_c = math.floor(limit * 100 + 1e-6)
    result = list(slots)
    for i in positive:
        slot = slots[i]
        centre = slot.center * factor
        if slot.explicit:
            result[i] = dataclasses.replace(slot, center=min(max(centre, slot.low / 100), slot.high / 100))
            continue
        low = max(0, _cents(centre - spread))
        high = min(limit_c, _cents(centre + spread))
        result[i] = dataclasses.replace(slot, low=min(low, high), high=high, center=centre)
    return result


def _couple_pair(slots: list[_Slot], positive: Sequence[int], total_c: int, limit: float) -> list[_Slot]:
    """Two-LoRA rule: a LoRA without an explicit range gets ``total − range`` of the other."""
    first, second = positive
    a, b = slots[first], slots[second]
    limit_c = math.floor(limit * 100 + 1e-6)
    result = list(slots)

    def derived(slot: _Slot, other: _Slot) -> _Slot:
        low, high = max(0, total_c - other.high), min(limit_c, total_c - other.low)
        return dataclasses.replace(slot, low=min(low, high), high=high)

    if b.explicit and not a.explicit:
        result[first] = derived(a, b)
    elif not b.explicit:
        result[second] = derived(b, a)
    return result


def _pair_interval(slots: Sequence[_Slot], positive: Sequence[int], total_c: int) -> tuple[int, int]:
    a, b = slots[positive[0]], slots[positive[1]]
    return max(a.low, total_c - b.high), min(a.high, total_c - b.low)


def _check_space(
    slots: Sequence[_Slot], positive: Sequence[int], free: Sequence[int], *, total_c: int, n: int, other: bool
) -> None:
    """Fail early, with the numbers, when the weight space cannot hold ``n`` distinct cells."""
    if len(positive) == 2:
        low, high = _pair_interval(slots, positive, total_c)
        if low > high:
            a, b = slots[positive[0]], slots[positive[1]]
            raise PlanError(
                f"'{a.lora.name}' {a.low / 100:g}..{a.high / 100:g} and '{b.lora.name}' "
                f"{b.low / 100:g}..{b.high / 100:g} cannot sum to the total {total_c / 100:g}; "
                "change a range or the total"
            )
    if other:
        return
    space = 1
    for i in free:
        space *= slots[i].high - slots[i].low + 1
    if len(positive) == 1:
        slot = slots[positive[0]]
        space *= max(0, min(slot.high, total_c) - slot.low + 1)
    elif len(positive) == 2:
        low, high = _pair_interval(slots, positive, total_c)
        space *= high - low + 1
    else:
        return  # Dirichlet: large unless the ranges are tiny; the draw loop reports it
    if space < n:
        raise PlanError(
            f"the weight ranges ({_ranges_text(slots)}) hold only {space} distinct 2-decimal mixes, "
            f"fewer than n={n}; widen the spread or the ranges, or ask for fewer cells"
        )


def _concentration(slots: Sequence[_Slot], positive: Sequence[int], total_c: int, spread: float) -> float:
    """Dirichlet concentration whose component spread matches a uniform ±spread."""
    if len(positive) < 3 or total_c <= 0:
        return 0.0
    shares = [max(slots[i].center, 1e-3) for i in positive]
    share_sum = sum(shares)
    shares = [s / share_sum for s in shares]
    target_var = max(spread, 0.01) ** 2 / 3
    total = total_c / 100
    mean_var = sum(s * (1 - s) for s in shares) / len(shares) * total**2
    return min(max(mean_var / target_var - 1, 2.0), 1000.0)


def _draw(
    rng: random.Random,
    slots: Sequence[_Slot],
    positive: Sequence[int],
    free: Sequence[int],
    *,
    total_c: int,
    concentration: float,
) -> list[int] | None:
    """One candidate mix in cents, or None when it falls outside a range."""
    weights = [0] * len(slots)
    if len(positive) == 1:
        slot = slots[positive[0]]
        weights[positive[0]] = round(rng.uniform(slot.low, min(slot.high, total_c)))
    elif len(positive) == 2:
        low, high = _pair_interval(slots, positive, total_c)
        first = round(rng.uniform(low, high))
        weights[positive[0]] = first
        weights[positive[1]] = total_c - first
    elif positive:
        centre_sum = sum(max(slots[i].center, 1e-3) for i in positive)
        gammas = [
            rng.gammavariate(concentration * max(slots[i].center, 1e-3) / centre_sum, 1.0) for i in positive
        ]
        gamma_sum = sum(gammas) or 1.0
        raw = [total_c * g / gamma_sum for g in gammas]
        fitted = _fit_to_ranges(
            raw, [slots[i].low for i in positive], [slots[i].high for i in positive], total_c
        )
        for i, w in zip(positive, _round_preserving_sum(fitted), strict=True):
            weights[i] = w
    for i in free:
        weights[i] = round(rng.uniform(slots[i].low, slots[i].high))
    for slot, w in zip(slots, weights, strict=True):
        if not slot.low <= w <= slot.high:
            return None
    return weights


def _fit_to_ranges(
    values: Sequence[float], lows: Sequence[int], highs: Sequence[int], total: int
) -> list[float]:
    """Clip ``values`` to their ranges, then hand what clipping took or gave to the others.

    Keeps the sum at ``total`` whenever the ranges allow it (a few passes of water-filling,
    in proportion to each value), so a Dirichlet draw stays a split of the total.
    """
    fitted = [min(max(v, lo), hi) for v, lo, hi in zip(values, lows, highs, strict=True)]
    for _ in range(len(fitted) + 2):
        gap = total - sum(fitted)
        if abs(gap) < 1e-9:
            break
        free = [i for i, v in enumerate(fitted) if (v < highs[i] if gap > 0 else v > lows[i])]
        if not free:
            break
        weight = sum(max(fitted[i], 1e-6) for i in free)
        for i in free:
            fitted[i] = min(max(fitted[i] + gap * max(fitted[i], 1e-6) / weight, lows[i]), highs[i])
    return fitted


def _round_preserving_sum(values: Sequence[float]) -> list[int]:
    """Integers (cents) whose sum is the rounded sum of ``values`` (largest-remainder method)."""
    floors = [math.floor(v) for v in values]
    missing = round(sum(values)) - sum(floors)
    order = sorted(range(len(values)), key=lambda i: (-(values[i] - floors[i]), i))
    for i in order[: max(0, missing)]:
        floors[i] += 1
    return floors


def _cell_seeds(base_seed: int, image_seed: int, n: int, rng: random.Random) -> list[int]:
    if base_seed >= 0:
        return [(image_seed + i) % (MAX_SEED + 1) for i in range(n)]
    seeds: list[int] = []
    while len(seeds) < n:
        candidate = rng.randrange(MAX_SEED + 1)
        if candidate not in seeds:
            seeds.append(candidate)
    return seeds


def _ranges_text(slots: Sequence[_Slot]) -> str:
    return ", ".join(f"{s.lora.name} {s.low / 100:g}..{s.high / 100:g}" for s in slots)


_WILDCARD = re.compile(r"__([\w\-/.*]+?)__")


def _vary_prompts(template: str, n: int, seed: int, wildcards_dir: str | None) -> list[str]:
    """``n`` expansions of ``{a|b}`` / ``__wildcard__`` syntax, seeded (dynamicprompts)."""
    from dynamicprompts.generators import RandomPromptGenerator
    from dynamicprompts.wildcards.wildcard_manager import WildcardManager

    manager = None
    if wildcards_dir is not None:
        from pathlib import Path

        folder = Path(wildcards_dir)
        if not folder.is_dir():
            raise PlanError(f"wildcards folder '{wildcards_dir}' does not exist or is not a folder")
        manager = WildcardManager(folder)
    prompt_seed = random.Random(f"lora-mixer/blindbox/{seed}/prompts").randrange(2**31)
    generator = RandomPromptGenerator(manager, seed=prompt_seed)
    try:
        prompts = generator.generate(template, n)
    except Exception as exc:  # dynamicprompts raises pyparsing errors on bad syntax
        raise PlanError(
            f"cannot expand the prompt's variation syntax ({exc}); write choices as {{red|blue}} "
            "and wildcards as __name__"
        ) from None
    for prompt in prompts:
        match = _WILDCARD.search(prompt)
        if match is not None:
            where = f"in '{wildcards_dir}'" if wildcards_dir else "(no wildcards folder given)"
            known = sorted(manager.get_collection_names()) if manager is not None else []
            hint = f"; available: {', '.join(known)}" if known else ""
            raise PlanError(f"wildcard __{match.group(1)}__ has no values {where}{hint}")
    if len(prompts) != n:
        raise PlanError(f"prompt variation gave {len(prompts)} prompts instead of {n}")
    return [str(p) for p in prompts]


def _varied_part(template: str, prompt: str) -> str:
    """The comma-separated pieces of ``prompt`` that are not in ``template`` (for labels)."""
    fixed = {p.strip() for p in template.split(",")}
    parts = [p.strip() for p in encoder_text(prompt).split(",")]
    varied = [p for p in parts if p and p not in fixed]
    text = ", ".join(varied)
    return text if len(text) <= 40 else text[:39] + "…"


# ----------------------------------------------------------------------------------------------
# A/B
# ----------------------------------------------------------------------------------------------


def _library_lora(library: Any, name: str, weight: float | None) -> PlannedLora:
    info = library.resolve(name)
    if getattr(info, "status", "ok") != "ok":
        raise PlanError(f"LoRA '{info.name}' cannot be used: {getattr(info, 'problem', '') or info.status}")
    chosen = weight if weight is not None else (info.preferred_weight or DEFAULT_AB_WEIGHT)
    # the hash is left empty: assistant.library.with_hashes fills it before a render (one path)
    return PlannedLora(name=info.name, path=info.path, weight=chosen)


def ab(
    base: GenerationRequest,
    a: str | None,
    b: str | None,
    *,
    variants: Sequence[str] = _AB_VARIANTS,
    library: Any = None,
    seed: int | None = None,
) -> Plan:
    """The same prompt and seed rendered with LoRA A, LoRA B, both and none (``variants``).

    ``a``/``b`` name LoRAs of ``base.loras`` or, with ``library`` (anything with
    ``resolve(name) -> LoraInfo``), LoRAs to add. A LoRA not in the prompt takes the weight of
    the other one when that one is (so ``catgirl_v1`` vs ``catgirl_v2`` is a version swap at the
    same weight and position), else its catalog's preferred weight, else 0.7. ``a``/``b`` None
    mean the prompt's first / second LoRA (with one LoRA only the "a" and "none" variants remain).
    Other LoRAs of the prompt stay in every cell. ``base.seed`` -1 is replaced by one seed for all
    cells, drawn from ``seed`` (None: random).
    """
    loras = list(base.loras)
    if a is None:
        if not loras:
            raise PlanError(
                "an A/B comparison needs two LoRAs: name them (--a, --b) or put them in the prompt"
            )
        a = loras[0].name
    if b is None:
        if len(loras) >= 2 and _key(loras[1].name) != _key(a):
            b = loras[1].name
        elif len(loras) >= 2:
            b = loras[0].name
        else:
            variants = [v for v in variants if v in ("a", "none")]
    variants = [str(v).strip().lower() for v in variants]
    bad = [v for v in variants if v not in _AB_VARIANTS]
    if bad or not variants or len(set(variants)) != len(variants):
        raise PlanError(
            f"A/B variants must be distinct values from {', '.join(_AB_VARIANTS)}; "
            f"got {', '.join(variants) or 'none'}"
        )
    if b is not None and _key(a) == _key(b):
        raise PlanError(f"A and B are the same LoRA ('{a}'); pick two different LoRAs or versions")

    index_a = _find_lora(loras, a)
    index_b = _find_lora(loras, b) if b is not None else None
    lora_a = _ab_lora(a, loras, index_a, index_b, library)
    lora_b = _ab_lora(b, loras, index_b, index_a, library) if b is not None else None
    others = [lora for i, lora in enumerate(loras) if i not in (index_a, index_b)]
    # Slot A and B where they (or their counterpart, for a version swap) were written.
    pos_a = index_a if index_a is not None else index_b if index_b is not None else len(loras)
    pos_b = index_b if index_b is not None else index_a if index_a is not None else len(loras)

    image_seed = _resolve_image_seed(base.seed, random.Random() if seed is None else random.Random(seed))
    managed = [lora.name for lora in (lora_a, lora_b) if lora is not None]
    shorts = short_names(managed)
    cells: list[Cell] = []
    for col, variant in enumerate(variants):
        chosen: list[tuple[int, int, PlannedLora]] = []
        if variant in ("a", "both"):
            chosen.append((pos_a, 0, lora_a))
        if variant in ("b", "both") and lora_b is not None:
            chosen.append((pos_b, 1, lora_b))
        placed = [(loras.index(lora), 2, lora) for lora in others]
        ordered = tuple(lora for _p, _o, lora in sorted([*placed, *chosen], key=lambda t: (t[0], t[1])))
        label = {
            "a": f"A: {_weights_label([lora_a], shorts)}",
            "b": f"B: {_weights_label([lora_b], shorts)}" if lora_b else "B",
            "both": f"A+B: {_weights_label([x for x in (lora_a, lora_b) if x], shorts)}",
            "none": "none: without " + " / ".join(shorts[m] for m in managed),
        }[variant]
        request = dataclasses.replace(
            base,
            prompt=retag_prompt(base.prompt, managed, ordered),
            loras=ordered,
            seed=image_seed,
            label=label,
        )
        cells.append(Cell(request=request, label=label, row=0, col=col))
    swap = (index_a is None) != (index_b is None) and lora_b is not None
    meta = {
        "a": lora_a.name,
        "b": lora_b.name if lora_b else None,
        "variants": list(variants),
        "version_swap": swap,
        "image_seed": image_seed,
    }
    title = f"A/B: {lora_a.name}" + (f" vs {lora_b.name}" if lora_b else "") + f" · seed {image_seed}"
    return Plan(kind="ab", cells=tuple(cells), seed=image_seed, title=title, meta=meta)


def _ab_lora(
    name: str, loras: Sequence[PlannedLora], index: int | None, counterpart: int | None, library: Any
) -> PlannedLora:
    if index is not None:
        return loras[index]
    weight = loras[counterpart].weight if counterpart is not None else None
    if library is None:
        names = [lora.name for lora in loras]
        raise LoraNotFound(
            name,
            difflib.get_close_matches(name, names, n=3, cutoff=0.5),
            message=f"A/B: LoRA '{name}' is not in the prompt"
            + (f" ({', '.join(names)})" if names else "")
            + " and no LoRA library was given to find it; add it to the prompt or check the name",
        )
    return _library_lora(library, name, weight)


# ----------------------------------------------------------------------------------------------
# Sweeps
# ----------------------------------------------------------------------------------------------

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
