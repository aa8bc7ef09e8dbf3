"""Single-file checkpoints in A1111's original layout load offline, every tensor intact.

The files are written by the tests (tests/engine/ldm.py) from random pipelines of the real
module trees: SD1.x, SD2.x (OpenCLIP-H with its unused 24th layer) and SDXL at reduced widths,
and one full-size SD1.5 in fp16. Loading happens with ``HF_HUB_OFFLINE=1`` and every socket
connection refused, so a hub lookup would fail the test instead of hiding in a cache.
Before this, ``from_single_file`` was called without ``config=`` and needed the hub.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import torch
from safetensors.torch import save_file

from assistant.config import Settings
from assistant.engine.checkpoints import (
    CONFIGS_DIR,
    detect,
    error_reason,
    load_single_file,
    uses_v_prediction,
)
from assistant.engine.core import Engine
from assistant.errors import GenerationError
from assistant.types import GenerationRequest

from .ldm import build_pipeline, pipeline_to_ldm, reduced_configs


@pytest.fixture
def offline(monkeypatch):
    """No network at all: hub offline mode, and any socket connection raises."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*_args, **_kwargs):
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    return reduced_configs(tmp_path_factory.mktemp("configs"))


def _same_weights(a, b) -> None:
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        left, right = getattr(a, name, None), getattr(b, name, None)
        if left is None:
            continue
        sa, sb = left.state_dict(), right.state_dict()
        assert set(sa) == set(sb), name
        different = [k for k in sa if not torch.equal(sa[k], sb[k].to(sa[k].dtype))]
        assert not different, f"{name}: {different[:3]}"


def test_shipped_configs_build_the_real_models() -> None:
    """Each config folder builds (on the meta device) models with the parameter counts of the
    official releases: the configs are right, not just self-consistent."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def count(model) -> int:
        return sum(p.numel() for p in model.parameters())

    expected = {
        "sd15": (859_520_964, 123_060_480),
        "sd2": (865_910_724, 340_387_840),
        "sd2-v": (865_910_724, 340_387_840),
        "sdxl": (2_567_463_684, 123_060_480),
    }
    with init_empty_weights():
        for folder, (unet_params, text_params) in expected.items():
            root = CONFIGS_DIR / folder
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet"))
            vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
            text = CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))
            assert (count(unet), count(vae), count(text)) == (unet_params, 83_653_863, text_params), folder
        text_2 = CLIPTextModelWithProjection(
            CLIPTextConfig.from_pretrained(CONFIGS_DIR / "sdxl" / "text_encoder_2")
        )
        assert count(text_2) == 694_659_840
    assert (
        json.loads((CONFIGS_DIR / "sd2-v" / "scheduler" / "scheduler_config.json").read_text())[
            "prediction_type"
        ]
        == "v_prediction"
    )


@pytest.mark.parametrize(
    ("folder", "family", "base"),
    [("sd15", "SD1.x", "sd15"), ("sd2", "SD2.x", "sd2"), ("sdxl", "SDXL", "sdxl")],
)
def test_original_layout_loads_offline_and_renders(offline, configs, tmp_path, folder, family, base) -> None:
    pipe = build_pipeline(configs, folder)
    path = tmp_path / f"model-{folder}.safetensors"
    save_file(pipeline_to_ldm(pipe), str(path))
    assert detect(path).folder == folder
    engine = Engine(
        Settings(model=str(path), model_configs=str(configs), device="cpu", cache_dir=str(tmp_path))
    )
    info = engine.load()
    assert (info.model_name, info.family, info.base, info.is_tiny) == (f"model-{folder}", family, base, False)
    assert len(info.model_hash) == 10
    _same_weights(pipe, engine.pipeline)
    result = engine.generate(
        GenerationRequest(prompt="1girl, (cat ears:1.2)", seed=3, steps=2, width=64, height=64)
    )
    assert result.images[0].size == (64, 64)


def test_sd2_v_prediction_is_detected_by_key_and_by_asking_the_unet(offline, configs, tmp_path) -> None:
    pipe = build_pipeline(configs, "sd2")
    keyed = tmp_path / "v-keyed.safetensors"
    save_file(pipeline_to_ldm(pipe, v_pred=True), str(keyed))
    loaded, kind, _seconds = load_single_file(keyed, torch.float32, configs)
    assert (kind.folder, kind.v_prediction, kind.v_pred_source) == ("sd2-v", True, "v_pred key")
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    # A1111's test: at t=999 an epsilon UNet answers about its input, a v one far below it
    with torch.no_grad():
        pipe.unet.conv_out.weight.zero_()
        pipe.unet.conv_out.bias.fill_(-2.0)
    assert uses_v_prediction(pipe.unet)
    asked = tmp_path / "v-asked.safetensors"
    save_file(pipeline_to_ldm(pipe), str(asked))
    engine = Engine(
        Settings(model=str(asked), model_configs=str(configs), device="cpu", cache_dir=str(tmp_path))
    )
    info = engine.load()
    assert (info.family, info.default_size) == ("SD2.x v-prediction", 768)
    assert engine.pipeline.scheduler.config.prediction_type == "v_prediction"
    with torch.no_grad():
        pipe.unet.conv_out.bias.fill_(0.5)
    assert not uses_v_prediction(pipe.unet)
    epsilon = tmp_path / "eps.safetensors"
    save_file(pipeline_to_ldm(pipe), str(epsilon))
    loaded, kind, _seconds = load_single_file(epsilon, torch.float32, configs)
    assert (kind.folder, loaded.scheduler.config.prediction_type) == ("sd2", "epsilon")


def test_sdxl_v_pred_and_zero_snr_keys(offline, configs, tmp_path) -> None:
    state = pipeline_to_ldm(build_pipeline(configs, "sdxl"), v_pred=True)
    state["ztsnr"] = torch.tensor([])
    path = tmp_path / "noob-vpred.safetensors"
    save_file(state, str(path))
    loaded, kind, _seconds = load_single_file(path, torch.float32, configs)
    assert kind.label == "SDXL v-prediction (zero terminal SNR)"
    config = loaded.scheduler.config
    assert (config.prediction_type, config.rescale_betas_zero_snr, config.timestep_spacing) == (
        "v_prediction",
        True,
        "trailing",
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3)}, "inpainting"),
        ({"conditioner.embedders.0.model.text_projection": (1280, 1280)}, "SDXL refiner"),
        (
            {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320)},
            "not a Stable Diffusion",
        ),
    ],
)
def test_files_that_are_not_txt2img_checkpoints_say_what_they_are(tmp_path, keys, message) -> None:
    path = tmp_path / "odd.safetensors"
    save_file({k: torch.zeros(shape) for k, shape in keys.items()}, str(path))
    with pytest.raises(GenerationError, match=message):
        Engine(Settings(model=str(path), device="cpu", cache_dir=str(tmp_path))).load()


def test_error_reasons_are_never_cut() -> None:
    long = (
        "Cannot find an appropriate cached snapshot folder for the specified revision on the local disk " * 4
    )
    reason = error_reason(OSError(long.strip() + "\n\nkey dump: " + "x" * 5000))
    assert reason == f"OSError: {long.strip()}"
    assert "key dump" not in reason


@pytest.mark.slow
def test_full_size_sd15_checkpoint_loads_offline(offline, tmp_path) -> None:
    """A full-size SD1.5 file (1.07 B parameters, fp16, 2.1 GB) with the SHIPPED configs."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .ldm import clip_to_ldm, unet_to_ldm, vae_to_ldm

    root = CONFIGS_DIR / "sd15"
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))
    generator = torch.Generator().manual_seed(0)

    def random(model) -> dict[str, torch.Tensor]:
        return {
            k: torch.randn(v.shape, generator=generator, dtype=torch.float16)
            for k, v in model.state_dict().items()
        }

    originals = {"unet": random(unet), "vae": random(vae), "text_encoder": random(text)}
    state = unet_to_ldm(originals["unet"], dict(unet.config))
    state |= vae_to_ldm(originals["vae"], 4)
    state |= clip_to_ldm(originals["text_encoder"], "cond_stage_model.transformer.")
    path = tmp_path / "v1-5-random.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    del state
    started = time.perf_counter()
    pipe, kind, seconds = load_single_file(path, torch.float16)
    assert time.perf_counter() - started < 120
    assert kind.label == "SD1.x"
    for name, tensors in originals.items():
        loaded = getattr(pipe, name).state_dict()
        assert set(loaded) == set(tensors), name
        for key, tensor in tensors.items():
            expected = tensor.reshape(loaded[key].shape)  # the VAE's attention: conv 1x1 in the file
            assert torch.equal(loaded[key], expected), f"{name}.{key}"
    print(f"full-size SD1.5 fp16 single file: loaded offline in {seconds:.1f} s")


def test_hub_ids_ask_for_the_fp16_variant_on_cuda_only(tmp_path) -> None:
    from assistant.engine.core import pretrained_variant
    from assistant.engine.device import DeviceChoice

    cuda, cpu = DeviceChoice("cuda", torch.float16), DeviceChoice("cpu", torch.float32)
    assert pretrained_variant(cuda, "stable-diffusion-v1-5/stable-diffusion-v1-5") == "fp16"
    assert pretrained_variant(cpu, "stable-diffusion-v1-5/stable-diffusion-v1-5") is None
    assert pretrained_variant(cuda, str(tmp_path)) is None  # a local folder has what it has


def test_low_vram_on_cuda_adds_model_cpu_offload() -> None:
    from assistant.engine.device import DeviceChoice, configure_attention

    calls: list[tuple[str, object]] = []

    class Vae:
        def enable_slicing(self) -> None:
            calls.append(("vae", "slicing"))

        def enable_tiling(self) -> None:
            calls.append(("vae", "tiling"))

    class Pipe:
        vae = Vae()

        def enable_model_cpu_offload(self, device: str) -> None:
            calls.append(("offload", device))

        def enable_xformers_memory_efficient_attention(self) -> None:
            raise RuntimeError("no xformers in this test")

    label = configure_attention(Pipe(), DeviceChoice("cuda:1", torch.float16), low_vram=True)
    assert ("offload", "cuda:1") in calls
    assert "model CPU offload" in label


def test_an_unreachable_hub_id_names_hf_endpoint(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(*_args, **_kwargs):
        raise OSError("no network here")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    info = Engine(Settings(model="nobody/no-such-model", device="cpu", cache_dir=str(tmp_path))).load()
    assert info.is_tiny
    assert "HF_ENDPOINT" in info.warnings[0]
    assert info.warnings[0].endswith("using the embedded demo model instead.")
