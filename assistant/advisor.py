"""Run the rule registry over a prompt and return :class:`~assistant.types.Advice`.

Pure: reads the library in memory, never touches files or torch. The one entry point is
:func:`advise`; the app, the chat, the CLI and the generate command all call it.

The plan (``Advice.plan``) holds only LoRAs that will be applied — known, loadable, made for the
loaded base model, with a non-zero weight in at least one guidance pass. Every tag left out is
explained in ``Advice.warnings``; nothing is dropped silently.

Hashes: ``PlannedLora.hash`` is left ``""`` on purpose. The A1111 hash is a sha256 over the whole
file (hundreds of MB for some LoRAs); the advisor runs on every keystroke-sized request and must
stay under a millisecond, so whoever renders fills it in just before the engine runs, through
the one hashing path :func:`assistant.library.with_hashes` (the app, the API and the CLI), from
the library's hash cache (on disk, keyed by path, size and mtime).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import PromptError
from .lbw import describe, ratios_of
from .prompt import parse
from .rules import RULES, RuleState
from .rules.config import RulesConfig, default_rules_config
from .rules.symptom_fixes import resolve_symptoms
from .types import BASES, Advice, PlannedLora

if TYPE_CHECKING:
    from .library import Library
    from .prompt import PromptLimits

__all__ = ["advise", "as_written", "run_rules"]


def as_written(
    positive: str, negative: str, *, library: Library, strict: bool = True
) -> tuple[str, tuple[PlannedLora, ...], list[str]]:
    """The prompt's own LoRA tags as the plan, the assistant off: ``(positive, plan, notes)``.

    The one "as written" rule of the app, the API and the CLI: every positive tag must resolve
    (LoraNotFound with did-you-mean) to a loadable file (LibraryError); a tag written with an
    alias is renamed to the file's name in ``positive`` (so a plan that rewrites the weights keeps
    one tag per LoRA); tags in the negative prompt are not applied (A1111 does the same) and a
    note says so, as it does for what the parser noticed (unclosed tags, other extra networks).
    A file the library flagged as unusable raises LibraryError when ``strict``, and is otherwise
    left out with a note naming it and why. Block weights (``lbw=``) go into the plan.
    """
    from .errors import LibraryError

    prompt = parse(positive, negative)
    notes: list[str] = list(prompt.notes)  # unclosed tags, unreadable numbers: said either way
    notes += [f"{extra.raw} is kept in the text but not applied" for extra in prompt.extras]
    planned: list[PlannedLora] = []
    left_out: list[str] = []
    text = positive
    for tag in reversed(prompt.positive_loras):  # right to left: earlier spans stay valid
        info = library.resolve(tag.name)
        if not info.loadable:
            reason = f"LoRA '{info.name}' cannot be used: it is {info.status} ({info.problem})"
            if strict:
                raise LibraryError(reason)
            left_out.insert(0, f"{reason}; it was left out of this render, the rest of the prompt rendered.")
            continue
        lbw = ratios_of(tag.lbw)
        planned.insert(
            0, PlannedLora(name=info.name, path=info.path, weight=tag.weight, unet=tag.unet, lbw=lbw)
        )
        if tag.span is not None and info.name != tag.name:
            start, end = tag.span
            text = text[:start] + text[start:end].replace(tag.name, info.name, 1) + text[end:]
    notes += left_out
    notes += [
        f"<lora:{tag.name}:…> in the negative prompt is not applied when the assistant is off"
        for tag in prompt.negative_loras
    ]
    return text, tuple(planned), notes


def advise(
    positive: str,
    negative: str = "",
    *,
    library: Library,
    config: RulesConfig | None = None,
    symptoms: Sequence[str] = (),
    base: str = "sd15",
    limits: PromptLimits | None = None,
    clip_skip: int = 1,
) -> Advice:
    """Rewrite ``positive``/``negative`` the way an experienced LoRA user would, explaining why.

    ``symptoms`` are what the user complains about, as text ("多耳怪", "black image") or option
    ids ("extra-ears"); ``base`` is the loaded model's base (sd15 | sd2 | sdxl | unknown);
    ``clip_skip`` the clip skip the render will use (A1111's ``CLIP_stop_at_last_layers``).
    Raises :class:`~assistant.errors.PromptError` for a prompt the parser rejects (limits).
    """
    # 1.–4. Check, parse, read the symptoms, run the rules.
    state = run_rules(
        positive,
        negative,
        library=library,
        config=config,
        symptoms=symptoms,
        base=base,
        limits=limits,
        clip_skip=clip_skip,
    )
    # 5. The plan: applied LoRAs only; everything left out is already explained in a warning.
    plan, state = _plan(state)
    return Advice(
        positive=state.positive,
        negative=state.negative,
        changes=state.changes,
        warnings=state.warnings,
        plan=plan,
        original_positive=positive,
        original_negative=negative,
    )


def run_rules(
    positive: str,
    negative: str = "",
    *,
    library: Library,
    config: RulesConfig | None = None,
    symptoms: Sequence[str] = (),
    base: str = "sd15",
    limits: PromptLimits | None = None,
    clip_skip: int = 1,
) -> RuleState:
    """Steps 1–4 of :func:`advise`: the rules' final state (for tests and tools that want it)."""
    # 1. Check inputs.
    if base not in BASES:
        raise PromptError(f"base model {base!r} is not known; use one of {', '.join(BASES)}")
    config = config if config is not None else default_rules_config()
    # 2. Parse; parser remarks and unsupported extra networks become warnings.
    prompt = parse(positive, negative, limits=limits)
    state = RuleState.start(prompt, library=library, config=config, base=base, limits=limits)
    for note in prompt.notes:
        state = state.warn("prompt", note)
    for extra in prompt.extras:
        state = state.warn(
            "prompt",
            f"<{extra.tag_type}:…> tags are kept in the text but not applied (LoRA Mixer applies "
            f"LoRA/LyCORIS tags only): {extra.raw or extra.tag_type}",
            zh=f"<{extra.tag_type}:…> 标签会留在文本里,但不会生效(LoRA Mixer 只加载 LoRA/LyCORIS):"
            f"{extra.raw or extra.tag_type}",
        )
    # 3. Symptoms: the user's words → symptom ids.
    ids, unknown = resolve_symptoms(config, symptoms)
    for text in unknown:
        state = state.warn(
            "symptom-fixes",
            f"Symptom {text!r} is not one I know; known symptoms: "
            + ", ".join(f"{sid} ({s.title.en} / {s.title.zh})" for sid, s in config.symptoms.items()),
            zh=f"我不认识症状 {text!r};认识的有:" + "、".join(s.title.zh for s in config.symptoms.values()),
        )
    state = state.replace(symptoms=tuple(ids), clip_skip=clip_skip)
    # 4. The rules, in registry order.
    for rule in RULES:
        state = rule.apply(state)
    return state


def _plan(state: RuleState) -> tuple[tuple[PlannedLora, ...], RuleState]:
    plan: list[PlannedLora] = []
    planned: set[str] = set()
    for tag in state.positive_loras:
        if not state.applied(tag) or tag.name in planned:
            continue
        info = state.infos[tag.name]
        neg = state.negative_branch.get(tag.name)
        entry = PlannedLora(
            name=info.name,
            path=info.path,
            weight=tag.weight,
            unet=tag.unet,
            negative_weight=None if neg is None else neg.weight,
            negative_unet=None if neg is None else neg.unet,
            lbw=ratios_of(tag.lbw),
        )
        if neg is None and entry.te_weight == 0 and entry.unet_weight == 0:
            state = state.warn(
                "plan",
                f"LoRA '{info.name}' has weight 0, so it is not applied.",
                info.name,
                zh=f"LoRA '{info.name}' 的权重是 0,不会加载。",
            )
            continue
        if entry.lbw is not None:
            explained = describe(entry.lbw, state.base if state.base in ("sd15", "sdxl") else "sd15")
            state = state.warn(
                "lbw",
                f"LoRA '{info.name}' uses block weights lbw={tag.lbw} (sd-webui-lora-block-weight): its "
                f"weight is multiplied per block — {explained}. A block at 0 gets none of this LoRA; "
                "UNet layers outside the blocks (time embedding, output layer) keep the full weight.",
                info.name,
                zh=f"LoRA '{info.name}' 使用分层权重 lbw={tag.lbw}:各层权重乘以 {explained}。",
            )
        plan.append(entry)
        planned.add(tag.name)
    for name, neg in state.negative_branch.items():
        if name in planned:
            continue
        info = state.infos[name]
        plan.append(
            PlannedLora(
                name=info.name, path=info.path, weight=0.0, negative_weight=neg.weight, negative_unet=neg.unet
            )
        )
    return tuple(plan), state
