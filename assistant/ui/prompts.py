"""Prompt edits the UI makes: a library-card click, a weight slider, a recipe.

All functions take and return A1111 prompt text; tag positions come from
:func:`assistant.prompt.parse`, so attention syntax and other text are never touched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..types import LoraInfo, LoraTag

#: How many weight sliders the app shows (the first N LoRAs of the positive prompt).
MAX_SLIDERS = 6
DEFAULT_CARD_WEIGHT = 0.8


@dataclass(frozen=True, slots=True)
class SliderSpec:
    """One weight slider: which tag (index among positive LoRA tags), its label and value."""

    index: int
    name: str
    weight: float


def lora_tag_for(info: LoraInfo) -> str:
    """``<lora:name:weight>`` with the LoRA's preferred weight (0.8 when it has none)."""
    weight = info.preferred_weight if info.preferred_weight is not None else DEFAULT_CARD_WEIGHT
    return LoraTag(name=info.name, weight=weight).render()


def insert_lora(positive: str, info: LoraInfo) -> str:
    """What an A1111 card click does: append the tag and the trigger words not yet present.

    A LoRA already tagged in the prompt is not added twice (its missing triggers still are).
    """
    from ..prompt import append_terms, missing_terms, parse

    positive = positive or ""
    present = {tag.name.lower() for tag in parse(positive).positive_loras}
    text = positive
    if info.name.lower() not in present and not any(a.lower() in present for a in info.aliases):
        text = append_terms(text, [lora_tag_for(info)])
    return append_terms(text, missing_terms(text, info.triggers))


def sliders_for(positive: str) -> list[SliderSpec]:
    """One slider per positive-prompt LoRA tag, in text order (at most :data:`MAX_SLIDERS`)."""
    from ..prompt import parse

    try:
        tags = parse(positive or "").positive_loras
    except Exception:  # an unfinished tag while typing: no sliders rather than an error
        return []
    return [SliderSpec(i, tag.name, tag.weight) for i, tag in enumerate(tags[:MAX_SLIDERS])]


def set_lora_weight(positive: str, index: int, weight: float) -> str:
    """The prompt with the ``index``-th positive LoRA tag's weight set to ``weight``.

    The tag keeps its name, type and UNet/dyn arguments; out-of-range ``index`` returns the
    text unchanged (the prompt was edited meanwhile).
    """
    from ..prompt import parse

    tags = parse(positive or "").positive_loras
    if not 0 <= index < len(tags) or tags[index].span is None:
        return positive
    tag = tags[index]
    start, end = tag.span  # type: ignore[misc]
    new_tag = dataclasses.replace(tag, weight=round(float(weight), 4)).render()
    return positive[:start] + new_tag + positive[end:]


# -- recipes: one applied at a time ------------------------------------------------------------------

#: The settings a recipe may set, in the order the note names them.
RECIPE_SETTINGS = ("sampler", "steps", "cfg", "width", "height", "seed")


@dataclass(frozen=True, slots=True)
class AppliedRecipe:
    """What the recipe menu added, so that picking another recipe (or none) takes it back.

    ``loras``: LoRA names it tagged; ``terms``/``negative_terms``: prompt terms it added (terms
    the prompt already had are not counted, so the user's own words are never taken away);
    ``saved``: the settings it changed, with the values they had before the first recipe, and
    ``set_to``: what it set them to (a setting changed since by hand is left alone).
    """

    name: str = ""
    loras: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    negative_terms: tuple[str, ...] = ()
    saved: tuple[tuple[str, object], ...] = ()
    set_to: tuple[tuple[str, object], ...] = ()


def _terms(text: str) -> list[str]:
    return [piece.strip() for piece in (text or "").split(",") if piece.strip()]


def _without_terms(text: str, terms: tuple[str, ...]) -> str:
    drop = {t.casefold() for t in terms}
    return ", ".join(p for p in _terms(text) if p.casefold() not in drop)


def _without_loras(text: str, names: tuple[str, ...]) -> str:
    from ..prompt import parse, remove_tag

    wanted = {n.casefold() for n in names}
    try:
        tags = parse(text or "").positive_loras
    except Exception:  # an unfinished tag the user is typing: leave the text alone
        return text
    for tag in sorted((t for t in tags if t.name.casefold() in wanted), key=lambda t: -(t.span or (0, 0))[0]):
        text = remove_tag(text, tag)
    return text


def apply_recipe(
    positive: str,
    negative: str,
    settings: dict[str, object],
    previous: AppliedRecipe | None,
    recipe: object | None,
) -> tuple[str, str, dict[str, object], AppliedRecipe, list[str], list[str]]:
    """Take the previous recipe back and apply ``recipe`` (None: no recipe).

    Returns the prompts, the settings to set (name → value), what is now applied, the settings
    the recipe set (``"steps 28"``) and the ones put back (``"seed -1"``), for the note.
    """
    previous = previous or AppliedRecipe()
    # 1. take the previous recipe's additions back
    positive = _without_terms(_without_loras(positive or "", previous.loras), previous.terms)
    negative = _without_terms(negative or "", previous.negative_terms)
    current = dict(settings)
    set_before = dict(previous.set_to)
    saved = dict(previous.saved)
    updates: dict[str, object] = {}
    wanted: dict[str, object] = {}
    if recipe is not None:
        chosen = recipe.settings  # type: ignore[attr-defined]
        wanted = {k: getattr(chosen, k) for k in RECIPE_SETTINGS if getattr(chosen, k) is not None}
    restored: list[str] = []
    for key, before in list(saved.items()):
        if key in wanted:
            continue
        if current.get(key) == set_before.get(key):  # not changed by hand since: put it back
            updates[key] = before
            restored.append(f"{key} {before}")
        saved.pop(key)
    if recipe is None:
        return positive, negative, updates, AppliedRecipe(), [], restored
    # 2. the new recipe's LoRA tags and terms, missing ones only
    from ..prompt import append_terms, missing_terms, parse

    added_terms = missing_terms(positive, _terms(recipe.prompt))  # type: ignore[attr-defined]
    have = {t.name.casefold() for t in parse(positive).positive_loras} if positive.strip() else set()
    new_loras = [lora for lora in recipe.loras if lora.name.casefold() not in have]  # type: ignore[attr-defined]
    added_loras = tuple(lora.name for lora in new_loras)
    tags = [LoraTag(name=lora.name, weight=lora.weight).render() for lora in new_loras]
    new_positive = append_terms(positive, [*added_terms, *tags])
    added_negative = missing_terms(negative, _terms(recipe.negative))  # type: ignore[attr-defined]
    new_negative = append_terms(negative, added_negative)
    # 3. its settings, remembering what they were before any recipe
    set_now: list[str] = []
    for key, value in wanted.items():
        if key not in saved:
            saved[key] = current.get(key)
        updates[key] = value
        set_now.append(f"{key} {value}")
    applied = AppliedRecipe(
        name=recipe.name,  # type: ignore[attr-defined]
        loras=added_loras,
        terms=added_terms,
        negative_terms=added_negative,
        saved=tuple(saved.items()),
        set_to=tuple(wanted.items()),
    )
    return new_positive, new_negative, updates, applied, set_now, restored
