"""resolve-names: every ``<lora:…>`` tag names a real file, spelled the way the library spells it.

Names are matched exact → case-insensitive → alias (``ss_output_name``, catalog aliases); a match
that is not exact is rewritten to the real name so the prompt is portable (A1111 on Linux is
case-sensitive: "LoRA not found" is the most common reason a LoRA "has no effect"). An unknown
name stays in the prompt, untouched, and is reported with did-you-mean suggestions; it is never
silently dropped. A file the library refused (pickle) or found broken is reported and left out.

Bad:  ``1girl, <lora:Catgirl_V1:0.8>``   (and ``<lora:catgrl_v1:0.8>``, a typo)
Good: ``1girl, <lora:catgirl_v1:0.8>``   (the typo is kept, with "did you mean 'catgirl_v1'?")
"""

from __future__ import annotations

import dataclasses

from ..errors import AmbiguousLoraName, LoraNotFound
from ..types import Change, LoraInfo
from .state import RuleState, show

ID = "resolve-names"


def apply(state: RuleState) -> RuleState:
    infos: dict[str, LoraInfo] = dict(state.infos)
    excluded = dict(state.excluded)
    written: dict[str, LoraInfo | None] = {}
    # 1. Resolve each distinct written name once (the library is the slow part).
    for tag in state.loras:
        if tag.name in infos or tag.name in written:
            continue
        written[tag.name] = None
        try:
            info = state.library.resolve(tag.name)
        except LoraNotFound as exc:
            hint = f" Did you mean {_quote(exc.suggestions)}?" if exc.suggestions else ""
            hint_zh = f"你是不是想写 {_quote(exc.suggestions)}?" if exc.suggestions else ""
            state = state.warn(
                ID,
                f"LoRA '{tag.name}' is not in the library, so it will not be applied; the tag stays in "
                f"the prompt.{hint}",
                tag.name,
                zh=f"LoRA 库里没有 '{tag.name}',这次不会加载;标签留在提示词里。{hint_zh}",
            )
            continue
        except AmbiguousLoraName as exc:
            state = state.warn(
                ID,
                f"LoRA name '{tag.name}' matches {_quote(exc.candidates)}; it will not be applied until "
                "you write the file name of the one you mean.",
                tag.name,
                zh=f"LoRA 名字 '{tag.name}' 同时匹配 {_quote(exc.candidates)};"
                "请写出你要的那个文件名,否则不会加载。",
            )
            continue
        written[tag.name] = infos[info.name] = info
        if not info.loadable and info.name not in excluded:
            excluded[info.name] = f"the file cannot be used: {info.problem or info.status}"
            state = state.warn(
                ID,
                f"LoRA '{info.name}' is {info.status} ({info.problem or 'no reason given'}); it will not "
                "be applied.",
                info.name,
                zh=f"LoRA '{info.name}' 不能用:{info.status}"
                f"({info.problem or '没有给出原因'}),这次不会加载。",
            )
    state = state.replace(infos=infos, excluded=excluded)
    # 2. Rewrite near-miss spellings to the real name, one tag at a time (spans change).
    while True:
        for tag in state.loras:
            info = infos.get(tag.name) or written.get(tag.name)
            if info is not None and tag.name != info.name:
                new_tag = dataclasses.replace(tag, name=info.name)
                if tag.name.casefold().endswith(".safetensors"):
                    how = "the file name with its extension (A1111 wants it without) of"
                elif tag.name.casefold() != info.name.casefold():
                    how = "an alias of"
                else:
                    how = "the same name in other letter case as"
                reason = (
                    f"'{tag.name}' is {how} the LoRA file '{info.name}'; written exactly as the file "
                    "is named so every tool finds it (A1111 on Linux says 'LoRA not found' otherwise)."
                )
                if tag.name.casefold().endswith(".safetensors"):
                    how_zh = "带扩展名的文件名(A1111 要求不带扩展名)"
                elif tag.name.casefold() != info.name.casefold():
                    how_zh = "别名"
                else:
                    how_zh = "大小写不同的写法"
                reason_zh = (
                    f"'{tag.name}' 是 LoRA 文件 '{info.name}' 的{how_zh};改成和文件名完全一致,"
                    "各个工具才都能找到(否则 Linux 上的 A1111 会报 LoRA not found)。"
                )
                state = state.replace_tags(
                    Change(ID, tag.raw or show(tag), show(new_tag), reason, reason_zh), [(tag, new_tag)]
                )
                break
        else:
            return state


def _quote(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
