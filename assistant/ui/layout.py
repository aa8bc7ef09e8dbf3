"""The app's page: the components (chat, prompt panel with its settings, library, history, train
tabs) and the events that wire them to :class:`~assistant.ui.handlers.Handlers`.

:func:`build_demo` builds the ``gr.Blocks`` over one service and launches nothing; the API names
(``api_name=``) are what ``gradio_client`` callers and the browser tests use, so they stay put.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from .. import limits
from ..engine.checks import MAX_CLIP_SKIP, RNG_SOURCES
from ..errors import LoraMixerError
from ..service import LIMITS, Service, model_label
from ..types import DEFAULT_SAMPLER
from . import cards, prompts
from . import train as train_ui
from .binding import bind
from .events import friendly, gpu
from .flow import apply_fill
from .handlers import KNOWN_SAMPLERS, Handlers
from .img2img import DROP_JS, build_panel

__all__ = ["CHAT_EXAMPLES", "CSS", "build_demo", "setting_slider"]

log = logging.getLogger("lora_mixer.app")


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


CSS = """
#banner {background: #fef3c7; border: 1px solid #f59e0b; border-radius: 8px; padding: 4px 12px;}
#library-cards img {max-width: 72px; max-height: 72px;}
#library-cards .lm-card {text-align: left; line-height: 1.5;}
#library-cards td {cursor: pointer;}
/* the Clear / Copy icons float over the top of the conversation: the messages scroll below them */
#chatbot .bubble-wrap {margin-top: 40px; height: calc(100% - 40px);}
/* tables in replies (/loras) scroll sideways instead of squeezing a word into one letter a line */
#chatbot .message table {display: block; overflow-x: auto; max-width: 100%;}
#chatbot .message th, #chatbot .message td {white-space: nowrap;}
/* a phone: the conversation and its input fit on the first screen */
@media (max-width: 640px) {
  #subtitle, #status {display: none;}
  #banner {padding: 2px 8px;}
  #banner p {font-size: 12px; line-height: 1.35; margin: 2px 0;}
  #banner code {font-size: 11px;}
  #chatbot {height: 46vh !important; max-height: 46vh !important; min-height: 240px;}
}
"""

CHAT_EXAMPLES = [
    "1girl, cat ears, <lora:catgirl_v1:0.8>, <lora:cyberpunk_style:0.7>",
    "/blindbox 4",
    "/loras",
    "/help",
    "一个猫耳女孩, <lora:catgirl_v1:0.8>",
]


def build_demo(service: Service, *, max_waiting: int = 32) -> gr.Blocks:
    """The Blocks app over ``service`` (not launched); at most ``max_waiting`` requests queue."""
    h = Handlers(service, max_waiting=max_waiting)
    recipe_names: list[str]
    try:
        recipe_names = sorted(service.recipes())
    except LoraMixerError as err:
        log.warning("recipes not loaded: %s", err)
        recipe_names = []
    initial_rows, initial_names = cards.card_rows(service.loras(), h.thumbs_dir, service.lora_hash)

    with gr.Blocks(title="LoRA Mixer", fill_width=True) as demo:
        # Gradio's BrowserState never writes a falsy value (False would be forgotten): keep a dict.
        apply_store = gr.BrowserState({"apply": True}, storage_key="lora_mixer_apply")
        prompt_store = gr.BrowserState(["", ""], storage_key="lora_mixer_prompts")
        card_names = gr.State(initial_names)
        recipe_state = gr.State(None)

        gr.Markdown("# LoRA Mixer", elem_id="title")
        gr.Markdown(
            "Chat with an assistant that mixes LoRAs the way an experienced A1111 user would.",
            elem_id="subtitle",
        )
        status = gr.Markdown(service.status_line(), elem_id="status")
        banner = gr.Markdown(service.banner(), visible=bool(service.banner()), elem_id="banner")

        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
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
                    cancel = gr.Button(
                        "Cancel", variant="stop", size="sm", scale=0, min_width=90, elem_id="cancel"
                    )
                examples = [{"text": text, "files": []} for text in CHAT_EXAMPLES]
                gr.Examples(examples, inputs=[message], label="Try")

            with gr.Column(scale=2, min_width=360), gr.Tabs():
                with gr.Tab("Prompt", id="prompt-tab"), gr.Column(elem_id="prompt-panel"):
                    positive = gr.Textbox(label="Prompt", lines=4, elem_id="positive")
                    negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="negative")
                    weight_sliders = [
                        gr.Slider(
                            *limits.LORA_WEIGHT, value=1.0, step=0.05, visible=False, label=f"LoRA {i + 1}"
                        )
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
                            width = setting_slider(
                                *LIMITS["width"], value=size, step=8, label="Width", elem_id="width"
                            )
                            height = setting_slider(
                                *LIMITS["height"], value=size, step=8, label="Height", elem_id="height"
                            )
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
                            rng = gr.Dropdown(
                                list(RNG_SOURCES), value=service.settings.rng, label="RNG", elem_id="rng"
                            )
                            vae = gr.Dropdown(
                                service.vae_choices(),
                                value=service.settings.vae or "Automatic",
                                label="VAE",
                                info="--vae; files in --vae-dir",
                                interactive=service.settings.model_switch_allowed,
                                elem_id="vae",
                            )
                with gr.Tab("Library", id="library-tab"):
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
                        base = gr.Dropdown(
                            ["any", "sd15", "sd2", "sdxl", "unknown"], value="any", label="Base", scale=1
                        )
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
                with gr.Tab("History", id="history-tab"):
                    history_refresh = gr.Button("Refresh", size="sm")
                    history_gallery = gr.Gallery(
                        label="Your saved images (newest first; nobody else sees them)"
                        if service.history_policy.private
                        else "Saved images (newest first)",
                        columns=4,
                        height=560,
                        elem_id="history",
                    )
                with gr.Tab("Train", id="train-tab"):
                    train_tab = train_ui.build_tab(service)

        library_listing = gr.JSON(visible=False)
        settings_inputs = [sampler, steps, cfg, width, height, seed, batch]

        # -- events --------------------------------------------------------------------------------
        # Requests stream (generators) and queue per session themselves (assistant.ui.conversation),
        # so they take no Gradio concurrency slot while they wait, and a second message or click
        # during a render is accepted (trigger_mode="multiple"), shown as queued and run after.
        stream = {
            "concurrency_limit": None,
            "trigger_mode": "multiple",
            "show_progress": "hidden",
        }
        # the settings reach each render handler as one RenderSettings and the image panel's values as
        # one ImageInputs (assistant.ui.binding.bind: the API keeps one parameter per component);
        # what a turn fills in (an image's parameters, an attached photo) goes through fill_state
        fill_state = gr.State({})
        fill_outputs = [
            sampler, steps, cfg, width, height, seed,
            panel.init_image, panel.strength, panel.hires, panel.hr_upscaler, panel.hr_scale, panel.hr_steps,
            panel.hr_strength,
        ]  # fmt: skip
        gr.on(
            [send.click, message.submit],
            gpu(friendly(bind(h.chat))),
            inputs=[
                message,
                chatbot,
                positive,
                negative,
                apply_changes,
                *settings_inputs,
                recipe_state,
                *panel.inputs,
            ],
            outputs=[chatbot, message, positive, negative, fill_state],
            api_name="chat",
            **stream,
        )
        generate_btn.click(
            gpu(friendly(bind(h.generate))),
            inputs=[positive, negative, apply_changes, *settings_inputs, chatbot, *panel.inputs],
            outputs=[chatbot, positive, negative],
            api_name="generate",
            **stream,
        )
        blindbox_btn.click(
            gpu(friendly(bind(h.blindbox))),
            inputs=[
                positive,
                negative,
                apply_changes,
                blind_count,
                *settings_inputs,
                chatbot,
                recipe_state,
                *panel.inputs,
            ],
            outputs=[chatbot, positive, negative],
            api_name="blindbox",
            **stream,
        )
        ab_btn.click(
            gpu(friendly(bind(h.ab))),
            inputs=[positive, negative, apply_changes, ab_a, ab_b, *settings_inputs, chatbot, *panel.inputs],
            outputs=[chatbot, positive, negative],
            api_name="ab",
            **stream,
        )
        sweep_btn.click(
            gpu(friendly(bind(h.sweep))),
            inputs=[
                positive,
                negative,
                apply_changes,
                sweep_x,
                sweep_y,
                *settings_inputs,
                chatbot,
                *panel.inputs,
            ],
            outputs=[chatbot, positive, negative],
            api_name="sweep",
            **stream,
        )
        panel.restore_file.upload(
            friendly(h.restore),
            inputs=[panel.restore_file, panel.init_image, positive, negative],
            outputs=[positive, negative, fill_state, panel.restore_note, panel.restore_file],
            api_name="restore_image",
            concurrency_limit=None,
        )
        fill_state.change(
            apply_fill,
            inputs=[fill_state, *fill_outputs],
            outputs=fill_outputs,
            api_name="apply_fill",
            api_visibility="private",
            concurrency_limit=None,
            show_progress="hidden",
        )
        demo.load(None, None, None, js=DROP_JS)
        # Cancel sets the session's flags: the running render stops after its current step and says
        # where; queued requests say they were cancelled before they started. (Gradio's own
        # `cancels=` would kill the stream before it could say so.)
        cancel.click(friendly(h.cancel), None, None, api_name="cancel", concurrency_limit=None, queue=False)
        chatbot.clear(h.clear, None, None, api_name="clear_chat", api_visibility="private", queue=False)
        demo.unload(h.forget)

        gr.on(
            [search.submit, kind.change, base.change],
            friendly(h.library),
            inputs=[search, kind, base],
            outputs=[library_cards, card_names, library_listing, library_note],
            api_name="loras",
            concurrency_limit=None,
        )
        refresh.click(
            friendly(h.refresh_library),
            inputs=[search, kind, base],
            outputs=[library_cards, card_names, library_listing, library_note],
            api_name="refresh_loras",
        )
        library_cards.click(
            friendly(h.insert_card),
            inputs=[library_cards, card_names, positive],
            outputs=[positive, library_note],
            api_name="insert_card",
            concurrency_limit=None,
        )
        insert_name = gr.Textbox(visible=False)
        insert_btn = gr.Button(visible=False)
        insert_btn.click(
            friendly(h.insert_lora),
            inputs=[insert_name, positive],
            outputs=[positive],
            api_name="insert_lora",
            concurrency_limit=None,
        )

        positive.change(
            friendly(h.sliders),
            inputs=[positive],
            outputs=weight_sliders,
            api_name="lora_sliders",
            concurrency_limit=None,
            show_progress="hidden",
        )
        for i, slider in enumerate(weight_sliders):
            # dragging, and typing a number into the slider's box (each keystroke is an input),
            # write the weight into the prompt; the last value wins
            gr.on(
                [slider.input, slider.release],
                friendly(h.weight_setter(i)),
                inputs=[slider, positive],
                outputs=[positive],
                api_name=f"set_weight_{i + 1}",
                concurrency_limit=None,
                show_progress="hidden",
                trigger_mode="always_last",
            )
        recipe.change(
            friendly(bind(h.recipe)),
            inputs=[recipe, positive, negative, recipe_state, sampler, steps, cfg, width, height, seed],
            outputs=[positive, negative, recipe_note, recipe_state, sampler, steps, cfg, width, height, seed],
            api_name="recipe",
            concurrency_limit=None,
        )
        history_refresh.click(h.history, None, [history_gallery], api_name="history", concurrency_limit=None)
        # a finished training rescans the library (the service does); the cards show the new LoRA
        train_ui.wire(train_tab, train_ui.TrainHandlers(service), wrap=friendly).then(
            friendly(h.library),
            inputs=[search, kind, base],
            outputs=[library_cards, card_names, library_listing, library_note],
            api_visibility="private",
        )

        # -- per-session state: the apply choice and the prompts survive a reload ------------------
        apply_changes.change(
            lambda value: {"apply": bool(value)},
            [apply_changes],
            [apply_store],
            api_name="remember_apply",
            api_visibility="private",
        )
        gr.on(
            [positive.change, negative.change],
            lambda p, n: [p, n],
            [positive, negative],
            [prompt_store],
            api_name="remember_prompts",
            api_visibility="private",
            show_progress="hidden",
        )

        def _restore(apply_value: Any, stored: Any) -> tuple[Any, Any, Any]:
            """The stored choice and prompts; nothing stored means nothing to set (a box the user
            typed into while the page loaded keeps what they typed)."""
            stored_apply = apply_value.get("apply") if isinstance(apply_value, dict) else apply_value
            p, n = ([*stored, "", ""])[:2] if isinstance(stored, list) else ("", "")
            return (
                stored_apply if stored_apply is False else gr.skip(),
                str(p) if p else gr.skip(),
                str(n) if n else gr.skip(),
            )

        demo.load(
            _restore,
            [apply_store, prompt_store],
            [apply_changes, positive, negative],
            api_name="restore",
            api_visibility="private",
        )
        model_choice.input(
            h.switch_model,
            [model_choice],
            [model_choice, status, banner, sampler],
            api_name="switch_model",
        )
        gr.on(
            [clip_skip.release, rng.input, vae.input],
            h.set_options,
            [clip_skip, rng, vae],
            [clip_skip, rng, vae, status],
            api_name="set_options",
        )
        status_timer = gr.Timer(2.0)
        gr.on(
            [demo.load, status_timer.tick],
            h.status,
            None,
            [status, banner, sampler, status_timer],
            api_name="status",
            concurrency_limit=None,
            show_progress="hidden",
        )
        demo.load(
            h.history,
            None,
            [history_gallery],
            api_name="history_on_load",
            api_visibility="private",
            concurrency_limit=None,
        )
    return demo
