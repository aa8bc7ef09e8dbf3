"""The LoRA library: which LoRA files the user has and what each one is.

Pure Python (safetensors *header* + json + yaml): no torch, and no tensor is ever loaded. The one
I/O boundary is :meth:`Library.scan` (walks the folders, reads headers and sidecars, keeps a
cache index on disk) and :meth:`Library.hashes` (reads a whole file, lazily, on request). Name
resolution and search work on in-memory maps only, so a hostile name (``../../etc/passwd``, NUL
bytes, 10k characters) can never reach the filesystem.

Where each field comes from (later wins for the fields it sets):

1. the safetensors header: kohya ``ss_*`` metadata, ModelSpec ``modelspec.*``, tensor names and
   shapes (base model, network format, rank, alpha, guessed kind and triggers);
2. A1111's sidecar ``<stem>.json`` (``activation text``, ``preferred weight``, ``sd version``,
   ``negative text``, ``notes``, ``description``; a ``kind`` key is read too);
3. Civitai's ``<stem>.civitai.info`` (``trainedWords``, ``baseModel``, ``description``);
4. the project catalog ``presets/loras.yaml`` (see :mod:`assistant.presets`).

Documented heuristics (used only when nothing above declares the value):

* **Base model**: metadata (``ss_base_model_version``, ``modelspec.architecture``, ``ss_v2``),
  else tensor widths: the cross-attention ``to_k``/``to_v`` input width is the text-embedding
  width (768 → sd15, 1024 → sd2, 2048 → sdxl); else the text-encoder width (768 → sd15,
  1024 → sd2); ``lora_te2_``/``text_encoder_2`` keys → sdxl. When metadata and tensor widths
  disagree the tensors win (they decide whether the file loads at all) and ``base_source`` says so;
  non-standard widths (e.g. a tiny test model's 32) never override metadata.
* **Kind**: words in the file name, in this priority: adjuster words (``add``, ``detail``,
  ``saturation``, ``brightness``, ``contrast``, ``slider`` …) → concept; clothing words
  (``uniform``, ``dress``, ``outfit``, ``jk`` …) → clothing; style words (``style``,
  ``outline``, ``lineart``, ``light``, ``watercolor`` …) → style; character words (``girl``,
  ``boy``, ``character`` …) → character. Else the tag frequency: person-count tags (``1girl``,
  ``solo`` …) in at least half the captions → character. Else "other". ``kind_source`` starts
  with "guessed" whenever a heuristic decided.
* **Triggers** from ``ss_tag_frequency``: counts are summed over the dataset folders, generic
  tags (:data:`GENERIC_TAGS`: person counts, quality, framing, backgrounds) are dropped, and the
  most frequent remaining tags are kept — at most 3, each seen in at least half as many captions
  as the most frequent one.

Statuses: ``ok`` (a loadable ``.safetensors``), ``refused`` (pickle formats ``.ckpt/.pt/.bin/.pth``
— unpickling can run code —, symlinks leaving the roots, full checkpoints or embeddings in the
LoRA folder) and ``broken`` (empty, truncated, HTML page, Git-LFS pointer, bad JSON header,
offsets not covering the file, non-string metadata …) with the reason in ``problem``. For ``ok``
entries ``problem`` may hold a non-fatal warning (an unreadable sidecar, a name A1111 tags
cannot express, tensor names of no known layout).

Hashes follow A1111 exactly: ``modules/hashes.py`` ``addnet_hash_safetensors`` hashes the bytes
after ``8 + header_length`` and ``extensions-builtin/Lora/network.py`` shows its first 12 hex
digits (``Lora hashes`` in the infotext); Civitai's AutoV2 is the whole file's sha256, first 10.

Speed: a scan stats every file; with ``cache_dir`` the finished entries are kept in a
:mod:`marshal` index keyed by path, size and mtime (plus sidecar stats and the catalog digest),
so a warm scan reads no header; :meth:`Library.refresh` also reuses unchanged entry objects.
``bench/library_bench.py`` measures cold/warm scans of 10,000 files and name resolution.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import hashlib
import json
import logging
import marshal
import math
import os
import re
import sys
import tempfile
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, overload

from .config import PRESETS_DIR
from .errors import AmbiguousLoraName, LibraryError, LoraMixerError, LoraNotFound
from .layouts import analyse as analyse_layout
from .limits import LORA_WEIGHT
from .presets import Catalog, load_catalog
from .types import BASES, KINDS, LoraInfo, PlannedLora

_log = logging.getLogger(__name__)

__all__ = [
    "BASE_LABELS",
    "DEFAULT_CATALOG",
    "GENERIC_TAGS",
    "HEADER_CAP",
    "Hashes",
    "Library",
    "base_mismatch",
    "file_base",
    "info_to_dict",
    "read_safetensors_header",
    "with_hashes",
]

#: Largest safetensors JSON header we read (real LoRA headers are 10 KB – 2 MB).
HEADER_CAP = 16 * 1024 * 1024
LOADABLE_SUFFIXES = (".safetensors",)
#: Pickle-based formats: listed, never loaded (``torch.load`` can execute arbitrary code).
PICKLE_SUFFIXES = (".ckpt", ".pt", ".bin", ".pth")
PREVIEW_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")
DEFAULT_CATALOG = PRESETS_DIR / "loras.yaml"
#: Characters that cannot appear in a name written as ``<lora:name:weight>``.
_TAG_UNSAFE = re.compile(r"[:<>\x00-\x1f]")
_FIRST_READ = 64 * 1024
_INDEX_VERSION = 7
_MAX_NAME = 512

_DTYPE_SIZES: dict[str, float] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
    "F4": 0.5, "F6_E2M3": 0.75, "F6_E3M2": 0.75,
}  # fmt: skip

#: Metadata keys kept in :attr:`LoraInfo.metadata` (values longer than 1000 characters are dropped).
KEPT_METADATA = (
    "ss_output_name", "ss_base_model_version", "ss_v2", "ss_sd_model_name", "ss_network_module",
    "ss_network_dim", "ss_network_alpha", "ss_network_args", "ss_training_comment", "ss_num_train_images",
    "ss_num_epochs", "ss_resolution", "ss_clip_skip", "ss_learning_rate", "ss_training_started_at",
    "sshs_model_hash", "sshs_legacy_hash", "modelspec.architecture", "modelspec.title",
    "modelspec.trigger_phrase", "modelspec.usage_hint", "modelspec.author", "modelspec.description",
    "modelspec.resolution", "modelspec.implementation",
)  # fmt: skip

#: Tags that say nothing about what a LoRA adds; never chosen as trigger words.
GENERIC_TAGS = frozenset(
    {
        "1girl",
        "1boy",
        "2girls",
        "2boys",
        "3girls",
        "3boys",
        "multiple girls",
        "multiple boys",
        "solo",
        "solo focus",
        "no humans",
        "masterpiece",
        "best quality",
        "high quality",
        "highres",
        "absurdres",
        "lowres",
        "normal quality",
        "worst quality",
        "ultra detailed",
        "detailed",
        "8k",
        "4k",
        "realistic",
        "photorealistic",
        "looking at viewer",
        "looking away",
        "simple background",
        "white background",
        "black background",
        "grey background",
        "gray background",
        "transparent background",
        "blurry background",
        "blurry",
        "depth of field",
        "upper body",
        "full body",
        "cowboy shot",
        "portrait",
        "close-up",
        "closeup",
        "standing",
        "sitting",
        "smile",
        "open mouth",
        "closed mouth",
        "blush",
    }
)
_PERSON_TAGS = frozenset({"1girl", "1boy", "2girls", "2boys", "solo", "multiple girls", "multiple boys"})

# kind heuristic: (kind, words). A word matches a name token, or (5+ letters) any part of the name.
_KIND_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("concept", ("add", "more", "less", "detail", "detailer", "saturation", "brightness", "contrast",
                 "slider", "tweaker", "enhancer", "exposure", "adjuster")),
    ("clothing", ("uniform", "dress", "outfit", "clothes", "clothing", "costume", "armor", "bikini",
                  "kimono", "hanfu", "skirt", "shirt", "hoodie", "swimsuit", "jacket", "lingerie", "jk",
                  "cheongsam", "qipao", "maid")),
    ("style", ("style", "outline", "lineart", "light", "lighting", "watercolor", "painting", "sketch",
               "ink", "manga", "pixel", "aesthetic", "cyberpunk", "cinematic", "film", "render", "art")),
    ("character", ("girl", "boy", "character", "chara", "waifu", "woman", "man", "oc")),
)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Public value types
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hashes:
    """A LoRA's hashes as A1111 and Civitai write them.

    ``a1111``: sha256 of the bytes after the safetensors header, first 12 hex (A1111's
    ``Lora hashes`` infotext; kohya's/additional-networks' "addnet" hash); ``autov2``: sha256 of
    the whole file, first 10 hex (Civitai's AutoV2); ``sha256``: the whole file's sha256;
    ``addnet``: the full 64-hex sha256 after the header.
    """

    a1111: str
    autov2: str
    sha256: str
    addnet: str = ""
    embedded: str = ""  # kohya's precomputed ``sshs_model_hash`` metadata (64 hex), "" if none

    @property
    def infotext(self) -> str:
        """What A1111 writes in ``Lora hashes``: since v1.6 it prefers the file's embedded
        ``sshs_model_hash`` (first 12 hex) and falls back to :attr:`a1111`."""
        return self.embedded[:12] if self.embedded else self.a1111


def info_to_dict(info: LoraInfo) -> dict[str, Any]:
    """A JSON-ready dict of a :class:`LoraInfo` (tuples become lists, metadata a plain dict)."""
    data = dataclasses.asdict(info)
    data["metadata"] = dict(info.metadata)
    data["loadable"] = info.loadable
    return data


#: How users name the base models, in every message about them.
BASE_LABELS: dict[str, str] = {"sd15": "SD1.5", "sd2": "SD2", "sdxl": "SDXL", "unknown": "unknown"}


def file_base(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(base, how it was decided)`` of one LoRA file from its header alone: the detection a scan
    runs (metadata, second-text-encoder keys, tensor widths, UNet key names), before sidecars and
    the catalog. The engine checks a file with it before loading. Unreadable: ``("unknown", why)``.
    """
    name = os.fspath(path)
    try:
        size = os.path.getsize(name)
    except OSError as exc:
        return "unknown", f"cannot read the file ({exc.strerror or exc})"
    facts = _header_facts(name, size)
    if facts.get("status") != "ok":
        return "unknown", str(facts.get("problem", ""))
    return str(facts["base"]), str(facts["base_source"])


def base_mismatch(base: str, source: str, model_base: str) -> str:
    """``"made for SDXL (from tensor widths) but the loaded model is SD1.5"``, or ``""`` when the
    LoRA fits (the same base, or either side unknown).

    The one wording of a base mismatch: the assistant's base-model rule and the engine's check
    before loading a file both build their message around it. ``source`` is cut to the decision
    itself ("tensor widths (cross-attention input 2048)" -> "tensor widths").
    """
    if "unknown" in (base, model_base) or base == model_base:
        return ""
    label, model = BASE_LABELS.get(base, base), BASE_LABELS.get(model_base, model_base)
    decided_by = source.split(" (", maxsplit=1)[0].strip()
    where = f" (from {decided_by})" if decided_by not in ("", "unknown") else ""
    return f"made for {label}{where} but the loaded model is {model}"


# ----------------------------------------------------------------------------------------------
# safetensors header
# ----------------------------------------------------------------------------------------------


class _Broken(Exception):
    """A file problem found while reading a header: ``status`` and a user-facing reason."""

    def __init__(self, reason: str, status: str = "broken") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _sniff(head: bytes, size: int) -> None:
    """Recognise files that are not safetensors at all, by their first bytes."""
    if size == 0:
        raise _Broken("empty file (0 bytes): the download or copy did not finish")
    if head.startswith(b"version https://git-lfs"):
        raise _Broken(
            f"a Git LFS pointer ({size} bytes), not the weights: run 'git lfs pull' in the repository "
            "or download the file itself"
        )
    start = head[:256].lstrip().lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--")):
        raise _Broken("an HTML page, not a safetensors file (a failed download? the site may need a login)")
    if size >= 8 and 8 + int.from_bytes(head[:8], "little") <= size:
        return  # the length field is plausible: validated by the caller
    if head.startswith(b"PK\x03\x04") or head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        raise _Broken(
            "a PyTorch pickle/zip file renamed to .safetensors: refused (unpickling can run code)", "refused"
        )
    if start.startswith((b"{", b"[")):
        raise _Broken("a JSON text file, not a safetensors file (no 8-byte header length)")
    if size < 8:
        raise _Broken(f"truncated: {size} bytes, shorter than the 8-byte header length of a safetensors file")


def read_safetensors_header(
    path: str | os.PathLike[str], size: int | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Read and validate a safetensors header without touching tensor data.

    Returns ``(header_length, tensors, metadata)`` where ``tensors`` maps a name to its
    ``{"dtype", "shape", "data_offsets"}``. Checks the 16 MB cap, JSON validity, string-only
    metadata, dtype/shape/byte-range agreement and that the offsets tile the data section exactly.
    Raises :class:`LibraryError` with the reason otherwise.
    """
    try:
        return _read_header(os.fspath(path), os.path.getsize(path) if size is None else size)[:3]
    except _Broken as exc:
        raise LibraryError(f"{os.fspath(path)}: {exc.reason}") from None


def _read_exact(fd: int, count: int) -> bytes:
    """Up to ``count`` bytes from ``fd`` (fewer only at end of file). os.read skips the buffered
    file object, which matters when a cold scan opens thousands of files."""
    chunks = []
    while count > 0:
        chunk = os.read(fd, min(count, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _read_header(path: str, size: int) -> tuple[int, dict[str, Any], dict[str, str], bytes]:
    """(header length, tensors, metadata, first bytes read) or raise :class:`_Broken`."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        head = _read_exact(fd, min(size, _FIRST_READ)) if size else b""
        _sniff(head, size)
        length = int.from_bytes(head[:8], "little")
        if length < 2:
            raise _Broken(f"header length is {length}: not a safetensors file")
        if length > HEADER_CAP:
            raise _Broken(
                f"header length {length:,} bytes is over the {HEADER_CAP // (1024 * 1024)} MB cap "
                "(a corrupt file, or not a safetensors file)"
            )
        if 8 + length > size:
            raise _Broken(
                f"truncated: the header needs {length:,} bytes but only {size - 8:,} follow the length field"
            )
        raw = head[8 : 8 + length]
        if len(raw) < length:
            raw += _read_exact(fd, length - len(raw))
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Broken(f"header is not UTF-8 text (bad byte at {exc.start}): not a safetensors file") from None
    try:
        header = json.loads(text)
    except ValueError as exc:
        raise _Broken(
            f"header is not valid JSON ({getattr(exc, 'msg', exc)} at byte {getattr(exc, 'pos', '?')})"
        ) from None
    if not isinstance(header, dict):
        raise _Broken(f"header JSON is a {type(header).__name__}, not an object of tensors")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise _Broken(f"__metadata__ is a {type(metadata).__name__}, not an object of strings")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise _Broken(
                f"metadata value for '{key}' is {type(value).__name__ if value is not None else 'null'}, "
                "not a string (safetensors metadata holds strings only)"
            )
    _check_offsets(header, size - 8 - length)
    return length, header, metadata, head


def _check_offsets(tensors: Mapping[str, Any], data_size: int) -> None:
    """Every tensor's bytes match its dtype×shape, and the byte ranges tile the data exactly."""
    spans: list[tuple[int, int, str]] = []
    append = spans.append
    sizes = _DTYPE_SIZES
    prod = math.prod
    for name, entry in tensors.items():
        try:
            dtype, shape = entry["dtype"], entry["shape"]
            start, end = entry["data_offsets"]
            itemsize = sizes[dtype]
            count = prod(shape)
        except (TypeError, KeyError, ValueError):
            _explain_bad_tensor(name, entry)
        if (
            type(start) is not int
            or type(end) is not int
            or not 0 <= start <= end
            or type(shape) is not list
            or type(count) is not int
            or (shape and min(shape) < 0)
        ):
            _explain_bad_tensor(name, entry)
        needed = count * itemsize
        if needed != end - start and math.ceil(needed) != end - start:
            raise _Broken(
                f"tensor '{name}' spans {end - start} bytes but its shape {shape} {dtype} "
                f"needs {math.ceil(needed)}: offsets and shapes disagree"
            )
        append((start, end, name))
    spans.sort()
    position = 0
    for start, end, name in spans:
        if start != position:
            if start < position:
                raise _Broken(f"tensor '{name}' overlaps another tensor's data offsets at byte {start}")
            raise _Broken(f"data offsets leave a gap of {start - position} bytes before tensor '{name}'")
        position = end
    if position > data_size:
        raise _Broken(
            f"truncated: the tensors need {position:,} data bytes but the file has {data_size:,} "
            "(offsets point beyond the end of the file)"
        )
    if position < data_size:
        raise _Broken(
            f"{data_size - position:,} bytes after the last tensor: the offsets do not cover the file"
        )


def _explain_bad_tensor(name: str, entry: Any) -> NoReturn:
    """Raise the specific reason a tensor description is invalid (the slow path)."""
    if not isinstance(entry, dict):
        raise _Broken(f"tensor '{name}' is described by a {type(entry).__name__}, not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _DTYPE_SIZES:
        raise _Broken(f"tensor '{name}' has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise _Broken(f"tensor '{name}' has an invalid shape {shape!r}")
    raise _Broken(f"tensor '{name}' has invalid data_offsets {offsets!r}")


# ----------------------------------------------------------------------------------------------
# What the header says (the cached "facts" of one file)
# ----------------------------------------------------------------------------------------------


def _header_facts(path: str, size: int) -> dict[str, Any]:
    """Everything the scan derives from one safetensors file's header, JSON-ready for the index."""
    try:
        length, tensors, metadata, head = _read_header(path, size)
    except _Broken as exc:
        return {"status": exc.status, "problem": exc.reason}
    except OSError as exc:
        return {"status": "broken", "problem": f"cannot read the file ({exc.strerror or exc})"}
    facts: dict[str, Any] = {"status": "ok", "problem": ""}
    blob = "\n" + "\n".join(tensors) + "\n"
    refused = _not_a_lora(blob)
    if refused:
        return {"status": "refused", "problem": refused}
    fmt = _network_format(blob, metadata)
    base, base_source = _detect_base(tensors, metadata, blob)
    if fmt == "kohya" and base == "sdxl":
        fmt = "kohya-sdxl"
    layout = analyse_layout(tensors)
    facts.update(network_format=fmt, base=base, base_source=base_source, algorithm=layout.algorithm)
    facts["rank"], facts["alpha"] = _rank_alpha(
        path, tensors, metadata, length, head, layout_rank=layout.rank
    )
    triggers, triggers_source, tag_counts = _metadata_triggers(metadata)
    facts.update(triggers=triggers, triggers_source=triggers_source, person_share=_person_share(tag_counts))
    if tag_counts:
        facts["top_tag"] = max(tag_counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
    output_name = metadata.get("ss_output_name", "").strip()
    facts["output_name"] = output_name if 0 < len(output_name) <= 200 else ""
    facts["usage_hint"] = metadata.get("modelspec.usage_hint", "")[:2000]
    facts["metadata"] = {k: metadata[k] for k in KEPT_METADATA if k in metadata and len(metadata[k]) <= 1000}
    if not tensors:
        facts["problem"] = "no LoRA tensors: the header lists no tensors at all"
    elif fmt == "unknown" and not layout.algorithm:
        facts["problem"] = (
            "no LoRA tensors recognised: the tensor names match no known layout (kohya lora_unet_/lora_te_, "
            "PEFT lora_A/lora_B, LyCORIS); loading it will likely fail"
        )
    elif layout.unsupported:
        return {
            "status": "refused",
            "problem": f"{layout.label} file: {layout.unsupported}",
            "algorithm": layout.algorithm,
        }
    elif layout.notes:
        facts["problem"] = "; ".join(layout.notes)
    return facts


def _not_a_lora(blob: str) -> str:
    """A reason to refuse a valid safetensors file that is not a LoRA, or "" (``blob`` as above)."""
    if not blob.strip() or ".lora" in blob or "lora_" in blob or "hada_" in blob or "lokr_" in blob:
        return ""
    if "\nmodel.diffusion_model." in blob or "\nfirst_stage_model." in blob or "\ncond_stage_model." in blob:
        return "a full Stable Diffusion checkpoint, not a LoRA: put it in models/Stable-diffusion"
    if any(f"\n{key}\n" in blob for key in ("emb_params", "clip_l", "clip_g")) or "\nstring_to_param" in blob:
        return "a textual-inversion embedding, not a LoRA: put it in the embeddings folder"
    return ""


def _network_format(blob: str, metadata: Mapping[str, str]) -> str:
    """The key layout, from ``blob`` = all tensor names joined by newlines (with a leading one)."""
    module = metadata.get("ss_network_module", "")
    lyco_markers = (".hada_w1_a", ".lokr_w1", ".lora_mid.", ".oft_blocks", ".hada_t1", ".lokr_w2_a")
    if module.startswith("lycoris") or any(marker in blob for marker in lyco_markers):
        return "lycoris"
    if ".lora_A." in blob or ".lora_B." in blob:
        return "peft"
    if "_lora.down.weight" in blob or ".lora.down.weight" in blob or "lora_linear_layer" in blob:
        return "diffusers"
    if "\nlora_unet_" in blob or "\nlora_te_" in blob or "\nlora_te1_" in blob or "\nlora_te2_" in blob:
        return "kohya"
    return "unknown"


_METADATA_BASES: tuple[tuple[str, str], ...] = (
    ("sd_v1", "sd15"),
    ("sd_v2", "sd2"),
    ("sdxl", "sdxl"),
    ("stable-diffusion-v1", "sd15"),
    ("stable-diffusion-v2", "sd2"),
    ("stable-diffusion-xl", "sdxl"),
)


def _metadata_base(metadata: Mapping[str, str]) -> tuple[str, str] | None:
    for key in ("ss_base_model_version", "modelspec.architecture"):
        value = metadata.get(key, "").strip()
        if not value:
            continue
        low = value.lower()
        for prefix, base in _METADATA_BASES:
            if low.startswith(prefix):
                return base, f"metadata {key} '{value}'"
        return "unknown", f"metadata {key} '{value}' (not SD1.5, SD2 or SDXL)"
    if metadata.get("ss_v2", "").strip().lower() == "true":
        return "sd2", "metadata ss_v2 'True'"
    return None


def _tensor_base(tensors: Mapping[str, Any], blob: str) -> tuple[str, str] | None:
    for marker in ("\nlora_te2_", "text_encoder_2.", "\nte2."):
        if marker in blob:
            return "sdxl", f"tensor names ('{marker.strip()}' = a second text encoder)"
    cross: dict[int, int] = {}
    te: dict[int, int] = {}
    for key, entry in tensors.items():
        if "attn2" not in key and "_proj" not in key:
            continue
        shape = entry["shape"]
        if len(shape) != 2 or not key.endswith(
            (".lora_down.weight", ".lora_A.weight", "_lora.down.weight", ".lora.down.weight", ".hada_w1_b")
        ):
            continue
        if "attn2" in key and ("to_k" in key or "to_v" in key):
            cross[shape[1]] = cross.get(shape[1], 0) + 1
        elif ("lora_te_" in key or "text_encoder." in key or key.startswith("lora_te1_")) and (
            "q_proj" in key or "k_proj" in key or "v_proj" in key
        ):
            te[shape[1]] = te.get(shape[1], 0) + 1
    if cross:
        width = max(cross, key=cross.__getitem__)
        base = {768: "sd15", 1024: "sd2", 2048: "sdxl"}.get(width)
        if base:
            return base, f"tensor widths (cross-attention input {width})"
        return "unknown", f"tensor widths (cross-attention input {width}: not 768, 1024 or 2048)"
    if te:
        width = max(te, key=te.__getitem__)
        base = {768: "sd15", 1024: "sd2"}.get(width)
        if base:
            return base, f"tensor widths (text encoder {width})"
    return None


#: UNet key names only one family of base models has (any naming: kohya ``_``, diffusers ``.``).
#: SDXL: a transformer depth above 1 (``transformer_blocks.1`` … ``.9``; SD1.x/SD2 have depth 1).
#: SD1.x/SD2: attention in the first down block, a fourth down/up block, or the sgm slots only
#: their UNet fills (``input_blocks.1.1``, ``input_blocks.2.1``, ``output_blocks.9``–``11``).
_SDXL_LAYOUT = re.compile(r"^(?:lora_unet_|unet\.).*transformer_blocks[._][1-9][._]", re.MULTILINE)
_SD1_LAYOUT = re.compile(
    r"^(?:lora_unet_|unet\.)(?:down_blocks[._]0[._]attentions|(?:down|up)_blocks[._]3[._]"
    r"|input_blocks[._][12][._]1[._]|output_blocks[._](?:9|10|11)[._])",
    re.MULTILINE,
)
_PROJ_DOWN = re.compile(r"proj_(?:in|out)(?:\.lora_down\.weight|\.lora_A\.weight)$")


def _layout_base(tensors: Mapping[str, Any], blob: str) -> tuple[str, str] | None:
    """The base from which UNet layers a file names, when widths cannot tell (e.g. a LoRA for a
    reduced-width model, or one without cross-attention keys).

    Only UNet keys count (``lora_unet_…``, ``unet.…``). SDXL-only names decide SDXL.
    SD1.x/SD2-only names decide the family; within it, a 4-D
    ``proj_in``/``proj_out`` LoRA (a 1x1 conv) is SD1.x and a 2-D one (a Linear,
    ``use_linear_projection``) SD2. A file that shows no such name decides nothing.
    """
    if _SDXL_LAYOUT.search(blob):
        return "sdxl", "tensor names (transformer depth above 1: an SDXL UNet)"
    if not _SD1_LAYOUT.search(blob):
        return None
    ranks = {len(e["shape"]) for k, e in tensors.items() if _PROJ_DOWN.search(k) and "shape" in e}
    if ranks == {4}:
        return (
            "sd15",
            "tensor names and shapes (an SD1.x UNet: attention in the first block, 1x1-conv proj_in)",
        )
    if ranks == {2}:
        return "sd2", "tensor names and shapes (an SD2 UNet: attention in the first block, linear proj_in)"
    return None


def _detect_base(tensors: Mapping[str, Any], metadata: Mapping[str, str], blob: str) -> tuple[str, str]:
    """(base, how it was decided): metadata first, else tensor widths, else UNet key names;
    tensors win a conflict (widths, or key names when widths are non-standard)."""
    from_meta = _metadata_base(metadata)
    from_tensors = _tensor_base(tensors, blob)
    if from_tensors is None or from_tensors[0] == "unknown":
        from_layout = _layout_base(tensors, blob)
        if from_layout is not None:
            from_tensors = (
                (from_layout[0], f"{from_layout[1]}; {from_tensors[1]}") if from_tensors else from_layout
            )
    if from_meta and from_tensors and from_meta[0] != from_tensors[0] and from_meta[0] != "unknown":
        if from_tensors[0] == "unknown":  # non-standard widths (e.g. a tiny test model): keep the metadata
            return from_meta[0], f"{from_meta[1]}; {from_tensors[1]}"
        return from_tensors[0], f"{from_tensors[1]}, overriding {from_meta[1]}"
    if from_meta:
        return from_meta
    if from_tensors:
        return from_tensors
    return "unknown", "unknown (no base-model metadata, no cross-attention or text-encoder tensors)"


def _rank_alpha(
    path: str,
    tensors: Mapping[str, Any],
    metadata: Mapping[str, str],
    length: int,
    head: bytes,
    *,
    layout_rank: int | None,
) -> tuple[int | None, float | None]:
    """``ss_network_dim``/``ss_network_alpha``, else the rank most layers have (every layout:
    kohya/PEFT/diffusers down tensors, LoHa ``hada_w1_b``, LoKr ``lokr_w1_b``/``lokr_w2_b``; see
    :mod:`assistant.layouts`) and the first ``.alpha`` scalar."""
    rank = _to_int(metadata.get("ss_network_dim"))
    alpha = _to_float(metadata.get("ss_network_alpha"))
    if rank is None:
        rank = layout_rank
    if alpha is None:
        alpha = _read_alpha(path, tensors, length, head)
    return rank, alpha


def _read_alpha(path: str, tensors: Mapping[str, Any], length: int, head: bytes) -> float | None:
    """The first ``.alpha`` scalar (4 bytes at most: from the first read, else one small pread)."""
    import struct

    alphas = sorted(k for k in tensors if k.endswith(".alpha"))
    if not alphas:
        return None
    entry = tensors[alphas[0]]
    formats = {"F32": "<f", "F16": "<e", "F64": "<d", "BF16": None}
    fmt = formats.get(entry["dtype"])
    start, end = entry["data_offsets"]
    if entry["shape"] not in ([], [1]) or (fmt is None and entry["dtype"] != "BF16"):
        return None
    offset = 8 + length + start
    if offset + (end - start) <= len(head):
        raw = head[offset : offset + end - start]
    else:
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                raw = handle.read(end - start)
        except OSError:
            return None
    if entry["dtype"] == "BF16":
        raw, fmt = b"\0\0" + raw, "<f"
    try:
        value = struct.unpack(fmt, raw)[0]  # type: ignore[arg-type]
    except struct.error:
        return None
    return round(float(value), 6) if math.isfinite(value) else None


def _to_int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value not in (None, "", "None") else None  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def _to_float(value: str | None) -> float | None:
    try:
        number = float(value) if value not in (None, "", "None") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number is not None and math.isfinite(number) else None


def _normal_tag(tag: str) -> str:
    return " ".join(tag.replace("_", " ").split()).strip()


def _metadata_triggers(metadata: Mapping[str, str]) -> tuple[list[str], str, dict[str, int]]:
    """Triggers declared by ModelSpec, else derived from ss_tag_frequency (see module docstring)."""
    counts: dict[str, int] = {}
    spelled: dict[str, str] = {}
    raw = metadata.get("ss_tag_frequency", "")
    if raw:
        try:
            folders = json.loads(raw)
        except ValueError:
            folders = None
        if isinstance(folders, dict):
            for tags in folders.values():
                if not isinstance(tags, dict):
                    continue
                for tag, count in tags.items():
                    if not isinstance(tag, str) or type(count) is not int or count <= 0:
                        continue
                    shown = _normal_tag(tag)
                    if not shown or len(shown) > 100:
                        continue
                    key = shown.casefold()
                    counts[key] = counts.get(key, 0) + count
                    spelled.setdefault(key, shown)
    declared = metadata.get("modelspec.trigger_phrase", "").strip()
    if declared:
        words = [w.strip() for w in declared.split(",") if w.strip()]
        return words[:20], "metadata modelspec.trigger_phrase", counts
    specific = sorted(
        ((n, key) for key, n in counts.items() if key not in GENERIC_TAGS),
        key=lambda item: (-item[0], item[1]),
    )
    if not specific:
        return [], "", counts
    top = specific[0][0]
    chosen = [spelled[key] for n, key in specific[:3] if n * 2 >= top]
    return chosen, f"ss_tag_frequency (top {len(chosen)} of {len(counts)} tags, generic tags skipped)", counts


def _person_share(counts: Mapping[str, int]) -> float:
    """Share of captions with a person-count tag, using the most frequent tag as the caption count."""
    if not counts:
        return 0.0
    captions = max(counts.values())
    people = max((counts.get(tag, 0) for tag in _PERSON_TAGS), default=0)
    return round(people / captions, 3)


_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


_KIND_TOKENS = tuple((kind, words, frozenset(words)) for kind, words in _KIND_WORDS)
_KIND_SUBSTRINGS = tuple(
    (kind, re.compile("|".join(re.escape(w) for w in words if len(w) >= 4))) for kind, words in _KIND_WORDS
)
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")


def _guess_kind(name: str, facts: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, kind_source) from the documented heuristic; the source always starts with 'guessed'."""
    low = name.lower()
    tokens = {t for t in _TOKEN_SPLIT.split(_CAMEL.sub(" ", name).lower()) if t}
    tokens |= {t.rstrip("0123456789") for t in tokens}
    for (kind, words, word_set), (_kind, pattern) in zip(_KIND_TOKENS, _KIND_SUBSTRINGS, strict=True):
        if tokens & word_set:
            word = next(w for w in words if w in tokens)
            return kind, f"guessed from name word '{word}'"
        match = pattern.search(low)
        if match:
            return kind, f"guessed from name word '{match.group(0)}'"
    share = float(facts.get("person_share") or 0.0)
    if share >= 0.5:
        return "character", f"guessed from tag frequency (person tags in {share:.0%} of captions)"
    top = str(facts.get("top_tag") or "").split()
    for kind, word_set in ((k, ws) for k, _w, ws in _KIND_TOKENS[1:3]):
        if word_set.intersection(top):
            return kind, f"guessed from tag frequency (most frequent tag '{' '.join(top)}')"
    return "other", "guessed: no name word or tag evidence"


# ----------------------------------------------------------------------------------------------
# Sidecars
# ----------------------------------------------------------------------------------------------


def _read_json_object(path: str) -> dict[str, Any]:
    with open(path, "rb") as handle:
        raw = handle.read(4 * 1024 * 1024 + 1)
    if len(raw) > 4 * 1024 * 1024:
        raise ValueError("larger than 4 MB")
    data = json.loads(raw.decode("utf-8-sig"))
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    return data


def _split_words(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    words: list[str] = []
    for item in items:
        if isinstance(item, str):
            words.extend(w.strip() for w in item.split(",") if w.strip())
    seen: set[str] = set()
    return [w for w in words if not (w.casefold() in seen or seen.add(w.casefold()))][:20]  # type: ignore[func-returns-value]


_A1111_SD_VERSION = {"sd1": "sd15", "sd15": "sd15", "sd2": "sd2", "sdxl": "sdxl"}


def _a1111_sidecar_facts(path: str) -> dict[str, Any]:
    """Fields of A1111's ``<stem>.json`` user-metadata sidecar (unknown/odd values are skipped)."""
    try:
        data = _read_json_object(path)
    except (OSError, ValueError) as exc:
        return {"warning": f"sidecar {os.path.basename(path)} ignored: {_short_error(exc)}"}
    facts: dict[str, Any] = {}
    triggers = _split_words(data.get("activation text"))
    if triggers:
        facts["triggers"] = triggers
    weight = data.get("preferred weight")
    if (
        isinstance(weight, int | float)
        and not isinstance(weight, bool)
        and weight != 0
        and LORA_WEIGHT[0] <= weight <= LORA_WEIGHT[1]
    ):
        facts["preferred_weight"] = float(weight)  # A1111 stores 0 for "not set"
    version = data.get("sd version")
    if isinstance(version, str) and version.strip().lower() in _A1111_SD_VERSION:
        facts["base"] = _A1111_SD_VERSION[version.strip().lower()]
        facts["base_source"] = f"sidecar 'sd version' {version.strip()!r}"
    for src, dst in (("negative text", "negative_text"), ("notes", "notes"), ("description", "description")):
        if isinstance(data.get(src), str) and data[src].strip():
            facts[dst] = data[src].strip()[:5000]
    kind = data.get("kind")
    if isinstance(kind, str) and kind.strip().lower() in KINDS:
        facts["kind"] = kind.strip().lower()
    return facts


def _civitai_base(value: str) -> str | None:
    low = value.lower()
    if low.startswith(("sdxl", "pony", "illustrious", "noobai")):
        return "sdxl"
    if low.startswith("sd 1"):
        return "sd15"
    if low.startswith("sd 2"):
        return "sd2"
    if low in ("", "other"):
        return None
    return "unknown"


def _civitai_facts(path: str) -> dict[str, Any]:
    """Fields of Civitai's ``<stem>.civitai.info`` (a model-version JSON)."""
    try:
        data = _read_json_object(path)
    except (OSError, ValueError) as exc:
        return {"warning": f"{os.path.basename(path)} ignored: {_short_error(exc)}"}
    facts: dict[str, Any] = {}
    triggers = _split_words(data.get("trainedWords"))
    if triggers:
        facts["triggers"] = triggers
    base_model = data.get("baseModel")
    if isinstance(base_model, str):
        base = _civitai_base(base_model.strip())
        if base:
            facts["base"] = base
            facts["base_source"] = f"civitai baseModel {base_model.strip()!r}"
    description = data.get("description")
    if isinstance(description, str) and description.strip():
        facts["description"] = re.sub(r"<[^>]{0,500}>", " ", description).strip()[:5000]
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("name"), str):
        facts["model_name"] = model["name"][:200]
    return facts


def _short_error(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at line {exc.lineno})"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(exc)


# ----------------------------------------------------------------------------------------------
# Scan index (cache on disk)
# ----------------------------------------------------------------------------------------------


class _Index:
    """The scan cache, two :mod:`marshal` files per set of roots.

    * hot ``lora-index-*.marshal``: ``path -> [size, mtime_ns, signature, fields, has_metadata]``,
      the finished :class:`LoraInfo` fields (metadata itself is read lazily from the cold file,
      see :class:`_LazyMetadata`), valid while the file's
      size/mtime and the ``signature`` (catalog digest, sidecar stats) hold. A warm scan reads
      only this file.
    * cold ``lora-facts-*.marshal``: ``path -> [size, mtime_ns, facts]``, what each header or
      sidecar said; loaded only when some entry must be merged again.

    marshal holds plain dicts, lists, tuples and strings here (loading it runs no code); a
    version key includes the Python version and a digest of this module's source (changed
    heuristics invalidate the cache), and anything unexpected is ignored.
    """

    def __init__(self, hot: Path | None, cold: Path | None) -> None:
        self.hot_file, self.cold_file = hot, cold
        self.old: dict[str, list[Any]] = _load_marshal(hot)
        self.new: dict[str, list[Any]] = {}
        self.changed = False
        self._old_facts: dict[str, list[Any]] | None = None
        self.new_facts: dict[str, list[Any]] = {}
        self.facts_changed = False
        self.live: set[str] = set()  # sidecar paths seen by this scan
        self.metadata_store = _MetadataStore(cold)

    def entry(self, path: str, size: int, mtime_ns: int) -> list[Any] | None:
        """The hot entry when the file is unchanged (and carry it into the new index)."""
        cached = self.old.get(path)
        if type(cached) is list and len(cached) == 5 and cached[0] == size and cached[1] == mtime_ns:
            self.new[path] = cached
            return cached
        return None

    def facts(self, path: str, size: int, mtime_ns: int, compute: Any) -> dict[str, Any]:
        """A file's facts: decoded from the cold index when unchanged, else ``compute(path, size)``."""
        self.live.add(path)
        if self._old_facts is None:
            self._old_facts = _load_marshal(self.cold_file)
        cached = self._old_facts.get(path)
        if (
            type(cached) is list
            and len(cached) == 3
            and cached[0] == size
            and cached[1] == mtime_ns
            and type(cached[2]) is dict
        ):
            self.new_facts[path] = cached
            return cached[2]
        facts = compute(path, size)
        self.new_facts[path] = [size, mtime_ns, facts]
        self.facts_changed = True
        return facts

    def remember(
        self,
        path: str,
        size: int,
        mtime_ns: int,
        *,
        signature: tuple[Any, ...],
        fields: dict[str, Any],
        metadata: Mapping[str, str],
    ) -> None:
        """Store the finished fields (strings interned, so marshal writes repeats once)."""
        fields = {k: _intern(v) for k, v in fields.items()}
        entry = [size, mtime_ns, signature, fields, 1 if metadata else 0]
        if self.old.get(path) != entry:
            self.changed = True
        self.new[path] = entry

    def save(self) -> None:
        if self.hot_file is not None and (self.changed or self.new.keys() != self.old.keys()):
            _atomic_write(self.hot_file, marshal.dumps({"version": _index_version(), "entries": self.new}))
        if self.cold_file is not None and (self.facts_changed or self._old_facts is not None):
            old = self._old_facts if self._old_facts is not None else _load_marshal(self.cold_file)
            live = self.live | self.new.keys()
            facts = {p: v for p, v in old.items() if p in live}
            facts.update(self.new_facts)
            if facts != old:
                _atomic_write(self.cold_file, marshal.dumps({"version": _index_version(), "entries": facts}))


def _intern(value: Any) -> Any:
    if type(value) is str:
        return sys.intern(value)
    if type(value) is tuple:
        return tuple(sys.intern(v) if type(v) is str else v for v in value)
    return value


def _load_marshal(file: Path | None) -> dict[str, list[Any]]:
    if file is None:
        return {}
    try:
        with open(file, "rb") as handle:
            data = marshal.loads(handle.read())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if isinstance(data, dict) and data.get("version") == _index_version():
        entries = data.get("entries")
        if isinstance(entries, dict):
            return entries
    return {}


def _code_digest() -> str:
    """A digest of this module's source and of :mod:`assistant.layouts` (the layout table): cached
    entries die with the heuristics that made them."""
    digest = hashlib.sha1()
    try:
        for source in (Path(__file__), Path(__file__).with_name("layouts.py")):
            digest.update(source.read_bytes())
    except OSError:
        return "unknown"
    return digest.hexdigest()[:12]


_CODE_DIGEST = _code_digest()


def _index_version() -> str:
    return f"{_INDEX_VERSION}/{sys.version_info[0]}.{sys.version_info[1]}/{_CODE_DIGEST}"


def _atomic_write(file: Path, data: bytes) -> None:
    """Write next to ``file`` and rename into place; a failed cache write is not an error."""
    tmp = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=file.name, suffix=".tmp", dir=file.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, file)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# ----------------------------------------------------------------------------------------------
# Folder walk
# ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Found:
    path: str  # as found under the root (absolute, not resolved)
    root: str
    name: str  # file name
    directory: str
    listing: frozenset[str]  # names in the same folder (sidecars, previews)
    links: frozenset[str]  # names in the folder that are symlinks
    previews: dict[str, str]  # stem -> preview image file name in the same folder
    sidecar_stems: frozenset[str]  # stems with a <stem>.json or <stem>.civitai.info here
    size: int = 0
    mtime_ns: int = 0
    problem: str = ""
    status: str = "ok"


def _inside(real: str, real_roots: Sequence[str]) -> bool:
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in real_roots)


def _walk(roots: Sequence[str], notes: list[str]) -> Iterator[_Found]:
    """Every LoRA-like file under the roots (subfolders included; hidden folders and macOS
    ``._*`` AppleDouble files skipped)."""
    real_roots = [os.path.realpath(r) for r in roots]
    visited: set[str] = set()
    suffixes = LOADABLE_SUFFIXES + PICKLE_SUFFIXES
    for root in roots:
        if not os.path.isdir(root):
            notes.append(
                f"LoRA folder {root} does not exist"
                if not os.path.exists(root)
                else f"{root} is not a folder"
            )
            continue
        stack = [root]
        while stack:
            directory = stack.pop()
            real_dir = os.path.realpath(directory)
            if real_dir in visited:
                continue
            visited.add(real_dir)
            try:
                with os.scandir(directory) as entries:
                    items = list(entries)
            except OSError as exc:
                notes.append(f"cannot list {directory}: {exc.strerror or exc}")
                continue
            listing = frozenset(e.name for e in items)
            links = frozenset(e.name for e in items if e.is_symlink())
            previews = _previews(listing)
            sidecar_stems = frozenset(
                n[: -len(".civitai.info")] if n.endswith(".civitai.info") else n[: -len(".json")]
                for n in listing
                if n.endswith((".json", ".civitai.info"))
            )
            subdirs: list[str] = []
            for entry in items:
                name = entry.name
                lower = name.lower()
                is_link = name in links
                if not lower.endswith(suffixes):
                    if not name.startswith(".") and _is_dir(entry):
                        if is_link and not _inside(os.path.realpath(entry.path), real_roots):
                            notes.append(f"folder link {entry.path} points outside the LoRA folders; skipped")
                        else:
                            subdirs.append(entry.path)
                    continue
                if name.startswith("._"):  # macOS AppleDouble metadata, not a model
                    continue
                found = _Found(entry.path, root, name, directory, listing, links, previews, sidecar_stems)
                if is_link:
                    target = os.path.realpath(entry.path)
                    if not os.path.exists(target):
                        found.status, found.problem = (
                            "broken",
                            f"symlink target is missing ({os.readlink(entry.path)})",
                        )
                        yield found
                        continue
                    if not _inside(target, real_roots):
                        found.status = "refused"
                        found.problem = f"symlink points outside the LoRA folders (to {target}); refused"
                        yield found
                        continue
                try:
                    st = entry.stat()
                except OSError as exc:
                    found.status, found.problem = "broken", f"cannot stat the file ({exc.strerror or exc})"
                    yield found
                    continue
                if not _stat_is_file(st.st_mode):
                    if _stat_is_dir(st.st_mode) and not name.startswith("."):
                        subdirs.append(entry.path)
                    continue
                found.size, found.mtime_ns = st.st_size, st.st_mtime_ns
                yield found
            stack.extend(sorted(subdirs, reverse=True))


_PREVIEW_RANK = {f".{ext}": rank for rank, ext in enumerate(PREVIEW_EXTENSIONS)}


def _previews(listing: Iterable[str]) -> dict[str, str]:
    """stem -> preview file name, in A1111's order: png, jpg, jpeg, webp, gif; ``<stem>.<ext>``
    before ``<stem>.preview.<ext>``."""
    ranked: dict[str, tuple[int, str]] = {}
    for file_name in listing:
        dot = file_name.rfind(".")
        rank = _PREVIEW_RANK.get(file_name[dot:].lower()) if dot > 0 else None
        if rank is None:
            continue
        stem, rank = file_name[:dot], rank * 2
        if stem.lower().endswith(".preview"):
            stem, rank = stem[: -len(".preview")], rank + 1
        if stem not in ranked or rank < ranked[stem][0]:
            ranked[stem] = (rank, file_name)
    return {stem: file_name for stem, (_rank, file_name) in ranked.items()}


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _stat_is_file(mode: int) -> bool:
    return (mode & 0o170000) == 0o100000


def _stat_is_dir(mode: int) -> bool:
    return (mode & 0o170000) == 0o040000


def _sidecar_path(found: _Found, name: str, real_roots: Sequence[str]) -> str | None:
    """``directory/name`` when it exists and (if a symlink) stays inside the roots."""
    if name not in found.listing:
        return None
    path = os.path.join(found.directory, name)
    if name in found.links and not _inside(os.path.realpath(path), real_roots):
        return None
    return path


# ----------------------------------------------------------------------------------------------
# Building one LoraInfo
# ----------------------------------------------------------------------------------------------


def _stem(file_name: str) -> str:
    return file_name.rsplit(".", 1)[0] if "." in file_name else file_name


class _CatalogView:
    """Exact and case-insensitive lookup of catalog entries, plus a digest for cache signatures."""

    def __init__(self, catalog: Catalog | None, file: str | None) -> None:
        self.exact = dict(catalog.loras) if catalog is not None else {}
        self.folded = {name.casefold(): entry for name, entry in reversed(self.exact.items())}
        digest = ""
        if catalog is not None and file is not None:
            with contextlib.suppress(OSError):
                digest = hashlib.sha1(Path(file).read_bytes()).hexdigest()
        self.digest = digest
        self.plain_key = (digest, None, None)  # the signature of a file without sidecars

    def get(self, name: str) -> Any:
        found = self.exact.get(name)
        return found if found is not None else self.folded.get(name.casefold())


_NO_SIDECARS: tuple[tuple[None, None], ...] = ((None, None), (None, None))


def _build_info(
    found: _Found,
    index: _Index,
    *,
    catalog: _CatalogView,
    real_roots: Sequence[str],
    reuse: Mapping[str, tuple[tuple[Any, ...], LoraInfo]],
    keys: dict[str, tuple[Any, ...]],
) -> LoraInfo:
    """One entry. ``reuse`` holds the previous scan's entries (path -> (key, info)) for refresh();
    the key of every loadable-format file is written to ``keys``."""
    name = _stem(found.name)
    suffix = found.name[len(name) :].lower()
    if found.status != "ok":
        return LoraInfo(
            name=name,
            path=found.path,
            size=found.size,
            mtime=found.mtime_ns / 1e9,
            status=found.status,  # type: ignore[arg-type]
            problem=found.problem,
        )
    if suffix in PICKLE_SUFFIXES:
        return LoraInfo(
            name=name,
            path=found.path,
            size=found.size,
            mtime=found.mtime_ns / 1e9,
            status="refused",
            problem=f"{suffix} is a pickle format: loading it can run arbitrary code; use .safetensors",
        )
    preview = found.previews.get(name)
    if preview is not None:
        preview = _sidecar_path(found, preview, real_roots)

    # the catalog digest and the sidecars' stats decide whether the cached fields still hold
    if name in found.sidecar_stems:
        sidecars: Sequence[tuple[str | None, tuple[int, int] | None]] = []
        signature: list[Any] = [catalog.digest]
        for sidecar in (f"{name}.json", f"{name}.civitai.info"):
            path = _sidecar_path(found, sidecar, real_roots)
            stat = None
            if path is not None:
                try:
                    st = os.stat(path)
                    stat = (st.st_size, st.st_mtime_ns)
                except OSError:
                    path = None
            sidecars.append((path, stat))  # type: ignore[attr-defined]
            signature.append(stat)
        signature_key = tuple(signature)
    else:
        sidecars, signature_key = _NO_SIDECARS, catalog.plain_key
    key = (found.size, found.mtime_ns, signature_key, preview)
    keys[found.path] = key
    previous = reuse.get(found.path)
    if previous is not None and previous[0] == key:
        index.entry(found.path, found.size, found.mtime_ns)
        _keep_sidecars(index, sidecars)
        return previous[1]

    cached = index.entry(found.path, found.size, found.mtime_ns)
    if (
        cached is not None
        and cached[2] == signature_key
        and type(cached[3]) is dict
        and type(cached[4]) is int
    ):
        fields, metadata = cached[3], cached[4]
        _keep_sidecars(index, sidecars)
    else:
        facts = index.facts(found.path, found.size, found.mtime_ns, _header_facts)
        if facts["status"] != "ok":
            fields = {"status": facts["status"], "problem": facts["problem"]}
            if facts.get("algorithm"):
                fields["algorithm"] = facts["algorithm"]
            metadata = ""
        else:
            fields = _merge(name, found, facts=facts, sidecars=sidecars, catalog=catalog, index=index)
            metadata = facts["metadata"]
        index.remember(
            found.path, found.size, found.mtime_ns, signature=signature_key, fields=fields, metadata=metadata
        )
    return LoraInfo(
        name=name,
        path=found.path,
        size=found.size,
        mtime=found.mtime_ns / 1e9,
        preview=preview if fields.get("status", "ok") == "ok" else None,
        metadata=(
            metadata
            if type(metadata) is dict
            else _LazyMetadata(index.metadata_store, found.path, found.size, found.mtime_ns)
            if metadata
            else {}
        ),
        **fields,
    )


def _keep_sidecars(index: _Index, sidecars: Sequence[tuple[str | None, tuple[int, int] | None]]) -> None:
    """Mark sidecars as still present, so their cached facts survive for the next re-merge."""
    for path, stat in sidecars:
        if path is not None and stat is not None:
            index.live.add(path)


class _MetadataStore:
    """Header metadata for warm-scanned entries, read from the cold index on first use (or, when
    the index no longer has the file, from the file's header again)."""

    def __init__(self, cold_file: Path | None) -> None:
        self.cold_file = cold_file
        self._facts: dict[str, list[Any]] | None = None
        self._lock = threading.Lock()

    def get(self, path: str, size: int, mtime_ns: int) -> dict[str, str]:
        with self._lock:
            if self._facts is None:
                self._facts = _load_marshal(self.cold_file)
            cached = self._facts.get(path)
        if (
            type(cached) is list
            and len(cached) == 3
            and cached[:2] == [size, mtime_ns]
            and type(cached[2]) is dict
        ):
            metadata = cached[2].get("metadata")
        else:
            metadata = _header_facts(path, size).get("metadata")
        return metadata if isinstance(metadata, dict) else {}


class _LazyMetadata(Mapping[str, str]):
    """Read-only trimmed header metadata, fetched on first use (keeps warm scans cheap)."""

    __slots__ = ("_data", "_key", "_store")

    def __init__(self, store: _MetadataStore, path: str, size: int, mtime_ns: int) -> None:
        self._store = store
        self._key = (path, size, mtime_ns)
        self._data: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._data is None:
            self._data = self._store.get(*self._key)
        return self._data

    def __getitem__(self, key: str) -> str:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return repr(self._load())

    def __reduce__(self) -> tuple[type[dict[str, str]], tuple[dict[str, str]]]:
        """Copies and pickles are plain dicts (``dataclasses.asdict``, ``copy.deepcopy``)."""
        return (dict, (dict(self._load()),))

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, str]:
        return dict(self._load())


def _merge(
    name: str,
    found: _Found,
    *,
    facts: Mapping[str, Any],
    sidecars: Sequence[tuple[str | None, tuple[int, int] | None]],
    catalog: _CatalogView,
    index: _Index,
) -> dict[str, Any]:
    """The LoraInfo fields of one loadable file: header facts < sidecar < civitai < catalog."""
    fields: dict[str, Any] = {
        "network_format": facts["network_format"],
        "algorithm": facts.get("algorithm", ""),
        "base": facts["base"],
        "base_source": facts["base_source"],
        "rank": facts["rank"],
        "alpha": facts["alpha"],
        "triggers": tuple(facts["triggers"]),
        "triggers_source": facts["triggers_source"] if facts["triggers"] else "",
        "description": facts.get("usage_hint", ""),
    }
    warnings = [facts["problem"]] if facts.get("problem") else []
    aliases: list[str] = []
    if facts["output_name"] and facts["output_name"] != name:
        aliases.append(facts["output_name"])
    if name.lower() in ("adapter_model", "pytorch_lora_weights") and found.directory != found.root:
        aliases.append(os.path.basename(found.directory))
    declared_kind: tuple[str, str] | None = None

    # 2.-3. sidecars: A1111 <stem>.json, then Civitai <stem>.civitai.info
    for (path, stat), reader, label in zip(
        sidecars, (_a1111_sidecar_facts, _civitai_facts), ("sidecar", "civitai"), strict=True
    ):
        if path is None or stat is None:
            continue
        extra = index.facts(path, stat[0], stat[1], lambda p, _size, read=reader: read(p))
        if "warning" in extra:
            warnings.append(extra["warning"])
            continue
        if "triggers" in extra:
            fields["triggers"], fields["triggers_source"] = tuple(extra["triggers"]), label
        if "base" in extra:
            fields["base"], fields["base_source"] = extra["base"], extra["base_source"]
        for key in ("preferred_weight", "negative_text", "notes", "description"):
            if key in extra:
                fields[key] = extra[key]
        if "kind" in extra:
            declared_kind = (extra["kind"], label)

    # 4. the project catalog
    entry = catalog.get(name)
    if entry is not None:
        if entry.kind:
            declared_kind = (entry.kind, "catalog")
        if entry.triggers is not None:
            fields["triggers"], fields["triggers_source"] = tuple(entry.triggers), "catalog"
        if entry.base:
            earlier, earlier_source = fields["base"], fields["base_source"]
            if earlier_source == "catalog" or earlier == "unknown":
                source = "catalog"
            elif entry.base == earlier:
                source = f"catalog (agrees with {earlier_source})"
            else:  # the catalog wins (it is the user's word), but the conflict stays visible
                source = f"catalog (overrides {earlier_source}, which says {earlier})"
                warnings.append(
                    f"the catalog says base {entry.base} but the file's {earlier_source} says {earlier}"
                )
            fields["base"], fields["base_source"] = entry.base, source
        if entry.preferred_weight is not None:
            fields["preferred_weight"] = entry.preferred_weight
        for key in ("negative_text", "source", "notes", "description"):
            if getattr(entry, key):
                fields[key] = getattr(entry, key)
        aliases.extend(entry.aliases)

    fields["kind"], fields["kind_source"] = declared_kind or _guess_kind(name, facts)
    fields["aliases"] = tuple(dict.fromkeys(a for a in aliases if a != name))
    if _TAG_UNSAFE.search(name):
        warnings.append(
            "the name contains ':', '<', '>' or a control character: a <lora:…> tag cannot name it"
        )
    fields["problem"] = "; ".join(warnings)
    return fields


# ----------------------------------------------------------------------------------------------
# The library
# ----------------------------------------------------------------------------------------------


_Hit = LoraInfo | tuple[LoraInfo, ...]


class Library:
    """An immutable snapshot of the user's LoRA folders, with fast name resolution.

    Build one with :meth:`scan` (folders on disk) or :meth:`from_infos` (in memory, for tests).
    :meth:`refresh` returns a *new* library; the old one stays valid. Resolution order:
    exact stem → case-insensitive stem (also width- and Unicode-form-insensitive: NFKC) → alias
    (``ss_output_name``, catalog aliases; exact then case-insensitive) → relative path
    (``sub/folder/name``) → :class:`LoraNotFound` with did-you-mean suggestions. When a step
    matches several files and exactly one is loadable, that one wins; otherwise
    :class:`AmbiguousLoraName` lists the candidates.
    """

    def __init__(
        self,
        infos: Iterable[LoraInfo],
        *,
        roots: Sequence[str] = (),
        catalog: str | None = None,
        cache_dir: str | None = None,
        notes: Sequence[str] = (),
        scan_seconds: float = 0.0,
        embeddings: Sequence[Any] = (),
        embedding_dirs: Sequence[str] = (),
    ) -> None:
        self._infos: tuple[LoraInfo, ...] = tuple(
            sorted(infos, key=lambda i: (i.name.casefold(), i.name, i.path))
        )
        self.roots: tuple[str, ...] = tuple(roots)
        self.catalog_path = catalog
        self.cache_dir = cache_dir
        self.notes: tuple[str, ...] = tuple(notes)
        self.scan_seconds = scan_seconds
        #: Textual-inversion embeddings (:class:`assistant.embeddings.EmbeddingInfo`), by name.
        self.embeddings: tuple[Any, ...] = tuple(embeddings)
        self.embedding_dirs: tuple[str, ...] = tuple(embedding_dirs)
        self._real_roots = tuple(os.path.realpath(r) for r in self.roots)
        self._hash_lock = threading.Lock()
        self._hash_cache: dict[str, list[Any]] | None = None
        self._hold_hash_writes = False  # hash_all writes the cache once at the end
        self._scan_keys: dict[str, tuple[Any, ...]] = {}
        self._build_maps()

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def scan(
        cls,
        roots: Sequence[str | os.PathLike[str]],
        *,
        catalog: str | os.PathLike[str] | None = DEFAULT_CATALOG,
        cache_dir: str | os.PathLike[str] | None = None,
        embedding_dirs: Sequence[str | os.PathLike[str]] = (),
        _previous: Library | None = None,
    ) -> Library:
        """Scan the folders (subfolders included) into a library.

        ``catalog``: a ``loras.yaml`` file (the default one may be absent; an explicitly given
        file must exist), or ``None`` for no catalog. Catalog errors raise :class:`PresetError`.
        ``cache_dir``: where the scan index (``lora-index-*.marshal`` and ``lora-facts-*.marshal``,
        keyed by path, size and mtime, see :class:`_Index`) and the hash cache
        (``lora-hashes.json``) live; ``None`` writes nothing to disk.
        A missing root is recorded in :attr:`notes`, never an error. Bad files never break the
        scan: they are listed with status ``broken``/``refused`` and the reason.
        ``embedding_dirs``: textual-inversion folders, listed in :attr:`embeddings`
        (:func:`assistant.embeddings.scan`; headers only).
        """
        started = time.perf_counter()
        if isinstance(roots, str | os.PathLike):
            roots = [roots]
        root_list = [os.path.abspath(os.fspath(r)) for r in roots]
        catalog_file = os.fspath(catalog) if catalog is not None else None
        loaded: Catalog | None = None
        is_default = catalog_file is not None and os.path.abspath(catalog_file) == os.path.abspath(
            DEFAULT_CATALOG
        )
        if catalog_file is not None and (os.path.exists(catalog_file) or not is_default):
            loaded = load_catalog(catalog_file)
        cache = os.fspath(cache_dir) if cache_dir is not None else None
        hot = cold = None
        if cache is not None:
            digest = hashlib.sha1("\0".join(os.path.realpath(r) for r in root_list).encode()).hexdigest()[:16]
            hot = Path(cache) / f"lora-index-{digest}.marshal"
            cold = Path(cache) / f"lora-facts-{digest}.marshal"
        index = _Index(hot, cold)
        notes: list[str] = []
        real_roots = [os.path.realpath(r) for r in root_list]
        view = _CatalogView(loaded, catalog_file)
        reuse: dict[str, tuple[tuple[Any, ...], LoraInfo]] = {}
        if _previous is not None:
            reuse = {
                p: (k, _previous._by_path[p])
                for p, k in _previous._scan_keys.items()
                if p in _previous._by_path
            }
        keys: dict[str, tuple[Any, ...]] = {}
        infos = [
            _build_info(found, index, catalog=view, real_roots=real_roots, reuse=reuse, keys=keys)
            for found in _walk(root_list, notes)
        ]
        index.save()
        if loaded is not None:
            present = {i.name.casefold() for i in infos}
            missing = sorted(n for n in loaded.loras if n.casefold() not in present)
            if missing:
                notes.append("catalog entries without a file: " + ", ".join(missing[:20]))
        from .config import DEFAULT_EMBEDDINGS_DIR
        from .embeddings import scan as scan_embeddings

        embedding_roots = [os.fspath(d) for d in embedding_dirs]
        default = os.path.realpath(DEFAULT_EMBEDDINGS_DIR)
        present = [d for d in embedding_roots if os.path.isdir(d) or os.path.realpath(d) != default]
        embeddings, embedding_notes = scan_embeddings(present)  # the default folder may be absent
        notes.extend(embedding_notes)
        library = cls(
            infos,
            roots=root_list,
            catalog=catalog_file,
            cache_dir=cache,
            notes=notes,
            embeddings=embeddings,
            embedding_dirs=embedding_roots,
        )
        library._scan_keys = keys
        if _previous is not None and _previous.cache_dir == cache:
            library._hash_cache = _previous._hash_cache
        library.scan_seconds = time.perf_counter() - started
        return library

    @classmethod
    def from_infos(cls, infos: Iterable[LoraInfo], embeddings: Sequence[Any] = ()) -> Library:
        """An in-memory library of ready-made entries (no folders; :meth:`refresh` returns it as is)."""
        return cls(infos, embeddings=embeddings)

    def refresh(self) -> Library:
        """Rescan the same roots, catalog and cache: a NEW library (this one is left unchanged).

        Unchanged files (same size, mtime, sidecars, catalog and preview) keep their
        :class:`LoraInfo` objects, so a refresh costs little more than a ``stat`` per file.
        A library made by :meth:`from_infos` has nothing to rescan and returns itself.
        """
        if not self.roots:
            return self
        return Library.scan(
            self.roots,
            catalog=self.catalog_path,
            cache_dir=self.cache_dir,
            embedding_dirs=self.embedding_dirs,
            _previous=self,
        )

    def _build_maps(self) -> None:
        """The maps resolve() needs; the rarer ones (paths, spellings, search text) are built lazily."""
        infos = self._infos
        self._exact = _index_by((info.name, info) for info in infos)
        self._lower = _index_by((_fold(info.name), info) for info in infos)
        with_aliases = [info for info in infos if info.aliases]
        self._alias = _index_by((name, info) for info in with_aliases for name in info.aliases)
        self._alias_lower = _index_by((_fold(name), info) for info in with_aliases for name in info.aliases)
        self._by_path = {info.path: info for info in infos}

    @functools.cached_property
    def _relative_map(self) -> dict[str, _Hit]:
        pairs = ((self._relative(info), info) for info in self._infos)
        return _index_by((_fold(rel), info) for rel, info in pairs if rel and rel != info.name)

    @functools.cached_property
    def _spellings(self) -> dict[str, str]:
        spellings: dict[str, str] = {}
        for info in self._infos:
            spellings.setdefault(_fold(info.name), info.name)
            for name in info.aliases:
                spellings.setdefault(_fold(name), name)
        return spellings

    @functools.cached_property
    def _trigrams(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for key in self._spellings:
            for gram in _grams(key):
                index.setdefault(gram, []).append(key)
        return index

    @functools.cached_property
    def _haystacks(self) -> list[tuple[LoraInfo, str]]:
        rows = []
        for info in self._infos:
            parts = (info.name, *info.aliases, *info.triggers, info.notes, info.description, info.kind)
            rows.append((info, _fold("\n".join(parts))))
        return rows

    def _relative(self, info: LoraInfo) -> str:
        """``sub/name`` of an entry relative to its root (posix separators), "" when not under one."""
        for root in self.roots:
            prefix = root.rstrip(os.sep) + os.sep
            if info.path.startswith(prefix):
                rel = info.path[len(prefix) :]
                return _stem(rel).replace(os.sep, "/")
        return ""

    # -- listing ----------------------------------------------------------------------------------

    def all(self) -> list[LoraInfo]:
        """Every entry, refused and broken included, sorted by name (case-insensitive)."""
        return list(self._infos)

    def loadable(self) -> list[LoraInfo]:
        """The entries with status ``ok``, sorted by name."""
        return [info for info in self._infos if info.status == "ok"]

    def __len__(self) -> int:
        return len(self._infos)

    def __bool__(self) -> bool:
        """Always true: an empty library is still a library (``lib.refresh() or lib`` must not
        fall back to the stale one). Use ``len(lib)`` to test for entries."""
        return True

    def __iter__(self) -> Iterator[LoraInfo]:
        return iter(self._infos)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __repr__(self) -> str:
        loadable = len(self.loadable())
        return f"Library({len(self._infos)} entries, {loadable} loadable, roots={list(self.roots)!r})"

    def search(self, text: str = "", *, kind: str | None = None, base: str | None = None) -> list[LoraInfo]:
        """Entries whose name, aliases, triggers, notes or description contain ``text`` (any case),
        optionally only of one ``kind`` and/or ``base``. Unknown kinds or bases raise LibraryError."""
        if kind is not None and kind not in KINDS:
            raise LibraryError(f"unknown kind '{kind}'; use one of: {', '.join(KINDS)}")
        if base is not None and base not in BASES:
            raise LibraryError(f"unknown base '{base}'; use one of: {', '.join(BASES)}")
        needle = _fold((text or "").strip())
        return [
            info
            for info, hay in self._haystacks
            if (not needle or needle in hay)
            and (kind is None or info.kind == kind)
            and (base is None or info.base == base)
        ]

    # -- resolution -------------------------------------------------------------------------------

    def _lookup(self, name: str) -> _Hit | None:
        hit = self._exact.get(name)
        if hit is not None:
            return hit
        if type(name) is not str or not name or len(name) > _MAX_NAME:
            return None
        key = _fold(name)
        hit = self._lower.get(key) or self._alias.get(name) or self._alias_lower.get(key)
        if hit is None:
            hit = self._relative_map.get(key.replace("\\", "/"))
        if hit is None and name != name.strip():
            return self._lookup(name.strip())
        if hit is None and key.endswith(".safetensors"):  # the file name, as a file manager shows it
            return self._lookup(name[: -len(".safetensors")])
        return hit

    def resolve(self, name: str) -> LoraInfo:
        """The entry for a name written in a prompt (any status: check ``info.loadable``).

        Raises :class:`LoraNotFound` (with did-you-mean suggestions) or
        :class:`AmbiguousLoraName`. Never touches the filesystem.
        """
        hit = self._lookup(name) if isinstance(name, str) else None
        if type(hit) is LoraInfo:
            return hit
        if hit:
            raise AmbiguousLoraName(str(name), self._candidates(hit))  # type: ignore[arg-type]
        raise _not_found(name, self.suggest(name) if isinstance(name, str) else [])

    def get(self, name: str) -> LoraInfo | None:
        """Like :meth:`resolve` but ``None`` instead of raising (also for ambiguous names)."""
        hit = self._lookup(name) if isinstance(name, str) else None
        return hit if type(hit) is LoraInfo else None

    def _candidates(self, hits: tuple[LoraInfo, ...]) -> list[str]:
        """Names that tell the hits apart: the names, else ``sub/name``, else the file names (with
        their extension: ``evil.ckpt`` and ``evil.pt`` are both ``evil``), refused ones marked."""
        names = [info.name for info in hits]
        if len(set(names)) == len(names):
            return names
        relative = [self._relative(info) or info.path for info in hits]
        if len(set(relative)) == len(relative):
            return relative
        return [os.path.basename(info.path) + ("" if info.loadable else f" ({info.status})") for info in hits]

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` known names or aliases close to ``name``, best first (prefix/substring
        matches, then similar spellings). Empty for empty, over-long or non-text input."""
        if not isinstance(name, str) or not name.strip() or len(name) > 200 or n <= 0:
            return []
        key = _fold(name.strip())
        keys = self._spellings
        contained = sorted(
            (k for k in keys if len(key) >= 3 and (k.startswith(key) or key in k or k in key) and k != key),
            key=lambda k: (not k.startswith(key), abs(len(k) - len(key)), k),
        )
        # similar spellings: difflib on the 100 keys sharing the most 3-grams (not on all keys)
        shared: Counter[str] = Counter()
        grams = self._trigrams
        for gram in _grams(key):
            shared.update(grams.get(gram, ()))
        pool = [k for k, _count in shared.most_common(100)]
        close = difflib.get_close_matches(key, pool, n=n, cutoff=0.6)
        picked = list(dict.fromkeys([*contained, *close]))
        return [keys[k] for k in picked[:n]]

    # -- hashes -----------------------------------------------------------------------------------

    @overload
    def hashes(self, name_or_info: str | LoraInfo) -> Hashes: ...

    @overload
    def hashes(self, name_or_info: str | LoraInfo, *, compute: bool) -> Hashes | None: ...

    def hashes(self, name_or_info: str | LoraInfo, *, compute: bool = True) -> Hashes | None:
        """A1111 (12 hex), AutoV2 (10 hex) and full sha256 of a loadable LoRA.

        Read from the disk cache (``cache_dir/lora-hashes.json``, keyed by path, size and
        mtime) or computed now in one pass over the file (with ``compute=False``: None instead of
        reading the file). Raises :class:`LoraNotFound` for an unknown name and
        :class:`LibraryError` for an entry that is not loadable or has changed into a
        non-safetensors file.
        """
        info = self.resolve(name_or_info) if isinstance(name_or_info, str) else name_or_info
        if not isinstance(info, LoraInfo):
            raise LibraryError(f"hashes() takes a LoRA name or a LoraInfo, not {type(info).__name__}")
        known = self._by_path.get(info.path)
        if known is None and self.roots:
            raise LibraryError(f"'{info.name}' ({info.path}) is not part of this library")
        info = known or info
        if not info.loadable:
            raise LibraryError(f"cannot hash '{info.name}': it is {info.status} ({info.problem})")
        try:
            st = os.stat(info.path)
        except OSError as exc:
            raise LibraryError(f"cannot hash '{info.name}': {exc.strerror or exc} ({info.path})") from None
        with self._hash_lock:
            cache = self._load_hash_cache()
            cached = cache.get(info.path)
            if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
                sha, addnet = cached[2], cached[3]
            elif not compute:
                return None
            else:
                sha, addnet = _file_hashes(info)
                cache[info.path] = [st.st_size, st.st_mtime_ns, sha, addnet]
                if not self._hold_hash_writes:
                    self._write_hash_cache()
        return Hashes(
            a1111=addnet[:12], autov2=sha[:10], sha256=sha, addnet=addnet, embedded=embedded_hash(info)
        )

    def hash_all(self, *, max_bytes: int | None = None) -> int:
        """Hash every loadable LoRA not in the cache yet (up to ``max_bytes`` each), writing the
        cache once at the end; returns how many files were read. For a background thread."""
        read = 0
        self._hold_hash_writes = True
        try:
            for info in self.loadable():
                if max_bytes is not None and info.size > max_bytes:
                    continue
                try:
                    if self.hashes(info, compute=False) is None:
                        self.hashes(info)
                        read += 1
                except (LibraryError, OSError):
                    continue  # deleted or replaced meanwhile: a later listing says so
        finally:
            self._hold_hash_writes = False
            if read:
                with self._hash_lock:
                    self._write_hash_cache()
        return read

    def _write_hash_cache(self) -> None:
        """Write the hash cache, merged with what other processes wrote meanwhile (hold the lock)."""
        if self.cache_dir is None:
            return
        cache = self._load_hash_cache()
        on_disk = _read_hash_file(Path(self.cache_dir) / "lora-hashes.json")
        on_disk.update(cache)
        cache.update(on_disk)
        _atomic_write(
            Path(self.cache_dir) / "lora-hashes.json", json.dumps({"version": 1, "entries": on_disk}).encode()
        )

    def cached_hashes(self, name_or_info: str | LoraInfo) -> Hashes | None:
        """:meth:`hashes` when the disk cache already has them, else None (never reads the file)."""
        return self.hashes(name_or_info, compute=False)

    def _load_hash_cache(self) -> dict[str, list[Any]]:
        if self._hash_cache is None:
            self._hash_cache = {}
            if self.cache_dir is not None:
                self._hash_cache = _read_hash_file(Path(self.cache_dir) / "lora-hashes.json")
        return self._hash_cache


def embedded_hash(info: LoraInfo) -> str:
    """kohya's precomputed ``sshs_model_hash`` (64 hex, lower case) from the header, "" if none."""
    embedded = str(info.metadata.get("sshs_model_hash", "")).strip().lower()
    return embedded if re.fullmatch(r"[0-9a-f]{64}", embedded) else ""


def with_hashes(loras: Sequence[PlannedLora], library: Library) -> tuple[PlannedLora, ...]:
    """``loras`` with each empty ``hash`` filled in with what A1111 writes in ``Lora hashes``
    (:attr:`Hashes.infotext`): the one hashing path of Generate, blind box, A/B, sweeps, the API
    and the CLI, so one file has one hash in every infotext. Plans leave hashes empty (they stay
    pure and fast); a file that cannot be hashed keeps ``""``."""
    filled: list[PlannedLora] = []
    for lora in loras:
        digest = lora.hash
        if not digest:
            try:
                digest = library.hashes(library.resolve(lora.name)).infotext
            except (LoraMixerError, OSError) as err:
                _log.warning("no hash for LoRA %s: %s", lora.name, err)
        filled.append(dataclasses.replace(lora, hash=digest) if digest != lora.hash else lora)
    return tuple(filled)


def _read_hash_file(file: Path) -> dict[str, list[Any]]:
    """``path -> [size, mtime_ns, sha256, addnet]`` from the hash cache; {} when absent or odd."""
    try:
        with open(file, "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        return {}
    return {
        k: v
        for k, v in entries.items()
        if isinstance(v, list) and len(v) == 4 and all(isinstance(x, str) and len(x) == 64 for x in v[2:])
    }


def _fold(text: str) -> str:
    """The case- and width-insensitive form of a name: NFKC (full-width ｃａｔ → cat, composed
    accents) then casefold."""
    return unicodedata.normalize("NFKC", text).casefold()


def _grams(text: str) -> set[str]:
    """The 3-character pieces of `` text `` (padded, so short names have some)."""
    padded = f" {text} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def _index_by(pairs: Iterable[tuple[str, LoraInfo]]) -> dict[str, _Hit]:
    """key -> the one entry, or the reduced hit when several entries share the key."""
    out: dict[str, Any] = {}
    shared: dict[str, list[LoraInfo]] = {}
    for key, info in pairs:
        if key in out:
            shared.setdefault(key, [out[key]]).append(info)
        else:
            out[key] = info
    for key, infos in shared.items():
        out[key] = _reduce(infos)
    return out


def _reduce(hits: list[LoraInfo]) -> _Hit:
    """One entry, or the loadable one among several, or all of them (ambiguous)."""
    if len(hits) == 1:
        return hits[0]
    loadable = [h for h in hits if h.status == "ok"]
    if len(loadable) == 1:
        return loadable[0]
    return tuple(loadable or hits)


def _not_found(name: object, suggestions: Sequence[str]) -> LoraNotFound:
    text = name if isinstance(name, str) else repr(name)
    shown = text if len(text) <= 80 else text[:60] + f"… ({len(text)} characters)"
    shown = shown.encode("unicode_escape").decode("ascii") if _TAG_UNSAFE.search(shown) else shown
    message = f"LoRA not found: '{shown}'."
    if suggestions:
        message += " Did you mean: " + ", ".join(f"'{s}'" for s in suggestions) + "?"
    else:
        message += " Run 'python -m assistant loras' to list the library."
    return LoraNotFound(text, suggestions, message=message)


def _file_hashes(info: LoraInfo) -> tuple[str, str]:
    """(sha256 of the whole file, sha256 of the bytes after the safetensors header), one pass."""
    whole = hashlib.sha256()
    after = hashlib.sha256()
    try:
        with open(info.path, "rb") as handle:
            head = handle.read(8)
            whole.update(head)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length < 0 or length > HEADER_CAP:
                raise LibraryError(f"cannot hash '{info.name}': the file no longer has a safetensors header")
            header = handle.read(length)
            whole.update(header)
            while chunk := handle.read(1024 * 1024):
                whole.update(chunk)
                after.update(chunk)
    except OSError as exc:
        raise LibraryError(f"cannot hash '{info.name}': {exc.strerror or exc} ({info.path})") from None
    return whole.hexdigest(), after.hexdigest()
