"""What setting the complete LoRA state per render costs (issue 19), measured in one run.

Usage::

    nice -n 10 .venv/bin/python bench/state_cost.py [--model sdxl|sd15] [--rounds 60] [--threads 1]

On a structured model (the released module tree at reduced widths; SDXL: 788 UNet + 264 text
encoder LoRA-able layers) with three LoRA files loaded (full kohya, LoCon, TE-only), it cycles
through three mixes — two LoRAs, TE-only, no LoRA — and times, interleaved round by round:

- ``complete``: ``AdapterCache.activate`` — on/off, active adapters and scales written on every
  tuner layer (what every render does now);
- ``first-layer``: the old logic — read the first UNet layer's on/off flag, call diffusers'
  ``enable_lora``/``disable_lora`` only when it reads the other way, then the scale loop (the
  bug: it leaves older layers off; timed here only for the cost comparison);
- ``check``: ``AdapterCache.verify`` (what ``LORA_MIXER_CHECK_STATE=1`` adds after each render);
- ``render``: a whole 256x256, 10-step render with the two-LoRA mix, to put the others in
  proportion.

Prints medians in ms and the ratio complete / first-layer, and the state step as a share of a
render. The machine may be shared: both sides see the same load because they alternate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("sdxl", "sd15"), default="sdxl")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--renders", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from assistant.config import Settings
    from assistant.engine.core import Engine
    from assistant.engine.structured import build_sd15, build_sdxl, lora_targets
    from assistant.types import GenerationRequest, PlannedLora
    from tests.library.lora_layouts import write_lora

    torch.set_num_threads(args.threads)
    pipe = build_sdxl() if args.model == "sdxl" else build_sd15()
    targets = lora_targets(pipe)
    folder = Path(tempfile.mkdtemp(prefix="state-cost-"))
    files = {
        kind: write_lora(folder / f"{kind}.safetensors", targets, kind, seed=i)
        for i, kind in enumerate(("kohya", "locon", "te"))
    }

    def lora(kind: str, weight: float) -> PlannedLora:
        return PlannedLora(kind, str(files[kind]), weight)

    mixes = [(lora("kohya", 0.7), lora("locon", 0.5)), (lora("te", 1.0),), ()]
    engine = Engine(Settings(device="cpu", adapter_cache_size=8), pipeline=pipe)
    engine.load()
    cache = engine._adapters
    assert cache is not None
    with engine.lock:
        states = []
        for mix in mixes:
            applied = engine._prepare_adapters(mix)  # loads the files once
            states.append((applied.names, applied.cond))

    def first_layer(names: list[str], weights: list[dict[str, float]]) -> None:
        disabled = None
        for layers in cache._layer_index().values():
            if layers:
                disabled = bool(layers[0].disable_adapters)
                break
        if not names:
            if disabled is False:
                pipe.disable_lora()
            return
        if disabled:
            pipe.enable_lora()
        for component, layers in cache._layer_index().items():
            for layer in layers:
                layer._active_adapter = list(names)
                for adapter, weight in zip(names, weights, strict=True):
                    layer.set_scale(adapter, float(weight.get(component, 1.0)))

    complete_ms: list[float] = []
    old_ms: list[float] = []
    check_ms: list[float] = []
    from assistant.engine.adapters import LoraState

    with engine.lock:
        for round_ in range(args.rounds):
            names, weights = states[round_ % len(states)]
            start = time.perf_counter()
            first_layer(names, weights)
            old_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            cache.activate(names, weights)
            complete_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            problems = cache.verify(LoraState(tuple(names), tuple(weights)))
            check_ms.append((time.perf_counter() - start) * 1000)
            assert not problems, problems[:3]
    request = GenerationRequest(
        "1girl, cat ears",
        "lowres",
        mixes[0],
        seed=1,
        steps=10,
        cfg=7.0,
        sampler="Euler",
        width=256,
        height=256,
    )
    engine.generate(request)  # warm-up
    render_ms = []
    for _ in range(args.renders):
        start = time.perf_counter()
        engine.generate(request)
        render_ms.append((time.perf_counter() - start) * 1000)
    complete, old, check, render = (statistics.median(v) for v in (complete_ms, old_ms, check_ms, render_ms))
    layers = len(cache.layers())
    result = {
        "bench": "state_cost",
        "model": f"{args.model}-structured",
        "lora_layers": layers,
        "complete_state_ms": round(complete, 3),
        "first_layer_ms": round(old, 3),
        "ratio": round(complete / old, 2),
        "check_ms": round(check, 3),
        "render_256px_10_steps_ms": round(render, 1),
        "state_share_of_render_pct": round(100 * complete / render, 3),
    }
    print(
        f"{layers} LoRA layers: complete state {complete:.2f} ms vs first-layer logic {old:.2f} ms "
        f"({complete / old:.2f}x); state check {check:.2f} ms; a 256px 10-step render {render:.0f} ms "
        f"(the state step is {100 * complete / render:.2f}% of it)"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
