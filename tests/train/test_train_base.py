"""``tools/train_base.py --init-from``: continuing the embedded model keeps its VAE and tokenizer
byte for byte (so its latent scaling factor stays valid) and trains its UNet further."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from assistant.engine import embedded

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _tool():
    spec = importlib.util.spec_from_file_location("train_base_tool", ROOT / "tools" / "train_base.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_init_from_keeps_the_vae_and_tokenizer_and_trains_the_unet(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    if not embedded.available():
        pytest.skip("the embedded model is not in this checkout")
    source = embedded.EMBEDDED_DIR
    out = tmp_path / "out"
    code = _tool().main([
        "--init-from", str(source), "--work", str(tmp_path / "work"), "--out", str(out),
        "--images", "8", "--unet-steps", "2", "--batch", "2", "--warmup", "1", "--lr", "1e-3",
        "--ema", "0", "--preview-every", "0", "--threads", "1",
    ])  # fmt: skip
    assert code == 0
    for part in ("vae", "tokenizer"):
        assert _files(out / part) == _files(source / part), part
    before = load_file(source / "unet" / "diffusion_pytorch_model.safetensors")
    after = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "two steps at lr 1e-3 changed no UNet weight"
    drift = max(float((before[k].float() - after[k].float()).abs().max()) for k in before)
    assert drift < 0.05, drift  # continued from the shipped weights, not from a fresh init
