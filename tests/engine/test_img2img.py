"""img2img and the hires fix on the tiny pipelines (issue 14): A1111's step counts and noise,
``from_pipe`` (no second model), LoRAs, negative-branch weights, batching, sizes, SDXL, NV RNG.

Images are 64x64 with a few steps; equality is bit for bit (CPU, fp32) unless a tolerance is stated.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from assistant import images, infotext
from assistant.config import Settings
from assistant.engine.core import Engine
from assistant.engine.schedulers import make_scheduler
from assistant.errors import Cancelled, GenerationError
from assistant.img2img import img2img_steps
from assistant.types import GenerationRequest, HiresFix, PlannedLora

from .conftest import lora_path

pytestmark = pytest.mark.engine


def _photo(width: int = 96, height: int = 64, seed: int = 0):
    """A smooth, non-square test picture (gradients and a disc), as an InitImage."""
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    red = 255 * xx / max(1, width - 1)
    green = 255 * yy / max(1, height - 1)
    blue = 255.0 * (((xx - width / 2) ** 2 + (yy - height / 2) ** 2) < (min(width, height) / 3) ** 2)
    pixels = np.stack([red, green, blue], axis=-1) + rng.normal(0, 4, (height, width, 3))
    return images.from_pil(Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")), name="photo")


PHOTO = _photo()
BASE = GenerationRequest(
    "1girl, cat ears, city",
    negative="lowres",
    seed=11,
    steps=6,
    cfg=7.0,
    sampler="Euler",
    width=64,
    height=64,
    init_image=PHOTO,
    denoising_strength=0.5,
)


def lora(name: str, weight: float = 1.0, **kw) -> PlannedLora:
    return PlannedLora(name=name, path=lora_path(name), weight=weight, **kw)


def pixels(result) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in result.images])


def differs(a, b, at_least: float = 0.5) -> bool:
    return float(np.abs(pixels(a) - pixels(b)).mean()) > at_least


def _steps_run(engine, request) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    engine.generate(request, progress=lambda done, total: seen.append((done, total)))
    return seen


# -- no second model ----------------------------------------------------------------------------


def test_img2img_pipeline_is_made_with_from_pipe_and_shares_every_module(clean_engine) -> None:
    pipe = clean_engine.pipeline

    def parameters() -> set[int]:
        modules = [pipe.unet, pipe.vae, pipe.text_encoder]
        return {id(p) for m in modules for p in m.parameters()}

    before = parameters()
    clean_engine.generate(BASE)
    twin = clean_engine._passes().img2img_pipeline()
    assert type(twin).__name__ == "StableDiffusionImg2ImgPipeline"
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert getattr(twin, name) is getattr(pipe, name), name
    assert parameters() == before  # not one new weight tensor
    assert clean_engine._passes().img2img_pipeline() is twin  # made once


# -- A1111's step counts and noise ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "strength", "run"),
    [(6, 0.5, 4), (10, 0.3, 4), (10, 0.75, 8), (6, 1.0, 6), (6, 0.0, 1), (20, 0.5, 11)],
)
def test_img2img_runs_a1111s_steps(clean_engine, steps: int, strength: float, run: int) -> None:
    """A1111 (img2img_fix_steps off): int(min(s, 0.999) * steps) + 1 steps of the steps-long schedule."""
    assert img2img_steps(steps, strength).run == run
    seen = _steps_run(clean_engine, dataclasses.replace(BASE, steps=steps, denoising_strength=strength))
    assert len(seen) == run
    assert seen[-1] == (run, run)


def _reference_euler(engine, request) -> np.ndarray:
    """A1111's ``sample_img2img`` + k-diffusion's ``sample_euler``, written out over the pipeline's
    own Euler sigmas: x = init + noise * sigma[start] (noise: the seed generator's FIRST draw),
    then Euler steps from ``start`` with classifier-free guidance."""
    from assistant.engine import vae as vae_module

    pipe = engine.pipeline
    runner = engine._passes()
    init = runner.encode(runner.source(request.init_image, request), [request.seed], rows=1)
    embeds, _info = engine._encoder.encode_pair(
        request.prompt, request.negative, clip_skip=1, emphasis="Original"
    )
    cond, uncond = embeds["prompt_embeds"], embeds["negative_prompt_embeds"]
    scheduler = make_scheduler(pipe.scheduler.config, "Euler", None, request.seed)
    scheduler.set_timesteps(request.steps)
    sigmas, timesteps = scheduler.sigmas, scheduler.timesteps
    t_enc = int(min(request.denoising_strength, 0.999) * request.steps)
    start = request.steps - t_enc - 1
    noise = torch.randn(init.shape, generator=torch.Generator().manual_seed(request.seed))
    x = init + noise * sigmas[start]
    with torch.no_grad():
        for i in range(start, request.steps):
            sigma = sigmas[i]
            x_in = torch.cat([x, x]) / ((sigma**2 + 1) ** 0.5)
            eps = pipe.unet(x_in, timesteps[i], encoder_hidden_states=torch.cat([uncond, cond])).sample
            eps_u, eps_c = eps.chunk(2)
            eps = eps_u + request.cfg * (eps_c - eps_u)
            x = x + eps * (sigmas[i + 1] - sigma)  # d = (x - denoised) / sigma = eps
    out, _note = vae_module.decode(pipe, x)
    return (out * 255).round().astype(np.int16)


@pytest.mark.parametrize(("steps", "strength"), [(6, 0.5), (8, 0.3), (5, 0.9)])
def test_img2img_equals_a1111s_euler_loop(clean_engine, steps: int, strength: float) -> None:
    request = dataclasses.replace(BASE, steps=steps, denoising_strength=strength)
    ours = pixels(clean_engine.generate(request))
    reference = _reference_euler(clean_engine, request)
    assert np.abs(ours - reference).max() <= 1  # float rounding of the same arithmetic


def test_strength_scales_how_far_the_image_moves(clean_engine) -> None:
    source = np.asarray(PHOTO.to_pil().resize((64, 64), Image.Resampling.LANCZOS), dtype=np.int16)
    distance = []
    for strength in (0.1, 0.5, 1.0):
        out = pixels(clean_engine.generate(dataclasses.replace(BASE, denoising_strength=strength)))[0]
        distance.append(float(np.abs(out - source).mean()))
    assert distance[0] < distance[1] < distance[2]


def test_seed_reproduces_and_changes(clean_engine) -> None:
    first = clean_engine.generate(BASE)
    assert np.array_equal(pixels(first), pixels(clean_engine.generate(BASE)))
    assert differs(first, clean_engine.generate(dataclasses.replace(BASE, seed=12)), at_least=0.1)


# -- LoRAs, negative-branch weights, samplers ---------------------------------------------------


def test_lora_applies_and_weight_zero_equals_base(clean_engine) -> None:
    base = clean_engine.generate(BASE)
    styled = clean_engine.generate(dataclasses.replace(BASE, loras=(lora("catgirl_v1", 0.9),)))
    assert differs(styled, base, at_least=0.1)
    zero = clean_engine.generate(dataclasses.replace(BASE, loras=(lora("catgirl_v1", 0.0),)))
    assert np.array_equal(pixels(zero), pixels(base))


def test_negative_branch_weights_apply_in_img2img(clean_engine) -> None:
    pytest.importorskip("assistant.engine.rows")
    same = clean_engine.generate(dataclasses.replace(BASE, loras=(lora("catgirl_v1", 0.6),)))
    explicit = clean_engine.generate(
        dataclasses.replace(BASE, loras=(lora("catgirl_v1", 0.6, negative_weight=0.6),))
    )
    split = clean_engine.generate(
        dataclasses.replace(BASE, loras=(lora("catgirl_v1", 0.6, negative_weight=-0.4),))
    )
    assert np.array_equal(pixels(same), pixels(explicit))
    assert differs(split, same, at_least=0.05)
    assert "Negative LoRA weights" in split.infotexts[0]


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M Karras", "DDIM", "Heun", "DPM++ SDE Karras"])
def test_samplers_run_img2img_reproducibly(clean_engine, sampler: str) -> None:
    request = dataclasses.replace(BASE, sampler=sampler)
    first = clean_engine.generate(request)
    assert np.array_equal(pixels(first), pixels(clean_engine.generate(request)))


def test_nv_rng_img2img_is_reproducible_and_differs_from_gpu_rng(clean_engine) -> None:
    request = dataclasses.replace(BASE, rng="NV", sampler="Euler a")
    first = clean_engine.generate(request)
    assert np.array_equal(pixels(first), pixels(clean_engine.generate(request)))
    assert differs(first, clean_engine.generate(dataclasses.replace(BASE, sampler="Euler a")), at_least=0.05)
    assert "RNG: NV" in first.infotexts[0]


# -- resize modes and sizes -----------------------------------------------------------------------


def test_resize_modes_give_the_requested_size_and_differ(clean_engine) -> None:
    outs = [clean_engine.generate(dataclasses.replace(BASE, resize_mode=mode)) for mode in range(4)]
    for out in outs:
        assert out.images[0].size == (64, 64)
    # a 3:2 photo into a square: stretched, cropped, filled and latent-resized are four pictures
    for i in range(4):
        for j in range(i + 1, 4):
            assert differs(outs[i], outs[j], at_least=0.05), (i, j)


def test_other_output_size_and_batch_seeds(clean_engine) -> None:
    result = clean_engine.generate(dataclasses.replace(BASE, width=96, height=64, batch_size=2))
    assert [im.size for im in result.images] == [(96, 64), (96, 64)]
    assert result.seeds == (11, 12)
    one = clean_engine.generate(dataclasses.replace(BASE, width=96, height=64, seed=12))
    assert np.array_equal(pixels(one)[0], pixels(result)[1])  # image i of a batch = seed + i alone


def test_batched_blind_box_cells_over_one_photo_equal_sequential(clean_engine) -> None:
    pytest.importorskip("assistant.engine.rows")
    cells = [
        dataclasses.replace(BASE, loras=(lora("catgirl_v1", w), lora("cyberpunk_style", round(1 - w, 2))))
        for w in (0.3, 0.6, 0.9)
    ]
    sequential = clean_engine.generate_many(cells, batched=False)
    batched = clean_engine.generate_many(cells, batched=True)
    for s, b in zip(sequential, batched, strict=True):
        assert b.timings.get("batched_cells") == 3.0
        assert b.infotexts == s.infotexts
        assert np.abs(pixels(s) - pixels(b)).max() <= 2
    assert differs(batched[0], batched[2], at_least=0.05)


def test_progress_and_cancel(clean_engine) -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done == 2:
            cancel.set()

    with pytest.raises(Cancelled, match="after step 2 of 4"):
        clean_engine.generate(BASE, progress=progress, cancel=cancel)
    assert seen == [1, 2]


def test_infotext_says_denoising_strength_and_round_trips(clean_engine) -> None:
    text = clean_engine.generate(dataclasses.replace(BASE, denoising_strength=0.35)).infotexts[0]
    assert "Denoising strength: 0.35" in text
    parsed = infotext.parse(text)
    assert parsed.denoising_strength == 0.35
    assert parsed.size == (64, 64)


def test_bad_img2img_requests_are_named(clean_engine) -> None:
    with pytest.raises(GenerationError, match=r"denoising strength 1\.5"):
        clean_engine.generate(dataclasses.replace(BASE, denoising_strength=1.5))
    with pytest.raises(GenerationError, match="resize mode 4"):
        clean_engine.generate(dataclasses.replace(BASE, resize_mode=4))
    with pytest.raises(GenerationError, match="txt2img option"):
        clean_engine.generate(dataclasses.replace(BASE, hires=HiresFix()))


# -- hires fix ------------------------------------------------------------------------------------

HIRES = dataclasses.replace(BASE, init_image=None, steps=4, denoising_strength=0.6, hires=HiresFix(scale=1.5))


@pytest.mark.parametrize(
    "upscaler",
    [
        "Latent",
        "Latent (antialiased)",
        "Latent (bicubic)",
        "Latent (bicubic antialiased)",
        "Latent (nearest)",
        "Latent (nearest-exact)",
        "Lanczos",
        "Nearest",
        "None",
    ],
)
def test_hires_fix_every_upscaler(clean_engine, upscaler: str) -> None:
    request = dataclasses.replace(HIRES, hires=HiresFix(scale=1.5, upscaler=upscaler))
    seen: list[tuple[int, int]] = []
    result = clean_engine.generate(request, progress=lambda d, t: seen.append((d, t)))
    assert result.images[0].size == (96, 96)
    # first pass 4 steps, second pass exactly the hires steps (0 = 4): A1111 passes them explicitly
    assert len(seen) == 8
    assert seen[-1] == (8, 8)
    text = result.infotexts[0]
    assert "Size: 64x64" in text
    assert "Hires upscale: 1.5" in text
    assert f"Hires upscaler: {upscaler}" in text
    assert infotext.parse(text).hires == request.hires


def test_hires_fix_changes_the_first_pass_and_latent_modes_differ(clean_engine) -> None:
    first = clean_engine.generate(dataclasses.replace(HIRES, hires=None))
    latent = clean_engine.generate(HIRES)
    lanczos = clean_engine.generate(dataclasses.replace(HIRES, hires=HiresFix(scale=1.5, upscaler="Lanczos")))
    small = np.asarray(latent.images[0].resize((64, 64), Image.Resampling.LANCZOS), dtype=np.int16)
    assert float(np.abs(small - pixels(first)[0]).mean()) > 0.5
    assert differs(latent, lanczos, at_least=0.1)


def test_hires_resize_box_crops_like_a1111_and_steps_are_hires_steps(clean_engine) -> None:
    request = dataclasses.replace(
        HIRES, width=64, height=96, hires=HiresFix(resize_x=128, resize_y=128, steps=3)
    )
    seen: list[int] = []
    result = clean_engine.generate(request, progress=lambda d, t: seen.append(t))
    assert result.images[0].size == (128, 128)  # covered the box (128x192), then cropped
    assert seen[-1] == 4 + 3
    assert "Hires resize: 128x128" in result.infotexts[0]
    assert "Hires steps: 3" in result.infotexts[0]


def test_hires_with_lora_negative_weights_and_nv_rng(clean_engine) -> None:
    pytest.importorskip("assistant.engine.rows")
    request = dataclasses.replace(
        HIRES,
        loras=(lora("catgirl_v1", 0.6, negative_weight=-0.3),),
        rng="NV",
        sampler="Euler a",
        batch_size=2,
    )
    first = clean_engine.generate(request)
    again = clean_engine.generate(request)
    assert [im.size for im in first.images] == [(96, 96), (96, 96)]
    assert np.array_equal(pixels(first), pixels(again))


def test_hires_denoising_zero_keeps_the_upscaled_latents(clean_engine) -> None:
    seen: list[int] = []
    clean_engine.generate(
        dataclasses.replace(HIRES, denoising_strength=0.0), progress=lambda d, t: seen.append(d)
    )
    assert len(seen) == 4  # A1111's schedule is empty at strength 0: no second-pass step


# -- SDXL and v-prediction (SD2-style) -------------------------------------------------------------


def test_sdxl_img2img_and_hires(tiny_xl_pipe) -> None:
    engine = Engine(Settings(), pipeline=tiny_xl_pipe)
    try:
        request = dataclasses.replace(BASE, steps=4)
        out = engine.generate(request)
        assert type(engine._passes().img2img_pipeline()).__name__ == "StableDiffusionXLImg2ImgPipeline"
        assert engine._passes().img2img_pipeline().text_encoder_2 is tiny_xl_pipe.text_encoder_2
        assert out.images[0].size == (64, 64)
        styled = engine.generate(dataclasses.replace(request, loras=(lora("watercolor_xl", 0.9),)))
        assert differs(styled, out, at_least=0.05)
        hires = engine.generate(dataclasses.replace(HIRES, steps=3))
        assert hires.images[0].size == (96, 96)
        pixel = engine.generate(
            dataclasses.replace(HIRES, steps=3, hires=HiresFix(scale=1.5, upscaler="Lanczos"))
        )
        assert pixel.images[0].size == (96, 96)
    finally:
        engine.unload_all()


def test_v_prediction_model_img2img() -> None:
    """SD2-768 models predict v: the same img2img path runs with their scheduler config."""
    from assistant.engine.tiny import build_tiny_sd15

    pipe = build_tiny_sd15()
    pipe.scheduler = pipe.scheduler.__class__.from_config(
        {**pipe.scheduler.config, "prediction_type": "v_prediction"}
    )
    engine = Engine(Settings(), pipeline=pipe)
    out = engine.generate(dataclasses.replace(BASE, steps=4))
    eps_engine = Engine(Settings(), pipeline=build_tiny_sd15())
    eps = eps_engine.generate(dataclasses.replace(BASE, steps=4))
    assert out.images[0].size == (64, 64)
    assert differs(out, eps, at_least=0.05)
