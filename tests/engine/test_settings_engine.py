"""Clip skip, RNG source, emphasis, VAE and textual inversions, end to end through the engine,
each written to the infotext and read back."""

from __future__ import annotations

import dataclasses
import json
import shutil
import types

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from assistant import infotext
from assistant.config import Settings
from assistant.engine import vae as vae_module
from assistant.engine.checkpoints import CONFIGS_DIR
from assistant.engine.core import Engine
from assistant.engine.noise import PhiloxGenerator
from assistant.errors import GenerationError

from .ldm import vae_to_ldm
from .test_engine import BASE, differs, pixels

pytestmark = pytest.mark.engine


def render(engine, **changes):
    return engine.generate(dataclasses.replace(BASE, **changes))


# -- prompt semantics that compel lost ---------------------------------------------------------


def test_break_and_negative_weights_reach_the_image(clean_engine) -> None:
    """compel dropped BREAK (the two prompts gave one image) and wrote negative weights as 0."""
    joined = render(clean_engine, prompt="1girl, cat ears city, night")
    broken = render(clean_engine, prompt="1girl, cat ears BREAK city, night")  # compel: the same text
    assert differs(joined, broken, at_least=0.0)
    assert infotext.parse(broken.infotexts[0]).pad_conds  # two chunks vs the negative's one
    negative = render(clean_engine, prompt="1girl, (cat ears:-0.5), city")
    zero = render(clean_engine, prompt="1girl, (cat ears:0), city")
    assert differs(negative, zero, at_least=0.0)


def test_clip_skip_changes_the_image_and_round_trips(clean_engine) -> None:
    one = render(clean_engine)
    two = render(clean_engine, clip_skip=2)
    assert differs(one, two, at_least=0.0)
    assert "Clip skip" not in one.infotexts[0]
    parsed = infotext.parse(two.infotexts[0])
    assert parsed.params["Clip skip"] == "2"
    assert (parsed.clip_skip, infotext.parse(one.infotexts[0]).clip_skip) == (2, 1)
    with pytest.raises(GenerationError, match="Clip skip 13 is not allowed; use a whole number from 1 to 12"):
        render(clean_engine, clip_skip=13)


def test_emphasis_setting_round_trips(clean_engine) -> None:
    no_norm = render(clean_engine, emphasis="No norm")
    assert differs(render(clean_engine), no_norm, at_least=0.0)
    assert infotext.parse(no_norm.infotexts[0]).emphasis == "No norm"


# -- RNG ---------------------------------------------------------------------------------------


def test_philox_matches_cudas_randn() -> None:
    """A1111's NV source imitates torch.randn on CUDA; its documented output for seed 0."""
    expected = np.array(
        [
            [-0.92466259, -0.42534415, -2.6438457, 0.14518388],
            [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
            [-1.07454231, -0.36314407, -1.67105067, 2.26550497],
        ]
    )
    np.testing.assert_allclose(PhiloxGenerator(0).randn((3, 4)), expected, atol=2e-6)


def test_rng_sources(clean_engine) -> None:
    gpu = render(clean_engine)
    cpu = render(clean_engine, rng="CPU")
    nv = render(clean_engine, rng="NV")
    # on a CPU-only machine the device generator IS the CPU one (as in A1111)
    assert np.array_equal(pixels(gpu), pixels(cpu))
    assert differs(gpu, nv, at_least=0.0)
    assert np.array_equal(pixels(nv), pixels(render(clean_engine, rng="NV")))
    assert [infotext.parse(r.infotexts[0]).params.get("RNG") for r in (gpu, cpu, nv)] == [None, "CPU", "NV"]
    assert [infotext.parse(r.infotexts[0]).rng for r in (gpu, cpu, nv)] == ["GPU", "CPU", "NV"]


def test_nv_rng_feeds_ancestral_steps_too(clean_engine) -> None:
    first = render(clean_engine, rng="NV", sampler="Euler a", steps=3)
    again = render(clean_engine, rng="NV", sampler="Euler a", steps=3)
    other_seed = render(clean_engine, rng="NV", sampler="Euler a", steps=3, seed=8)
    assert np.array_equal(pixels(first), pixels(again))
    assert differs(first, other_seed, at_least=0.0)


# -- VAE ---------------------------------------------------------------------------------------


@pytest.fixture
def vae_setup(tmp_path, tiny_pipe):
    """A VAE folder with one original-layout VAE file for the tiny model, and config folders
    whose sd15/vae config is the tiny VAE's."""
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS_DIR / "sd15", configs / "sd15")
    (configs / "sd15" / "vae" / "config.json").write_text(json.dumps(dict(tiny_pipe.vae.config)))
    torch.manual_seed(11)
    from diffusers import AutoencoderKL

    other = AutoencoderKL.from_config(tiny_pipe.vae.config)
    vae_dir = tmp_path / "VAE"
    vae_dir.mkdir()
    state = vae_to_ldm(other.state_dict(), len(other.config.block_out_channels), prefix="")
    save_file({k: v.contiguous() for k, v in state.items()}, str(vae_dir / "kl-f8-anime.safetensors"))
    return configs, vae_dir


def test_vae_file_is_used_named_and_hashed(tiny_pipe, vae_setup) -> None:
    configs, vae_dir = vae_setup
    settings = Settings(vae="kl-f8-anime.safetensors", vae_dir=str(vae_dir), model_configs=str(configs))
    engine = Engine(settings, pipeline=tiny_pipe)
    try:
        info = engine.load()
        assert info.vae_name == "kl-f8-anime.safetensors"
        assert info.vae_hash == vae_module.file_hash(vae_dir / "kl-f8-anime.safetensors")
        with_vae = engine.generate(BASE)
        parsed = infotext.parse(with_vae.infotexts[0])
        assert (parsed.vae, parsed.vae_hash) == ("kl-f8-anime.safetensors", info.vae_hash)
        engine.set_vae("None")
        own = engine.generate(BASE)
        assert "VAE" not in infotext.parse(own.infotexts[0]).params
        assert differs(with_vae, own, at_least=0.0)
        with pytest.raises(
            GenerationError, match="VAE 'missing' was not found; choose one of: Automatic, None, kl-f8"
        ):
            engine.set_vae("missing")
    finally:
        engine.set_vae("None")  # the shared tiny pipeline gets its own VAE back


def test_automatic_vae_picks_the_file_named_like_the_model(tmp_path) -> None:
    model = tmp_path / "anything-v5.safetensors"
    (tmp_path / "VAE").mkdir()
    (tmp_path / "VAE" / "anything-v5.vae.safetensors").write_bytes(b"x")
    choice = vae_module.resolve("Automatic", vae_dir=tmp_path / "VAE", model=str(model))
    assert (choice.kind, choice.name) == ("file", "anything-v5.vae.safetensors")
    assert vae_module.resolve("None", vae_dir=tmp_path / "VAE", model=str(model)).kind == "own"
    assert vae_module.resolve(None, vae_dir=tmp_path / "none", model=str(model)).kind == "own"
    assert vae_module.resolve("madebyollin/sdxl-vae-fp16-fix", vae_dir=tmp_path, model=None).kind == "hub"


def test_nan_fp16_decode_is_retried_in_fp32(tiny_pipe) -> None:
    """A VAE that overflows in half precision (SDXL's is known for it) decodes again in fp32."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_config(tiny_pipe.vae.config)
    vae.load_state_dict(tiny_pipe.vae.state_dict())
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(3e4)  # activations above fp16's 65504: inf, then NaN
    vae = vae.to(torch.float16)
    fake = types.SimpleNamespace(vae=vae, image_processor=tiny_pipe.image_processor, text_encoder_2=None)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)).to(torch.float16)
    images, note = vae_module.decode(fake, latents)
    assert np.isfinite(images).all()
    assert "decoded again in full precision" in note
    assert vae.dtype == torch.float16  # put back for the next render


# -- textual inversions ------------------------------------------------------------------------


def test_embeddings_are_applied_and_hashed(tmp_path, tiny_pipe) -> None:
    folder = tmp_path / "embeddings"
    folder.mkdir()
    width = tiny_pipe.text_encoder.config.hidden_size
    generator = torch.Generator().manual_seed(3)
    save_file({"emb_params": torch.randn(2, width, generator=generator)}, str(folder / "badcat.safetensors"))
    save_file({"emb_params": torch.randn(1, 768, generator=generator)}, str(folder / "sd15only.safetensors"))
    engine = Engine(Settings(embeddings_dirs=(str(folder),)), pipeline=tiny_pipe)
    plain = Engine(Settings(embeddings_dirs=()), pipeline=tiny_pipe)
    request = dataclasses.replace(BASE, negative="badcat, lowres")
    try:
        assert engine.load().embeddings == ("badcat",)  # 768 wide: not for this model
        used = engine.generate(request)
        parsed = infotext.parse(used.infotexts[0])
        from assistant.embeddings import shorthash

        assert parsed.ti_hashes == {"badcat": shorthash(folder / "badcat.safetensors")}
        assert 'TI hashes: "badcat: ' in used.infotexts[0]
        assert differs(used, plain.generate(request), at_least=0.0)
        assert "TI hashes" not in engine.generate(BASE).infotexts[0]
    finally:
        engine.unload_all()
        plain.unload_all()
