"""kohya-ss's LoRA file layout: key names, metadata and the precomputed hashes. Pure Python.

A kohya LoRA names each patched module by its path in the model with dots turned into
underscores, behind a prefix per component, and stores three tensors per module::

    lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight  # [r, in]
    lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight    # [out, r]
    lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha             # scalar
    lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight                  # text encoder

(PEFT's ``lora_A``/``lora_B`` are kohya's ``lora_down``/``lora_up``.) The text-encoder path keeps
``text_model.`` even though transformers 5's ``CLIPTextModel`` has no such level: every real SD
LoRA is written that way and every loader expects it.

The header carries sd-scripts' ``ss_*`` training metadata (all values strings, as
``train_network.py`` writes them: ``str(value)``, so booleans are ``"True"``/``"False"`` and
unset values ``"None"``), a ModelSpec block, and ``sshs_model_hash``/``sshs_legacy_hash``, the
hashes sd-webui-additional-networks and A1111 show (computed like sd-scripts'
``precalculate_safetensors_hashes``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from .dataset import Dataset

PREFIXES = {"unet": "lora_unet_", "text_encoder": "lora_te_", "text_encoder_2": "lora_te2_"}
#: sd-scripts' module type for plain LoRA and LoCon (conv layers included via conv_dim).
NETWORK_MODULE = "networks.lora"
BASE_VERSIONS = {"sd15": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
MODELSPEC_ARCH = {
    "sd15": "stable-diffusion-v1",
    "sd2": "stable-diffusion-v2-512",
    "sdxl": "stable-diffusion-xl-v1-base",
}


def kohya_module_name(component: str, module_path: str) -> str:
    """``("unet", "down_blocks.0.attentions.0.proj_in")`` →
    ``"lora_unet_down_blocks_0_attentions_0_proj_in"``."""
    if component not in PREFIXES:
        raise ValueError(f"unknown component {component!r}; valid: {', '.join(PREFIXES)}")
    path = module_path
    if component.startswith("text_encoder") and not path.startswith("text_model."):
        path = "text_model." + path
    return PREFIXES[component] + path.replace(".", "_")


def module_index(component: str, module_paths: list[str]) -> dict[str, str]:
    """kohya module name → module path, for every module of a component.

    Built from the model's own names (not by turning ``_`` back into ``.``, which is ambiguous:
    ``to_q`` vs ``to.q``).
    """
    return {kohya_module_name(component, path): path for path in module_paths}


def split_key(key: str) -> tuple[str, str]:
    """``"lora_unet_x.lora_down.weight"`` → ``("lora_unet_x", "lora_down.weight")``."""
    module, _, rest = key.partition(".")
    return module, rest


def addnet_hashes(data: bytes) -> tuple[str, str]:
    """(``sshs_model_hash``, ``sshs_legacy_hash``) of a serialised safetensors file.

    The model hash is the sha256 of everything after the header (A1111 shows its first 12 hex
    digits as the LoRA hash); the legacy hash is the sha256 of the 64 KiB at offset 1 MiB, first 8.
    """
    header_len = int.from_bytes(data[:8], "little")
    model_hash = hashlib.sha256(data[8 + header_len :]).hexdigest()
    legacy_hash = hashlib.sha256(data[0x100000 : 0x100000 + 0x10000]).hexdigest()[:8]
    return model_hash, legacy_hash


def _s(value: Any) -> str:
    """sd-scripts' ``str(value)`` (numbers as Python prints them, None as "None")."""
    return str(value)


def training_metadata(
    *,
    options: Any,
    dataset: Dataset,
    base: str,
    model_name: str,
    resolution: tuple[int, int],
    num_batches_per_epoch: int,
    num_epochs: int,
    max_train_steps: int,
    session_id: int,
    started_at: float,
    optimizer_name: str,
    total_batch_size: int,
    model_hash: str | None = None,
) -> dict[str, str]:
    """The ``ss_*`` header of a LoRA written by sd-scripts' ``train_network.py`` (DreamBooth-style
    dataset, no regularisation images), for ``options`` (:class:`~assistant.train.options.TrainOptions`).

    ``ss_steps``/``ss_epoch``/``ss_training_finished_at`` are added when the file is saved.
    """
    network_args: dict[str, str] = {}
    if options.conv_dim:
        network_args = {"conv_dim": str(options.conv_dim), "conv_alpha": f"{options.conv_alpha:g}"}
    metadata: dict[str, Any] = {
        "ss_session_id": session_id,
        "ss_training_started_at": started_at,
        "ss_output_name": options.output_name,
        "ss_learning_rate": options.lr,
        "ss_text_encoder_lr": options.text_encoder_lr if options.train_text_encoder else None,
        "ss_unet_lr": options.unet_lr,
        "ss_num_train_images": dataset.num_train_images,
        "ss_num_reg_images": 0,
        "ss_num_batches_per_epoch": num_batches_per_epoch,
        "ss_num_epochs": num_epochs,
        "ss_gradient_checkpointing": bool(options.gradient_checkpointing),
        "ss_gradient_accumulation_steps": options.gradient_accumulation_steps,
        "ss_max_train_steps": max_train_steps,
        "ss_lr_warmup_steps": options.lr_warmup_steps,
        "ss_lr_scheduler": options.scheduler,
        "ss_network_module": NETWORK_MODULE,
        "ss_network_dim": options.rank,
        "ss_network_alpha": options.alpha,
        "ss_network_dropout": None,
        "ss_mixed_precision": options.mixed_precision,
        "ss_full_fp16": False,
        "ss_v2": base == "sd2",
        "ss_base_model_version": BASE_VERSIONS.get(base, "sd_v1"),
        "ss_clip_skip": None,
        "ss_max_token_length": None,
        "ss_cache_latents": bool(options.cache_latents),
        "ss_seed": options.seed,
        "ss_lowram": False,
        "ss_noise_offset": options.noise_offset or None,
        "ss_multires_noise_iterations": None,
        "ss_multires_noise_discount": 0.3,
        "ss_adaptive_noise_scale": None,
        "ss_zero_terminal_snr": False,
        "ss_training_comment": options.training_comment,
        "ss_sd_scripts_commit_hash": "(LoRA Mixer trainer)",
        "ss_optimizer": optimizer_name,
        "ss_max_grad_norm": options.max_grad_norm,
        "ss_caption_dropout_rate": 0.0,
        "ss_caption_dropout_every_n_epochs": 0,
        "ss_caption_tag_dropout_rate": 0.0,
        "ss_face_crop_aug_range": None,
        "ss_prior_loss_weight": 1.0,
        "ss_min_snr_gamma": options.min_snr_gamma,
        "ss_scale_weight_norms": None,
        "ss_ip_noise_gamma": None,
        "ss_debiased_estimation": False,
        "ss_loss_type": "l2",
        "ss_batch_size_per_device": options.batch_size,
        "ss_total_batch_size": total_batch_size,
        "ss_resolution": resolution,
        "ss_color_aug": False,
        "ss_flip_aug": bool(options.flip_aug),
        "ss_random_crop": False,
        "ss_shuffle_caption": False,
        "ss_enable_bucket": False,
        "ss_bucket_no_upscale": False,
        "ss_min_bucket_reso": None,
        "ss_max_bucket_reso": None,
        "ss_keep_tokens": 0,
        "ss_dataset_dirs": json.dumps(dataset.dataset_dirs()),
        "ss_reg_dataset_dirs": json.dumps({}),
        "ss_tag_frequency": json.dumps(dataset.tag_frequency()),
        "ss_bucket_info": json.dumps(None),
        "ss_sd_model_name": model_name,
    }
    if network_args:
        metadata["ss_network_args"] = json.dumps(network_args)
    if options.network_weights:
        metadata["ss_network_weights"] = options.network_weights.rsplit("/", 1)[-1]
    if model_hash:
        metadata["ss_new_sd_model_hash"] = model_hash
    out = {k: _s(v) for k, v in metadata.items()}
    out.update(modelspec(options.output_name, base, resolution, started_at))
    phrase = options.trigger_phrase
    if phrase is None:
        phrase = ", ".join(dataset.trigger_words())
    if phrase.strip():
        out["modelspec.trigger_phrase"] = phrase.strip()
    return out


def modelspec(title: str, base: str, resolution: tuple[int, int], created: float) -> dict[str, str]:
    """The Stability AI ModelSpec block sd-scripts adds to a LoRA (SD1.x/2.x: diffusers implementation)."""
    return {
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": f"{MODELSPEC_ARCH.get(base, MODELSPEC_ARCH['sd15'])}/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": title,
        "modelspec.resolution": f"{resolution[0]}x{resolution[1]}",
        "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(created)),
        "modelspec.prediction_type": "epsilon",
    }


def saved_metadata(metadata: Mapping[str, str], *, steps: int, epoch: int) -> dict[str, str]:
    """The header for one save: the run's metadata plus ``ss_steps``, ``ss_epoch``, finish time."""
    out = dict(metadata)
    out["ss_training_finished_at"] = str(time.time())
    out["ss_steps"] = str(steps)
    out["ss_epoch"] = str(epoch)
    return out
