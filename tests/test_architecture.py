"""Meta tests of the code's shape: one grammar, one limits table, one hashing path (issue 17).

Each guards a rule from docs/architecture.md that review found broken once; they read the
source as text (fast, no imports of the heavy parts).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([ROOT / "app.py", *(ROOT / "assistant").rglob("*.py")])


def _code(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_one_lora_tag_grammar_in_the_prompt_module() -> None:
    """Five modules had their own ``<lora:…>`` regex; only the prompt package's grammar module
    (assistant/prompt/tags.py) may have one."""
    pattern = re.compile(r"re\.(?:compile|search|match|fullmatch|finditer|sub)\([^)]*lora\|lyco", re.I)
    owners = sorted(str(p.relative_to(ROOT)) for p in SOURCES if pattern.search(_code(p)))
    assert owners == ["assistant/prompt/tags.py"]


def test_seeds_are_drawn_in_one_place() -> None:
    """Seeds were drawn in four places with different ranges; limits.random_seed is the one."""
    draw = re.compile(r"SystemRandom\(\)|secrets\.randbelow|random\.rand")  # unseeded draws

    def draws_a_seed(path: Path) -> bool:  # a draw with "seed" on its line or the 3 lines above
        lines = _code(path).splitlines()
        near = ("".join(lines[max(0, i - 3) : i + 1]).lower() for i in range(len(lines)))
        return any(draw.search(line) and "seed" in around for line, around in zip(lines, near, strict=True))

    drawers = sorted(str(p.relative_to(ROOT)) for p in SOURCES if draws_a_seed(p))
    assert drawers == ["assistant/limits.py"]


def test_lora_hashes_come_from_one_path() -> None:
    """A/B and sweep cells wrote another hash than Generate; library.with_hashes is the one."""
    pattern = re.compile(r"\.hashes\(.*\)\.(?:a1111|infotext)\b")
    users = sorted(str(p.relative_to(ROOT)) for p in SOURCES if pattern.search(_code(p)))
    assert users == ["assistant/library/hashing.py"]


def test_the_cli_renders_and_saves_only_through_the_service() -> None:
    """commands/ rendered with the engine and saved PNGs and grids itself; the service does both."""
    pattern = re.compile(r"\.generate(?:_many)?\(|grid\.save\(|\bsave\(plan|png_info|\.save\(path")
    commands = sorted((ROOT / "assistant" / "commands").glob("*.py"))
    offenders = sorted(str(p.relative_to(ROOT)) for p in commands if pattern.search(_code(p)))
    assert offenders == []


# -- the app's shape (issue 17, item 8) ------------------------------------------------------------

APP_MAX_LINES = 300
#: Positional parameters a UI function may take (``self`` not counted): Gradio's many component
#: values reach a handler through assistant.ui.binding.bind, by keyword, grouped into typed values.
MAX_POSITIONAL = 5


def test_app_py_is_a_thin_entry_point() -> None:
    """app.py was 1,486 lines (handlers, layout, argparse and launch); they live in assistant/ui/."""
    lines = len(_code(ROOT / "app.py").splitlines())
    assert lines <= APP_MAX_LINES, f"app.py has {lines} lines; keep it under {APP_MAX_LINES}"


def test_ui_functions_take_few_positional_parameters() -> None:
    """The same seven render settings were positional parameters of five handlers (PLR0917 off);
    now a handler takes one RenderSettings. No function of the UI may switch the check off again."""
    import ast

    ui = sorted([ROOT / "app.py", *(ROOT / "assistant" / "ui").glob("*.py")])
    silenced = sorted(str(p.relative_to(ROOT)) for p in ui if "PLR0917" in _code(p))
    assert silenced == []
    offenders = []
    for path in ui:
        for node in ast.walk(ast.parse(_code(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                positional = [a.arg for a in (*node.args.posonlyargs, *node.args.args) if a.arg != "self"]
                if len(positional) > MAX_POSITIONAL:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({len(positional)})")
    assert offenders == []


# -- no new god files (issue 17, item 8) ----------------------------------------------------------

MODULE_MAX_LINES = 700
#: The modules still over the limit, each capped at its size when the packages were split: they may
#: shrink (then lower or drop the entry), never grow. Splitting them is the next step.
OVER_THE_LIMIT = {
    "assistant/engine/core.py": 1280,
    "assistant/train/trainer.py": 1041,
    "assistant/engine/rows.py": 784,
    "assistant/chat.py": 740,
    "assistant/engine/adapters.py": 711,
}


def test_no_module_grows_past_700_lines() -> None:
    """library.py (2,002 lines), service.py (1,836), blend.py, prompt.py, api.py and app.py were
    god files; they are packages now. A new module over the limit, or a capped one growing, fails."""
    sizes = {str(p.relative_to(ROOT)): len(_code(p).splitlines()) for p in SOURCES}
    too_long = {
        path: lines
        for path, lines in sizes.items()
        if lines > OVER_THE_LIMIT.get(path, MODULE_MAX_LINES)
    }
    assert too_long == {}, f"split these modules (limit {MODULE_MAX_LINES} lines): {too_long}"
    stale = {path: cap for path, cap in OVER_THE_LIMIT.items() if sizes.get(path, 0) <= MODULE_MAX_LINES}
    assert stale == {}, f"these are under the limit now; drop them from OVER_THE_LIMIT: {stale}"


#: The god files of item 8 and the packages they became, with the fewest modules each was split into.
SPLIT_PACKAGES = {"prompt": 2, "blend": 2, "library": 6, "service": 2, "api": 2}


@pytest.mark.parametrize(("package", "fewest"), sorted(SPLIT_PACKAGES.items()))
def test_a_split_god_file_is_a_package_whose_modules_say_what_they_hold(package: str, fewest: int) -> None:
    """prompt.py, blend.py, library.py, service.py and api.py were single files of 1,082-2,002
    lines. Each is a package now (the old file gone: it would be shadowed, stale), every module has
    a docstring; the line limit is test_no_module_grows_past_700_lines's, for the whole tree."""
    import ast

    folder = ROOT / "assistant" / package
    modules = sorted(folder.glob("*.py"))
    assert (folder / "__init__.py").exists()
    assert not (ROOT / "assistant" / f"{package}.py").exists()
    assert len(modules) >= fewest
    undocumented = [p.name for p in modules if not ast.get_docstring(ast.parse(_code(p)))]
    assert undocumented == []
