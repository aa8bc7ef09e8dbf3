"""Markdown helpers for the conversation: the demo banner and how messages with tags are shown.

The assistant's replies (advice, plans, renders) are written by :mod:`assistant.chat` and the service
(``chat.format_advice``, ``service.render_summary``); this module does not format them again.
"""

from __future__ import annotations

from typing import Any

TINY_BANNER = (
    "**Demo model in use: images are noise.** No Stable Diffusion checkpoint is configured, so LoRA "
    "Mixer runs a tiny random-weight pipeline (real architecture, offline) — everything works, "
    "the pictures mean nothing. Start with `--model <hub id | diffusers folder | .safetensors>` "
    "and `--lora-dir <folder>` (or `LORA_MIXER_MODEL` / `LORA_MIXER_LORA_DIRS`) for real images."
)


EMBEDDED_BANNER = (
    "**Embedded demo model: a tiny Stable Diffusion trained here on shapes.** It draws the colour, "
    "background and shape you ask for (circle, square, triangle or star: right about 8 times in 10 "
    "at 128 px; soft-edged, stripes show): try `a striped red square on a blue background`. The demo "
    "LoRAs were trained on it (`catgirl_v1` draws a cat mascot with ears; each one's notes say what "
    "it does). For real images start with `--model <hub id | diffusers folder | .safetensors>` (or "
    "`LORA_MIXER_MODEL`)."
)


def inline_code(text: str) -> str:
    """Inline code that survives backticks in the text (``<lora:…>`` would render as a link)."""
    text = text.replace("\n", " ")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text or ' '}`"


_code = inline_code


def user_text(message: str) -> str:
    """A chat message as shown in the conversation: prompts with ``<…>`` tags as code, so the
    Markdown renderer keeps the tags visible; questions and commands as typed."""
    if "<" not in message:
        return message
    if "\n" in message:
        fence = "~~~~" if "~~~" in message else "~~~"
        return f"{fence}\n{message}\n{fence}"
    return inline_code(message)


def training_plan(options: Any, dataset: Any) -> str:
    """What a training run would do (the Train tab's "Check dataset")."""
    folders = ", ".join(f"`{s.name}` ({len(s.images)} images x {s.repeats})" for s in dataset.subsets)
    triggers = ", ".join(dataset.trigger_words()) or "none (every caption differs)"
    lines = [
        f"**Ready to train `{options.output_name}`** on {inline_code(options.base or 'the running model')}: "
        f"{dataset.num_images} images, {dataset.num_train_images} samples per epoch in {folders}.",
        f"- {options.max_steps} steps, batch {options.batch_size}, rank {options.rank} / alpha "
        f"{options.alpha:g}, learning rate {options.lr:g}, {options.optimizer}, {options.scheduler}",
        f"- trigger words (in every caption): {triggers}",
        f"- output: `{options.output_path.name}` in the LoRA folder",
    ]
    lines += [f"- note: {note}" for note in dataset.notes]
    return "\n".join(lines)


def training_status(state: Any) -> str:
    """One run's progress or result, for the Train tab."""
    if state.status == "idle":
        return ""
    head = {
        "running": "Training",
        "done": "Done",
        "cancelled": "Cancelled",
        "failed": "Failed",
    }.get(state.status, state.status)
    progress = f" — step {state.step}/{state.total}" if state.total else ""
    eta = ""
    if state.running and state.step and state.total:
        eta = f", about {state.seconds / state.step * (state.total - state.step):.0f} s left"
    return f"**{head} `{state.name}`**{progress}{eta}\n\n{state.message}"
