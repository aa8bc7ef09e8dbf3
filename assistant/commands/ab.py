"""``python -m assistant ab "<prompt>" --a NAME --b NAME --out DIR``: A/B at one fixed seed.

Renders the advised prompt with LoRA A, LoRA B, both and none (``--variants`` picks a subset),
all at the same seed, as a one-row labelled grid. A or B may be a LoRA that is not in the prompt
(it is looked up in the library): ``--a catgirl_v1 --b catgirl_v2`` compares two versions of one
LoRA, the second taking the first's weight and place. ``--dry-run`` prints the plan only.
"""

from __future__ import annotations

import argparse

from ..blend import ab
from .blindbox import add_common_arguments, finish, prepare


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--a", default=None, metavar="NAME", help="LoRA A (default: the prompt's first LoRA)")
    parser.add_argument(
        "--b", default=None, metavar="NAME", help="LoRA B (default: the prompt's second LoRA)"
    )
    parser.add_argument(
        "--variants",
        default="a,b,both,none",
        metavar="LIST",
        help="which cells, in order: any of a, b, both, none (default a,b,both,none)",
    )
    parser.add_argument(
        "--seed", type=int, default=-1, help="image seed for every cell (default: random, printed)"
    )


def run(args: argparse.Namespace) -> int:
    context = prepare(args, image_seed=args.seed)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    plan = ab(context.base, args.a, args.b, variants=variants, library=context.library)
    return finish(args, context, plan)
