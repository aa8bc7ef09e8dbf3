"""Grids: a blind box, A/B or sweep of the prompt, planned one way and rendered.

:meth:`Plans.plan` is the one way the buttons, the chat, the API and the CLI build a grid: the
base request prepared like a Generate (with a drawn seed), then planned by :mod:`assistant.blend`
(a recipe's ``range:`` values bound a blind box's draws; a sweep without an axis sweeps the
prompt's first LoRA). :meth:`Plans.blindbox`, :meth:`Plans.ab` and :meth:`Plans.sweep` plan and
render in one call.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

from .. import limits
from ..blend import BLINDBOX_DEFAULT_CELLS
from ..errors import PromptError
from ..types import Advice, GenerationRequest, format_weight
from .gate import ProgressFn
from .render_settings import RenderSettings
from .rendering import Rendering
from .results import PlanRendered

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..blend import Axis, Plan


class Plans(Rendering):
    """Blind box, A/B and sweep: planned by :mod:`assistant.blend`, rendered by :meth:`render_plan`."""

    def blindbox(
        self,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        n: int = BLINDBOX_DEFAULT_CELLS,
        seed: int | None = None,
        use_assistant: bool = True,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> PlanRendered:
        """``n`` random LoRA-weight mixes of the prompt, rendered as a labelled grid."""
        plan, advice, _lead = self.plan(
            "blindbox", positive, negative, settings, use_assistant=use_assistant, n=int(n), seed=seed
        )
        return self.render_plan(plan, advice, progress=progress, cancel=cancel)

    def ab(
        self,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        a: str | None = None,
        b: str | None = None,
        use_assistant: bool = True,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> PlanRendered:
        """An A/B strip at one fixed seed (see :func:`assistant.blend.ab` for ``a``/``b``)."""
        plan, advice, _lead = self.plan(
            "ab", positive, negative, settings, use_assistant=use_assistant, a=a, b=b
        )
        return self.render_plan(plan, advice, progress=progress, cancel=cancel)

    def sweep(
        self,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        x_axis: str | Axis = "",
        y_axis: str | Axis = "",
        use_assistant: bool = True,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> PlanRendered:
        """An X/Y sweep; axes in :func:`assistant.blend.parse_axis` syntax, e.g. ``cfg=4,7,10``
        (none: the prompt's first LoRA from 0 to 1)."""
        plan, advice, _lead = self.plan(
            "sweep", positive, negative, settings, use_assistant=use_assistant, x_axis=x_axis, y_axis=y_axis
        )
        return self.render_plan(plan, advice, progress=progress, cancel=cancel)

    def plan(
        self,
        kind: str,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        use_assistant: bool = True,
        **options: Any,
    ) -> tuple[Plan, Advice | None, str]:
        """A blind box, A/B or sweep of the prompt, not rendered: ``(plan, advice, lead)``.

        The one way the buttons, the chat, the API and the CLI build a grid: the base request is
        prepared like a Generate (advice or the prompt as written, a drawn seed), then
        :mod:`assistant.blend` plans it with ``options`` (``n``, ``seed``, ``ranges`` … for a blind
        box, and ``recipe``: a recipe whose ``range:`` values bound the draws of its LoRAs that the
        prompt has; ``a``, ``b``, ``variants`` for an A/B; ``x_axis``, ``y_axis`` — text or an
        Axis — for a sweep). ``lead`` says what was assumed (a sweep without an axis sweeps the
        first LoRA, a recipe's ranges were used).
        """
        from .. import blend

        request, advice = self._plan_base(positive, negative, settings, use_assistant)
        lead = ""
        if kind == "blindbox":
            recipe_ranges, lead = self._recipe_ranges(options.pop("recipe", None), request)
            options["ranges"] = {**recipe_ranges, **(options.get("ranges") or {})}
            plan = blend.blind_box(request, **options)
        elif kind == "ab":
            a, b = options.pop("a", None), options.pop("b", None)
            plan = blend.ab(request, a or None, b or None, library=self.library, **options)
        elif kind == "sweep":
            x, y = _axis(options.pop("x_axis", "")), _axis(options.pop("y_axis", ""))
            if x is None and y is None:
                x, lead = _default_sweep_axis(request)
            # an axis LoRA may be off the prompt: the library is asked
            plan = blend.sweep(request, x, y, library=self.library, **options)
        else:
            raise PromptError(f"unknown action '{kind}'; use generate, blindbox, ab or sweep")
        return plan, advice, lead

    def _recipe_ranges(
        self, name: str | None, request: GenerationRequest
    ) -> tuple[dict[str, tuple[float, float]], str]:
        """A recipe's ``range:`` values for the LoRAs of ``request`` (by file name), and a line
        saying so; nothing for no recipe, an unknown one or one without ranges."""
        if not name:
            return {}, ""
        recipe = self.recipes().get(name)
        if recipe is None:
            return {}, ""
        planned = {lora.name.casefold(): lora.name for lora in request.loras}
        ranges = {
            planned[key]: bounds
            for lora_name, bounds in recipe.ranges().items()
            if (key := lora_name.casefold()) in planned
        }
        if not ranges:
            return {}, ""
        shown = ", ".join(f"`{n}` {format_weight(lo)}..{format_weight(hi)}" for n, (lo, hi) in ranges.items())
        return ranges, f"Weights drawn within the recipe **{recipe.name}**'s ranges: {shown}."

    def _plan_base(
        self, positive: str, negative: str, settings: RenderSettings | None, use_assistant: bool
    ) -> tuple[GenerationRequest, Advice | None]:
        request, advice, _notes = self.prepare(
            positive, negative, (settings or RenderSettings()).validated(), use_assistant=use_assistant
        )
        if request.seed == -1:
            request = dataclasses.replace(request, seed=limits.random_seed())
        return request, advice


def _default_sweep_axis(request: GenerationRequest) -> tuple[Any, str]:
    """The axis of a sweep asked for without one: the prompt's first LoRA from 0 to 1."""
    from .. import blend

    if not request.loras:
        raise PromptError(
            "a sweep needs an axis, e.g. 'catgirl_v1=0.2..1.0x5' or 'cfg=4,7,10', or a <lora:…> tag in "
            "the prompt to sweep (open 'Blind box, A/B and sweep options' to set the axes)"
        )
    name = request.loras[0].name
    count = limits.SWEEP_DEFAULT_VALUES
    lead = (
        f"No sweep axis was set, so this sweeps the prompt's first LoRA, `{name}`, from 0 to 1 in "
        f"{limits.SWEEP_DEFAULT_VALUES} steps (set the axes under 'Blind box, A/B and sweep options')."
    )
    return blend.weight_axis(name, [i / (count - 1) for i in range(count)]), lead


def _axis(axis: str | Axis | None) -> Axis | None:
    """A sweep axis as the UI and API send it (text, :func:`assistant.blend.parse_axis` syntax) or
    as the chat read it already (an Axis); None for no axis."""
    from .. import blend

    if axis is None or isinstance(axis, blend.Axis):
        return axis
    return blend.parse_axis(axis) if axis.strip() else None
