"""The LoRA trainer on the tiny random-weight pipeline (64 px, a few steps): files, resume, continue.

What the files mean (a trained concept becomes more present) is tested on the embedded model in
``test_meaning.py``; here the random pipeline keeps each run to a second or two.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from assistant.errors import Cancelled, DatasetError, TrainingError  # noqa: E402
from assistant.library import Library  # noqa: E402
from assistant.train import trainer  # noqa: E402
from assistant.train.options import TrainOptions  # noqa: E402

from .conftest import write_dataset  # noqa: E402

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def tiny_base():
    torch.set_num_threads(1)
    return trainer.load_base("tiny-sd15")


def opts(dataset: Path, out: Path, **changes) -> TrainOptions:
    base = {"dataset": str(dataset), "output": str(out), "base": "tiny-sd15", "resolution": 64,
            "max_steps": 4, "batch_size": 2, "rank": 4, "alpha": 2.0, "seed": 3}  # fmt: skip
    return TrainOptions(**{**base, **changes})


def _image(pipe, seed: int = 0) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    return pipe("catgirl, cat ears", num_inference_steps=2, height=64, width=64, generator=generator,
                output_type="np").images[0]  # fmt: skip


def test_cli_writes_a_kohya_lora_that_diffusers_and_the_library_read(tmp_path: Path, capsys) -> None:
    from assistant.cli import main
    from assistant.engine.tiny import build_tiny_sd15

    data = write_dataset(tmp_path / "img", images=3, repeats=2)
    out = tmp_path / "Lora" / "mascot_test.safetensors"
    code = main(["train-lora", str(data), "--output", str(out), "--base", "tiny-sd15", "--resolution", "64",
                 "--max-steps", "3", "--rank", "4", "--alpha", "2", "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["ok"]
    assert summary["steps"] == 3
    assert summary["path"] == str(out)
    assert "3 images, 6 with repeats" in captured.err
    # kohya layout: lora_unet_* modules with lora_down/lora_up/alpha, fp16, the networks.lora set
    with safe_open(str(out), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
        assert f.get_tensor(keys[0]).dtype == torch.float16
    modules = {k.split(".", 1)[0] for k in keys}
    assert all(m.startswith("lora_unet_") for m in modules)
    assert {k.split(".", 1)[1] for k in keys} == {"lora_down.weight", "lora_up.weight", "alpha"}
    assert any(m.endswith("_attn2_to_k") for m in modules)
    assert any(m.endswith("_ff_net_2") for m in modules)
    assert any(m.endswith("_proj_in") for m in modules)
    assert meta["ss_output_name"] == "mascot_test"
    assert meta["ss_network_dim"] == "4"
    assert meta["ss_network_alpha"] == "2.0"
    assert meta["ss_steps"] == "3"
    assert meta["ss_sd_model_name"] == "tiny-sd15-demo"
    assert json.loads(meta["ss_tag_frequency"])["2_catgirl"]["cat ears"] == 3
    # our library: name, kind and trigger words from the metadata; A1111's hash is the embedded one
    library = Library.scan([str(out.parent)])
    info = library.resolve("mascot_test")
    assert info.status == "ok"
    assert info.base == "sd15"
    assert info.kind == "character"
    assert list(info.triggers) == ["catgirl", "cat ears"]  # 1girl is a generic tag
    hashes = library.hashes(info)
    assert hashes.addnet == meta["sshs_model_hash"]  # the library's own sha256 after the header
    # diffusers: loads it as a named adapter that changes the image; weight 0 gives the base back
    pipe = build_tiny_sd15()
    base = _image(pipe)
    pipe.load_lora_weights(str(out), adapter_name="trained")
    pipe.set_adapters(["trained"], [1.0])
    # a 3-step LoRA is small but not zero (kohya init: lora_up starts at 0 and has moved)
    assert float(np.abs(_image(pipe) - base).max()) > 0
    pipe.set_adapters(["trained"], [0.0])
    assert np.allclose(_image(pipe), base, atol=1e-6)


@pytest.mark.parametrize("stop_at", [3, 4], ids=["epoch-end", "mid-second-epoch"])
def test_resume_continues_bit_for_bit(tmp_path: Path, tiny_base, stop_at: int) -> None:
    data = write_dataset(tmp_path / "img", images=3, repeats=2)  # 3 steps per epoch
    whole = trainer.train_lora(opts(data, tmp_path / "whole", max_steps=6, flip_aug=True), base=tiny_base)
    options = opts(data, tmp_path / "parts", max_steps=6, flip_aug=True, save_every_steps=stop_at)
    stop = threading.Event()
    with pytest.raises(Cancelled, match="no LoRA file was written"):
        trainer.train_lora(
            options, base=tiny_base, callback=lambda e: e.kind == "save" and stop.set(), cancel=stop
        )
    assert not options.output_path.exists()
    assert (tmp_path / f"parts-step{stop_at:08d}.safetensors").is_file()
    resumed = trainer.train_lora(options.replace(resume=str(options.state_dir), save_every_steps=None),
                                 base=tiny_base)  # fmt: skip
    assert resumed.losses == whole.losses[stop_at:]
    a, b = load_file(whole.path), load_file(resumed.path)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_network_weights_starts_from_the_given_lora(tmp_path: Path, tiny_base) -> None:
    data = write_dataset(tmp_path / "img", images=2, repeats=1)
    first = trainer.train_lora(opts(data, tmp_path / "v1", max_steps=3, lr=1e-2), base=tiny_base)
    # lr 0: one step changes nothing, so the output IS the starting LoRA (rank taken from the file)
    same = trainer.train_lora(
        opts(data, tmp_path / "v2", max_steps=1, lr=0.0, rank=16, network_weights=first.path), base=tiny_base
    )
    a, b = load_file(first.path), load_file(same.path)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any("continuing from v1.safetensors" in n and "rank 4" in n for n in same.notes)
    with safe_open(same.path, "pt") as f:
        assert f.metadata()["ss_network_weights"] == "v1.safetensors"
    # a real step from there moves away from v1 (so the check above can fail)
    moved = trainer.train_lora(opts(data, tmp_path / "v3", max_steps=1, lr=1e-2, network_weights=first.path),
                               base=tiny_base)  # fmt: skip
    c = load_file(moved.path)
    assert not all(torch.equal(a[k], c[k]) for k in a if k.endswith("lora_up.weight"))


def test_network_weights_for_another_model_is_refused(tmp_path: Path, tiny_base) -> None:
    from assistant.engine.demo_loras import DemoLora, lora_metadata, lora_tensors, safetensors_bytes

    xl = DemoLora("xl_thing", base="sdxl")
    path = tmp_path / "xl_thing.safetensors"
    path.write_bytes(safetensors_bytes(lora_tensors(xl), lora_metadata(xl)))
    data = write_dataset(tmp_path / "img", images=2, repeats=1)
    with pytest.raises(TrainingError, match="not in this base model"):
        trainer.train_lora(opts(data, tmp_path / "out", network_weights=str(path)), base=tiny_base)


def test_locon_and_text_encoder_layers_load_in_diffusers(tmp_path: Path, tiny_base) -> None:
    from assistant.engine.tiny import build_tiny_sd15

    data = write_dataset(tmp_path / "img", images=2, repeats=1)
    result = trainer.train_lora(
        opts(data, tmp_path / "locon", max_steps=2, conv_dim=2, conv_alpha=1.0, train_text_encoder=True),
        base=tiny_base,
    )
    tensors = load_file(result.path)
    conv = [k for k in tensors if "_resnets_0_conv1.lora_down" in k]
    assert conv
    assert tensors[conv[0]].shape[0] == 2
    assert tensors[conv[0]].dim() == 4
    assert any(k.startswith("lora_te_text_model_encoder_layers_0_self_attn_q_proj") for k in tensors)
    with safe_open(result.path, "pt") as f:
        assert json.loads(f.metadata()["ss_network_args"]) == {"conv_dim": "2", "conv_alpha": "1"}
    pipe = build_tiny_sd15()
    pipe.load_lora_weights(result.path, adapter_name="locon")
    assert set(pipe.get_list_adapters()) == {"unet", "text_encoder"}


def test_bad_dataset_or_settings_fail_before_the_model_loads(tmp_path: Path, monkeypatch) -> None:
    def no_model(_base):
        raise AssertionError("the model must not load for a bad dataset")

    monkeypatch.setattr(trainer, "load_base", no_model)
    (tmp_path / "img" / "catgirl").mkdir(parents=True)
    (tmp_path / "img" / "catgirl" / "a.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="no repeat count"):
        trainer.train_lora(opts(tmp_path / "img", tmp_path / "x"))
    data = write_dataset(tmp_path / "good", images=1, repeats=1)
    with pytest.raises(TrainingError, match="fp16 needs a CUDA GPU"):
        trainer.train_lora(opts(data, tmp_path / "x", mixed_precision="fp16", device="cpu"))
    with pytest.raises(TrainingError, match="adamw8bit needs a CUDA GPU"):
        trainer.train_lora(opts(data, tmp_path / "x", optimizer="adamw8bit", device="cpu"))


def test_a_base_model_that_cannot_load_is_a_clear_error(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "img", images=1, repeats=1)
    with pytest.raises(TrainingError, match="could not be loaded"):
        trainer.train_lora(opts(data, tmp_path / "x", base=str(tmp_path / "no-such-model")))
    with pytest.raises(TrainingError, match="SDXL training is not supported"):
        trainer.train_lora(opts(data, tmp_path / "x", base="tiny-sdxl"))


def test_adapters_are_removed_after_training(tmp_path: Path, tiny_base) -> None:
    data = write_dataset(tmp_path / "img", images=1, repeats=1)
    before = {n for n, _m in tiny_base.unet.named_modules()}
    trainer.train_lora(opts(data, tmp_path / "x", max_steps=1), base=tiny_base)
    assert {n for n, _m in tiny_base.unet.named_modules()} == before
    assert not getattr(tiny_base.unet, "peft_config", None)
