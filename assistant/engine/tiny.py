"""The tiny demo pipelines: real Stable Diffusion architectures with seeded random weights.

Used when no base model is configured or the configured one cannot be reached offline, and by
every engine test. The components follow diffusers' own ``get_dummy_components()`` test
fixtures, scaled so that a 256x256 image takes about a second on a laptop CPU:

- SD1.x: ``UNet2DConditionModel`` (``block_out_channels=(32, 64)``, cross-attention 32, a plain
  down block then a cross-attention block, mid-block attention), an ``AutoencoderKL`` with four
  blocks (so the latent is 1/8 of the image, as in real SD), a 2-layer ``CLIPTextModel``
  (hidden 32) and a CLIP tokenizer built from :mod:`assistant.engine.tokenizer`.
- SDXL: the same shape with SDXL's extras — two text encoders (``CLIPTextModel`` and
  ``CLIPTextModelWithProjection``), ``addition_embed_type="text_time"``, linear projections,
  cross-attention 64 (= 32 + 32).

Images are noise (the weights are random) but every code path — LoRA loading, adapters,
A1111 prompt encoding, schedulers, NaN checks — is the real one. Builds in well under two seconds and is
bit-for-bit deterministic on CPU.
"""

from __future__ import annotations

import tempfile
from typing import Any

import torch

from .tokenizer import BOS, EOS, MODEL_MAX_LENGTH, VOCAB_SIZE, write_tokenizer_folder

#: Image size the demo model is used at unless a request says otherwise (seconds, not minutes, on CPU).
TINY_DEFAULT_SIZE = 256
TINY_MODEL_NAME = "tiny-sd15-demo"
TINY_XL_MODEL_NAME = "tiny-sdxl-demo"
TINY_BANNER = (
    "Demo model: images are noise — configure a real model (LORA_MIXER_MODEL or --model) to get pictures."
)

#: Scheduler settings of the SD1.5 / SDXL releases (the samplers are derived from this config).
SD_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}

_TEXT_HIDDEN = 32


def _tokenizer() -> Any:
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="lora-mixer-tok-") as folder:
        write_tokenizer_folder(folder)
        return CLIPTokenizer.from_pretrained(folder)


def _text_config(tokenizer: Any, **extra: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids(BOS),
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS),
        pad_token_id=tokenizer.convert_tokens_to_ids(EOS),
        hidden_size=_TEXT_HIDDEN,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=MODEL_MAX_LENGTH,
        hidden_act="gelu",
        **extra,
    )


def _text_encoder(cls: Any, config: Any, seed: int) -> Any:
    """A text encoder with seeded weights; the final layer norm gets a small seeded bias, as
    trained CLIP models have, so the output's mean is not exactly 0 (A1111's emphasis divides by it)."""
    torch.manual_seed(seed)
    model = cls(config)
    norm = getattr(model, "text_model", model).final_layer_norm
    with torch.no_grad():
        norm.bias.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(seed + 100))
    return model


def _vae() -> Any:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=(8, 16, 32, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=256,
    )


def _scheduler() -> Any:
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler.from_config(SD_SCHEDULER_CONFIG)


def _finish(pipe: Any, device: str, dtype: torch.dtype) -> Any:
    pipe.set_progress_bar_config(disable=True)
    if torch.device(device).type == "cpu" and dtype == torch.float32:
        return pipe  # already there; .to() would only log a dtype warning
    return pipe.to(device=device, dtype=dtype)


def build_tiny_sd15(device: str = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    """A ``StableDiffusionPipeline`` with the tiny SD1.x components (seed 0 for every part)."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=_TEXT_HIDDEN,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    tokenizer = _tokenizer()
    text_encoder = _text_encoder(CLIPTextModel, _text_config(tokenizer), 0)
    pipe = StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return _finish(pipe, device, dtype)


def build_tiny_sdxl(device: str = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    """A ``StableDiffusionXLPipeline`` with two tiny text encoders (``lora_te1_``/``lora_te2_``)."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + _TEXT_HIDDEN,
        cross_attention_dim=2 * _TEXT_HIDDEN,
        norm_num_groups=8,
    )
    tokenizer = _tokenizer()
    text_encoder = _text_encoder(CLIPTextModel, _text_config(tokenizer), 0)
    text_encoder_2 = _text_encoder(
        CLIPTextModelWithProjection, _text_config(tokenizer, projection_dim=_TEXT_HIDDEN), 1
    )
    pipe = StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        force_zeros_for_empty_prompt=False,
    )
    return _finish(pipe, device, dtype)
