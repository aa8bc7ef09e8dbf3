"""Training runs started from the app: uploads → a kohya folder → one background run at a time.

Pure at import (the trainer, and with it torch, loads in the run's thread). The Train tab and
any API client go through :class:`TrainingJobs`:

1. :func:`dataset_from_uploads` turns uploaded images, caption files and zip archives into a
   kohya folder ``…/img/{repeats}_{name}/`` (a zip that already holds ``10_name/`` folders keeps
   its layout). Archives are read defensively: no path leaves the folder, only images and
   captions are extracted, and the counts and sizes are bounded.
2. :meth:`TrainingJobs.start` checks the dataset and the settings (so a bad upload costs nothing),
   then trains in a thread; :meth:`TrainingJobs.snapshot` reports progress, the loss curve and the
   latest samples; :meth:`TrainingJobs.cancel` stops it after the current step (no file is
   written). When the run ends, ``on_done`` runs (the service rescans its library, so the new
   LoRA is in the Library tab at once).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import DatasetError, LoraMixerError, TrainingError
from .dataset import CAPTION_EXTENSIONS, IMAGE_EXTENSIONS, Dataset, parse_folder_name, read_dataset
from .options import TrainOptions

log = logging.getLogger(__name__)

MAX_UPLOAD_FILES = 2000
MAX_UPLOAD_BYTES = 1024 * 1024 * 1024  # 1 GiB uncompressed, all files together
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. ")


def safe_name(text: str, what: str = "LoRA name") -> str:
    """A name usable as a file stem and in ``<lora:name:1>`` (letters, digits, ``_ - .`` and spaces)."""
    name = (text or "").strip()
    if not name:
        raise TrainingError(f"the {what} is empty")
    bad = sorted({c for c in name if c not in _NAME_CHARS})
    if bad or name.startswith(".") or len(name) > 100:
        raise TrainingError(
            f"the {what} '{name[:100]}' can only use letters, digits, '_', '-', '.' and spaces "
            "(at most 100, not starting with '.')" + (f"; found {' '.join(bad)}" if bad else "")
        )
    return name


def dataset_from_uploads(
    files: Sequence[str | Path], folder: str | Path, *, name: str, repeats: int = 10, caption: str = ""
) -> Path:
    """Write uploads into ``folder/img`` as a kohya dataset; returns ``folder/img``.

    Loose images (and same-stem ``.txt``/``.caption`` files) go to ``{repeats}_{name}/``; an
    image without a caption file gets ``caption`` as its caption file when one is given (else
    the folder name is its caption, as in kohya). A zip is unpacked the same way, keeping its
    ``N_name/`` folders when it has them. DatasetError for unusable uploads.
    """
    name = safe_name(name, "trigger word / folder name")
    if not 1 <= int(repeats) <= 10_000:
        raise DatasetError(str(folder), [f"repeats {repeats}: must be 1 to 10000"])
    root = Path(folder) / "img"
    if root.exists():
        shutil.rmtree(root)
    default = root / f"{int(repeats)}_{name}"
    budget = _Budget(str(folder))
    if not files:
        raise DatasetError(str(folder), ["no files were uploaded: add images (PNG, JPG, WebP) or a zip"])
    for file in files:
        path = Path(file)
        suffix = path.suffix.lower()
        if suffix == ".zip":
            _unzip(path, root, default, budget)
        elif suffix in IMAGE_EXTENSIONS or suffix in CAPTION_EXTENSIONS:
            budget.add(path.name, path.stat().st_size)
            default.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, default / _leaf(path.name))
        else:
            budget.skipped.append(path.name)
    if caption.strip():
        for subset in [p for p in root.iterdir() if p.is_dir()] if root.exists() else []:
            for image in subset.iterdir():
                if image.suffix.lower() in IMAGE_EXTENSIONS and not any(
                    image.with_suffix(ext).exists() for ext in CAPTION_EXTENSIONS
                ):
                    image.with_suffix(".txt").write_text(caption.strip() + "\n", encoding="utf-8")
    if budget.skipped and not budget.count:
        raise DatasetError(
            str(folder),
            [f"none of the uploads is an image, a caption or a zip ({', '.join(budget.skipped[:5])})"],
        )
    return root


@dataclass
class _Budget:
    where: str
    count: int = 0
    size: int = 0
    skipped: list[str] = field(default_factory=list)

    def add(self, name: str, size: int) -> None:
        self.count += 1
        self.size += size
        if self.count > MAX_UPLOAD_FILES:
            raise DatasetError(self.where, [f"more than {MAX_UPLOAD_FILES} files uploaded"])
        if self.size > MAX_UPLOAD_BYTES:
            raise DatasetError(self.where, [f"more than {MAX_UPLOAD_BYTES // 2**20} MB of uploads"])


def _leaf(name: str) -> str:
    """A plain file name (no folders, no leading dots): what an upload may be saved as."""
    leaf = PurePosixPath(name.replace("\\", "/")).name.lstrip(".")
    return leaf or "file"


def _unzip(path: Path, root: Path, default: Path, budget: _Budget) -> None:
    """Extract images and captions from a zip; ``N_name/`` folders are kept, anything else is flat."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(str(path), [f"{path.name} is not a readable zip ({exc})"]) from exc
    with archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            parts = [p for p in PurePosixPath(member.filename.replace("\\", "/")).parts if p not in ("", ".")]
            if not parts or any(p == ".." or p.startswith(".") or p == "__MACOSX" for p in parts):
                budget.skipped.append(member.filename)
                continue
            suffix = PurePosixPath(parts[-1]).suffix.lower()
            if suffix not in IMAGE_EXTENSIONS and suffix not in CAPTION_EXTENSIONS:
                budget.skipped.append(member.filename)
                continue
            budget.add(member.filename, member.file_size)
            kohya_folder = next((p for p in parts[:-1] if parse_folder_name(p) is not None), None)
            target_dir = root / _leaf(kohya_folder) if kohya_folder else default
            target_dir.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as source, (target_dir / _leaf(parts[-1])).open("wb") as out:
                    written = 0
                    while chunk := source.read(1 << 20):
                        written += len(chunk)
                        if written > member.file_size:  # a header that lies about the size (zip bomb)
                            raise DatasetError(
                                str(path), [f"{member.filename}: larger than its zip entry says"]
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:  # bad CRC, a size that lies, truncation
                raise DatasetError(
                    str(path), [f"{member.filename} in {path.name} is damaged ({exc})"]
                ) from exc


# ----------------------------------------------------------------------------------------------
# Jobs
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainRequest:
    """The Train tab's settings as one value (names as in the CLI; see :class:`TrainOptions`)."""

    name: str  # the LoRA's file stem and <lora:name> name
    trigger: str = ""  # the kohya folder's class token (caption of images without one); "" = name
    repeats: int = 10
    caption: str = ""  # written for images that have no caption file; "" = the trigger word
    steps: int = 200
    rank: int = 8
    alpha: float = 4.0
    lr: float = 1e-4
    batch_size: int = 2
    resolution: int | None = None
    optimizer: str = "adamw"
    scheduler: str = "cosine_with_restarts"
    train_text_encoder: bool = False
    conv_dim: int | None = None
    seed: int = 42
    sample_prompt: str = ""  # "" = the first image's caption
    samples: int = 4  # sample rounds during the run

    def options(self, *, dataset: str, output: str, base: str | None, samples_dir: str) -> TrainOptions:
        prompt = self.sample_prompt.strip()
        if not prompt:
            first = read_dataset(dataset).subsets[0].images[0]
            prompt = first.caption
        return TrainOptions(
            dataset=dataset, output=output, base=base, rank=self.rank, alpha=self.alpha, lr=self.lr,
            batch_size=self.batch_size, max_steps=self.steps, resolution=self.resolution,
            optimizer=self.optimizer, scheduler=self.scheduler, train_text_encoder=self.train_text_encoder,
            conv_dim=self.conv_dim or None, seed=self.seed, sample_prompts=(prompt,),
            sample_every=max(1, self.steps // max(1, self.samples)), samples_dir=samples_dir,
            cache_latents=True,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class JobState:
    """A snapshot of the current (or last) run, for the UI."""

    status: str  # idle | running | done | cancelled | failed
    name: str = ""
    step: int = 0
    total: int = 0
    epoch: int = 0
    epochs: int = 0
    losses: tuple[float, ...] = ()
    samples: tuple[str, ...] = ()  # PNG paths of the latest sample round
    message: str = ""
    path: str = ""
    seconds: float = 0.0

    @property
    def running(self) -> bool:
        return self.status == "running"


class TrainingJobs:
    """One training run at a time, in a background thread (see the module docstring)."""

    def __init__(self, work_dir: str | Path, *, on_done: Callable[[JobState], None] | None = None) -> None:
        self.work_dir = Path(work_dir)
        self.on_done = on_done
        self._lock = threading.Lock()
        self._state = JobState("idle")
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> JobState:
        with self._lock:
            return self._state

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def check(self, options: TrainOptions) -> Dataset:
        """The dataset and settings, checked (DatasetError/TrainingError), without starting."""
        options.checked()
        return read_dataset(options.dataset, caption_extension=options.caption_extension)

    def start(self, options: TrainOptions) -> JobState:
        """Check, then train in the background; TrainingError when a run is already going."""
        dataset = self.check(options)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                state = self._state
                raise TrainingError(
                    f"a training run is already going ({state.name}, step {state.step} of {state.total}); "
                    "wait for it or cancel it first"
                )
            self._cancel.clear()
            self._state = JobState(
                "running",
                name=options.output_name,
                message=f"starting: {dataset.num_train_images} samples per epoch",
            )
            self._thread = threading.Thread(
                target=self._run, args=(options,), name="lora-training", daemon=True
            )
            self._thread.start()
            return self._state

    def cancel(self) -> bool:
        """Ask the running run to stop after its current step; False when none runs."""
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
        if running:
            self._cancel.set()
        return running

    def wait(self, timeout: float | None = None) -> JobState:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.snapshot()

    def _run(self, options: TrainOptions) -> None:
        from .trainer import TrainEvent, train_lora

        started = time.time()
        losses: list[float] = []

        def on_event(event: TrainEvent) -> None:
            if event.kind == "step" and event.loss is not None:
                losses.append(event.loss)
                self._update(
                    step=event.step, total=event.total, epoch=event.epoch, epochs=event.epochs,
                    losses=tuple(losses), seconds=event.elapsed,
                    message=f"step {event.step}/{event.total}, loss {event.avg_loss:.4f}",
                )  # fmt: skip
            elif event.kind == "start":
                self._update(total=event.total, epochs=event.epochs, message=event.message or "training")
            elif event.kind == "sample":
                folder = options.samples_path
                paths = sorted(str(p) for p in folder.glob(f"{options.output_name}_{event.step:06d}_*.png"))
                self._update(samples=tuple(paths))

        try:
            result = train_lora(options, callback=on_event, cancel=self._cancel)
        except LoraMixerError as err:
            status = "cancelled" if type(err).__name__ == "Cancelled" else "failed"
            self._update(status=status, message=str(err), seconds=time.time() - started)
        except Exception as exc:  # the server must stay up; the log has the traceback
            log.exception("training %s failed", options.output_name)
            self._update(status="failed", message=f"training failed: {type(exc).__name__}: {exc}")
        else:
            self._update(
                status="done",
                path=result.path,
                seconds=result.seconds,
                message=f"wrote {Path(result.path).name} ({result.steps} steps, {result.seconds:.0f} s); "
                f"use it as `<lora:{result.name}:0.8>`",
            )
        if self.on_done is not None:
            try:
                self.on_done(self.snapshot())
            except Exception:  # pragma: no cover - a refresh failure must not kill the thread
                log.exception("after-training hook failed")
