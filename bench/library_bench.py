"""LoRA library benchmark: cold scan, warm (cached) scan and name resolution on 10,000 files.

    .venv/bin/python bench/library_bench.py [--files 10000] [--repeat 3] [--keep DIR]

Builds N small but valid kohya SD1.5 LoRA files in a temp folder (100 subfolders; real kohya key
names and shapes at rank 1, ``ss_*`` metadata with ``ss_tag_frequency``; every 10th file has an
A1111 ``.json`` sidecar), then measures:

* cold scan: no scan index on disk (headers and sidecars parsed; the OS page cache is warm,
  because the files were just written — a first scan after a reboot adds disk latency);
* warm scan: a new Library.scan that reuses the scan index on disk (path, size, mtime): a stat
  per file, no header read;
* refresh: ``library.refresh()`` in the same process (unchanged entries are reused as objects);
* resolve: exact, case-insensitive and alias hits (µs per call), and a miss with suggestions.

Goals from the issue: cold ≤ 2 s, warm ≤ 0.2 s, resolve ≤ 20 µs. Prints one line per number,
plus the CPU time of the scans and the load average (on a shared machine wall time inflates).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.library import Library

_MODULES = {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (320, 320),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": (320, 768),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v": (320, 768),
    "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k": (1280, 768),
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (768, 768),
}
_WORDS = ["catgirl", "cyberpunk", "soft_light", "jk_uniform", "add_detail", "watercolor", "outline", "hero"]


def _lora_bytes(name: str, index: int) -> bytes:
    """A valid safetensors LoRA: rank-1 kohya tensors (F16, zeros) and kohya metadata."""
    header: dict[str, object] = {}
    offset = 0
    for module, (out_dim, in_dim) in _MODULES.items():
        for suffix, shape, dtype, size in (
            ("lora_down.weight", [1, in_dim], "F16", in_dim * 2),
            ("lora_up.weight", [out_dim, 1], "F16", out_dim * 2),
            ("alpha", [], "F32", 4),
        ):
            header[f"{module}.{suffix}"] = {
                "dtype": dtype,
                "shape": shape,
                "data_offsets": [offset, offset + size],
            }
            offset += size
    word = _WORDS[index % len(_WORDS)]
    tags = {f"10_{word}": {"1girl": 20, "solo": 18, word: 20, f"tag{index % 97}": 12, "smile": 9}}
    header["__metadata__"] = {
        "ss_output_name": f"{name}_out",
        "ss_network_module": "networks.lora",
        "ss_network_dim": "1",
        "ss_network_alpha": "1",
        "ss_base_model_version": "sd_v1",
        "ss_v2": "False",
        "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors",
        "ss_tag_frequency": json.dumps(tags),
        "ss_num_train_images": "200",
        "ss_resolution": "(512, 512)",
        "ss_learning_rate": "0.0001",
        "ss_training_comment": "benchmark file",
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def build(folder: Path, count: int) -> list[str]:
    names = []
    for i in range(count):
        sub = folder / f"set_{i % 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        name = f"{_WORDS[i % len(_WORDS)]}_{i:05d}"
        (sub / f"{name}.safetensors").write_bytes(_lora_bytes(name, i))
        if i % 10 == 0:
            sidecar = {"activation text": f"{name} trigger", "preferred weight": 0.7, "sd version": "SD1"}
            (sub / f"{name}.json").write_text(json.dumps(sidecar), encoding="utf-8")
        names.append(name)
    return names


def _timed_scan(root: Path, cache: Path, cpu: list[float]) -> tuple[float, Library]:
    started, cpu_started = time.perf_counter(), time.process_time()
    library = Library.scan([root], catalog=None, cache_dir=cache)
    cpu.append(time.process_time() - cpu_started)
    return time.perf_counter() - started, library


def _calibration() -> float:
    """µs to parse one benchmark header with json.loads: a yardstick to compare machines/loads."""
    raw = _lora_bytes("calibration", 0)
    text = raw[8 : 8 + int.from_bytes(raw[:8], "little")].decode()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(200):
            json.loads(text)
        best = min(best, (time.perf_counter() - started) / 200)
    return best * 1e6


def _per_call_us(function, names: list[str], rounds: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for name in names:
            function(name)
        best = min(best, (time.perf_counter() - started) / len(names))
    return best * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="scans per measurement (the median is shown)")
    parser.add_argument("--keep", type=Path, help="build the files here and keep them")
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="lora-bench-"))
    root, cache = base / "Lora", base / "cache"
    try:
        started = time.perf_counter()
        names = build(root, args.files)
        print(f"built {args.files} files in {time.perf_counter() - started:.1f} s under {root}")

        colds, warms, cold_cpu, warm_cpu = [], [], [], []
        library = None
        for _ in range(args.repeat):
            shutil.rmtree(cache, ignore_errors=True)
            seconds, library = _timed_scan(root, cache, cold_cpu)
            colds.append(seconds)
            seconds, library = _timed_scan(root, cache, warm_cpu)
            warms.append(seconds)
        assert library is not None
        assert len(library.loadable()) == args.files, "benchmark files must all load"

        refreshes = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            library = library.refresh()
            refreshes.append(time.perf_counter() - started)

        exact = names[:: max(1, len(names) // 2000)]
        upper = [n.upper() for n in exact]
        alias = [f"{n}_out" for n in exact]
        miss = [n[:-2] + "zz" for n in exact[:50]]

        def resolve_miss(name: str) -> None:
            with contextlib.suppress(LookupError):
                library.resolve(name)

        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"machine     {os.cpu_count()} CPUs, load average {load}; {_calibration():.1f} us per json.loads"
        )
        runs = ", ".join(f"{s:.3f}" for s in colds)
        cpu = statistics.median(cold_cpu)
        print(
            f"cold scan   {statistics.median(colds):.3f} s wall, {cpu:.3f} s CPU  (goal <= 2 s; runs: {runs})"
        )
        runs = ", ".join(f"{s:.3f}" for s in warms)
        cpu = statistics.median(warm_cpu)
        wall = statistics.median(warms)
        print(f"warm scan   {wall:.3f} s wall, {cpu:.3f} s CPU  (goal <= 0.2 s; runs: {runs})")
        runs = ", ".join(f"{s:.3f}" for s in refreshes)
        wall = statistics.median(refreshes)
        print(f"refresh     {wall:.3f} s  (in-process rescan of unchanged files; runs: {runs})")
        print(f"resolve     {_per_call_us(library.resolve, exact):.2f} us exact stem (goal <= 20 us)")
        print(f"resolve     {_per_call_us(library.resolve, upper):.2f} us case-insensitive")
        print(f"resolve     {_per_call_us(library.resolve, alias):.2f} us alias (ss_output_name)")
        print(
            f"resolve     {_per_call_us(resolve_miss, miss, rounds=1) / 1000:.2f} ms miss with did-you-mean"
        )
        started = time.perf_counter()
        library.hashes(names[0])
        elapsed_ms = (time.perf_counter() - started) * 1e3
        print(f"hashes      {elapsed_ms:.2f} ms first call on one file (lazy, then cached)")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
