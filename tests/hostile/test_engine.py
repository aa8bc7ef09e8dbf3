"""Hostile requests and faults straight at :class:`assistant.engine.Engine` (the tiny pipeline).

The engine is the last line of defence: whatever reaches it — a request the front ends should
have refused, a file swapped after the scan, a LoRA that cannot fit, a cancel mid-render — it
answers with GenerationError / LoraLoadError / Cancelled naming the problem, and the next normal
request gives the baseline image bit for bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from assistant.errors import Cancelled, GenerationError, LoraLoadError
from assistant.types import GenerationRequest, PlannedLora

from .cases import FILE_CASES, GOOD, GOOD2
from .conftest import hostile_stem
from .files import pickle_file

pytestmark = [pytest.mark.engine]

torch = pytest.importorskip("torch")
engine_module = pytest.importorskip("assistant.engine.core")


@pytest.fixture(scope="module")
def engine(hostile_lora_dir: Path):  # type: ignore[no-untyped-def]
    """A tiny engine of our own. One torch thread: on a shared 2-core box OpenMP's spinning
    threads make a 64x64 render take 5-15 s instead of 0.2 s (restored afterwards)."""
    from assistant.config import Settings
    from assistant.engine import embedded

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # the embedded default model: the demo LoRAs of the hostile folder were trained for it
    eng = engine_module.Engine(Settings(lora_dirs=(str(hostile_lora_dir),)), pipeline=embedded.load())
    eng.load()
    yield eng
    eng.unload_all()
    torch.set_num_threads(threads)


def _lora(folder: Path, stem: str, weight: float = 0.6, suffix: str = ".safetensors") -> PlannedLora:
    return PlannedLora(name=stem, path=str(folder / f"{stem}{suffix}"), weight=weight)


def _request(folder: Path, **changes: Any) -> GenerationRequest:
    base = GenerationRequest(
        prompt="1girl, cat ears",
        loras=(_lora(folder, GOOD),),
        seed=1234,
        steps=2,
        cfg=7.0,
        sampler="Euler",
        width=64,
        height=64,
    )
    return dataclasses.replace(base, **changes)


def _digest(result: Any) -> str:
    return hashlib.sha256(result.images[0].convert("RGB").tobytes()).hexdigest()


@pytest.fixture(scope="module")
def baseline(engine, hostile_lora_dir: Path) -> str:  # type: ignore[no-untyped-def]
    first = _digest(engine.generate(_request(hostile_lora_dir)))
    assert _digest(engine.generate(_request(hostile_lora_dir))) == first
    return first


def _unharmed(engine, folder: Path, baseline: str, adapters_before: list[str] | None = None) -> None:  # type: ignore[no-untyped-def]
    if adapters_before is not None:
        assert engine.loaded_adapters() == adapters_before, "a failed load left an adapter behind"
    assert _digest(engine.generate(_request(folder))) == baseline


# ----------------------------------------------------------------------------------------------
# 1. Requests the front ends should have refused (engine.check_inputs)
# ----------------------------------------------------------------------------------------------

NAN = float("nan")
BAD_REQUESTS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "width-70": ({"width": 70}, (r"width", r"70", r"multiple of 8")),
    "width-0": ({"width": 0}, (r"width",)),
    "height-negative": ({"height": -64}, (r"height", r"-64")),
    "width-100000": ({"width": 100_000}, (r"width", r"100000")),
    "width-float": ({"width": 64.0}, (r"width",)),
    "steps-0": ({"steps": 0}, (r"steps",)),
    "steps-10000": ({"steps": 10_000}, (r"steps", r"10000")),
    "cfg-nan": ({"cfg": NAN}, (r"CFG", r"nan")),
    "cfg-inf": ({"cfg": float("inf")}, (r"CFG", r"inf")),
    "cfg-negative": ({"cfg": -1.0}, (r"CFG",)),
    "batch-1000": ({"batch_size": 1000}, (r"batch", r"1000")),
    "batch-0": ({"batch_size": 0}, (r"batch",)),
    "seed-2-70": ({"seed": 2**70}, (r"seed",)),
    "seed-minus-5": ({"seed": -5}, (r"seed", r"-5")),
    "sampler-unknown": ({"sampler": "Euler z"}, (r"Euler z", r"DPM\+\+ 2M")),
    "scheduler-unknown": ({"scheduler": "Bogus"}, (r"Bogus",)),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request(engine, hostile_lora_dir: Path, baseline: str, name: str) -> None:  # type: ignore[no-untyped-def]
    changes, mentions = BAD_REQUESTS[name]
    with pytest.raises(GenerationError) as err:
        engine.generate(_request(hostile_lora_dir, **changes))
    for pattern in mentions:
        assert re.search(pattern, str(err.value), re.IGNORECASE), f"{name}: {err.value} !~ {pattern}"
    _unharmed(engine, hostile_lora_dir, baseline)


@pytest.mark.parametrize("weight", [NAN, float("inf"), float("-inf"), 100.0, -100.0], ids=str)
def test_bad_lora_weight(engine, hostile_lora_dir: Path, baseline: str, weight: float) -> None:  # type: ignore[no-untyped-def]
    request = _request(hostile_lora_dir, loras=(_lora(hostile_lora_dir, GOOD, weight),))
    with pytest.raises(GenerationError, match=GOOD):
        engine.generate(request)
    _unharmed(engine, hostile_lora_dir, baseline)


# ----------------------------------------------------------------------------------------------
# 2. Files that fail to load (the library would have refused or flagged most of them; the engine
#    must hold on its own). Every failure rolls back: no adapter left, baseline unchanged.
# ----------------------------------------------------------------------------------------------

LOAD_FAILURES = [c for c in FILE_CASES if c.status != "absent" and c.user != "skip"] + [
    c for c in FILE_CASES if c.id == "sdxl-on-sd15"
]


@pytest.mark.parametrize("case", LOAD_FAILURES, ids=lambda c: c.id)
def test_failing_load_rolls_back(engine, hostile_lora_dir: Path, baseline: str, case) -> None:  # type: ignore[no-untyped-def]
    stem = hostile_stem(case.id)
    suffix = {"ckpt": ".ckpt", "pt": ".pt", "bin": ".bin"}.get(case.builder, ".safetensors")
    marker = Path("/tmp/lora-mixer-pickle-ran")
    marker.unlink(missing_ok=True)
    _unharmed(engine, hostile_lora_dir, baseline)  # GOOD loaded and cached
    before = engine.loaded_adapters()
    # The failing LoRA second, after a good one: a mid-request failure.
    request = _request(
        hostile_lora_dir, loras=(_lora(hostile_lora_dir, GOOD), _lora(hostile_lora_dir, stem, 0.5, suffix))
    )
    with pytest.raises(LoraLoadError) as err:
        engine.generate(request)
    assert err.value.name == stem
    assert stem in str(err.value)
    assert "Traceback" not in str(err.value)
    assert not marker.exists(), "a pickle was unpickled"
    _unharmed(engine, hostile_lora_dir, baseline, before)


def test_file_deleted_between_scan_and_load(
    engine, hostile_lora_dir: Path, tmp_path: Path, baseline: str
) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "vanishing.safetensors"
    shutil.copy(hostile_lora_dir / f"{GOOD}.safetensors", copy)
    planned = PlannedLora(name="vanishing", path=str(copy), weight=0.5)
    copy.unlink()
    with pytest.raises(LoraLoadError, match=r"vanishing.*not found"):
        engine.generate(_request(hostile_lora_dir, loras=(planned,)))
    _unharmed(engine, hostile_lora_dir, baseline)


def test_file_replaced_between_scan_and_load(
    engine, hostile_lora_dir: Path, tmp_path: Path, baseline: str
) -> None:  # type: ignore[no-untyped-def]
    """Loaded once, then swapped on disk for an HTML page or a pickle: reloaded, refused, rolled back."""
    target = tmp_path / "swapped.safetensors"
    shutil.copy(hostile_lora_dir / f"{GOOD2}.safetensors", target)
    planned = PlannedLora(name="swapped", path=str(target), weight=0.5)
    engine.generate(_request(hostile_lora_dir, loras=(planned,)))
    target.write_bytes(b"<!DOCTYPE html><html>login</html>")
    with pytest.raises(LoraLoadError, match=r"swapped"):
        engine.generate(_request(hostile_lora_dir, loras=(planned,)))
    assert not any(a.startswith("swapped") for a in engine.loaded_adapters()), "the stale adapter was kept"
    target.unlink()
    pickle_file(tmp_path, "swapped", ".safetensors")  # a pickle wearing a .safetensors name
    with pytest.raises(LoraLoadError, match=r"swapped"):
        engine.generate(_request(hostile_lora_dir, loras=(planned,)))
    _unharmed(engine, hostile_lora_dir, baseline)
    assert not Path("/tmp/lora-mixer-pickle-ran").exists()


def test_file_replaced_with_another_lora_is_reloaded(engine, hostile_lora_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Same path, new content (the A1111 "stale cache" bug): the new weights are used."""
    target = tmp_path / "evolving.safetensors"
    planned = PlannedLora(name="evolving", path=str(target), weight=0.8)
    shutil.copy(hostile_lora_dir / f"{GOOD}.safetensors", target)
    first = _digest(engine.generate(_request(hostile_lora_dir, loras=(planned,))))
    shutil.copy(hostile_lora_dir / f"{GOOD2}.safetensors", target)
    second = _digest(engine.generate(_request(hostile_lora_dir, loras=(planned,))))
    reference = PlannedLora(name=GOOD2, path=str(hostile_lora_dir / f"{GOOD2}.safetensors"), weight=0.8)
    assert second != first
    assert second == _digest(engine.generate(_request(hostile_lora_dir, loras=(reference,))))


# ----------------------------------------------------------------------------------------------
# 3. Cancel and NaN
# ----------------------------------------------------------------------------------------------


def test_cancel_mid_render_then_recover(engine, hostile_lora_dir: Path, baseline: str) -> None:  # type: ignore[no-untyped-def]
    cancel = threading.Event()
    seen: list[int] = []

    def progress(step: int, total: int) -> None:
        seen.append(step)
        if step >= 1:
            cancel.set()

    with pytest.raises(Cancelled):
        engine.generate(_request(hostile_lora_dir, steps=6), progress=progress, cancel=cancel)
    assert seen, "the render never started"
    assert max(seen) < 6, "cancel was not honoured between steps"
    _unharmed(engine, hostile_lora_dir, baseline)


def test_cancel_before_start(engine, hostile_lora_dir: Path, baseline: str) -> None:  # type: ignore[no-untyped-def]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        engine.generate(_request(hostile_lora_dir), cancel=cancel)
    _unharmed(engine, hostile_lora_dir, baseline)


def test_lora_that_makes_nans(engine, hostile_lora_dir: Path, tmp_path: Path, baseline: str) -> None:  # type: ignore[no-untyped-def]
    """A LoRA with absurd values overflows to inf/NaN: a clear error, never a black image."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(hostile_lora_dir / f"{GOOD}.safetensors"))
    blown = {k: (v.astype("float32") * 1e18 if k.endswith(".weight") else v) for k, v in tensors.items()}
    path = tmp_path / "exploding.safetensors"
    save_file(blown, str(path), metadata={"ss_network_module": "networks.lora"})
    planned = PlannedLora(name="exploding", path=str(path), weight=1.0)
    with pytest.raises(GenerationError, match=r"(?i)nan|inf|black"):
        engine.generate(_request(hostile_lora_dir, loras=(planned,)))
    _unharmed(engine, hostile_lora_dir, baseline)
