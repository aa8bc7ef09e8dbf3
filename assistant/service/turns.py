"""Turns: what one chat message or button asks for, answered before anything renders.

:meth:`Turns.chat_turn` answers a chat message (:func:`assistant.chat.respond` decides the action
once) and :meth:`Turns.action_turn` a button; both return a :class:`~assistant.service.Turn` at
once, with the :class:`~assistant.service.RenderJob` the UI runs in its queue. An image sent alone
is read back (A1111's PNG Info + "Send to txt2img", :meth:`Turns.image_turn`, :func:`restore_fill`).
:meth:`Turns.chat` answers and renders in one call (scripts and tests).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import limits
from ..blend import BLINDBOX_DEFAULT_CELLS
from ..errors import LoraMixerError
from ..img2img import sampling_steps
from ..messages import AS_WRITTEN, IMAGE_UNUSED, describe_plan, format_advice, img2img_line, render_summary
from ..types import Advice, GenerationRequest, InitImage
from .gate import ProgressFn, WaitFn
from .plans import Plans
from .render_settings import RenderSettings
from .results import ChatTurn, PlanRendered, Rendered, RenderJob, Turn

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..blend import Axis
    from ..chat import ChatAction, ChatMemory, ChatReply
    from ..pnginfo import ImageReport

log = logging.getLogger(__name__)


class Turns(Plans):
    """Chat messages and buttons turned into a reply and a render job (not run yet)."""

    def chat_turn(
        self,
        message: str,
        *,
        positive: str = "",
        negative: str = "",
        apply_changes: bool = True,
        settings: RenderSettings | None = None,
        memory: ChatMemory | None = None,
        image: str | Path | None = None,
        recipe: str | None = None,
    ) -> Turn:
        """The assistant's answer to one chat message, and the render it implies (not run yet).

        A prompt (or ``/recipe``) renders the rewritten prompt when ``apply_changes``, else the
        prompt as written; ``/blindbox``, ``/ab`` and ``/sweep`` render a grid of the prompt box.
        ``image`` is a file sent with the message: with text it is the img2img source of what the
        text renders (and goes to the Init image slot); alone, its parameters are read and put back
        (A1111's PNG Info + "Send to txt2img"). ``settings.init_image`` (the slot's) is the source
        otherwise. Never raises a :class:`LoraMixerError`: a problem (a bad setting, an unknown
        LoRA, an unreadable image) is explained in the markdown, and then nothing renders. Fast (no
        engine): the UI shows the answer at once and the render's progress under it.
        """
        from ..chat import ChatContext, ChatMemory, respond

        settings = settings or RenderSettings()
        fill: dict[str, Any] = {}
        lead = ""
        if image is not None:
            name = Path(image).name
            if not (message or "").strip():
                return self.image_turn(image, positive, negative, had_init=settings.init_image is not None)
            try:
                init = self._read_init(image)
            except LoraMixerError as err:
                return Turn(f"⚠ {err}", positive, negative, "img2img")
            settings, lead = self._attached_size(settings, init)
            settings = dataclasses.replace(settings, init_image=init)
            fill = {"init_image": str(image), "width": settings.width, "height": settings.height}
            lead = f"Your image `{name}` is the img2img source (it is now in the **Init image** slot). {lead}"

        try:
            recipes = self.recipes()
        except LoraMixerError as err:
            log.warning("recipes unavailable in chat: %s", err)
            recipes = {}
        context = ChatContext(
            library=self.library,
            positive=positive or "",
            negative=negative or "",
            base=self._base(),
            apply_changes=apply_changes,
            recipes=recipes,
            memory=memory if memory is not None else ChatMemory(),
            image="attached" if image is not None else ("slot" if settings.init_image is not None else ""),
            strength=settings.strength if settings.init_image is not None else limits.DENOISING_DEFAULT,
        )
        reply = respond(message, context)
        intent = reply.intent
        if intent.kind == "img2img" and intent.args.get("strength") is not None:
            settings = dataclasses.replace(settings, denoising_strength=float(intent.args["strength"]))
            fill["denoising_strength"] = float(intent.args["strength"])
        turn = Turn(
            markdown=reply.text,
            positive=reply.positive,
            negative=reply.negative,
            intent=intent.kind,
            advice=reply.advice,
            memory=reply.memory,
            fill=fill,
        )
        if reply.action is None:  # an answer, an error, or an empty prompt answered with help
            if image is not None and "error" not in intent.args:
                turn = dataclasses.replace(turn, markdown=f"{turn.markdown}\n\n{IMAGE_UNUSED}")
            return turn
        try:
            settings = settings.validated()
            job = self._chat_job(reply.action, reply, settings, apply_changes, recipe=recipe)
        except LoraMixerError as err:
            return dataclasses.replace(turn, markdown=f"{reply.text}\n\n⚠ {err}")
        if settings.init_image is not None:
            lead = f"{lead}\n\n{img2img_line(settings)}".strip()
        markdown = f"{lead}\n\n{reply.text}" if lead else reply.text
        return dataclasses.replace(turn, markdown=markdown, job=job)

    def _read_init(self, path: str | Path) -> InitImage:
        from .. import images

        name = Path(path).name
        what = f"image '{name}'"
        return images.init_image(images.read_file(path, what=what), name=name, what=what)

    @staticmethod
    def _attached_size(settings: RenderSettings, init: InitImage) -> tuple[RenderSettings, str]:
        """A photo sent in the chat renders in its own shape, at the Width x Height area (instead of
        squashed into the sliders' shape); the lead says so."""
        from ..img2img import fit_size

        ratio = init.width / init.height
        wanted = settings.width / settings.height
        if abs(ratio / wanted - 1) <= 0.02:
            return settings, ""
        width, height = fit_size(init.width, init.height, settings.width * settings.height)
        note = (
            f"It renders at **{width}x{height}** — its own shape, about the Width × Height area "
            f"({settings.width}x{settings.height})."
        )
        return dataclasses.replace(settings, width=width, height=height), note

    def image_turn(
        self, image: str | Path, positive: str, negative: str, *, had_init: bool, compact: bool = False
    ) -> Turn:
        """An image sent alone (or dropped on the prompt panel): what made it (PNG Info), and its
        parameters for the boxes and settings (``Turn.fill``; "Send to txt2img"). ``had_init``:
        the Init image slot holds a picture (emptied for a txt2img image). Never raises a
        :class:`LoraMixerError`: an unreadable image is explained in the markdown."""
        from .. import images

        name = Path(image).name
        try:
            data = images.read_file(image, what=f"image '{name}'")
            report = self.describe_image(data, name=name)
        except LoraMixerError as err:
            return Turn(f"⚠ {err}", positive, negative, "pnginfo")
        if not report.found:
            return Turn(report.markdown(), positive, negative, "pnginfo")
        fill = restore_fill(report, had_init=had_init)
        markdown = report.markdown(compact=compact)
        if fill.get("init_image") == "":
            markdown += "\n\nThe **Init image** slot was emptied: this image was made by txt2img."
        elif "denoising_strength" in fill and report.settings.get("hires") is None:
            markdown += (
                "\n\nIt was an **img2img** render (denoising strength "
                f"{fill['denoising_strength']:g}): put its source image in the **Init image** slot to "
                "redo it."
            )
        return Turn(markdown, report.prompt, report.negative, "pnginfo", fill=fill)

    def _chat_job(
        self,
        action: ChatAction,
        reply: ChatReply,
        settings: RenderSettings,
        apply_changes: bool,
        *,
        recipe: str | None = None,
    ) -> RenderJob:
        """The render a chat reply asks for: its advice as a Generate, or a button's plan (a blind
        box within ``recipe``'s ranges, the recipe picked in the menu)."""
        if action.kind != "generate":
            options = dict(action.options)
            if action.kind == "blindbox":
                options["seed"] = settings.seed if settings.seed != -1 else None
                options["recipe"] = recipe
            turn = self.action_turn(
                action.kind, reply.positive, reply.negative, settings, apply_changes=apply_changes, **options
            )
            return turn.job  # type: ignore[return-value]
        advice = reply.advice
        assert advice is not None  # a "generate" action is only made for a reply with advice
        if apply_changes:
            request = settings.request(advice.positive, advice.negative, self.with_hashes(advice.plan))
            notes: list[str] = []
        else:
            request, _none, notes = self.prepare(
                advice.original_positive, advice.original_negative, settings, use_assistant=False
            )
        return self._generate_job(request, settings.n_iter, advice if apply_changes else None, notes)

    def _generate_job(
        self, request: GenerationRequest, n_iter: int, advice: Advice | None, notes: Sequence[str]
    ) -> RenderJob:
        _check_requests([request])

        def run(
            progress: ProgressFn | None = None,
            cancel: threading.Event | None = None,
            on_wait: WaitFn | None = None,
        ) -> Rendered:
            return self.render(
                request,
                n_iter=n_iter,
                advice=advice,
                notes=notes,
                progress=progress,
                cancel=cancel,
                on_wait=on_wait,
            )

        return RenderJob("generate", sampling_steps(request) * max(1, n_iter), run)

    def action_turn(
        self,
        kind: str,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        apply_changes: bool = True,
        n: int = BLINDBOX_DEFAULT_CELLS,
        seed: int | None = None,
        a: str | None = None,
        b: str | None = None,
        x_axis: str | Axis = "",
        y_axis: str | Axis = "",
        recipe: str | None = None,
    ) -> Turn:
        """A button (Generate, Blind box, A/B, Sweep): the advice and the plan now, the render later.

        Raises :class:`LoraMixerError` for what cannot render at all (bad settings, an empty
        prompt, an impossible plan), before anything is queued. A sweep with no axis sweeps the
        prompt's first LoRA from 0 to 1 and says so.
        """

        settings = (settings or RenderSettings()).validated()
        if kind == "generate":
            request, advice, notes = self.prepare(positive, negative, settings, use_assistant=apply_changes)
            job = self._generate_job(request, settings.n_iter, advice, notes)
            text = format_advice(advice) if advice is not None else AS_WRITTEN
            return Turn(text, *self._boxes(advice, positive, negative), kind, advice, job=job)
        options: dict[str, Any] = {
            "blindbox": {"n": int(n), "seed": seed, "recipe": recipe},
            "ab": {"a": a, "b": b},
            "sweep": {"x_axis": x_axis, "y_axis": y_axis},
        }.get(kind, {})
        plan, advice, lead = self.plan(
            kind, positive, negative, settings, use_assistant=apply_changes, **options
        )
        text = format_advice(advice) if advice is not None else AS_WRITTEN
        text = "\n\n".join(p for p in (lead, text, describe_plan(plan)) if p)

        def run(
            progress: ProgressFn | None = None,
            cancel: threading.Event | None = None,
            on_wait: WaitFn | None = None,
        ) -> PlanRendered:
            return self.render_plan(plan, advice, progress=progress, cancel=cancel, on_wait=on_wait)

        _check_requests(plan.requests)
        steps = sum(sampling_steps(cell.request) for cell in plan.cells)
        job = RenderJob(kind, steps, run)
        return Turn(text, *self._boxes(advice, positive, negative), kind, advice, job=job)

    @staticmethod
    def _boxes(advice: Advice | None, positive: str, negative: str) -> tuple[str, str]:
        return (advice.positive, advice.negative) if advice is not None else (positive, negative)

    def chat(
        self,
        message: str,
        *,
        positive: str = "",
        negative: str = "",
        apply_changes: bool = True,
        settings: RenderSettings | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        memory: ChatMemory | None = None,
    ) -> ChatTurn:
        """One chat turn, answered and rendered in one call (the turn API for scripts and tests)."""
        turn = self.chat_turn(
            message,
            positive=positive,
            negative=negative,
            apply_changes=apply_changes,
            settings=settings,
            memory=memory,
        )
        result = ChatTurn(
            markdown=turn.markdown,
            positive=turn.positive,
            negative=turn.negative,
            intent=turn.intent,
            advice=turn.advice,
            memory=turn.memory,
        )
        if turn.job is None:
            return result
        try:
            rendered = turn.job.run(progress, cancel)
        except LoraMixerError as err:
            return dataclasses.replace(result, markdown=f"{turn.markdown}\n\n⚠ {err}")
        summary, images = render_summary(rendered)
        return dataclasses.replace(
            result, markdown=f"{turn.markdown}\n\n{summary}", images=images, rendered=rendered
        )


def _check_requests(requests: Sequence[GenerationRequest]) -> None:
    """The engine's own checks (sampler name, sizes, weights) before anything is queued, so a
    request that cannot render is refused at once, not after waiting for its turn (pure: no torch)."""
    from ..engine.checks import check_request

    for request in requests:
        check_request(request)


def restore_fill(report: ImageReport, *, had_init: bool) -> dict[str, Any]:
    """What "Send to txt2img" sets in the UI for an image's parameters (:attr:`Turn.fill`)."""
    values = dict(report.settings)
    fill: dict[str, Any] = {}
    for key in ("sampler", "steps", "cfg", "seed"):
        if key in values:
            fill[key] = values[key]
    if "size" in values:
        fill["width"], fill["height"] = values["size"]
    hires = values.get("hires")
    fill["hires"] = hires
    if "denoising_strength" in values:
        fill["denoising_strength"] = values["denoising_strength"]
    img2img = "denoising_strength" in values and hires is None
    if had_init and not img2img:
        fill["init_image"] = ""  # a txt2img image: rendering it again is txt2img
    return fill
