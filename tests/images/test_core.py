"""img2img, hires fix and PNG Info in the pure core (issue 14): A1111's numbers, the infotext keys,
resize modes, LoRAs matched by hash then name, the chat's image turns, the UI's panel helpers.
No torch: nothing here renders."""

from __future__ import annotations

import dataclasses
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from assistant import images, infotext, limits
from assistant.chat import route
from assistant.config import DEFAULT_LORA_DIR, Settings
from assistant.errors import PromptError
from assistant.img2img import (
    UPSCALERS,
    canonical_upscaler,
    check_hires,
    fit_size,
    hires_target,
    img2img_steps,
    sampling_steps,
)
from assistant.library import Hashes, Library
from assistant.pnginfo import describe, hash_matches
from assistant.service import RenderSettings, Service, restore_fill
from assistant.types import GenerationRequest, HiresFix
from assistant.ui.binding import bind
from assistant.ui.img2img import PANEL_FIELDS, ImageInputs, fill_values

# -- A1111's step counts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "strength", "schedule", "run"),
    [
        (20, 0.5, 20, 11),  # t_enc = int(0.5 * 20) = 10: A1111 samples t_enc + 1
        (20, 0.75, 20, 16),
        (28, 0.3, 28, 9),
        (20, 1.0, 20, 20),  # 0.999 cap: t_enc = 19
        (20, 0.0, 20, 1),
        (10, 0.29, 10, 3),  # int(2.9)
    ],
)
def test_img2img_steps_are_a1111s(steps: int, strength: float, schedule: int, run: int) -> None:
    plan = img2img_steps(steps, strength)
    assert (plan.schedule, plan.run, plan.start) == (schedule, run, schedule - run)
    assert min(int(plan.schedule * plan.strength), plan.schedule) == run  # what diffusers will run


@pytest.mark.parametrize(
    ("steps", "strength", "requested", "schedule"),
    [(20, 0.7, 20, 28), (20, 0.5, 10, 20), (20, 0.35, 0, 57), (4, 1.0, 4, 4)],
)
def test_fixed_steps_run_exactly_the_requested_steps(steps, strength, requested, schedule) -> None:
    """The hires fix's second pass (A1111 passes its steps) and img2img_fix_steps."""
    plan = img2img_steps(steps, strength, requested=requested or None, fix_steps=not requested)
    assert plan.run == (requested or steps)
    assert plan.schedule == schedule
    assert min(int(plan.schedule * plan.strength), plan.schedule) == plan.run
    assert img2img_steps(20, 0.0, requested=20).run == 0  # A1111's schedule is empty at 0


def test_sampling_steps_counts_every_pass() -> None:
    init = images.from_pil(Image.new("RGB", (8, 8)))
    assert sampling_steps(GenerationRequest("x", steps=20)) == 20
    assert sampling_steps(GenerationRequest("x", steps=20, init_image=init, denoising_strength=0.5)) == 11
    hires = GenerationRequest("x", steps=20, hires=HiresFix(steps=0), denoising_strength=0.7)
    assert sampling_steps(hires) == 40
    assert sampling_steps(dataclasses.replace(hires, hires=HiresFix(steps=8))) == 28


# -- hires fix sizes and upscalers --------------------------------------------------------------


def test_hires_targets_follow_a1111() -> None:
    assert hires_target(512, 512, HiresFix(scale=2)).upscale_width == 1024
    assert (
        hires_target(512, 768, HiresFix(scale=1.5)).width,
        hires_target(512, 768, HiresFix(scale=1.5)).height,
    ) == (
        768,
        1152,
    )
    one_side = hires_target(512, 768, HiresFix(resize_x=1024))
    assert (one_side.width, one_side.height) == (1024, 1536)
    box = hires_target(512, 768, HiresFix(resize_x=1024, resize_y=1024))
    assert (box.upscale_width, box.upscale_height, box.truncate_y) == (1024, 1536, 64)
    assert (box.width, box.height) == (1024, 1024)  # covered, then A1111's crop
    odd = hires_target(520, 520, HiresFix(scale=1.3))  # int(676): whole latents
    assert (odd.width, odd.height) == (672, 672)


@pytest.mark.parametrize("name", UPSCALERS)
def test_accepted_upscalers_are_a1111s_names(name: str) -> None:
    assert canonical_upscaler(name.upper()) == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("R-ESRGAN 4x+", "Real-ESRGAN"),
        ("R-ESRGAN 4x+ Anime6B", "Real-ESRGAN"),
        ("ESRGAN_4x", "ESRGAN"),
        ("4x-UltraSharp", "UltraSharp"),
        ("SwinIR 4x", "SwinIR"),
        ("LDSR", "LDSR"),
        ("ScuNET GAN", "ScuNET"),
        ("DAT x4", "DAT"),
    ],
)
def test_upscalers_that_need_weights_are_refused_by_name(name: str, says: str) -> None:
    with pytest.raises(PromptError) as caught:
        canonical_upscaler(name)
    text = str(caught.value)
    assert name in text
    assert says in text
    assert "does not ship" in text
    assert "Latent (nearest-exact)" in text
    assert "Lanczos" in text


def test_unknown_upscaler_lists_the_accepted_ones() -> None:
    with pytest.raises(PromptError, match="unknown; use one of: Latent"):
        canonical_upscaler("Bilinear 9000")


def test_hires_limits_name_the_value() -> None:
    with pytest.raises(PromptError, match="Upscale by"):
        check_hires(512, 512, HiresFix(scale=4.5))
    with pytest.raises(PromptError, match="4096x4096"):
        check_hires(1024, 1024, HiresFix(scale=4))
    with pytest.raises(PromptError, match="pixels one call"):
        check_hires(1024, 1024, HiresFix(scale=2), batch=8)
    with pytest.raises(PromptError, match="hires steps 151"):
        check_hires(512, 512, HiresFix(steps=151))


def test_fit_size_keeps_the_photos_shape() -> None:
    assert fit_size(4000, 3000, 512 * 512) == (592, 440)
    assert fit_size(3000, 4000, 512 * 512) == (440, 592)
    assert fit_size(100, 10_000, 1024 * 1024) == (64, 2048)  # clamped into the size limits


# -- resize modes ---------------------------------------------------------------------------------


def _bars() -> Image.Image:
    """A 3:2 picture: red left third, green middle, blue right third."""
    pixels = np.zeros((40, 60, 3), dtype=np.uint8)
    pixels[:, :20, 0] = 255
    pixels[:, 20:40, 1] = 255
    pixels[:, 40:, 2] = 255
    return Image.fromarray(pixels)


def test_resize_modes_are_a1111s() -> None:
    stretched = images.resize_image(0, _bars(), 40, 40)
    cropped = images.resize_image(1, _bars(), 40, 40)
    filled = images.resize_image(2, _bars(), 40, 40)
    assert stretched.size == cropped.size == filled.size == (40, 40)
    # crop and resize: scaled to cover (60x40 -> 60x40) then the centre kept: the red bar loses half
    red_cropped = int((np.asarray(cropped)[:, :, 0] > 128).sum())
    red_stretched = int((np.asarray(stretched)[:, :, 0] > 128).sum())
    assert red_cropped < red_stretched
    # resize and fill: scaled to fit (40x26), the bands above and below stretched from its edges
    top = np.asarray(filled)[0]
    assert top[:10, 0].mean() > 200
    assert top[-10:, 2].mean() > 200
    assert images.latent_source_size(5000, 2500) == (2048, 1024)


# -- infotext keys ----------------------------------------------------------------------------------


def test_hires_and_denoising_infotext_round_trip() -> None:
    text = infotext.build(
        prompt="a",
        negative="",
        steps=20,
        sampler="Euler",
        schedule_type=None,
        cfg=7,
        seed=1,
        width=512,
        height=512,
        model_name="m",
        model_hash="h",
        lora_hashes={},
        denoising_strength=0.55,
        hires=HiresFix(resize_x=1024, resize_y=768, steps=12, upscaler="Latent (bicubic)"),
    )
    assert "Denoising strength: 0.55" in text
    assert "Hires resize: 1024x768, Hires steps: 12, Hires upscaler: Latent (bicubic)" in text
    assert text.index("Denoising strength") < text.index("Hires resize") < text.index("Version")
    parsed = infotext.parse(text)
    assert parsed.hires == HiresFix(
        scale=2.0, resize_x=1024, resize_y=768, steps=12, upscaler="Latent (bicubic)"
    )
    assert parsed.denoising_strength == 0.55


def test_a1111_hires_infotext_is_read() -> None:
    """What A1111 1.10 writes (no Hires upscaler: it ran its default, Latent)."""
    text = (
        "masterpiece\nSteps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 9, "
        "Size: 512x768, Model hash: 6ce0161689, Model: v1-5, Denoising strength: 0.45, Hires upscale: 1.75, "
        "Version: v1.10.1"
    )
    parsed = infotext.parse(text)
    assert parsed.hires == HiresFix(scale=1.75, steps=0, upscaler="Latent")
    params = infotext.a1111_parameters(text)
    assert params["Size-1"] == "512"
    assert params["Size-2"] == "768"
    assert params["Hires upscale"] == "1.75"
    assert params["Hires resize-1"] == 0
    assert params["Clip skip"] == "1"
    assert params["RNG"] == "GPU"
    assert infotext.a1111_parameters("")["Prompt"] == ""


# -- PNG Info: LoRAs matched by hash, then by name ----------------------------------------------


@pytest.fixture(scope="module")
def library() -> Library:
    return Library.scan([DEFAULT_LORA_DIR])


def _hashes(library: Library):
    return library.hashes


def test_hash_matches_a1111_autov2_autov3_and_prefixes() -> None:
    hashes = Hashes(a1111="aaaaaaaaaaaa", autov2="bbbbbbbbbb", sha256="b" * 10 + "c" * 54, addnet="a" * 64)
    assert hash_matches("AAAAAAAAAAAA", hashes)  # A1111's Lora hashes (AutoV3)
    assert hash_matches("bbbbbbbbbb", hashes)  # Civitai's AutoV2
    assert hash_matches("b" * 10 + "cc", hashes)  # a longer prefix of the file's sha256
    assert not hash_matches("dddddddddddd", hashes)
    assert not hash_matches("not-hex!", hashes)


def test_loras_are_matched_by_hash_first_then_by_name(library: Library) -> None:
    real = library.hashes("catgirl_v1").infotext
    other = library.hashes("cyberpunk_style").autov2
    text = (
        "1girl, <lora:my_catgirl:0.7>, <lora:cyberpunk_style:0.4>, <lora:jk_uniform:0.5>, "
        "<lora:nowhere_lora:0.3>\nNegative prompt: lowres\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512, "
        f'Lora hashes: "my_catgirl: {real}, jk_uniform: 000000000000, nowhere_lora: 123456789abc", '
        f'Hashes: {{"lora:cyberpunk_style": "{other}"}}, Version: v1.10.1'
    )
    report = describe(text, library, hashes_of=_hashes(library), server={"clip_skip": 1, "rng": "GPU"})
    by_name = {m.name: m for m in report.loras}
    assert by_name["my_catgirl"].how == "hash"
    assert by_name["my_catgirl"].local == "catgirl_v1"
    assert "<lora:catgirl_v1:0.7>" in report.prompt
    assert "my_catgirl" not in report.prompt
    assert by_name["cyberpunk_style"].how == "hash"  # Civitai's AutoV2 in a Hashes JSON
    assert by_name["jk_uniform"].how == "name, other file"  # same name, another hash
    assert by_name["nowhere_lora"].how == "missing"
    markdown = report.markdown()
    assert "in your library as `catgirl_v1` (same hash" in markdown
    assert "**missing**" in markdown
    assert "123456789abc" in markdown
    assert "different file" in markdown
    assert "not in your library, so a render will differ" in markdown
    assert report.settings["steps"] == 20
    assert report.settings["size"] == (512, 512)


def test_a_lora_without_a_hash_is_matched_by_name(library: Library) -> None:
    text = "1girl, <lora:catgirl_v1:0.7>\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 512x512"
    report = describe(text, library, hashes_of=_hashes(library))
    assert [(m.name, m.how) for m in report.loras] == [("catgirl_v1", "name")]
    assert "the image names no hash" in report.markdown()


def test_what_cannot_be_restored_is_said(library: Library) -> None:
    text = (
        "x\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 512x512, Model: anything-v5, "
        "Clip skip: 2, RNG: CPU, VAE: kl-f8-anime2.safetensors, ADetailer model: face_yolov8n.pt, "
        "Face restoration: CodeFormer"
    )
    report = describe(
        text,
        library,
        hashes_of=_hashes(library),
        model_name="tiny-sd15-demo",
        server={"clip_skip": 1, "rng": "GPU", "emphasis": "Original"},
    )
    joined = " | ".join(report.not_restored)
    assert "anything-v5" in joined
    assert "Clip skip 2" in joined
    assert "RNG CPU" in joined
    assert "kl-f8-anime2" in joined
    assert "`ADetailer model`" in joined
    assert "`Face restoration`" in joined


def test_an_image_without_parameters_says_so(library: Library) -> None:
    report = describe(None, library, hashes_of=_hashes(library))
    assert not report.found
    assert "carries no generation parameters" in report.markdown()


def test_restore_fill_is_send_to_txt2img(library: Library) -> None:
    txt2img = describe(
        "x\nSteps: 9, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5, Seed: 3, Size: 256x384, "
        "Denoising strength: 0.4, Hires upscale: 2, Hires upscaler: Lanczos",
        library,
        hashes_of=_hashes(library),
        samplers=["DPM++ 2M", "DPM++ 2M Karras"],
    )
    fill = restore_fill(txt2img, had_init=True)
    assert fill["sampler"] == "DPM++ 2M Karras"
    assert fill["steps"] == 9
    assert (fill["width"], fill["height"]) == (256, 384)
    assert fill["hires"] == HiresFix(scale=2.0, upscaler="Lanczos")
    assert fill["init_image"] == ""
    values = fill_values(fill)
    assert values["hires"] is True
    assert values["hr_upscaler"] == "Lanczos"
    assert values["hr_strength"] == 0.4
    assert values["init_image"] is None
    img2img = describe(
        "x\nSteps: 9, Sampler: Euler, CFG scale: 5, Seed: 3, Size: 256x384, Denoising strength: 0.4",
        library,
        hashes_of=_hashes(library),
    )
    fill = restore_fill(img2img, had_init=True)
    assert "init_image" not in fill
    assert fill["hires"] is None
    assert fill_values(fill)["strength"] == 0.4
    assert fill_values(fill)["hires"] is False


# -- the chat's image turns (through the service; nothing renders) -------------------------------


def _png(path: Path, text: str | None = None, size: tuple[int, int] = (60, 40)) -> Path:
    info = PngInfo()
    if text:
        info.add_text("parameters", text)
    Image.new("RGB", size, (120, 30, 200)).save(path, pnginfo=info)
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Service:
    root = tmp_path_factory.mktemp("chat-images")
    return Service(
        Settings(lora_dirs=(DEFAULT_LORA_DIR,), outputs_dir=str(root / "o"), cache_dir=str(root / "c"))
    )


def test_image_with_a_prompt_is_img2img(service: Service, tmp_path: Path) -> None:
    photo = _png(tmp_path / "photo.png")
    turn = service.chat_turn(
        "1girl, <lora:catgirl_v1:0.6>", image=photo, settings=RenderSettings(steps=20, width=512, height=512)
    )
    assert turn.job is not None
    assert turn.intent == "advise"
    assert "img2img** over `photo.png`" in turn.markdown
    assert "16 of 20 steps" in turn.markdown
    assert "Rewritten prompt" in turn.markdown
    assert turn.fill["init_image"] == str(photo)
    assert (turn.fill["width"], turn.fill["height"]) == (624, 416)  # the photo's 3:2 at the 512² area
    assert turn.job.steps == 16


def test_image_alone_reads_its_parameters(service: Service, tmp_path: Path) -> None:
    made = _png(
        tmp_path / "made.png",
        "1girl, <lora:catgirl_v1:0.7>\nSteps: 7, Sampler: Euler a, CFG scale: 6.5, Seed: 42, Size: 128x96",
    )
    turn = service.chat_turn("", image=made, positive="old", negative="old neg")
    assert turn.job is None
    assert turn.intent == "pnginfo"
    assert turn.positive == "1girl, <lora:catgirl_v1:0.7>"
    assert turn.negative == ""
    assert turn.fill["seed"] == 42
    assert turn.fill["steps"] == 7
    assert turn.fill["width"] == 128
    assert "What made this image" in turn.markdown
    assert "Send to txt2img" in turn.markdown
    bare = service.chat_turn("", image=_png(tmp_path / "bare.png"), positive="kept")
    assert "carries no generation parameters" in bare.markdown
    assert bare.positive == "kept"
    assert bare.fill == {}


def test_slash_img2img_sets_strength_or_renders(service: Service, tmp_path: Path) -> None:
    alone = service.chat_turn("/img2img 0.3", positive="1girl")
    assert alone.job is None
    assert alone.fill == {"denoising_strength": 0.3}
    assert "Denoising strength set to 0.3" in alone.markdown
    photo = _png(tmp_path / "p.png", size=(64, 64))
    turn = service.chat_turn("/img2img 0.4", image=photo, positive="1girl", settings=RenderSettings(steps=10))
    assert turn.job is not None
    assert "strength 0.4" in turn.markdown
    assert "5 of 10 steps" in turn.markdown
    slot = images.init_image(photo.read_bytes(), name="slot.png")
    from_slot = service.chat_turn("/img2img 0.2 a castle", settings=RenderSettings(steps=10, init_image=slot))
    assert from_slot.job is not None
    assert "over `slot.png`" in from_slot.markdown
    bad = service.chat_turn("/img2img 1.5")
    assert "between 0 and 1" in bad.markdown
    assert bad.job is None
    assert route("/img2img").args["strength"] is None


def test_blind_box_over_an_attached_photo(service: Service, tmp_path: Path) -> None:
    photo = _png(tmp_path / "b.png", size=(64, 64))
    turn = service.chat_turn(
        "/blindbox 3",
        image=photo,
        positive="1girl, <lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.5>",
        settings=RenderSettings(steps=4, width=64, height=64),
    )
    assert turn.job is not None
    assert turn.job.kind == "blindbox"
    assert "img2img** over `b.png`" in turn.markdown


def test_empty_prompt_img2img_is_allowed(service: Service, tmp_path: Path) -> None:
    photo = _png(tmp_path / "e.png", size=(64, 64))
    turn = service.chat_turn(
        "/img2img 0.5", image=photo, settings=RenderSettings(steps=4, width=64, height=64)
    )
    assert turn.job is not None
    assert "without one" in turn.markdown


# -- the UI's panel helpers ------------------------------------------------------------------------


class Request:
    """Stands for ``gr.Request`` (the annotation Gradio finds the request by)."""


def test_image_inputs_apply_img2img_or_hires() -> None:
    values = ["/tmp/x.png", 0.4, 2, True, "Lanczos", 1.5, 10, 0.6]
    panel = ImageInputs.from_values(values)
    init = images.from_pil(Image.new("RGB", (8, 8)))
    with_init = panel.apply(RenderSettings(), init)
    assert with_init.init_image is init
    assert with_init.denoising_strength == 0.4
    assert with_init.resize_mode == 2
    assert with_init.hires is None  # A1111 has no hires fix in img2img
    hires = panel.apply(RenderSettings(), None)
    assert hires.hires == HiresFix(scale=1.5, steps=10, upscaler="Lanczos")
    assert hires.denoising_strength == 0.6
    assert ImageInputs.from_values([None] * len(PANEL_FIELDS)) == ImageInputs()


def test_bind_hands_the_panel_as_one_value_and_keeps_the_request_visible() -> None:
    import inspect
    import typing

    def handler(a: str, b: int, *, image: ImageInputs | None = None, request: Request):
        yield (a, b, request, image)

    bound = bind(handler)
    params = list(inspect.signature(bound).parameters)
    assert params == ["a", "b", *PANEL_FIELDS, "request"]
    assert typing.get_type_hints(bound)["request"] is Request
    req = Request()
    ((a, b, got_request, image),) = list(bound("x", 3, None, 0.3, 1, False, "Latent", 2.0, 0, 0.7, req))
    assert (a, b, got_request) == ("x", 3, req)
    assert image == ImageInputs(strength=0.3, resize_mode=1)


def test_readme_limits_table_lists_the_image_limits() -> None:
    table = limits.markdown_table()
    assert "denoising strength" in table
    assert "an image file sent" in table
    assert "API request body" in table


@pytest.mark.skipif(sys.platform != "linux", reason="sparse files")
def test_read_file_refuses_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    with path.open("wb") as handle:
        handle.truncate(limits.IMAGE_BYTES + 1)
    with pytest.raises(Exception, match=re.escape("the limit is 20 MiB")):
        images.read_file(path)
    assert io.BytesIO
