"""The structured test models have the released module trees, and the fixture files name their
layers exactly as kohya sd-scripts does (so diffusers maps every key onto a layer)."""

from __future__ import annotations

import collections
import copy
from typing import Any

import pytest

from assistant.engine.structured import build_sd15, build_sdxl, lora_targets
from assistant.library import file_base
from tests.library.lora_layouts import SELECTIONS, LayoutSpec, select, write_lora

from .harness import Model

pytestmark = pytest.mark.engine

BUILDERS = {"sd15": build_sd15, "sdxl": build_sdxl}


def _tree(model: Any) -> list[tuple[str, str]]:
    return [(name, type(module).__name__) for name, module in model.named_modules()]


@pytest.mark.parametrize("key", ["sd15", "sdxl"])
def test_reduced_widths_keep_the_released_module_tree(key: str) -> None:
    released = BUILDERS[key]("full", device="meta")  # the released configs, no memory
    reduced = BUILDERS[key]()
    for component in ("unet", "text_encoder", "text_encoder_2"):
        full_model, small_model = getattr(released, component, None), getattr(reduced, component, None)
        assert (full_model is None) == (small_model is None)
        if full_model is not None:
            assert _tree(small_model) == _tree(full_model), component
    unet = released.unet
    if key == "sd15":
        assert (tuple(unet.config.block_out_channels), unet.config.cross_attention_dim) == (
            (320, 640, 1280, 1280),
            768,
        )
        assert sum(p.numel() for p in unet.parameters()) == 859_520_964  # SD1.5's UNet
    else:
        assert (tuple(unet.config.block_out_channels), unet.config.cross_attention_dim) == (
            (320, 640, 1280),
            2048,
        )
        assert released.text_encoder_2.config.num_hidden_layers == 32


def test_lora_able_layers_are_the_real_counts() -> None:
    """SDXL: 788 UNet and 72 + 192 text-encoder layers, as a full kohya LoCon covers them."""
    counts = {
        key: collections.Counter(t.component for t in lora_targets(build(size="full", device="meta")))
        for key, build in BUILDERS.items()
    }
    assert counts["sd15"] == {"unet": 278, "text_encoder": 72}
    assert counts["sdxl"] == {"unet": 788, "text_encoder": 72, "text_encoder_2": 192}


def test_kohya_names_as_sd_scripts_writes_them(structured: dict[str, Model]) -> None:
    sd15 = {t.kohya: t for t in lora_targets(structured["sd15"].pristine)}
    sdxl = {t.kohya: t for t in lora_targets(structured["sdxl"].pristine)}
    for name in (
        "lora_unet_down_blocks_0_attentions_0_proj_in",
        "lora_unet_down_blocks_0_attentions_1_transformer_blocks_0_attn2_to_k",
        "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn1_to_out_0",
        "lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj",
        "lora_unet_down_blocks_3_resnets_1_conv2",
        "lora_unet_down_blocks_1_resnets_0_conv_shortcut",
        "lora_unet_up_blocks_0_upsamplers_0_conv",
        "lora_unet_down_blocks_2_downsamplers_0_conv",
        "lora_te_text_model_encoder_layers_11_mlp_fc2",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
    ):
        assert name in sd15, name
    # kohya trains SDXL on its own sgm UNet (library/sdxl_original_unet.py): input/middle/output blocks
    for name in (
        "lora_unet_input_blocks_1_0_in_layers_2",  # first block: a resnet, no attention
        "lora_unet_input_blocks_1_0_emb_layers_1",
        "lora_unet_input_blocks_3_0_op",
        "lora_unet_input_blocks_4_0_skip_connection",
        "lora_unet_input_blocks_4_1_proj_in",
        "lora_unet_input_blocks_8_1_transformer_blocks_9_attn2_to_v",
        "lora_unet_middle_block_0_out_layers_3",
        "lora_unet_middle_block_1_transformer_blocks_9_ff_net_2",
        "lora_unet_output_blocks_2_2_conv",
        "lora_unet_output_blocks_5_2_conv",
        "lora_unet_output_blocks_8_0_skip_connection",
        "lora_te1_text_model_encoder_layers_11_self_attn_out_proj",
        "lora_te2_text_model_encoder_layers_31_mlp_fc1",
    ):
        assert name in sdxl, name
    assert not any("down_blocks" in n or "up_blocks" in n or "mid_block_" in n for n in sdxl)
    assert not any("input_blocks_1_1" in n or "input_blocks_2_1" in n for n in sdxl)  # no attention there
    assert sdxl["lora_unet_input_blocks_4_1_proj_in"].shape == (64, 64)  # linear projection (SDXL)
    assert sd15["lora_unet_down_blocks_0_attentions_0_proj_in"].shape == (32, 32, 1, 1)  # 1x1 conv (SD1.5)


@pytest.mark.parametrize("key", ["sd15", "sdxl"])
@pytest.mark.parametrize(("selection", "layout"), [("locon", "kohya"), ("kohya", "peft")])
def test_every_key_of_a_fixture_file_reaches_its_layer(
    structured: dict[str, Model], tmp_path, key: str, selection: str, layout: str
) -> None:  # type: ignore[no-untyped-def]
    """diffusers' own loader maps each key onto exactly the layer it names: no key is lost."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    model = structured[key]
    targets = lora_targets(model.pristine)
    path = write_lora(tmp_path / "x.safetensors", targets, selection, layout=layout, spec=LayoutSpec())
    pipe = copy.deepcopy(model.pristine)
    pipe.load_lora_weights(str(path), adapter_name="x")
    wrapped = {
        (component, name)
        for component in ("unet", "text_encoder", "text_encoder_2")
        if getattr(pipe, component, None) is not None
        for name, module in getattr(pipe, component).named_modules()
        if isinstance(module, BaseTunerLayer)
    }
    assert wrapped == {(t.component, t.module) for t in select(targets, selection)}


@pytest.mark.parametrize(
    ("key", "kind", "base", "source"),
    [
        ("sdxl", "unet", "sdxl", "tensor names (transformer depth above 1"),
        ("sd15", "locon", "sd15", "metadata"),
        ("sd15", "peft", "sd15", "an SD1.x UNet: attention in the first block, 1x1-conv proj_in"),
        ("sd15", "unet", "sd15", "an SD1.x UNet"),
        ("sdxl", "peft", "sdxl", "a second text encoder"),
    ],
)
def test_base_of_reduced_width_files_from_their_layer_names(
    structured: dict[str, Model], key: str, kind: str, base: str, source: str
) -> None:
    """Widths of 32-80 decide nothing; which layers a file names still tells SDXL from SD1.5."""
    found, how = file_base(structured[key].files[kind])
    assert found == base
    assert source in how


def test_attention_only_sd_file_without_metadata_is_unknown(structured: dict[str, Model], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No proj layers: SD1.5 or SD2 cannot be told apart, so the base stays unknown (applied)."""
    path = write_lora(tmp_path / "a.safetensors", lora_targets(structured["sd15"].pristine), "attention")
    assert file_base(path)[0] == "unknown"


def test_selections_cover_the_groups_trainers_target() -> None:
    assert SELECTIONS["locon"] > SELECTIONS["kohya"] > SELECTIONS["unet"] > SELECTIONS["attention"]
    assert not SELECTIONS["te"] & SELECTIONS["unet"]
