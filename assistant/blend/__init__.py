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

The package, one responsibility a module (this ``__init__`` re-exports the public names, so
``from assistant.blend import blind_box`` works as before):

* :mod:`.plan` — :class:`Plan`, :class:`Cell`, :class:`Axis`, :class:`PlanError`, plan JSON;
* :mod:`.common` — what the kinds share: LoRA lookup, labels, grid shape, checks, seeds;
* :mod:`.blindbox` — :func:`blind_box`;
* :mod:`.compare` — :func:`ab`;
* :mod:`.axes` — :func:`parse_axis` and :func:`weight_axis`;
* :mod:`.sweeps` — :func:`sweep`.
"""

from __future__ import annotations

from ..types import format_weight as format_weight
from .axes import MAX_AXIS_VALUES, parse_axis
from .axes import weight_axis as weight_axis
from .blindbox import BLINDBOX_DEFAULT_CELLS as BLINDBOX_DEFAULT_CELLS
from .blindbox import BLINDBOX_MAX_CELLS as BLINDBOX_MAX_CELLS
from .blindbox import blind_box
from .common import DEFAULT_AB_WEIGHT as DEFAULT_AB_WEIGHT
from .common import MAX_AXIS_WEIGHT as MAX_AXIS_WEIGHT
from .common import MAX_SEED as MAX_SEED
from .common import grid_shape, retag_prompt, short_names
from .compare import ab
from .plan import AXIS_KINDS, Axis, Cell, Plan, PlanError, PlanLimitError
from .plan import AxisKind as AxisKind
from .plan import PlanKind as PlanKind
from .sweeps import MAX_SWEEP_CELLS as MAX_SWEEP_CELLS
from .sweeps import sweep

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
