"""The engine checks a LoRA's base before loading it (assistant or not), with the assistant's
sentence; library dumps never reach stderr; the reason reaches the user whole."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from assistant.advisor import advise
from assistant.config import Settings
from assistant.engine.core import Engine
from assistant.engine.tiny import build_tiny_sd15
from assistant.errors import LoraLoadError
from assistant.library import Library
from assistant.types import PlannedLora
from tests.library import lorafiles as lf

from .harness import Model, pixels, request

pytestmark = pytest.mark.engine

#: What diffusers/PEFT/transformers print when a load goes wrong, and must not.
DUMPS = ("size mismatch", "was unsuccessful", "Target modules", "LOAD REPORT", "Traceback", "was active")


def _refused(engine: Engine, lora: PlannedLora) -> str:
    with pytest.raises(LoraLoadError) as caught:
        engine.generate(request((lora,)))
    message = str(caught.value)
    assert message.endswith("."), f"cut short: {message!r}"
    assert "{'" not in message, message
    assert "torch.Size" not in message, message
    return message


def _quiet(capfd: pytest.CaptureFixture[str]) -> None:
    err = capfd.readouterr().err
    assert not [d for d in DUMPS if d in err], err[-3000:]


def test_unet_only_sdxl_lora_on_sd15_says_sdxl(structured: dict[str, Model], capfd) -> None:  # type: ignore[no-untyped-def]
    """The usual Pony/Illustrious layout (UNet only, no metadata) on an SD1.5 model."""
    sd15 = structured["sd15"]
    engine = sd15.engine()
    capfd.readouterr()
    message = _refused(engine, sd15.lora("wrong-base", 0.8))
    assert message == (
        "LoRA 'sdxl_unet' could not be loaded: it is made for SDXL (from tensor names) but the loaded "
        "model is SD1.5; nothing was loaded. Load an SDXL model to use it."
    )
    _quiet(capfd)
    # the assistant's base-model rule says the same about the same file
    library = Library.scan([str(sd15.files["wrong-base"].parent)])
    advice = advise("1girl, <lora:sdxl_unet:0.8>", "", library=library, base="sd15")
    warning = next(w.message for w in advice.warnings if w.rule == "base-model")
    assert "is made for SDXL (from tensor names) but the loaded model is SD1.5" in warning
    assert engine.loaded_adapters() == []


def test_real_width_pony_lora_on_sd15_says_sdxl(tmp_path: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    """At the released widths (cross-attention input 2048), without metadata or text encoders."""
    path = lf.write_sdxl(tmp_path, "pony_style", te=False, with_metadata=False)
    engine = Engine(Settings(device="cpu"), pipeline=build_tiny_sd15())
    engine.load()
    capfd.readouterr()
    message = _refused(engine, PlannedLora("pony_style", str(path), 0.8))
    assert "it is made for SDXL (from tensor widths) but the loaded model is SD1.5" in message
    _quiet(capfd)


def test_sd15_lora_on_sdxl_prints_no_dump(structured: dict[str, Model], capfd) -> None:  # type: ignore[no-untyped-def]
    sdxl = structured["sdxl"]
    engine = sdxl.engine()
    capfd.readouterr()
    message = _refused(engine, sdxl.lora("wrong-base", 0.8))
    assert (
        "made for SD1.5 (from metadata ss_base_model_version 'sd_v1') but the loaded model is SDXL" in message
    )
    _quiet(capfd)


def test_unknown_base_that_does_not_fit_names_the_layer(
    structured: dict[str, Model], tmp_path, capfd
) -> None:  # type: ignore[no-untyped-def]
    """No metadata, odd widths, no telling layer: it loads until the shapes do not fit — then one
    sentence names a layer and both shapes (diffusers logged ~100 lines of them to stderr)."""
    sdxl = structured["sdxl"]
    module = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    path = lf.write_safetensors(
        tmp_path / "odd.safetensors",
        {
            f"{module}.lora_down.weight": np.zeros((4, 24), np.float16),
            f"{module}.lora_up.weight": np.zeros((64, 4), np.float16),
        },
    )
    engine = sdxl.engine()
    before = pixels(engine.generate(request()))
    capfd.readouterr()
    message = _refused(engine, PlannedLora("odd", str(path), 0.8))
    assert message == (
        "LoRA 'odd' could not be loaded: its tensor shapes do not fit this model, so it was made for "
        "another base model or architecture: layer "
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k has shape [4, 24] in the file "
        "but [4, 80] in this model; nothing was applied."
    )
    _quiet(capfd)
    assert np.array_equal(pixels(engine.generate(request())), before)


def test_rolling_back_a_half_adapter_warns_nobody(structured: dict[str, Model], capfd) -> None:  # type: ignore[no-untyped-def]
    """A failed load is deleted while it is the active adapter: PEFT warns "Adapter … was active
    which is now deleted"; that stays in the engine's debug log, like the load report."""
    sd15 = structured["sd15"]
    engine = sd15.engine()
    engine.generate(request((sd15.lora("attention", 0.7),)))
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _refused(engine, sd15.lora("half", 0.7))
    assert not [str(w.message) for w in seen if "was active" in str(w.message)]
    _quiet(capfd)


def test_long_library_messages_keep_whole_sentences() -> None:
    from assistant.engine.adapters import MAX_REASON, explain_load_error

    text = (
        "The first sentence explains the problem. "
        + "Then a key list: "
        + ", ".join(f"lora_unet_block_{i}.hada_w1_a" for i in range(400))
    )
    reason = explain_load_error(ValueError(text))
    assert reason.startswith("ValueError: The first sentence explains the problem.")
    assert len(reason) <= MAX_REASON + 100
    assert reason.endswith("more characters in the server log at debug level)")
    assert ".hada_w1_a …" in reason or "problem. …" in reason  # cut after a whole item, not inside one
