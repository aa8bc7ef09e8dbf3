"""Single-file checkpoints (A1111's ``models/Stable-diffusion/*.safetensors``) loaded offline.

diffusers' ``from_single_file`` needs a diffusers config folder and the tokenizers of the model
family; without ``config=`` it downloads them from the hub, so an offline machine could not load
``v1-5-pruned-emaonly.safetensors``. LoRA Mixer ships them in ``assistant/engine/configs/``:

- ``sd15`` (SD1.x), ``sd2`` (SD2.x 512, epsilon), ``sd2-v`` (SD2.x 768, v-prediction), ``sdxl``
  (SDXL base): ``model_index.json`` and the UNet, VAE, text-encoder and scheduler configs of the
  official releases (tests build each on the meta device and count the parameters of the real
  models: 859,520,964 for the SD1.5 UNet, 2,567,463,684 for SDXL's);
- ``clip``: OpenAI's CLIP BPE vocabulary (``vocab.json`` + ``merges.txt``, derived from
  ``bpe_simple_vocab_16e6.txt.gz``, see :func:`assistant.engine.tokenizer.write_clip_tokenizer_folder`),
  shared by every family: CLIP-L pads with ``<|endoftext|>``, OpenCLIP (SD2, SDXL's second
  encoder) with ``!`` (id 0).

The family is read from the checkpoint's keys (its header only, no tensor is loaded), as diffusers
and A1111 do: SDXL has ``conditioner.embedders.1``; SD2 has 1024-wide cross-attention. Whether a
model predicts noise or velocity is not in its keys: a ``v_pred`` key (ComfyUI / A1111 1.10
convention, with ``ztsnr`` for zero terminal SNR) says v-prediction; for SD2 without one, the UNet
is asked, as A1111's ``is_using_v_parameterization_for_sd2`` does (one UNet call on a constant
input at t=999: v-prediction models answer far below the input).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import GenerationError

log = logging.getLogger(__name__)

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
CLIP_TOKENIZER_DIR = CONFIGS_DIR / "clip"

#: folder -> what the status line calls it
FAMILY_LABELS: dict[str, str] = {
    "sd15": "SD1.x",
    "sd2": "SD2.x",
    "sd2-v": "SD2.x v-prediction",
    "sdxl": "SDXL",
}
#: folder -> the base id the rest of LoRA Mixer uses (LoRA and embedding checks)
FAMILY_BASES: dict[str, str] = {"sd15": "sd15", "sd2": "sd2", "sd2-v": "sd2", "sdxl": "sdxl"}

_KEY_SDXL = "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"
_KEY_SDXL_REFINER = "conditioner.embedders.0.model.text_projection"
_KEY_SD2 = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
_KEY_IN = "model.diffusion_model.input_blocks.0.0.weight"
_KEY_SD1_TEXT = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
_KEY_UNET = "model.diffusion_model."


@dataclass(frozen=True, slots=True)
class CheckpointKind:
    """What a single-file checkpoint is: its config folder and prediction type."""

    folder: str  # sd15 | sd2 | sdxl (sd2-v is decided after loading, see detect_v_prediction)
    v_prediction: bool = False
    zero_snr: bool = False
    v_pred_source: str = ""  # "v_pred key" | "UNet test" | ""

    @property
    def base(self) -> str:
        return FAMILY_BASES[self.folder]

    @property
    def label(self) -> str:
        label = FAMILY_LABELS[self.folder]
        if self.v_prediction and "v-prediction" not in label:
            label += " v-prediction"
        if self.zero_snr:
            label += " (zero terminal SNR)"
        return label


def detect(path: str | Path) -> CheckpointKind:
    """The family of a single-file checkpoint from its header; ``GenerationError`` says what it
    is instead when it is no txt2img SD1.x/SD2.x/SDXL checkpoint."""
    from ..library import read_safetensors_header

    try:
        _length, tensors, _metadata = read_safetensors_header(path)
    except Exception as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise GenerationError(
            f"Could not load model '{path}': not a readable safetensors file ({reason})."
        ) from None
    keys = set(tensors)
    in_channels = (tensors.get(_KEY_IN, {}).get("shape") or [0, 4])[1]
    v_pred = "v_pred" in keys
    zsnr = "ztsnr" in keys
    source = "v_pred key" if v_pred else ""
    if in_channels != 4:
        raise GenerationError(
            f"Could not load model '{path}': it is an inpainting (or other {in_channels}-channel) "
            "checkpoint; LoRA Mixer renders text-to-image with a 4-channel UNet. Use the model's "
            "non-inpainting version."
        )
    if _KEY_SDXL in keys:
        return CheckpointKind("sdxl", v_pred, zsnr, source)
    if _KEY_SDXL_REFINER in keys:
        raise GenerationError(
            f"Could not load model '{path}': it is an SDXL refiner; it only finishes images of an SDXL "
            "base model. Load an SDXL base checkpoint instead."
        )
    open_clip = any(k.startswith("cond_stage_model.model.") for k in keys)  # SD2's OpenCLIP-H
    if open_clip or (_KEY_SD2 in keys and (tensors[_KEY_SD2].get("shape") or [0])[-1] == 1024):
        return CheckpointKind("sd2", v_pred, zsnr, source)
    if _KEY_SD1_TEXT in keys or any(k.startswith(_KEY_UNET) for k in keys):
        return CheckpointKind("sd15", v_pred, zsnr, source)
    sample = ", ".join(sorted(keys)[:3])
    raise GenerationError(
        f"Could not load model '{path}': not a Stable Diffusion checkpoint in A1111's layout (no "
        f"'model.diffusion_model.' keys; it starts with {sample}). A LoRA, VAE or embedding belongs in "
        "its own folder; a diffusers model is a folder with model_index.json."
    )


def clip_tokenizer(pad: str = "<|endoftext|>") -> Any:
    """CLIP's tokenizer from the shipped vocabulary; ``pad="!"`` is OpenCLIP's convention (id 0)."""
    from transformers import CLIPTokenizer

    if pad == "<|endoftext|>":
        return CLIPTokenizer.from_pretrained(str(CLIP_TOKENIZER_DIR))
    return CLIPTokenizer.from_pretrained(str(CLIP_TOKENIZER_DIR), pad_token=pad)


def tokenizers_for(folder: str) -> dict[str, Any]:
    """The tokenizer keyword arguments ``from_single_file`` takes for a family."""
    if folder == "sdxl":
        return {"tokenizer": clip_tokenizer(), "tokenizer_2": clip_tokenizer("!")}
    if folder.startswith("sd2"):
        return {"tokenizer": clip_tokenizer("!")}
    return {"tokenizer": clip_tokenizer()}


def load_single_file(
    path: str | Path, dtype: torch.dtype, configs: str | Path | None = None
) -> tuple[Any, CheckpointKind, float]:
    """(pipeline on the CPU, kind, seconds): the checkpoint with the shipped configs (or the
    family folders under ``configs``), no network."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    started = time.perf_counter()
    kind = detect(path)
    cls = StableDiffusionXLPipeline if kind.folder == "sdxl" else StableDiffusionPipeline
    pipe = cls.from_single_file(
        str(path),
        config=str(Path(configs or CONFIGS_DIR) / kind.folder),
        torch_dtype=dtype,
        local_files_only=True,
        **tokenizers_for(kind.folder),
    )
    if kind.folder == "sd2" and not kind.v_prediction and uses_v_prediction(pipe.unet):
        kind = CheckpointKind("sd2-v", True, kind.zero_snr, "UNet test")
    elif kind.folder == "sd2" and kind.v_prediction:
        kind = CheckpointKind("sd2-v", True, kind.zero_snr, kind.v_pred_source)
    if kind.v_prediction or kind.zero_snr:
        pipe.scheduler = scheduler_for(pipe.scheduler, kind)
    if kind.folder == "sd2-v":
        pipe.unet.register_to_config(sample_size=96)
    return pipe, kind, time.perf_counter() - started


def scheduler_for(scheduler: Any, kind: CheckpointKind) -> Any:
    """The scheduler with the checkpoint's prediction type (and zero-SNR betas when marked)."""
    # private keys out: "_use_default_values" would reset the values set here to the defaults
    config = {k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}
    if kind.v_prediction:
        config["prediction_type"] = "v_prediction"
    if kind.zero_snr:
        config["rescale_betas_zero_snr"] = True
        config["timestep_spacing"] = "trailing"
    return type(scheduler).from_config(config)


@torch.no_grad()
def uses_v_prediction(unet: Any) -> bool:
    """A1111's ``is_using_v_parameterization_for_sd2``: the UNet's answer to a constant input at
    t=999; an epsilon model returns about the input (noise), a v-prediction model far less."""
    param = next(unet.parameters())
    cond_dim = int(unet.config.cross_attention_dim)
    x = torch.ones((1, 4, 8, 8), device=param.device, dtype=param.dtype) * 0.5
    cond = torch.ones((1, 2, cond_dim), device=param.device, dtype=param.dtype) * 0.5
    t = torch.tensor([999], device=param.device)
    out = unet(x, t, encoder_hidden_states=cond).sample
    return bool((out - x).float().mean().item() < -1)


def family_of(pipe: Any) -> str:
    """The family label of a loaded pipeline (for the status line)."""
    label = getattr(pipe, "_lora_mixer_family", "")
    if label:
        return str(label)
    if getattr(pipe, "text_encoder_2", None) is not None:
        return "SDXL"
    hidden = getattr(getattr(pipe.text_encoder, "config", None), "hidden_size", 768)
    prediction = getattr(pipe.scheduler.config, "prediction_type", "epsilon")
    label = "SD2.x" if hidden == 1024 else "SD1.x"
    return label + (" v-prediction" if prediction == "v_prediction" else "")


def error_reason(exc: BaseException) -> str:
    """An exception as one readable reason, never cut mid-sentence: its message up to the first
    blank line (diffusers puts key dumps after one), whole, with its type."""
    text = str(exc).strip()
    paragraph = text.split("\n\n", 1)[0].strip()
    lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
    message = " ".join(lines)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
