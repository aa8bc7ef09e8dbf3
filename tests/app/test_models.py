"""Switching the base model at run time (Service.models / switch_model), on the tiny pipelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.config import DEFAULT_LORA_DIR, Settings
from assistant.errors import GenerationError, PromptError
from assistant.service import RenderSettings, Service, model_label

pytestmark = [pytest.mark.engine]

TINY_RENDER = RenderSettings(sampler="Euler", steps=2, width=64, height=64, seed=11)


@pytest.fixture
def service(tmp_path: Path) -> Service:
    models = tmp_path / "Stable-diffusion"
    models.mkdir()
    (models / "broken.safetensors").write_bytes(b"not a checkpoint")  # listed, fails to load
    (models / "notes.txt").write_text("not a model")
    (models / "my-diffusers-model").mkdir()
    (models / "my-diffusers-model" / "model_index.json").write_text("{}")
    settings = Settings(
        lora_dirs=(str(DEFAULT_LORA_DIR),),
        models_dir=str(models),
        device="cpu",
        outputs_dir=str(tmp_path / "outputs"),
        cache_dir=str(tmp_path / "cache"),
    )
    service = Service(settings)
    service.start(background=False)
    return service


def _pixels(service: Service, prompt: str) -> np.ndarray:
    rendered = service.generate(prompt, "", TINY_RENDER)
    return np.asarray(rendered.images[0])


def test_models_lists_the_folder_the_embedded_model_and_the_tiny_pipelines(service: Service) -> None:
    labels = [model_label(m) for m in service.models()]
    assert labels == ["broken", "my-diffusers-model", "tiny-shapes-sd15", "tiny-sd15", "tiny-sdxl"]
    assert service.current_model() == "tiny-shapes-sd15"  # no model configured: the embedded one


def test_switch_to_sdxl_changes_the_advice_and_the_render(service: Service) -> None:
    before = _pixels(service, "1girl, <lora:catgirl_v1:0.6>")
    info = service.switch_model("tiny-sdxl")
    assert (info.base, info.model_name, service.current_model()) == ("sdxl", "tiny-sdxl-demo", "tiny-sdxl")
    advice = service.advise("1girl, <lora:catgirl_v1:0.6>, <lora:watercolor_xl:0.5>")
    assert [p.name for p in advice.plan] == ["watercolor_xl"]  # the SD1.5 LoRA is left out, warned
    assert any(w.rule == "base-model" and w.lora == "catgirl_v1" for w in advice.warnings)
    rendered = service.generate("1girl, <lora:watercolor_xl:0.5>", "", TINY_RENDER)
    assert "Model: tiny-sdxl-demo" in rendered.infotexts[0]
    assert "watercolor_xl" in rendered.infotexts[0]
    # and back: the embedded SD1.5 model gives the same image as before the round trip
    assert service.switch_model("tiny-shapes-sd15").base == "sd15"
    assert np.array_equal(_pixels(service, "1girl, <lora:catgirl_v1:0.6>"), before)


def test_unknown_model_is_refused_with_the_choices(service: Service) -> None:
    expected = (
        r"unknown base model 'sd-v9'; available: broken, my-diffusers-model, tiny-shapes-sd15, tiny-sd15, "
        r"tiny-sdxl$"
    )
    with pytest.raises(PromptError, match=expected):
        service.switch_model("sd-v9")


@pytest.mark.parametrize("name", ["broken", "my-diffusers-model"])
def test_a_model_that_cannot_load_leaves_the_running_one(service: Service, name: str) -> None:
    before = _pixels(service, "1girl, <lora:catgirl_v1:0.6>")
    with pytest.raises(GenerationError, match=rf"could not switch to {name}"):
        service.switch_model(name)
    assert service.current_model() == "tiny-shapes-sd15"
    assert service.engine_info.model_name == "tiny-shapes-sd15"
    assert np.array_equal(_pixels(service, "1girl, <lora:catgirl_v1:0.6>"), before)


def test_a1111_titles_are_accepted(service: Service) -> None:
    assert service.switch_model("tiny-sdxl [0123456789]").base == "sdxl"


def test_lora_hashes_prefer_the_embedded_hash_like_a1111(tmp_path: Path) -> None:
    """A1111 writes a file's own ``sshs_model_hash`` (first 12 hex) when the file carries one."""
    from assistant.library import Library
    from assistant.types import PlannedLora
    from tests.library import lorafiles as lf

    loras = tmp_path / "Lora"
    loras.mkdir()
    embedded = "ab" * 32
    path = lf.write_kohya(loras, "hashed", metadata={"sshs_model_hash": embedded})
    lf.write_kohya(loras, "plain", seed=1)
    library = Library.scan([str(loras)], cache_dir=None)
    service = Service(Settings(lora_dirs=(str(loras),), cache_dir=str(tmp_path / "cache")), library=library)
    planned = service.with_hashes(
        (PlannedLora("hashed", str(path), 0.5), PlannedLora("plain", str(loras / "plain.safetensors"), 0.5))
    )
    assert planned[0].hash == embedded[:12]
    assert planned[1].hash == library.hashes("plain").a1111 != ""


def test_the_name_an_infotext_writes_selects_the_model(service: Service) -> None:
    assert service.switch_model("tiny-sdxl-demo").base == "sdxl"  # "Model: tiny-sdxl-demo"
    assert service.switch_model("TINY-SD15-DEMO [cec3dc9289]").base == "sd15"


def test_listings_never_read_a_file_and_the_background_hasher_fills_them(tmp_path: Path) -> None:
    from assistant.library import Library
    from tests.library import lorafiles as lf

    loras = tmp_path / "Lora"
    loras.mkdir()
    for i in range(5):
        lf.write_kohya(loras, f"lora{i}", seed=i)
    lf.write_kohya(loras, "embedded", metadata={"sshs_model_hash": "cd" * 32})
    cache = tmp_path / "cache"
    library = Library.scan([str(loras)], cache_dir=str(cache))
    service = Service(Settings(lora_dirs=(str(loras),), cache_dir=str(cache)), library=library)
    infos = {info.name: info for info in library.loadable()}
    assert service.lora_hash(infos["lora0"]) == ""  # not hashed yet: nothing read on a listing
    assert service.lora_hash(infos["embedded"]) == "cd" * 6  # the file's own hash needs no read
    assert library.hash_all() == 6
    assert library.hash_all() == 0  # all cached now
    assert service.lora_hash(infos["lora0"]) == library.hashes("lora0").a1111
    again = Library.scan([str(loras)], cache_dir=str(cache))  # the cache reached the disk
    assert all(again.cached_hashes(info) is not None for info in again.loadable())


def test_a_sweep_axis_may_name_a_lora_that_is_not_in_the_prompt(service: Service) -> None:
    rendered = service.sweep("1girl, <lora:catgirl_v1:0.5>", "", TINY_RENDER, x_axis="soft_light=0.2,0.8")
    assert len(rendered.results) == 2
    digest = service.library.hashes("soft_light").a1111
    for result in rendered.results:
        assert f"soft_light: {digest}" in result.infotexts[0]


def test_assistant_off_still_reports_what_the_parser_noticed(service: Service) -> None:
    planned, notes = service.plan_as_written("1girl, <lora:catgirl_v1:0.5>, <hypernet:x:1>, <lora:oops:0.5")
    assert [p.name for p in planned] == ["catgirl_v1"]
    assert any("'<lora:oops:0.5' (prompt) is not closed" in note for note in notes)
    assert any("<hypernet:x:1> is kept in the text but not applied" in note for note in notes)


def test_on_a_gpu_the_running_model_is_freed_first_and_restored_after_a_failure(service: Service) -> None:
    import dataclasses

    before = _pixels(service, "1girl, <lora:catgirl_v1:0.6>")
    first_engine = service._engine
    # what the engine reports on a GPU (the switch only reads the device label)
    service._engine_info = dataclasses.replace(service.engine_info, device="cuda:0")
    with pytest.raises(GenerationError, match="could not switch to broken"):
        service.switch_model("broken")
    assert first_engine._pipe is not None  # freed, then loaded again
    assert service._engine is first_engine
    assert np.array_equal(_pixels(service, "1girl, <lora:catgirl_v1:0.6>"), before)
    service._engine_info = dataclasses.replace(service.engine_info, device="cuda:0")
    assert service.switch_model("tiny-sdxl").base == "sdxl"
    assert first_engine._pipe is None  # the old pipeline is gone, not kept beside the new one


def test_model_switching_is_off_on_a_shared_space_unless_allowed(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from assistant.config import load_settings
    from assistant.errors import ModelSwitchDisabled

    monkeypatch.setenv("SPACE_ID", "someone/lora-mixer")  # what Hugging Face sets on a Space
    assert service.settings.model_switch_allowed is False
    with pytest.raises(ModelSwitchDisabled, match="LORA_MIXER_ALLOW_MODEL_SWITCH=1") as refused:
        service.switch_model("tiny-sdxl")
    assert refused.value.http_status == 403
    assert service.current_model() == "tiny-shapes-sd15"
    monkeypatch.setenv("LORA_MIXER_ALLOW_MODEL_SWITCH", "1")
    assert load_settings("/nonexistent.yaml").model_switch_allowed is True
    service.settings = dataclasses.replace(service.settings, allow_model_switch=True)
    assert service.switch_model("tiny-sdxl").base == "sdxl"


def test_assistant_off_renames_an_alias_so_a_plan_keeps_one_tag_per_lora(service: Service) -> None:
    """The CLI renamed an alias tag to the file name (assistant off) and the service did not, so
    the app's blind box with 'apply changes' off drew cells with two tags for one LoRA. Both use
    advisor.as_written now."""
    from assistant import blend
    from assistant.service import RenderSettings

    request, advice, _notes = service.prepare(
        "1girl, <lora:catgirl:0.7>", "", RenderSettings(seed=1), use_assistant=False
    )
    assert advice is None
    assert request.prompt == "1girl, <lora:catgirl_v1:0.7>"
    for cell in blend.blind_box(request, n=3, seed=1).cells:
        assert cell.request.prompt.count("<lora:") == 1
