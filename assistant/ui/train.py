"""The app's *Train* tab (issue 16): upload images (or a zip), settings, check, train, cancel.

A run is one :class:`~assistant.train.jobs.TrainingJobs` job on the shared service (one at a
time); the tab streams its status line, loss curve and sample images, and when the run ends the
library is rescanned so the new LoRA is listed at once.

The pure part — :func:`train_request` (the tab's values as one typed request), :func:`loss_rows`
(the loss curve's rows) and :class:`TrainHandlers` (which only call the service) — is tested
without a server. :func:`build_tab` and :func:`wire` make and connect the Gradio components; like
:mod:`assistant.ui.img2img`, gradio is imported only when they (or a handler) run, so importing
this module stays free of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TrainingError
from ..train.jobs import TrainRequest
from ..train.options import OPTIMIZERS, SCHEDULERS
from . import messages

if TYPE_CHECKING:
    from ..service import Service

__all__ = ["TrainHandlers", "TrainTab", "build_tab", "loss_rows", "train_request", "upload_paths", "wire"]

#: Seconds between two progress updates of a running training.
POLL_INTERVAL = 1.0
#: Steps in the loss curve's moving average.
LOSS_WINDOW = 10

#: The tab's settings, in the order :attr:`TrainTab.inputs` lists their components (after the files).
FIELDS: tuple[str, ...] = (
    "name",
    "trigger",
    "repeats",
    "caption",
    "steps",
    "rank",
    "alpha",
    "lr",
    "batch",
    "resolution",
    "optimizer",
    "scheduler",
    "train_te",
    "conv_dim",
    "seed",
    "sample_prompt",
)


def upload_paths(files: Sequence[Any] | None) -> list[str]:
    """Uploaded file paths (gr.File gives paths, or objects with a ``name``)."""
    return [str(getattr(f, "name", f)) for f in files or []]


def _whole(label: str, value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TrainingError(f"{label}: {value!r} is not a number") from None
    if not number.is_integer():
        raise TrainingError(f"{label}: {value} must be a whole number")
    return int(number)


def _number(label: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TrainingError(f"{label}: {value!r} is not a number") from None


def train_request(values: Sequence[Any]) -> TrainRequest:
    """The Train tab's values (in :data:`FIELDS` order) as one typed request; a value that is not
    a (whole) number is a :class:`TrainingError` naming the field. Ranges are the trainer's
    options' to check."""
    v = dict(zip(FIELDS, values, strict=True))
    return TrainRequest(
        name=(v["name"] or "").strip(),
        trigger=(v["trigger"] or "").strip(),
        repeats=_whole("Repeats", v["repeats"]),
        caption=v["caption"] or "",
        steps=_whole("Steps", v["steps"]),
        rank=_whole("Rank", v["rank"]),
        alpha=_number("Alpha", v["alpha"]),
        lr=_number("Learning rate", v["lr"]),
        batch_size=_whole("Batch size", v["batch"]),
        resolution=_whole("Resolution", v["resolution"]) or None,
        optimizer=v["optimizer"],
        scheduler=v["scheduler"],
        train_text_encoder=bool(v["train_te"]),
        conv_dim=_whole("Conv dim", v["conv_dim"]) or None,
        seed=_whole("Seed", v["seed"]),
        sample_prompt=v["sample_prompt"] or "",
    )


def loss_rows(losses: Sequence[float], window: int = LOSS_WINDOW) -> list[dict[str, Any]]:
    """The loss curve's rows: the loss per step, and its ``window``-step moving average."""
    rows: list[dict[str, Any]] = []
    for i, value in enumerate(losses, start=1):
        recent = losses[max(0, i - window) : i]
        rows.append({"step": i, "loss": float(value), "curve": "step"})
        rows.append({"step": i, "loss": sum(recent) / len(recent), "curve": f"average of {window}"})
    return rows


def _loss_frame(losses: Sequence[float]) -> Any:
    import pandas as pd

    frame = pd.DataFrame(loss_rows(losses), columns=["step", "loss", "curve"])
    # typed even when empty: the plot takes its axis types from the first frame it gets
    return frame.astype({"step": "int64", "loss": "float64", "curve": "str"})


class TrainHandlers:
    """The tab's event handlers over the shared service (errors are left to the app's wrapper)."""

    def __init__(self, service: Service, *, poll: float = POLL_INTERVAL) -> None:
        self.service = service
        self.poll = poll

    def check(self, files: Sequence[Any] | None, *values: Any) -> str:
        """Check the uploads and settings without training: what would be trained, or why not."""
        options, dataset = self.service.prepare_training(upload_paths(files), train_request(values))
        return messages.training_plan(options, dataset)

    def train(self, files: Sequence[Any] | None, *values: Any) -> Iterator[tuple[Any, Any, Any]]:
        """Start a run, then stream its progress: status line, loss curve, latest samples."""
        import gradio as gr

        self.service.start_training(upload_paths(files), train_request(values))
        shown: tuple[str, ...] = ()
        while True:
            state = self.service.training.snapshot()
            samples = gr.skip() if state.samples == shown else [(p, Path(p).stem) for p in state.samples]
            shown = state.samples
            curve = _loss_frame(state.losses) if state.losses else gr.skip()  # an empty frame draws no line
            yield messages.training_status(state), curve, samples
            if not state.running:
                break
            time.sleep(self.poll)
        if state.status == "failed":
            raise TrainingError(state.message)

    def cancel(self) -> str:
        """Stop the running training after its current step (nothing is written)."""
        if self.service.training.cancel():
            return "Cancelling after the current step…"
        return "No training is running."


@dataclass(frozen=True)
class TrainTab:
    """The tab's components (made by :func:`build_tab`)."""

    files: Any
    fields: tuple[Any, ...]  # in FIELDS order
    check: Any
    train: Any
    cancel: Any
    status: Any
    loss: Any
    samples: Any

    @property
    def inputs(self) -> list[Any]:
        return [self.files, *self.fields]


def build_tab(service: Service) -> TrainTab:
    """The tab's components, inside the caller's ``gr.Tab``."""
    import gradio as gr

    gr.Markdown(
        "Train a LoRA on your images, kohya-style, on the running base model. Upload images with "
        "same-name `.txt` captions, or a zip (`10_name/` folders are kept)."
    )
    files = gr.File(
        label="Images, captions or a zip",
        file_count="multiple",
        file_types=["image", ".txt", ".caption", ".zip"],
        elem_id="train-files",
    )
    with gr.Row():
        name = gr.Textbox(label="LoRA name", placeholder="my_mascot", elem_id="train-name")
        trigger = gr.Textbox(
            label="Trigger word (folder name)", placeholder="mascot", elem_id="train-trigger"
        )
    caption = gr.Textbox(
        label="Caption for images without a caption file (default: the trigger word)",
        elem_id="train-caption",
    )
    with gr.Accordion("Training settings", open=False):
        with gr.Row():
            steps = gr.Number(200, label="Steps", precision=0, elem_id="train-steps")
            repeats = gr.Number(10, label="Repeats", precision=0)
            batch = gr.Number(2, label="Batch size", precision=0)
        with gr.Row():
            rank = gr.Number(8, label="Rank (network_dim)", precision=0)
            alpha = gr.Number(4, label="Alpha (network_alpha)")
            lr = gr.Number(1e-4, label="Learning rate")
        with gr.Row():
            resolution = gr.Number(
                service.default_size(), label="Resolution", precision=0, elem_id="train-res"
            )
            optimizer = gr.Dropdown(list(OPTIMIZERS), value="adamw", label="Optimizer")
            scheduler = gr.Dropdown(list(SCHEDULERS), value="cosine_with_restarts", label="LR scheduler")
        with gr.Row():
            train_te = gr.Checkbox(False, label="Train the text encoder")
            conv_dim = gr.Number(0, label="Conv dim (LoCon; 0 = off)", precision=0)
            seed = gr.Number(42, label="Seed", precision=0)
        sample_prompt = gr.Textbox(label="Sample prompt (default: the first caption)")
    with gr.Row():
        check = gr.Button("Check dataset", size="sm")
        train = gr.Button("Train", variant="primary", elem_id="train-btn")
        cancel = gr.Button("Cancel training", variant="stop", elem_id="train-cancel")
    status = gr.Markdown(elem_id="train-status")
    loss = gr.LinePlot(x="step", y="loss", color="curve", label="Loss", elem_id="train-loss")
    samples = gr.Gallery(label="Samples", columns=4, height=200, elem_id="train-samples")
    by_name = {
        "name": name, "trigger": trigger, "repeats": repeats, "caption": caption, "steps": steps,
        "rank": rank, "alpha": alpha, "lr": lr, "batch": batch, "resolution": resolution,
        "optimizer": optimizer, "scheduler": scheduler, "train_te": train_te, "conv_dim": conv_dim,
        "seed": seed, "sample_prompt": sample_prompt,
    }  # fmt: skip
    return TrainTab(
        files=files,
        fields=tuple(by_name[f] for f in FIELDS),
        check=check,
        train=train,
        cancel=cancel,
        status=status,
        loss=loss,
        samples=samples,
    )


def wire(tab: TrainTab, handlers: TrainHandlers, *, wrap: Callable[[Any], Any]) -> Any:
    """Connect the tab's buttons (``wrap`` turns errors into toasts: the app's ``friendly``);
    returns the Train click's event, for the app to chain a library refresh onto."""
    import gradio as gr

    tab.check.click(wrap(handlers.check), tab.inputs, [tab.status], api_name="check_training")
    event = tab.train.click(
        wrap(handlers.train),
        tab.inputs,
        [tab.status, tab.loss, tab.samples],
        api_name="train_lora",
        concurrency_limit=1,
    )

    def cancel() -> str:
        text = handlers.cancel()
        if text.startswith("Cancelling"):
            gr.Info("Cancelling the training after the current step…")
        return text

    tab.cancel.click(
        wrap(cancel), None, [tab.status], api_name="cancel_training", queue=False, concurrency_limit=None
    )
    return event
