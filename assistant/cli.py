"""The command line: ``python -m assistant <command> … [--json]``.

Each command lives in ``assistant/commands/<name>.py`` (dashes become underscores:
``train-lora`` is ``train_lora.py``) with two functions: ``add_arguments(parser)`` and
``run(args) -> int``. Commands are imported only when chosen, so ``python -m assistant parse``
never imports torch. A :class:`LoraMixerError` becomes a one-line
message on stderr and exit code 2; ``--json`` commands print one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from .errors import LoraMixerError

#: command name -> one-line help. The module is assistant.commands.<name>.
COMMANDS: dict[str, str] = {
    "parse": "parse an A1111 prompt: LoRA tags, attention weights, encoder text",
    "loras": "list the LoRA library (names, kind, base, triggers, weights, problems)",
    "advise": "rewrite a prompt the way an experienced LoRA user would, explaining every change",
    "generate": "advise, then render images with the diffusers engine",
    "blindbox": "random LoRA weight mixes rendered as a labelled grid",
    "ab": "A/B comparison of LoRAs at a fixed seed",
    "sweep": "X/Y sweep over LoRA weights, seeds, CFG, steps or sampler",
    "train-lora": "train a LoRA on a kohya dataset folder (10_name/ images + .txt captions)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m assistant", description="LoRA Mixer command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
        command.set_defaults(_module=_module(name))
    return parser


def _module(name: str) -> str:
    return "assistant.commands." + name.replace("-", "_")


def _attach_arguments(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Let the chosen command add its own arguments (imports only that command)."""
    names = [a for a in argv if not a.startswith("-")]
    if not names or names[0] not in COMMANDS:
        return
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    module = importlib.import_module(_module(names[0]))
    module.add_arguments(subparsers.choices[names[0]])


def print_json(data: object) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        _attach_arguments(parser, argv)
        args = parser.parse_args(argv)
        module = importlib.import_module(args._module)
        return int(module.run(args) or 0)
    except LoraMixerError as err:
        if "--json" in argv:
            print_json({"ok": False, "error": str(err), "error_type": type(err).__name__})
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
