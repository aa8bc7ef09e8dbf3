"""The API's renders in arrival order: their cancel flags (``/interrupt``) and progress (``/progress``)."""

from __future__ import annotations

import threading
from typing import Any


class _ApiJob:
    """One txt2img or img2img request: its cancel flag and the sampler step it is at."""

    def __init__(self, what: str = "txt2img") -> None:
        self.what = what
        self.cancel = threading.Event()
        self.sampling_step = 0
        self.sampling_steps = 0

    def step(self, done: int, total: int, what: str = "") -> None:  # a service ProgressFn
        self.sampling_step, self.sampling_steps = done, total


class _ApiJobs:
    """The API's renders in arrival order (the first holds the engine, the rest wait)."""

    def __init__(self) -> None:
        self._jobs: list[_ApiJob] = []
        self._lock = threading.Lock()

    def start(self, what: str = "txt2img") -> _ApiJob:
        job = _ApiJob(what)
        with self._lock:
            self._jobs.append(job)
        return job

    def finish(self, job: _ApiJob) -> None:
        with self._lock:
            self._jobs.remove(job)

    def interrupt(self) -> int:
        with self._lock:
            for job in self._jobs:
                job.cancel.set()
            return len(self._jobs)

    def progress(self) -> dict[str, Any]:
        with self._lock:
            count = len(self._jobs)
            job = self._jobs[0] if self._jobs else None
        step, steps = (job.sampling_step, job.sampling_steps) if job else (0, 0)
        return {
            "progress": round(step / steps, 4) if steps else 0.0,
            "eta_relative": 0.0,
            "state": {
                "skipped": False,
                "interrupted": bool(job and job.cancel.is_set()),
                "job": job.what if job else "",
                "job_count": count,
                "job_no": 0,
                "sampling_step": step,
                "sampling_steps": steps,
            },
            "current_image": None,
            "textinfo": f"{count} API render(s) running or waiting" if count else None,
        }
