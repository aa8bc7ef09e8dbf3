"""``python -m assistant parse "<prompt>" [--negative TEXT] [--json]``: show how a prompt is read.

Prints the LoRA tags (name, text-encoder/UNet weights, dyn, which prompt, character span), other
extra-network tags, the text-encoder texts, the attention weights and the
parser's notes. ``--json`` prints the same as one JSON document. A bad tag or weight is a
:class:`~assistant.errors.PromptError`: one line on stderr and exit code 2 (see assistant/cli.py).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from ..prompt import PromptLimits, parse, parse_attention
from ..types import ExtraTag, LoraTag, Prompt, format_weight


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="the positive prompt, A1111 syntax (quote it)")
    parser.add_argument("--negative", default="", metavar="TEXT", help="the negative prompt")
    parser.add_argument(
        "--max-weight",
        type=_weight_limit,
        default=None,
        metavar="W",
        help="largest allowed LoRA weight magnitude (default 2: weights from -2 to 2)",
    )


def _tag_dict(tag: LoraTag) -> dict[str, Any]:
    # eg {"name": "catgirl_v1", "te": 0.8, "unet": 0.8, "dyn": null, "in_negative": false,
    #     "span": [36, 57], "type": "lora", "raw": "<lora:catgirl_v1:0.8>"}
    return {
        "name": tag.name,
        "te": tag.te_weight,
        "unet": tag.unet_weight,
        "dyn": tag.dyn,
        "in_negative": tag.in_negative,
        "span": list(tag.span) if tag.span else None,
        "type": tag.tag_type,
        "raw": tag.raw,
    }


def _extra_dict(tag: ExtraTag) -> dict[str, Any]:
    return {
        "type": tag.tag_type,
        "args": list(tag.args),
        "in_negative": tag.in_negative,
        "span": list(tag.span) if tag.span else None,
        "raw": tag.raw,
    }


def describe(prompt: Prompt) -> dict[str, Any]:
    """Everything ``parse`` prints, as plain JSON-ready data."""
    return {
        "ok": True,
        "loras": [_tag_dict(t) for t in prompt.loras],
        "extras": [_extra_dict(t) for t in prompt.extras],
        "positive_text": prompt.positive_text,
        "negative_text": prompt.negative_text,
        "attention": {
            "positive": [[text, weight] for text, weight in parse_attention(prompt.positive_text)],
            "negative": [[text, weight] for text, weight in parse_attention(prompt.negative_text)],
        },
        "notes": list(prompt.notes),
    }


def _print_human(data: dict[str, Any]) -> None:
    out = sys.stdout
    loras = data["loras"]
    out.write(f"LoRA tags: {len(loras)}\n")
    for tag in loras:
        where = "negative" if tag["in_negative"] else "positive"
        weights = f"te {format_weight(tag['te'])}, unet {format_weight(tag['unet'])}"
        if tag["dyn"] is not None:
            weights += f", dyn {tag['dyn']}"
        start, end = tag["span"]
        out.write(f"  {tag['name']}  ({weights})  [{where} {start}..{end}]  {tag['raw']}\n")
    if data["extras"]:
        out.write(f"Other extra-network tags: {len(data['extras'])}\n")
        for tag in data["extras"]:
            where = "negative" if tag["in_negative"] else "positive"
            out.write(f"  {tag['raw']}  [{where}] (not applied)\n")
    for side in ("positive", "negative"):
        text = data[f"{side}_text"]
        if side == "negative" and not text:
            continue
        out.write(f"\n{side.capitalize()} encoder text:\n  {text}\n")
        out.write("Attention:\n")
        for chunk, weight in data["attention"][side]:
            out.write(f"  {weight:>8.4g}  {chunk!r}\n")
    if data["notes"]:
        out.write("\nNotes:\n")
        for note in data["notes"]:
            out.write(f"  - {note}\n")


def _weight_limit(text: str) -> float:
    """``--max-weight``: a finite number above 0 (argparse turns the error into exit 2 + usage)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be a finite number above 0, e.g. 2")
    return value


def run(args: argparse.Namespace) -> int:
    limits = None
    if args.max_weight is not None:
        limits = PromptLimits(min_weight=-abs(args.max_weight), max_weight=abs(args.max_weight))
    prompt = parse(args.prompt, args.negative, limits=limits)
    data = describe(prompt)
    if args.json:
        from ..cli import print_json

        print_json(data)
    else:
        _print_human(data)
    return 0
