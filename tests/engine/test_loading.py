"""Model loading: the embedded default, its fallback offline, explicit tiny names, device choice,
the tokenizer."""

from __future__ import annotations

import pytest

from assistant.config import Settings
from assistant.engine.core import Engine
from assistant.engine.device import choose_device
from assistant.engine.tokenizer import train_bpe, write_tokenizer_folder
from assistant.errors import GenerationError

pytestmark = pytest.mark.engine


def test_unreachable_model_offline_falls_back_to_the_embedded_one_with_a_warning(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = Engine(Settings(model="no-such-org/no-such-model", device="cpu"))
    info = engine.load()
    assert info.is_tiny
    assert info.model_name == "tiny-shapes-sd15"
    assert info.banner.startswith("Embedded demo model")
    assert any("no-such-org/no-such-model" in w and "embedded demo model" in w for w in info.warnings)
    assert any("HF_HUB_OFFLINE" in w for w in info.warnings)


def test_no_model_is_the_embedded_one_and_the_random_pipelines_by_name() -> None:
    info = Engine(Settings(model=None, device="cpu")).load()
    assert (info.is_tiny, info.base, info.default_size, info.dtype) == (True, "sd15", 128, "float32")
    assert (info.model_name, len(info.model_hash)) == ("tiny-shapes-sd15", 10)
    assert "circle, square, triangle or star" in info.banner
    random_sd15 = Engine(Settings(model="tiny-sd15", device="cpu")).load()
    assert (random_sd15.model_name, random_sd15.default_size) == ("tiny-sd15-demo", 256)
    assert random_sd15.banner.startswith("Demo model: images are noise")
    xl = Engine(Settings(model="tiny-sdxl", device="cpu")).load()
    assert (xl.is_tiny, xl.base, xl.model_name) == (True, "sdxl", "tiny-sdxl-demo")


def test_missing_embedded_files_fall_back_to_the_random_pipeline_and_say_so(monkeypatch, tmp_path) -> None:
    from assistant.engine import embedded

    monkeypatch.setattr(embedded, "EMBEDDED_DIR", tmp_path / "gone")
    info = Engine(Settings(model=None, device="cpu")).load()
    assert info.model_name == "tiny-sd15-demo"
    assert any("embedded model's files are missing" in w for w in info.warnings)


def test_unavailable_device_is_named() -> None:
    with pytest.raises(GenerationError, match="Device 'cuda:7' is not available here; available: cpu"):
        choose_device("cuda:7")
    assert choose_device("cpu").dtype_name == "float32"


def test_tokenizer_files_are_deterministic(tmp_path) -> None:
    a = write_tokenizer_folder(tmp_path / "a")
    b = write_tokenizer_folder(tmp_path / "b")
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    vocab, merges = train_bpe()
    assert len(vocab) <= 1000
    assert merges


def test_tokenizer_splits_prompt_words(tiny_pipe) -> None:
    tokens = tiny_pipe.tokenizer.tokenize("cyberpunk city, cat ears")
    assert tokens == ["cyberpunk</w>", "city</w>", ",</w>", "cat</w>", "ears</w>"]
    assert tiny_pipe.tokenizer.model_max_length == 77


def test_low_vram_slices_the_vae_and_attention_and_keeps_the_image(monkeypatch) -> None:
    import numpy as np

    from assistant.config import DEFAULT_LORA_DIR, load_settings
    from assistant.types import GenerationRequest, PlannedLora

    monkeypatch.setenv("LORA_MIXER_LOW_VRAM", "1")
    assert load_settings("/nonexistent.yaml").low_vram is True
    lora = PlannedLora("catgirl_v1", f"{DEFAULT_LORA_DIR}/catgirl_v1.safetensors", 0.8, negative_weight=-0.1)
    request = GenerationRequest(
        prompt="1girl, (cat ears:1.2)", negative="lowres", loras=(lora,), seed=3, steps=3, width=128,
        height=128,
    )  # fmt: skip
    normal = Engine(Settings(device="cpu"))
    low = Engine(Settings(device="cpu", low_vram=True))
    assert normal.load().attention == "sdpa"
    assert low.load().attention == "sliced + low-VRAM VAE"
    vae = low.pipeline.vae
    assert vae.use_slicing
    assert vae.use_tiling
    a = np.asarray(normal.generate(request).images[0], dtype=np.int16)
    b = np.asarray(low.generate(request).images[0], dtype=np.int16)
    assert np.abs(a - b).max() <= 2  # float rounding of sliced attention and decoding, nothing more


def test_pickle_checkpoints_are_refused_and_broken_local_models_are_errors(tmp_path) -> None:
    ckpt = tmp_path / "v1-5.ckpt"
    ckpt.write_bytes(b"\x80\x04pickle")
    with pytest.raises(GenerationError, match=r"not a \.safetensors checkpoint; LoRA Mixer loads no pickle"):
        Engine(Settings(model=str(ckpt), device="cpu")).load()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(GenerationError, match=r"Could not load model '.*broken\.safetensors'"):
        Engine(Settings(model=str(broken), device="cpu")).load()  # no silent swap to the demo model
    folder = tmp_path / "diffusers-model"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    with pytest.raises(GenerationError, match=r"Could not load model '.*diffusers-model'"):
        Engine(Settings(model=str(folder), device="cpu")).load()
