"""Issue 19's reproductions, as fixed sequences on ONE engine, each image against a fresh engine.

The stateful test (``test_state_machine.py``) searches such sequences at random; these are the
ones the issue reported (and the ones the search found), kept as plain tests so that they run
every time, in a second. Bit for bit on CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from .harness import Model, assert_like_fresh, pixels, request

pytestmark = pytest.mark.engine


def _render_like_fresh(engine, model: Model, *loras, what: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    req = request(loras)
    got = pixels(engine.generate(req))
    assert_like_fresh(got, model.fresh(req), what)  # type: ignore[misc]
    return got


def test_sd15_attention_then_no_lora_then_full_kohya(structured: dict[str, Model]) -> None:
    """The issue's first report: the third image differed by up to 109/255, and stayed wrong."""
    model = structured["sd15"]
    engine = model.engine()
    _render_like_fresh(engine, model, model.lora("attention", 0.8), what="attention-only")
    _render_like_fresh(engine, model, what="no LoRA")
    _render_like_fresh(engine, model, model.lora("kohya", 0.8), what="kohya after no LoRA")
    # "from then on the server stays wrong": requests that worked before must still work
    _render_like_fresh(engine, model, model.lora("attention", 0.8), what="attention-only again")
    _render_like_fresh(engine, model, model.lora("kohya", 0.8), model.lora("attention", 0.5), what="both")


def test_sdxl_locon_after_a_no_lora_render(structured: dict[str, Model]) -> None:
    """SDXL's first down block has no attention: a LoCon's resnet convs come first in module order."""
    model = structured["sdxl"]
    engine = model.engine()
    _render_like_fresh(engine, model, model.lora("kohya", 0.7), what="kohya")
    _render_like_fresh(engine, model, what="no LoRA")
    _render_like_fresh(engine, model, model.lora("locon", 0.7), what="LoCon after no LoRA")
    _render_like_fresh(engine, model, model.lora("te", 1.0), what="TE-only after it")


def test_weight_zero_then_a_new_lora(structured: dict[str, Model]) -> None:
    """All weights 0 is the same as no LoRA (layers switched off); the next LoRA must switch back on."""
    model = structured["sd15"]
    engine = model.engine()
    _render_like_fresh(engine, model, model.lora("attention", 1.0), what="attention")
    _render_like_fresh(engine, model, model.lora("attention", 0.0), what="attention at weight 0")
    _render_like_fresh(engine, model, model.lora("locon", 0.6), model.lora("attention", 0.6), what="mix")


@pytest.mark.parametrize("key", ["sd15", "sdxl"])
def test_state_check_names_every_layer_that_is_off(structured: dict[str, Model], key: str) -> None:
    """The LORA_MIXER_CHECK_STATE check reads EVERY layer, not the first one."""
    from assistant.engine.adapters import LoraState
    from assistant.engine.core import EngineStateError

    model = structured[key]
    engine = model.engine()
    engine.generate(request((model.lora("locon", 0.7),)))
    state = engine.needed_state(request((model.lora("locon", 0.7),)).loras)
    engine.check_state(state)  # as the render left it
    layers = engine.lora_layers()
    victim = layers[len(layers) // 2]
    victim._disable_adapters = True
    with pytest.raises(EngineStateError, match=r"1 of \d+ LoRA layers.*disabled, needs enabled"):
        engine.check_state(state)
    victim._disable_adapters = False
    victim._active_adapter = []
    with pytest.raises(EngineStateError, match=r"active adapters \[\], needs \["):
        engine.check_state(state)
    engine.generate(request())  # the next render sets every layer again
    engine.check_state(LoraState())


def test_the_same_lora_twice_adds_its_weights(structured: dict[str, Model]) -> None:
    """Assistant off, ``<lora:x:0.5>, <lora:x:0.3>``: A1111 applies both tags, i.e. x at 0.8 —
    not the adapter listed twice at its last weight (which rendered x at 0.6)."""
    model = structured["sd15"]
    engine = model.engine()
    twice = pixels(engine.generate(request((model.lora("kohya", 0.5), model.lora("kohya", 0.3)))))
    once = pixels(engine.generate(request((model.lora("kohya", 0.8),))))
    assert np.array_equal(twice, once)
    split = (model.lora("kohya", 0.5, unet=0.2), model.lora("attention", 1.0), model.lora("kohya", 0.3))
    merged = (model.lora("kohya", 0.8, unet=0.5), model.lora("attention", 1.0))
    assert np.array_equal(pixels(engine.generate(request(split))), pixels(engine.generate(request(merged))))
