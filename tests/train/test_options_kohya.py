"""Trainer settings (checked all at once) and kohya's naming, metadata and hashes."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from assistant.errors import TrainingError
from assistant.train import kohya
from assistant.train.dataset import read_dataset
from assistant.train.options import TrainOptions

from .conftest import write_dataset


def test_defaults_are_valid_and_names_follow_the_output(tmp_path: Path) -> None:
    options = TrainOptions(dataset="img", output=str(tmp_path / "catgirl_v1"))
    assert options.check() == []
    assert options.output_name == "catgirl_v1"
    assert options.output_path == tmp_path / "catgirl_v1.safetensors"
    assert options.state_dir == tmp_path / ".catgirl_v1-state"  # hidden: no LoRA scan sees it


def test_every_bad_setting_is_reported(tmp_path: Path) -> None:
    options = TrainOptions(
        dataset="img", output=str(tmp_path / "bad:name.safetensors"), rank=0, alpha=0, lr=-1, batch_size=0,
        epochs=3, max_steps=10, resolution=100, optimizer="sgd", scheduler="cosine_annealing",
        mixed_precision="fp8", sample_every=5, network_weights=str(tmp_path / "missing.safetensors"),
        resume=str(tmp_path), conv_dim=0,
    )  # fmt: skip
    problems = options.check()
    text = "\n".join(problems)
    for expected in (
        "--rank 0", "--alpha 0", "--lr -1", "--batch-size 0", "--epochs or --max-steps, not both",
        "--resolution 100", "--optimizer sgd: valid: adamw, adamw8bit, adafactor, prodigy",
        "--scheduler cosine_annealing", "--mixed-precision fp8", "--sample-every needs --sample-prompts",
        "--network-weights", "no such file", "--resume", "train_state.json", "cannot contain ':'",
        "--conv-dim 0",
    ):  # fmt: skip
        assert expected in text, expected
    with pytest.raises(TrainingError, match="Training settings are not valid"):
        options.checked()


def test_kohya_module_names() -> None:
    name = kohya.kohya_module_name("unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0")
    assert name == "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_out_0"
    # transformers 5 has no text_model level; every real SD LoRA names it anyway
    assert kohya.kohya_module_name("text_encoder", "encoder.layers.0.self_attn.q_proj") == (
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    )
    assert kohya.kohya_module_name("text_encoder", "text_model.encoder.layers.0.mlp.fc1") == (
        "lora_te_text_model_encoder_layers_0_mlp_fc1"
    )
    assert kohya.split_key("lora_unet_x_to_q.lora_down.weight") == ("lora_unet_x_to_q", "lora_down.weight")
    with pytest.raises(ValueError, match="unknown component"):
        kohya.kohya_module_name("vae", "x")


def test_addnet_hashes_are_sd_scripts_definition() -> None:
    header = json.dumps({"__metadata__": {"ss_x": "1"}}).encode()
    body = bytes(range(256)) * 5000  # > 1 MiB, so the legacy window has data
    data = struct.pack("<Q", len(header)) + header + body
    model_hash, legacy = kohya.addnet_hashes(data)
    assert model_hash == hashlib.sha256(body).hexdigest()
    assert legacy == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def test_training_metadata_has_sd_scripts_keys_and_formats(tmp_path: Path) -> None:
    dataset = read_dataset(write_dataset(tmp_path / "img", images=3, repeats=5))
    options = TrainOptions(
        dataset=str(tmp_path / "img"), output=str(tmp_path / "cat.safetensors"), conv_dim=4
    )
    meta = kohya.training_metadata(
        options=options, dataset=dataset, base="sd15", model_name="v1-5-pruned-emaonly.safetensors",
        resolution=(512, 512), num_batches_per_epoch=8, num_epochs=10, max_train_steps=80, session_id=7,
        started_at=1.5, optimizer_name="torch.optim.adamw.AdamW", total_batch_size=2,
    )  # fmt: skip
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["ss_network_module"] == "networks.lora"
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("16", "8.0")
    assert meta["ss_base_model_version"] == "sd_v1"
    assert meta["ss_v2"] == "False"
    assert meta["ss_resolution"] == "(512, 512)"
    assert meta["ss_num_train_images"] == "15"
    assert meta["ss_output_name"] == "cat"
    assert meta["ss_text_encoder_lr"] == "None"  # the text encoder is not trained
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "4", "conv_alpha": "1"}
    assert json.loads(meta["ss_tag_frequency"])["5_catgirl"]["catgirl"] == 3
    assert json.loads(meta["ss_dataset_dirs"]) == {"5_catgirl": {"n_repeats": 5, "img_count": 3}}
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert meta["modelspec.trigger_phrase"] == "catgirl, cat ears"  # in every caption; 1girl is generic
    none = kohya.training_metadata(
        options=options.replace(trigger_phrase=""), dataset=dataset, base="sd15", model_name="m",
        resolution=(512, 512), num_batches_per_epoch=8, num_epochs=10, max_train_steps=80, session_id=7,
        started_at=1.5, optimizer_name="x", total_batch_size=2,
    )  # fmt: skip
    assert "modelspec.trigger_phrase" not in none
    saved = kohya.saved_metadata(meta, steps=80, epoch=10)
    assert (saved["ss_steps"], saved["ss_epoch"]) == ("80", "10")
    assert float(saved["ss_training_finished_at"]) > 0
