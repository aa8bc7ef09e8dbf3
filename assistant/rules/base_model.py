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

from ..library import BASE_LABELS, base_mismatch
from .state import RuleState

ID = "base-model"


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
        label, model = BASE_LABELS.get(info.base, info.base), BASE_LABELS.get(state.base, state.base)
        excluded[info.name] = f"made for {label}, the loaded model is {model}"
        # the decision, not its whole trail ("catalog (agrees with metadata …)" → "catalog")
        decided_by = info.base_source.split(" (")[0].strip()
        # the same sentence the engine gives when the assistant is off (library.base_mismatch)
        mismatch = base_mismatch(info.base, info.base_source, state.base)
        state = state.warn(
            ID,
            f"LoRA '{info.name}' is {mismatch}: it is left out of generation (a LoRA on the wrong "
            f"base distorts the style or fails to load). Load an {label} model to use it.",
            info.name,
            zh=f"LoRA '{info.name}' 是为 {label} 训练的{_zh_source(decided_by)},"
            f"但当前加载的是 {model}:这次不参与生成"
            f"(底模不对的 LoRA 会让画风突变,或者根本加载不上)。要用它请换成 {label} 模型。",
        )
    return state.replace(excluded=excluded)
