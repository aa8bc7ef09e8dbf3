"""Single-file checkpoints in the ORIGINAL layout (what A1111 users download), written by tests.

The reverse of diffusers' ``from_single_file`` conversion, after diffusers'
``scripts/convert_diffusers_to_original_stable_diffusion.py`` / ``…_sdxl.py``, but driven by the
UNet config so that reduced widths work: ``model.diffusion_model.input_blocks.…`` UNet keys,
``first_stage_model.encoder.down.0.block.0…`` VAE keys, ``cond_stage_model.transformer.text_model.…``
(SD1, OpenAI CLIP), ``cond_stage_model.model.transformer.resblocks.…`` with fused ``in_proj``
(SD2, OpenCLIP-H, with the 24th layer and ``text_projection`` the real files carry and diffusers
drops) and ``conditioner.embedders.0/1`` (SDXL). Random weights, seeded.

:func:`reduced_configs` copies the shipped config folders with small widths (block structure,
layer counts and key names stay those of the real models).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from assistant.engine.checkpoints import CONFIGS_DIR

# -- UNet ---------------------------------------------------------------------------------------

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{_RESNET.get(head, head)}.{tail}"


def unet_to_ldm(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    has_attention = ["CrossAttn" in t for t in config["up_block_types"]]
    per = config["layers_per_block"] + 1
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = None
        for hf, ldm in _UNET_TOP.items():
            if key.startswith(hf + "."):
                new = ldm + key[len(hf) :]
        if new is None:
            if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
                i, j, rest = int(m[1]), int(m[2]), m[3]
                new = f"input_blocks.{per * i + j + 1}.0.{_resnet(rest)}"
            elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
                new = f"input_blocks.{per * int(m[1]) + int(m[2]) + 1}.1.{m[3]}"
            elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
                new = f"input_blocks.{per * (int(m[1]) + 1)}.0.op.{m[2]}"
            elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
                new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
            elif m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
                new = f"middle_block.1.{m[1]}"
            elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
                new = f"output_blocks.{(per) * int(m[1]) + int(m[2])}.0.{_resnet(m[3])}"
            elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
                new = f"output_blocks.{per * int(m[1]) + int(m[2])}.1.{m[3]}"
            elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
                i = int(m[1])
                new = f"output_blocks.{per * i + per - 1}.{2 if has_attention[i] else 1}.{m[2]}"
        if new is None:
            raise KeyError(f"no LDM name for UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


# -- VAE ----------------------------------------------------------------------------------------


def vae_to_ldm(
    state: dict[str, torch.Tensor], blocks: int, prefix: str = "first_stage_model."
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    for key, tensor in state.items():
        value = tensor
        new = key.replace("conv_norm_out", "norm_out")
        if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
            name, _, tail = m[2].rpartition(".")
            new = f"{m[1]}.mid.attn_1.{attn[name]}.{tail}"
            if value.ndim == 2:
                value = value.reshape(*value.shape, 1, 1)
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)", key):
            new = f"encoder.down.{m[1]}.downsample.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
            new = f"decoder.up.{blocks - 1 - int(m[1])}.upsample.{m[2]}"
        out[prefix + new.replace("conv_shortcut", "nin_shortcut")] = value
    return out


# -- text encoders ------------------------------------------------------------------------------


def clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """OpenAI CLIP as the original checkpoints hold it: ``<prefix>text_model.…``."""
    return {prefix + (k if k.startswith("text_model.") else "text_model." + k): v for k, v in state.items()}


def openclip_to_ldm(
    state: dict[str, torch.Tensor], prefix: str, *, extra_layer: bool = False, seed: int = 3
) -> dict[str, torch.Tensor]:
    """OpenCLIP's layout: ``resblocks.N`` with fused ``attn.in_proj_*``, ``ln_final``, ``text_projection``."""
    state = {k.removeprefix("text_model."): v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    for key, value in state.items():
        if key == "embeddings.token_embedding.weight":
            out["token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out["positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out["ln_final." + key.split(".")[-1]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()
        elif m := re.match(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", key):
            qkv.setdefault(f"transformer.resblocks.{m[1]}.attn.in_proj_{m[3]}", {})[m[2]] = value
        elif m := re.match(r"encoder\.layers\.(\d+)\.self_attn\.out_proj\.(.*)", key):
            out[f"transformer.resblocks.{m[1]}.attn.out_proj.{m[2]}"] = value
        elif m := re.match(r"encoder\.layers\.(\d+)\.(layer_norm1|layer_norm2|mlp\.fc1|mlp\.fc2)\.(.*)", key):
            out[f"transformer.resblocks.{m[1]}.{names[m[2]]}.{m[3]}"] = value
        elif "position_ids" in key:
            continue
        else:
            raise KeyError(f"no OpenCLIP name for {key}")
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]])
    width = out["ln_final.weight"].shape[0]
    generator = torch.Generator().manual_seed(seed)
    out["logit_scale"] = torch.tensor(4.6052)
    if "text_projection" not in out:
        out["text_projection"] = torch.randn(width, width, generator=generator) * 0.02
    if extra_layer:  # the real SD2 text encoder has a 24th layer diffusers does not use
        layers = sorted({int(k.split(".")[2]) for k in out if k.startswith("transformer.resblocks.")})
        last, new = layers[-1], layers[-1] + 1
        for key in [k for k in out if k.startswith(f"transformer.resblocks.{last}.")]:
            out[key.replace(f"resblocks.{last}.", f"resblocks.{new}.")] = (
                torch.randn(out[key].shape, generator=generator) * 0.02
            )
    return {prefix + k: v for k, v in out.items()}


def pipeline_to_ldm(
    pipe: Any, *, v_pred: bool = False, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """A whole pipeline as one original-layout state dict (what ``v1-5-pruned.safetensors`` holds)."""
    unet = unet_to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config))
    vae = vae_to_ldm(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels))
    xl = getattr(pipe, "text_encoder_2", None) is not None
    if xl:
        text = clip_to_ldm(pipe.text_encoder.state_dict(), "conditioner.embedders.0.transformer.")
        text |= openclip_to_ldm(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model.")
    elif pipe.text_encoder.config.num_hidden_layers == 23:
        text = openclip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.model.", extra_layer=True)
    else:
        text = clip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.transformer.")
    state = {**unet, **vae, **text}
    if v_pred:
        state["v_pred"] = torch.tensor([])
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    return {k: v.contiguous() for k, v in state.items()}


# -- reduced configs ----------------------------------------------------------------------------

_REDUCED: dict[str, dict[str, dict[str, Any]]] = {
    "sd15": {
        "unet": {"block_out_channels": [32, 32, 64, 64], "cross_attention_dim": 32},
        "text_encoder": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "projection_dim": 32,
        },
    },
    "sd2": {
        "unet": {
            "block_out_channels": [32, 32, 64, 64],
            "attention_head_dim": [2, 2, 4, 4],
            "cross_attention_dim": 32,
        },
        "text_encoder": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "projection_dim": 32,
        },
    },
    "sdxl": {
        "unet": {
            "block_out_channels": [32, 64, 64],
            "attention_head_dim": [2, 4, 4],
            "cross_attention_dim": 32 + 48,
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 6 * 8 + 48,
        },
        # the two encoders must differ in width, as CLIP-L (768) and bigG (1280) do: diffusers tells
        # them apart by it
        "text_encoder": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "projection_dim": 32,
        },
        "text_encoder_2": {
            "hidden_size": 48,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "projection_dim": 48,
        },
    },
}
_REDUCED["sd2-v"] = _REDUCED["sd2"]
_REDUCED_VAE = {"block_out_channels": [32, 32, 32, 32]}


def reduced_configs(dest: Path) -> Path:
    """The shipped config folders with reduced widths, under ``dest`` (same layout as CONFIGS_DIR)."""
    for folder in ("sd15", "sd2", "sd2-v", "sdxl"):
        shutil.copytree(CONFIGS_DIR / folder, dest / folder, dirs_exist_ok=True)
        for part, changes in {**_REDUCED[folder], "vae": _REDUCED_VAE}.items():
            name = "scheduler_config.json" if part == "scheduler" else "config.json"
            path = dest / folder / part / name
            data = json.loads(path.read_text())
            data.update(changes)
            path.write_text(json.dumps(data, indent=1))
    shutil.copytree(CONFIGS_DIR / "clip", dest / "clip", dirs_exist_ok=True)
    return dest


def build_pipeline(configs: Path, folder: str, seed: int = 0) -> Any:
    """A random-weight pipeline from a config folder (reduced or full), seeded per component."""
    from diffusers import (
        AutoencoderKL,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from diffusers.schedulers import DDIMScheduler, EulerDiscreteScheduler, PNDMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from assistant.engine.checkpoints import tokenizers_for

    root = configs / folder
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet"))
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
    torch.manual_seed(seed + 2)
    text = CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))
    schedulers = {
        "PNDMScheduler": PNDMScheduler,
        "DDIMScheduler": DDIMScheduler,
        "EulerDiscreteScheduler": EulerDiscreteScheduler,
    }
    sched_config = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
    scheduler = schedulers[sched_config["_class_name"]].from_config(sched_config)
    tokenizers = tokenizers_for(folder)
    if folder == "sdxl":
        torch.manual_seed(seed + 3)
        text_2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(root / "text_encoder_2"))
        return StableDiffusionXLPipeline(
            vae=vae, text_encoder=text, text_encoder_2=text_2, unet=unet, scheduler=scheduler, **tokenizers
        )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **tokenizers,
    )
