"""Training a LoRA from the app: the uploads checked into a kohya dataset, one run at a time in
the background, written to the first LoRA folder and listed as soon as it ends.

Off on a shared Space unless its owner allows it (``LORA_MIXER_ALLOW_TRAINING=1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import GenerationError
from .catalog import Catalog
from .models import Models


class Training(Catalog, Models):
    """The server's training runs (the running model is the base; a finished run rescans)."""

    @property
    def training(self) -> Any:
        """The :class:`~assistant.train.jobs.TrainingJobs` of this server (one run at a time); a
        finished run rescans the library, so the new LoRA is listed at once."""
        with self._library_lock:
            if self._training is None:
                from ..train.jobs import TrainingJobs

                self._training = TrainingJobs(
                    Path(self.settings.cache_dir) / "training", on_done=lambda _state: self.refresh_loras()
                )
            return self._training

    def prepare_training(self, files: Sequence[str], request: Any) -> tuple[Any, Any]:
        """Uploads → a checked kohya dataset and the run's options, writing to the first LoRA
        folder with the running model as the base. DatasetError/TrainingError say what is wrong."""
        from ..errors import TrainingError
        from ..train.jobs import dataset_from_uploads, safe_name

        if not self.settings.training_allowed:
            raise TrainingError(
                "training is turned off on this server (a shared Space: a run takes the machine for "
                "minutes and writes into everyone's LoRA folder); its owner can allow it with "
                "LORA_MIXER_ALLOW_TRAINING=1"
            )
        name = safe_name(request.name)
        try:
            self.wait_ready(timeout=1.0)
        except GenerationError as err:
            raise TrainingError(f"the base model to train on is not loaded: {err}") from None
        output = Path(self.settings.lora_dirs[0]).expanduser() / f"{name}.safetensors"
        if output.exists():
            raise TrainingError(
                f"{output.name} already exists in {output.parent}: choose another name (or delete the file)"
            )
        job = Path(self.settings.cache_dir) / "training" / name
        trigger = (request.trigger or "").strip() or name
        root = dataset_from_uploads(
            files, job, name=trigger, repeats=request.repeats, caption=request.caption
        )
        options = request.options(
            dataset=str(root), output=str(output), base=self.current_model(), samples_dir=str(job / "samples")
        )
        return options, self.training.check(options)

    def start_training(self, files: Sequence[str], request: Any) -> Any:
        """Check the uploads and settings, then train in the background; returns the job state."""
        options, _dataset = self.prepare_training(files, request)
        return self.training.start(options)
