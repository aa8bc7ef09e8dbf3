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
