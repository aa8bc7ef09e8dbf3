"""The app's components, one builder per part of the page (call each inside ``gr.Blocks``, in the
place :func:`assistant.ui.layout.build_demo` gives it): the chat column, the Prompt tab (prompt
boxes, LoRA weight sliders, image panel, render buttons and their options, recipe menu, settings),
the Library tab and the History tab. Each returns its components as one dataclass, which the
layout wires to the handlers. No events here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from .. import limits
from ..engine.checks import MAX_CLIP_SKIP, RNG_SOURCES
from ..service import LIMITS, Service, model_label
from ..types import DEFAULT_SAMPLER
from . import prompts
from .handlers import KNOWN_SAMPLERS
from .img2img import ImagePanel, build_panel

__all__ = [
    "CHAT_EXAMPLES",
    "ChatColumn",
    "HistoryTab",
    "LibraryTab",
    "PromptTab",
    "chat_column",
    "history_tab",
    "library_tab",
    "prompt_tab",
    "setting_slider",
]

CHAT_EXAMPLES = [
    "1girl, cat ears, <lora:catgirl_v1:0.8>, <lora:cyberpunk_style:0.7>",
    "/blindbox 4",
    "/loras",
    "/help",
    "一个猫耳女孩, <lora:catgirl_v1:0.8>",
]


def setting_slider(*args: Any, **kwargs: Any) -> gr.Slider:
    """A ``gr.Slider`` that leaves range checks to :class:`RenderSettings` (shared with the API).

    Gradio's own check answers "Value 0 is less than minimum value 1." without saying which
    setting; ours names it and the allowed range. The override is per instance: a Slider
    subclass would make Gradio write a ``.pyi`` stub next to its module.
    """
    slider = gr.Slider(*args, **kwargs)
    slider.preprocess = _unchecked  # type: ignore[method-assign]
    return slider


def _unchecked(payload: float | None) -> float | None:
    return payload


@dataclass
class ChatColumn:
    """The conversation, the message box and its buttons."""

    chatbot: Any
    message: Any
    send: Any
    apply_changes: Any
    cancel: Any


def chat_column() -> ChatColumn:
    """The conversation, the message box (text and an image), Send, the "apply the assistant's
    changes" choice, Cancel, and the examples."""
    chatbot = gr.Chatbot(
        label="Conversation",
        height=620,
        elem_id="chatbot",
        buttons=["copy", "copy_all"],
        feedback_options=None,
        placeholder=(
            "**Write a prompt the A1111 way** — e.g. `1girl, cat ears, <lora:catgirl_v1:0.8>` — "
            "or a command: `/blindbox 8`, `/ab`, `/sweep`, `/loras`, `/help`. English or 中文."
        ),
    )
    with gr.Row():
        message = gr.MultimodalTextbox(
            placeholder="Prompt, question or /command … — attach an image to render over it, "
            "or send one alone to read what made it",
            show_label=False,
            scale=5,
            lines=1,
            max_lines=6,
            file_types=["image"],
            file_count="single",
            sources=["upload"],
            submit_btn=False,
            elem_id="chat-input",
        )
        send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
    with gr.Row():
        apply_changes = gr.Checkbox(True, label="Apply the assistant's changes", elem_id="apply")
        cancel = gr.Button("Cancel", variant="stop", size="sm", scale=0, min_width=90, elem_id="cancel")
    examples = [{"text": text, "files": []} for text in CHAT_EXAMPLES]
    gr.Examples(examples, inputs=[message], label="Try")
    return ChatColumn(chatbot, message, send, apply_changes, cancel)


@dataclass
class PromptTab:
    """The Prompt tab's components."""

    positive: Any
    negative: Any
    weight_sliders: list[Any]
    panel: ImagePanel
    generate: Any
    blindbox: Any
    ab: Any
    sweep: Any
    blind_count: Any
    ab_a: Any
    ab_b: Any
    sweep_x: Any
    sweep_y: Any
    recipe: Any
    recipe_note: Any
    sampler: Any
    steps: Any
    cfg: Any
    width: Any
    height: Any
    seed: Any
    batch: Any
    model_choice: Any
    clip_skip: Any
    rng: Any
    vae: Any

    @property
    def settings(self) -> list[Any]:
        """The render settings' components, in :data:`assistant.ui.binding.RENDER_FIELDS` order."""
        return [self.sampler, self.steps, self.cfg, self.width, self.height, self.seed, self.batch]


def prompt_tab(service: Service, recipe_names: list[str]) -> PromptTab:
    """The prompt boxes, one weight slider per LoRA tag, the image panel, the render buttons and
    their options, the recipe menu, and the Settings accordion (render settings, base model, A1111's
    quicksettings)."""
    positive = gr.Textbox(label="Prompt", lines=4, elem_id="positive")
    negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="negative")
    weight_sliders = [
        gr.Slider(*limits.LORA_WEIGHT, value=1.0, step=0.05, visible=False, label=f"LoRA {i + 1}")
        for i in range(prompts.MAX_SLIDERS)
    ]
    panel = build_panel()  # init image + strength, hires fix, drop-a-PNG restore
    with gr.Row():
        generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
        blindbox_btn = gr.Button("Blind box", elem_id="blindbox")
        ab_btn = gr.Button("A/B", elem_id="ab")
        sweep_btn = gr.Button("Sweep", elem_id="sweep")
    with gr.Accordion("Blind box, A/B and sweep options", open=False):
        blind_count = gr.Slider(
            *limits.BLINDBOX_CELLS,
            value=limits.BLINDBOX_DEFAULT,
            step=1,
            label="Blind box: images",
            elem_id="blind-count",
        )
        with gr.Row():
            ab_a = gr.Textbox(
                label="A/B: variant A",
                placeholder="e.g. catgirl_v1 (blank: the prompt's first LoRA)",
            )
            ab_b = gr.Textbox(
                label="A/B: variant B",
                placeholder="e.g. catgirl_v2 (blank: the prompt's second LoRA, or none)",
            )
        with gr.Row():
            sweep_x = gr.Textbox(
                label="Sweep X axis",
                placeholder="catgirl_v1=0.2..1.0x5 (blank: the first LoRA, 0..1x5)",
            )
            sweep_y = gr.Textbox(label="Sweep Y axis", placeholder="cfg=4,7,10")
    recipe = gr.Dropdown(
        choices=["", *recipe_names],
        value="",
        label="Recipe",
        elem_id="recipe",
        allow_custom_value=False,
    )
    recipe_note = gr.Markdown(elem_id="recipe-note")
    with gr.Accordion("Settings", open=False):
        sampler = gr.Dropdown(
            KNOWN_SAMPLERS,
            value=DEFAULT_SAMPLER,
            label="Sampler",
            allow_custom_value=True,
        )
        with gr.Row():
            steps = setting_slider(
                *LIMITS["steps"],
                value=limits.STEPS_DEFAULT,
                step=1,
                label="Steps",
                elem_id="steps",
            )
            cfg = setting_slider(
                *LIMITS["cfg"],
                value=limits.CFG_DEFAULT,
                step=0.5,
                label="CFG scale",
                elem_id="cfg",
            )
        with gr.Row():
            size = service.default_size()  # the model's native size (128 embedded)
            width = setting_slider(*LIMITS["width"], value=size, step=8, label="Width", elem_id="width")
            height = setting_slider(*LIMITS["height"], value=size, step=8, label="Height", elem_id="height")
        with gr.Row():
            seed = gr.Number(-1, label="Seed (-1 = random)", precision=0, elem_id="seed")
            batch = setting_slider(*LIMITS["batch_size"], value=1, step=1, label="Batch size")
        model_choice = gr.Dropdown(
            [(model_label(m), m) for m in service.models()],
            value=service.current_model(),
            label="Base model (--model; checkpoints in --models-dir)",
            info="Switching loads the new model; renders wait meanwhile."
            if service.settings.model_switch_allowed
            else "Fixed on this shared server (LORA_MIXER_ALLOW_MODEL_SWITCH=1 allows it).",
            interactive=service.settings.model_switch_allowed,
            elem_id="base-model",
        )
        with gr.Row():  # A1111's quicksettings: server-wide, like its Settings page
            clip_skip = setting_slider(
                1,
                MAX_CLIP_SKIP,
                value=service.settings.clip_skip,
                step=1,
                label="Clip skip",
                elem_id="clip-skip",
            )
            rng = gr.Dropdown(list(RNG_SOURCES), value=service.settings.rng, label="RNG", elem_id="rng")
            vae = gr.Dropdown(
                service.vae_choices(),
                value=service.settings.vae or "Automatic",
                label="VAE",
                info="--vae; files in --vae-dir",
                interactive=service.settings.model_switch_allowed,
                elem_id="vae",
            )
    return PromptTab(
        positive=positive,
        negative=negative,
        weight_sliders=weight_sliders,
        panel=panel,
        generate=generate_btn,
        blindbox=blindbox_btn,
        ab=ab_btn,
        sweep=sweep_btn,
        blind_count=blind_count,
        ab_a=ab_a,
        ab_b=ab_b,
        sweep_x=sweep_x,
        sweep_y=sweep_y,
        recipe=recipe,
        recipe_note=recipe_note,
        sampler=sampler,
        steps=steps,
        cfg=cfg,
        width=width,
        height=height,
        seed=seed,
        batch=batch,
        model_choice=model_choice,
        clip_skip=clip_skip,
        rng=rng,
        vae=vae,
    )


@dataclass
class LibraryTab:
    """The Library tab's components."""

    search: Any
    kind: Any
    base: Any
    refresh: Any
    note: Any
    cards: Any

    @property
    def filters(self) -> list[Any]:
        """The search box and the two filters, the library handlers' inputs."""
        return [self.search, self.kind, self.base]


def library_tab(initial_rows: list[Any]) -> LibraryTab:
    """The search box, the kind and base filters, Rescan, the note and the cards."""
    with gr.Row():
        search = gr.Textbox(
            placeholder="Search name, alias or trigger",
            show_label=False,
            scale=3,
            elem_id="lora-search",
        )
        kind = gr.Dropdown(
            ["any", "character", "clothing", "concept", "style", "other"],
            value="any",
            label="Kind",
            scale=1,
        )
        base = gr.Dropdown(["any", "sd15", "sd2", "sdxl", "unknown"], value="any", label="Base", scale=1)
    refresh = gr.Button("Rescan LoRA folders", size="sm")
    library_note = gr.Markdown(
        "Click a card to insert its tag and trigger words into the prompt.",
        elem_id="library-note",
    )
    library_cards = gr.Dataset(
        components=[gr.Image(type="filepath", visible=False), gr.HTML(visible=False)],
        headers=["Preview", "LoRA"],
        samples=initial_rows,
        samples_per_page=12,
        type="index",
        layout="table",
        elem_id="library-cards",
        label="LoRA library",
    )
    return LibraryTab(search, kind, base, refresh, library_note, library_cards)


@dataclass
class HistoryTab:
    """The History tab's components."""

    refresh: Any
    gallery: Any


def history_tab(service: Service) -> HistoryTab:
    """Refresh and the gallery of saved images (the sender's own when histories are private)."""
    history_refresh = gr.Button("Refresh", size="sm")
    history_gallery = gr.Gallery(
        label="Your saved images (newest first; nobody else sees them)"
        if service.history_policy.private
        else "Saved images (newest first)",
        columns=4,
        height=560,
        elem_id="history",
    )
    return HistoryTab(history_refresh, history_gallery)
