"""What the service hands back: plain result objects, the same for the app, the API and the CLI.

:class:`Turn` (a chat message or button answered before anything renders, with the
:class:`RenderJob` to run next), :class:`Rendered` (a Generate) and :class:`PlanRendered` (a blind
box, A/B or sweep grid), :class:`ChatTurn` (a turn answered and rendered in one call) and
:class:`HistoryItem` (one saved image).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..types import Advice, GenerationRequest, GenerationResult

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..blend import Plan
    from ..chat import ChatMemory


@dataclass(frozen=True, slots=True)
class Rendered:
    """One generate action: what was asked, what the assistant changed, what came out, where saved."""

    request: GenerationRequest
    results: tuple[GenerationResult, ...]
    paths: tuple[str, ...]
    advice: Advice | None = None
    notes: tuple[str, ...] = ()

    @property
    def images(self) -> list[Any]:
        return [image for result in self.results for image in result.images]

    @property
    def infotexts(self) -> list[str]:
        return [text for result in self.results for text in result.infotexts]

    @property
    def seeds(self) -> list[int]:
        return [seed for result in self.results for seed in result.seeds]


@dataclass(frozen=True, slots=True)
class PlanRendered:
    """A blind box / A/B / sweep: the plan, each cell's result and the saved grid."""

    kind: str
    plan: Plan
    results: tuple[GenerationResult, ...]
    grid_path: str
    cell_paths: tuple[str, ...]
    manifest_path: str
    advice: Advice | None = None
    #: what the grid's analysis found (A/B difference, sweep effect curve), and its images
    notes: tuple[str, ...] = ()
    extra_images: tuple[str, ...] = ()
    analysis: dict[str, Any] | None = None
    #: what saving the grid noticed (a label font missing, labels shortened …)
    saved_notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return self.plan.title or self.kind


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """The assistant's reply to one chat message, ready for any front end."""

    markdown: str
    positive: str
    negative: str
    intent: str
    images: tuple[str, ...] = ()
    advice: Advice | None = None
    rendered: Rendered | PlanRendered | None = None
    memory: ChatMemory | None = None


@dataclass(frozen=True, slots=True)
class RenderJob:
    """A render a turn decided on but has not run: ``run(progress, cancel, on_wait)``.

    ``steps`` counts sampler steps over the whole action (what progress reports count to).
    """

    kind: str
    steps: int
    run: Callable[..., Rendered | PlanRendered]


@dataclass(frozen=True, slots=True)
class Turn:
    """One chat message or button, answered before anything renders.

    ``markdown`` is the reply (the rewrite with its reasons, or the whole answer); ``positive``/
    ``negative`` what the prompt boxes hold after it; ``memory`` the conversation's memory after it
    (chat turns); ``job`` the render to run next, or None when the reply is the whole answer.
    """

    markdown: str
    positive: str
    negative: str
    intent: str
    advice: Advice | None = None
    memory: ChatMemory | None = None
    job: RenderJob | None = None
    #: settings the UI should show after this turn (A1111's "Send to txt2img", an attached image
    #: put in the Init image slot …): RenderSettings field names plus "init_image" (a file path,
    #: or "" to empty the slot) and "hires" (a HiresFix, or None to switch it off). Absent: unchanged.
    fill: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One saved image in the outputs folder (newest first in :meth:`Service.history`)."""

    path: str
    prompt: str
    seed: int | None
    mtime: float = field(default=0.0, compare=False)
