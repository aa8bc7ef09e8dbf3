"""What one file's safetensors header says: network format, base model, rank and alpha.

:func:`_header_facts` is everything a scan derives from a header (the cached "facts" of a file,
JSON-ready for the index): whether it is a LoRA at all (a full checkpoint or an embedding is
refused), its key layout (kohya, PEFT, diffusers, LyCORIS; the algorithm from
:mod:`assistant.layouts`), its base model (metadata, else tensor widths, else UNet key names;
tensors win a conflict), its rank and alpha, and the trigger words and tag statistics
:mod:`.guess` reads from the metadata. :func:`file_base` runs the same detection for the engine's
check before loading, and :func:`base_mismatch` is the one wording of a base mismatch.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

from ..layouts import analyse as analyse_layout
from .guess import _metadata_triggers, _person_share
from .header import _Broken, _read_header

#: Metadata keys kept in :attr:`LoraInfo.metadata` (values longer than 1000 characters are dropped).
KEPT_METADATA = (
    "ss_output_name", "ss_base_model_version", "ss_v2", "ss_sd_model_name", "ss_network_module",
    "ss_network_dim", "ss_network_alpha", "ss_network_args", "ss_training_comment", "ss_num_train_images",
    "ss_num_epochs", "ss_resolution", "ss_clip_skip", "ss_learning_rate", "ss_training_started_at",
    "sshs_model_hash", "sshs_legacy_hash", "modelspec.architecture", "modelspec.title",
    "modelspec.trigger_phrase", "modelspec.usage_hint", "modelspec.author", "modelspec.description",
    "modelspec.resolution", "modelspec.implementation",
)  # fmt: skip

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
