"""A/B comparisons: the same prompt and seed with LoRA A, LoRA B, both and none.

:func:`ab` also compares two versions of one LoRA (a version swap at the same weight and
position) when only one of them is in the prompt.
"""

from __future__ import annotations

import dataclasses
import difflib
import random
from collections.abc import Sequence
from typing import Any

from ..errors import LoraNotFound
from ..types import GenerationRequest, PlannedLora
from .common import (
    _find_lora,
    _key,
    _library_lora,
    _resolve_image_seed,
    _weights_label,
    retag_prompt,
    short_names,
)
from .plan import Cell, Plan, PlanError

_AB_VARIANTS: tuple[str, ...] = ("a", "b", "both", "none")


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
