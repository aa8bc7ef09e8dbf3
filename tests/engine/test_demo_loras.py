"""The shipped demo LoRA files: byte-identical regeneration, kohya layout, loadable, effective."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from assistant.engine.demo_loras import DEMO_LORAS, iter_files, write_demo_loras

from .conftest import DEMO_LORA_DIR, lora_path


def test_committed_files_equal_regeneration() -> None:
    for name, content in iter_files():
        assert (DEMO_LORA_DIR / name).read_bytes() == content, f"{name} differs: run the demo_loras script"


def test_write_is_deterministic(tmp_path) -> None:
    first = [p.read_bytes() for p in write_demo_loras(tmp_path / "a")]
    second = [p.read_bytes() for p in write_demo_loras(tmp_path / "b")]
    assert first == second
    assert all(len(b) < 256 * 1024 for b in first)


@pytest.mark.parametrize("lora", DEMO_LORAS, ids=lambda x: x.name)
def test_kohya_layout_and_metadata(lora) -> None:
    with safe_open(lora_path(lora.name), "np") as f:
        meta = f.metadata()
        keys = list(f.keys())
        assert meta["ss_output_name"] == lora.name
        assert meta["ss_network_dim"] == str(lora.rank)
        assert meta["ss_network_module"] == "networks.lora"
        assert json.loads(meta["ss_tag_frequency"])
        assert f.get_tensor(keys[0]).dtype == np.float16
    prefixes = {k.split("_")[1] for k in keys}
    if lora.base == "sdxl":
        assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
        assert {"te1", "te2", "unet"} <= prefixes
    else:
        assert meta["ss_base_model_version"] == "sd_v1"
        assert prefixes == ({"te", "unet"} if lora.text_encoder else {"unet"})
    suffixes = {k.split(".", 1)[1] for k in keys}
    assert suffixes == {"lora_down.weight", "lora_up.weight", "alpha"}


def _run(pipe):
    import torch

    generator = torch.Generator().manual_seed(0)
    out = pipe(
        "1girl, cat ears", num_inference_steps=2, height=64, width=64, generator=generator, output_type="np"
    )
    return out.images[0]


@pytest.mark.engine
@pytest.mark.parametrize("lora", [d for d in DEMO_LORAS if d.base == "sd15"], ids=lambda x: x.name)
def test_diffusers_loads_each_sd15_lora_and_it_changes_the_image(tiny_pipe, lora) -> None:
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
    tiny_xl_pipe.load_lora_weights(lora_path("watercolor_xl"), adapter_name="wx")
    try:
        assert set(tiny_xl_pipe.get_list_adapters()) == {"unet", "text_encoder", "text_encoder_2"}
        assert np.abs(_run(tiny_xl_pipe) - base).mean() > 0.005
    finally:
        tiny_xl_pipe.delete_adapters("wx")
