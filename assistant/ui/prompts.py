"""Prompt edits the UI makes: a library-card click, a weight slider, a recipe.

All functions take and return A1111 prompt text; tag positions come from
:func:`assistant.prompt.parse`, so attention syntax and other text are never touched.
"""

from __future__ import annotations

import dataclasses
import re
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


def _append(text: str, addition: str) -> str:
    text = text.rstrip()
    if not text:
        return addition
    separator = " " if text.endswith(",") else ", "
    return f"{text}{separator}{addition}"


def _mentions(text: str, phrase: str) -> bool:
    """``phrase`` appears in ``text`` as whole words, case-insensitively."""
    pattern = r"(?<![\w])" + re.escape(phrase.strip()) + r"(?![\w])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def lora_tag_for(info: LoraInfo) -> str:
    """``<lora:name:weight>`` with the LoRA's preferred weight (0.8 when it has none)."""
    weight = info.preferred_weight if info.preferred_weight is not None else DEFAULT_CARD_WEIGHT
    return LoraTag(name=info.name, weight=weight).render()


def insert_lora(positive: str, info: LoraInfo) -> str:
    """What an A1111 card click does: append the tag and the trigger words not yet present.

    A LoRA already tagged in the prompt is not added twice (its missing triggers still are).
    """
    from ..prompt import parse

    positive = positive or ""
    present = {tag.name.lower() for tag in parse(positive).positive_loras}
    text = positive
    if info.name.lower() not in present and not any(a.lower() in present for a in info.aliases):
        text = _append(text, lora_tag_for(info))
    for trigger in info.triggers:
        if trigger.strip() and not _mentions(text, trigger):
            text = _append(text, trigger.strip())
    return text


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


def recipe_prompt(positive: str, recipe_tags: str, recipe_prompt_text: str) -> str:
    """The recipe's LoRA tags and prompt terms appended to ``positive`` (duplicates skipped)."""
    text = positive or ""
    for part in (recipe_prompt_text, recipe_tags):
        for piece in (p.strip() for p in (part or "").split(",")):
            if piece and piece.lower() not in text.lower():
                text = _append(text, piece)
    return text


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
    tags = recipe.tags()  # type: ignore[attr-defined]
    terms = _terms(recipe.prompt)  # type: ignore[attr-defined]
    negative_terms = _terms(recipe.negative)  # type: ignore[attr-defined]
    present = {p.casefold() for p in _terms(positive)}
    added_terms = tuple(t for t in terms if t.casefold() not in present)
    from ..prompt import parse

    have = {t.name.casefold() for t in parse(positive).positive_loras} if positive.strip() else set()
    added_loras = tuple(n for n in recipe.lora_names() if n.casefold() not in have)  # type: ignore[attr-defined]
    new_positive = positive
    for piece in [*added_terms, *(t.strip() for t in tags.split(",") if t.strip())]:
        name = piece[6:].split(":", 1)[0] if piece.startswith("<lora:") else None
        if name is not None and name not in added_loras:
            continue
        new_positive = _append(new_positive, piece)
    present_negative = {p.casefold() for p in _terms(negative)}
    added_negative = tuple(t for t in negative_terms if t.casefold() not in present_negative)
    new_negative = negative
    for piece in added_negative:
        new_negative = _append(new_negative, piece)
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
