"""Per-row weights (batched blind box, negative-prompt LoRA weights) for every LyCORIS type.

Each LyCORIS layer takes one factor per batch row (:meth:`LycorisLayer.set_row_factors`); row i
of a per-row call must equal row i of an ordinary call at weight w_i — for LoHa, LoKr, LoCon
Tucker, DoRA (weight-decomposed: the layer scales ``W' - W`` by the weight, which is linear) and
full, in the UNet and in the text encoder, and mixed with a plain kohya LoRA (a PEFT layer) on the
same layers. And a batched blind-box grid equals its cells rendered one by one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from assistant.config import Settings
from assistant.engine.adapters import AdapterCache
from assistant.engine.core import Engine
from assistant.engine.rows import RowScaler
from assistant.types import GenerationRequest, PlannedLora
from tests.library.lora_layouts import LayoutSpec, write_lora

from .conftest import Structured

pytestmark = pytest.mark.engine

LAYOUTS = ("loha", "lokr-tucker", "tucker", "dora", "full")
WEIGHTS = [0.3, 1.0, -0.5]
TOL = 1e-4  # a batch of 3 vs a batch of 3 at another weight: the same kernels, float rounding only


def unet_call(pipe: Any, rows: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    width = 8  # a 64x64 image
    sample = torch.randn(rows, 4, width, width, generator=generator)
    context = torch.randn(rows, 77, pipe.unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        return pipe.unet(sample, 500, encoder_hidden_states=context).sample


def text_call(pipe: Any, rows: int) -> torch.Tensor:
    ids = torch.arange(77).repeat(rows, 1) % 400 + 1
    with torch.no_grad():
        return pipe.text_encoder(ids)[0]


@pytest.fixture(scope="module")
def loaded(sd15: Structured, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("rows")
    pipe = sd15.pipe
    cache = AdapterCache(pipe, capacity=8, base="sd15")
    names = {}
    for i, layout in enumerate((*LAYOUTS, "kohya")):
        file = write_lora(
            folder / f"{layout}.safetensors",
            sd15.targets,
            "locon",
            layout=layout,
            seed=i,
            spec=LayoutSpec(scale=3.0),
        )
        names[layout] = cache.ensure(file.stem, file)
    yield pipe, cache, names
    cache.unload_all()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unet_and_text_rows_equal_ordinary_calls(loaded: Any, layout: str) -> None:
    pipe, cache, names = loaded
    adapter, plain = names[layout], names["kohya"]
    cache.activate([adapter, plain], [{}, {}])
    scaler = RowScaler(pipe)
    rows = {adapter: WEIGHTS, plain: [0.5, 0.5, 0.5]}
    with scaler.unet_rows(rows):
        mixed = unet_call(pipe, len(WEIGHTS))
    assert scaler.split_reason == ""  # per-row factors, not groups of rows
    with scaler.text_rows(rows):
        text = text_call(pipe, len(WEIGHTS))
    for i, weight in enumerate(WEIGHTS):
        all_parts = {"unet": weight, "text_encoder": weight}
        cache.activate([adapter, plain], [all_parts, {"unet": 0.5, "text_encoder": 0.5}])
        want = unet_call(pipe, len(WEIGHTS))[i]
        assert float((mixed[i] - want).abs().max()) <= TOL * float(want.abs().max()), f"unet row {i}"
        want_text = text_call(pipe, len(WEIGHTS))[i]
        assert float((text[i] - want_text).abs().max()) <= TOL * float(want_text.abs().max()), f"text row {i}"
    assert not torch.allclose(mixed[0], mixed[1])  # the rows really differ
    cache.activate([], [])
    assert not any(getattr(m, "_row_factors", None) for m in pipe.unet.modules())  # nothing left


def test_batched_blind_box_equals_cells_one_by_one(sd15: Structured, tmp_path: Path) -> None:
    """The engine's batched grid pass (one denoising pass, row r = cell r's weights) with a LoHa
    and a DoRA file gives each cell's sequential render (pixels within 2/255)."""
    loha = write_lora(
        tmp_path / "loha.safetensors",
        sd15.targets,
        "locon",
        layout="loha",
        seed=1,
        spec=LayoutSpec(scale=3.0),
    )
    dora = write_lora(
        tmp_path / "dora.safetensors",
        sd15.targets,
        "kohya",
        layout="dora",
        seed=2,
        spec=LayoutSpec(scale=3.0),
    )
    from assistant.engine.structured import build_sd15

    engine = Engine(Settings(device="cpu", adapter_cache_size=4), pipeline=build_sd15())
    engine.load()

    def cell(wa: float, wb: float) -> GenerationRequest:
        return GenerationRequest(
            prompt="1girl, city",
            negative="blurry",
            width=64,
            height=64,
            steps=2,
            cfg=7.0,
            seed=11,
            sampler="Euler",
            loras=(
                PlannedLora(name="loha", path=str(loha), weight=wa),
                PlannedLora(name="dora", path=str(dora), weight=wb),
            ),
        )

    cells = [cell(0.2, 1.0), cell(1.0, -0.4), cell(0.6, 0.6)]
    batched = engine.generate_many(cells, batched=True)
    single = engine.generate_many(cells, batched=False)
    for i, (a, b) in enumerate(zip(batched, single, strict=True)):
        got = np.asarray(a.images[0], dtype=np.int16)
        want = np.asarray(b.images[0], dtype=np.int16)
        assert int(np.abs(got - want).max()) <= 2, f"cell {i}"
    first, second = (np.asarray(r.images[0], dtype=np.int16) for r in single[:2])
    assert int(np.abs(first - second).max()) > 8  # the weights really change the image
    engine.close()
