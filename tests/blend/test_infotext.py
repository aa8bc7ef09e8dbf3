"""assistant.infotext: A1111 layout, quoting, pre-1.9 sampler names, PNG chunk, round trips."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from assistant import infotext

BASE = {
    "prompt": "1girl, cat ears, <lora:catgirl_v1:0.6>",
    "negative": "extra cat ears, worst quality, blurry, lowres",
    "steps": 28,
    "sampler": "DPM++ 2M",
    "schedule_type": "Karras",
    "cfg": 7.0,
    "seed": 1,
    "width": 512,
    "height": 512,
    "model_name": "tiny-sd",
    "model_hash": "0a1b2c3d4e",
    "lora_hashes": {"catgirl_v1": "0123456789ab", "cyberpunk_style": "ba9876543210"},
}


def test_build_matches_a1111_layout() -> None:
    text = infotext.build(**BASE, version="v1.10.1")
    assert text == (
        "1girl, cat ears, <lora:catgirl_v1:0.6>\n"
        "Negative prompt: extra cat ears, worst quality, blurry, lowres\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, "
        'Model hash: 0a1b2c3d4e, Model: tiny-sd, Lora hashes: "catgirl_v1: 0123456789ab, '
        'cyberpunk_style: ba9876543210", Version: v1.10.1'
    )


def test_default_version_names_the_project() -> None:
    text = infotext.build(**BASE)
    assert text.endswith(f"Version: LoRA Mixer {infotext.__version__}")


def test_combined_sampler_is_written_split() -> None:
    text = infotext.build(**{**BASE, "sampler": "DPM++ 2M Karras", "schedule_type": None})
    assert "Sampler: DPM++ 2M, Schedule type: Karras," in text
    plain = infotext.build(**{**BASE, "sampler": "Euler a", "schedule_type": None})
    assert "Sampler: Euler a, CFG scale" in plain


def test_no_negative_and_no_loras_leave_lines_out() -> None:
    text = infotext.build(**{**BASE, "negative": "", "lora_hashes": {}, "model_hash": ""})
    assert "Negative prompt" not in text
    assert "Lora hashes" not in text
    assert "Model hash" not in text
    assert text.count("\n") == 1


@pytest.mark.parametrize(
    ("sampler_text", "sampler", "schedule"),
    [
        ("Sampler: DPM++ 2M Karras", "DPM++ 2M", "Karras"),
        ("Sampler: DPM++ 2M SDE Karras", "DPM++ 2M SDE", "Karras"),
        ("Sampler: DPM++ 2M SDE Exponential", "DPM++ 2M SDE", "Exponential"),
        ("Sampler: Euler a", "Euler a", None),
        ("Sampler: DDIM", "DDIM", None),
        ("Sampler: DPM++ 2M, Schedule type: Karras", "DPM++ 2M", "Karras"),
        ("Sampler: Euler, Schedule type: SGM Uniform", "Euler", "SGM Uniform"),
        ("Sampler: Euler, Schedule type: sgm_uniform", "Euler", "SGM Uniform"),
    ],
)
def test_parse_both_sampler_forms(sampler_text: str, sampler: str, schedule: str | None) -> None:
    info = infotext.parse(f"a cat\nSteps: 20, {sampler_text}, CFG scale: 7.5, Seed: 42, Size: 512x768")
    assert info.sampler == sampler
    assert info.schedule_type == schedule
    assert (info.steps, info.cfg, info.seed, info.width, info.height) == (20, 7.5, 42, 512, 768)


def test_parse_real_a1111_text_with_quotes_and_multiline_prompt() -> None:
    text = (
        "masterpiece, 1girl,\n<lora:catgirl_v1:0.7>, smile\n"
        "Negative prompt: (worst quality:1.4), lowres\n"
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 2179987202, Size: 768x512, "
        'Model hash: 93b79e09ed, Model: anything-v4.5, Lora hashes: "catgirl_v1: e3b0c44298fc", '
        'Template: "a, b: c \\"q\\"", Clip skip: 2, Version: v1.7.0'
    )
    info = infotext.parse(text)
    assert info.prompt == "masterpiece, 1girl,\n<lora:catgirl_v1:0.7>, smile"
    assert info.negative == "(worst quality:1.4), lowres"
    assert info.params["Template"] == 'a, b: c "q"'
    assert info.params["Clip skip"] == "2"
    assert info.lora_hashes == {"catgirl_v1": "e3b0c44298fc"}
    assert (info.model, info.model_hash, info.version) == ("anything-v4.5", "93b79e09ed", "v1.7.0")


def test_text_without_parameter_line_is_all_prompt() -> None:
    info = infotext.parse("just a prompt, with: a colon")
    assert info.prompt == "just a prompt, with: a colon"
    assert info.params == {}
    assert info.steps is None
    assert info.sampler is None


def test_extra_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="clashes"):
        infotext.build(**BASE, extra={"Seed": "3"})
    with pytest.raises(ValueError, match="not allowed"):
        infotext.build(**BASE, extra={"bad,key": "3"})
    text = infotext.build(**BASE, extra={"Blind box": "cell 3 of 8", "Weights": "a: 0.5, b: 0.7"})
    info = infotext.parse(text)
    assert info.params["Blind box"] == "cell 3 of 8"
    assert info.params["Weights"] == "a: 0.5, b: 0.7"


def test_png_chunk_round_trip_and_determinism() -> None:
    text = infotext.build(**{**BASE, "prompt": "猫耳の少女, 赛博朋克"})
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    blobs = []
    for _ in range(2):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=infotext.png_info(text))
        blobs.append(buffer.getvalue())
    assert blobs[0] == blobs[1]
    loaded = Image.open(io.BytesIO(blobs[0]))
    info = infotext.read_png(loaded)
    assert info is not None
    assert info.prompt == "猫耳の少女, 赛博朋克"
    assert info.render() == text


def test_read_png_from_path_and_missing_chunk(tmp_path) -> None:
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    assert infotext.read_png(plain) is None
    tagged = tmp_path / "tagged.png"
    Image.new("RGB", (4, 4)).save(tagged, pnginfo=infotext.png_info(infotext.build(**BASE)))
    info = infotext.read_png(str(tagged))
    assert info is not None
    assert info.seed == 1


# ---- property: build -> parse gives back every field ----------------------------------------

_line = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85"),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(lambda s: s and not s.startswith("Negative prompt:"))
)
_prompt = st.lists(_line, min_size=1, max_size=3).map("\n".join)
_name = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-. ]{0,15}[A-Za-z0-9]", fullmatch=True)
_key = st.from_regex(r"[A-Za-z][A-Za-z0-9 _\-/]{0,15}[A-Za-z0-9]", fullmatch=True)
_value = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x85\u2028\u2029"),
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(
    prompt=_prompt,
    negative=st.one_of(st.just(""), _prompt),
    steps=st.integers(1, 150),
    sampler=st.sampled_from(["Euler a", "DPM++ 2M", "DPM++ 2M SDE", "DDIM", "UniPC", "LMS", "Heun"]),
    schedule=st.sampled_from([None, "Karras", "Exponential", "SGM Uniform"]),
    cfg=st.floats(1, 30, allow_nan=False).map(lambda x: round(x, 2)),
    seed=st.integers(0, 2**32 - 1),
    size=st.tuples(st.integers(8, 2048), st.integers(8, 2048)),
    model=_value,
    loras=st.dictionaries(_name, st.from_regex(r"[0-9a-f]{12}", fullmatch=True), max_size=4),
    extra=st.dictionaries(_key.filter(lambda k: k not in {"Version", "Seed", "Steps"}), _value, max_size=3),
)
def test_round_trip(prompt, negative, steps, sampler, schedule, cfg, seed, size, model, loras, extra) -> None:
    extra = {k: v for k, v in extra.items() if k not in {"Sampler", "Schedule type", "CFG scale", "Size"}}
    extra = {k: v for k, v in extra.items() if k not in {"Model", "Model hash", "Lora hashes"}}
    text = infotext.build(
        prompt=prompt,
        negative=negative,
        steps=steps,
        sampler=sampler,
        schedule_type=schedule,
        cfg=cfg,
        seed=seed,
        width=size[0],
        height=size[1],
        model_name=model,
        model_hash="abcdef0123",
        lora_hashes=loras,
        extra=extra,
    )
    info = infotext.parse(text)
    assert info.prompt == prompt
    assert info.negative == negative
    assert (info.steps, info.sampler, info.schedule_type) == (steps, sampler, schedule)
    assert info.cfg == cfg
    assert (info.seed, info.width, info.height) == (seed, *size)
    assert info.model == (model or None)
    assert info.lora_hashes == {k.strip(): v for k, v in loras.items()}
    for key, value in extra.items():
        assert info.params[key] == value
    assert info.render() == text


# -- model settings: VAE, clip skip, RNG, embeddings, emphasis, padded conds -------------------


def test_model_settings_written_as_a1111_and_read_back() -> None:
    text = infotext.build(
        prompt="1girl, EasyNegative",
        negative="badhandv4",
        steps=28,
        sampler="DPM++ 2M",
        schedule_type="Karras",
        cfg=7,
        seed=1,
        width=512,
        height=512,
        model_name="anything-v5",
        model_hash="0123456789",
        lora_hashes={"catgirl_v1": "abcdefabcdef"},
        vae_name="vae-ft-mse-840000-ema-pruned.safetensors",
        vae_hash="235745af8d",
        clip_skip=2,
        rng="CPU",
        ti_hashes={"EasyNegative": "c74b4e810b03", "badhandv4": "5e40d722fc"},
        emphasis="No norm",
        pad_conds=True,
    )
    last = text.splitlines()[-1]
    assert last == (
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, "
        "Model hash: 0123456789, Model: anything-v5, VAE hash: 235745af8d, "
        "VAE: vae-ft-mse-840000-ema-pruned.safetensors, Clip skip: 2, RNG: CPU, "
        'TI hashes: "EasyNegative: c74b4e810b03, badhandv4: 5e40d722fc", Emphasis: No norm, Pad conds: True, '
        'Lora hashes: "catgirl_v1: abcdefabcdef", Version: ' + infotext.DEFAULT_VERSION
    )
    parsed = infotext.parse(text)
    assert (parsed.clip_skip, parsed.rng, parsed.emphasis, parsed.pad_conds) == (2, "CPU", "No norm", True)
    assert (parsed.vae, parsed.vae_hash) == ("vae-ft-mse-840000-ema-pruned.safetensors", "235745af8d")
    assert parsed.ti_hashes == {"EasyNegative": "c74b4e810b03", "badhandv4": "5e40d722fc"}


def test_defaults_are_left_out_and_read_as_a1111_defaults() -> None:
    """A1111 leaves out Clip skip 1, RNG GPU, Emphasis Original; an infotext without them means those."""
    text = infotext.build(
        prompt="x",
        negative="",
        steps=20,
        sampler="Euler a",
        schedule_type=None,
        cfg=7,
        seed=1,
        width=64,
        height=64,
        model_name="",
        model_hash="",
        lora_hashes={},
    )
    for key in ("Clip skip", "RNG", "Emphasis", "VAE", "TI hashes", "Pad conds"):
        assert key not in text
    parsed = infotext.parse(text)
    assert (parsed.clip_skip, parsed.rng, parsed.emphasis, parsed.vae, parsed.ti_hashes) == (
        1,
        "GPU",
        "Original",
        None,
        {},
    )


def test_reads_an_a1111_infotext_with_rng_and_clip_skip() -> None:
    a1111 = (
        "masterpiece, 1girl\nNegative prompt: EasyNegative\n"
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 2, Size: 512x768, Model hash: 7f96a1a9ca, "
        "Model: anything, VAE hash: 235745af8d, VAE: kl-f8-anime2.ckpt, Clip skip: 2, RNG: NV, "
        'TI hashes: "EasyNegative: c74b4e810b03", Version: v1.10.1'
    )
    parsed = infotext.parse(a1111)
    assert (parsed.clip_skip, parsed.rng, parsed.vae, parsed.ti_hashes) == (
        2,
        "NV",
        "kl-f8-anime2.ckpt",
        {"EasyNegative": "c74b4e810b03"},
    )
