"""A fake engine: the :class:`assistant.backend.Engine` protocol in pure Python and Pillow.

For tests and demos of everything above the engine (the service, the UI, the API, the CLI) without
torch: it checks each request exactly as the real engine does (:func:`engine.checks.check_request`),
reports progress step by step, honours a cancel, writes the A1111 infotext the real engine writes
(:func:`assistant.infotext.for_request`, hashes included), and draws one flat-coloured image per
seed whose colour is a function of the prompt, the LoRA weights and the seed — so a changed weight
changes the picture and the same request gives the same picture, like a seeded pipeline.
``requests`` records every request it rendered, in order.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence

from .backend import EngineInfo, StepProgress
from .engine.checks import check_request, wrap_seed
from .engine.schedulers import sampler_names
from .errors import Cancelled
from .img2img import sampling_steps
from .infotext import for_request
from .limits import random_seed
from .types import GenerationRequest, GenerationResult

__all__ = ["FakeEngine"]

FAKE_BANNER = "Fake engine: flat colours from the prompt, the LoRA weights and the seed (tests, demos)."


class FakeEngine:
    """The engine protocol without a model; ``base`` is the base family it claims to run."""

    def __init__(self, *, base: str = "sd15", default_size: int = 64, model_name: str = "fake-sd") -> None:
        self._info = EngineInfo(
            model_name=model_name,
            model_hash="fa4e0e4619",
            base=base,
            is_tiny=True,
            device="cpu",
            dtype="float32",
            default_size=default_size,
            banner=FAKE_BANNER,
            attention="none",
        )
        self.requests: list[GenerationRequest] = []
        self.loaded = False
        self.closed = False

    # the protocol ----------------------------------------------------------------------------

    def load(self) -> EngineInfo:
        self.loaded = True
        self.closed = False
        return self._info

    @property
    def info(self) -> EngineInfo:
        return self.load() if not self.loaded else self._info

    def samplers(self) -> list[str]:
        return sampler_names()

    def generate(
        self,
        request: GenerationRequest,
        *,
        progress: StepProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        # 1. check the request like the real engine; 2. draw the seeds; 3. the steps; 4. images
        check_request(request)
        started = time.perf_counter()
        seed = random_seed() if request.seed == -1 else request.seed
        seeds = tuple(wrap_seed(seed + i) for i in range(request.batch_size))
        steps = sampling_steps(request)
        for step in range(1, steps + 1):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled at step {step - 1}/{steps}", step=step - 1, total=steps)
            if progress is not None:
                progress(step, steps)
        self.requests.append(request)
        images = tuple(_image(request, s) for s in seeds)
        name, digest = self._info.model_name, self._info.model_hash
        infotexts = tuple(for_request(request, s, model_name=name, model_hash=digest) for s in seeds)
        timings = {"total": time.perf_counter() - started}
        return GenerationResult(images, infotexts, seeds, request=request, timings=timings)

    def generate_many(
        self,
        requests: Sequence[GenerationRequest],
        *,
        batched: bool = True,
        progress: StepProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenerationResult]:
        total = sum(sampling_steps(r) for r in requests)
        done = 0
        results: list[GenerationResult] = []
        for request in requests:

            def step(current: int, _steps: int, _done: int = done) -> None:
                if progress is not None:
                    progress(_done + current, total)

            results.append(self.generate(request, progress=step, cancel=cancel))
            done += sampling_steps(request)
        return results

    def close(self) -> None:
        self.loaded = False
        self.closed = True

    def set_vae(self, choice: str | None) -> EngineInfo:
        return self.info

    def reload_embeddings(self) -> tuple[str, ...]:
        return ()


def _image(request: GenerationRequest, seed: int) -> object:
    """A flat image whose colour digests what the real pipeline would depend on."""
    from PIL import Image

    weights = ",".join(f"{lora.name}:{lora.te_weight:g}:{lora.unet_weight:g}" for lora in request.loras)
    key = f"{request.prompt}\0{request.negative}\0{weights}\0{seed}\0{request.cfg}\0{request.sampler}"
    red, green, blue = hashlib.sha256(key.encode("utf-8")).digest()[:3]
    return Image.new("RGB", (request.width, request.height), (red, green, blue))
