"""``python -m assistant loras``: list the LoRA library.

Prints a table (name, kind, base, triggers, preferred weight, status/problem), or with
``--json`` a JSON list with one object per LoRA (every :class:`~assistant.types.LoraInfo` field).
``--embeddings`` lists the textual-inversion embeddings instead (name, base, vectors, width,
layout, status), from ``--embeddings-dir`` or the configured folders. Folder notes (a missing
folder, catalog entries without a file) go to stderr.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from pathlib import Path

from ..library import Library, info_to_dict
from ..types import BASES, KINDS, LoraInfo, format_weight
from . import add_lora_dir_argument, settings_with_lora_dirs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_lora_dir_argument(parser)
    parser.add_argument(
        "--filter", metavar="TEXT", default="", help="only LoRAs whose name/triggers/notes contain TEXT"
    )
    parser.add_argument("--kind", choices=KINDS, help="only LoRAs of this kind")
    parser.add_argument("--base", choices=BASES, help="only LoRAs for this base model")
    parser.add_argument("--catalog", metavar="FILE", help="catalog YAML (default: presets/loras.yaml)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the scan cache")
    parser.add_argument(
        "--embeddings", action="store_true", help="list textual-inversion embeddings instead of LoRAs"
    )
    parser.add_argument(
        "--embeddings-dir", action="append", metavar="DIR", help="embeddings folder (repeatable)"
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_with_lora_dirs(args)
    if args.embeddings:
        return _embeddings(args, tuple(args.embeddings_dir or settings.embeddings_dirs))
    library = Library.scan(
        list(settings.lora_dirs),
        catalog=args.catalog or settings.catalog,
        cache_dir=None if args.no_cache else str(Path(settings.cache_dir)),
    )
    infos = library.search(args.filter, kind=args.kind, base=args.base)
    if args.json:
        from ..cli import print_json

        print_json([info_to_dict(info) for info in infos])
    else:
        print(format_table(infos))
        ok = sum(1 for info in infos if info.loadable)
        print(f"\n{len(infos)} shown ({ok} loadable) of {len(library)} in {', '.join(library.roots)}")
    for note in library.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _width(text: str) -> int:
    """Display width in a terminal: CJK and emoji count double."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cut(text: str, limit: int) -> str:
    if _width(text) <= limit:
        return text
    out = ""
    for ch in text:
        if _width(out + ch) > limit - 1:
            break
        out += ch
    return out + "…"


def algorithm_label(info: LoraInfo) -> str:
    """``loha r8``, ``lokr``, ``lora r16`` — the file's algorithm (from its keys) and rank."""
    if not info.algorithm:
        return "-"
    return info.algorithm + (f" r{info.rank}" if info.rank else "")


def _row(info: LoraInfo) -> list[str]:
    weight = format_weight(info.preferred_weight) if info.preferred_weight is not None else "-"
    status = info.status if not info.problem else f"{info.status}: {info.problem}"
    kind = info.kind + ("?" if info.kind_source.startswith("guessed") else "")
    triggers = ", ".join(info.triggers) or "-"
    return [info.name, kind, info.base, algorithm_label(info), triggers, weight, status]


def format_table(infos: list[LoraInfo]) -> str:
    """A plain-text table; a '?' after the kind marks a guessed kind."""
    header = ["NAME", "KIND", "BASE", "TYPE", "TRIGGERS", "WEIGHT", "STATUS"]
    limits = [40, 11, 7, 14, 30, 6, 70]
    rows = [[_cut(cell, limit) for cell, limit in zip(_row(info), limits, strict=True)] for info in infos]
    if not rows:
        return "(no LoRAs found)"
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _embeddings(args: argparse.Namespace, folders: tuple[str, ...]) -> int:
    """The embeddings table (or JSON list) with each file's base from its vector width."""
    import dataclasses

    from ..embeddings import scan

    found, notes = scan(folders)
    if args.base:
        found = tuple(e for e in found if e.base == args.base)
    if args.filter:
        found = tuple(e for e in found if args.filter.casefold() in e.name.casefold())
    if args.json:
        from ..cli import print_json

        print_json([dataclasses.asdict(e) for e in found])
    else:
        header = ["NAME", "BASE", "VECTORS", "WIDTH", "LAYOUT", "STATUS"]
        rows = [
            [
                _cut(e.name, 40),
                e.base,
                str(e.vectors),
                str(e.width),
                e.layout or "-",
                e.status if not e.problem else _cut(f"{e.status}: {e.problem}", 70),
            ]
            for e in found
        ]
        widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(c + " " * (widths[i] - _width(c)) for i, c in enumerate(row)).rstrip())
        print(f"\n{len(found)} embedding(s) in {', '.join(folders) or '(no folder)'}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
