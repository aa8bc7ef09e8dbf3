"""Memory: load and unload 50 different LoRAs in sequence; RSS must not grow without bound.

Usage::

    .venv/bin/python bench/lora_memory.py [--count 50] [--cache 4] [--rank 128]

Writes ``--count`` distinct kohya LoRA files (rank ``--rank``, about 1 MB each for the tiny
model) into a temporary folder, then applies them one after another through the engine's
adapter step with an LRU cache of ``--cache`` adapters, so every load past the first few
evicts one (``delete_adapters``). Prints the process RSS before, after the first ``cache``
loads, and after all of them, and the growth per extra LoRA. A leak would show as growth of
roughly one file per LoRA; bounded means the tail stays flat.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--cache", type=int, default=4)
    parser.add_argument("--rank", type=int, default=128)
    args = parser.parse_args()

    import psutil
    import torch

    from assistant.config import Settings
    from assistant.engine.core import Engine
    from assistant.engine.demo_loras import DemoLora, lora_metadata, lora_tensors, safetensors_bytes
    from assistant.types import PlannedLora

    torch.set_num_threads(1)
    process = psutil.Process()

    def rss_mb() -> float:
        gc.collect()
        return process.memory_info().rss / 2**20

    with tempfile.TemporaryDirectory(prefix="lora-mixer-mem-") as folder:
        paths = []
        for i in range(args.count):
            spec = DemoLora(f"mem_{i:03d}", rank=args.rank, alpha=args.rank / 2, gain=0.3)
            path = Path(folder) / f"{spec.name}.safetensors"
            path.write_bytes(safetensors_bytes(lora_tensors(spec), lora_metadata(spec)))
            paths.append(path)
        file_mb = paths[0].stat().st_size / 2**20
        engine = Engine(Settings(adapter_cache_size=args.cache))
        info = engine.load()
        before = rss_mb()
        samples = []
        with engine.lock:
            for i, path in enumerate(paths):
                engine._prepare_adapters((PlannedLora(path.stem, str(path), 0.5),))
                if i + 1 in (args.cache, args.count // 2, args.count):
                    samples.append((i + 1, rss_mb()))
        adapters = len(engine.loaded_adapters())
        engine.unload_all()
        after_unload = rss_mb()
    warm_n, warm = samples[0]
    end_n, end = samples[-1]
    per_lora = (end - warm) / max(1, end_n - warm_n)
    result = {
        "bench": "lora_memory",
        "model": info.model_name,
        "loras": args.count,
        "cache": args.cache,
        "file_mb": round(file_mb, 2),
        "rss_before_mb": round(before, 1),
        "rss_samples_mb": {str(n): round(v, 1) for n, v in samples},
        "rss_after_unload_mb": round(after_unload, 1),
        "growth_per_extra_lora_mb": round(per_lora, 3),
        "adapters_loaded_at_end": adapters,
        "evictions": engine._adapters.evictions,
    }
    print(
        f"RSS before {before:.1f} MB; after {warm_n} LoRAs {warm:.1f} MB; after {end_n} {end:.1f} MB; "
        f"after unload_all {after_unload:.1f} MB; growth per extra LoRA {per_lora:.3f} MB "
        f"(file {file_mb:.2f} MB); adapters kept {adapters}, evictions {engine._adapters.evictions}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
