"""The app's event handlers: :class:`Handlers` is the chat and render buttons' flow
(:class:`~assistant.ui.flow.FlowHandlers`) plus the panels beside it — the library cards, the
prompt tools (LoRA weight sliders, the recipe menu), the model and options, the status line and the
history. Each converts component values, calls :class:`~assistant.service.Service` (the object
the ``/sdapi/v1`` routes call too) and formats the result; :mod:`assistant.ui.layout` wires them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from .. import limits
from ..config import Settings
from ..errors import LoraMixerError
from ..service import Service
from . import cards, prompts
from .events import requester_of
from .flow import FlowHandlers

__all__ = ["HISTORY_LIMIT", "KNOWN_SAMPLERS", "Handlers", "thumbs_dir"]

#: Sampler names offered before the engine has loaded (replaced by the engine's list on load).
KNOWN_SAMPLERS = ["DPM++ 2M Karras", "DPM++ 2M", "DPM++ SDE Karras", "Euler a", "Euler", "DDIM"]
HISTORY_LIMIT = 40


def thumbs_dir(settings: Settings) -> Path:
    """Where library-card thumbnails are written (served; the LoRA folders are not)."""
    return Path(settings.cache_dir).expanduser().resolve() / "thumbs"


class Handlers(FlowHandlers):
    """Event handlers bound to one :class:`Service`; one conversation per session hash."""

    def __init__(self, service: Service, *, max_waiting: int = 32) -> None:
        super().__init__(service, max_waiting=max_waiting)
        self.thumbs_dir = thumbs_dir(service.settings)

    # -- library ----------------------------------------------------------------------------------

    def library(self, query: str, kind: str, base: str) -> tuple[Any, list[str], list[dict[str, Any]], str]:
        """Cards matching the search box and filters, their names in card order, the same entries
        as JSON (what API clients read), and the note above the cards (what matched, or nothing)."""
        kind_filter = None if kind in ("", "any") else kind
        base_filter = None if base in ("", "any") else base
        infos = self.service.loras(query or "", kind=kind_filter, base=base_filter)
        rows, names = cards.card_rows(infos, self.thumbs_dir, self.service.lora_hash)
        note = cards.search_note(
            query or "", kind_filter, base_filter, len(infos), len(self.service.library.all())
        )
        return gr.Dataset(samples=rows), names, cards.listing(infos, self.service.lora_hash), note

    def refresh_library(
        self, query: str, kind: str, base: str
    ) -> tuple[Any, list[str], list[dict[str, Any]], str]:
        """Rescan the LoRA folders, then show the cards again."""
        count = self.service.refresh_loras()
        dataset, names, listing, note = self.library(query, kind, base)
        rescanned = f"Library rescanned: {count} loadable LoRA{'s' if count != 1 else ''}."
        return dataset, names, listing, f"{rescanned} {note}"

    def insert_card(self, index: int | None, names: list[str], positive: str) -> tuple[str, str]:
        """A card click: ``<lora:name:preferred_weight>`` and its trigger words go into the prompt,
        and the note on the Library tab says what was added (and when the LoRA cannot run on the
        loaded model)."""
        if index is None or not names or not 0 <= int(index) < len(names):
            return positive, gr.skip()
        info = self.service.library.resolve(names[int(index)])
        new = prompts.insert_lora(positive or "", info)
        return new, cards.insert_note(info, positive or "", new, self.service.base)

    def insert_lora(self, name: str, positive: str) -> str:
        """Insert a LoRA by name (what a card click does; for API clients)."""
        info = self.service.library.resolve((name or "").strip())
        return prompts.insert_lora(positive or "", info)

    # -- prompt tools -----------------------------------------------------------------------------

    def sliders(self, positive: str) -> list[Any]:
        """One visible slider per LoRA tag of the prompt (hidden ones beyond)."""
        specs = prompts.sliders_for(positive or "")
        low, high = limits.LORA_WEIGHT
        updates: list[Any] = []
        for i in range(prompts.MAX_SLIDERS):
            if i < len(specs):
                label = cards.slider_label(specs[i].name, self.service.library, self.service.base)
                value = max(low, min(high, specs[i].weight))
                updates.append(gr.Slider(visible=True, label=label, value=value))
            else:
                updates.append(gr.Slider(visible=False))
        return updates

    def weight_setter(self, index: int) -> Callable[[float, str], str]:
        """The release handler of slider ``index``: rewrites that LoRA tag's weight in the prompt."""

        def set_weight(weight: float, positive: str) -> str:
            return prompts.set_lora_weight(positive or "", index, float(weight))

        set_weight.__name__ = f"set_weight_{index + 1}"
        return set_weight

    def recipe(
        self,
        name: str,
        positive: str,
        negative: str,
        *,
        applied: prompts.AppliedRecipe | None,
        sampler: str,
        steps: float,
        cfg: float,
        width: float,
        height: float,
        seed: float,
    ) -> tuple[Any, ...]:
        """Pick a recipe: the previous one's tags, terms and settings are taken back, this one's
        added, and the note says which settings it set and which it put back. "" removes it."""
        recipe = None
        if name:
            recipe = self.service.recipes().get(name)
            if recipe is None:
                raise gr.Error(f"Unknown recipe '{name}'; choose one from the list.", print_exception=False)
        current = dict(zip(prompts.RECIPE_SETTINGS, (sampler, steps, cfg, width, height, seed), strict=True))
        current = {k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in current.items()}
        new_positive, new_negative, updates, now, set_now, restored = prompts.apply_recipe(
            positive or "", negative or "", current, applied, recipe
        )
        lines = []
        if recipe is not None:
            lines.append(f"**{recipe.name}**" + (f" — {recipe.description}" if recipe.description else ""))
            if set_now:
                lines.append("Set by the recipe: " + ", ".join(set_now) + ".")
        elif applied is not None and applied.name:
            lines.append(f"Recipe **{applied.name}** taken back out of the prompt.")
        if restored:
            lines.append("Put back as before the recipe: " + ", ".join(restored) + ".")
        values = [updates.get(key, gr.skip()) for key in prompts.RECIPE_SETTINGS]
        return (new_positive, new_negative, "\n\n".join(lines), now, *values)

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
            gr.Markdown(self.service.banner(), visible=bool(self.service.banner())),
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

    def history(self, request: gr.Request) -> list[tuple[str, str]]:
        """Saved images, newest first, captioned with seed and prompt: the sender's own when the
        history is private (per user, or per browser session), every one when it is shared."""
        items = self.service.history(HISTORY_LIMIT, requester=requester_of(request))
        return [
            (
                item.path,
                f"seed {item.seed} · {item.prompt[:80]}" if item.seed is not None else item.prompt[:80],
            )
            for item in items
        ]
