"""Real LoRA files for tests, written with numpy + ``safetensors.numpy.save_file`` (no torch).

Layouts match what the trainers write:

* kohya SD1.x/SD2 (``lora_unet_…``/``lora_te_…`` + ``.lora_down.weight``/``.lora_up.weight``/
  ``.alpha``), cross-attention input width 768 (SD1.5) or 1024 (SD2);
* kohya SDXL (``lora_te1_``/``lora_te2_`` text encoders, cross-attention input 2048);
* PEFT/diffusers (``unet.….lora_A.weight``/``lora_B.weight``, ``text_encoder.…``);
* LyCORIS LoCon (kohya names plus 4-D conv ``lora_down``/``lora_up``) and LoHa (``hada_w1_a`` …).

Every writer returns the :class:`~pathlib.Path` it wrote. ``kohya_metadata`` builds the ``ss_*``
strings kohya-ss writes (``ss_tag_frequency`` is a JSON string). The ``write_*`` corrupt-file
builders produce each defect the library must report. Other test suites may import this module.
"""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

__all__ = [
    "CROSS_WIDTH",
    "kohya_metadata",
    "kohya_tensors",
    "locon_tensors",
    "loha_tensors",
    "peft_tensors",
    "sdxl_tensors",
    "write_a1111_sidecar",
    "write_civitai_info",
    "write_html",
    "write_huge_header_length",
    "write_invalid_json_header",
    "write_kohya",
    "write_lfs_pointer",
    "write_locon",
    "write_loha",
    "write_non_string_metadata",
    "write_offsets_beyond_file",
    "write_offsets_gap",
    "write_peft",
    "write_pickle",
    "write_raw_safetensors",
    "write_safetensors",
    "write_sdxl",
    "write_trailing_bytes",
    "write_truncated",
    "write_zero_byte",
]

#: cross-attention input (text-embedding) width per base model
CROSS_WIDTH = {"sd15": 768, "sd2": 1024, "sdxl": 2048}
#: text-encoder hidden width per base model (SDXL: te1 768, te2 1280)
TE_WIDTH = {"sd15": 768, "sd2": 1024}

_BASE_VERSION = {"sd15": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
_ARCHITECTURE = {
    "sd15": "stable-diffusion-v1/lora",
    "sd2": "stable-diffusion-v2-512/lora",
    "sdxl": "stable-diffusion-xl-v1-base/lora",
}


def kohya_metadata(
    name: str,
    *,
    base: str | None = "sd15",
    dim: int = 4,
    alpha: float = 2.0,
    tags: Mapping[str, Mapping[str, int]] | None = None,
    module: str = "networks.lora",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The ``ss_*`` (and ModelSpec) metadata kohya-ss writes; ``base=None`` leaves the base out.

    ``tags`` is ``{dataset_folder: {tag: count}}`` as in ``ss_tag_frequency``.
    """
    meta = {
        "ss_output_name": name,
        "ss_network_module": module,
        "ss_network_dim": str(dim),
        "ss_network_alpha": f"{alpha:g}",
        "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors"
        if base != "sdxl"
        else "sd_xl_base_1.0.safetensors",
        "ss_num_train_images": "200",
        "ss_resolution": "(512, 512)" if base != "sdxl" else "(1024, 1024)",
    }
    if base is not None:
        meta["ss_base_model_version"] = _BASE_VERSION[base]
        meta["ss_v2"] = str(base == "sd2")
        meta["modelspec.architecture"] = _ARCHITECTURE[base]
    if tags is not None:
        meta["ss_tag_frequency"] = json.dumps(tags)
    meta.update(extra or {})
    return meta


def _pair(rng: np.random.Generator, rank: int, out_dim: int, in_dim: int) -> tuple[np.ndarray, np.ndarray]:
    down = (rng.standard_normal((rank, in_dim)) * 0.01).astype(np.float16)
    up = (rng.standard_normal((out_dim, rank)) * 0.01).astype(np.float16)
    return down, up


def kohya_tensors(
    base: str = "sd15", *, rank: int = 4, alpha: float | None = 2.0, te: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """kohya SD1.x/SD2 LoRA tensors: UNet cross-attention k/v, self-attention q, mid block, TE q/k."""
    context = CROSS_WIDTH[base]
    rng = np.random.default_rng(seed)
    modules = {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (320, 320),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": (320, context),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v": (320, context),
        "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k": (1280, context),
    }
    if te:
        width = TE_WIDTH[base]
        modules["lora_te_text_model_encoder_layers_0_self_attn_q_proj"] = (width, width)
        modules["lora_te_text_model_encoder_layers_0_self_attn_k_proj"] = (width, width)
    tensors: dict[str, np.ndarray] = {}
    for module, (out_dim, in_dim) in modules.items():
        down, up = _pair(rng, rank, out_dim, in_dim)
        tensors[f"{module}.lora_down.weight"] = down
        tensors[f"{module}.lora_up.weight"] = up
        if alpha is not None:
            tensors[f"{module}.alpha"] = np.array(alpha, dtype=np.float32)
    return tensors


def sdxl_tensors(
    *, rank: int = 4, alpha: float | None = 2.0, te: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """kohya SDXL LoRA tensors (SGM UNet names, cross-attention 2048, ``lora_te1_``/``lora_te2_``)."""
    rng = np.random.default_rng(seed)
    modules = {
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k": (640, 2048),
        "lora_unet_output_blocks_0_1_transformer_blocks_0_attn2_to_v": (1280, 2048),
    }
    if te:
        modules["lora_te1_text_model_encoder_layers_0_self_attn_q_proj"] = (768, 768)
        modules["lora_te2_text_model_encoder_layers_0_self_attn_q_proj"] = (1280, 1280)
    tensors: dict[str, np.ndarray] = {}
    for module, (out_dim, in_dim) in modules.items():
        down, up = _pair(rng, rank, out_dim, in_dim)
        tensors[f"{module}.lora_down.weight"] = down
        tensors[f"{module}.lora_up.weight"] = up
        if alpha is not None:
            tensors[f"{module}.alpha"] = np.array(alpha, dtype=np.float32)
    return tensors


def peft_tensors(
    base: str = "sd15", *, rank: int = 4, text_encoder: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """diffusers ``save_lora_weights`` layout: ``unet.…lora_A.weight``/``lora_B.weight`` (no alpha)."""
    context = CROSS_WIDTH[base]
    rng = np.random.default_rng(seed)
    modules = {
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k": (320, context),
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v": (320, context),
        "unet.up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q": (1280, 1280),
    }
    if text_encoder and base != "sdxl":
        width = TE_WIDTH[base]
        modules["text_encoder.text_model.encoder.layers.0.self_attn.q_proj"] = (width, width)
    tensors: dict[str, np.ndarray] = {}
    for module, (out_dim, in_dim) in modules.items():
        down, up = _pair(rng, rank, out_dim, in_dim)
        tensors[f"{module}.lora_A.weight"] = down
        tensors[f"{module}.lora_B.weight"] = up
    return tensors


def locon_tensors(
    base: str = "sd15", *, rank: int = 4, conv_rank: int = 2, seed: int = 0
) -> dict[str, np.ndarray]:
    """LyCORIS LoCon: kohya linear pairs plus 4-D conv pairs on the ResNet blocks."""
    tensors = kohya_tensors(base, rank=rank, te=False, seed=seed)
    rng = np.random.default_rng(seed + 1)
    conv = "lora_unet_down_blocks_0_resnets_0_conv1"
    tensors[f"{conv}.lora_down.weight"] = (rng.standard_normal((conv_rank, 320, 3, 3)) * 0.01).astype(
        np.float16
    )
    tensors[f"{conv}.lora_up.weight"] = (rng.standard_normal((320, conv_rank, 1, 1)) * 0.01).astype(
        np.float16
    )
    tensors[f"{conv}.alpha"] = np.array(1.0, dtype=np.float32)
    return tensors


def loha_tensors(base: str = "sd15", *, rank: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """LyCORIS LoHa (Hadamard product) tensors on a cross-attention ``to_k``."""
    context = CROSS_WIDTH[base]
    rng = np.random.default_rng(seed)
    module = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    tensors = {}
    for part, shape in (("hada_w1_a", (320, rank)), ("hada_w1_b", (rank, context))):
        tensors[f"{module}.{part}"] = (rng.standard_normal(shape) * 0.01).astype(np.float16)
    for part, shape in (("hada_w2_a", (320, rank)), ("hada_w2_b", (rank, context))):
        tensors[f"{module}.{part}"] = (rng.standard_normal(shape) * 0.01).astype(np.float16)
    tensors[f"{module}.alpha"] = np.array(float(rank), dtype=np.float32)
    return tensors


# ----------------------------------------------------------------------------------------------
# Writers of valid files
# ----------------------------------------------------------------------------------------------


def write_safetensors(
    path: Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(dict(tensors), str(path), metadata=dict(metadata) if metadata is not None else None)
    return path


def write_kohya(
    folder: Path,
    name: str,
    *,
    base: str = "sd15",
    metadata: Mapping[str, str] | None = None,
    with_metadata: bool = True,
    rank: int = 4,
    alpha: float | None = 2.0,
    tags: Mapping[str, Mapping[str, int]] | None = None,
    te: bool = True,
    seed: int = 0,
) -> Path:
    """``folder/name.safetensors`` in the kohya SD1.x/SD2 layout (``base`` sd15 or sd2)."""
    meta = kohya_metadata(name, base=base, dim=rank, alpha=alpha or rank, tags=tags) if with_metadata else {}
    meta.update(metadata or {})
    tensors = kohya_tensors(base, rank=rank, alpha=alpha, te=te, seed=seed)
    return write_safetensors(folder / f"{name}.safetensors", tensors, meta or None)


def write_sdxl(
    folder: Path,
    name: str,
    *,
    metadata: Mapping[str, str] | None = None,
    with_metadata: bool = True,
    te: bool = True,
    rank: int = 4,
) -> Path:
    """``folder/name.safetensors`` in the kohya SDXL layout."""
    meta = kohya_metadata(name, base="sdxl", dim=rank) if with_metadata else {}
    meta.update(metadata or {})
    return write_safetensors(folder / f"{name}.safetensors", sdxl_tensors(rank=rank, te=te), meta or None)


def write_peft(
    folder: Path, name: str, *, base: str = "sd15", rank: int = 4, text_encoder: bool = True
) -> Path:
    """``folder/name.safetensors`` as diffusers/PEFT save it (no kohya metadata)."""
    tensors = peft_tensors(base, rank=rank, text_encoder=text_encoder)
    return write_safetensors(folder / f"{name}.safetensors", tensors, {"format": "pt"})


def write_locon(folder: Path, name: str, *, base: str = "sd15", with_metadata: bool = True) -> Path:
    """A LyCORIS LoCon file (``ss_network_module`` 'lycoris.kohya' unless ``with_metadata`` is False)."""
    meta = (
        kohya_metadata(
            name,
            base=base,
            module="lycoris.kohya",
            extra={"ss_network_args": json.dumps({"conv_dim": "2", "conv_alpha": "1", "algo": "locon"})},
        )
        if with_metadata
        else None
    )
    return write_safetensors(folder / f"{name}.safetensors", locon_tensors(base), meta)


def write_loha(folder: Path, name: str, *, base: str = "sd15") -> Path:
    """A LyCORIS LoHa file without metadata (recognised from its ``hada_`` keys)."""
    return write_safetensors(folder / f"{name}.safetensors", loha_tensors(base))


def write_a1111_sidecar(folder: Path, name: str, **fields: object) -> Path:
    """A1111's ``<name>.json``; keyword names use underscores for spaces
    (``activation_text="catgirl"`` -> ``"activation text"``)."""
    path = folder / f"{name}.json"
    path.write_text(json.dumps({k.replace("_", " "): v for k, v in fields.items()}), encoding="utf-8")
    return path


def write_civitai_info(
    folder: Path, name: str, *, trained_words: list[str], base_model: str = "SD 1.5"
) -> Path:
    """Civitai Helper's ``<name>.civitai.info`` (a model-version JSON)."""
    path = folder / f"{name}.civitai.info"
    info = {
        "id": 12345,
        "modelId": 678,
        "name": "v1.0",
        "baseModel": base_model,
        "trainedWords": trained_words,
        "description": "<p>Trained on <b>20</b> images.</p>",
        "model": {"name": f"{name} (civitai)", "type": "LORA", "nsfw": False},
    }
    path.write_text(json.dumps(info), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# Broken and refused files
# ----------------------------------------------------------------------------------------------


def write_raw_safetensors(path: Path, header: bytes, data: bytes = b"", length: int | None = None) -> Path:
    """``u64 length | header | data`` exactly as given (``length`` may lie)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)
    return path


def _tensor_header(tensors: Mapping[str, object], metadata: object = None) -> bytes:
    doc: dict[str, object] = dict(tensors)
    if metadata is not None:
        doc["__metadata__"] = metadata
    return json.dumps(doc).encode()


_ONE = {"lora_unet_x_attn2_to_k.lora_down.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}


def write_zero_byte(folder: Path, name: str) -> Path:
    path = folder / f"{name}.safetensors"
    path.write_bytes(b"")
    return path


def write_html(folder: Path, name: str) -> Path:
    path = folder / f"{name}.safetensors"
    path.write_bytes(b"\n<!DOCTYPE html>\n<html><head><title>Log in</title></head><body>403</body></html>")
    return path


def write_lfs_pointer(folder: Path, name: str) -> Path:
    path = folder / f"{name}.safetensors"
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 151108832\n",
        encoding="ascii",
    )
    return path


def write_truncated(folder: Path, name: str, *, keep: int | None = None) -> Path:
    """A valid kohya file cut short (``keep`` bytes; default: 100 bytes into the tensor data)."""
    path = write_kohya(folder, name)
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    path.write_bytes(data[: keep if keep is not None else 8 + length + 100])
    return path


def write_invalid_json_header(folder: Path, name: str) -> Path:
    return write_raw_safetensors(folder / f"{name}.safetensors", b'{"a": {"dtype": "F32", ')


def write_huge_header_length(folder: Path, name: str) -> Path:
    """Declares a 1 TiB header (a reader that trusts it would try to allocate it)."""
    return write_raw_safetensors(folder / f"{name}.safetensors", b"{}", length=1 << 40)


def write_offsets_beyond_file(folder: Path, name: str) -> Path:
    return write_raw_safetensors(folder / f"{name}.safetensors", _tensor_header(_ONE), data=b"\0" * 16)


def write_offsets_gap(folder: Path, name: str) -> Path:
    """Two tensors with 16 unused bytes between them."""
    tensors = {
        "a.lora_down.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "a.lora_up.weight": {"dtype": "F32", "shape": [4], "data_offsets": [32, 48]},
    }
    return write_raw_safetensors(folder / f"{name}.safetensors", _tensor_header(tensors), data=b"\0" * 48)


def write_trailing_bytes(folder: Path, name: str) -> Path:
    """Offsets cover only part of the data section: extra bytes after the last tensor."""
    return write_raw_safetensors(folder / f"{name}.safetensors", _tensor_header(_ONE), data=b"\0" * 80)


def write_non_string_metadata(folder: Path, name: str) -> Path:
    meta = {"ss_network_dim": 32}
    return write_raw_safetensors(folder / f"{name}.safetensors", _tensor_header(_ONE, meta), data=b"\0" * 64)


class _Marker:
    """Unpickling this writes ``marker``: proof that a scan unpickled a file (it must never)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (Path(self.marker), "unpickled"))  # type: ignore[return-value]


def write_pickle(folder: Path, name: str, suffix: str = ".ckpt", marker: Path | None = None) -> Path:
    """A pickle file (``.ckpt/.pt/.bin/.pth``); with ``marker``, unpickling it creates that file."""
    path = folder / f"{name}{suffix}"
    payload: object = {"state_dict": {}} if marker is None else {"state_dict": _Marker(str(marker))}
    path.write_bytes(pickle.dumps(payload))
    return path
