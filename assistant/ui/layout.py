"""The app's page: :func:`build_demo` places the components (:mod:`assistant.ui.page`) and wires
their events to :class:`~assistant.ui.handlers.Handlers`.

It builds the ``gr.Blocks`` over one service and launches nothing. The API names (``api_name=``)
are what ``gradio_client`` callers and the browser tests use, so they stay put; events are
registered in a fixed order (their ``fn_index``), requests first.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from ..errors import LoraMixerError
from ..service import Service
from . import cards
from . import train as train_ui
from .binding import bind
from .events import friendly, gpu
from .flow import apply_fill
from .handlers import Handlers
from .img2img import DROP_JS
from .page import (
    CHAT_EXAMPLES,
    ChatColumn,
    HistoryTab,
    LibraryTab,
    PromptTab,
    chat_column,
    history_tab,
    library_tab,
    prompt_tab,
    setting_slider,
)

__all__ = ["CHAT_EXAMPLES", "CSS", "build_demo", "setting_slider"]

log = logging.getLogger("lora_mixer.app")

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

#: Requests stream (generators) and queue per session themselves (assistant.ui.conversation), so
#: they take no Gradio concurrency slot while they wait, and a second message or click during a
#: render is accepted (trigger_mode="multiple"), shown as queued and run after.
STREAM: dict[str, Any] = {"concurrency_limit": None, "trigger_mode": "multiple", "show_progress": "hidden"}


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
                chat = chat_column()
            with gr.Column(scale=2, min_width=360), gr.Tabs():
                with gr.Tab("Prompt", id="prompt-tab"), gr.Column(elem_id="prompt-panel"):
                    prompt = prompt_tab(service, recipe_names)
                with gr.Tab("Library", id="library-tab"):
                    library = library_tab(initial_rows)
                with gr.Tab("History", id="history-tab"):
                    history = history_tab(service)
                with gr.Tab("Train", id="train-tab"):
                    train_tab = train_ui.build_tab(service)
        library_listing = gr.JSON(visible=False)
        library_outputs = [library.cards, card_names, library_listing, library.note]

        _wire_requests(demo, h, chat, prompt, recipe_state)
        _wire_library(h, library, prompt, card_names, library_outputs)
        _wire_prompt_tools(h, prompt, recipe_state)
        history.refresh.click(h.history, None, [history.gallery], api_name="history", concurrency_limit=None)
        # a finished training rescans the library (the service does); the cards show the new LoRA
        train_ui.wire(train_tab, train_ui.TrainHandlers(service), wrap=friendly).then(
            friendly(h.library),
            inputs=library.filters,
            outputs=library_outputs,
            api_visibility="private",
        )
        _wire_session_state(demo, chat, prompt, apply_store, prompt_store)
        _wire_server(demo, h, prompt, history, status=status, banner=banner)
    return demo


def _wire_requests(
    demo: gr.Blocks, h: Handlers, chat: ChatColumn, prompt: PromptTab, recipe_state: Any
) -> None:
    """The chat and the render buttons (streamed, queued per session), the PNG drop, Cancel and Clear."""
    panel = prompt.panel
    # the settings reach each render handler as one RenderSettings and the image panel's values as
    # one ImageInputs (assistant.ui.binding.bind: the API keeps one parameter per component);
    # what a turn fills in (an image's parameters, an attached photo) goes through fill_state
    fill_state = gr.State({})
    fill_outputs = [
        *prompt.settings[:6],  # sampler … seed
        panel.init_image, panel.strength, panel.hires, panel.hr_upscaler, panel.hr_scale, panel.hr_steps,
        panel.hr_strength,
    ]  # fmt: skip
    boxes = [prompt.positive, prompt.negative, chat.apply_changes]
    gr.on(
        [chat.send.click, chat.message.submit],
        gpu(friendly(bind(h.chat))),
        inputs=[chat.message, chat.chatbot, *boxes, *prompt.settings, recipe_state, *panel.inputs],
        outputs=[chat.chatbot, chat.message, prompt.positive, prompt.negative, fill_state],
        api_name="chat",
        **STREAM,
    )
    # each button: its options, then the settings and the conversation (and, for the blind box,
    # the recipe picked in the menu, whose ranges bound its draws), then the image panel
    buttons = [
        (prompt.generate, h.generate, [], []),
        (prompt.blindbox, h.blindbox, [prompt.blind_count], [recipe_state]),
        (prompt.ab, h.ab, [prompt.ab_a, prompt.ab_b], []),
        (prompt.sweep, h.sweep, [prompt.sweep_x, prompt.sweep_y], []),
    ]
    for button, handler, options, states in buttons:
        button.click(
            gpu(friendly(bind(handler))),
            inputs=[*boxes, *options, *prompt.settings, chat.chatbot, *states, *panel.inputs],
            outputs=[chat.chatbot, prompt.positive, prompt.negative],
            api_name=handler.__name__,
            **STREAM,
        )
    panel.restore_file.upload(
        friendly(h.restore),
        inputs=[panel.restore_file, panel.init_image, prompt.positive, prompt.negative],
        outputs=[prompt.positive, prompt.negative, fill_state, panel.restore_note, panel.restore_file],
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
    chat.cancel.click(friendly(h.cancel), None, None, api_name="cancel", concurrency_limit=None, queue=False)
    chat.chatbot.clear(h.clear, None, None, api_name="clear_chat", api_visibility="private", queue=False)
    demo.unload(h.forget)


def _wire_library(
    h: Handlers, library: LibraryTab, prompt: PromptTab, card_names: Any, outputs: list[Any]
) -> None:
    """Search and filters, Rescan, a card click, and inserting a LoRA by name (for API clients)."""
    gr.on(
        [library.search.submit, library.kind.change, library.base.change],
        friendly(h.library),
        inputs=library.filters,
        outputs=outputs,
        api_name="loras",
        concurrency_limit=None,
    )
    library.refresh.click(
        friendly(h.refresh_library), inputs=library.filters, outputs=outputs, api_name="refresh_loras"
    )
    library.cards.click(
        friendly(h.insert_card),
        inputs=[library.cards, card_names, prompt.positive],
        outputs=[prompt.positive, library.note],
        api_name="insert_card",
        concurrency_limit=None,
    )
    insert_name = gr.Textbox(visible=False)
    insert_btn = gr.Button(visible=False)
    insert_btn.click(
        friendly(h.insert_lora),
        inputs=[insert_name, prompt.positive],
        outputs=[prompt.positive],
        api_name="insert_lora",
        concurrency_limit=None,
    )


def _wire_prompt_tools(h: Handlers, prompt: PromptTab, recipe_state: Any) -> None:
    """One weight slider per LoRA tag of the prompt, each writing its weight back; the recipe menu."""
    prompt.positive.change(
        friendly(h.sliders),
        inputs=[prompt.positive],
        outputs=prompt.weight_sliders,
        api_name="lora_sliders",
        concurrency_limit=None,
        show_progress="hidden",
    )
    for i, slider in enumerate(prompt.weight_sliders):
        # dragging, and typing a number into the slider's box (each keystroke is an input),
        # write the weight into the prompt; the last value wins
        gr.on(
            [slider.input, slider.release],
            friendly(h.weight_setter(i)),
            inputs=[slider, prompt.positive],
            outputs=[prompt.positive],
            api_name=f"set_weight_{i + 1}",
            concurrency_limit=None,
            show_progress="hidden",
            trigger_mode="always_last",
        )
    recipe_settings = prompt.settings[:6]  # sampler … seed (prompts.RECIPE_SETTINGS)
    prompt.recipe.change(
        friendly(bind(h.recipe)),
        inputs=[prompt.recipe, prompt.positive, prompt.negative, recipe_state, *recipe_settings],
        outputs=[prompt.positive, prompt.negative, prompt.recipe_note, recipe_state, *recipe_settings],
        api_name="recipe",
        concurrency_limit=None,
    )


def _wire_session_state(
    demo: gr.Blocks, chat: ChatColumn, prompt: PromptTab, apply_store: Any, prompt_store: Any
) -> None:
    """Per-session state: the apply choice and the prompts survive a reload (browser storage)."""
    chat.apply_changes.change(
        lambda value: {"apply": bool(value)},
        [chat.apply_changes],
        [apply_store],
        api_name="remember_apply",
        api_visibility="private",
    )
    gr.on(
        [prompt.positive.change, prompt.negative.change],
        lambda p, n: [p, n],
        [prompt.positive, prompt.negative],
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
        [chat.apply_changes, prompt.positive, prompt.negative],
        api_name="restore",
        api_visibility="private",
    )


def _wire_server(
    demo: gr.Blocks, h: Handlers, prompt: PromptTab, history: HistoryTab, *, status: Any, banner: Any
) -> None:
    """The base model, A1111's quicksettings, the status line (polled until the engine loads) and
    the history on page load."""
    prompt.model_choice.input(
        h.switch_model,
        [prompt.model_choice],
        [prompt.model_choice, status, banner, prompt.sampler],
        api_name="switch_model",
    )
    quick = [prompt.clip_skip, prompt.rng, prompt.vae]
    gr.on(
        [prompt.clip_skip.release, prompt.rng.input, prompt.vae.input],
        h.set_options,
        quick,
        [*quick, status],
        api_name="set_options",
    )
    status_timer = gr.Timer(2.0)
    gr.on(
        [demo.load, status_timer.tick],
        h.status,
        None,
        [status, banner, prompt.sampler, status_timer],
        api_name="status",
        concurrency_limit=None,
        show_progress="hidden",
    )
    demo.load(
        h.history,
        None,
        [history.gallery],
        api_name="history_on_load",
        api_visibility="private",
        concurrency_limit=None,
    )
