"""What a LoRA file is made of, from its tensor names and shapes alone (pure: no torch).

A LoRA file stores, per patched layer ("module"), a few tensors whose names end in what they are:

=================  ===========================================================  =================
algorithm          tensors per module (after ``<module stem>.``)                 written by
=================  ===========================================================  =================
``lora``           ``lora_down.weight`` + ``lora_up.weight`` (+ ``alpha``);      kohya sd-scripts,
                   PEFT ``lora_A.weight``/``lora_B.weight``; diffusers'          diffusers, PEFT,
                   ``…lora.down.weight``/``lora_linear_layer.down.weight``       LyCORIS
``locon``          ``lora`` on 3x3 convolutions too (kohya ``conv_dim``)         kohya, LyCORIS
``tucker``         ``lora`` with ``lora_mid.weight`` (3x3 core, LoCon Tucker)    LyCORIS
``dora``           ``lora`` with ``dora_scale`` (weight-decomposed)              LyCORIS
``loha``           ``hada_w1_a/b``, ``hada_w2_a/b`` (+ ``hada_t1/t2`` Tucker)     LyCORIS
``lokr``           ``lokr_w1`` or ``lokr_w1_a/b``, ``lokr_w2`` or ``lokr_w2_a/b``  LyCORIS
                   (+ ``lokr_t2`` Tucker)
``full``           ``diff`` (+ ``diff_b``, the bias difference)                  LyCORIS "full"
=================  ===========================================================  =================

LoHa, LoKr and full files with ``dora_scale`` are named ``loha+dora``, ``lokr+dora``,
``full+dora``. Norm-layer differences (``w_norm``/``b_norm``, LyCORIS' ``train_norm``) may come
with any of them. LyCORIS' OFT/BOFT (``oft_blocks``), GLoRA (``a1.weight`` …) and IA3
(``on_input``) are recognised and refused: the engine cannot apply them.

:func:`analyse` reads a safetensors header's tensor table (name -> ``{"shape": …}``) once, in one
pass over the names, and is what the library shows (``algorithm``, ``rank``) and what decides at
scan time whether the engine can apply a file. :func:`modules` groups the names per module for the
engine's loader. Both share one table of tensor-name endings (:data:`PARAMS`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALGORITHMS",
    "PARAMS",
    "Layout",
    "analyse",
    "component_of",
    "modules",
    "split_key",
]

#: Algorithms the library names (``+dora`` may follow loha, lokr and full).
ALGORITHMS = ("lora", "locon", "tucker", "dora", "loha", "lokr", "full")

#: tensor-name ending (after the module stem) -> (module kind, role)
PARAMS: dict[str, tuple[str, str]] = {
    "lora_down.weight": ("lora", "down"),
    "lora_up.weight": ("lora", "up"),
    "lora_mid.weight": ("lora", "mid"),
    "lora_A.weight": ("lora", "down"),
    "lora_B.weight": ("lora", "up"),
    "down.weight": ("lora", "down"),  # diffusers: …to_q_lora.down.weight, …lora_linear_layer.down.weight
    "up.weight": ("lora", "up"),
    "alpha": ("meta", "alpha"),
    "dora_scale": ("meta", "dora_scale"),
    "lora_magnitude_vector": ("meta", "magnitude"),  # PEFT's DoRA (diffusers loads it)
    "lora_magnitude_vector.weight": ("meta", "magnitude"),
    "hada_w1_a": ("loha", "w1_a"),
    "hada_w1_b": ("loha", "w1_b"),
    "hada_w2_a": ("loha", "w2_a"),
    "hada_w2_b": ("loha", "w2_b"),
    "hada_t1": ("loha", "t1"),
    "hada_t2": ("loha", "t2"),
    "lokr_w1": ("lokr", "w1"),
    "lokr_w1_a": ("lokr", "w1_a"),
    "lokr_w1_b": ("lokr", "w1_b"),
    "lokr_w2": ("lokr", "w2"),
    "lokr_w2_a": ("lokr", "w2_a"),
    "lokr_w2_b": ("lokr", "w2_b"),
    "lokr_t1": ("lokr", "t1"),
    "lokr_t2": ("lokr", "t2"),
    "diff": ("full", "diff"),
    "diff_b": ("full", "diff_b"),
    "w_norm": ("norm", "w"),
    "b_norm": ("norm", "b"),
    "oft_blocks": ("oft", "blocks"),
    "oft_diag": ("oft", "blocks"),
    "rescale": ("oft", "rescale"),
    "a1.weight": ("glora", "a1"),
    "a2.weight": ("glora", "a2"),
    "b1.weight": ("glora", "b1"),
    "b2.weight": ("glora", "b2"),
    "on_input": ("ia3", "on_input"),
}

#: The roles a module of each kind needs (any one group of alternatives per line).
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "lora": (("down",), ("up",)),
    "loha": (("w1_a",), ("w1_b",), ("w2_a",), ("w2_b",)),
    "lokr": (("w1", "w1_a"), ("w2", "w2_a")),
    "full": (("diff",),),
    "norm": (("w", "b"),),
}

#: Kinds LyCORIS writes that the engine does not apply, with what they are.
UNSUPPORTED_KINDS = {
    "oft": "LyCORIS OFT/BOFT (orthogonal fine-tuning, 'oft_blocks')",
    "glora": "LyCORIS GLoRA ('a1.weight'/'b1.weight')",
    "ia3": "LyCORIS (IA)^3 ('on_input')",
}

#: Module stems: diffusers' attention-processor layouts put the LoRA one level below the layer.
_STEM_TAILS = (".lora_linear_layer", "_lora", ".lora")

_COMPONENT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("lora_unet_", "unet"),
    ("unet.", "unet"),
    ("lora_te2_", "text_encoder_2"),
    ("text_encoder_2.", "text_encoder_2"),
    ("lora_te1_", "text_encoder"),
    ("lora_te_", "text_encoder"),
    ("text_encoder.", "text_encoder"),
)


def split_key(key: str) -> tuple[str, str] | None:
    """``(module stem, tensor-name ending)`` of a LoRA tensor name, or None for an unknown name.

    ``lora_unet_…_to_q.lora_down.weight`` -> (``lora_unet_…_to_q``, ``lora_down.weight``);
    ``unet.….to_q.lora_linear_layer.down.weight`` -> (``unet.….to_q``, ``down.weight``).
    """
    head, _, last = key.rpartition(".")
    if not head:
        return None
    if last == "weight":
        stem, _, middle = head.rpartition(".")
        param = f"{middle}.weight"
        if param not in PARAMS or not stem:
            # diffusers' "…to_q_lora.down.weight": the stem ends in "_lora"
            return None
    else:
        stem, param = head, last
        if param not in PARAMS:
            return None
    for tail in _STEM_TAILS:
        if stem.endswith(tail) and param in ("down.weight", "up.weight"):
            return stem[: -len(tail)], param
    if param in ("down.weight", "up.weight"):
        return None  # "x.down.weight" with no LoRA marker: not a LoRA tensor
    return stem, param


def component_of(stem: str) -> str:
    """``unet``, ``text_encoder`` or ``text_encoder_2`` for a module stem ("" when none)."""
    for prefix, component in _COMPONENT_PREFIXES:
        if stem.startswith(prefix):
            return component
    return ""


@dataclass(frozen=True, slots=True)
class Module:
    """One patched layer of a file: its kind and the tensor names per role."""

    stem: str
    kind: str  # lora | loha | lokr | full | norm | oft | glora | ia3
    tensors: dict[str, str] = field(default_factory=dict)  # role -> tensor name

    @property
    def component(self) -> str:
        return component_of(self.stem)

    @property
    def dora(self) -> bool:
        return "dora_scale" in self.tensors


def modules(keys: Iterable[str]) -> tuple[dict[str, Module], list[str]]:
    """The file's modules by stem, and the tensor names of no known layout.

    A module's kind is the kind of its weight tensors (``alpha``/``dora_scale`` go with any);
    a stem whose tensors mix kinds keeps the first weight kind seen.
    """
    found: dict[str, dict[str, str]] = {}
    kinds: dict[str, str] = {}
    unknown: list[str] = []
    for key in keys:
        parts = split_key(key)
        if parts is None:
            unknown.append(key)
            continue
        stem, param = parts
        kind, role = PARAMS[param]
        found.setdefault(stem, {})[role] = key
        if kind != "meta":
            kinds.setdefault(stem, kind)
    out = {stem: Module(stem, kinds.get(stem, "meta"), roles) for stem, roles in found.items()}
    return out, unknown


@dataclass(frozen=True, slots=True)
class Layout:
    """What :func:`analyse` found.

    ``algorithm``: one of :data:`ALGORITHMS` (``loha+dora`` …), "" when the file names no
    layer; ``rank``: the most common rank over the modules (None when no module has one:
    ``full``, LoKr with both factors whole); ``counts``: modules per kind; ``dora``: "" or the
    axis ``dora_scale`` normalises (``out``, ``in``, ``out+in``); ``unsupported``: why the
    engine cannot apply the file ("" when it can); ``notes``: what it can apply only in part
    (incomplete modules, unknown tensor names); ``diffusers``: the plain LoRA layouts that
    diffusers' own loader reads (``lora`` modules without ``lora_mid``/``dora_scale``).
    """

    algorithm: str = ""
    rank: int | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    dora: str = ""
    unsupported: str = ""
    notes: tuple[str, ...] = ()
    diffusers: bool = True
    components: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        """``LoHa (Tucker), 240 layers`` — for cards and messages."""
        names = {"lora": "LoRA", "locon": "LoCon", "tucker": "LoCon (Tucker)", "dora": "DoRA"}
        names |= {"loha": "LoHa", "lokr": "LoKr", "full": "full (diff)", "oft": "OFT", "ia3": "(IA)^3"}
        names |= {"glora": "GLoRA"}
        head, _, extra = self.algorithm.partition("+")
        text = names.get(head, head or "no layers")
        return text + (" + DoRA" if extra == "dora" else "")


def _shape(tensors: Mapping[str, Any], key: str | None) -> list[int]:
    if key is None:
        return []
    entry = tensors.get(key)
    shape = entry.get("shape") if isinstance(entry, Mapping) else None
    return list(shape) if isinstance(shape, list) else []


def _module_rank(module: Module, tensors: Mapping[str, Any]) -> int | None:
    """The rank LyCORIS scales by (``alpha / rank``), as A1111 and LyCORIS read it."""
    roles = module.tensors
    if module.kind == "lora":
        shape = _shape(tensors, roles.get("down"))
        return shape[0] if shape else None
    if module.kind == "loha":
        shape = _shape(tensors, roles.get("w1_b"))
        return shape[0] if shape else None
    if module.kind == "lokr":
        for role in ("w1_b", "w2_b"):
            shape = _shape(tensors, roles.get(role))
            if shape:
                return shape[0]
        return None  # both Kronecker factors whole: no rank, scale 1
    return None


def _dora_axis(module: Module, tensors: Mapping[str, Any]) -> str:
    """``out`` for a ``dora_scale`` of shape (out, 1[, 1, 1]), ``in`` for (1, in[, …])."""
    shape = _shape(tensors, module.tensors.get("dora_scale"))
    if len(shape) >= 2 and shape[1] == 1 and shape[0] != 1:
        return "out"
    if len(shape) >= 2 and shape[0] == 1:
        return "in"
    return "out" if len(shape) == 1 else "?"


def analyse(tensors: Mapping[str, Any]) -> Layout:
    """The layout of a file whose header lists ``tensors`` (name -> ``{"shape": […], …}``)."""
    found, unknown = modules(tensors)
    counts: Counter[str] = Counter()
    ranks: Counter[int] = Counter()
    conv_ranks: Counter[int] = Counter()
    axes: set[str] = set()
    incomplete: list[str] = []
    tucker = locon = dora = False
    diffusers = True
    components: set[str] = set()
    for module in found.values():
        kind = module.kind
        if kind == "meta":
            incomplete.append(module.stem)
            continue
        missing = [alts for alts in REQUIRED.get(kind, ()) if not any(a in module.tensors for a in alts)]
        if missing:
            incomplete.append(module.stem)
            continue
        counts[kind] += 1
        component = module.component
        if component:
            components.add(component)
        rank = _module_rank(module, tensors)
        if kind == "lora":
            down = _shape(tensors, module.tensors.get("down"))
            conv = len(down) == 4 and (down[2:] != [1, 1] or "mid" in module.tensors)
            if "mid" in module.tensors:
                tucker = True
                diffusers = False
            if conv:
                locon = True
            if rank is not None:
                (conv_ranks if conv else ranks)[rank] += 1
        elif kind in ("loha", "lokr"):
            diffusers = False
            if rank is not None:
                ranks[rank] += 1
        else:
            diffusers = False
        if module.dora:
            dora = True
            diffusers = False
            axes.add(_dora_axis(module, tensors))
    unsupported = ""
    refused = [k for k in UNSUPPORTED_KINDS if counts.get(k)]
    if refused:
        names = " and ".join(UNSUPPORTED_KINDS[k] for k in refused)
        unsupported = f"it uses {names}, which LoRA Mixer cannot apply"
    weights = {k: n for k, n in counts.items() if k != "norm"}
    if not weights and counts.get("norm"):
        weights = {"norm": counts["norm"]}
    if "lokr" in weights:
        algorithm = "lokr"
    elif "loha" in weights:
        algorithm = "loha"
    elif "lora" in weights:
        algorithm = "tucker" if tucker else "locon" if locon else "lora"
    elif "full" in weights or "norm" in weights:
        algorithm = "full"
    else:
        algorithm = refused[0] if refused else ""
    if dora and algorithm:
        algorithm = "dora" if algorithm in ("lora", "locon") else f"{algorithm}+dora"
    notes: list[str] = []
    if incomplete:
        example = sorted(incomplete)[0]
        notes.append(f"{len(incomplete)} layer(s) have incomplete tensors and are skipped (e.g. '{example}')")
    if unknown and algorithm:
        notes.append(
            f"{len(unknown)} tensor(s) of no known LoRA layout are ignored (e.g. '{sorted(unknown)[0]}')"
        )
    if algorithm and not unsupported and not components:
        unsupported = (
            "none of its layer names is a UNet or text-encoder layer (kohya lora_unet_/lora_te_, "
            "diffusers unet./text_encoder.)"
        )
    rank = ranks.most_common(1)[0][0] if ranks else conv_ranks.most_common(1)[0][0] if conv_ranks else None
    return Layout(
        algorithm=algorithm,
        rank=rank,
        counts=dict(counts),
        dora="+".join(sorted(axes)),
        unsupported=unsupported,
        notes=tuple(notes),
        diffusers=diffusers and not unsupported,
        components=frozenset(components),
    )
