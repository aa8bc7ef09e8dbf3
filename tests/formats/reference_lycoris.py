"""LyCORIS' own math, from the ``lycoris-lora`` wheel, fetched at test time (the reference).

The engine applies LoHa, LoKr, LoCon Tucker, DoRA and full files with its own code
(:mod:`assistant.engine.lycoris`); these tests compare what it applies with LyCORIS'
``lycoris/functional`` (``loha.diff_weight``, ``lokr.diff_weight``, ``locon.diff_weight``,
``general.weight_decompose``). ``lycoris-lora`` is not a runtime dependency: the tests
``pip download --no-deps`` one pinned wheel (sha256-checked) into ``.cache/reference/``, unpack
it and import it from there. Where PyPI cannot be reached the test FAILS with the reason (a
reference test that skipped would prove nothing); putting the wheel into the cache folder works
offline.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ..reference_wheels import CACHE, unpacked_wheel

WHEEL = "lycoris_lora-4.1.3-py3-none-any.whl"
REQUIREMENT = "lycoris-lora==4.1.3"
WHEEL_SHA256 = "f7ccb7a1bf3c46745cce97a33ce3d443549a1c45e4e8626a408cc7da653dad7b"


def _folder() -> Path:
    folder = CACHE / "lycoris_lora-4.1.3"
    if (folder / "lycoris" / "functional" / "loha.py").is_file():
        return folder
    return unpacked_wheel(
        REQUIREMENT,
        WHEEL,
        WHEEL_SHA256,
        folder=folder,
        members=lambda member: member.startswith("lycoris/"),
        purpose="The LyCORIS reference tests",
    )


def functional() -> dict[str, ModuleType]:
    """``{"loha", "lokr", "locon", "general"}``: LyCORIS' functional modules."""
    folder = _folder()
    # Only ``lycoris.functional`` (torch and the wheel's own kernels) is imported: the package's
    # top-level ``__init__`` pulls its trainer's dependencies (einops, toml, tqdm), which a clean
    # install of requirements-dev.txt does not have. A bare package object stands in for it.
    package = sys.modules.get("lycoris")
    if package is None or str(folder / "lycoris") not in list(getattr(package, "__path__", [])):
        package = ModuleType("lycoris")
        package.__path__ = [str(folder / "lycoris")]
        sys.modules["lycoris"] = package
    return {
        name: importlib.import_module(f"lycoris.functional.{name}")
        for name in ("loha", "lokr", "locon", "general")
    }


def reference_delta(stem: str, tensors: Mapping[str, Any], base_weight: Any) -> Any:
    """``W' - W`` at multiplier 1 for one module of a file, as LyCORIS computes it (float32).

    The scale is LyCORIS' ``alpha / rank`` (alpha missing or 0: rank), with the rank its modules
    read (``lora_down``/``hada_w1_b``/``lokr_w1_b``/``lokr_w2_b`` dim 0); LoKr with both factors
    whole uses 1. ``functional.lokr.diff_weight`` divides ``gamma`` by ``w1_a``/``w2_a``'s
    dim 1, which is the rank except in Tucker mode (there ``w2_a`` is (rank, out)): gamma is
    passed so that the quotient is ``alpha / rank`` in every case.
    """
    import torch

    ref = functional()

    def get(name: str) -> Any:
        value = tensors.get(f"{stem}.{name}")
        return None if value is None else value.float()

    alpha_t = get("alpha")
    alpha = float(alpha_t) if alpha_t is not None else 0.0

    def scale(rank: int) -> float:
        return (alpha or rank) / rank

    if get("hada_w1_a") is not None:
        rank = get("hada_w1_b").shape[0]
        delta = ref["loha"].diff_weight(
            get("hada_w1_b"),
            get("hada_w1_a"),
            get("hada_w2_b"),
            get("hada_w2_a"),
            get("hada_t1"),
            get("hada_t2"),
            gamma=scale(rank),
        )
    elif get("lokr_w1") is not None or get("lokr_w1_a") is not None:
        w1a, w2a = get("lokr_w1_a"), get("lokr_w2_a")
        if w1a is None and w2a is None:
            gamma = 1.0  # both factors whole (rank_scale returns gamma / gamma)
        else:
            rank = get("lokr_w1_b").shape[0] if w1a is not None else get("lokr_w2_b").shape[0]
            read = (w1a if w1a is not None else w2a).shape[1]
            gamma = scale(rank) * read
        delta = ref["lokr"].diff_weight(
            get("lokr_w1"),
            w1a,
            get("lokr_w1_b"),
            get("lokr_w2"),
            w2a,
            get("lokr_w2_b"),
            get("lokr_t2"),
            gamma=gamma,
        )
    elif get("lora_down.weight") is not None:
        rank = get("lora_down.weight").shape[0]
        delta = ref["locon"].diff_weight(
            get("lora_down.weight"), get("lora_up.weight"), get("lora_mid.weight"), gamma=scale(rank)
        )
    elif get("diff") is not None:
        delta = get("diff")
    else:
        raise KeyError(f"no weight tensors for {stem}")
    weight = base_weight.detach().float()
    delta = delta.reshape(weight.shape)
    dora = get("dora_scale")
    if dora is not None:
        on_out = not (dora.shape[0] == 1 and weight.shape[0] != 1)
        delta = ref["general"].weight_decompose(weight + delta, dora, 1, on_out) - weight
    return delta.to(torch.float32)
