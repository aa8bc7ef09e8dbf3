"""What the header says: network format, base model, rank/alpha, triggers and kind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from assistant.library import GENERIC_TAGS, Library

from . import lorafiles as lf

ScanFn = Callable[..., Library]


@pytest.mark.parametrize(
    ("writer", "fmt", "base", "source"),
    [
        (lambda f: lf.write_kohya(f, "x", with_metadata=False), "kohya", "sd15", "cross-attention input 768"),
        (lambda f: lf.write_kohya(f, "x", base="sd2", with_metadata=False), "kohya", "sd2", "input 1024"),
        (lambda f: lf.write_sdxl(f, "x", with_metadata=False), "kohya-sdxl", "sdxl", "second text encoder"),
        (lambda f: lf.write_sdxl(f, "x", with_metadata=False, te=False), "kohya-sdxl", "sdxl", "input 2048"),
        (lambda f: lf.write_peft(f, "x"), "peft", "sd15", "cross-attention input 768"),
        (lambda f: lf.write_peft(f, "x", base="sdxl"), "peft", "sdxl", "cross-attention input 2048"),
        (lambda f: lf.write_locon(f, "x"), "lycoris", "sd15", "metadata ss_base_model_version 'sd_v1'"),
        (lambda f: lf.write_locon(f, "x", with_metadata=False), "kohya", "sd15", "input 768"),
        (lambda f: lf.write_loha(f, "x"), "lycoris", "sd15", "cross-attention input 768"),
        (lambda f: lf.write_kohya(f, "x"), "kohya", "sd15", "metadata ss_base_model_version 'sd_v1'"),
        (
            lambda f: lf.write_sdxl(f, "x"),
            "kohya-sdxl",
            "sdxl",
            "metadata ss_base_model_version 'sdxl_base_v1-0'",
        ),
    ],
    ids=[
        "kohya-sd15-widths",
        "kohya-sd2-widths",
        "kohya-sdxl-te2",
        "kohya-sdxl-2048",
        "peft-sd15",
        "peft-sdxl",
        "locon-metadata",
        "locon-bare",
        "loha",
        "kohya-sd15-metadata",
        "kohya-sdxl-metadata",
    ],
)
def test_format_and_base(lora_dir: Path, scan: ScanFn, writer, fmt: str, base: str, source: str) -> None:  # type: ignore[no-untyped-def]
    writer(lora_dir)
    info = scan(lora_dir).resolve("x")
    assert info.status == "ok", info.problem
    assert (info.network_format, info.base) == (fmt, base)
    assert source in info.base_source


def test_text_encoder_only_lora_uses_the_text_encoder_width(lora_dir: Path, scan: ScanFn) -> None:
    rng = np.random.default_rng(0)
    module = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    lf.write_safetensors(
        lora_dir / "te_only.safetensors",
        {
            f"{module}.lora_down.weight": rng.standard_normal((4, 1024)).astype(np.float16),
            f"{module}.lora_up.weight": rng.standard_normal((1024, 4)).astype(np.float16),
        },
    )
    info = scan(lora_dir).resolve("te_only")
    assert (info.base, info.base_source) == ("sd2", "tensor widths (text encoder 1024)")


def test_metadata_base_when_tensors_say_nothing(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_safetensors(
        lora_dir / "meta.safetensors",
        {"lora_unet_x.lora_down.weight": np.zeros((4, 16), np.float16)},
        {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"},
    )
    info = scan(lora_dir).resolve("meta")
    assert info.base == "sdxl"
    assert info.base_source == "metadata modelspec.architecture 'stable-diffusion-xl-v1-base/lora'"


def test_tensor_widths_override_contradicting_metadata(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_sdxl(lora_dir, "mislabelled", metadata={"ss_base_model_version": "sd_v1"})
    info = scan(lora_dir).resolve("mislabelled")
    assert info.base == "sdxl"
    assert "overriding metadata ss_base_model_version 'sd_v1'" in info.base_source


def test_non_sd_architecture_is_unknown_and_says_why(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_safetensors(
        lora_dir / "flux.safetensors",
        {"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": np.zeros((4, 3072), np.float16)},
        {"ss_base_model_version": "flux1"},
    )
    info = scan(lora_dir).resolve("flux")
    assert info.base == "unknown"
    assert "'flux1' (not SD1.5, SD2 or SDXL)" in info.base_source


def test_no_evidence_is_unknown(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_safetensors(
        lora_dir / "odd.safetensors", {"lora_unet_odd.lora_down.weight": np.zeros((2, 3), np.float16)}
    )
    info = scan(lora_dir).resolve("odd")
    assert info.base == "unknown"
    assert info.base_source.startswith("unknown (")


def test_rank_and_alpha_from_metadata(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "meta", rank=8, alpha=4.0)
    info = scan(lora_dir).resolve("meta")
    assert (info.rank, info.alpha) == (8, 4.0)


def test_rank_and_alpha_from_tensors(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "bare", with_metadata=False, rank=6, alpha=3.0)
    info = scan(lora_dir).resolve("bare")
    assert (info.rank, info.alpha) == (6, 3.0)


def test_alpha_read_from_far_into_a_large_file(lora_dir: Path, scan: ScanFn) -> None:
    """The alpha scalar sits after >64 KB of tensor data: read with one small seek, not the whole file."""
    big = np.zeros((64, 768), np.float32)  # 196 KB, sorted before the alpha tensor's data
    lf.write_safetensors(
        lora_dir / "far.safetensors",
        {"a_lora_unet_x_attn2_to_k.lora_down.weight": big, "z_lora_unet_x.alpha": np.array(7.5, np.float32)},
    )
    assert scan(lora_dir).resolve("far").alpha == 7.5


def test_odd_kohya_metadata_is_tolerated(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "odd", metadata={"ss_network_dim": "many", "ss_tag_frequency": "{oops"})
    info = scan(lora_dir).resolve("odd")
    assert info.status == "ok"
    assert info.rank == 4  # from the tensor shapes instead
    assert info.triggers == ()


def test_triggers_from_tag_frequency_skip_generic_tags(lora_dir: Path, scan: ScanFn) -> None:
    tags = {
        "10_mychar": {"1girl": 20, "solo": 20, "masterpiece": 20, "mychar": 19, "red scarf": 12, "smile": 18},
        "5_extra": {"mychar": 5, "red_scarf": 3, "rare tag": 2, "1girl": 5},
    }
    lf.write_kohya(lora_dir, "mychar", tags=tags)
    info = scan(lora_dir).resolve("mychar")
    # mychar 24, red scarf 15 (>= 24/2), rare tag 2 (< 12): dropped; generic tags never chosen
    assert info.triggers == ("mychar", "red scarf")
    assert info.triggers_source.startswith("ss_tag_frequency")
    assert not set(info.triggers) & GENERIC_TAGS


def test_modelspec_trigger_phrase_beats_tag_frequency(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(
        lora_dir,
        "declared",
        tags={"x": {"foo": 10}},
        metadata={"modelspec.trigger_phrase": "zzz style, bright"},
    )
    info = scan(lora_dir).resolve("declared")
    assert info.triggers == ("zzz style", "bright")
    assert info.triggers_source == "metadata modelspec.trigger_phrase"


@pytest.mark.parametrize(
    ("name", "kind", "word"),
    [
        ("add_detail", "concept", "add"),
        ("more_saturation", "concept", "more"),
        ("jk_uniform", "clothing", "uniform"),
        ("school_maid", "clothing", "maid"),
        ("cyberpunk_style", "style", "style"),
        ("animeoutlineV4_16", "style", "outline"),
        ("soft_light", "style", "light"),
        ("watercolor_xl", "style", "watercolor"),
        ("catgirl_v1", "character", "girl"),
    ],
)
def test_kind_guessed_from_name_words(lora_dir: Path, scan: ScanFn, name: str, kind: str, word: str) -> None:
    lf.write_kohya(lora_dir, name)
    info = scan(lora_dir).resolve(name)
    assert (info.kind, info.kind_source) == (kind, f"guessed from name word '{word}'")


def test_kind_guessed_from_tag_frequency(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "xyz123", tags={"10_xyz": {"1girl": 18, "xyz123": 20, "blue eyes": 15}})
    info = scan(lora_dir).resolve("xyz123")
    assert info.kind == "character"
    assert info.kind_source == "guessed from tag frequency (person tags in 90% of captions)"


def test_kind_without_evidence_is_other(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "qwerty")
    info = scan(lora_dir).resolve("qwerty")
    assert (info.kind, info.kind_source) == ("other", "guessed: no name word or tag evidence")


def test_metadata_is_trimmed_to_known_short_keys(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(
        lora_dir,
        "trim",
        tags={"a": {"b": 1}},
        metadata={"ss_dataset_dirs": "{}", "ss_training_comment": "x" * 2000},
    )
    metadata = scan(lora_dir).resolve("trim").metadata
    assert metadata["ss_output_name"] == "trim"
    assert "ss_tag_frequency" not in metadata
    assert "ss_dataset_dirs" not in metadata
    assert "ss_training_comment" not in metadata


def test_output_name_becomes_an_alias(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "catgirl_v1-000008", metadata={"ss_output_name": "catgirl_v1"})
    lib = scan(lora_dir)
    assert lib.resolve("catgirl_v1-000008").aliases == ("catgirl_v1",)
    assert lib.resolve("catgirl_v1").name == "catgirl_v1-000008"


def test_peft_adapter_folder_name_is_an_alias(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_peft(lora_dir / "my_style", "adapter_model")
    info = scan(lora_dir).resolve("my_style")
    assert info.name == "adapter_model"
    assert info.network_format == "peft"


def test_unknown_layout_and_empty_file_are_loadable_with_a_warning(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_safetensors(
        lora_dir / "alien.safetensors",
        {"blocks_9_ff_net_proj.lora_down.weight": np.zeros((2, 4), np.float16)},
    )
    lf.write_raw_safetensors(lora_dir / "empty.safetensors", b"{}")
    lib = scan(lora_dir)
    alien, empty = lib.resolve("alien"), lib.resolve("empty")
    assert (alien.status, alien.network_format) == ("ok", "unknown")
    assert alien.problem.startswith("no LoRA tensors recognised")
    assert empty.problem == "no LoRA tensors: the header lists no tensors at all"


def test_non_standard_widths_do_not_override_metadata(lora_dir: Path, scan: ScanFn) -> None:
    module = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    lf.write_safetensors(
        lora_dir / "tiny.safetensors",
        {
            f"{module}.lora_down.weight": np.zeros((4, 32), np.float16),
            f"{module}.lora_up.weight": np.zeros((32, 4), np.float16),
        },
        {"ss_base_model_version": "sd_v1"},
    )
    info = scan(lora_dir).resolve("tiny")
    assert info.base == "sd15"
    assert info.base_source == (
        "metadata ss_base_model_version 'sd_v1'; "
        "tensor widths (cross-attention input 32: not 768, 1024 or 2048)"
    )


def _pairs(names: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    tensors = {}
    for module, down_shape in names.items():
        tensors[f"{module}.lora_down.weight"] = np.zeros(down_shape, np.float16)
        tensors[f"{module}.lora_up.weight"] = np.zeros(
            (down_shape[1], down_shape[0], *down_shape[2:]), np.float16
        )
    return tensors


@pytest.mark.parametrize(
    ("names", "base", "source"),
    [
        # SDXL's transformer depth 2/10 (kohya sgm names, a UNet-only "Pony" layout at odd widths)
        (
            {"lora_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_q": (4, 64)},
            "sdxl",
            "transformer depth",
        ),
        ({"lora_unet_down_blocks_2_attentions_0_transformer_blocks_9_ff_net_2": (4, 64)}, "sdxl", "depth"),
        # attention in the first down block + a 1x1-conv proj_in: SD1.x
        (
            {
                "lora_unet_down_blocks_0_attentions_0_proj_in": (4, 32, 1, 1),
                "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": (4, 32),
            },
            "sd15",
            "an SD1.x UNet",
        ),
        # the same with a linear proj_in: SD2
        ({"lora_unet_down_blocks_0_attentions_0_proj_in": (4, 32)}, "sd2", "an SD2 UNet"),
        # SD1.x-only names but no proj layer: SD1.5 or SD2 cannot be told apart
        (
            {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (4, 32)},
            "unknown",
            "unknown",
        ),
        # not UNet keys (no lora_unet_ / unet. prefix), or no SD depth index: they decide nothing
        ({"lora_transformer_blocks_99_ff_net_9_proj": (16, 16)}, "unknown", "unknown"),
        ({"lora_unet_transformer_blocks_12_attn1_to_q": (4, 64)}, "unknown", "unknown"),
    ],
    ids=[
        "sgm-depth",
        "diffusers-depth",
        "sd15-conv-proj",
        "sd2-linear-proj",
        "sd1-family-only",
        "alien-keys",
        "depth-12",
    ],
)
def test_base_from_layer_names_when_widths_decide_nothing(
    lora_dir: Path, scan: ScanFn, names: dict[str, tuple[int, ...]], base: str, source: str
) -> None:
    lf.write_safetensors(lora_dir / "x.safetensors", _pairs(names))
    info = scan(lora_dir).resolve("x")
    assert info.base == base
    assert source in info.base_source


def test_layer_names_never_override_metadata_of_the_same_family(lora_dir: Path, scan: ScanFn) -> None:
    names = {"lora_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_q": (4, 64)}
    lf.write_safetensors(
        lora_dir / "x.safetensors", _pairs(names), {"ss_base_model_version": "sdxl_base_v1-0"}
    )
    info = scan(lora_dir).resolve("x")
    assert (info.base, info.base_source) == ("sdxl", "metadata ss_base_model_version 'sdxl_base_v1-0'")


def test_one_sentence_for_a_base_mismatch() -> None:
    from assistant.library import base_mismatch

    assert base_mismatch("sdxl", "tensor widths (cross-attention input 2048)", "sd15") == (
        "made for SDXL (from tensor widths) but the loaded model is SD1.5"
    )
    assert base_mismatch("sdxl", "unknown", "sd15") == "made for SDXL but the loaded model is SD1.5"
    assert base_mismatch("sd15", "metadata", "sd15") == ""
    assert base_mismatch("unknown", "unknown (…)", "sdxl") == ""
