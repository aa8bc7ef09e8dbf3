"""Train the demo LoRAs of ``models/Lora`` on the embedded model, with the project's own trainer.

    nice -n 10 .venv/bin/python tools/make_demo_loras.py            # train all, then measure
    nice -n 10 .venv/bin/python tools/make_demo_loras.py --only catgirl_v1 --measure-only

Each LoRA's dataset is generated (:data:`assistant.train.synthetic.LORA_DATASETS`, a kohya
folder ``10_name/`` of PNG + ``.txt`` captions) and trained by ``python -m assistant train-lora``
(run in-process through the CLI entry point, so the files are exactly what a user gets);
``catgirl_v2`` continues from ``catgirl_v1`` with ``--network-weights`` (the seed articles'
"LoRA of a LoRA"). Then every LoRA is rendered through the engine at several weights and seeds
and measured with :mod:`assistant.train.metrics`; the figures go to ``--report`` (JSON) and a
contact sheet to ``docs/demo_loras.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.train import metrics, synthetic  # noqa: E402

#: name -> (CLI options, sample prompt, the metric that says what it does, prompt to measure with)
PLAN: dict[str, dict[str, Any]] = {
    "catgirl_v1": {
        "args": ["--rank", "8", "--alpha", "4", "--max-steps", "900", "--train-text-encoder"],
        "prompt": "1girl, catgirl, cat ears, on a blue background",
        "metric": "ears",
        "also": ["likeness"],
    },
    "catgirl_v2": {
        "args": [
            "--rank",
            "8",
            "--alpha",
            "4",
            "--max-steps",
            "200",
            "--train-text-encoder",
            "--network-weights",
            "models/Lora/catgirl_v1.safetensors",
        ],
        "prompt": "1girl, catgirl, cat ears, tail, on a blue background",
        "metric": "ears",
        "also": ["likeness"],
    },
    "cyberpunk_style": {
        "args": ["--rank", "8", "--alpha", "4", "--max-steps", "600", "--train-text-encoder"],
        "prompt": "cyberpunk, neon lights, a red circle",
        "metric": "dimness",
    },
    "animeoutlineV4_16": {
        "args": ["--rank", "16", "--alpha", "8", "--max-steps", "600", "--train-text-encoder"],
        "prompt": "lineart, monochrome, a striped star",
        "metric": "monochrome",
    },
    "soft_light": {
        "args": ["--rank", "4", "--alpha", "2", "--max-steps", "500", "--train-text-encoder"],
        "prompt": "soft lighting, a blue square on a yellow background",
        "metric": "softness",
    },
    "jk_uniform": {
        "args": ["--rank", "8", "--alpha", "4", "--max-steps", "800", "--train-text-encoder"],
        "prompt": "jk uniform, school uniform, a green circle on a white background",
        "metric": "collar",
        "also": ["likeness"],
    },
    "add_brightness": {
        "args": ["--rank", "4", "--alpha", "2", "--max-steps", "500"],
        "prompt": "a purple square on a green background",
        "metric": "brightness",
    },
    "add_saturation": {
        "args": ["--rank", "4", "--alpha", "2", "--max-steps", "500"],
        # on "a white circle on a gray background" it removes the base's purple cast instead
        "prompt": "a blue square on a white background",
        "metric": "saturation",
    },
    "add_detail": {
        "args": ["--rank", "4", "--alpha", "2", "--max-steps", "500"],
        "prompt": "a red star on a yellow background",
        "metric": "coarse_detail",
        "also": ["detail"],
    },
}
SIZE = 64  # training and measuring size (px): the embedded model is at its best there, and 4x cheaper
COMMON = ["--resolution", str(SIZE), "--lr", "3e-3", "--batch-size", "4", "--scheduler", "cosine",
          "--cache-latents", "--flip-aug", "--seed", "7", "--sample-steps", "20",
          "--save-precision", "fp16", "--conv-dim", "8", "--conv-alpha", "4"]  # fmt: skip
WEIGHTS = (-1.0, 0.0, 0.5, 1.0)
SEEDS = (1, 2, 3, 4)


def softness(image: Any) -> float:
    """Soft lighting: brighter and less edgy (luma minus high-frequency energy)."""
    return metrics.brightness(image) - metrics.detail(image)


def metric_fn(name: str, references: list[Any]) -> Any:
    if name == "likeness":  # closer to the training images = higher
        return lambda image: -metrics.nearest_distance([image], references)
    return {
        "ears": metrics.ear_score,
        "collar": metrics.navy_share,
        "darkness": metrics.darkness,
        "dimness": lambda image: 1.0 - metrics.brightness(image),
        "monochrome": metrics.monochrome,
        "brightness": metrics.brightness,
        "saturation": metrics.saturation,
        "detail": metrics.detail,
        "coarse_detail": metrics.coarse_detail,
        "softness": softness,
    }[name]


def train(name: str, work: Path, out_dir: Path, log: Any) -> dict[str, Any]:
    from assistant.cli import main as cli

    dataset = synthetic.LORA_DATASETS[name]
    data = work / name / "img"
    if data.exists():
        shutil.rmtree(data)
    synthetic.write_kohya_dataset(dataset, data, seed=0)
    plan = PLAN[name]
    argv = ["train-lora", str(data), "--output", str(out_dir / f"{name}.safetensors"),
            "--sample-prompts", plan["prompt"], "--samples-dir", str(work / name / "samples"),
            "--training-comment", f"LoRA Mixer demo LoRA: tools/make_demo_loras.py ({dataset.render} images)",
            *COMMON, *plan["args"], "--log-every", "50", "--json"]  # fmt: skip
    log(f"train {name}: python -m assistant {' '.join(argv)}")
    started = time.time()
    code = cli(argv)
    if code != 0:
        raise SystemExit(f"training {name} failed ({code})")
    seconds = time.time() - started
    log(f"trained {name} in {seconds:.0f} s")
    return {"seconds": round(seconds, 1), "command": "python -m assistant " + " ".join(argv)}


def measure(names: list[str], out_dir: Path, log: Any, sheet: Path | None) -> dict[str, Any]:
    import dataclasses

    from assistant.config import Settings
    from assistant.engine.core import Engine
    from assistant.types import GenerationRequest, PlannedLora

    engine = Engine(Settings(lora_dirs=(str(out_dir),)))
    info = engine.load()
    log(f"measuring on {info.model_name}")
    report: dict[str, Any] = {}
    rows = []
    for name in names:
        plan = PLAN[name]
        references = [image for image, _caption in synthetic.LORA_DATASETS[name].samples(0)]
        names_ = [plan["metric"], *plan.get("also", ())]
        measures = {m: metric_fn(m, references) for m in names_}
        base = GenerationRequest(plan["prompt"], negative="", steps=20, cfg=7.0, sampler="Euler a",
                                 width=SIZE, height=SIZE, seed=SEEDS[0])  # fmt: skip
        by_metric: dict[str, dict[str, float]] = {m: {} for m in names_}
        row = []
        for weight in WEIGHTS:
            loras = () if weight == 0 else (PlannedLora(name, str(out_dir / f"{name}.safetensors"), weight),)
            values: dict[str, list[float]] = {m: [] for m in names_}
            for seed in SEEDS:
                result = engine.generate(dataclasses.replace(base, loras=loras, seed=seed))
                for m, fn in measures.items():
                    values[m].append(fn(result.images[0]))
                if seed == SEEDS[0]:
                    row.append(result.images[0])
            for m in names_:
                by_metric[m][f"{weight:g}"] = round(float(sum(values[m]) / len(values[m])), 4)
        by_weight = by_metric[plan["metric"]]
        report[name] = {"metric": plan["metric"], "prompt": plan["prompt"], "by_weight": by_weight,
                        "also": {m: by_metric[m] for m in names_[1:]}}  # fmt: skip
        log(f"{name}: {plan['metric']} by weight {by_weight}; also {report[name]['also']}")
        rows.append((name, row))
    if sheet is not None:
        contact_sheet(rows, sheet)
        log(f"contact sheet {sheet}")
    return report


def contact_sheet(rows: list[tuple[str, list[Any]]], path: Path) -> None:
    from PIL import Image, ImageDraw

    label_w, cell = 150, 128
    sheet = Image.new("RGB", (label_w + cell * len(WEIGHTS), 20 + cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, weight in enumerate(WEIGHTS):
        draw.text((label_w + k * cell + 50, 4), f"{weight:g}", fill="black")
    for r, (name, images) in enumerate(rows):
        draw.text((6, 20 + r * cell + 56), name, fill="black")
        for k, image in enumerate(images):
            sheet.paste(image.resize((cell, cell)), (label_w + k * cell, 20 + r * cell))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", help="train/measure only these (repeatable)")
    parser.add_argument("--measure-only", action="store_true")
    parser.add_argument("--train-only", action="store_true", help="train, measure nothing (parallel runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "Lora")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "demo-loras")
    parser.add_argument("--report", type=Path, default=ROOT / ".cache" / "demo-loras" / "report.json")
    parser.add_argument("--sheet", type=Path, default=ROOT / "docs" / "demo_loras.png")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    names = args.only or list(PLAN)
    args.work.mkdir(parents=True, exist_ok=True)
    log_path = args.work / "make_demo_loras.log"

    def log(message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        with log_path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    report: dict[str, Any] = json.loads(args.report.read_text()) if args.report.exists() else {}
    if not args.measure_only:
        for name in names:
            report.setdefault("training", {})[name] = train(name, args.work, args.out, log)
    if not args.train_only:
        report["effects"] = {**report.get("effects", {}), **measure(names, args.out, log, args.sheet)}
    args.report.write_text(json.dumps(report, indent=1), encoding="utf-8")
    log(f"report {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
