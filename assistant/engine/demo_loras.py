"""The demo LoRA files: the trained ones shipped in ``models/Lora``, and random-weight ones for tests.

**Shipped** (:data:`SHIPPED`, in ``models/Lora``): the SD1.5 demo LoRAs were trained on the
embedded model (:mod:`assistant.engine.embedded`) by the project's own trainer
(``tools/make_demo_loras.py``): a cat mascot, neon and ink styles, soft light, a sailor collar,
brightness/saturation/detail adjusters — each file's ``ss_*`` metadata says how. ``watercolor_xl``
is the one exception: a random-weight SDXL file for the random tiny SDXL pipeline, there to show
an SDXL LoRA refused on an SD1.5 model ("画风突变毕加索"); it is written here, deterministically.
:func:`write_demo_loras` copies the shipped set into another folder (test servers, benchmarks).

**Random** (:data:`DEMO_LORAS`, :func:`write_random_loras`): kohya-layout files with the same
names whose shapes match the random-weight pipelines of :mod:`assistant.engine.tiny`, for the
engine's unit tests. The files are what sd-scripts writes: ``lora_unet_…``/``lora_te_…`` modules
(``lora_te1_``/``lora_te2_`` for SDXL) with ``.lora_down.weight``, ``.lora_up.weight`` and
``.alpha``, fp16, and ``ss_*`` metadata. Deterministic: the weights come from numpy's PCG64 seeded
with the LoRA's name, and the file is serialised here (sorted JSON header, fixed alignment), so
regeneration is byte-identical. Pure numpy: no torch needed to write them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import DEFAULT_LORA_DIR

# (module name without prefix, out features, in features) of the tiny architectures.
_SD15_CROSS = 32  # text hidden size = UNet cross-attention width
_TE_MODULES: tuple[tuple[str, int, int], ...] = tuple(
    (f"text_model_encoder_layers_{layer}_{name}", out, inp)
    for layer in range(2)
    for name, out, inp in (
        ("self_attn_q_proj", 32, 32),
        ("self_attn_k_proj", 32, 32),
        ("self_attn_v_proj", 32, 32),
        ("self_attn_out_proj", 32, 32),
        ("mlp_fc1", 37, 32),
        ("mlp_fc2", 32, 37),
    )
)
_TRANSFORMERS = (
    "down_blocks_1_attentions_0",
    "mid_block_attentions_0",
    "up_blocks_0_attentions_0",
    "up_blocks_0_attentions_1",
)


def _unet_modules(cross: int) -> tuple[tuple[str, int, int], ...]:
    modules = []
    for block in _TRANSFORMERS:
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out_0"):
                inp = cross if attn == "attn2" and proj in ("to_k", "to_v") else 64
                modules.append((f"{block}_transformer_blocks_0_{attn}_{proj}", 64, inp))
    return tuple(modules)


@dataclass(frozen=True, slots=True)
class DemoLora:
    """One demo LoRA: its name, architecture and how strongly (``gain``) it changes the model."""

    name: str
    base: str = "sd15"  # "sd15" or "sdxl"
    rank: int = 4
    alpha: float = 2.0
    gain: float = 0.6  # std of the delta relative to the base weights' std at weight 1
    unet: bool = True
    text_encoder: bool = True
    tags: Mapping[str, int] = field(default_factory=dict)  # ss_tag_frequency of the "dataset"
    derived_from: str | None = None  # a later version: mostly its parent's direction


DEMO_LORAS: tuple[DemoLora, ...] = (
    DemoLora("catgirl_v1", rank=8, alpha=4.0, gain=0.8, tags={"catgirl": 20, "cat ears": 20, "1girl": 20}),
    DemoLora(
        "catgirl_v2",
        rank=8,
        alpha=4.0,
        gain=0.8,
        tags={"catgirl": 30, "cat ears": 30, "1girl": 28, "tail": 12},
        derived_from="catgirl_v1",
    ),
    DemoLora("cyberpunk_style", gain=0.7, tags={"cyberpunk": 40, "neon lights": 25, "city": 22}),
    DemoLora("soft_light", gain=0.5, text_encoder=False, tags={"soft light": 30, "backlight": 8}),
    DemoLora("jk_uniform", rank=8, alpha=4.0, gain=0.7, tags={"jk uniform": 25, "school uniform": 25}),
    DemoLora("add_detail", gain=0.5, text_encoder=False, tags={"detailed": 50}),
    DemoLora("add_saturation", gain=0.5, text_encoder=False, tags={"colorful": 40}),
    DemoLora("add_brightness", gain=0.5, text_encoder=False, tags={"bright": 40}),
    DemoLora("animeoutlineV4_16", rank=16, alpha=8.0, gain=0.6, tags={"lineart": 30, "outline": 30}),
    DemoLora("watercolor_xl", base="sdxl", gain=0.6, tags={"watercolor": 30, "painting": 18}),
)

_BASE_MODEL = {
    "sd15": ("sd_v1", "v1-5-pruned-emaonly.safetensors"),
    "sdxl": ("sdxl_base_v1-0", "sd_xl_base_1.0.safetensors"),
}
_W_STD = 0.08  # about the std of the tiny models' attention weights


def _rng(name: str) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")
    return np.random.Generator(np.random.PCG64(seed))


def _pair(rng: np.random.Generator, out: int, inp: int, lora: DemoLora) -> tuple[np.ndarray, np.ndarray]:
    """(down, up) with ``std(up @ down * alpha / rank) == gain * _W_STD``."""
    down = rng.standard_normal((lora.rank, inp)) / np.sqrt(inp)
    up = rng.standard_normal((out, lora.rank)) * lora.gain * _W_STD * np.sqrt(inp / lora.rank)
    return down, up / (lora.alpha / lora.rank)


def lora_tensors(lora: DemoLora) -> dict[str, np.ndarray]:
    """The kohya state dict of one demo LoRA (fp16), keys sorted."""
    modules: list[tuple[str, int, int]] = []
    if lora.base == "sdxl":
        if lora.unet:
            modules += [(f"lora_unet_{m}", o, i) for m, o, i in _unet_modules(2 * _SD15_CROSS)]
        if lora.text_encoder:
            for prefix in ("lora_te1_", "lora_te2_"):
                modules += [(prefix + m, o, i) for m, o, i in _TE_MODULES]
    else:
        if lora.unet:
            modules += [(f"lora_unet_{m}", o, i) for m, o, i in _unet_modules(_SD15_CROSS)]
        if lora.text_encoder:
            modules += [(f"lora_te_{m}", o, i) for m, o, i in _TE_MODULES]
    rng = _rng(lora.name)
    parent = _rng(lora.derived_from) if lora.derived_from else None
    tensors: dict[str, np.ndarray] = {}
    for module, out, inp in modules:
        down, up = _pair(rng, out, inp, lora)
        if parent is not None:  # a new version: 80% the parent's direction, 20% new
            p_down, p_up = _pair(parent, out, inp, lora)
            down, up = 0.8 * p_down + 0.2 * down, 0.8 * p_up + 0.2 * up
        tensors[f"{module}.lora_down.weight"] = down.astype(np.float16)
        tensors[f"{module}.lora_up.weight"] = up.astype(np.float16)
        tensors[f"{module}.alpha"] = np.array(lora.alpha, dtype=np.float16)
    return dict(sorted(tensors.items()))


def lora_metadata(lora: DemoLora) -> dict[str, str]:
    """The ``ss_*`` header metadata sd-scripts writes (all values are strings)."""
    version, model = _BASE_MODEL[lora.base]
    folder = f"10_{lora.name.split('_')[0]}"
    return {
        "ss_base_model_version": version,
        "ss_network_alpha": f"{lora.alpha:g}",
        "ss_network_dim": str(lora.rank),
        "ss_network_module": "networks.lora",
        "ss_num_train_images": "200",
        "ss_output_name": lora.name,
        "ss_resolution": "(1024, 1024)" if lora.base == "sdxl" else "(512, 512)",
        "ss_sd_model_name": model,
        "ss_tag_frequency": json.dumps({folder: dict(lora.tags)}, sort_keys=True),
        "ss_training_comment": "LoRA Mixer demo LoRA for the tiny offline pipeline (random weights)",
        "ss_v2": "False",
    }


_DTYPES = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32"}


def safetensors_bytes(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Serialise like the safetensors format spec, deterministically (sorted keys, 8-byte aligned)."""
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": _DTYPES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def iter_files() -> Iterator[tuple[str, bytes]]:
    """(file name, content) of every random-weight LoRA (the random tiny pipelines' set)."""
    for lora in DEMO_LORAS:
        yield f"{lora.name}.safetensors", safetensors_bytes(lora_tensors(lora), lora_metadata(lora))


def write_random_loras(out: str | Path, *, overwrite: bool = True) -> list[Path]:
    """Write every random-weight LoRA into ``out``; returns the paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in iter_files():
        path = folder / name
        if overwrite or not path.exists():
            path.write_bytes(content)
        written.append(path)
    return written


#: The shipped demo set: trained on the embedded model, plus the random SDXL stand-in.
SHIPPED: tuple[str, ...] = tuple(lora.name for lora in DEMO_LORAS)
TRAINED: tuple[str, ...] = tuple(lora.name for lora in DEMO_LORAS if lora.base == "sd15")


def write_demo_loras(out: str | Path = DEFAULT_LORA_DIR, *, overwrite: bool = True) -> list[Path]:
    """The shipped demo LoRAs in ``out``: the trained files (and their previews) copied from
    ``models/Lora``, the SDXL stand-in written. ``out`` = ``models/Lora`` rewrites only the latter."""
    import shutil

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for lora in DEMO_LORAS:
        path = folder / f"{lora.name}.safetensors"
        if lora.base == "sd15":
            source = Path(DEFAULT_LORA_DIR) / path.name
            if not source.is_file():
                raise FileNotFoundError(f"{source} is missing: run tools/make_demo_loras.py")
            if source.resolve() != path.resolve() and (overwrite or not path.exists()):
                shutil.copyfile(source, path)
                preview = source.with_name(f"{lora.name}.preview.png")
                if preview.is_file():
                    shutil.copyfile(preview, folder / preview.name)
        elif overwrite or not path.exists():
            path.write_bytes(safetensors_bytes(lora_tensors(lora), lora_metadata(lora)))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.engine.demo_loras", description=__doc__)
    parser.add_argument("--out", default=str(DEFAULT_LORA_DIR), help="folder to write (default: models/Lora)")
    parser.add_argument(
        "--random", action="store_true", help="write the random-weight set for the random tiny pipelines"
    )
    args = parser.parse_args(argv)
    paths = write_random_loras(args.out) if args.random else write_demo_loras(args.out)
    for path in paths:
        print(f"{path}  ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
