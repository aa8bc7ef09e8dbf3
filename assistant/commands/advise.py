"""``python -m assistant advise "<prompt>"``: rewrite a prompt and explain every change.

Prints the rewritten prompt and negative prompt, then one line per change (rule id, before →
after, reason), the warnings and the LoRA plan; ``--json`` prints one JSON document with the same
content (``positive``, ``negative``, ``changes``, ``warnings``, ``plan``, ``original_*``).
Exit code 0 whether or not anything changed; 2 for user errors (unreadable prompt, bad folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..advisor import advise
from ..library import Library
from ..rules.config import load_rules_config
from ..types import BASES, Advice, format_weight
from . import add_lora_dir_argument, settings_with_lora_dirs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help='the positive prompt, e.g. "1girl, <lora:catgirl_v1:0.8>"')
    parser.add_argument("--negative", default="", metavar="TEXT", help="the negative prompt")
    parser.add_argument(
        "--symptom",
        action="append",
        default=[],
        metavar="TEXT",
        help='what went wrong, e.g. "extra ears", "多耳怪", "black image" (repeatable)',
    )
    add_lora_dir_argument(parser)
    parser.add_argument(
        "--base", choices=[b for b in BASES if b != "unknown"], default="sd15", help="the loaded base model"
    )
    parser.add_argument("--rules", metavar="FILE", help="rules YAML (default: presets/rules.yaml)")


def run(args: argparse.Namespace) -> int:
    settings = settings_with_lora_dirs(args)
    library = Library.scan(
        list(settings.lora_dirs),
        catalog=settings.catalog,
        cache_dir=str(Path(settings.cache_dir)),
    )
    config = load_rules_config(args.rules or settings.rules)
    advice = advise(
        args.prompt, args.negative, library=library, config=config, symptoms=args.symptom, base=args.base
    )
    if args.json:
        from ..cli import print_json

        print_json(advice_to_dict(advice))
    else:
        print(format_text(advice))
    for note in library.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def advice_to_dict(advice: Advice) -> dict[str, object]:
    """Advice as plain JSON-ready data."""
    return {
        "positive": advice.positive,
        "negative": advice.negative,
        "changed": advice.changed,
        "changes": [dataclasses.asdict(c) for c in advice.changes],
        "warnings": [dataclasses.asdict(w) for w in advice.warnings],
        "plan": [dataclasses.asdict(p) for p in advice.plan],
        "original_positive": advice.original_positive,
        "original_negative": advice.original_negative,
    }


def format_text(advice: Advice) -> str:
    """Advice for a terminal."""
    lines = [f"positive: {advice.positive}", f"negative: {advice.negative}", ""]
    if advice.changes:
        lines.append("changes:")
        for c in advice.changes:
            lines.append(f"  [{c.rule}] {c.before or '∅'} → {c.after or '∅'}")
            lines.append(f"      {c.reason}")
    else:
        lines.append("no changes: the prompt already follows the rules")
    if advice.warnings:
        lines.append("warnings:")
        lines += [f"  [{w.rule}] {w.message}" for w in advice.warnings]
    lines.append("plan:")
    for p in advice.plan:
        extra = "" if p.unet is None else f" (unet {format_weight(p.unet)})"
        if p.negative_weight is not None:
            extra += f" (negative pass {format_weight(p.negative_weight)})"
        lines.append(f"  {p.name} {format_weight(p.weight)}{extra}  {p.path}")
    if not advice.plan:
        lines.append("  (no LoRA will be applied)")
    return "\n".join(lines)
