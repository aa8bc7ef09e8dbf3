"""Rendering: a prompt prepared into a request, rendered through the engine gate, saved.

:meth:`Rendering.prepare` validates the settings and runs the assistant's rewrite
(:func:`assistant.advisor.advise`) or takes the prompt as written; :meth:`Rendering._render` runs
requests through the engine under the gate with progress over the whole action and cancel;
:meth:`Rendering.render` saves single renders and :meth:`Rendering.render_plan` a grid's cells,
grid and manifest — the one path for the app, the API and the CLI.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import limits
from ..engine.checks import wrap_seed
from ..errors import Cancelled, PromptError
from ..img2img import sampling_steps
from ..types import Advice, GenerationRequest, GenerationResult, PlannedLora
from .catalog import Catalog
from .gate import ProgressFn, WaitFn
from .outputs import Outputs
from .render_settings import RenderSettings
from .results import PlanRendered, Rendered

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..blend import Plan


class Rendering(Catalog, Outputs):
    """Advice, request building, the engine call and saving, for single renders and plans."""

    def advise(self, positive: str, negative: str = "", *, symptoms: Sequence[str] = ()) -> Advice:
        """The assistant's rewrite of a prompt pair, every change with its reason."""
        return self._advise_for(positive, negative, symptoms, self.settings.clip_skip)

    def plan_as_written(
        self, positive: str, negative: str = "", *, strict: bool = True
    ) -> tuple[tuple[PlannedLora, ...], list[str]]:
        """The LoRAs of a prompt applied exactly as written (assistant off), with notes
        (:func:`assistant.advisor.as_written`, the rule the CLI uses too)."""
        from ..advisor import as_written

        _positive, planned, notes = as_written(positive, negative, library=self.library, strict=strict)
        return planned, notes

    def prepare(
        self,
        positive: str,
        negative: str,
        settings: RenderSettings,
        *,
        use_assistant: bool = True,
        symptoms: Sequence[str] = (),
    ) -> tuple[GenerationRequest, Advice | None, list[str]]:
        """Validate settings, run the assistant (or resolve as written) and build the request."""
        settings = self.with_options(settings.validated())
        positive = positive or ""
        negative = negative or ""
        if not positive.strip() and settings.init_image is None:  # A1111 renders img2img without one
            raise PromptError(
                "the prompt is empty; describe what to draw, e.g. '1girl, cat ears, <lora:catgirl_v1:0.8>'"
            )
        # what reading the init image did (first frame of an animation, EXIF rotation …) is said
        image_notes = list(settings.init_image.notes) if settings.init_image is not None else []
        if use_assistant:
            # settings.clip_skip is the server's where the request names none (with_options)
            advice = self._advise_for(positive, negative, symptoms, settings.clip_skip)
            request = settings.request(advice.positive, advice.negative, self.with_hashes(advice.plan))
            return request, advice, image_notes
        from ..advisor import as_written

        positive, loras, notes = as_written(
            positive, negative, library=self.library, strict=settings.strict_loras
        )
        return settings.request(positive, negative, self.with_hashes(loras)), None, notes + image_notes

    def _advise_for(
        self, positive: str, negative: str, symptoms: Sequence[str], clip_skip: int | None
    ) -> Advice:
        """:func:`assistant.advisor.advise` over the library, for the running model's base."""
        from ..advisor import advise

        return advise(
            positive,
            negative,
            library=self.library,
            symptoms=tuple(symptoms),
            base=self._base(),
            clip_skip=clip_skip,
        )

    def with_options(self, settings: RenderSettings) -> RenderSettings:
        """``settings`` with the server's clip skip, RNG and emphasis where it names none."""
        return dataclasses.replace(
            settings,
            clip_skip=settings.clip_skip or self.settings.clip_skip,
            rng=settings.rng or self.settings.rng,
            emphasis=settings.emphasis or self.settings.emphasis,
        )

    def _render(
        self,
        requests: Sequence[GenerationRequest],
        *,
        progress: ProgressFn | None,
        cancel: threading.Event | None,
        what: str,
        batched: bool = True,
        on_wait: WaitFn | None = None,
    ) -> list[GenerationResult]:
        """Render requests under the service lock, reporting steps over the whole action.

        Several requests (grid cells) go through ``engine.generate_many``, which loads every LoRA
        once and batches cells that differ only in LoRA weights into one denoising pass. Renders
        wait for the engine in arrival order (``on_wait`` hears how many are ahead); a cancel
        raises :class:`Cancelled` with the step it stopped at.
        """
        self.wait_ready()
        total = sum(sampling_steps(r) for r in requests) or 1
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{what} cancelled before it started", step=0, total=total)
        reached = [0]

        def step(done: int, _total: int) -> None:
            reached[0] = min(done, total)
            if progress is not None:
                progress(reached[0], total, what)

        try:
            with self._render_lock.hold(cancel, on_wait):
                if progress is not None:
                    progress(0, total, what)
                if len(requests) == 1 or not batched:
                    results = []
                    done = 0
                    for request in requests:

                        def cell_step(current: int, _steps: int, _done: int = done) -> None:
                            step(_done + current, total)

                        results.append(self._engine.generate(request, progress=cell_step, cancel=cancel))
                        done += sampling_steps(request)
                else:
                    results = list(
                        self._engine.generate_many(requests, batched=True, progress=step, cancel=cancel)
                    )
        except Cancelled as err:
            at = reached[0]
            raise Cancelled(f"{what} cancelled at step {at}/{total}", step=at, total=total) from err
        if progress is not None:
            progress(total, total, what)
        return results

    def generate(
        self,
        positive: str,
        negative: str = "",
        settings: RenderSettings | None = None,
        *,
        use_assistant: bool = True,
        symptoms: Sequence[str] = (),
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> Rendered:
        """Advise (unless ``use_assistant`` is False), render ``n_iter`` batches, save them all."""
        settings = (settings or RenderSettings()).validated()
        request, advice, notes = self.prepare(
            positive, negative, settings, use_assistant=use_assistant, symptoms=symptoms
        )
        return self.render(
            request, n_iter=settings.n_iter, advice=advice, notes=notes, progress=progress, cancel=cancel
        )

    def render(
        self,
        request: GenerationRequest,
        *,
        n_iter: int = 1,
        advice: Advice | None = None,
        notes: Sequence[str] = (),
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        on_wait: WaitFn | None = None,
        folder: str | Path | None = None,
    ) -> Rendered:
        """Render a prepared request ``n_iter`` times (seeds continue like A1111's batch count) and
        save the images (:meth:`save_results`, in ``folder`` when given)."""
        requests = [request]
        if n_iter > 1:
            base_seed = request.seed if request.seed != -1 else limits.random_seed()
            requests = [
                dataclasses.replace(request, seed=wrap_seed(base_seed + i * request.batch_size))
                for i in range(n_iter)
            ]
        # batch-count iterations differ only in their seeds: plain sequential renders
        results = self._render(
            requests, progress=progress, cancel=cancel, what="generating", batched=False, on_wait=on_wait
        )
        paths = self.save_results(results, folder=folder)
        warnings = [w for result in results for w in result.warnings]
        return Rendered(
            request=request,
            results=tuple(results),
            paths=tuple(paths),
            advice=advice,
            notes=(*notes, *dict.fromkeys(warnings)),
        )

    def render_plan(
        self,
        plan: Plan,
        advice: Advice | None = None,
        *,
        folder: str | Path | None = None,
        batched: bool = True,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        on_wait: WaitFn | None = None,
    ) -> PlanRendered:
        """Render a plan and save it (:func:`assistant.grid.save`: grid, cells with A1111 infotext,
        manifest) in ``folder`` (None: the next numbered folder of the outputs): the one image-saving
        path of plans, for the app, the API and the CLI."""
        from .. import analysis, grid

        kind = plan.kind

        # LoRAs a plan added (a sweep axis off the prompt) get their hash too
        plan = plan.map_loras(self.with_hashes)
        requests = plan.requests
        # a weight sweep without a weight-0 cell renders one more image: the effect curve's zero
        reference = analysis.reference_request(plan)
        if reference is not None:
            requests.append(reference)
        results = self._render(
            requests, progress=progress, cancel=cancel, what=kind, batched=batched, on_wait=on_wait
        )
        reference_result = results.pop() if reference is not None else None
        with self._save_lock:
            target = Path(folder) if folder is not None else self._next_folder(kind)
            saved = grid.save(plan, results, target, reference=reference_result)
        return PlanRendered(
            kind=kind,
            plan=plan,
            results=tuple(results),
            grid_path=str(saved.grid_path),
            cell_paths=tuple(str(p) for p in saved.cell_paths),
            manifest_path=str(saved.manifest_path),
            advice=advice,
            notes=(saved.summary,) if saved.summary else (),
            extra_images=tuple(str(p) for p in saved.extra_paths),
            analysis=saved.analysis,
            saved_notes=tuple(saved.notes),
        )
