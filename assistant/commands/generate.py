"""``python -m assistant generate "<prompt>" --out DIR``: advise, then render PNGs with A1111 infotext.

Steps: load settings and the LoRA library, start the engine (the tiny demo model when no model
is configured — said plainly on stderr), run the assistant on the prompt (``--no-assistant``
applies the tags as written), render ``--batch-size`` images, save each as
``<index>-<seed>.png`` with the ``parameters`` text chunk A1111 writes. ``--dry-run`` prints the
request without rendering (torch is never imported). ``--json`` prints one JSON document.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

from ..engine.checks import check_request
from .blindbox import add_common_arguments, parse_size, prepare


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, grid=False)
    parser.add_argument(
        "--seed", type=int, default=-1, help="image seed; -1 (default) draws one and prints it"
    )
    parser.add_argument("--batch-size", type=int, default=1, metavar="N", help="images per run (1-8)")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    if args.size:
        parse_size(args.size)  # fail on a bad size before loading anything
    context = prepare(args, image_seed=args.seed)
    request = dataclasses.replace(context.base, batch_size=args.batch_size)
    check_request(request)  # the engine's own limits (no torch), so a dry run refuses what a render would
    out_dir = Path(args.out or Path(context.settings.outputs_dir) / "generate")
    report: dict[str, Any] = {
        "ok": True,
        "tiny_model": context.tiny,
        "engine": context.backend,
        "banner": context.banner,
        "prompt": request.prompt,
        "negative": request.negative,
        "loras": [dataclasses.asdict(lora) for lora in request.loras],
        "changes": [dataclasses.asdict(c) for c in getattr(context.advice, "changes", ())],
        "warnings": [dataclasses.asdict(w) for w in getattr(context.advice, "warnings", ())],
        "notes": list(context.notes),
    }
    if context.banner:
        print(context.banner, file=sys.stderr)
    for change in report["changes"]:
        print(
            f"changed ({change['rule']}): {change['before']!r} -> {change['after']!r} — {change['reason']}",
            file=sys.stderr,
        )
    for warning in report["warnings"]:
        print(f"warning ({warning['rule']}): {warning['message']}", file=sys.stderr)
    for note in context.notes:
        print(f"note: {note}", file=sys.stderr)
    if request.init_image is not None:
        report["init_image"] = request.init_image.describe()
    if args.dry_run:
        report["request"] = dataclasses.asdict(dataclasses.replace(request, init_image=None))
        report["request"]["init_image"] = report.get("init_image")
        _emit(args, report, [])
        return 0
    service = context.service
    report["model"] = service.engine_info.model_name
    # the service's render and save path (the app's Generate): <nnnnn>-<seed>.png with the infotext
    rendered = service.render(
        request, progress=_progress(args.json), cancel=threading.Event(), folder=out_dir
    )
    result = rendered.results[0]
    files = [Path(p) for p in rendered.paths]
    report["images"] = [
        {"path": str(path), "seed": seed, "infotext": text}
        for path, seed, text in zip(files, result.seeds, result.infotexts, strict=True)
    ]
    report["timings"] = dict(result.timings)
    report["engine_warnings"] = list(result.warnings)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _emit(args, report, files)
    return 0


def _progress(quiet: bool) -> Any:
    def show(step: int, total: int, _what: str = "") -> None:
        if not quiet:
            end = "\n" if step == total else ""
            print(f"\rstep {step}/{total}", end=end, file=sys.stderr, flush=True)

    return show


def _emit(args: argparse.Namespace, report: dict[str, Any], files: list[Path]) -> None:
    if args.json:
        from ..cli import print_json

        print_json(report)
        return
    if not files:
        request = report.get("request", {})
        print(f"prompt: {report['prompt']}")
        if report["negative"]:
            print(f"negative: {report['negative']}")
        for lora in report["loras"]:
            print(
                f"lora: {lora['name']} weight {lora['weight']}"
                + (f" unet {lora['unet']}" if lora["unet"] is not None else "")
            )
        if request:
            print(
                f"would render {request['width']}x{request['height']}, {request['steps']} steps, "
                f"{request['sampler']}, CFG {request['cfg']}, seed {request['seed']}"
            )
            if request.get("init_image"):
                init = request["init_image"]
                print(
                    f"img2img over {init['name']} ({init['width']}x{init['height']}), denoising strength "
                    f"{request['denoising_strength']:g}, resize mode {request['resize_mode']}"
                )
            if request.get("hires"):
                print(f"hires fix: {request['hires']}, denoising strength {request['denoising_strength']:g}")
        return
    for image in report["images"]:
        print(f"{image['path']}  (seed {image['seed']})")
