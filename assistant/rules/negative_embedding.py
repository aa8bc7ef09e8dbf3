"""negative-embedding: a negative embedding in the positive prompt is pointed out.

Negative embeddings (``EasyNegative``, ``badhandv4``, ``ng_deepnegative_v1_75t`` …) are trained on
what images should NOT look like; they belong in the negative prompt. In the positive prompt they
pull the image toward exactly those flaws — a common copy-paste slip. The rule names them
(``negative_embeddings`` in presets/rules.yaml, and any embedding whose name says "negative") and
says to move them; it does not move them itself, since a few users do this on purpose.

Bad:  positive ``1girl, EasyNegative, cat ears``
Good: positive ``1girl, cat ears``, negative ``EasyNegative``
"""

from __future__ import annotations

import re

from ..embeddings import mentioned
from .state import RuleState

ID = "negative-embedding"


def _is_negative(name: str, known: frozenset[str]) -> bool:
    folded = name.casefold()
    return folded in known or "negative" in folded or bool(re.search(r"(^|[_\-\s])neg($|[_\-\s\d])", folded))


def apply(state: RuleState) -> RuleState:
    from ..prompt import encoder_text

    known = frozenset(n.casefold() for n in state.config.negative_embeddings)
    embeddings = getattr(state.library, "embeddings", ())
    text = encoder_text(state.positive)
    names = [info.name for info in mentioned(text, embeddings)]
    # well-known names are recognised even where the file is not in this library
    for name in state.config.negative_embeddings:
        if name.casefold() not in {n.casefold() for n in names} and re.search(
            rf"(?<![\w]){re.escape(name.casefold())}(?![\w])", text.casefold()
        ):
            names.append(name)
    for name in dict.fromkeys(n for n in names if _is_negative(n, known)):
        state = state.warn(
            ID,
            f"'{name}' is a negative embedding: it is trained on what images should not look like, so in the "
            f"positive prompt it pulls the image toward those flaws. Move it to the negative prompt.",
            zh=f"'{name}' 是负面嵌入(negative embedding):它学的是“图不该长什么样”,"
            "放在正面提示词里会把画面往这些毛病上拉。请把它移到负面提示词里。",
        )
    return state
