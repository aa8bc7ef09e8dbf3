"""A mix with a LoRA the engine cannot apply: that LoRA is left out, named, with the reason whole;
the rest renders exactly as the mix without it (issue 12, item 3) — unless the request is strict.

Files the library cannot flag at scan time reach the engine when a plan names them by path (the
assistant off, the API, a file changed after the scan): an OFT file (a layout LoRA Mixer does not
apply), a LoHa file whose keys name no layer of this model, an SDXL UNet LoRA on SD1.5, and a
LoHa file of which only some layers exist here (applied in part, said as a warning).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from assistant.config import Settings
from assistant.engine.core import Engine
from assistant.errors import LoraLoadError
from assistant.types import GenerationRequest, PlannedLora
from tests.library.lora_layouts import LayoutSpec, lora_tensors, write_lora

from .conftest import Structured

pytestmark = pytest.mark.engine


def request(loras: tuple[PlannedLora, ...], *, leave_out: bool = True) -> GenerationRequest:
    return GenerationRequest(
        prompt="1girl, city",
        negative="blurry",
        width=64,
        height=64,
        steps=2,
        cfg=7.0,
        seed=11,
        sampler="Euler",
        loras=loras,
        leave_out_unloadable=leave_out,
    )


def pixels(result: Any) -> np.ndarray:
    return np.asarray(result.images[0], dtype=np.int16)


@pytest.fixture(scope="module")
def files(sd15: Structured, sdxl: Structured, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("partial")
    out = {
        "good": write_lora(
            folder / "good.safetensors", sd15.targets, "locon", seed=1, spec=LayoutSpec(scale=3)
        ),
        "wrong_base": write_lora(folder / "xl_style.safetensors", sdxl.targets, "unet", seed=2),
    }
    stem = "lora_unet_down_blocks_0_attentions_0_proj_in"
    oft = {f"{stem}.oft_blocks": np.zeros((4, 8, 8), np.float32), f"{stem}.alpha": np.array(4.0, np.float32)}
    save_file(oft, str(folder / "oft.safetensors"))
    out["oft"] = folder / "oft.safetensors"
    loha = lora_tensors(sd15.targets, "kohya", layout="loha", seed=3)
    alien = {k.replace("lora_unet_", "lora_unet_alien_"): v for k, v in loha.items() if "lora_unet_" in k}
    save_file(alien, str(folder / "alien.safetensors"))
    out["alien"] = folder / "alien.safetensors"
    half = dict(loha)
    half.update({k.replace("lora_unet_", "lora_unet_alien_"): v for k, v in list(loha.items())[:30]})
    save_file(half, str(folder / "half.safetensors"))
    out["half"] = folder / "half.safetensors"
    return out


@pytest.fixture(scope="module")
def engine(sd15: Structured) -> Any:
    from assistant.engine.structured import build_sd15

    made = Engine(Settings(device="cpu", adapter_cache_size=4), pipeline=build_sd15())
    made.load()
    yield made
    made.close()


def lora(files: dict[str, Path], kind: str, weight: float = 0.8) -> PlannedLora:
    return PlannedLora(name=files[kind].stem, path=str(files[kind]), weight=weight)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (
            "oft",
            "it is a OFT file: it uses LyCORIS OFT/BOFT (orthogonal fine-tuning, 'oft_blocks'), which "
            "LoRA Mixer cannot apply; nothing was loaded.",
        ),
        ("alien", "none of its"),
        ("wrong_base", "it is made for SDXL"),
    ],
)
def test_unappliable_lora_is_left_out_and_named(
    engine: Any, files: dict[str, Path], kind: str, reason: str
) -> None:
    alone = engine.generate(request((lora(files, "good"),)))
    mixed = engine.generate(request((lora(files, "good"), lora(files, kind))))
    assert np.array_equal(pixels(mixed), pixels(alone))  # exactly the render without that tag
    said = [w for w in mixed.warnings if files[kind].stem in w]
    assert len(said) == 1, mixed.warnings
    assert f"LoRA '{files[kind].stem}' could not be loaded: " in said[0]
    assert reason in said[0]
    assert said[0].endswith("It was left out of this render; the rest of the mix rendered without it.")
    assert not any(files["good"].stem in w for w in mixed.warnings)
    with pytest.raises(LoraLoadError) as caught:  # strict: nothing rendered, the same reason
        engine.generate(request((lora(files, "good"), lora(files, kind)), leave_out=False))
    assert reason in str(caught.value)
    again = engine.generate(request((lora(files, "good"),)))
    assert np.array_equal(pixels(again), pixels(alone))  # nothing left behind


def test_grid_with_an_unappliable_lora_renders_every_cell(engine: Any, files: dict[str, Path]) -> None:
    cells = [request((lora(files, "good", w), lora(files, "oft", 0.5))) for w in (0.2, 0.9)]
    results = engine.generate_many(cells, batched=True)
    for weight, result in zip((0.2, 0.9), results, strict=True):
        want = engine.generate(request((lora(files, "good", weight),)))
        assert int(np.abs(pixels(result) - pixels(want)).max()) <= 2
        assert any("'oft' could not be loaded" in w for w in result.warnings)


def test_partly_matching_file_applies_what_exists_and_says_what_not(
    engine: Any, files: dict[str, Path]
) -> None:
    result = engine.generate(request((lora(files, "half"),)))
    said = [w for w in result.warnings if "'half'" in w]
    assert said == [
        "LoRA 'half': 6 of its 270 layers name no layer of this model and were left out (e.g. "
        "'lora_unet_alien_down_blocks_0_attentions_0_proj_in', "
        "'lora_unet_alien_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k', "
        "'lora_unet_alien_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0')."
    ], result.warnings
    base = engine.generate(request(()))
    assert not np.array_equal(pixels(result), pixels(base))  # the rest applied


@pytest.mark.parametrize(
    ("key", "layout"),
    [
        ("sd15", "kohya"),
        ("sd15", "peft"),
        ("sd15", "diffusers"),
        ("sd15", "diffusers-proc"),
        ("sdxl", "kohya"),
    ],
)
def test_plain_layouts_apply_every_layer_without_a_warning(
    request_model: Any, key: str, layout: str, tmp_path: Path
) -> None:
    """Every layer name of the plain layouts exists (the check that says "N of its M layers name no
    layer" must never fire on a good file), and the library names the rank of each."""
    from assistant.engine.adapters import AdapterCache
    from assistant.layouts import analyse
    from assistant.library import read_safetensors_header

    model = request_model(key)
    file = write_lora(tmp_path / f"{layout}.safetensors", model.targets, "locon", layout=layout, seed=5)
    cache = AdapterCache(model.pipe, capacity=2, base=key)
    adapter = cache.ensure(file.stem, file)
    try:
        assert cache.report(adapter).route == "diffusers"
        assert cache.report(adapter).warnings == ()
    finally:
        cache.unload_all()
    _length, header, _meta = read_safetensors_header(file)
    assert analyse(header).rank == LayoutSpec().rank


@pytest.fixture
def request_model(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue
