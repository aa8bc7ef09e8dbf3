"""LoRA Mixer web app: a chat-first Gradio UI and the A1111-compatible API on one server.

    python app.py --host 127.0.0.1 --port 7860 --model <hub id | folder | .safetensors> --lora-dir <folder>

Thin shell: the handlers below convert component values, call :class:`assistant.service.Service`
(the same object the ``/sdapi/v1`` routes call), and format the result. Global state is only that
shared service (engine, library); each user's choices live in their session (components,
``gr.BrowserState``). Importing this module builds nothing and launches nothing.
"""

# Gradio passes component values to handlers positionally, one parameter per input component:
# ruff: noqa: PLR0917

from __future__ import annotations

import argparse
import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

# Gradio's usage analytics phone home at launch; off unless the user opts in (set it to "True").
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from assistant.blend import BLINDBOX_DEFAULT_CELLS, BLINDBOX_MAX_CELLS
from assistant.commands import add_model_options, model_settings
from assistant.config import Settings, load_settings
from assistant.engine.checks import MAX_CLIP_SKIP, RNG_SOURCES
from assistant.errors import Cancelled, LoraMixerError
from assistant.service import (
    LIMITS,
    ChatTurn,
    PlanRendered,
    ProgressFn,
    Rendered,
    RenderSettings,
    Service,
    model_label,
)
from assistant.types import DEFAULT_SAMPLER
from assistant.ui import cards, messages, prompts

log = logging.getLogger("lora_mixer.app")

F = TypeVar("F", bound=Callable[..., Any])

#: Sampler names offered before the engine has loaded (replaced by the engine's list on load).
KNOWN_SAMPLERS = ["DPM++ 2M Karras", "DPM++ 2M", "DPM++ SDE Karras", "Euler a", "Euler", "DDIM"]
HISTORY_LIMIT = 40
GENERIC_ERROR = "Something went wrong on the server; nothing was changed. The server log has the details."

try:  # Hugging Face ZeroGPU: run renders on a GPU slice when the `spaces` package is present
    import spaces  # type: ignore[import-not-found]

    gpu = spaces.GPU
except ImportError:  # everywhere else: a no-op decorator

    def gpu(fn: F | None = None, **_kwargs: Any) -> Any:
        return fn if fn is not None else (lambda f: f)


# ----------------------------------------------------------------------------------------------
# Handlers (functions first; the layout below only wires them)
# ----------------------------------------------------------------------------------------------


def setting_slider(*args: Any, **kwargs: Any) -> gr.Slider:
    """A ``gr.Slider`` that leaves range checks to :class:`RenderSettings` (shared with the API).

    Gradio's own check answers "Value 0 is less than minimum value 1." without saying which
    setting; ours names it and the allowed range. The override is per instance: a Slider
    subclass would make Gradio write an ``app.pyi`` stub next to this file.
    """
    slider = gr.Slider(*args, **kwargs)
    slider.preprocess = _unchecked  # type: ignore[method-assign]
    return slider


def _unchecked(payload: float | None) -> float | None:
    return payload


def thumbs_dir(settings: Settings) -> Path:
    """Where library-card thumbnails are written (served; the LoRA folders are not)."""
    return Path(settings.cache_dir).expanduser().resolve() / "thumbs"


def friendly(fn: F) -> F:
    """Show LoraMixerError messages as gr.Error; log anything else and show a generic message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except LoraMixerError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(GENERIC_ERROR, print_exception=False) from None

    return wrapper  # type: ignore[return-value]


def _progress(progress: gr.Progress | None) -> ProgressFn | None:
    if progress is None:
        return None

    def report(done: int, total: int, description: str) -> None:
        progress((done, total), desc=description, unit="steps")

    return report


def _settings(
    sampler: str, steps: float, cfg: float, width: float, height: float, seed: float, batch: float
) -> RenderSettings:
    return RenderSettings(
        sampler=sampler or DEFAULT_SAMPLER,
        steps=steps,  # type: ignore[arg-type]  # validated() turns whole floats into ints
        cfg=cfg,
        width=width,  # type: ignore[arg-type]
        height=height,  # type: ignore[arg-type]
        seed=seed,  # type: ignore[arg-type]
        batch_size=batch,  # type: ignore[arg-type]
    )


def _image_message(paths: Sequence[str]) -> list[dict[str, str]]:
    return [{"path": p} for p in paths]


class Handlers:
    """Event handlers bound to one :class:`Service`; per-session cancel flags by session hash."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._cancels: dict[str, threading.Event] = {}
        self._cancels_lock = threading.Lock()
        self.thumbs_dir = thumbs_dir(service.settings)

    # -- sessions ---------------------------------------------------------------------------------

    def _cancel_flag(self, request: gr.Request | None, *, reset: bool) -> threading.Event:
        key = getattr(request, "session_hash", None) or "_"
        with self._cancels_lock:
            flag = self._cancels.setdefault(key, threading.Event())
            if len(self._cancels) > 1000:  # bounded: forget the oldest sessions, keep this one
                for old in list(self._cancels)[:500]:
                    self._cancels.pop(old, None)
                self._cancels[key] = flag
        if reset:
            flag.clear()
        return flag

    def cancel(self, request: gr.Request) -> None:
        """Ask this session's running render to stop after the current step."""
        self._cancel_flag(request, reset=False).set()
        gr.Info("Cancelling after the current step…")

    # -- chat -------------------------------------------------------------------------------------

    def chat(
        self,
        message: str,
        history: list[dict[str, Any]] | None,
        positive: str,
        negative: str,
        apply_changes: bool,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
        batch: float,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented injection idiom
    ) -> tuple[list[dict[str, Any]], str, str, str]:
        """One chat turn: the reply (with images) appended; prompt boxes updated."""
        history = list(history or [])
        message = (message or "").strip()
        if not message:
            raise gr.Error("Type a prompt, a question or a command such as /help.", print_exception=False)
        turn: ChatTurn = self.service.chat(
            message,
            positive=positive or "",
            negative=negative or "",
            apply_changes=bool(apply_changes),
            settings=_settings(sampler, steps, cfg, width, height, seed, batch),
            progress=_progress(progress),
            cancel=self._cancel_flag(request, reset=True),
        )
        history.append({"role": "user", "content": messages.user_text(message)})
        content: list[Any] = [turn.markdown, *_image_message(turn.images)]
        history.append({"role": "assistant", "content": content})
        return history, "", turn.positive, turn.negative

    # -- buttons ----------------------------------------------------------------------------------

    def _append(
        self, history: list[dict[str, Any]] | None, user: str, markdown: str, paths: Sequence[str]
    ) -> list[dict[str, Any]]:
        history = list(history or [])
        history.append({"role": "user", "content": user})
        history.append({"role": "assistant", "content": [markdown, *_image_message(paths)]})
        return history

    def generate(
        self,
        positive: str,
        negative: str,
        apply_changes: bool,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
        batch: float,
        history: list[dict[str, Any]] | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[list[dict[str, Any]], str, str]:
        """Generate button: advise (if applied), render, append the images to the chat."""
        user = f"Generate: {messages.inline_code(positive)}"
        try:
            rendered: Rendered = self.service.generate(
                positive,
                negative,
                _settings(sampler, steps, cfg, width, height, seed, batch),
                use_assistant=bool(apply_changes),
                progress=_progress(progress),
                cancel=self._cancel_flag(request, reset=True),
            )
        except Cancelled as err:
            return self._cancelled(history, user, err), positive, negative
        text = "\n\n".join(
            [
                messages.advice_markdown(rendered.advice),
                messages.render_markdown(rendered.seeds, rendered.paths, rendered.notes),
            ]
        )
        history = self._append(history, user, text, rendered.paths)
        new_positive = rendered.advice.positive if rendered.advice else positive
        new_negative = rendered.advice.negative if rendered.advice else negative
        return history, new_positive, new_negative

    def _cancelled(
        self, history: list[dict[str, Any]] | None, user: str, err: Cancelled
    ) -> list[dict[str, Any]]:
        """A cancel is not an error: a toast, and a note in the conversation."""
        gr.Warning(str(err) or "Cancelled.")
        return self._append(history, user, f"⏹ {err}", [])

    def _render_plan(
        self,
        render: Callable[..., PlanRendered],
        user: str,
        history: list[dict[str, Any]] | None,
        request: gr.Request,
        progress: gr.Progress,
    ) -> list[dict[str, Any]]:
        """Run one grid action (blind box, A/B, sweep) with this session's progress and cancel."""
        try:
            result = render(progress=_progress(progress), cancel=self._cancel_flag(request, reset=True))
        except Cancelled as err:
            return self._cancelled(history, user, err)
        return self._plan_reply(result, user, history)

    def _plan_reply(
        self, result: PlanRendered, user: str, history: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]]:
        text = messages.plan_markdown(result.kind, result.plan, result.grid_path)
        if result.advice is not None and (result.advice.changes or result.advice.warnings):
            text = messages.advice_markdown(result.advice) + "\n\n" + text
        return self._append(history, user, text, [result.grid_path])

    def blindbox(
        self,
        positive: str,
        negative: str,
        apply_changes: bool,
        count: float,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
        batch: float,
        history: list[dict[str, Any]] | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> list[dict[str, Any]]:
        """Blind box button: ``count`` random weight mixes as one labelled grid in the chat."""
        user = f"Blind box ×{int(count)}: {messages.inline_code(positive)}"
        render = functools.partial(
            self.service.blindbox,
            positive,
            negative,
            _settings(sampler, steps, cfg, width, height, seed, 1),
            n=int(count),
            seed=None if int(seed) == -1 else int(seed),
            use_assistant=bool(apply_changes),
        )
        return self._render_plan(render, user, history, request, progress)

    def ab(
        self,
        positive: str,
        negative: str,
        apply_changes: bool,
        a: str,
        b: str,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
        batch: float,
        history: list[dict[str, Any]] | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> list[dict[str, Any]]:
        """A/B button: the same seed with variant A and variant B, side by side."""
        user = f"A/B: {messages.inline_code(positive)}"
        render = functools.partial(
            self.service.ab,
            positive,
            negative,
            _settings(sampler, steps, cfg, width, height, seed, 1),
            a=(a or "").strip() or None,
            b=(b or "").strip() or None,
            use_assistant=bool(apply_changes),
        )
        return self._render_plan(render, user, history, request, progress)

    def sweep(
        self,
        positive: str,
        negative: str,
        apply_changes: bool,
        x_axis: str,
        y_axis: str,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
        batch: float,
        history: list[dict[str, Any]] | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> list[dict[str, Any]]:
        """Sweep button: an X/Y grid over LoRA weights, CFG, steps, seeds or samplers."""
        axes = f"X {messages.inline_code(x_axis)}" + (f", Y {messages.inline_code(y_axis)}" if y_axis else "")
        user = f"Sweep {axes}: {messages.inline_code(positive)}"
        render = functools.partial(
            self.service.sweep,
            positive,
            negative,
            _settings(sampler, steps, cfg, width, height, seed, 1),
            x_axis=x_axis or "",
            y_axis=y_axis or "",
            use_assistant=bool(apply_changes),
        )
        return self._render_plan(render, user, history, request, progress)

    # -- library ----------------------------------------------------------------------------------

    def library(self, query: str, kind: str, base: str) -> tuple[Any, list[str], list[dict[str, Any]]]:
        """Cards matching the search box and filters, their names in card order, and the same
        entries as JSON (what API clients read)."""
        infos = self.service.loras(
            query or "",
            kind=None if kind in ("", "any") else kind,
            base=None if base in ("", "any") else base,
        )
        rows, names = cards.card_rows(infos, self.thumbs_dir, self.service.lora_hash)
        return gr.Dataset(samples=rows), names, cards.listing(infos, self.service.lora_hash)

    def refresh_library(
        self, query: str, kind: str, base: str
    ) -> tuple[Any, list[str], list[dict[str, Any]], str]:
        """Rescan the LoRA folders, then show the cards again."""
        count = self.service.refresh_loras()
        dataset, names, listing = self.library(query, kind, base)
        return (
            dataset,
            names,
            listing,
            f"Library rescanned: {count} loadable LoRA{'s' if count != 1 else ''}.",
        )

    def insert_card(self, index: int | None, names: list[str], positive: str) -> str:
        """A card click: ``<lora:name:preferred_weight>`` and its trigger words go into the prompt."""
        if index is None or not names or not 0 <= int(index) < len(names):
            return positive
        info = self.service.library.resolve(names[int(index)])
        return prompts.insert_lora(positive or "", info)

    def insert_lora(self, name: str, positive: str) -> str:
        """Insert a LoRA by name (what a card click does; for API clients)."""
        info = self.service.library.resolve((name or "").strip())
        return prompts.insert_lora(positive or "", info)

    # -- prompt tools -----------------------------------------------------------------------------

    def sliders(self, positive: str) -> list[Any]:
        """One visible slider per LoRA tag of the prompt (hidden ones beyond)."""
        specs = prompts.sliders_for(positive or "")
        updates: list[Any] = []
        for i in range(prompts.MAX_SLIDERS):
            if i < len(specs):
                updates.append(
                    gr.Slider(visible=True, label=specs[i].name, value=max(-2.0, min(2.0, specs[i].weight)))
                )
            else:
                updates.append(gr.Slider(visible=False))
        return updates

    def weight_setter(self, index: int) -> Callable[[float, str], str]:
        """The release handler of slider ``index``: rewrites that LoRA tag's weight in the prompt."""

        def set_weight(weight: float, positive: str) -> str:
            return prompts.set_lora_weight(positive or "", index, float(weight))

        set_weight.__name__ = f"set_weight_{index + 1}"
        return set_weight

    def recipe(self, name: str, positive: str, negative: str) -> tuple[Any, ...]:
        """Apply a recipe: its LoRA tags and prompt terms added, its negative terms appended, and
        the settings it names (sampler, steps, CFG, size, seed) set; the others are left alone."""
        if not name:
            return (positive, negative, "", *[gr.skip()] * 6)
        recipe = self.service.recipes().get(name)
        if recipe is None:
            raise gr.Error(f"Unknown recipe '{name}'; choose one from the list.", print_exception=False)
        new_positive = prompts.recipe_prompt(positive or "", recipe.tags(), recipe.prompt)
        new_negative = prompts.recipe_prompt(negative or "", "", recipe.negative)
        chosen = recipe.settings
        values = [chosen.sampler, chosen.steps, chosen.cfg, chosen.width, chosen.height, chosen.seed]
        settings = [gr.skip() if value is None else value for value in values]
        return (new_positive, new_negative, recipe.description or "", *settings)

    # -- status and history -----------------------------------------------------------------------

    def status(self) -> tuple[str, Any, Any, Any]:
        """Header line, banner visibility, sampler choices; the poll timer stops once loaded."""
        info = self.service.engine_info
        samplers = KNOWN_SAMPLERS
        if info is not None and self.service.ready:
            try:
                samplers = self.service.samplers()
            except LoraMixerError:
                samplers = KNOWN_SAMPLERS
        return (
            self.service.status_line(),
            gr.Markdown(visible=self.service.uses_tiny_model),
            gr.Dropdown(choices=samplers),
            gr.Timer(active=not self.service.loaded),
        )

    def switch_model(self, model: str) -> tuple[Any, str, Any, Any]:
        """The base-model dropdown: load the chosen model (renders wait), then refresh the header.

        When it cannot load, the running model stays, the dropdown goes back to it and a
        ``gr.Warning`` says why (never an error page: the app keeps working)."""
        try:
            info = self.service.switch_model(model)
            gr.Info(f"Base model: {info.model_name} ({info.base}).")
        except LoraMixerError as err:
            gr.Warning(str(err))
        _status, banner, samplers, _timer = self.status()
        return gr.Dropdown(value=self.service.current_model()), self.service.status_line(), banner, samplers

    def set_options(self, clip_skip: float, rng: str, vae: str) -> tuple[Any, Any, Any, str]:
        """Clip skip, RNG and VAE for later renders (server-wide, as A1111's settings); a VAE that
        cannot load leaves the current one and a warning says why."""
        wanted_vae = vae if vae != (self.service.settings.vae or "Automatic") else None
        try:
            self.service.set_options(clip_skip=int(clip_skip), rng=rng, vae=wanted_vae)
        except LoraMixerError as err:
            gr.Warning(str(err))
        options = self.service.options()
        return (
            gr.Slider(value=options["CLIP_stop_at_last_layers"]),
            gr.Dropdown(value=options["randn_source"]),
            gr.Dropdown(value=options["sd_vae"], choices=self.service.vae_choices()),
            self.service.status_line(),
        )

    def history(self) -> list[tuple[str, str]]:
        """Saved images, newest first, captioned with seed and prompt."""
        items = self.service.history(HISTORY_LIMIT)
        return [
            (
                item.path,
                f"seed {item.seed} · {item.prompt[:80]}" if item.seed is not None else item.prompt[:80],
            )
            for item in items
        ]


# ----------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------

CSS = """
#banner {background: #fef3c7; border: 1px solid #f59e0b; border-radius: 8px; padding: 4px 12px;}
#library-cards img {max-width: 72px; max-height: 72px;}
#library-cards .lm-card {text-align: left; line-height: 1.5;}
#library-cards td {cursor: pointer;}
"""

CHAT_EXAMPLES = [
    "1girl, cat ears, <lora:catgirl_v1:0.8>, <lora:cyberpunk_style:0.7>",
    "/blindbox 4",
    "/loras",
    "/help",
    "一个猫耳女孩, <lora:catgirl_v1:0.8>",
]


def build_demo(service: Service) -> gr.Blocks:
    """The Blocks app over ``service`` (not launched)."""
    h = Handlers(service)
    recipe_names: list[str]
    try:
        recipe_names = sorted(service.recipes())
    except LoraMixerError as err:
        log.warning("recipes not loaded: %s", err)
        recipe_names = []
    initial_rows, initial_names = cards.card_rows(service.loras(), h.thumbs_dir, service.lora_hash)

    with gr.Blocks(title="LoRA Mixer", fill_width=True) as demo:
        apply_store = gr.BrowserState(True, storage_key="lora_mixer_apply")
        prompt_store = gr.BrowserState(["", ""], storage_key="lora_mixer_prompts")
        card_names = gr.State(initial_names)

        gr.Markdown(
            "# LoRA Mixer\nChat with an assistant that mixes LoRAs the way an experienced A1111 user would."
        )
        status = gr.Markdown(service.status_line(), elem_id="status")
        banner = gr.Markdown(messages.TINY_BANNER, visible=service.uses_tiny_model, elem_id="banner")

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
                    message = gr.Textbox(
                        placeholder="Prompt, question or /command …",
                        show_label=False,
                        scale=5,
                        lines=1,
                        max_lines=6,
                        elem_id="chat-input",
                    )
                    send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
                with gr.Row():
                    apply_changes = gr.Checkbox(True, label="Apply the assistant's changes", elem_id="apply")
                    cancel = gr.Button(
                        "Cancel", variant="stop", size="sm", scale=0, min_width=90, elem_id="cancel"
                    )
                gr.Examples(CHAT_EXAMPLES, inputs=[message], label="Try")

            with gr.Column(scale=2, min_width=360), gr.Tabs():
                with gr.Tab("Prompt", id="prompt-tab"):
                    positive = gr.Textbox(label="Prompt", lines=4, elem_id="positive")
                    negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="negative")
                    weight_sliders = [
                        gr.Slider(-2.0, 2.0, value=1.0, step=0.05, visible=False, label=f"LoRA {i + 1}")
                        for i in range(prompts.MAX_SLIDERS)
                    ]
                    with gr.Row():
                        generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                        blindbox_btn = gr.Button("Blind box", elem_id="blindbox")
                        ab_btn = gr.Button("A/B", elem_id="ab")
                        sweep_btn = gr.Button("Sweep", elem_id="sweep")
                    with gr.Accordion("Blind box, A/B and sweep options", open=False):
                        blind_count = gr.Slider(
                            2,
                            BLINDBOX_MAX_CELLS,
                            value=BLINDBOX_DEFAULT_CELLS,
                            step=1,
                            label="Blind box: images",
                        )
                        with gr.Row():
                            ab_a = gr.Textbox(
                                label="A/B: variant A", placeholder="e.g. catgirl_v1 (blank: with LoRAs)"
                            )
                            ab_b = gr.Textbox(
                                label="A/B: variant B", placeholder="e.g. catgirl_v2 (blank: without)"
                            )
                        with gr.Row():
                            sweep_x = gr.Textbox(label="Sweep X axis", placeholder="catgirl_v1=0.2..1.0x5")
                            sweep_y = gr.Textbox(label="Sweep Y axis", placeholder="cfg=4,7,10")
                    recipe = gr.Dropdown(
                        choices=["", *recipe_names],
                        value="",
                        label="Recipe",
                        elem_id="recipe",
                        allow_custom_value=False,
                    )
                    recipe_note = gr.Markdown()
                    with gr.Accordion("Settings", open=False):
                        sampler = gr.Dropdown(
                            KNOWN_SAMPLERS,
                            value=DEFAULT_SAMPLER,
                            label="Sampler",
                            allow_custom_value=True,
                        )
                        with gr.Row():
                            steps = setting_slider(
                                *LIMITS["steps"], value=20, step=1, label="Steps", elem_id="steps"
                            )
                            cfg = setting_slider(
                                1.0, LIMITS["cfg"][1], value=7.0, step=0.5, label="CFG scale"
                            )
                        with gr.Row():
                            width = setting_slider(
                                64, 1536, value=512, step=8, label="Width", elem_id="width"
                            )
                            height = setting_slider(
                                64, 1536, value=512, step=8, label="Height", elem_id="height"
                            )
                        with gr.Row():
                            seed = gr.Number(-1, label="Seed (-1 = random)", precision=0)
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
                        "Click a card to insert its tag and trigger words into the prompt."
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
                        label="Saved images (newest first)", columns=4, height=560, elem_id="history"
                    )

        library_listing = gr.JSON(visible=False)
        settings_inputs = [sampler, steps, cfg, width, height, seed, batch]
        render_events = []

        # -- events --------------------------------------------------------------------------------
        chat_event = gr.on(
            [send.click, message.submit],
            gpu(friendly(h.chat)),
            inputs=[message, chatbot, positive, negative, apply_changes, *settings_inputs],
            outputs=[chatbot, message, positive, negative],
            api_name="chat",
            show_progress_on=[chatbot],
        )
        render_events.append(chat_event)
        render_events.append(
            generate_btn.click(
                gpu(friendly(h.generate)),
                inputs=[positive, negative, apply_changes, *settings_inputs, chatbot],
                outputs=[chatbot, positive, negative],
                api_name="generate",
                show_progress_on=[chatbot],
            )
        )
        render_events.append(
            blindbox_btn.click(
                gpu(friendly(h.blindbox)),
                inputs=[positive, negative, apply_changes, blind_count, *settings_inputs, chatbot],
                outputs=[chatbot],
                api_name="blindbox",
                show_progress_on=[chatbot],
            )
        )
        render_events.append(
            ab_btn.click(
                gpu(friendly(h.ab)),
                inputs=[positive, negative, apply_changes, ab_a, ab_b, *settings_inputs, chatbot],
                outputs=[chatbot],
                api_name="ab",
                show_progress_on=[chatbot],
            )
        )
        render_events.append(
            sweep_btn.click(
                gpu(friendly(h.sweep)),
                inputs=[positive, negative, apply_changes, sweep_x, sweep_y, *settings_inputs, chatbot],
                outputs=[chatbot],
                api_name="sweep",
                show_progress_on=[chatbot],
            )
        )
        # The flag stops the running render after its current step; `cancels` also drops this
        # session's renders still waiting in the queue.
        cancel.click(
            friendly(h.cancel),
            None,
            None,
            api_name="cancel",
            concurrency_limit=None,
            queue=False,
            cancels=render_events,
        )

        gr.on(
            [search.submit, kind.change, base.change],
            friendly(h.library),
            inputs=[search, kind, base],
            outputs=[library_cards, card_names, library_listing],
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
            outputs=[positive],
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
            slider.release(
                friendly(h.weight_setter(i)),
                inputs=[slider, positive],
                outputs=[positive],
                api_name=f"set_weight_{i + 1}",
                concurrency_limit=None,
                show_progress="hidden",
            )
        recipe.change(
            friendly(h.recipe),
            inputs=[recipe, positive, negative],
            outputs=[positive, negative, recipe_note, sampler, steps, cfg, width, height, seed],
            api_name="recipe",
            concurrency_limit=None,
        )
        history_refresh.click(h.history, None, [history_gallery], api_name="history", concurrency_limit=None)

        # -- per-session state: the apply choice and the prompts survive a reload ------------------
        apply_changes.change(
            lambda value: value,
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

        def _restore(apply_value: Any, stored: Any) -> tuple[bool, str, str]:
            apply_flag = bool(apply_value) if isinstance(apply_value, bool) else True
            p, n = ([*stored, "", ""])[:2] if isinstance(stored, list) else ("", "")
            return apply_flag, str(p or ""), str(n or "")

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


# ----------------------------------------------------------------------------------------------
# Launch
# ----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python app.py", description="LoRA Mixer web app and A1111-compatible API"
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on (0.0.0.0 for all)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        help="port (default 7860)",
    )
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument(
        "--model", help="base model: hub id, diffusers folder or .safetensors (default: tiny demo pipeline)"
    )
    parser.add_argument(
        "--lora-dir", action="append", dest="lora_dirs", metavar="DIR", help="LoRA folder (repeatable)"
    )
    parser.add_argument(
        "--models-dir", help="checkpoints to switch between in the UI (default: models/Stable-diffusion)"
    )
    parser.add_argument("--outputs", help="folder for generated images (default: ./outputs)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 … (default: auto)")
    add_model_options(parser)  # --clip-skip --rng --emphasis --vae --vae-dir --embeddings-dir --low-vram
    parser.add_argument("--config", help="YAML settings file (default: lora-mixer.yaml if present)")
    parser.add_argument(
        "--max-queue", type=int, default=32, help="waiting requests before new ones are refused"
    )
    parser.add_argument("--max-file-size", default="10mb", help="largest upload accepted")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Defaults < YAML < environment < these command-line flags."""
    settings = load_settings(args.config)
    settings = settings.replace(
        model=args.model,
        lora_dirs=tuple(args.lora_dirs) if args.lora_dirs else None,
        outputs_dir=args.outputs,
        device=args.device,
        models_dir=args.models_dir,
    )
    return model_settings(settings, args)


def blocked_paths(settings: Settings) -> list[str]:
    """Folders the web server must never serve: LoRA folders, a local model, the models folder."""
    paths = [str(Path(d).expanduser().resolve()) for d in settings.lora_dirs]
    for model in (settings.model, settings.models_dir):
        if model and Path(model).expanduser().exists():
            paths.append(str(Path(model).expanduser().resolve()))
    return paths


def launch(service: Service, args: argparse.Namespace) -> None:
    """Build the UI, add the API routes, serve both on one port, then load the engine.

    The pipeline loads in a background thread *after* the server listens, so the page answers
    at once (torch imports would otherwise slow Gradio's start); renders wait for it. Blocks
    until the server stops (Ctrl+C).
    """
    from assistant import api

    demo = build_demo(service)
    demo.queue(default_concurrency_limit=1, max_size=args.max_queue)
    outputs = service.outputs_dir
    outputs.mkdir(parents=True, exist_ok=True)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=args.max_file_size,
        allowed_paths=[str(outputs), str(thumbs_dir(service.settings))],
        blocked_paths=blocked_paths(service.settings),
        enable_monitoring=False,
        show_error=False,
        ssr_mode=False,
        footer_links=["api", "gradio"],
        app_kwargs=api.app_kwargs(service, max_waiting=args.max_queue),
        css=CSS,
        theme=gr.themes.Soft(primary_hue="indigo", secondary_hue="pink"),
        prevent_thread_lock=True,
    )
    service.start(background=True)
    demo.block_thread()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_args(args)
    except LoraMixerError as err:
        log.error("%s", err)
        return 2
    launch(Service(settings), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
