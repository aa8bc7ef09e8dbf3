"""The service over the pure fake engine: every path above the engine, without torch (fast)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from assistant.backend import Engine
from assistant.config import DEFAULT_LORA_DIR, Settings
from assistant.errors import Cancelled, LimitError
from assistant.fake_engine import FakeEngine
from assistant.infotext import read_png
from assistant.service import RenderSettings, Service

ROOT = Path(__file__).resolve().parents[2]
FAST = RenderSettings(sampler="Euler", steps=3, width=64, height=64, seed=5)
PROMPT = "1girl, <lora:catgirl_v1:0.6>, <lora:soft_light:0.3>"


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def service(tmp_path: Path, fake: FakeEngine) -> Service:
    settings = Settings(
        lora_dirs=(str(DEFAULT_LORA_DIR),),
        outputs_dir=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"),
    )
    service = Service(settings, engine=fake)
    service.start(background=False)
    return service


def test_the_fake_implements_the_engine_protocol(fake: FakeEngine) -> None:
    engine: Engine = fake  # a type check as much as a runtime one
    info = engine.load()
    assert info.is_tiny
    assert info.base == "sd15"
    assert "Euler a" in engine.samplers()


def test_generate_saves_what_the_engine_drew_with_one_hash_a_file(service: Service, fake: FakeEngine) -> None:
    rendered = service.generate(PROMPT, "lowres", FAST, use_assistant=False)
    assert [lora.name for lora in fake.requests[0].loras] == ["catgirl_v1", "soft_light"]
    info = read_png(rendered.paths[0])
    assert info is not None
    assert info.seed == 5
    library = service.library
    assert info.lora_hashes == {n: library.hashes(n).infotext for n in ("catgirl_v1", "soft_light")}


def test_a_sweep_cell_writes_the_hash_generate_writes(service: Service, fake: FakeEngine) -> None:
    generated = service.generate(PROMPT, "", FAST, use_assistant=False)
    swept = service.sweep(PROMPT, "", FAST, x_axis="add_detail=0.2,0.4", use_assistant=False)
    first = read_png(generated.paths[0])
    cell = read_png(swept.cell_paths[0])
    assert first is not None
    assert cell is not None
    assert cell.lora_hashes["catgirl_v1"] == first.lora_hashes["catgirl_v1"]
    assert cell.lora_hashes["add_detail"] == service.library.hashes("add_detail").infotext
    weights = [{lo.name: lo.weight for lo in r.loras}.get("add_detail", 0.0) for r in fake.requests[1:]]
    assert weights[:2] == [0.2, 0.4]


def test_a_chat_sweep_renders_the_axis_the_chat_read(service: Service, fake: FakeEngine) -> None:
    turn = service.chat_turn("/sweep catgirl_v1 0.2..0.6x3", positive=PROMPT, settings=FAST)
    assert turn.job is not None
    assert turn.job.kind == "sweep"
    turn.job.run()
    weights = [{lo.name: lo.weight for lo in r.loras}.get("catgirl_v1", 0.0) for r in fake.requests]
    assert weights == [0.2, 0.4, 0.6, 0.0]  # and the effect curve's weight-0 reference


def test_a_chat_answer_without_a_render_has_no_job(service: Service, fake: FakeEngine) -> None:
    assert service.chat_turn("/help", positive=PROMPT, settings=FAST).job is None
    assert service.chat_turn("/blindbox 99", positive=PROMPT, settings=FAST).job is None
    assert fake.requests == []


def test_a_cancel_stops_the_render_and_says_where(service: Service) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        service.generate(PROMPT, "", FAST, use_assistant=False, cancel=cancel)


def test_a_limit_is_the_engines_error_too(service: Service) -> None:
    with pytest.raises(LimitError, match="steps"):
        service.generate(PROMPT, "", RenderSettings(steps=0), use_assistant=False)


def test_the_service_renders_without_torch(tmp_path: Path) -> None:
    """A fresh interpreter: the service with the fake engine generates and imports no torch."""
    code = (
        "import json, sys\n"
        "from assistant.config import DEFAULT_LORA_DIR, Settings\n"
        "from assistant.fake_engine import FakeEngine\n"
        "from assistant.service import RenderSettings, Service\n"
        f"s = Service(Settings(lora_dirs=(str(DEFAULT_LORA_DIR),), outputs_dir={str(tmp_path)!r},"
        f" cache_dir={str(tmp_path / 'c')!r}), engine=FakeEngine())\n"
        "r = s.generate('1girl, <lora:catgirl_v1:0.5>', '', RenderSettings(steps=2, width=64, height=64))\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'gradio') if m in sys.modules)\n"
        "print(json.dumps({'paths': list(r.paths), 'heavy': heavy}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []
    assert Path(out["paths"][0]).is_file()


def test_a_recipes_ranges_bound_the_blind_box_it_was_picked_for(service: Service, fake: FakeEngine) -> None:
    """A recipe's ``range:`` was validated and read by nothing; the Blind box button now draws the
    recipe's LoRAs within them (the recipe picked in the menu reaches action_turn)."""
    prompt = "1girl, <lora:catgirl_v1:0.9>, <lora:cyberpunk_style:0.1>"  # weights far from the ranges
    recipe = "catgirl_cyber_blindbox"
    turn = service.action_turn("blindbox", prompt, "", FAST, apply_changes=False, n=6, seed=3, recipe=recipe)
    assert "catgirl_cyber_blindbox" in turn.markdown
    assert turn.job is not None
    rendered = turn.job.run()
    for cell in rendered.plan.cells:
        weights = cell.weights
        assert 0.4 <= weights["catgirl_v1"] <= 0.7
        assert 0.3 <= weights["cyberpunk_style"] <= 0.6
    plain = service.action_turn("blindbox", prompt, "", FAST, apply_changes=False, n=6, seed=3)
    assert "catgirl_cyber_blindbox" not in plain.markdown


def test_a_chat_blind_box_uses_the_recipe_picked_in_the_menu(service: Service, fake: FakeEngine) -> None:
    prompt = "1girl, <lora:catgirl_v1:0.9>, <lora:cyberpunk_style:0.1>"
    turn = service.chat_turn("/blindbox 4", positive=prompt, settings=FAST, recipe="catgirl_cyber_blindbox")
    assert turn.job is not None
    rendered = turn.job.run()
    assert all(0.4 <= cell.weights["catgirl_v1"] <= 0.7 for cell in rendered.plan.cells)


def test_a_lora_left_out_as_written_is_said_in_a_whole_sentence(tmp_path: Path, fake: FakeEngine) -> None:
    """The note lost its full stop when the as-written rule moved to the advisor (the state machine's
    failed-load rule then failed whenever it drew a corrupt file with strict off)."""
    folder = tmp_path / "loras"
    folder.mkdir()
    (folder / "corrupt_download.safetensors").write_bytes((2**62).to_bytes(8, "little") + b"{}")
    settings = Settings(
        lora_dirs=(str(DEFAULT_LORA_DIR), str(folder)),
        outputs_dir=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"),
    )
    service = Service(settings, engine=fake)
    service.start(background=False)
    rendered = service.generate("1girl, <lora:corrupt_download:0.8>", "", FAST, use_assistant=False)
    (note,) = [n for n in rendered.notes if "corrupt_download" in n]
    assert note.endswith("the rest of the prompt rendered."), note
    assert rendered.request.loras == ()
