"""clip-skip: a LoRA trained with clip skip 2 gets the advice to render with clip skip 2, with the reason.

kohya writes the clip skip a LoRA was trained with into its metadata (``ss_clip_skip``). Anime
LoRAs are usually trained with 2, the setting of the NovelAI-derived anime models: rendered with
clip skip 1 the text encoder's last layer reads the prompt differently from what the LoRA learned,
and trigger words weaken. The rule compares each applied LoRA's value with the render's clip skip
and says what to set. A1111's clip skip does not apply to SDXL models, so there is nothing to
advise there.

Bad:  ``<lora:anime_girl:0.7>`` (``ss_clip_skip: 2``) rendered with Clip skip 1
Good: the same with Clip skip 2 (Settings, ``--clip-skip 2``, or API ``CLIP_stop_at_last_layers``)
"""

from __future__ import annotations

from .state import RuleState

ID = "clip-skip"


def _trained(metadata: object) -> int | None:
    value = str(getattr(metadata, "get", lambda _k, _d=None: None)("ss_clip_skip", "") or "").strip()
    return int(value) if value.isdigit() and 1 <= int(value) <= 12 else None


def apply(state: RuleState) -> RuleState:
    if state.base == "sdxl":
        return state
    wanted: dict[int, list[str]] = {}
    for _tag, info in state.applied_positive():
        trained = _trained(info.metadata)
        if trained is not None and trained != state.clip_skip and info.name not in wanted.get(trained, []):
            wanted.setdefault(trained, []).append(info.name)
    for value, names in sorted(wanted.items()):
        listed = ", ".join(f"'{n}'" for n in names)
        state = state.warn(
            ID,
            f"{listed} {'was' if len(names) == 1 else 'were'} trained with clip skip {value} "
            f"(ss_clip_skip) but this render uses clip skip {state.clip_skip}: set Clip skip to {value} "
            f"(Settings, --clip-skip {value}, or the API's CLIP_stop_at_last_layers) so the prompt reaches "
            "the text encoder the way the LoRA learned it; with another value trigger words work weaker.",
            names[0] if len(names) == 1 else None,
            zh=f"{'、'.join(repr(n) for n in names)} 训练时用的是 clip skip {value}(ss_clip_skip),"
            f"这次生成用的是 {state.clip_skip}:请把 Clip skip 设为 {value}"
            f"(设置里、--clip-skip {value},或 API 的 CLIP_stop_at_last_layers),"
            "这样文本编码器读提示词的方式和 LoRA 训练时一致;不一致时触发词常常变弱。",
        )
    return state
