"""A1111 sampler names -> diffusers schedulers built from the loaded pipeline's scheduler config.

A1111 (v1.9+) names a sampler ("DPM++ 2M") and a schedule type ("Karras"); older versions and
most shared prompts use the combined form ("DPM++ 2M Karras"). Both are accepted. The mapping
follows diffusers' "A1111 / k-diffusion equivalents" table in its scheduler docs:

==================  ==========================================================
A1111               diffusers
==================  ==========================================================
Euler a             EulerAncestralDiscreteScheduler
Euler               EulerDiscreteScheduler
LMS                 LMSDiscreteScheduler
Heun                HeunDiscreteScheduler
DPM2 / DPM2 a       KDPM2DiscreteScheduler / KDPM2AncestralDiscreteScheduler
DPM++ 2M            DPMSolverMultistepScheduler
DPM++ 2M SDE        DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++")
DPM++ SDE           DPMSolverSDEScheduler (needs torchsde)
DPM++ 2S a          DPMSolverSinglestepScheduler
DDIM / PLMS         DDIMScheduler / PNDMScheduler
UniPC               UniPCMultistepScheduler
==================  ==========================================================

Schedule types: "Automatic" (what A1111 v1.9+ runs for the sampler: Karras for DPM++ 2M, DPM++ SDE,
DPM++ 2S a, DPM2 and DPM2 a, Exponential for DPM++ 2M SDE, the scheduler's own sigmas for the
rest — so "DPM++ 2M" and "DPM++ 2M Karras" are the same image, as in A1111), "Karras" (``use_karras_sigmas``),
"Exponential" (``use_exponential_sigmas``), only for schedulers that support them. Which ones do
is written in the table below (a test checks it against diffusers' signatures), so validating a
name needs neither diffusers nor torch — the CLI's ``--dry-run`` checks names without loading them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import GenerationError


@dataclass(frozen=True, slots=True)
class SamplerSpec:
    """One A1111 sampler: the diffusers class name, the config overrides it needs and the
    schedule types (besides "Automatic") its class supports."""

    cls: str
    overrides: tuple[tuple[str, Any], ...] = ()
    schedules: tuple[str, ...] = ("Karras", "Exponential")
    #: What A1111 (v1.9+) runs for schedule type "Automatic" with this sampler.
    default_schedule: str = "Automatic"


SAMPLERS: Mapping[str, SamplerSpec] = {
    "Euler a": SamplerSpec("EulerAncestralDiscreteScheduler", schedules=()),
    "Euler": SamplerSpec("EulerDiscreteScheduler"),
    "LMS": SamplerSpec("LMSDiscreteScheduler"),
    "Heun": SamplerSpec("HeunDiscreteScheduler"),
    "DPM2": SamplerSpec("KDPM2DiscreteScheduler", default_schedule="Karras"),
    "DPM2 a": SamplerSpec("KDPM2AncestralDiscreteScheduler", default_schedule="Karras"),
    "DPM++ 2M": SamplerSpec(
        "DPMSolverMultistepScheduler",
        (("algorithm_type", "dpmsolver++"), ("solver_order", 2)),
        default_schedule="Karras",
    ),
    "DPM++ 2M SDE": SamplerSpec(
        "DPMSolverMultistepScheduler",
        (("algorithm_type", "sde-dpmsolver++"), ("solver_order", 2)),
        default_schedule="Exponential",
    ),
    "DPM++ SDE": SamplerSpec("DPMSolverSDEScheduler", default_schedule="Karras"),
    "DPM++ 2S a": SamplerSpec(
        "DPMSolverSinglestepScheduler", (("solver_order", 2),), default_schedule="Karras"
    ),
    "DDIM": SamplerSpec("DDIMScheduler", schedules=()),
    "PLMS": SamplerSpec("PNDMScheduler", (("skip_prk_steps", True),), schedules=()),
    "UniPC": SamplerSpec("UniPCMultistepScheduler"),
}

#: A1111 schedule type -> the scheduler config flag that selects it (None: the default).
SCHEDULE_TYPES: Mapping[str, str | None] = {
    "Automatic": None,
    "Karras": "use_karras_sigmas",
    "Exponential": "use_exponential_sigmas",
}


@functools.cache
def _accepts(cls: type, option: str) -> bool:
    return option in inspect.signature(cls.__init__).parameters


@functools.cache
def _scheduler_class(name: str) -> type:
    import diffusers

    return getattr(diffusers, name)


def sampler_names() -> list[str]:
    """Every accepted combined name, e.g. "Euler a", "DPM++ 2M", "DPM++ 2M Karras" (A1111 order)."""
    return list(_sampler_names())


@functools.cache
def _sampler_names() -> tuple[str, ...]:
    names: list[str] = []
    for sampler, spec in SAMPLERS.items():
        names.append(sampler)
        names += [f"{sampler} {t}" for t in SCHEDULE_TYPES if t in spec.schedules]
    return tuple(names)


def split_name(sampler: str, schedule_type: str | None = None) -> tuple[str, str]:
    """("DPM++ 2M Karras", None) -> ("DPM++ 2M", "Karras"); validates both parts.

    A suffix in the name wins over ``schedule_type`` (A1111's rule). Names are matched
    case-insensitively. Raises :class:`GenerationError` listing the valid names.
    """
    text = " ".join(sampler.split())
    by_lower = {s.lower(): s for s in SAMPLERS}
    schedules = {t.lower(): t for t in SCHEDULE_TYPES}
    base, schedule = by_lower.get(text.lower()), None
    if base is None:
        head, _, tail = text.rpartition(" ")
        if head.lower() in by_lower and tail.lower() in schedules:
            base, schedule = by_lower[head.lower()], schedules[tail.lower()]
    if base is None:
        raise GenerationError(f"Unknown sampler '{sampler}'. Valid samplers: {', '.join(sampler_names())}.")
    if schedule is None and schedule_type and schedule_type.strip():
        schedule = schedules.get(schedule_type.strip().lower())
        if schedule is None:
            raise GenerationError(
                f"Unknown schedule type '{schedule_type}'. Valid schedule types: {', '.join(SCHEDULE_TYPES)}."
            )
    if schedule in (None, "Automatic"):  # A1111 v1.9+: the sampler's own default schedule
        schedule = SAMPLERS[base].default_schedule
    flag = SCHEDULE_TYPES[schedule]
    if flag and schedule not in SAMPLERS[base].schedules:
        supported = [s for s, spec in SAMPLERS.items() if schedule in spec.schedules]
        raise GenerationError(
            f"Sampler '{base}' has no '{schedule}' schedule; samplers with it: {', '.join(supported)}."
        )
    return base, schedule


def make_scheduler(base_config: Mapping[str, Any], sampler: str, schedule_type: str | None, seed: int) -> Any:
    """A fresh scheduler for one generation (schedulers hold per-run state, so never share one).

    ``base_config`` is the pipeline's own ``scheduler.config`` (beta schedule, prediction type,
    timestep spacing of the model). ``seed`` seeds the Brownian tree of "DPM++ SDE" so that a
    seed reproduces the image (diffusers draws a random one otherwise).
    """
    base, schedule = split_name(sampler, schedule_type)
    spec = SAMPLERS[base]
    cls = _scheduler_class(spec.cls)
    overrides: dict[str, Any] = dict(spec.overrides)
    flag = SCHEDULE_TYPES[schedule]
    for option in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"):
        if _accepts(cls, option):
            overrides[option] = option == flag
    if _accepts(cls, "noise_sampler_seed"):
        overrides["noise_sampler_seed"] = seed
    config = {k: v for k, v in dict(base_config).items() if not k.startswith("_")}
    return cls.from_config({**config, **overrides})
