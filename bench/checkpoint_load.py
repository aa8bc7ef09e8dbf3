"""Single-file checkpoint load time, offline, per family: full-size random checkpoints in A1111's layout.

    python bench/checkpoint_load.py [--families sd15,sd2] [--dtype fp16] [--sdxl]

Writes a full-size checkpoint of random weights (fp16, the size users download: 2.1 GB for SD1.5,
2.6 GB for SD2.x, 6.9 GB for SDXL with ``--sdxl``) in the original LDM key layout
(tests/engine/ldm.py), then times ``assistant.engine.checkpoints.load_single_file`` with the shipped
configs, network refused. Also times diffusers' own ``from_single_file`` WITHOUT ``config=`` for
comparison: offline it fails (the issue's bug) — printed with its error. The files are deleted.
"""

from __future__ import annotations

import argparse
import gc
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _random_checkpoint(folder: str, path: Path) -> int:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from assistant.engine.checkpoints import CONFIGS_DIR
    from tests.engine.ldm import clip_to_ldm, openclip_to_ldm, unet_to_ldm, vae_to_ldm

    root = CONFIGS_DIR / folder
    generator = torch.Generator().manual_seed(0)

    def random(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {
            k: torch.randn(v.shape, generator=generator, dtype=torch.float16)
            for k, v in model.state_dict().items()
        }

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))
        text_2 = (
            CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(root / "text_encoder_2"))
            if folder == "sdxl"
            else None
        )
    state = unet_to_ldm(random(unet), dict(unet.config)) | vae_to_ldm(random(vae), 4)
    if folder == "sdxl":
        state |= clip_to_ldm(random(text), "conditioner.embedders.0.transformer.")
        state |= openclip_to_ldm(random(text_2), "conditioner.embedders.1.model.")
    elif folder == "sd2":
        state |= openclip_to_ldm(random(text), "cond_stage_model.model.", extra_layer=True)
    else:
        state |= clip_to_ldm(random(text), "cond_stage_model.transformer.")
    state = {k: v.to(torch.float16).contiguous() for k, v in state.items()}
    count = sum(v.numel() for v in state.values())
    save_file(state, str(path))
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="sd15,sd2")
    parser.add_argument("--sdxl", action="store_true", help="also SDXL (a 6.9 GB file, ~14 GB of RAM)")
    parser.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16")
    args = parser.parse_args()
    import diffusers
    from diffusers import StableDiffusionPipeline

    from assistant.engine.checkpoints import load_single_file

    diffusers.utils.logging.set_verbosity_error()
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    families = [f for f in args.families.split(",") if f] + (["sdxl"] if args.sdxl else [])

    def refuse(*_a: object, **_k: object) -> None:
        raise OSError("network refused by the benchmark")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    print(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"load dtype {args.dtype}, network refused"
    )
    with tempfile.TemporaryDirectory(
        prefix="ckpt-bench-", dir=ROOT / ".cache" if (ROOT / ".cache").is_dir() else None
    ) as tmp:
        for folder in families:
            path = Path(tmp) / f"{folder}-random.safetensors"
            count = _random_checkpoint(folder, path)
            size = path.stat().st_size / 2**30
            gc.collect()
            started = time.perf_counter()
            pipe, kind, _s = load_single_file(path, dtype)
            ours = time.perf_counter() - started
            del pipe
            gc.collect()
            try:
                started = time.perf_counter()
                StableDiffusionPipeline.from_single_file(str(path), torch_dtype=dtype, local_files_only=True)
                plain = f"{time.perf_counter() - started:.1f} s"
            except Exception as exc:  # the bug: no config -> hub lookup
                plain = f"fails: {type(exc).__name__}"
            print(
                f"{kind.label:20s} {count / 1e9:.2f} B params, {size:.2f} GiB file: "
                f"loaded offline in {ours:.1f} s "
                f"(diffusers without config=: {plain})"
            )
            path.unlink()
            gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
