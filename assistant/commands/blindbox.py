"""``python -m assistant blindbox "<prompt>" -n 8 --seed 7 --out DIR``: random LoRA mixes ("抽盲盒").

The prompt goes through the assistant (``advise``) unless ``--no-assistant``; its LoRA plan is
then varied by :func:`assistant.blend.blind_box` and rendered as a labelled grid plus one PNG per
cell (A1111 infotext) and ``manifest.json``. ``--seed`` seeds the draws and, unless
``--image-seed`` says otherwise, is also the image seed every cell shares — so
``blindbox … --seed 7`` is reproducible to the byte. ``--dry-run`` prints the plan without
rendering (torch is never imported). ``--json`` prints one JSON document. ``--engine ray``
renders on Ray Serve replicas (``--ray-address``, ``--replicas``; see README "Scale out"): the
cells are split across them and the grid is the same.

This module also holds the options and steps the ``ab`` and ``sweep`` commands share.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from ..backend import ENGINE_KINDS, EngineOptions, create_engine
from ..blend import Plan, blind_box
from ..config import Settings
from ..errors import PromptError
from ..limits import (
    BLINDBOX_BUDGET_DEFAULT,
    BLINDBOX_CELLS,
    BLINDBOX_DEFAULT,
    BLINDBOX_PER_LORA_DEFAULT,
    BLINDBOX_SPREAD_DEFAULT,
    CFG_DEFAULT,
    DENOISING,
    DENOISING_DEFAULT,
    HIRES_DENOISING_DEFAULT,
    SEED,
    SIZE,
    SIZE_MULTIPLE,
    STEPS_DEFAULT,
    random_seed,
    split_range,
)
from ..types import BASES, DEFAULT_SAMPLER, GenerationRequest
from . import add_lora_dir_argument, add_model_options, model_settings, settings_with_lora_dirs

#: Image size when none is given: the tiny demo model's (assistant.engine.tiny.TINY_DEFAULT_SIZE)
#: or SD1.5's native 512. A rendering run uses the loaded model's own default instead.
TINY_SIZE = 256
REAL_SIZE = 512


# ----------------------------------------------------------------------------------------------
# Shared options
# ----------------------------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser, *, grid: bool = True) -> None:
    """The prompt and render options every rendering command takes (``grid``: the plan commands'
    ``--sequential``; ``generate`` adds its own ``--seed`` and ``--batch-size``)."""
    parser.add_argument(
        "prompt", help='the positive prompt, e.g. "1girl, <lora:catgirl_v1:0.6>, <lora:cyberpunk_style:0.5>"'
    )
    parser.add_argument("--negative", default="", metavar="TEXT", help="the negative prompt")
    parser.add_argument(
        "--steps",
        type=int,
        default=STEPS_DEFAULT,
        metavar="N",
        help=f"sampling steps (default {STEPS_DEFAULT})",
    )
    parser.add_argument(
        "--cfg", type=float, default=CFG_DEFAULT, metavar="X", help=f"CFG scale (default {CFG_DEFAULT:g})"
    )
    parser.add_argument(
        "--sampler", default=None, metavar="NAME", help=f"A1111 sampler name (default '{DEFAULT_SAMPLER}')"
    )
    parser.add_argument("--scheduler", default=None, metavar="NAME", help="A1111 schedule type, e.g. Karras")
    parser.add_argument(
        "--size", default=None, metavar="WxH", help="image size, e.g. 512x512 (default: the model's)"
    )
    add_lora_dir_argument(parser)
    parser.add_argument(
        "--model", default=None, metavar="MODEL", help="base model (hub id, folder or .safetensors)"
    )
    parser.add_argument(
        "--base",
        choices=[b for b in BASES if b != "unknown"],
        default=None,
        help="base family for the advice in --dry-run (a render uses the loaded model's)",
    )
    add_model_options(parser)
    add_image_options(parser)
    parser.add_argument("--no-assistant", action="store_true", help="apply the LoRA tags exactly as written")
    default_out = "outputs/<kind>-<seed>" if grid else "outputs/generate"
    parser.add_argument("--out", default=None, metavar="DIR", help=f"output folder (default: {default_out})")
    parser.add_argument("--dry-run", action="store_true", help="print the plan only; render nothing")
    parser.add_argument(
        "--engine", choices=ENGINE_KINDS, default=None, help="local (default) or ray (LORA_MIXER_ENGINE)"
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to join, e.g. auto (LORA_MIXER_RAY_ADDRESS; default: start one here)",
    )
    parser.add_argument(
        "--replicas", type=int, default=None, metavar="N", help="engine replicas for --engine ray (default 1)"
    )
    if grid:
        parser.add_argument(
            "--sequential",
            action="store_true",
            help="render cells one by one instead of batching equal cells",
        )


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """img2img (``--init-image``) and the hires fix, with A1111's names and defaults."""
    from ..img2img import UPSCALERS
    from ..types import RESIZE_MODES

    group = parser.add_argument_group("img2img and hires fix")
    group.add_argument(
        "--init-image",
        metavar="FILE",
        help="img2img: render over this image (PNG, JPEG, WebP …); without --size, its own shape at the "
        "model's default area",
    )
    group.add_argument(
        "--denoising-strength",
        type=float,
        default=None,
        metavar="X",
        help=f"0-1: how far from the init image (default {DENOISING_DEFAULT}), or the hires fix's second "
        f"pass (default {HIRES_DENOISING_DEFAULT})",
    )
    group.add_argument(
        "--resize-mode",
        type=int,
        choices=range(len(RESIZE_MODES)),
        default=0,
        help="A1111's: " + ", ".join(f"{i} {name}" for i, name in enumerate(RESIZE_MODES)),
    )
    group.add_argument(
        "--hires", action="store_true", help="A1111's hires fix (txt2img): upscale, then denoise again"
    )
    group.add_argument(
        "--hr-scale", type=float, default=2.0, metavar="X", help="hires fix: upscale by (default 2)"
    )
    group.add_argument(
        "--hr-resize", default=None, metavar="WxH", help="hires fix: resize to this size instead"
    )
    group.add_argument(
        "--hr-steps",
        type=int,
        default=0,
        metavar="N",
        help="hires fix: second-pass steps (0: as the first pass)",
    )
    group.add_argument(
        "--hr-upscaler", default="Latent", metavar="NAME", help="hires fix upscaler: " + ", ".join(UPSCALERS)
    )


def image_fields(args: argparse.Namespace, default_size: int) -> dict[str, Any]:
    """GenerationRequest fields for ``--init-image`` / ``--hires`` (and the size an init image
    implies when ``--size`` is not given), checked; {} for a plain txt2img."""
    from .. import images
    from ..img2img import fit_size
    from ..types import HiresFix

    fields: dict[str, Any] = {}
    init_path = getattr(args, "init_image", None)
    hires_on = bool(getattr(args, "hires", False))
    strength = getattr(args, "denoising_strength", None)
    if strength is not None and not DENOISING[0] <= strength <= DENOISING[1]:
        raise PromptError(
            f"--denoising-strength {strength:g} is out of range; use {DENOISING[0]:g} to {DENOISING[1]:g}"
        )
    if init_path:
        if hires_on:
            raise PromptError(
                "--hires is a txt2img option (as in A1111); with --init-image, set --size instead"
            )
        name = Path(init_path).name
        init = images.init_image(images.read_file(init_path, what=f"--init-image '{name}'"), name=name)
        fields.update(init_image=init, denoising_strength=DENOISING_DEFAULT if strength is None else strength)
        fields["resize_mode"] = args.resize_mode
        if not args.size:
            fields["width"], fields["height"] = fit_size(init.width, init.height, default_size * default_size)
    elif hires_on:
        resize = parse_size(args.hr_resize) if args.hr_resize else (0, 0)
        hires = HiresFix(
            scale=args.hr_scale,
            resize_x=resize[0],
            resize_y=resize[1],
            steps=args.hr_steps,
            upscaler=args.hr_upscaler,
        )
        fields.update(
            hires=hires, denoising_strength=HIRES_DENOISING_DEFAULT if strength is None else strength
        )
    return fields


def check_image_fields(request: GenerationRequest) -> None:
    """The hires fix's size and upscaler, before anything loads (also in a dry run)."""
    from ..img2img import check_hires

    if request.hires is not None:
        check_hires(request.width, request.height, request.hires, request.batch_size)


def parse_size(text: str) -> tuple[int, int]:
    """``512x512`` / ``768X512`` / ``512`` -> (width, height)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX×*]\s*(\d+))?\s*", text or "")
    if match is None:
        raise PromptError(f"--size '{text}' is not a size; write WIDTHxHEIGHT, e.g. 512x512")
    width = int(match.group(1))
    height = int(match.group(2) or width)
    for value in (width, height):
        if not SIZE[0] <= value <= SIZE[1] or value % SIZE_MULTIPLE:
            raise PromptError(
                f"--size '{text}': sides must be multiples of {SIZE_MULTIPLE} from {SIZE[0]} to {SIZE[1]}"
            )
    return width, height


@dataclasses.dataclass
class Context:
    """What a command has once the prompt is prepared: the service it runs on and the base request.

    The service is the app's and the API's (:class:`assistant.service.Service`): the prompt goes
    through its ``prepare`` (advice, or the prompt as written), hashes through its one hashing
    path, and renders are saved by its ``render``/``render_plan``. A dry run never starts its
    engine (torch is not imported).
    """

    settings: Settings
    service: Any
    base: GenerationRequest
    tiny: bool = True
    banner: str = ""
    backend: str = "in-process"
    notes: list[str] = dataclasses.field(default_factory=list)
    advice: Any = None

    @property
    def library(self) -> Any:
        return self.service.library


def _settings(args: argparse.Namespace) -> Settings:
    return model_settings(settings_with_lora_dirs(args).replace(model=args.model), args)


def prepare(args: argparse.Namespace, *, image_seed: int) -> Context:
    """Load settings, the library and (unless ``--dry-run``) the engine into a Service, then
    prepare the prompt through it (advice or as written, hashes) into the base request."""
    from ..service import RenderSettings, Service

    if not SEED[0] <= image_seed <= SEED[1]:
        raise PromptError(f"seed {image_seed} is not a seed; use 0 to {SEED[1]}, or -1 for random")
    if not args.prompt.strip() and not getattr(args, "init_image", None):  # img2img may have none
        raise PromptError("the prompt is empty; describe what to draw, e.g. '1girl, <lora:catgirl_v1:0.6>'")
    settings = _settings(args)
    options = EngineOptions.from_env(kind=args.engine, ray_address=args.ray_address, replicas=args.replicas)
    engine = None if args.dry_run else create_engine(settings, options)
    service = Service(settings, engine=engine, engine_options=options)
    service.assumed_base = args.base
    context = Context(settings=settings, service=service, base=GenerationRequest(prompt=""))
    context.notes.extend(service.library.notes)
    default_size = TINY_SIZE if settings.uses_tiny_model else REAL_SIZE
    if not args.dry_run:
        service.start(background=False, hash_library=False)
        info = service.wait_ready()
        context.tiny = bool(info.is_tiny)
        context.banner = info.banner
        context.backend = info.backend or "in-process"
        default_size = info.default_size
    else:
        context.tiny = settings.uses_tiny_model
        if context.tiny:
            context.banner = (
                "Demo model: the tiny built-in pipeline would render (random weights, noise images)."
            )
    width, height = parse_size(args.size) if args.size else (default_size, default_size)
    image = image_fields(args, default_size)
    render = RenderSettings(
        sampler=args.sampler or DEFAULT_SAMPLER,
        scheduler=args.scheduler,
        steps=args.steps,
        cfg=args.cfg,
        width=image.pop("width", width),
        height=image.pop("height", height),
        seed=image_seed,
        **image,
    )
    request, advice, notes = service.prepare(
        args.prompt, args.negative, render, use_assistant=not args.no_assistant
    )
    context.base, context.advice = request, advice
    context.notes.extend(notes)
    check_image_fields(context.base)
    return context


def plan_seed(value: int | None) -> int:
    """The given seed, or a fresh one (printed, so the run can be repeated)."""
    return random_seed() if value is None or value < 0 else value


def finish(args: argparse.Namespace, context: Context, plan: Plan) -> int:
    """Print the plan; unless ``--dry-run``, render it, save grid + cells + manifest, print where."""
    from ..cli import print_json

    plan = plan.map_loras(context.service.with_hashes)  # LoRAs a plan added (the one hashing path)
    advice = context.advice
    header: dict[str, Any] = {
        "ok": True,
        "kind": plan.kind,
        "dry_run": bool(args.dry_run),
        "tiny_model": context.tiny,
        "engine": context.backend,
        "banner": context.banner,
        "plan": plan.to_json(),
        "notes": list(context.notes),
        "advice": None
        if advice is None
        else {
            "positive": advice.positive,
            "negative": advice.negative,
            "changes": [dataclasses.asdict(c) for c in advice.changes],
            "warnings": [dataclasses.asdict(w) for w in advice.warnings],
        },
    }
    if not args.json:
        if context.banner:
            print(f"note: {context.banner}")
        if advice is not None and advice.changes:
            print(
                f"assistant: {len(advice.changes)} change(s) to the prompt (see `python -m assistant advise`)"
            )
            for change in advice.changes:
                print(f"  [{change.rule}] {change.reason}")
        print(plan.describe())
        print(_reproduce_hint(args, plan))
        for note in context.notes:
            print(f"note: {note}", file=sys.stderr)
    if args.dry_run:
        if args.json:
            print_json(header)
        return 0

    out = Path(args.out) if args.out else Path(context.settings.outputs_dir) / f"{plan.kind}-{plan.seed}"
    progress = _progress_printer(len(plan.cells), quiet=bool(args.json))
    # the service's plan renderer: the same rendering and saving (grid.save) as the app's buttons
    rendered = context.service.render_plan(
        plan, advice, folder=out, batched=not args.sequential, progress=progress
    )
    results = list(rendered.results)
    if progress is not None:
        print(file=sys.stderr)
    total = sum(float(r.timings.get("total", 0.0)) for r in results)
    if args.json:
        header.update(
            {
                "grid": str(rendered.grid_path),
                "cells": [
                    {
                        "file": str(path),
                        "label": cell.label,
                        "seed": result.seeds[0] if result.seeds else None,
                    }
                    for path, cell, result in zip(
                        rendered.cell_paths, rendered.plan.cells, results, strict=True
                    )
                ],
                "manifest": str(rendered.manifest_path),
                "analysis": rendered.analysis,
                "analysis_image": str(rendered.extra_images[0]) if rendered.extra_images else None,
                "grid_notes": list(rendered.saved_notes),
                "warnings": [w for r in results for w in r.warnings],
            }
        )
        print_json(header)
    else:
        print(f"grid: {rendered.grid_path}")
        cells = len(rendered.cell_paths)
        print(f"cells: {Path(rendered.cell_paths[0]).parent}/cell-01.png … cell-{cells:02d}.png")
        print(f"manifest: {rendered.manifest_path}")
        for summary in rendered.notes:  # what the grid's analysis found
            print(summary.replace("**", "").replace("`", ""))
            print(f"analysis: {rendered.extra_images[0]}")
        if total:
            print(f"rendered {len(results)} cells ({total:.1f} s of engine time)")
        for note in rendered.saved_notes:
            print(f"note: {note}", file=sys.stderr)
        for result in results:
            for warning in result.warnings:
                print(f"warning: {warning}", file=sys.stderr)
    return 0


def _reproduce_hint(args: argparse.Namespace, plan: Plan) -> str:
    if plan.kind == "blindbox":
        hint = (
            f"reproduce: the same command with --seed {plan.seed} gives this plan (and grid) again; any "
            "single cell renders again from its prompt and seed above (or its PNG infotext)"
        )
    else:
        hint = f"reproduce: every cell uses seed {plan.seed}; its prompt and settings are listed above"
    if getattr(args, "sequential", False):
        return hint
    return hint + (
        " — to the bit with --sequential; cells rendered in one batched pass (the default, faster) "
        "may differ from a single render by 1/255 in a few pixels"
    )


def _progress_printer(cells: int, *, quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return None

    def show(done: int, total: int, _what: str = "") -> None:
        print(f"\rrendering {cells} cells: step {done}/{total}", end="", file=sys.stderr, flush=True)

    return show


# ----------------------------------------------------------------------------------------------
# blindbox
# ----------------------------------------------------------------------------------------------


def _range(text: str) -> tuple[str, tuple[float, float]]:
    match = re.fullmatch(r"\s*([^=:]+?)\s*[=:](.*)", text)
    span = split_range(match.group(2).replace(",", "..", 1)) if match is not None else None
    if match is None or span is None or span[2]:
        raise argparse.ArgumentTypeError(f"'{text}' is not NAME=LOW..HIGH (e.g. catgirl_v1=0.4..0.7)")
    return match.group(1), (span[0], span[1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "-n",
        type=int,
        default=BLINDBOX_DEFAULT,
        metavar="N",
        help=f"number of cells (default {BLINDBOX_DEFAULT})",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="plan seed: the random draws (default: random, printed)"
    )
    parser.add_argument(
        "--image-seed",
        type=int,
        default=None,
        metavar="SEED",
        help="image seed shared by all cells (default: --seed)",
    )
    parser.add_argument("--cell-seeds", action="store_true", help="give cell i the image seed SEED+i")
    parser.add_argument(
        "--range",
        dest="ranges",
        action="append",
        type=_range,
        default=[],
        metavar="NAME=LOW..HIGH",
        help="weight range of one LoRA, e.g. catgirl_v1=0.4..0.7 (repeatable)",
    )
    parser.add_argument("--total", type=float, default=None, help="sum the split LoRAs' weights to this")
    parser.add_argument(
        "--budget",
        type=float,
        default=BLINDBOX_BUDGET_DEFAULT,
        help=f"most total |weight| per cell (default {BLINDBOX_BUDGET_DEFAULT:g})",
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=BLINDBOX_SPREAD_DEFAULT,
        help=f"± around each planned weight (default {BLINDBOX_SPREAD_DEFAULT:g})",
    )
    parser.add_argument(
        "--limit",
        type=float,
        default=BLINDBOX_PER_LORA_DEFAULT,
        help=f"most |weight| of one LoRA (default {BLINDBOX_PER_LORA_DEFAULT:g})",
    )
    parser.add_argument(
        "--max-cells",
        type=int,
        default=BLINDBOX_CELLS[1],
        help=f"largest N allowed (default {BLINDBOX_CELLS[1]})",
    )
    parser.add_argument(
        "--vary-prompt", action="store_true", help="expand {a|b} choices in the prompt per cell"
    )
    parser.add_argument(
        "--wildcards", default=None, metavar="DIR", help="folder of __name__ wildcard .txt files"
    )


def run(args: argparse.Namespace) -> int:
    seed = plan_seed(args.seed)
    image_seed = seed if args.image_seed is None else args.image_seed
    context = prepare(args, image_seed=image_seed)
    plan = blind_box(
        context.base,
        n=args.n,
        seed=seed,
        ranges=dict(args.ranges),
        total=args.total,
        budget=args.budget,
        spread=args.spread,
        per_lora_limit=args.limit,
        cell_seeds=args.cell_seeds,
        wildcards_dir=args.wildcards,
        vary_prompt=args.vary_prompt,
        max_cells=args.max_cells,
    )
    return finish(args, context, plan)
