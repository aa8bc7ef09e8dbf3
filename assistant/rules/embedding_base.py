"""embedding-base: a textual-inversion embedding made for another base model is not applied, with the reason.

An embedding is a few vectors of the text encoder's width: 768 for SD1.x, 1024 for SD2.x, 768 +
1280 (``clip_l`` + ``clip_g``) for SDXL. On a model of another width A1111 skips it (it lists it
as "skipped") and the name is read as ordinary words, which is rarely what the user meant:
``EasyNegative`` in an SDXL negative prompt does nothing. The rule names each such embedding the
prompts mention, what it is made for and what is loaded. The text is left as written.

Bad:  negative ``EasyNegative, lowres`` on an SDXL model (EasyNegative: SD1.5, 768-wide)
Good: the SD1.5 embedding on an SD1.5 model, or an SDXL negative embedding (``negativeXL_D``)
"""

from __future__ import annotations

from ..embeddings import BASE_WIDTHS, mentioned
from .state import RuleState

ID = "embedding-base"

_LABEL = {"sd15": "SD1.5", "sd2": "SD2", "sdxl": "SDXL", "unknown": "an unknown base"}


def apply(state: RuleState) -> RuleState:
    embeddings = getattr(state.library, "embeddings", ())
    if state.base not in BASE_WIDTHS or not embeddings:
        return state
    from ..prompt import encoder_text

    seen: set[str] = set()
    model = _LABEL[state.base]
    for text in (encoder_text(state.positive), encoder_text(state.negative)):
        for info in mentioned(text, embeddings):
            if info.name in seen or not info.loadable or info.width == BASE_WIDTHS[state.base]:
                continue
            seen.add(info.name)
            made = _LABEL.get(info.base, "an unknown base")
            state = state.warn(
                ID,
                f"Embedding '{info.name}' is made for {made} ({info.width}-wide vectors) but the loaded "
                f"model is {model}: it is not applied, and its name is read as plain words (A1111 skips it "
                f"too). Use an embedding made for {model}, or remove it.",
                zh=f"嵌入(embedding)'{info.name}' 是为 {made} 训练的(向量宽度 {info.width}),"
                f"但当前加载的是 {model}:它不会生效,名字只会被当成普通文字(A1111 也会跳过它)。"
                f"请换成 {model} 用的嵌入,或者删掉它。",
            )
    return state
