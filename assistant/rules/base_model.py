"""base-model: a LoRA made for another base model is left out of generation, with the reason.

SD1.5, SD2 and SDXL LoRAs patch layers of different widths; loaded on the wrong base they either
fail to load or warp the image ("画风突变毕加索": an SD1.5 LoRA on an SDXL checkpoint is like
diesel in a petrol car). The rule compares each LoRA's base (from its metadata, sidecar, catalog
or tensor widths — ``LoraInfo.base_source`` says which) with the loaded model, warns, and keeps
the LoRA out of the plan. The tag stays in the prompt so switching the base model brings it back.
A LoRA whose base is unknown is applied (the engine reports a failed load).

Bad:  ``1girl, <lora:watercolor_xl:0.6>`` on an SD1.5 model (LoRA base: sdxl)
Good: ``1girl, <lora:watercolor_xl:0.6>`` on an SDXL model, or an SD1.5 watercolor LoRA
"""

from __future__ import annotations

from .state import RuleState

ID = "base-model"

_LABEL = {"sd15": "SD1.5", "sd2": "SD2", "sdxl": "SDXL", "unknown": "unknown"}


def _zh_source(decided_by: str) -> str:
    return f"(依据:{decided_by})" if decided_by not in ("", "unknown") else ""


def apply(state: RuleState) -> RuleState:
    if state.base == "unknown":
        return state  # nothing to compare with
    excluded = dict(state.excluded)
    for tag in state.loras:
        info = state.info(tag)
        if info is None or info.name in excluded or info.base in ("unknown", state.base):
            continue
        label, model = _LABEL.get(info.base, info.base), _LABEL.get(state.base, state.base)
        excluded[info.name] = f"made for {label}, the loaded model is {model}"
        # the decision, not its whole trail ("catalog (agrees with metadata …)" → "catalog")
        decided_by = info.base_source.split(" (")[0].strip()
        source = f" (from {decided_by})" if decided_by not in ("", "unknown") else ""
        state = state.warn(
            ID,
            f"LoRA '{info.name}' is made for {label}{source} but the loaded model is {model}: it is left "
            f"out of generation (a LoRA on the wrong base distorts the style or fails to load). Load an "
            f"{label} model to use it.",
            info.name,
            zh=f"LoRA '{info.name}' 是为 {label} 训练的{_zh_source(decided_by)},"
            f"但当前加载的是 {model}:这次不参与生成"
            f"(底模不对的 LoRA 会让画风突变,或者根本加载不上)。要用它请换成 {label} 模型。",
        )
    return state.replace(excluded=excluded)
