"""What LoRA Mixer says, in English and Chinese: the one place replies are worded and formatted.

The chat (:mod:`assistant.chat`) and the buttons (:meth:`assistant.service.Service.action_turn`)
format advice with :func:`format_advice`, plans with :func:`describe_plan` and finished renders
with :func:`render_summary`; short phrases come from :data:`TEXT` through :func:`say`, the help
from :data:`HELP`. Pure Python (no gradio, no torch).

Kept elsewhere on purpose: a rule's reasons (``Change.reason``/``reason_zh``, written by the rule
that made the change) and the symptom table's texts (``presets/rules.yaml``, both languages).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .types import Advice, format_weight

if TYPE_CHECKING:
    from .blend import Plan
    from .service import PlanRendered, Rendered, RenderSettings

__all__ = [
    "AS_WRITTEN",
    "HELP",
    "IMAGE_UNUSED",
    "TEXT",
    "Language",
    "describe_plan",
    "format_advice",
    "img2img_line",
    "render_summary",
    "say",
]

Language = Literal["en", "zh"]

TEXT: dict[str, dict[Language, str]] = {
    "rewritten": {"en": "Rewritten prompt", "zh": "改写后的提示词"},
    "suggested": {
        "en": "Suggested prompt (not applied — assistant edits are off)",
        "zh": "建议的提示词(未应用)",
    },
    "negative": {"en": "Negative prompt", "zh": "负面提示词"},
    "changes": {"en": "What changed and why", "zh": "改了什么、为什么"},
    "warnings": {"en": "Warnings", "zh": "警告"},
    "plan": {"en": "LoRAs to apply", "zh": "将加载的 LoRA"},
    "no_changes": {
        "en": "Your prompt already follows the rules — nothing to change.",
        "zh": "提示词已经没问题,无需修改。",
    },
    "no_changes_but": {
        "en": "Nothing to rewrite — but read the warnings: part of this prompt will not work as written.",
        "zh": "没有可以自动改写的地方——但请看下面的警告:这条提示词有一部分不会按写的那样生效。",
    },
    "negative_carried": {
        "en": "Negative prompt (carried from the previous turn)",
        "zh": "负面提示词(沿用上一轮的)",
    },
    "negative_box": {
        "en": "Negative prompt (from the Negative prompt box)",
        "zh": "负面提示词(来自负面提示词框)",
    },
    "no_loras": {"en": "none", "zh": "无"},
    "neg_pass": {"en": "negative pass", "zh": "负向分支"},
    "cause": {"en": "Cause", "zh": "原因"},
    "fix": {"en": "Fix", "zh": "解决"},
    "for_prompt": {"en": "Applied to your current prompt", "zh": "针对你当前的提示词"},
    "no_prompt": {
        "en": "Paste your prompt (or fill the prompt box) and I will apply the fix to it.",
        "zh": "把提示词发给我(或填进提示词框),我会直接帮你改。",
    },
    # -- errors and short answers of the chat (fields in {braces}) ---------------------------------
    "too_long": {
        "en": "That message is {length:,} characters long; the limit is {limit:,} characters ({what}). "
        "Please shorten it.",
        "zh": "这条消息有 {length:,} 个字符,太长了(上限 {limit:,},即{what_zh}的长度)。请缩短后再发。",
    },
    "ab_usage": {"en": "usage: /ab NAME_A NAME_B", "zh": "用法:/ab 名字A 名字B"},
    "strength_range": {
        "en": "the denoising strength must lie between {low:g} and {high:g} (got {given}); "
        "usage: /img2img 0.4 [prompt]",
        "zh": "重绘幅度必须在 {low:g} 到 {high:g} 之间(现在是 {given});用法:/img2img 0.4 [提示词]",
    },
    "blindbox_not_int": {
        "en": "'{given}' is not a whole number; usage: /blindbox N ({low} to {high})",
        "zh": "'{given}' 不是整数;用法:/blindbox N({low} 到 {high})",
    },
    "blindbox_range": {
        "en": "/blindbox takes {low} to {high} images, not {n}",
        "zh": "/blindbox 只能出 {low} 到 {high} 张图,不能是 {n}",
    },
    "sweep_usage": {
        "en": "usage: /sweep NAME 0.2..1.0x5 (from..to, x number of steps)",
        "zh": "用法:/sweep 名字 0.2..1.0x5(起..止,x 步数)",
    },
    "sweep_not_range": {
        "en": "'{given}' is not a range; usage: /sweep NAME 0.2..1.0x5 (from..to, x number of steps)",
        "zh": "'{given}' 不是范围;用法:/sweep 名字 0.2..1.0x5(起..止,x 步数)",
    },
    "sweep_count": {
        "en": "a sweep takes {low} to {high} steps, not {count}",
        "zh": "扫描只能取 {low} 到 {high} 步,不能是 {count}",
    },
    "sweep_weights": {
        "en": "sweep weights must lie between {low:g} and {high:g} (got {start:g}..{stop:g})",
        "zh": "扫描的权重必须在 {low:g} 到 {high:g} 之间(现在是 {start:g}..{stop:g})",
    },
    "failed": {"en": "That did not work: {error}", "zh": "出错了: {error}"},
    "internal_error": {
        "en": "Sorry, something went wrong on my side while answering that (it is logged). Try `/help`.",
        "zh": "抱歉,处理这条消息时出了内部错误(已记录)。试试 `/help`。",
    },
    "unknown_command": {"en": "I don't know the command `{command}`.", "zh": "我不认识命令 `{command}`。"},
    "not_understood": {"en": "I'm not sure what you mean.", "zh": "我没看懂这条消息。"},
    "library_empty": {"en": "The LoRA library is empty.", "zh": "LoRA 库是空的。"},
    "no_match": {"en": "No LoRA matches '{query}'.", "zh": "没有匹配 '{query}' 的 LoRA。"},
    "library_head": {
        "en": "| name | kind | base | triggers | weight | status |",
        "zh": "| 名称 | 类型 | 基础模型 | 触发词 | 推荐权重 | 状态 |",
    },
    "more": {"en": "\n… {more} more", "zh": "\n…… 还有 {more} 个"},
    "no_recipe": {"en": "No recipe named '{name}'.", "zh": "没有叫 '{name}' 的配方。"},
    "recipe_usage": {"en": "Usage: `/recipe NAME`.", "zh": "用法:`/recipe 名字`。"},
    "recipes": {"en": "Recipes", "zh": "可用配方"},
    "cannot_read": {"en": "Cannot read that: {error}", "zh": "用法错误: {error}"},
    "cannot_read_command": {"en": "Cannot read that: {error}", "zh": "用法错误:{error}"},
    "strength_set": {
        "en": "Denoising strength set to {shown}. Attach an image (📎) with a prompt, or put one in the "
        "**Init image** slot, and I render over it (img2img).",
        "zh": "重绘幅度设为 {shown}。发一张图片(📎)并附上提示词,或把图片放进“初始图片”栏,就会在它上面重绘。",
    },
    "img2img_no_prompt": {
        "en": "No prompt: the image is redrawn as it is (A1111 allows img2img without one).",
        "zh": "没有提示词:按原样在图片上重绘(A1111 也允许)。",
    },
    "blindbox_needs_lora": {
        "en": "A blind box mixes the LoRAs of your prompt: put at least one `<lora:…>` in the prompt "
        "box first, e.g. `{example}`.",
        "zh": "盲盒需要提示词里至少有一个 `<lora:…>`,例如 `{example}`。",
    },
    "blindbox_plan": {
        "en": "Blind box: {images}, {each} of your prompt's LoRA weights (seeded, so every cell can be "
        "reproduced).",
        "zh": "盲盒:{n} 张图,每张随机混合提示词里 LoRA 的权重(带种子,可复现)。",
    },
    "a_sweep": {"en": "A sweep", "zh": "权重扫描"},
    "plan_needs_prompt": {
        "en": "{what} needs a prompt to render: put one in the prompt box (or send it to me first), "
        "then send the command again — e.g. `{example}`.",
        "zh": "{what}需要一条提示词来出图:先把提示词填进提示词框(或直接发给我),"
        "再发这个命令。例如 `{example}`。",
    },
    "ab_plan": {
        "en": "A/B: the same prompt and seed rendered with `{a}` and with `{b}`.",
        "zh": "A/B 对比:同一种子下分别用 `{a}` 和 `{b}` 出图。",
    },
    "sweep_plan": {
        "en": "Sweep: `{name}` at {weights}, same seed for every cell.",
        "zh": "权重扫描:`{name}` 在固定种子下依次用 {weights}。",
    },
    "no_reason": {"en": "no reason given", "zh": "没有给出原因"},
    "lora_unusable": {
        "en": "LoRA '{name}' cannot be used: it is {status} ({problem}).",
        "zh": "LoRA '{name}' 不能用:{status}({problem})。",
    },
    "lora_wrong_base": {
        "en": "LoRA '{name}' is made for {lora_base} but the loaded model is {base}; load a {lora_base} "
        "model to use it.",
        "zh": "LoRA '{name}' 是为 {lora_base} 训练的,当前加载的是 {base};要用它请换成 {lora_base} 模型。",
    },
    "ambiguous": {
        "en": "The name '{name}' matches {names}; write the file name of the one you mean.",
        "zh": "名字 '{name}' 同时匹配 {names};请写出你要的那个文件名。",
    },
    "not_found": {
        "en": "LoRA not found: '{name}' is not in the library.{hint} Type `/loras` to list your LoRAs.",
        "zh": "找不到 LoRA '{name}'(库里没有)。{hint}发 `/loras` 查看所有 LoRA。",
    },
    "did_you_mean": {"en": " Did you mean {names}?", "zh": "你是不是想写 {names}?"},
    "remembered": {
        "en": "Applied the fix for what you asked about a moment ago — “{asked}” ({titles}) — to this "
        "prompt.",
        "zh": "按你刚才问的「{asked}」({titles}),已把对应的修正用在这条提示词上。",
    },
    "title_separator": {"en": ", ", "zh": "、"},
    "preferred": {"en": ", preferred {weight}", "zh": ",推荐 {weight}"},
    "weight_line": {
        "en": "- `{name}` ({kind}): now {weight}, usual {typical}{preferred}",
        "zh": "- `{name}`({kind}):现在 {weight},常用 {typical}{preferred}",
    },
    "total_over": {
        "en": "- total {total}: over the {cap} budget, images tend to break — send me the prompt and I "
        "scale the mix down in proportion.",
        "zh": "- 合计 {total}:超过上限 {cap},容易崩图——把提示词发给我,我按比例缩小。",
    },
    "total_within": {"en": "- total {total} (budget {cap})", "zh": "- 合计 {total}(上限 {cap})"},
}


def say(key: str, language: Language = "en", **fields: object) -> str:
    """The message ``key`` in ``language`` (``en`` or ``zh``), with ``fields`` filled in."""
    text = TEXT[key][language]
    return text.format(**fields) if fields else text


def _t(key: str, language: Language) -> str:
    return TEXT[key][language]


HELP: dict[Language, str] = {
    "en": """I rewrite LoRA prompts the way an experienced user would and explain every change.

- Paste a prompt, e.g. `1girl, <lora:catgirl_v1:0.8>, <lora:cyberpunk_style:0.5>`
- Describe a problem: "why is my image black", "extra ears", "LoRA has no effect", "style suddenly changed"
- Ask: "how do I use a negative weight", "what weight should I use"
- `/blindbox N` — N images with random LoRA mixes · `/ab A B` — compare two LoRAs at one seed
- `/sweep NAME 0.2..1.0x5` — one LoRA at several weights · `/loras [filter]` — your LoRAs
- `/recipe NAME` — a saved mix · `/help` — this list
- Attach an image (📎) **with** a prompt: img2img over it; `/img2img 0.4` sets the strength. An image
  **alone**: I read what made it (prompt, LoRAs, settings) and put it back in the boxes""",
    "zh": """我会像老手一样改写 LoRA 提示词,并解释每一处改动。

- 直接发提示词,例如 `1girl, <lora:catgirl_v1:0.8>, <lora:cyberpunk_style:0.5>`
- 描述问题:“出图全黑”“多耳怪”“LoRA 不生效”“画风突变”“缓存见鬼”
- 提问:“负权重怎么用”“权重设多少”
- `/blindbox N` 盲盒混合 N 张 · `/ab A B` 同种子对比两个 LoRA
- `/sweep 名字 0.2..1.0x5` 权重扫描 · `/loras [关键词]` 查看 LoRA 库
- `/recipe 名字` 使用配方 · `/help` 帮助
- 发图片(📎)并附提示词:以图生图;`/img2img 0.4` 设置重绘幅度。只发图片:读出它的生成参数并填回""",
}


def _fence(text: str) -> str:
    """A code block whose fence is longer than any backtick run inside ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


#: For Chinese replies: the parser's notes quote the text they are about and stay in English;
#: every rule's reasons and warnings come in Chinese too (``reason_zh``/``message_zh``).
_ZH_PARSER_NOTE = "提示词提醒"


def format_advice(
    advice: Advice,
    language: Language = "en",
    *,
    applied: bool = True,
    negative_source: Literal["carried", "box"] | None = None,
) -> str:
    """Advice as markdown: the prompt in a code block, a compact diff with reasons, warnings, plan.

    ``negative_source`` names where a negative prompt the message did not write came from: the
    previous turn ("carried") or the Negative prompt box.
    """
    lang = language
    title = _t("rewritten", lang) if applied or not advice.changed else _t("suggested", lang)
    parts = [f"**{title}**", _fence(advice.positive)]
    if advice.negative.strip():
        label = _t("negative", lang)
        if negative_source == "carried":
            label = _t("negative_carried", lang)
        elif negative_source == "box":
            label = _t("negative_box", lang)
        parts += [f"**{label}**", _fence(advice.negative)]
    if advice.changes:
        lines = [f"**{_t('changes', lang)}**"]
        for change in advice.changes:
            before = f"`{_inline(change.before)}`" if change.before else "∅"
            after = f"`{_inline(change.after)}`" if change.after else "∅"
            detail = change.reason_zh if lang == "zh" and change.reason_zh else change.reason
            lines.append(f"- `{change.rule}` {before} → {after} — {detail}")
        parts.append("\n".join(lines))
    else:
        parts.append(_t("no_changes_but" if advice.warnings else "no_changes", lang))
    if advice.warnings:
        lines = [f"**{_t('warnings', lang)}**"]
        for w in advice.warnings:
            text = w.message
            if lang == "zh":
                text = w.message_zh or (f"{_ZH_PARSER_NOTE}:{w.message}" if w.rule == "prompt" else w.message)
            lines.append(f"- ⚠️ `{w.rule}` {text}")
        parts.append("\n".join(lines))
    plan = []
    for p in advice.plan:
        item = f"`{p.name}` {format_weight(p.weight)}"
        if p.unet is not None:
            item += f"/{format_weight(p.unet)}"
        if p.negative_weight is not None:
            item += f" ({_t('neg_pass', lang)} {format_weight(p.negative_weight)})"
        plan.append(item)
    parts.append(f"**{_t('plan', lang)}**: " + (" · ".join(plan) if plan else _t("no_loras", lang)))
    return "\n\n".join(parts)


def _inline(text: str) -> str:
    return " ".join(text.replace("`", "'").split())


#: A button's reply when the assistant is off (Apply changes unticked).
AS_WRITTEN = "_Assistant off: the prompt is rendered exactly as written._"
#: Under a chat answer that renders nothing although an image came with the message.
IMAGE_UNUSED = "_(The image you attached is not used by this message.)_"


def describe_plan(plan: Plan) -> str:
    """A plan before it renders: its title and each cell's label."""
    cells = list(plan.cells)
    lines = [f"**{plan.title}** — {len(cells)} cell{'s' if len(cells) != 1 else ''}"]
    labels = [cell.label for cell in cells if cell.label]
    if labels and len(labels) <= 16:
        lines.extend(f"{i + 1}. {label}" for i, label in enumerate(labels))
    return "\n".join(lines)


def render_summary(rendered: Rendered | PlanRendered) -> tuple[str, tuple[str, ...]]:
    """The markdown under a finished render (seeds, notes, where it was saved) and its images."""
    from .service import PlanRendered

    if isinstance(rendered, PlanRendered):
        folder = Path(rendered.grid_path)
        lines = [*rendered.notes, f"saved `{folder.name}` in `{folder.parent.name}`"]
        return "\n\n".join(lines), (rendered.grid_path, *rendered.extra_images)
    seeds = rendered.seeds
    text = ("Seed " if len(seeds) == 1 else "Seeds ") + ", ".join(str(seed) for seed in seeds)
    names = ", ".join(f"`{Path(p).name}`" for p in rendered.paths[:4])
    if len(rendered.paths) > 4:
        names += f" … (+{len(rendered.paths) - 4})"
    if names:
        text += f" · saved {names}"
    text += "".join(f"\n- {note}" for note in rendered.notes)
    return text, rendered.paths


def img2img_line(settings: RenderSettings) -> str:
    """What an img2img render will do, in A1111's terms."""
    from .img2img import img2img_steps
    from .types import RESIZE_MODES

    init = settings.init_image
    assert init is not None
    plan = img2img_steps(settings.steps, settings.strength)
    return (
        f"**img2img** over `{init.name or 'the init image'}` ({init.width}x{init.height}) at denoising "
        f"strength {settings.strength:g}: {plan.run} of {settings.steps} steps run (as A1111 does), "
        f"{RESIZE_MODES[settings.resize_mode].lower()} to {settings.width}x{settings.height}."
        + "".join(f"\n- {note}" for note in init.notes)
    )
