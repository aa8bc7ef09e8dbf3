"""The blind box ("抽盲盒"): ``n`` distinct random weight mixes of a prompt's LoRAs.

:func:`blind_box` draws with ``random.Random(seed)`` only: the two-LoRA rule of the seed
articles (``w1 ~ U(a, b), w2 = total − w1``), a Dirichlet split of the total for more LoRAs,
independent draws for negative-weight adjusters, all within the strength budget; optionally
with prompt variation (``{a|b|c}`` and ``__wildcard__`` files, via dynamicprompts).
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import limits
from ..prompt import encoder_text
from ..types import GenerationRequest, PlannedLora, format_weight
from .common import (
    MAX_AXIS_WEIGHT,
    MAX_SEED,
    _check_float,
    _check_int,
    _find_lora,
    _key,
    _not_in_plan,
    _resolve_image_seed,
    _weights_label,
    grid_shape,
    retag_prompt,
    short_names,
)
from .plan import Cell, Plan, PlanError, PlanLimitError


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
