"""Every layer of every LyCORIS layout gets exactly LyCORIS' delta, at the real module trees.

Files are written as LyCORIS writes them (:mod:`tests.library.lora_layouts`, kohya key names:
diffusers names on SD1.5, sgm names ``lora_unet_input_blocks_4_1_…`` and ``lora_te1_``/
``lora_te2_`` on SDXL) over every LoRA-able layer kohya's LoCon targets (attention, feed-forward,
projections, resnet 3x3 convs, shortcuts, samplers, text encoders), loaded through the engine's
:class:`~assistant.engine.adapters.AdapterCache`, and compared layer by layer with
:func:`tests.formats.reference_lycoris.reference_delta` (LyCORIS' own functions): the weight
difference the layer says it adds (what fusing uses) and the output difference its forward adds
(what a render uses), at weight 1 and at a fractional and a negative weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from assistant.engine.adapters import AdapterCache
from assistant.engine.lycoris import LycorisLayer
from tests.library.lora_layouts import LayoutSpec, write_lora

from .conftest import Structured
from .reference_lycoris import reference_delta

pytestmark = pytest.mark.engine

LYCORIS = (
    "loha",
    "loha-tucker",
    "lokr",
    "lokr-both",
    "lokr-full",
    "lokr-tucker",
    "tucker",
    "dora",
    "dora-in",
    "loha-dora",
    "full",
)
#: SDXL is 3x the layers: the layouts that cover every code path of the key map and the math.
SDXL_LAYOUTS = ("loha-tucker", "lokr-both", "dora-in", "full")
TOL = 2e-5  # relative to the layer's largest delta entry (float32 against float32)


def module_at(model: Any, path: str) -> Any:
    try:
        return model.get_submodule(path)
    except AttributeError:  # transformers 5: CLIPTextModel has no text_model level
        return model.get_submodule(path.removeprefix("text_model."))


def lycoris_layer(module: Any) -> LycorisLayer:
    layer = module
    while not isinstance(layer, LycorisLayer):
        layer = layer.base_layer
    return layer


def base_layer(model: Any, path: str) -> Any:
    module = module_at(model, path)
    return module.get_base_layer() if hasattr(module, "get_base_layer") else module


def base_weights(pipe: Any, targets: list[Any]) -> dict[str, np.ndarray]:
    """kohya stem -> the layer's base weight (DoRA magnitudes are drawn around its norm)."""
    out = {}
    for target in targets:
        layer = base_layer(getattr(pipe, target.component), target.peft.split(".", 1)[1])
        out[target.kohya] = layer.weight.detach().numpy()
    return out


def check_layers(pipe: Any, targets: list[Any], file: Path, adapter: str, cache: AdapterCache) -> int:
    """Compare every layer the file names, at weights 1, 0.35 (forward too) and -0.7; returns
    how many layers were checked."""
    tensors = load_file(str(file))
    stems = {key.rsplit(".", 2)[0] for key in tensors} | {key.rsplit(".", 1)[0] for key in tensors}
    generator = torch.Generator().manual_seed(0)
    layers = []
    for target in targets:  # listed before the load (adapter layers hide the plain ones)
        if target.kohya not in stems:
            continue
        module = module_at(getattr(pipe, target.component), target.peft.split(".", 1)[1])
        layer = lycoris_layer(module)
        bias = tensors.get(f"{target.kohya}.diff_b")
        want = reference_delta(target.kohya, tensors, layer.get_base_layer().weight)
        layers.append((target.kohya, module, layer, want, None if bias is None else bias.float()))
    for weight in (1.0, 0.35, -0.7):
        cache.activate([adapter], [{"unet": weight, "text_encoder": weight, "text_encoder_2": weight}])
        for stem, module, layer, want, bias in layers:
            got = layer.delta_weight(adapter)
            assert got is not None
            size = float(want.abs().max()) * abs(weight) + 1e-12
            assert float((got.float() - want * weight).abs().max()) <= TOL * size, f"{stem} at {weight}"
            if weight != 0.35:
                continue
            base = layer.get_base_layer()
            want_bias = None if bias is None else bias * weight
            if base.weight.dim() == 2:
                x = torch.randn(2, base.weight.shape[1], generator=generator)
                expected = F.linear(x, want * weight, want_bias)
            else:
                x = torch.randn(1, base.weight.shape[1], 8, 8, generator=generator)
                expected = F.conv2d(
                    x, want * weight, want_bias, base.stride, base.padding, base.dilation, base.groups
                )
            with torch.no_grad():
                out = module(x) - base(x)
            scale = float(expected.abs().max()) + 1e-12
            assert float((out - expected).abs().max()) <= 1e-4 * scale, f"{stem}: forward delta"
    return len(layers)


def run_layout(model: Structured, layout: str, tmp_path: Path) -> None:
    pipe, key, targets = model.pipe, model.key, model.targets
    file = write_lora(
        tmp_path / f"{key}_{layout}.safetensors",
        targets,
        "locon",
        layout=layout,
        spec=LayoutSpec(base=base_weights(pipe, targets)),
        seed=3,
        base=key,
    )
    cache = AdapterCache(pipe, capacity=2, base=key)
    adapter = cache.ensure(file.stem, file)
    try:
        assert cache.report(adapter).route == "lycoris"
        assert cache.report(adapter).warnings == ()  # every layer applied
        names = {k.rsplit(".", 2)[0] for k in load_file(str(file))} & {t.kohya for t in targets}
        assert check_layers(pipe, targets, file, adapter, cache) == len(names)
        cache.activate([], [])
    finally:
        cache.unload_all()
    assert not any(isinstance(m, LycorisLayer) and m.lyco_factors for m in pipe.unet.modules())


@pytest.mark.parametrize("layout", LYCORIS)
def test_sd15_every_layer_equals_lycoris(sd15: Structured, layout: str, tmp_path: Path) -> None:
    run_layout(sd15, layout, tmp_path)


@pytest.mark.parametrize("layout", SDXL_LAYOUTS)
def test_sdxl_every_layer_equals_lycoris(sdxl: Structured, layout: str, tmp_path: Path) -> None:
    run_layout(sdxl, layout, tmp_path)
