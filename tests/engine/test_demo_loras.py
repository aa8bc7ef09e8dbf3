"""The demo LoRA files: the shipped ones (trained on the embedded model by our trainer, plus the
SDXL stand-in) and the random-weight set of the random tiny pipelines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from assistant.engine.demo_loras import (
    DEMO_LORAS,
    SHIPPED,
    TRAINED,
    iter_files,
    lora_metadata,
    lora_tensors,
    safetensors_bytes,
    write_demo_loras,
    write_random_loras,
)
from assistant.library import Library
from assistant.train.synthetic import LORA_DATASETS

from .conftest import DEMO_LORA_DIR, lora_path, shipped_lora_path


def test_random_set_is_deterministic_and_small(tmp_path) -> None:
    first = [p.read_bytes() for p in write_random_loras(tmp_path / "a")]
    second = [p.read_bytes() for p in write_random_loras(tmp_path / "b")]
    assert first == second == [content for _name, content in iter_files()]
    assert all(len(b) < 256 * 1024 for b in first)


def test_shipped_sdxl_stand_in_equals_its_regeneration() -> None:
    (xl,) = [d for d in DEMO_LORAS if d.base == "sdxl"]
    assert (DEMO_LORA_DIR / f"{xl.name}.safetensors").read_bytes() == safetensors_bytes(
        lora_tensors(xl), lora_metadata(xl)
    )


def test_write_demo_loras_copies_the_shipped_set(tmp_path) -> None:
    paths = write_demo_loras(tmp_path)
    assert [p.stem for p in paths] == list(SHIPPED)
    for path in paths:
        assert path.read_bytes() == (DEMO_LORA_DIR / path.name).read_bytes()
    assert (tmp_path / "catgirl_v1.preview.png").is_file()


@pytest.mark.parametrize("name", TRAINED)
def test_shipped_files_are_what_our_trainer_writes(name: str) -> None:
    with safe_open(shipped_lora_path(name), "np") as f:
        meta = f.metadata()
        keys = list(f.keys())
        assert f.get_tensor(keys[0]).dtype == np.float16
    assert meta["ss_output_name"] == name
    assert meta["ss_network_module"] == "networks.lora"
    assert meta["ss_base_model_version"] == "sd_v1"
    assert meta["ss_sd_model_name"] == "tiny-shapes-sd15"
    assert meta["ss_sd_scripts_commit_hash"] == "(LoRA Mixer trainer)"
    assert int(meta["ss_steps"]) > 0
    assert len(meta["sshs_model_hash"]) == 64
    dataset = LORA_DATASETS[name]
    folder = f"{dataset.repeats}_{dataset.folder}"
    assert json.loads(meta["ss_dataset_dirs"]) == {folder: {"n_repeats": 10, "img_count": dataset.images}}
    tags = json.loads(meta["ss_tag_frequency"])[folder]
    assert all(tags[t] == dataset.images for t in dataset.tags)  # the trigger words are in every caption
    assert {k.split(".", 1)[1] for k in keys} == {"lora_down.weight", "lora_up.weight", "alpha"}
    prefixes = {k.split("_")[1] for k in keys}
    assert prefixes <= {"unet", "te"}
    assert "unet" in prefixes


def test_library_reads_the_shipped_files_with_their_trigger_words() -> None:
    """From the files alone (no catalog): base, and the trigger words the trainer wrote from the
    captions (``modelspec.trigger_phrase``); the adjusters have none."""
    library = Library.scan([str(DEMO_LORA_DIR)], catalog=None)
    for name in TRAINED:
        info = library.resolve(name)
        assert info.status == "ok"
        assert info.base == "sd15"
        expected = [t for t in LORA_DATASETS[name].tags if t != "1girl"]
        if expected:
            assert list(info.triggers) == expected, name
            assert info.triggers_source == "metadata modelspec.trigger_phrase"
        else:  # no tag in every caption: no trigger phrase written (the catalog says "no trigger")
            assert info.triggers_source != "metadata modelspec.trigger_phrase", name


def _run(pipe):
    import torch

    generator = torch.Generator().manual_seed(0)
    out = pipe(
        "1girl, cat ears", num_inference_steps=2, height=64, width=64, generator=generator, output_type="np"
    )
    return out.images[0]


@pytest.mark.engine
@pytest.mark.parametrize("lora", [d for d in DEMO_LORAS if d.base == "sd15"], ids=lambda x: x.name)
def test_diffusers_loads_each_random_sd15_lora_and_it_changes_the_image(tiny_pipe, lora) -> None:
    base = _run(tiny_pipe)
    tiny_pipe.load_lora_weights(lora_path(lora.name), adapter_name="t")
    try:
        with_lora = _run(tiny_pipe)
        tiny_pipe.set_adapters(["t"], [-1.0])
        negative = _run(tiny_pipe)
    finally:
        tiny_pipe.delete_adapters("t")
    assert np.abs(with_lora - base).mean() > 0.01
    assert np.abs(negative - with_lora).mean() > 0.01
    assert np.array_equal(_run(tiny_pipe), base)


@pytest.mark.engine
def test_sdxl_demo_lora_loads_into_tiny_sdxl(tiny_xl_pipe) -> None:
    base = _run(tiny_xl_pipe)
    tiny_xl_pipe.load_lora_weights(shipped_lora_path("watercolor_xl"), adapter_name="wx")
    try:
        assert set(tiny_xl_pipe.get_list_adapters()) == {"unet", "text_encoder", "text_encoder_2"}
        assert np.abs(_run(tiny_xl_pipe) - base).mean() > 0.005
    finally:
        tiny_xl_pipe.delete_adapters("wx")
