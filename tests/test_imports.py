"""The pure core must not drag in torch, diffusers, gradio or Ray (checked in a fresh interpreter)."""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "diffusers", "gradio", "transformers", "peft", "ftfy", "ray")
PURE_MODULES = [
    "assistant",
    "assistant.prompt",
    "assistant.library",
    "assistant.presets",
    "assistant.advisor",
    "assistant.chat",
    "assistant.blend",
    "assistant.infotext",
    "assistant.grid",
    "assistant.cli",
    "assistant.rules",
    "assistant.service",
    "assistant.backend",
    "assistant.fake_engine",
    "assistant.owners",
    "assistant.auth",
    "assistant.guard",
    "assistant.api",
    "assistant.cluster",  # the Ray engine's package and front import Ray only when it loads
    "assistant.cluster.routing",
    "assistant.cluster.front",
    "assistant.engine",  # the package itself is lazy
    "assistant.engine.checks",
    "assistant.engine.schedulers",
    "assistant.commands.generate",
    "assistant.commands.train_lora",  # parses options; the trainer loads only when it runs
    "assistant.train.dataset",
    "assistant.train.options",
    "assistant.train.kohya",
    "assistant.train.synthetic",
    "assistant.engine.embedded",
    # the UI's pure helpers (the gradio side: ui.events, ui.flow, ui.handlers, ui.layout, ui.launch)
    "assistant.ui.binding",
    "assistant.ui.cards",
    "assistant.ui.conversation",
    "assistant.ui.img2img",
    "assistant.ui.messages",
    "assistant.ui.prompts",
    "assistant.ui.train",
]


def _loaded_after_import(module: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_heavy_dependency(module: str) -> None:
    assert _loaded_after_import(module) == []


def test_import_assistant_is_light() -> None:
    assert _loaded_after_import("assistant") == []
