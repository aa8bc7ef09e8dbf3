"""Which pipeline layer a LoRA key names, in every spelling trainers use, and its lbw block.

A LoRA file names layers by key stems (see :mod:`assistant.layouts`). Four spellings are in use:

- kohya / LyCORIS on SD1.x and SD2: ``lora_unet_`` + the diffusers module path with ``_``
  (``lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q``);
- kohya / LyCORIS on SDXL: ``lora_unet_`` + the original (sgm / "compvis") UNet path
  (``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``), the names kohya's
  ``library/sdxl_model_util.py`` converts to; A1111 accepts both spellings on every base, so do we;
- text encoders: ``lora_te_`` (SD1.x/SD2), ``lora_te1_``/``lora_te2_`` (SDXL) + ``text_model_`` +
  the transformers module path (transformers 5's ``CLIPTextModel`` has no ``text_model`` level,
  so the map is built with and without it);
- diffusers/PEFT: ``unet.`` / ``text_encoder.`` / ``text_encoder_2.`` + the dotted module path.

:class:`KeyMap` is built once per pipeline from its module tree (before any adapter wraps a
layer; paths do not change when PEFT or :mod:`assistant.engine.lycoris` wrap one) and covers every
``Linear``, ``Conv2d``, ``LayerNorm`` and ``GroupNorm`` of the UNet and the text encoders — more
than kohya targets, because LyCORIS' "full" presets also patch norms, ``conv_in``, ``time_embed``.

It also gives each layer its block in sd-webui-lora-block-weight's terms
(:mod:`assistant.lbw`): the sgm block index (``IN00``–``IN11``, ``M00``, ``OUT00``–``OUT11``; text
encoders are ``BASE``), found exactly as the extension finds it, by the substring
``input_blocks_N_`` / ``middle_block_`` / ``output_blocks_N_`` of the sgm name. Layers outside
those blocks (``time_embed``, ``out``, ``label_emb``) have none: the extension leaves them at 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["KeyMap", "Layer", "sgm_name"]

#: diffusers resnet layer -> sgm (kohya ``sdxl_model_util.py`` ``unet_conversion_map_resnet``)
_SGM_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
#: top-level diffusers modules -> sgm (``unet_conversion_map``)
_SGM_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}
_BLOCK_PATH = re.compile(
    r"^(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)(?:\.(.*))?$"
)
_MID_PATH = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)(?:\.(.*))?$")
_SGM_BLOCK = re.compile(r"^(input_blocks|output_blocks)\.(\d+)\.|^(middle_block)\.")
_PROCESSOR = re.compile(r"^(.*\.attn\d)\.(to_q|to_k|to_v|to_out)(?:\.0)?$")
_TEXT_COMPONENTS = ("text_encoder", "text_encoder_2")
_LAYER_TYPES = ("Linear", "Conv2d", "LayerNorm", "GroupNorm")


def sgm_name(path: str, layers_per_block: int, up_attentions: dict[int, bool]) -> str | None:
    """A diffusers UNet module path as the original (sgm) UNet names it, or None.

    The mapping of kohya's ``make_unet_conversion_map``: down block i, layer j ->
    ``input_blocks.{(l+1)i+j+1}.{0 resnet | 1 attention}``, its downsampler ->
    ``input_blocks.{(l+1)(i+1)}.0.op``; up block i, layer j -> ``output_blocks.{(l+1)i+j}.{0|1}``,
    its upsampler -> ``output_blocks.{(l+1)i+l}.{2 after an attention, else 1}``; mid block resnet k
    -> ``middle_block.{2k}``, attention -> ``middle_block.1`` (l = layers per block: 2 for SD1.x/SDXL).
    """
    if path in _SGM_TOP:
        return _SGM_TOP[path]
    per = layers_per_block + 1
    match = _BLOCK_PATH.match(path)
    if match:
        kind, block, part, index = match.group(1), int(match.group(2)), match.group(3), int(match.group(4))
        rest = match.group(5) or ""
        if part == "resnets":
            head, _, tail = rest.partition(".")
            rest = _SGM_RESNET.get(head, head) + (f".{tail}" if tail else "")
        if kind == "down_blocks":
            if part == "downsamplers":
                rest = "op" if rest == "conv" else rest
                return f"input_blocks.{per * (block + 1)}.0.{rest}".rstrip(".")
            slot = 0 if part == "resnets" else 1
            return f"input_blocks.{per * block + index + 1}.{slot}.{rest}".rstrip(".")
        if part == "upsamplers":
            slot = 2 if up_attentions.get(block, False) else 1
            return f"output_blocks.{per * block + layers_per_block}.{slot}.{rest}".rstrip(".")
        slot = 0 if part == "resnets" else 1
        return f"output_blocks.{per * block + index}.{slot}.{rest}".rstrip(".")
    match = _MID_PATH.match(path)
    if match:
        part, index, rest = match.group(1), int(match.group(2)), match.group(3) or ""
        if part == "attentions":
            return f"middle_block.1.{rest}".rstrip(".")
        head, _, tail = rest.partition(".")
        rest = _SGM_RESNET.get(head, head) + (f".{tail}" if tail else "")
        return f"middle_block.{2 * index}.{rest}".rstrip(".")
    return None


def _block_of(sgm: str | None) -> str:
    """``IN04``, ``M00``, ``OUT11`` … of an sgm path ("" for layers in no block)."""
    if not sgm:
        return ""
    match = _SGM_BLOCK.match(sgm)
    if match is None:
        return ""
    if match.group(3):
        return "M00"
    return ("IN" if match.group(1) == "input_blocks" else "OUT") + f"{int(match.group(2)):02d}"


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer a LoRA key can name: component, module path, layer type, lbw block."""

    component: str
    path: str  # module path inside the component (as named_modules gives it on the bare model)
    kind: str  # Linear | Conv2d | LayerNorm | GroupNorm
    block: str  # BASE (text encoders), IN00…IN11, M00, OUT00…OUT11, or "" (none)


class KeyMap:
    """Key stem -> :class:`Layer` for one pipeline (every spelling; see the module docstring)."""

    def __init__(self, pipe: Any) -> None:
        self.layers: dict[str, Layer] = {}  # stem -> layer
        self.by_path: dict[tuple[str, str], Layer] = {}
        unet = getattr(pipe, "unet", None)
        if unet is not None:
            self._add_unet(unet)
        xl = getattr(pipe, "text_encoder_2", None) is not None
        for component in _TEXT_COMPONENTS:
            model = getattr(pipe, component, None)
            if model is not None:
                self._add_text(component, model, xl=xl)

    def __len__(self) -> int:
        return len(self.by_path)

    def find(self, stem: str) -> Layer | None:
        """The layer a key stem names, or None."""
        return self.layers.get(stem)

    def block(self, component: str, path: str) -> str:
        """The lbw block of a module (``BASE`` for text encoders, "" when in no block)."""
        layer = self.by_path.get((component, path))
        if layer is not None:
            return layer.block
        return "BASE" if component in _TEXT_COMPONENTS else ""

    def _add(self, stems: list[str], layer: Layer) -> None:
        self.by_path[(layer.component, layer.path)] = layer
        for stem in stems:
            self.layers.setdefault(stem, layer)

    def _add_unet(self, unet: Any) -> None:
        config = getattr(unet, "config", None)
        per_block = int(getattr(config, "layers_per_block", 2) or 2)
        if isinstance(getattr(config, "layers_per_block", 2), (list, tuple)):
            per_block = 2
        blocks = getattr(unet, "up_blocks", [])
        up_attentions = {i: hasattr(block, "attentions") for i, block in enumerate(blocks)}
        for path, module in _layers(unet):
            sgm = sgm_name(path, per_block, up_attentions)
            stems = ["lora_unet_" + path.replace(".", "_"), f"unet.{path}"]
            processor = _PROCESSOR.match(path)
            if processor:  # diffusers' attention-processor layout: ….attn1.processor.to_q_lora
                stems.append(f"unet.{processor.group(1)}.processor.{processor.group(2)}")
            if sgm:
                stems.append("lora_unet_" + sgm.replace(".", "_"))
            self._add(stems, Layer("unet", path, type(module).__name__, _block_of(sgm)))

    def _add_text(self, component: str, model: Any, *, xl: bool) -> None:
        if component == "text_encoder_2":
            prefixes = ["lora_te2_"]
        else:
            prefixes = ["lora_te1_", "lora_te_"] if xl else ["lora_te_", "lora_te1_"]
        dotted = f"{component}."
        for path, module in _layers(model):
            inner = path.removeprefix("text_model.")
            with_level = "text_model." + inner
            stems = [p + with_level.replace(".", "_") for p in prefixes]
            stems += [p + inner.replace(".", "_") for p in prefixes]
            stems += [dotted + with_level, dotted + inner]
            self._add(stems, Layer(component, path, type(module).__name__, "BASE"))


def _layers(model: Any) -> list[tuple[str, Any]]:
    """(path, base module) of every Linear/Conv2d/LayerNorm/GroupNorm, skipping adapter internals."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    out: list[tuple[str, Any]] = []
    skip = "\0"  # named_modules walks depth first: an adapter layer's insides follow it
    for path, module in model.named_modules():
        if path.startswith(skip):
            continue
        if isinstance(module, BaseTunerLayer):
            skip = path + "."
            base = module.get_base_layer()
            if type(base).__name__ in _LAYER_TYPES:
                out.append((path, base))
            continue
        if type(module).__name__ in _LAYER_TYPES:
            out.append((path, module))
    return out
