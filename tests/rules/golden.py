"""Loading the golden cases in tests/cases/*.yaml (one case per file; adding one needs no Python).

Case shape (``# eg``)::

    description: what the case shows
    base: sd15                       # optional: the loaded model (sd15 | sd2 | sdxl | unknown)
    library: {extra_loras: [...]}    # optional: see tests/rules/library_spec.py
    input: {positive: "...", negative: "...", symptoms: ["多耳怪"], clip_skip: 2}
    # library may also hold embeddings: {embeddings: [{name: EasyNegative, base: sd15, width: 768}]}
    expect:
      positive: "..."                # exact rewritten prompts
      negative: "..."
      changes: [trigger-words]       # Change.rule ids, in order ([] = nothing changed)
      warnings: [resolve-names]      # AdviceWarning.rule ids, in order
      warnings_contain: ["Did you mean 'catgirl_v1'"]   # optional substrings of some warning
      reasons_contain: ["0.56 + 0.35 + 0.28 = 1.19"]    # optional substrings of some reason
      plan: [{name: catgirl_v1, weight: 0.8, negative_weight: -0.1}]  # the exact plan
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CASES_DIR = Path(__file__).resolve().parents[1] / "cases"

_CASE_KEYS = {"description", "base", "library", "input", "expect"}
_INPUT_KEYS = {"positive", "negative", "symptoms", "clip_skip"}
_EXPECT_KEYS = {"positive", "negative", "changes", "warnings", "warnings_contain", "reasons_contain", "plan"}


@dataclass(frozen=True)
class GoldenCase:
    id: str
    path: Path
    data: dict[str, Any]

    @property
    def input(self) -> dict[str, Any]:
        return self.data["input"]

    @property
    def expect(self) -> dict[str, Any]:
        return self.data["expect"]


def _check_keys(where: str, data: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    unknown = set(data) - allowed
    missing = required - set(data)
    if unknown or missing:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")


def load_cases() -> list[GoldenCase]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        _check_keys(path.name, data, _CASE_KEYS, {"description", "input", "expect"})
        _check_keys(f"{path.name}: input", data["input"], _INPUT_KEYS, {"positive"})
        _check_keys(
            f"{path.name}: expect",
            data["expect"],
            _EXPECT_KEYS,
            {"positive", "negative", "changes", "warnings", "plan"},
        )
        cases.append(GoldenCase(path.stem, path, data))
    return cases
