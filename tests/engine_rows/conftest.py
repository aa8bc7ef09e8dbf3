"""Fixtures for the per-row LoRA weight tests: the project's tiny SD1.x pipeline with two adapters.

The pipeline comes from :mod:`assistant.engine.tiny` (the one tiny pipeline of the project),
built once per session. Adapters ``a`` and ``b`` are added with PEFT configs that cover every
kind of LoRA layer the UNet and the CLIP text encoder have (attention and feed-forward Linear,
3-D tokens; ``time_emb_proj``, 2-D; resnet and 1x1 projection Conv2d, 4-D), with a per-layer
alpha (``alpha_pattern``) so the per-layer factor ``alpha / r`` is exercised. Their ``lora_B``
weights are seeded random (PEFT initialises ``lora_B`` to zero, which would make every LoRA a
no-op). Tests must leave the adapters as they found them.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # the shared 2-core box: one thread per test process, like tests/engine

SIZE = 64
STEPS = 3
CFG = 7.0
ADAPTERS = ("a", "b")
UNET_TARGETS = [
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "time_emb_proj",
]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def add_random_adapter(pipe: Any, name: str, seed: int, *, text: bool = True, **config: Any) -> None:
    """Add adapter ``name`` to the UNet (and text encoder) with seeded random A and B matrices."""
    from peft import LoraConfig

    torch.manual_seed(seed)
    unet_config = LoraConfig(
        r=4, lora_alpha=8, alpha_pattern={"conv1": 2}, target_modules=UNET_TARGETS, **config
    )
    pipe.unet.add_adapter(unet_config, adapter_name=name)
    models = [pipe.unet]
    if text:
        pipe.text_encoder.add_adapter(
            LoraConfig(r=4, lora_alpha=4, target_modules=TEXT_TARGETS, **config), adapter_name=name
        )
        models.append(pipe.text_encoder)
    generator = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for model in models:
            for module in model.modules():
                lora_b = getattr(module, "lora_B", None)
                if isinstance(lora_b, torch.nn.ModuleDict) and name in lora_b:
                    weight = lora_b[name].weight
                    weight.copy_(torch.randn(weight.shape, generator=generator) * 0.2)


def generators(seed: int, n: int) -> list[torch.Generator]:
    """One generator per cell, all seeded like a single generation with ``seed``."""
    return [torch.Generator().manual_seed(seed) for _ in range(n)]


@pytest.fixture(scope="session")
def rows_pipe() -> Any:
    """The tiny SD1.x pipeline with adapters ``a`` and ``b`` loaded (unet + text encoder)."""
    from assistant.engine.tiny import build_tiny_sd15

    pipe = build_tiny_sd15()
    add_random_adapter(pipe, "a", seed=11)
    add_random_adapter(pipe, "b", seed=22)
    pipe.set_adapters(list(ADAPTERS), [1.0, 1.0])
    return pipe


@pytest.fixture(scope="session")
def scaler(rows_pipe: Any) -> Any:
    from assistant.engine.rows import RowScaler

    return RowScaler(rows_pipe)


@pytest.fixture
def pipe(rows_pipe: Any, scaler: Any) -> Any:
    """``rows_pipe`` with both adapters active at weight 1 before and after the test."""
    rows_pipe.enable_lora()
    rows_pipe.set_adapters(list(ADAPTERS), [1.0, 1.0])
    yield rows_pipe
    rows_pipe.enable_lora()
    rows_pipe.set_adapters(list(ADAPTERS), [1.0, 1.0])
