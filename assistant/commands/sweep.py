"""``python -m assistant sweep "<prompt>" --x "catgirl_v1=0.2..1.0x5" [--y "cfg=5,7,9"] --out DIR``.

An A1111-style X/Y plot: columns follow ``--x``, rows follow ``--y``. An axis is ``NAME=VALUES``
with NAME a LoRA of the prompt (or of the library), ``seed``, ``cfg``, ``steps``, ``sampler`` or
``scheduler``; VALUES a list such as ``0.2,0.4,0.6`` whose items may be ranges: ``0.2..1.0x5``,
``1-5``, ``1-5 (+2)``, ``0.2-1.0 [5]``. All cells share one image seed unless the seed is an
axis. ``--dry-run`` prints the plan only.
"""

from __future__ import annotations

import argparse

from ..blend import MAX_SWEEP_CELLS, parse_axis, sweep
from .blindbox import add_common_arguments, finish, prepare


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--x", required=True, metavar="AXIS", help='columns, e.g. "catgirl_v1=0.2..1.0x5"')
    parser.add_argument("--y", default=None, metavar="AXIS", help='rows, e.g. "cfg=5,7,9"')
    parser.add_argument(
        "--seed", type=int, default=-1, help="image seed for every cell (default: random, printed)"
    )
    parser.add_argument(
        "--max-cells",
        type=int,
        default=MAX_SWEEP_CELLS,
        help=f"largest grid allowed (default {MAX_SWEEP_CELLS})",
    )


def run(args: argparse.Namespace) -> int:
    x = parse_axis(args.x)
    y = parse_axis(args.y) if args.y else None
    context = prepare(args, image_seed=args.seed)
    plan = sweep(context.base, x, y, max_cells=args.max_cells, library=context.library)
    return finish(args, context, plan)
