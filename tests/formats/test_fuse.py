"""The fused fast path (issue 12, item 7): a render with a fixed mix fuses the LoRA deltas into the
UNet's weights; the image is within 1/255 of the unfused render, and the base weights are back bit
for bit afterwards — also after a cancelled render. Per-row renders (grids) stay unfused."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from assistant.config import Settings
from assistant.engine.core import Engine
from assistant.errors import Cancelled
from assistant.types import GenerationRequest, PlannedLora
from tests.library.lora_layouts import LayoutSpec, write_lora

from .conftest import Structured

pytestmark = pytest.mark.engine


def request(files: dict[str, Path], steps: int = 3, **weights: float) -> GenerationRequest:
    loras = tuple(PlannedLora(name=k, path=str(files[k]), weight=w) for k, w in weights.items())
    return GenerationRequest(
        prompt="1girl, city", negative="blurry", width=64, height=64, steps=steps, cfg=7.0, seed=11,
        sampler="Euler", loras=loras,
    )  # fmt: skip


def pixels(result: Any) -> np.ndarray:
    return np.asarray(result.images[0], dtype=np.int16)


@pytest.fixture(scope="module")
def files(sd15: Structured, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fuse")
    spec = LayoutSpec(scale=3)
    out = {}
    for kind, selection, layout in (
        ("locon", "locon", "kohya"),
        ("loha", "locon", "loha"),
        ("full", "unet", "full"),
    ):
        out[kind] = write_lora(
            folder / f"{kind}.safetensors", sd15.targets, selection, layout=layout, spec=spec
        )
    return out


def engine(min_steps: int) -> Engine:
    from assistant.engine.structured import build_sd15

    made = Engine(Settings(device="cpu", fuse_min_steps=min_steps), pipeline=build_sd15())
    made.load()
    return made


def unet_tensors(made: Engine) -> dict[str, torch.Tensor]:
    unet = made.pipeline.unet
    return {n: t.detach().clone() for n, t in [*unet.named_parameters(), *unet.named_buffers()]}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fused_render_equals_unfused_and_restores_every_weight(files: dict[str, Path]) -> None:
    fusing, plain = engine(3), engine(0)
    mix = {"locon": 0.8, "loha": 0.6, "full": -0.4}
    fusing.generate(request(files, steps=2, **mix))  # below the threshold: loads, unfused
    assert fusing.last_fuse is None
    before = unet_tensors(fusing)
    got = fusing.generate(request(files, **mix))
    report = fusing.last_fuse
    assert report is not None
    assert report.fused, report.reason
    assert report.layers >= 200
    assert same(unet_tensors(fusing), before)  # bit for bit
    want = plain.generate(request(files, **mix))
    assert plain.last_fuse is None
    assert int(np.abs(pixels(got) - pixels(want)).max()) <= 1
    assert not np.array_equal(pixels(want), pixels(plain.generate(request(files))))  # the mix shows
    # the next render with another mix is right too (nothing of the last fuse is left)
    again = fusing.generate(request(files, locon=0.3))
    assert int(np.abs(pixels(again) - pixels(plain.generate(request(files, locon=0.3)))).max()) <= 1
    assert same(unet_tensors(fusing), before)


def test_a_cancelled_fused_render_restores_the_weights(files: dict[str, Path]) -> None:
    made = engine(3)
    made.generate(request(files, steps=2, locon=0.8))
    before = unet_tensors(made)
    cancel = threading.Event()

    def progress(step: int, _total: int) -> None:
        if step >= 1:
            cancel.set()

    with pytest.raises(Cancelled):
        made.generate(request(files, steps=4, locon=0.8), progress=progress, cancel=cancel)
    assert same(unet_tensors(made), before)
    assert not any(getattr(m, "_disable_adapters", False) for m in made.pipeline.unet.modules())
