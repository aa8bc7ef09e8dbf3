"""Append a row to one section's table in bench/RESULTS.md (creating what is missing)."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def append_row(section: str, table_head: str, row: str, results: Path = RESULTS) -> None:
    """Add ``row`` at the end of ``section`` (a ``## `` heading); a missing file or section is
    created with ``table_head`` under it. Other sections are left as they are."""
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    if section not in text:
        text = text.rstrip("\n") + f"\n\n{section}\n\n{table_head}\n"
    start = text.index(section)
    nxt = text.find("\n## ", start + len(section))
    end = len(text) if nxt == -1 else nxt
    body = text[start:end].rstrip("\n") + "\n" + row + "\n"
    text = text[:start] + body + ("\n" + text[end:].lstrip("\n") if nxt != -1 else "")
    results.write_text(text, encoding="utf-8")
