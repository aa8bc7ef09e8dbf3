"""SD1.5- and SDXL-structured pipelines: the real module trees, at reduced (or full) widths.

The tiny demo pipelines (:mod:`assistant.engine.tiny`) are small and fast but have a toy UNet
(two blocks, one layer each): most real LoRA key names match nothing in them. The builders here
keep EVERY module of the released models — so every key a kohya, LyCORIS or diffusers file
names exists — and shrink only the widths:

=====================  ===============================  ===============================
                       SD1.5 (``runwayml/…-v1-5``)      SDXL (``…-xl-base-1.0``)
=====================  ===============================  ===============================
UNet down blocks       CrossAttn x3, Down; 2 layers     Down, CrossAttn x2; 2 layers
transformer depth      1 per attention block            0 / 2 / 10 (mid block 10)
proj_in / proj_out     1x1 Conv2d                       Linear (``use_linear_projection``)
text encoders          CLIP-L, 12 layers                CLIP-L 12 layers + CLIP-G 32 layers
                                                        (with projection)
LoRA-able layers       UNet 278, text encoder 72        UNet 788, text encoders 72 + 192
=====================  ===============================  ===============================

(LoRA-able = every layer kohya sd-scripts' ``networks/lora.py`` targets with conv LoRA on; see
:func:`lora_targets`.) ``size="reduced"`` (the default) gives UNet widths 32/64/128(/128), text
widths 32 (CLIP-G: 48) and a 4-block VAE with 1/8 latents: a 64x64 render with 2 steps takes well
under a second on one CPU core. ``size="full"`` gives the released widths (SD1.5: 860M UNet
parameters; build it with ``device="meta"`` to inspect the tree without allocating memory). The
tokenizer is always the project's offline BPE (:mod:`assistant.engine.tokenizer`), so the token
embedding has its vocabulary size instead of CLIP's 49,408; no LoRA targets it.

:func:`lora_targets` lists every LoRA-able layer of a pipeline with the key stem kohya writes
(SD1.x: diffusers module names, ``lora_unet_down_blocks_0_attentions_0_…``; SDXL: the original
sgm names kohya trains on, ``lora_unet_input_blocks_4_1_…``; text encoders ``lora_te_`` or
``lora_te1_``/``lora_te2_`` with the ``text_model_`` level that real files carry) and the key
stem diffusers/PEFT files use — what test fixtures and benchmarks need to write real files.

Everything is seeded: the same call gives bit-identical weights. Torch side (used by tests and
``bench/``); the app never builds these.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

from . import tiny

__all__ = [
    "SD15_NAME",
    "SDXL_NAME",
    "Target",
    "build_sd15",
    "build_sdxl",
    "lora_targets",
    "sd15_configs",
    "sdxl_configs",
]

Size = Literal["reduced", "full"]

SD15_NAME = "sd15-structured"
SDXL_NAME = "sdxl-structured"

#: What ``size="reduced"`` changes in the released configs (``configs/<family>``): widths only —
#: block counts, transformer depths and layer counts stay.
_REDUCED: dict[str, dict[str, dict[str, Any]]] = {
    "sd15": {
        "unet": {"block_out_channels": (32, 64, 128, 128), "cross_attention_dim": 32},
        "text_encoder": {
            "hidden_size": 32,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "projection_dim": 32,
        },
    },
    "sdxl": {
        "unet": {
            "block_out_channels": (32, 64, 128),
            "attention_head_dim": (1, 2, 4),  # heads, as diffusers reads SDXL's config (head width 32)
            "cross_attention_dim": 32 + 48,  # CLIP-L width + CLIP-G width, as 768 + 1280 = 2048
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 6 * 8 + 48,  # 6 time ids x 8 + pooled CLIP-G
        },
        "text_encoder": {
            "hidden_size": 32,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "projection_dim": 32,
        },
        "text_encoder_2": {
            "hidden_size": 48,
            "intermediate_size": 192,
            "num_attention_heads": 4,
            "projection_dim": 48,
        },
    },
}


def _configs(family: str, size: str) -> dict[str, dict[str, Any]]:
    """Constructor arguments per component: the shipped release config, reduced if asked."""
    import json

    from .checkpoints import CONFIGS_DIR

    if size not in ("reduced", "full"):
        raise ValueError(f"size must be 'reduced' or 'full', got {size!r}")
    out: dict[str, dict[str, Any]] = {}
    for component, reduced in _REDUCED[family].items():
        config = json.loads((CONFIGS_DIR / family / component / "config.json").read_text(encoding="utf-8"))
        config = {
            k: v
            for k, v in config.items()
            if not k.startswith("_") and k not in ("architectures", "torch_dtype")
        }
        out[component] = {**config, **(reduced if size == "reduced" else {})}
    return out


def sd15_configs(size: Size = "reduced") -> dict[str, dict[str, Any]]:
    """``{"unet": …, "text_encoder": …}`` of an SD1.5-structured build (shipped ``configs/sd15``)."""
    return _configs("sd15", size)


def sdxl_configs(size: Size = "reduced") -> dict[str, dict[str, Any]]:
    """``{"unet": …, "text_encoder": …, "text_encoder_2": …}`` (shipped ``configs/sdxl``)."""
    return _configs("sdxl", size)


def _text(cls: Any, fields: dict[str, Any], seed: int) -> Any:
    from transformers import CLIPTextConfig

    return tiny._text_encoder(cls, CLIPTextConfig(**fields), seed)


def _vae(family: str, size: Size) -> Any:
    if size == "reduced":
        return tiny._vae()
    from diffusers import AutoencoderKL

    from .checkpoints import CONFIGS_DIR

    torch.manual_seed(0)
    return AutoencoderKL.from_config(AutoencoderKL.load_config(str(CONFIGS_DIR / family / "vae")))


def _scheduler(family: str) -> Any:
    from diffusers import EulerDiscreteScheduler

    from .checkpoints import CONFIGS_DIR

    return EulerDiscreteScheduler.from_config(
        EulerDiscreteScheduler.load_config(str(CONFIGS_DIR / family / "scheduler"))
    )


def _finish(pipe: Any, name: str, device: str, dtype: torch.dtype) -> Any:
    pipe._lora_mixer_name = name  # EngineInfo.model_name of an engine given this pipeline
    pipe.set_progress_bar_config(disable=True)
    if torch.device(device).type in ("cpu", "meta") and dtype == torch.float32:
        return pipe
    return pipe.to(device=device, dtype=dtype)


def build_sd15(size: Size = "reduced", *, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    """A ``StableDiffusionPipeline`` with SD1.5's module tree (seeded random weights) and CLIP's
    tokenizer. ``device="meta"`` builds the modules without memory (to inspect the full-size tree).
    """
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    from .checkpoints import tokenizers_for

    configs = sd15_configs(size)
    with torch.device("meta") if device == "meta" else contextlib.nullcontext():
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**configs["unet"])
        text_encoder = _text(CLIPTextModel, configs["text_encoder"], 0)
        vae = _vae("sd15", size)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        unet=unet,
        scheduler=_scheduler("sd15"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **tokenizers_for("sd15"),
    )
    return _finish(pipe, SD15_NAME if size == "reduced" else f"{SD15_NAME}-full", device, dtype)


def build_sdxl(size: Size = "reduced", *, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    """A ``StableDiffusionXLPipeline`` with SDXL base's module tree (seeded random weights) and
    CLIP's tokenizers. ``size="full"`` is 2.6B UNet parameters: use it with ``device="meta"``.
    """
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from .checkpoints import tokenizers_for

    configs = sdxl_configs(size)
    with torch.device("meta") if device == "meta" else contextlib.nullcontext():
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**configs["unet"])
        text_encoder = _text(CLIPTextModel, configs["text_encoder"], 0)
        text_encoder_2 = _text(CLIPTextModelWithProjection, configs["text_encoder_2"], 1)
        vae = _vae("sdxl", size)
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        unet=unet,
        scheduler=_scheduler("sdxl"),
        force_zeros_for_empty_prompt=True,  # as released
        **tokenizers_for("sdxl"),
    )
    return _finish(pipe, SDXL_NAME if size == "reduced" else f"{SDXL_NAME}-full", device, dtype)


# ----------------------------------------------------------------------------------------------
# LoRA-able layers, with the key names trainers write
# ----------------------------------------------------------------------------------------------

#: Module classes whose Linear/Conv2d children kohya sd-scripts wraps (``networks/lora.py``):
#: ``UNET_TARGET_REPLACE_MODULE`` (always) and ``UNET_TARGET_REPLACE_MODULE_CONV2D_3X3`` (with
#: ``conv_dim``, i.e. LoCon), ``TEXT_ENCODER_TARGET_REPLACE_MODULE``.
_UNET_ATTENTION_CLASSES = ("Transformer2DModel",)
_UNET_CONV_CLASSES = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
_TEXT_CLASSES = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP")
_TEXT_PREFIX = {"text_encoder": "lora_te", "text_encoder_2": "lora_te2"}
_XL_TEXT_PREFIX = {"text_encoder": "lora_te1", "text_encoder_2": "lora_te2"}
#: diffusers resnet layer -> sgm (``library/sdxl_model_util.py`` unet_conversion_map_resnet)
_SGM_RESNET = {
    "conv1": "in_layers.2",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}


@dataclass(frozen=True, slots=True)
class Target:
    """One LoRA-able layer of a pipeline.

    ``module``: the diffusers/transformers module path inside ``component``; ``kohya``: the key
    stem kohya sd-scripts writes (``<stem>.lora_down.weight``); ``peft``: the stem of the
    diffusers/PEFT layout (``<stem>.lora_A.weight``); ``group``: what kind of layer it is —
    ``attn`` (``to_q/k/v/out``), ``proj`` (``proj_in/out``), ``ff`` (feed-forward), ``resnet``
    (``conv1/conv2/conv_shortcut/time_emb_proj``), ``sampler`` (down/upsampler convs),
    ``te_attn`` (``q/k/v/out_proj``), ``te_mlp`` (``fc1/fc2``); ``shape``: the base weight's shape
    (Linear ``(out, in)``, Conv2d ``(out, in, kh, kw)``); ``bias``: whether the layer has a bias
    (LyCORIS' full layout then writes ``diff_b``).
    """

    component: str
    module: str
    kohya: str
    peft: str
    group: str
    shape: tuple[int, ...]
    bias: bool = False

    @property
    def is_conv(self) -> bool:
        return len(self.shape) == 4


def lora_targets(pipe: Any) -> list[Target]:
    """Every layer kohya's LoRA network (with conv LoRA) wraps in ``pipe``, in module order.

    Walks the modules as ``networks/lora.py`` ``create_modules`` does: each Linear/Conv2d inside
    a ``Transformer2DModel``, ``ResnetBlock2D``, ``Downsample2D``, ``Upsample2D`` (UNet) or
    ``CLIPAttention``/``CLIPMLP`` (text encoders). Works for any SD1.x/SD2/SDXL diffusers
    pipeline, structured or released.
    """
    xl = getattr(pipe, "text_encoder_2", None) is not None
    targets: list[Target] = []
    unet = pipe.unet
    layers_per_block = int(unet.config.layers_per_block)
    for name, layer in _wrapped(unet, _UNET_ATTENTION_CLASSES + _UNET_CONV_CLASSES):
        sgm = _sgm_name(name, layers_per_block, _has_attentions(unet)) if xl else name
        targets.append(
            Target(
                "unet",
                name,
                "lora_unet_" + sgm.replace(".", "_"),
                f"unet.{name}",
                _group(name),
                _shape(layer),
                layer.bias is not None,
            )
        )
    prefixes = _XL_TEXT_PREFIX if xl else _TEXT_PREFIX
    for component in ("text_encoder", "text_encoder_2"):
        model = getattr(pipe, component, None)
        if model is None:
            continue
        for name, layer in _wrapped(model, _TEXT_CLASSES):
            path = "text_model." + name.removeprefix("text_model.")  # real files keep this level
            targets.append(
                Target(
                    component,
                    name,
                    f"{prefixes[component]}_{path.replace('.', '_')}",
                    f"{component}.{path}",
                    "te_mlp" if ".mlp." in name else "te_attn",
                    _shape(layer),
                    layer.bias is not None,
                )
            )
    return targets


def _wrapped(model: Any, classes: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """(name, layer) of every Linear/Conv2d inside a module of one of ``classes``, once each."""
    seen: set[str] = set()
    for parent_name, parent in model.named_modules():
        if type(parent).__name__ not in classes:
            continue
        for child_name, child in parent.named_modules():
            if type(child).__name__ not in ("Linear", "Conv2d") or not child_name:
                continue
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            if name not in seen:
                seen.add(name)
                yield name, child


def _shape(layer: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in layer.weight.shape)


def _group(name: str) -> str:
    last = name.rsplit(".", 2)
    if ".attn1." in name or ".attn2." in name:
        return "attn"
    if ".ff." in name:
        return "ff"
    if last[-1] in ("proj_in", "proj_out"):
        return "proj"
    if "samplers." in name:
        return "sampler"
    return "resnet"


def _has_attentions(unet: Any) -> dict[tuple[str, int], bool]:
    """{("down"|"up", block index): whether the block has attentions}."""
    out: dict[tuple[str, int], bool] = {}
    for kind, blocks in (("down", unet.down_blocks), ("up", unet.up_blocks)):
        for index, block in enumerate(blocks):
            out[(kind, index)] = hasattr(block, "attentions")
    return out


_DIFFUSERS_PATH = re.compile(
    r"^(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.*)$"
)
_MID_PATH = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.*)$")


def _sgm_name(name: str, layers_per_block: int, attentions: dict[tuple[str, int], bool]) -> str:
    """A diffusers UNet module path as kohya's SDXL UNet (the original sgm layout) names it.

    The mapping of ``library/sdxl_model_util.py`` ``make_unet_conversion_map``: down block i,
    layer j -> ``input_blocks.{3i+j+1}.{0 resnet | 1 attention}``, its downsampler ->
    ``input_blocks.{3(i+1)}.0.op``; up block i, layer j -> ``output_blocks.{3i+j}.{0|1}``, its
    upsampler -> ``output_blocks.{3i+2}.{2 after an attention, else 1}.conv``; mid block resnet
    k -> ``middle_block.{2k}``, attention -> ``middle_block.1``; resnet layers renamed
    (``conv1`` -> ``in_layers.2`` …).
    """
    per = layers_per_block + 1
    match = _DIFFUSERS_PATH.match(name)
    if match:
        kind, block, part, index, rest = (
            match.group(1),
            int(match.group(2)),
            match.group(3),
            int(match.group(4)),
            match.group(5),
        )
        if part == "resnets":
            rest = _resnet_part(rest)
        if kind == "down_blocks":
            if part == "downsamplers":
                return f"input_blocks.{per * (block + 1)}.0.op"
            return f"input_blocks.{per * block + index + 1}.{0 if part == 'resnets' else 1}.{rest}"
        if part == "upsamplers":
            slot = 2 if attentions[("up", block)] else 1
            return f"output_blocks.{per * block + layers_per_block}.{slot}.{rest}"
        return f"output_blocks.{per * block + index}.{0 if part == 'resnets' else 1}.{rest}"
    match = _MID_PATH.match(name)
    if match:
        part, index, rest = match.group(1), int(match.group(2)), match.group(3)
        if part == "attentions":
            return f"middle_block.1.{rest}"
        return f"middle_block.{2 * index}.{_resnet_part(rest)}"
    raise ValueError(f"no sgm name for UNet module {name!r}")


def _resnet_part(rest: str) -> str:
    return _SGM_RESNET.get(rest, rest)
