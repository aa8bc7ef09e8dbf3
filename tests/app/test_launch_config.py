"""app.py as a module: importing it is inert; CLI flags map onto settings and launch options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_importing_app_builds_and_launches_nothing() -> None:
    code = (
        "import json, sys, threading, app\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'threads': threading.active_count(),"
        " 'demo': hasattr(app, 'demo')}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    )
    state = json.loads(out.stdout.strip().splitlines()[-1])
    assert state == {"torch": False, "threads": state["threads"], "demo": False}
    assert state["threads"] <= 2  # no server thread, no engine thread


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import app

    monkeypatch.setenv("LORA_MIXER_MODEL", "from-env")
    monkeypatch.setenv("LORA_MIXER_LORA_DIRS", "/env/loras")
    monkeypatch.chdir(tmp_path)
    args = app.parse_args(
        ["--model", "from-flag", "--lora-dir", "/a", "--lora-dir", "/b", "--outputs", "out"]
    )
    settings = app.settings_from_args(args)
    assert settings.model == "from-flag"
    assert settings.lora_dirs == ("/a", "/b")
    assert settings.outputs_dir == "out"
    env_only = app.settings_from_args(app.parse_args([]))
    assert env_only.model == "from-env"
    assert env_only.lora_dirs == ("/env/loras",)


def test_defaults_listen_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    import app

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    args = app.parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    assert args.max_queue > 0


def test_lora_and_model_folders_are_blocked(tmp_path: Path) -> None:
    import app
    from assistant.config import Settings

    model = tmp_path / "model.safetensors"
    model.write_bytes(b"x")
    settings = Settings(lora_dirs=(str(tmp_path / "loras"),), model=str(model))
    assert app.blocked_paths(settings) == [str((tmp_path / "loras").resolve()), str(model.resolve())]
    # a hub id is not a path: nothing to block
    assert app.blocked_paths(Settings(lora_dirs=(), model="runwayml/stable-diffusion-v1-5")) == []


def test_gpu_decorator_is_a_no_op_without_spaces() -> None:
    import app

    def render() -> int:
        return 1

    if "spaces" not in sys.modules:
        assert app.gpu(render) is render
        assert app.gpu(duration=60)(render) is render
