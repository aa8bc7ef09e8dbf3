"""LoRA block weights in the engine (issue 12, item 6): each UNet layer's weight is the tag's weight
times its block's ratio (sd-webui-lora-block-weight's blocks, found from the sgm names), the text
encoders get ``BASE``; all-ones equals no lbw bit for bit, all-zeros equals no LoRA bit for bit;
the batched grid (per-row weights) gives what the cells give one by one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.config import Settings
from assistant.engine.core import Engine
from assistant.lbw import parse_lbw
from assistant.types import GenerationRequest, PlannedLora
from tests.library.lora_layouts import LayoutSpec, write_lora

from .conftest import Structured

pytestmark = pytest.mark.engine

ONES = ",".join(["1"] * 26)
ZEROS = ",".join(["0"] * 26)


def request(loras: tuple[PlannedLora, ...]) -> GenerationRequest:
    return GenerationRequest(
        prompt="1girl, city", negative="blurry", width=64, height=64, steps=2, cfg=7.0, seed=11,
        sampler="Euler", loras=loras,
    )  # fmt: skip


def pixels(result: Any) -> np.ndarray:
    return np.asarray(result.images[0], dtype=np.int16)


@pytest.fixture(scope="module")
def setup(sd15: Structured, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from assistant.engine.structured import build_sd15

    folder = tmp_path_factory.mktemp("lbw")
    spec = LayoutSpec(scale=3)
    files = {
        "locon": write_lora(folder / "locon.safetensors", sd15.targets, "locon", seed=1, spec=spec),
        "loha": write_lora(
            folder / "loha.safetensors", sd15.targets, "locon", layout="loha", seed=2, spec=spec
        ),
    }
    engine = Engine(Settings(device="cpu", adapter_cache_size=4), pipeline=build_sd15())
    engine.load()
    yield engine, files
    engine.close()


def lora(files: dict[str, Path], kind: str, weight: float = 0.8, lbw: str = "") -> PlannedLora:
    return PlannedLora(name=kind, path=str(files[kind]), weight=weight, lbw=parse_lbw(lbw) if lbw else None)


def test_text_encoders_get_base_once(setup: Any) -> None:
    """BASE 0.5: the text-encoder layers at weight x 0.5 (once), the UNet's OUT03 block at 0.25."""
    engine, files = setup
    lbw = "0.5,0,0,0,0,0,0,0,0.25,0,0,0,0,0,0,0,0"
    engine.generate(request((lora(files, "locon", 0.8, lbw),)))  # the state check runs after it
    cache = engine._adapters
    adapter = cache.adapter_for(files["locon"])
    for component, layers in cache._layer_index().items():
        for layer, block in zip(layers, cache.blocks(component), strict=True):
            if adapter in layer.scaling:
                unit = layer.lora_alpha[adapter] / layer.r[adapter]
                want = (
                    0.8 * 0.5 if component != "unet" else 0.8 * (parse_lbw(lbw)[block] if block >= 0 else 1)
                )
                assert layer.scaling[adapter] / unit == pytest.approx(want), (component, block)


def test_each_layer_gets_its_blocks_ratio(setup: Any) -> None:
    engine, files = setup
    engine.generate(request((lora(files, "locon", 0.8, "OUTD"),)))  # the state check runs after it
    cache = engine._adapters
    adapter = cache.adapter_for(files["locon"])
    seen = {}
    for component, layers in cache._layer_index().items():
        blocks = cache.blocks(component)
        for layer, block in zip(layers, blocks, strict=True):
            if adapter not in layer.scaling:
                continue
            unit = layer.lora_alpha[adapter] / layer.r[adapter]
            seen[(component, block)] = layer.scaling[adapter] / unit
    ratios = parse_lbw("OUTD")
    assert seen[("text_encoder", -1)] == pytest.approx(0.8)  # BASE 1
    for (component, block), weight in seen.items():
        if component == "unet":
            assert weight == pytest.approx(0.8 * (ratios[block] if block >= 0 else 1.0)), block
    assert {b for c, b in seen if c == "unet"} >= {2, 4, 13, 17, 20, 25}  # IN01 IN03 M00 OUT03 OUT06 OUT11


@pytest.mark.parametrize("kind", ["locon", "loha"])
def test_all_ones_and_all_zeros(setup: Any, kind: str) -> None:
    engine, files = setup
    plain = pixels(engine.generate(request((lora(files, kind),))))
    ones = pixels(engine.generate(request((lora(files, kind, lbw=ONES),))))
    zeros = pixels(engine.generate(request((lora(files, kind, lbw=ZEROS),))))
    base = pixels(engine.generate(request(())))
    outd = pixels(engine.generate(request((lora(files, kind, lbw="OUTD"),))))
    assert np.array_equal(ones, plain)
    assert np.array_equal(zeros, base)
    assert not np.array_equal(outd, plain)
    assert not np.array_equal(outd, base)


def test_batched_grid_with_block_weights_equals_cells(setup: Any) -> None:
    engine, files = setup
    cells = [
        request((lora(files, "locon", 0.8, "OUTD"), lora(files, "loha", 0.5))),
        request((lora(files, "locon", 0.4), lora(files, "loha", 0.9, "INS"))),
        request((lora(files, "locon", 1.0, "MIDD"), lora(files, "loha", 0.3, "OUTALL"))),
    ]
    batched = engine.generate_many(cells, batched=True)
    assert batched[0].timings.get("batched_cells") == 3.0
    single = engine.generate_many(cells, batched=False)
    for i, (a, b) in enumerate(zip(batched, single, strict=True)):
        assert int(np.abs(pixels(a) - pixels(b)).max()) <= 2, f"cell {i}"
