"""The README's two quick-start commands are the ones CI and users run; keep them in sync."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README Quick start has no ```bash block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_quick_start_has_exactly_two_commands() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2, commands
    assert commands[0].endswith("python app.py")
    assert commands[1].endswith("-m pytest")
    for command in commands:
        assert "pip install -q torch==2.13.0 &&" in command, "torch must be pinned and installed first"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _quick_start_commands()[1] in ci.splitlines()


def test_xformers_is_not_in_the_cpu_install_path() -> None:
    for name in ("requirements.txt", "requirements-dev.txt"):
        text = (ROOT / name).read_text(encoding="utf-8").lower()
        assert "xformers" not in re.sub(r"#.*", "", text), name
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text(encoding="utf-8")
