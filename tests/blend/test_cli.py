"""The blindbox / ab / sweep commands: --dry-run --json in a fresh interpreter (no torch), errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "1girl, cat ears, <lora:catgirl_v1:0.7>, neon city, <lora:cyberpunk_style:0.5>"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LORA_MIXER_MODEL": "", "PYTHONIOENCODING": "utf-8"}
    env.pop("LORA_MIXER_CONFIG", None)
    code = (
        "import json, sys\n"
        "from assistant.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)\n"
        "print('HEAVY=' + json.dumps(heavy), file=sys.stderr)\n"
        "raise SystemExit(rc)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )


def heavy_modules(result: subprocess.CompletedProcess[str]) -> list[str]:
    line = next(line for line in result.stderr.splitlines() if line.startswith("HEAVY="))
    return json.loads(line.removeprefix("HEAVY="))


def test_blindbox_dry_run_json_is_reproducible_and_light() -> None:
    args = ("blindbox", PROMPT, "-n", "6", "--seed", "7", "--dry-run", "--json")
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    assert heavy_modules(first) == []
    data = json.loads(first.stdout)
    assert data["ok"] is True
    assert data["dry_run"] is True
    assert data["tiny_model"] is True
    plan = data["plan"]
    assert plan["kind"] == "blindbox"
    assert plan["seed"] == 7
    assert len(plan["cells"]) == 6
    assert {c["request"]["seed"] for c in plan["cells"]} == {7}  # --seed is also the image seed
    assert len({c["label"] for c in plan["cells"]}) == 6
    second = cli(*args)
    assert json.loads(second.stdout)["plan"] == plan


def test_blindbox_dry_run_text_prints_plan_seed_and_demo_note() -> None:
    result = cli("blindbox", PROMPT, "-n", "3", "--seed", "11", "--dry-run", "--range", "catgirl_v1=0.4..0.7")
    assert result.returncode == 0, result.stderr
    assert "plan seed 11" in result.stdout
    assert "Demo model" in result.stdout
    assert "--seed 11" in result.stdout
    assert result.stdout.count("<lora:catgirl_v1:") == 3


def test_no_assistant_keeps_one_tag_per_lora_when_aliases_are_used() -> None:
    result = cli(
        "blindbox",
        "1girl, <lora:catgirl:0.7>, <lora:cyberpunk_style:0.5>",
        "-n",
        "2",
        "--seed",
        "1",
        "--dry-run",
        "--no-assistant",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    for cell in json.loads(result.stdout)["plan"]["cells"]:
        prompt = cell["request"]["prompt"]
        assert prompt.count("<lora:") == 2
        assert "<lora:catgirl_v1:" in prompt
        assert prompt.startswith("1girl, <lora:catgirl_v1:")


def test_ab_and_sweep_dry_run_json() -> None:
    ab = cli("ab", PROMPT, "--a", "catgirl_v1", "--b", "catgirl_v2", "--seed", "5", "--dry-run", "--json")
    assert ab.returncode == 0, ab.stderr
    cells = json.loads(ab.stdout)["plan"]["cells"]
    assert [c["label"].split(":")[0] for c in cells] == ["A", "B", "A+B", "none"]
    assert {c["request"]["seed"] for c in cells} == {5}
    assert "<lora:catgirl_v2:0.7>" in cells[1]["request"]["prompt"]
    sweep = cli(
        "sweep",
        PROMPT,
        "--x",
        "catgirl_v1=0.2..1.0x3",
        "--y",
        "cfg=5,9",
        "--seed",
        "1",
        "--dry-run",
        "--json",
    )
    assert sweep.returncode == 0, sweep.stderr
    plan = json.loads(sweep.stdout)["plan"]
    assert len(plan["cells"]) == 6
    assert plan["x_axis"]["values"] == [0.2, 0.6, 1.0]
    assert heavy_modules(sweep) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("blindbox", "1girl, no loras here", "--dry-run"), "has none"),
        (("blindbox", PROMPT, "-n", "40", "--dry-run"), "1 to 16 cells"),
        (("ab", PROMPT, "--a", "catgirl_v1", "--b", "nosuchlora", "--dry-run"), "nosuchlora"),
        (("sweep", PROMPT, "--x", "catgirl_v1=0.2..1.0", "--dry-run"), "how many values"),
        (("sweep", PROMPT, "--x", "cfg=5", "--size", "100x7", "--dry-run"), "multiples of 8"),
        (("blindbox", PROMPT, "--lora-dir", "/no/such/folder", "--dry-run"), "no such folder"),
    ],
)
def test_user_errors_exit_2_with_a_message(args, message) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    as_json = cli(*args, "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["ok"] is False


@pytest.mark.engine
@pytest.mark.slow
def test_blindbox_renders_grid_cells_and_manifest(tmp_path, monkeypatch, capsys) -> None:
    """A real (tiny) render through the CLI code path, the pipeline built once."""
    pytest.importorskip("torch")
    from assistant.cli import main
    from assistant.engine import core, embedded
    from assistant.infotext import read_png

    pipe = embedded.load()  # the default model, which the shipped demo LoRAs were trained for
    engines: list[object] = []

    def one_engine(settings):  # one Engine for the pipeline: it owns the pipeline's adapters
        if not engines:
            engines.append(real_engine(settings, pipeline=pipe))
        return engines[0]

    real_engine = core.Engine
    monkeypatch.setattr(core, "Engine", one_engine)
    monkeypatch.setenv("LORA_MIXER_MODEL", "")
    out = tmp_path / "box"
    args = [
        "blindbox",
        PROMPT,
        "-n",
        "2",
        "--seed",
        "3",
        "--size",
        "64x64",
        "--steps",
        "2",
        "--out",
        str(out),
    ]
    assert main([*args, "--json"]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [c["file"] for c in manifest["cells"]] == ["cell-01.png", "cell-02.png"]
    for cell in manifest["cells"]:
        info = read_png(out / cell["file"])
        assert info is not None
        assert info.seed == 3
        assert (info.width, info.height, info.steps) == (64, 64, 2)
        for name, weight in cell["weights"].items():
            assert f"<lora:{name}:{weight:g}>" in info.prompt
        assert set(info.lora_hashes) == set(cell["weights"])
    first = (out / "grid.png").read_bytes()
    assert main([*args]) == 0  # same command again: byte-identical grid
    assert (out / "grid.png").read_bytes() == first
    # the A/B's difference map and the sweep's effect curve reach --json (and analysis.png)
    tiny = ["--size", "64x64", "--steps", "2", "--seed", "3", "--json"]
    capsys.readouterr()
    assert (
        main(["ab", PROMPT, "--a", "catgirl_v1", "--b", "catgirl_v2", *tiny, "--out", str(tmp_path / "ab")])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["analysis"]["ab_difference"]["changed_percent"] > 0
    assert Path(report["analysis_image"]).is_file()
    sweep_out = str(tmp_path / "sweep")
    assert main(["sweep", PROMPT, "--x", "catgirl_v1=0.5,1", *tiny, "--out", sweep_out]) == 0
    curve = json.loads(capsys.readouterr().out)["analysis"]["effect_curve"]
    assert curve["weights"] == [0.5, 1.0]
    assert curve["reference"] == "extra render"  # no weight-0 cell: one more render at weight 0
    assert curve["effect_percent"][1] > curve["effect_percent"][0] > 0
    assert curve["verdict"] in ("sweet-spot", "growing", "flat")


def test_the_cli_renders_and_saves_through_the_service(tmp_path, monkeypatch, capsys) -> None:
    """The CLI built its own Library and Engine, advised, hashed and saved by itself; it now runs
    on the app's Service (prepare, with_hashes, render_plan/render): the fake engine shows it."""
    from assistant.cli import main
    from assistant.commands import blindbox
    from assistant.fake_engine import FakeEngine
    from assistant.infotext import read_png
    from assistant.service import Service

    fake = FakeEngine()
    monkeypatch.setattr(blindbox, "create_engine", lambda settings, options: fake)
    monkeypatch.setenv("LORA_MIXER_MODEL", "")
    monkeypatch.setenv("LORA_MIXER_CACHE", str(tmp_path / "cache"))
    rendered: list[str] = []
    real_render_plan = Service.render_plan

    def render_plan(self, plan, *args, **kwargs):
        rendered.append(plan.kind)
        return real_render_plan(self, plan, *args, **kwargs)

    monkeypatch.setattr(Service, "render_plan", render_plan)
    out = tmp_path / "ab"
    args = ["ab", PROMPT, "--a", "catgirl_v1", "--b", "add_detail", "--seed", "4", "--steps", "2"]
    assert main([*args, "--size", "64x64", "--out", str(out), "--json"]) == 0
    assert rendered == ["ab"]
    report = json.loads(capsys.readouterr().out)
    swapped = read_png(out / report["cells"][1]["file"])  # B: add_detail, a LoRA off the prompt
    assert swapped is not None
    from assistant.config import DEFAULT_LORA_DIR
    from assistant.library import Library

    library = Library.scan([str(DEFAULT_LORA_DIR)])
    assert swapped.lora_hashes["add_detail"] == library.hashes("add_detail").infotext
    assert len(fake.requests) == len(report["cells"])
    single = tmp_path / "one"
    args = ["generate", PROMPT, "--steps", "2", "--size", "64x64", "--seed", "9", "--out", str(single)]
    assert main(args) == 0
    assert [p.name for p in single.glob("*.png")] == ["00000-9.png"]


def test_a_dry_run_advises_for_the_base_given_or_guessed_from_the_model_name(monkeypatch, capsys) -> None:
    """The CLI's advice comes from the service, which knows no model in a dry run: ``--base`` (or
    an XL model name) decides, as it did when the CLI advised by itself."""
    from assistant.cli import main

    monkeypatch.setenv("LORA_MIXER_MODEL", "")
    args = ["generate", PROMPT, "--seed", "1", "--dry-run", "--json"]

    def base_warnings(extra: list[str]) -> list[dict]:
        assert main([*args, *extra]) == 0
        return [w for w in json.loads(capsys.readouterr().out)["warnings"] if w["rule"] == "base-model"]

    assert base_warnings(["--base", "sdxl"])
    assert not base_warnings([])
    assert base_warnings(["--model", "some/stable-diffusion-xl-base"])
