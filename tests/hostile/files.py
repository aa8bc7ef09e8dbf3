"""Hostile LoRA files, built for real on disk.

Every builder takes a folder and a stem and writes exactly the kind of file a careless download,
a broken sync or an attacker leaves in ``models/Lora``. Valid files are written with
``safetensors.numpy.save_file``; broken ones are written byte by byte so the defect is exact.
Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

#: A kohya SD1.5 layout: one UNet cross-attention pair and one text-encoder pair (width 768).
SD15_KEYS = {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": (320, 768),
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (768, 768),
}
#: A kohya SDXL layout: two text encoders (``lora_te1_``/``lora_te2_``), cross-attention 2048.
SDXL_KEYS = {
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k": (640, 2048),
    "lora_te1_text_model_encoder_layers_0_self_attn_q_proj": (768, 768),
    "lora_te2_text_model_encoder_layers_0_self_attn_q_proj": (1280, 1280),
}
#: Keys that match no module of any Stable Diffusion pipeline.
ALIEN_KEYS = {"lora_transformer_blocks_99_ff_net_9_proj": (16, 16)}


def kohya_tensors(keys: dict[str, tuple[int, int]], rank: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """kohya ``lora_down``/``lora_up``/``alpha`` tensors for ``keys`` (module -> (out, in))."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for module, (out_dim, in_dim) in keys.items():
        tensors[f"{module}.lora_down.weight"] = rng.standard_normal((rank, in_dim), dtype=np.float32) * 0.01
        tensors[f"{module}.lora_up.weight"] = rng.standard_normal((out_dim, rank), dtype=np.float32) * 0.01
        tensors[f"{module}.alpha"] = np.array(rank / 2, dtype=np.float32)
    return tensors


def write_lora(
    folder: Path,
    stem: str,
    keys: dict[str, tuple[int, int]] | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """A valid kohya LoRA ``<stem>.safetensors`` (SD1.5 layout unless ``keys`` says otherwise)."""
    path = folder / f"{stem}.safetensors"
    meta = {"ss_network_module": "networks.lora", "ss_output_name": stem, "ss_network_dim": "4"}
    meta.update(metadata or {})
    save_file(kohya_tensors(keys or SD15_KEYS), str(path), metadata=meta)
    return path


def _raw_safetensors(path: Path, header: bytes, data: bytes = b"", length: int | None = None) -> Path:
    """Write ``u64 length | header | data`` exactly as given (``length`` may lie)."""
    size = len(header) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + header + data)
    return path


def _header(tensors: dict[str, dict[str, object]], metadata: object = None) -> bytes:
    doc: dict[str, object] = dict(tensors)
    if metadata is not None:
        doc["__metadata__"] = metadata
    return json.dumps(doc).encode()


# ----------------------------------------------------------------------------------------------
# The hostile builders. Each returns the path a user would see in the folder.
# ----------------------------------------------------------------------------------------------


class _Exploit:
    """Pickled, this object runs ``os.system`` on load: the reason pickle files are refused."""

    def __reduce__(self) -> tuple[Callable[..., int], tuple[str]]:
        return (os.system, ("echo pwned > /tmp/lora-mixer-pickle-ran",))


def pickle_file(folder: Path, stem: str, suffix: str) -> Path:
    """A ``.ckpt``/``.pt``/``.bin`` pickle that would execute code if anyone unpickled it."""
    path = folder / f"{stem}{suffix}"
    path.write_bytes(pickle.dumps({"state_dict": _Exploit()}))
    return path


def zero_byte(folder: Path, stem: str) -> Path:
    path = folder / f"{stem}.safetensors"
    path.write_bytes(b"")
    return path


def html_page(folder: Path, stem: str) -> Path:
    """What a browser saves when a download link needed a login."""
    path = folder / f"{stem}.safetensors"
    path.write_bytes(b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>login</body></html>\n")
    return path


def lfs_pointer(folder: Path, stem: str) -> Path:
    """A Git-LFS pointer: what ``git clone`` without ``git lfs`` leaves instead of the weights."""
    path = folder / f"{stem}.safetensors"
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        "size 37861176\n",
        encoding="ascii",
    )
    return path


def truncated(folder: Path, stem: str) -> Path:
    """A valid LoRA cut in the middle of its tensor data (an interrupted download)."""
    path = write_lora(folder, stem)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    return path


def truncated_header(folder: Path, stem: str) -> Path:
    """A LoRA cut inside its JSON header."""
    path = write_lora(folder, stem)
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    path.write_bytes(path.read_bytes()[: 8 + length // 2])
    return path


def huge_header(folder: Path, stem: str) -> Path:
    """A header length of 1 TiB: a reader that trusts it allocates without bound."""
    return _raw_safetensors(folder / f"{stem}.safetensors", b"{}", length=1 << 40)


def header_over_cap(folder: Path, stem: str, size: int = 17 * 1024 * 1024) -> Path:
    """A well-formed header that is simply larger than the 16 MB cap (real bytes on disk)."""
    meta = {"padding": "x" * (size - 64)}
    header = _header({}, meta)
    return _raw_safetensors(folder / f"{stem}.safetensors", header)


def invalid_json_header(folder: Path, stem: str) -> Path:
    return _raw_safetensors(folder / f"{stem}.safetensors", b'{"lora_unet_x.lora_down.weight": {"dtype": ')


def non_utf8_header(folder: Path, stem: str) -> Path:
    return _raw_safetensors(folder / f"{stem}.safetensors", b'{"\xff\xfe": 1}')


def json_not_object(folder: Path, stem: str) -> Path:
    """A header that is valid JSON but a list, not an object."""
    return _raw_safetensors(folder / f"{stem}.safetensors", b"[1, 2, 3]")


def offsets_beyond_file(folder: Path, stem: str) -> Path:
    """Tensor offsets pointing past the end of the file."""
    tensors = {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": {
            "dtype": "F32",
            "shape": [4, 768],
            "data_offsets": [0, 4 * 768 * 4],
        }
    }
    return _raw_safetensors(folder / f"{stem}.safetensors", _header(tensors), data=b"\0" * 64)


def offsets_overlapping(folder: Path, stem: str) -> Path:
    """Two tensors claiming the same bytes, and a shape that disagrees with its byte range."""
    tensors = {
        "lora_unet_a.lora_down.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]},
        "lora_unet_a.lora_up.weight": {"dtype": "F32", "shape": [4, 8], "data_offsets": [0, 64]},
    }
    return _raw_safetensors(folder / f"{stem}.safetensors", _header(tensors), data=b"\0" * 64)


def _one_tensor(folder: Path, stem: str, spec: dict[str, object], data: int = 64) -> Path:
    tensors = {
        "lora_unet_a.lora_down.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64], **spec}
    }
    return _raw_safetensors(folder / f"{stem}.safetensors", _header(tensors), data=b"\0" * data)


def offsets_aliased(folder: Path, stem: str) -> Path:
    """Two well-shaped tensors sharing the same bytes (safetensors forbids aliasing)."""
    tensors = {
        "lora_unet_a.lora_down.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]},
        "lora_unet_a.lora_up.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]},
    }
    return _raw_safetensors(folder / f"{stem}.safetensors", _header(tensors), data=b"\0" * 64)


def offsets_hole_at_end(folder: Path, stem: str) -> Path:
    """Offsets that do not cover the file: 64 bytes nobody owns after the last tensor."""
    return _one_tensor(folder, stem, {}, data=128)


def offsets_gap_at_start(folder: Path, stem: str) -> Path:
    return _one_tensor(folder, stem, {"data_offsets": [64, 128]}, data=128)


def offsets_reversed(folder: Path, stem: str) -> Path:
    return _one_tensor(folder, stem, {"data_offsets": [64, 0]}, data=128)


def unknown_dtype(folder: Path, stem: str) -> Path:
    return _one_tensor(folder, stem, {"dtype": "X99"})


def negative_shape(folder: Path, stem: str) -> Path:
    return _one_tensor(folder, stem, {"shape": [-4, 4]})


def astronomic_shape(folder: Path, stem: str) -> Path:
    """A shape whose byte size overflows 64 bits (a reader that allocates it first dies)."""
    return _one_tensor(folder, stem, {"shape": [2**40, 2**40]})


def no_tensors(folder: Path, stem: str) -> Path:
    """A valid safetensors file with an empty header: nothing to load."""
    return _raw_safetensors(folder / f"{stem}.safetensors", b"{}")


def non_string_metadata(folder: Path, stem: str) -> Path:
    """``__metadata__`` values that are numbers and objects (the format allows strings only)."""
    tensors = {"lora_unet_a.alpha": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}
    meta = {"ss_network_dim": 32, "ss_tag_frequency": {"x": {"1girl": 3}}, "ss_output_name": None}
    return _raw_safetensors(folder / f"{stem}.safetensors", _header(tensors, meta), data=b"\0" * 4)


def metadata_not_object(folder: Path, stem: str) -> Path:
    tensors = {"lora_unet_a.alpha": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}
    return _raw_safetensors(folder / f"{stem}.safetensors", _header(tensors, "oops"), data=b"\0" * 4)


def bad_tag_frequency(folder: Path, stem: str) -> Path:
    """A valid file whose ``ss_tag_frequency`` string is not JSON (kohya metadata is often odd)."""
    return write_lora(folder, stem, metadata={"ss_tag_frequency": "{not json", "ss_network_dim": "many"})


def sdxl_lora(folder: Path, stem: str) -> Path:
    return write_lora(folder, stem, keys=SDXL_KEYS, metadata={"ss_base_model_version": "sdxl_base_v1-0"})


def alien_keys(folder: Path, stem: str) -> Path:
    """A valid safetensors file whose keys match no Stable Diffusion module."""
    return write_lora(folder, stem, keys=ALIEN_KEYS)


def escaping_symlink(folder: Path, stem: str) -> Path:
    """A symlink inside the LoRA folder pointing at a valid LoRA outside every root."""
    outside = folder.parent / "outside-the-roots"
    outside.mkdir(exist_ok=True)
    target = write_lora(outside, f"{stem}-target")
    link = folder / f"{stem}.safetensors"
    link.symlink_to(target)
    return link


def dangling_symlink(folder: Path, stem: str) -> Path:
    link = folder / f"{stem}.safetensors"
    link.symlink_to(folder / "does-not-exist.safetensors")
    return link


def directory_named_like_lora(folder: Path, stem: str) -> Path:
    path = folder / f"{stem}.safetensors"
    path.mkdir()
    return path


#: builder name -> builder(folder, stem). Used by the case table.
BUILDERS: dict[str, Callable[[Path, str], Path]] = {
    "ckpt": lambda f, s: pickle_file(f, s, ".ckpt"),
    "pt": lambda f, s: pickle_file(f, s, ".pt"),
    "bin": lambda f, s: pickle_file(f, s, ".bin"),
    "zero_byte": zero_byte,
    "html": html_page,
    "lfs_pointer": lfs_pointer,
    "truncated": truncated,
    "truncated_header": truncated_header,
    "huge_header": huge_header,
    "header_over_cap": header_over_cap,
    "invalid_json_header": invalid_json_header,
    "non_utf8_header": non_utf8_header,
    "json_not_object": json_not_object,
    "offsets_beyond_file": offsets_beyond_file,
    "offsets_overlapping": offsets_overlapping,
    "offsets_aliased": offsets_aliased,
    "offsets_hole_at_end": offsets_hole_at_end,
    "offsets_gap_at_start": offsets_gap_at_start,
    "offsets_reversed": offsets_reversed,
    "unknown_dtype": unknown_dtype,
    "negative_shape": negative_shape,
    "astronomic_shape": astronomic_shape,
    "no_tensors": no_tensors,
    "non_string_metadata": non_string_metadata,
    "metadata_not_object": metadata_not_object,
    "bad_tag_frequency": bad_tag_frequency,
    "sdxl": sdxl_lora,
    "alien_keys": alien_keys,
    "escaping_symlink": escaping_symlink,
    "dangling_symlink": dangling_symlink,
    "directory": directory_named_like_lora,
}
