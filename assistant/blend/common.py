"""What the three kinds of plan share: LoRA lookup by name, labels, grid shape, checks, seeds.

Cell prompts are retagged by :func:`retag_prompt` (the prompt package's one tag rewriter),
labels use :func:`short_names`, grids are near square (:func:`grid_shape`); a LoRA named by a
plan is found in the prompt (``_find_lora``) or, for A/B and sweeps, in a library
(``_library_lora``).
"""

from __future__ import annotations

import difflib
import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .. import limits
from ..prompt import retag
from ..types import PlannedLora, format_weight
from .plan import PlanError, PlanLimitError

#: Largest |weight| a sweep axis or a blind-box range may set (A1111 accepts more, images break
#: long before).
MAX_AXIS_WEIGHT = limits.LORA_WEIGHT[1]
#: Highest seed (A1111 seeds are unsigned 32-bit).
MAX_SEED = limits.SEED[1]
#: A/B weight for a LoRA that is neither in the prompt nor given a preferred weight by the catalog.
DEFAULT_AB_WEIGHT = 0.7


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


def _library_lora(library: Any, name: str, weight: float | None) -> PlannedLora:
    info = library.resolve(name)
    if getattr(info, "status", "ok") != "ok":
        raise PlanError(f"LoRA '{info.name}' cannot be used: {getattr(info, 'problem', '') or info.status}")
    chosen = weight if weight is not None else (info.preferred_weight or DEFAULT_AB_WEIGHT)
    # the hash is left empty: assistant.library.with_hashes fills it before a render (one path)
    return PlannedLora(name=info.name, path=info.path, weight=chosen)
