"""The full-size SD1.5 module tree (860M-parameter UNet, CLIP ViT-L text encoder): every layer of a
kohya LoRA, a kohya LoCon and a LyCORIS LoHa receives exactly the expected delta (issue 12).

The model is built from the released configs on the meta device and given real (uninitialised)
CPU storage: the deltas checked here — what each adapter adds to a layer's weight at its weight —
never read the base weights, so nothing spends seconds drawing 860M random numbers. No render
runs; each layer's delta is compared with LyCORIS' formula (:mod:`.reference_lycoris`), in the
layer's own dtype, for every module the file names (350 of them for the LoCon and the LoHa).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from assistant.engine.adapters import AdapterCache
from assistant.engine.lycoris import LycorisLayer
from assistant.engine.structured import build_sd15, lora_targets
from tests.library.lora_layouts import LayoutSpec, write_lora

from .reference_lycoris import reference_delta

pytestmark = [pytest.mark.engine, pytest.mark.slow]

WEIGHT = 0.8
TOL = 2e-5


@pytest.fixture(scope="module")
def full() -> tuple[Any, list[Any]]:
    pipe = build_sd15("full", device="meta")
    for component in ("unet", "text_encoder"):
        getattr(pipe, component).to_empty(device="cpu")
    assert sum(p.numel() for p in pipe.unet.parameters()) == 859_520_964
    return pipe, lora_targets(pipe)


def module_at(model: Any, path: str) -> Any:
    try:
        return model.get_submodule(path)
    except AttributeError:  # transformers 5: CLIPTextModel has no text_model level
        return model.get_submodule(path.removeprefix("text_model."))


def applied_delta(module: Any, adapter: str) -> torch.Tensor:
    """What ``adapter`` adds to the layer's weight at its current scale (PEFT or LyCORIS layer)."""
    layer = module
    while True:
        if isinstance(layer, LycorisLayer) and adapter in layer.lyco_factors:
            delta = layer.delta_weight(adapter)
            assert delta is not None
            return delta.float()
        if adapter in getattr(layer, "lora_A", {}):
            return layer.get_delta_weight(adapter).float()
        layer = layer.base_layer


@pytest.mark.parametrize(
    ("layout", "selection", "route", "layers"),
    [
        ("kohya", "kohya", "diffusers", 264),
        ("kohya", "locon", "diffusers", 350),
        ("loha", "locon", "lycoris", 350),
    ],
)
def test_every_layer_gets_the_expected_delta(
    full: tuple[Any, list[Any]], layout: str, selection: str, route: str, layers: int, tmp_path: Path
) -> None:
    pipe, targets = full
    file = write_lora(
        tmp_path / f"full_{layout}_{selection}.safetensors",
        targets,
        selection,
        layout=layout,
        spec=LayoutSpec(rank=8, alpha=4.0, conv_rank=4, conv_alpha=1.0),
        seed=7,
        base="sd15",
    )
    tensors = load_file(str(file))
    cache = AdapterCache(pipe, capacity=1, base="sd15")
    adapter = cache.ensure(file.stem, file)
    try:
        assert cache.report(adapter).route == route
        assert cache.report(adapter).warnings == ()
        cache.activate([adapter], [{"unet": WEIGHT, "text_encoder": WEIGHT}])
        checked = 0
        for target in targets:
            if f"{target.kohya}.alpha" not in tensors:
                continue
            module = module_at(getattr(pipe, target.component), target.peft.split(".", 1)[1])
            got = applied_delta(module, adapter)
            want = reference_delta(target.kohya, tensors, torch.zeros(target.shape)) * WEIGHT
            size = float(want.abs().max())
            assert size > 0
            assert float((got - want).abs().max()) <= TOL * size, target.kohya
            checked += 1
        assert checked == layers
    finally:
        cache.unload_all()
