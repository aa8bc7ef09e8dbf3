"""The generation engine: one diffusers pipeline, its LoRA adapters, and the rules around them.

:class:`Engine` turns :class:`~assistant.types.GenerationRequest` objects into images. It gives
exactly what raw diffusers gives for the same inputs (tests compare bit for bit on CPU); what
it adds is safety and speed:

- LoRA files become named PEFT adapters, loaded once and kept in an LRU cache
  (:mod:`assistant.engine.adapters`); a request sets the complete adapter state (see "State"
  below) instead of reloading anything;
- text-encoder and UNet weights separately (A1111 ``<lora:name:te:unet>``) through diffusers'
  per-component weight dicts ``{"text_encoder": te, "unet": unet}``;
- negative-branch weights (a LoRA tag written in the negative prompt): the unconditional half of
  the classifier-free-guidance batch runs with its own adapter weights
  (:mod:`assistant.engine.rows`, see :meth:`Engine.generate`);
- A1111's prompt encoding (:mod:`assistant.engine.encoding`: 75-token chunks, BREAK, emphasis,
  textual inversions, clip skip), A1111 sampler names (:mod:`assistant.engine.schedulers`), A1111
  seeds (``-1`` random, image i uses seed + i) drawn from A1111's RNG source
  (:mod:`assistant.engine.noise`), the VAE choice and a NaN-safe decode (:mod:`assistant.engine.vae`);
- single-file checkpoints offline with shipped configs (:mod:`assistant.engine.checkpoints`);
- every input checked in one place (:meth:`Engine.check_inputs`), NaN/inf latents or images
  reported instead of black pictures, a progress callback per step and cancellation between
  steps; one lock around adapter changes and the pipeline call (pipelines are not thread-safe).

Without a configured model, or when the configured one cannot be reached offline, the engine
runs the tiny demo pipeline (:mod:`assistant.engine.tiny`) and says so in ``info.banner``.

State — a render depends on its request alone
---------------------------------------------
One engine serves every UI and API request for hours; an image must not depend on what was
rendered before it. The pipeline keeps state between requests — loaded adapters, and in every
PEFT layer an on/off flag, the active adapters and a scale per adapter — so the invariant is:

    Every render sets the COMPLETE LoRA state it needs from its request alone: which adapters
    are active (each LoRA with a non-zero weight, in request order), on or off (off exactly
    when none is active), and each active adapter's scale, per component (text encoder(s):
    the LoRA's first weight, UNet: its second) — on EVERY tuner layer of every component.
    Nothing is decided by reading the previous state back (``AdapterCache.activate``).

What else persists is either reset per render (the scheduler is rebuilt from the model's own
config, per-row hooks exist only inside the call, split text-encoder weights are restored),
constant (no parameter ever requires grad: PyTorch rounds ``linear`` differently for a weight
that does, and PEFT turns grads on and off as files load — see ``adapters.freeze``) or
independent of requests (the LRU of loaded files; a failed load removes every trace of its
adapter). The cost is one pass over the LoRA layers per render: a few attribute writes per layer
(``bench/lora_switch.py`` measures it). With ``LORA_MIXER_CHECK_STATE=1`` (the test suite sets
it) every render ends with :meth:`Engine.check_state`: each layer is compared with
:meth:`Engine.needed_state` of the request, computed again from its LoRAs, and a difference
raises :class:`EngineStateError` naming the layers. The reported bug this replaces: the engine
switched layers back on only when the FIRST UNet layer read "off"; a file that created a layer
earlier in module order than any existing one left every older layer off after a no-LoRA render.

Negative-branch weights — semantics and cost
--------------------------------------------
A1111 ignores ``<lora:…>`` tags in the negative prompt. LoRA Mixer gives them a meaning: the
plan's ``PlannedLora.negative_weight``/``negative_unet`` are the LoRA's weights in the
*unconditional* pass of classifier-free guidance. diffusers runs that pass in the same UNet call
as the conditional one (batch ``[uncond; cond]``), so the engine scales each adapter's delta per
batch row (:class:`assistant.engine.rows.RowScaler`, hooks on PEFT's ``lora_B`` that exist only
during the call) and encodes the negative prompt under the uncond text-encoder weights. The
guided prediction is ``e_u + cfg * (e_c - e_u)``: a LoRA at ``w`` in the cond pass and ``w_n`` in
the uncond pass moves the image by about ``w + (cfg - 1) * (w - w_n)`` times its delta, so a
negative-pass weight BELOW the positive one strengthens the LoRA and one above it weakens it.
With CFG <= 1 there is no uncond pass and these weights do nothing. Cost: one extra text-encoder
pass for the negative prompt and one elementwise multiply per LoRA layer call — no second UNet
pass; the images are those of the ordinary path when the weights are equal (tested bit for bit).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import limits
from ..backend import EngineInfo
from ..config import Settings
from ..errors import Cancelled, GenerationError, LoraLoadError
from ..img2img import sampling_steps
from ..types import GenerationRequest, GenerationResult, PlannedLora
from . import embedded, noise, tiny
from . import vae as vae_module
from .adapters import AdapterCache, LoraState, freeze
from .checkpoints import CONFIGS_DIR, error_reason, family_of, load_single_file
from .checks import check_request, wrap_seed
from .device import DeviceChoice, choose_device, configure_attention
from .encoding import A1111Encoder, PairInfo, TextualInversion
from .fuse import FuseReport, fused, worth_fusing
from .schedulers import make_scheduler, sampler_names, split_name

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

#: Set to 1 to check the complete LoRA state after every render (tests do; costs ~1 ms per 1000 layers).
CHECK_STATE_ENV = "LORA_MIXER_CHECK_STATE"

#: Most cond rows one batched pass of generate_many runs (x2 with classifier-free guidance).
MAX_BATCH_ROWS = 16
#: Most image pixels one batched pass holds (16 rows at 512x512; 4 rows at 1024x1024), so an SDXL
#: blind box does not ask a consumer GPU for 16 full-size UNet rows at once.
MAX_BATCH_PIXELS = 16 * 512 * 512

#: Base -> shipped config folder, for a VAE file loaded on a model that came as a diffusers folder.
_CONFIG_OF_BASE = {"sd15": "sd15", "sd2": "sd2", "sdxl": "sdxl"}
_TINY_NAMES = {"tiny", "tiny-sd15", tiny.TINY_MODEL_NAME}
_TINY_XL_NAMES = {"tiny-sdxl", tiny.TINY_XL_MODEL_NAME}
_EMBEDDED_NAMES = {embedded.EMBEDDED_NAME}


class EngineStateError(RuntimeError):
    """The pipeline's LoRA layers are not in the state the request needs: an engine bug, never a
    user error (so not a :class:`~assistant.errors.LoraMixerError`; the API answers 500)."""


def _check_state_on() -> bool:
    return os.environ.get(CHECK_STATE_ENV, "").strip() not in ("", "0")


@dataclass(slots=True)
class _Applied:
    """The adapter weights one request needs, per branch, as diffusers expects them."""

    names: list[str] = field(default_factory=list)
    cond: list[dict[str, float]] = field(default_factory=list)  # set_adapters weight dicts
    uncond: list[dict[str, float]] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)
    split: bool = False
    #: what the user must know about this mix: LoRAs left out (and why), parts of files not applied
    notes: list[str] = field(default_factory=list)
    left_out: list[PlannedLora] = field(default_factory=list)  # the LoRAs those notes leave out
    #: per adapter, its LoRA block ratios (26, assistant.lbw) or None
    ratios: list[tuple[float, ...] | None] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(r is not None for r in self.ratios)


class Engine:
    """A diffusers pipeline with LoRA adapters; lazy (nothing loads before :meth:`load`).

    Implements :class:`assistant.backend.Engine` (``EngineInfo`` lives there, in the pure core).
    """

    def __init__(self, settings: Settings | None = None, *, pipeline: Any = None) -> None:
        self.settings = settings or Settings()
        self._pipe = pipeline
        self._info: EngineInfo | None = None
        self._lock = threading.RLock()
        self._adapters: AdapterCache | None = None
        self._encoder: A1111Encoder | None = None
        self._rows: Any = None  # RowScaler, created on first use
        self.last_fuse: FuseReport | None = None  # what the last fused render did (for tests, bench)
        self._passes_runner: Any = None  # Passes (img2img, hires fix), created on first use
        self._scheduler_config: dict[str, Any] | None = None  # the loaded model's, read once

    # ------------------------------------------------------------------------------------------
    # Loading
    # ------------------------------------------------------------------------------------------

    def load(self) -> EngineInfo:
        """Load the base model (or the tiny demo one) once; later calls return the same info."""
        with self._lock:
            if self._info is not None:
                return self._info
            _quiet_libraries()
            if self._pipe is not None:
                info = _describe(self._pipe, name=_injected_name(self._pipe), warnings=())
            else:
                self._pipe, info = _load_pipeline(self.settings)
            self._adapters = AdapterCache(self._pipe, self.settings.adapter_cache_size, base=info.base)
            self._encoder = A1111Encoder(self._pipe)
            info = self._apply_vae(info, self.settings.vae)
            info = self._load_embeddings(info)
            freeze(self._pipe)  # the inference state: see adapters.freeze (part of the state invariant)
            self._info = info
            for warning in info.warnings:
                log.warning("%s", warning)
            return info

    @property
    def info(self) -> EngineInfo:
        """The loaded model's description (loads it on first access)."""
        return self._info or self.load()

    @property
    def pipeline(self) -> Any:
        """The diffusers pipeline (loads it on first access). Do not use it without :attr:`lock`."""
        self.load()
        return self._pipe

    @property
    def lock(self) -> threading.RLock:
        """The lock every use of the pipeline must hold."""
        return self._lock

    def samplers(self) -> list[str]:
        """Accepted A1111 sampler names (combined form, e.g. "DPM++ 2M Karras")."""
        return sampler_names()

    def loaded_adapters(self) -> list[str]:
        """Adapter names currently loaded, least recently used first."""
        with self._lock:
            return self._adapters.adapters() if self._adapters else []

    def close(self) -> None:
        """Drop the pipeline and its adapters so their memory can be freed (a model switch).

        The engine is back to "not loaded": a later use loads the model again.
        """
        with self._lock:
            self._pipe = None
            self._adapters = None
            self._encoder = None
            self._rows = None
            self._passes_runner = None
            self._info = None
            self._scheduler_config = None
        import gc

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def unload_all(self) -> None:
        """Delete every loaded adapter: the pipeline is the plain base model again."""
        with self._lock:
            if self._adapters is not None:
                self._adapters.unload_all()
                self._refresh_rows()

    def needed_state(self, loras: Sequence[PlannedLora]) -> LoraState:
        """The complete LoRA state a request with ``loras`` needs, from the LoRAs alone: each one
        with a non-zero weight, in order, at its cond-branch weights (text encoders: ``weight``,
        UNet: ``unet``) for the components its file patches. The LoRAs must be loaded."""
        with self._lock:
            assert self._adapters is not None
            names: list[str] = []
            weights: list[dict[str, float]] = []
            ratios: list[tuple[float, ...] | None] = []
            for lora in loras:
                if not any(
                    (lora.te_weight, lora.unet_weight, lora.uncond_te_weight, lora.uncond_unet_weight)
                ):
                    continue
                adapter = self._adapters.adapter_for(lora.path)
                if adapter is None:
                    raise EngineStateError(f"LoRA {lora.name!r} ({lora.path}) is needed but not loaded")
                parts = self._adapters.components(adapter)
                base = lora.lbw[0] if lora.lbw is not None else 1.0
                wanted = {p: float(lora.unet_weight if p == "unet" else lora.te_weight * base) for p in parts}
                if adapter in names:  # the same file twice: one adapter, the weights added (A1111)
                    i = names.index(adapter)
                    weights[i] = _added(weights[i], wanted)
                else:
                    names.append(adapter)
                    weights.append(wanted)
                    ratios.append(lora.lbw)
            blocked = any(r is not None for r in ratios)
            return LoraState(tuple(names), tuple(weights), tuple(ratios) if blocked else ())

    def check_state(self, state: LoraState) -> None:
        """Raise :class:`EngineStateError` unless every LoRA layer is exactly in ``state``."""
        with self._lock:
            assert self._adapters is not None
            problems = self._adapters.verify(state)
            if self._rows is not None and getattr(self._rows, "_active_roles", None):
                problems.append(
                    f"a per-row weights context is still open: {sorted(self._rows._active_roles)}"
                )
            if problems:
                total = len(self._adapters.layers())
                layers = sum(1 for p in problems if p.startswith("layer "))
                shown = "; ".join(problems[:6]) + (
                    f"; … {len(problems) - 6} more" if len(problems) > 6 else ""
                )
                raise EngineStateError(
                    f"the LoRA state differs from what the request needs ({layers} of {total} LoRA layers, "
                    f"{len(problems) - layers} other problems): {shown}"
                )

    def lora_layers(self) -> list[Any]:
        """Every PEFT LoRA layer of the pipeline, in module order (for tests and diagnostics)."""
        with self._lock:
            assert self._adapters is not None
            return self._adapters.layers()

    # ------------------------------------------------------------------------------------------
    # VAE and textual inversions
    # ------------------------------------------------------------------------------------------

    def set_vae(self, choice: str | None) -> EngineInfo:
        """Switch the VAE (A1111's ``sd_vae``: "Automatic", "None", a file of the VAE folder, a
        path, folder or hub id). A VAE that fails to load leaves the current one; the error says why."""
        with self._lock:
            info = self.load()
            self._info = self._apply_vae(info, choice)
            self.settings = replace(self.settings, vae=choice)
            return self._info

    def vae_files(self) -> list[Path]:
        """The VAE files of the VAE folder (A1111's ``/sdapi/v1/sd-vae``)."""
        return vae_module.vae_files(self.settings.vae_dir)

    def _apply_vae(self, info: EngineInfo, choice: str | None) -> EngineInfo:
        pipe = self._pipe
        own = getattr(pipe, "_lora_mixer_own_vae", None)
        if own is None:
            own = pipe._lora_mixer_own_vae = pipe.vae
        wanted = vae_module.resolve(choice, vae_dir=self.settings.vae_dir, model=self.settings.model)
        if wanted.kind == "own":
            vae, name, digest = own, "", ""
        elif wanted.source == getattr(pipe, "_lora_mixer_vae_source", ""):
            return info
        else:
            folder = getattr(pipe, "_lora_mixer_config", "") or _CONFIG_OF_BASE.get(info.base, "sd15")
            try:
                vae = vae_module.load(
                    wanted,
                    family_folder=folder,
                    dtype=own.dtype,
                    configs=self.settings.model_configs or CONFIGS_DIR,
                )
            except Exception as exc:
                raise GenerationError(f"Could not load VAE '{wanted.source}' ({error_reason(exc)}).") from exc
            vae = vae.to(own.device)
            name = wanted.name
            digest = vae_module.file_hash(wanted.source) if wanted.kind == "file" else ""
        pipe.vae = vae
        pipe.register_modules(vae=vae)
        vae.requires_grad_(False)  # as every module of the pipeline (adapters.freeze)
        pipe._lora_mixer_vae_source = wanted.source
        return replace(info, vae_name=name, vae_hash=digest)

    def _load_embeddings(self, info: EngineInfo) -> EngineInfo:
        """Textual inversions of the embeddings folders that fit this model (A1111's expected
        width); others stay listed by the library, and the assistant says why they are skipped."""
        from .. import embeddings as ti_files

        found, _notes = ti_files.scan(self.settings.embeddings_dirs)
        width = _embedding_width(self._pipe)  # A1111's expected shape: 768, 1024, or 768 + 1280
        usable = [e for e in found if e.loadable and e.width == width]
        loaded = [_load_textual_inversion(e) for e in usable]
        assert self._encoder is not None
        self._encoder.set_embeddings([e for e in loaded if e is not None])
        names = tuple(e.name for e in self._encoder.embeddings)
        skipped = tuple(e.name for e in found if e.loadable and e.name not in names)
        return replace(info, embeddings=names, skipped_embeddings=skipped)

    def reload_embeddings(self) -> tuple[str, ...]:
        """Scan the embeddings folders again (A1111's refresh); returns the usable names."""
        with self._lock:
            self._info = self._load_embeddings(self.load())
            return self._info.embeddings

    # ------------------------------------------------------------------------------------------
    # Generation
    # ------------------------------------------------------------------------------------------

    def check_inputs(self, request: GenerationRequest) -> None:
        """Every limit a request must respect (:func:`~assistant.engine.checks.check_request`)."""
        check_request(request)

    def generate(
        self,
        request: GenerationRequest,
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Render one request (``batch_size`` images). See the module docstring for the rules.

        Raises GenerationError (bad input, NaN output), LoraLoadError (a LoRA that does not fit
        the model; the pipeline is left as before) or Cancelled.
        """
        # 1. Check inputs; the sampler as A1111 resolves it ("DPM++ 2M" runs Karras, like A1111 1.9+)
        self.check_inputs(request)
        request = resolve_sampler(request)
        info = self.load()
        started = time.perf_counter()
        timings: dict[str, float] = {}
        seed = limits.random_seed() if request.seed == -1 else request.seed
        seeds = batch_seeds(seed, request.batch_size)
        if cancel is not None and cancel.is_set():
            raise Cancelled("Generation cancelled before it started.")
        with self._lock:
            # 2. Adapters: load what is missing (LRU), then activate the full list
            mark = time.perf_counter()
            applied = self._prepare_adapters(request.loras, leave_out=request.leave_out_unloadable)
            timings["loras"] = time.perf_counter() - mark
            # 3. Prompt embeddings (A1111's encoding), each branch with its text-encoder weights
            mark = time.perf_counter()
            guidance = request.cfg > 1
            embeddings, encoded = self._encode(request, applied, split=applied.split and guidance)
            timings["encode"] = time.perf_counter() - mark
            # 4. Scheduler for the A1111 sampler name, generators of the RNG source (image i: seed + i)
            self._pipe.scheduler = make_scheduler(
                self._base_scheduler_config(), request.sampler, request.scheduler, seed
            )
            generators = noise.generators(seeds, request.rng, info.device)
            # 5. Denoise + decode, the uncond rows with their own UNet weights when split
            mark = time.perf_counter()
            row_scales = _uncond_row_scales(applied, request.batch_size) if applied.split and guidance else {}
            row_ratios = {
                name: [ratio]
                for name, ratio in zip(applied.names, applied.ratios, strict=True)
                if name in row_scales and ratio is not None
            }
            images, vae_note = self._run(
                embeddings,
                generators,
                request,
                num_images_per_prompt=request.batch_size,
                row_scales=row_scales,
                row_ratios=row_ratios,
                progress=progress,
                cancel=cancel,
            )
            timings["denoise"] = time.perf_counter() - mark
            if _check_state_on():
                kept = [lora for lora in request.loras if lora not in applied.left_out]
                self.check_state(self.needed_state(kept))
        # 6. NaN check per image, PNG infotexts
        timings["total"] = time.perf_counter() - started
        return self._result(
            request,
            images=images,
            seeds=seeds,
            applied=applied,
            info=info,
            timings=timings,
            encoded=encoded,
            notes=(vae_note,) if vae_note else (),
        )

    def generate_many(
        self,
        requests: Sequence[GenerationRequest],
        *,
        batched: bool = True,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenerationResult]:
        """Render several requests (grid cells); results in the same order.

        No LoRA is reloaded between cells (all the plan's files are loaded once, up front, as
        long as they fit the adapter cache). With ``batched=True`` cells that share everything
        but their LoRA weights (prompt, negative prompt, size, steps, CFG, sampler, batch size,
        the same LoRA files) run as ONE denoising pass: batch row r carries cell r's weights
        (:mod:`assistant.engine.rows`). Outputs equal the sequential ones up to the rounding of
        a larger batch (the tests state the tolerance). ``progress`` counts steps over all passes.
        """
        for request in requests:
            self.check_inputs(request)
        requests = [resolve_sampler(r) for r in requests]
        self.load()
        groups = (
            _batch_groups(requests) if batched and _rows_available() else [[i] for i in range(len(requests))]
        )
        total = sum(sampling_steps(requests[g[0]]) for g in groups)
        done = 0
        results: dict[int, GenerationResult] = {}

        def step_progress(step: int, _steps: int) -> None:
            if progress is not None:
                progress(done + step, total)

        with self._lock:
            self._warm_adapters(requests)
            for group in groups:
                cells = [requests[i] for i in group]
                if len(cells) == 1:
                    results[group[0]] = self.generate(cells[0], progress=step_progress, cancel=cancel)
                    done += sampling_steps(cells[0])
                    continue
                try:
                    batch = self._generate_batched(cells, step_progress, cancel)
                    done += sampling_steps(cells[0])
                except GenerationError as err:
                    if not isinstance(err.__cause__, torch.OutOfMemoryError):
                        raise
                    # the shared pass did not fit: the same cells one by one (less memory at once)
                    log.warning(
                        "a batched pass of %d cells ran out of memory; rendering them one by one", len(cells)
                    )
                    total += sampling_steps(cells[0]) * (len(cells) - 1)
                    batch = []
                    for cell in cells:
                        batch.append(self.generate(cell, progress=step_progress, cancel=cancel))
                        done += sampling_steps(cell)
                for index, result in zip(group, batch, strict=True):
                    results[index] = result
        return [results[i] for i in range(len(requests))]

    # ------------------------------------------------------------------------------------------
    # Internals
    # ------------------------------------------------------------------------------------------

    def _base_scheduler_config(self) -> Mapping[str, Any]:
        if self._scheduler_config is None:
            self._scheduler_config = dict(self._pipe.scheduler.config)
        return self._scheduler_config

    def _warm_adapters(self, requests: Sequence[GenerationRequest]) -> None:
        """Load every LoRA file of a plan once, before the first cell (if the cache can hold them)."""
        assert self._adapters is not None
        files: dict[str, str] = {}
        for request in requests:
            for lora in request.loras:
                files.setdefault(str(Path(lora.path).expanduser().resolve()), lora.name)
        if len(files) > self._adapters.capacity:
            return  # cells will load and evict as they go; a bigger adapter_cache_size avoids it
        keep: set[str] = set()
        for path, name in files.items():
            try:
                keep.add(self._adapters.ensure(name, path, keep=frozenset(keep)))
            except LoraLoadError:
                continue  # each cell says it (or raises) when it prepares its adapters
        self._refresh_rows()

    def _prepare_adapters(self, loras: Sequence[PlannedLora], *, leave_out: bool = False) -> _Applied:
        """Load missing adapters, then set the complete LoRA state the request needs.

        A file that cannot be loaded raises :class:`LoraLoadError` (the pipeline as before), or,
        with ``leave_out``, is left out with a note in ``notes`` (the render is then exactly the
        render without that LoRA: a failed load leaves nothing behind).
        """
        assert self._adapters is not None
        applied = _Applied()
        before = self._adapters.loads + self._adapters.evictions
        keep: set[str] = set()
        for lora in loras:
            te, unet = lora.te_weight, lora.unet_weight
            u_te, u_unet = lora.uncond_te_weight, lora.uncond_unet_weight
            if not any((te, unet, u_te, u_unet)):
                continue  # weight 0 everywhere: the same as not using it (and exactly the base output)
            try:
                adapter = self._adapters.ensure(lora.name, lora.path, keep=frozenset(keep))
            except LoraLoadError as err:
                if not leave_out:
                    raise
                note = f"{err} It was left out of this render; the rest of the mix rendered without it."
                applied.left_out.append(lora)
                if note not in applied.notes:
                    applied.notes.append(note)
                continue
            keep.add(adapter)
            for warning in self._adapters.report(adapter).warnings:
                note = f"LoRA '{lora.name}': {warning}"
                if note not in applied.notes:
                    applied.notes.append(note)
            parts = self._adapters.components(adapter)
            base = lora.lbw[0] if lora.lbw is not None else 1.0  # lbw BASE: the text encoders
            cond, uncond = _weight_dict(parts, te * base, unet), _weight_dict(parts, u_te * base, u_unet)
            if adapter in applied.names:  # the same file twice: A1111 applies both, so the weights add
                i = applied.names.index(adapter)
                if lora.lbw != applied.ratios[i]:
                    raise GenerationError(
                        f"LoRA '{lora.name}' is written twice with different block weights (lbw=); "
                        "write it once, or give both tags the same lbw"
                    )
                applied.cond[i] = _added(applied.cond[i], cond)
                applied.uncond[i] = _added(applied.uncond[i], uncond)
            else:
                applied.names.append(adapter)
                applied.cond.append(cond)
                applied.uncond.append(uncond)
                applied.ratios.append(lora.lbw)
            applied.split = applied.split or lora.split_branches
            if lora.hash:
                applied.hashes[lora.name] = lora.hash
        if self._adapters.loads + self._adapters.evictions != before:
            self._refresh_rows()
        if applied.split and not _rows_available():
            raise GenerationError(
                "LoRA weights for the negative prompt (a <lora:…> tag in the negative prompt) are not "
                "supported by this build yet: the per-row weight module (assistant.engine.rows) is missing."
            )
        self._adapters.activate(applied.names, applied.cond, applied.ratios)
        return applied

    def _encode(
        self, request: GenerationRequest, applied: _Applied, *, split: bool
    ) -> tuple[dict[str, torch.Tensor], PairInfo]:
        """Pipeline embeddings (:mod:`assistant.engine.encoding`); with split branches the negative
        prompt is encoded under the uncond text-encoder weights (text encoding is cheap next to
        denoising, so each branch encodes the pair and keeps its half)."""
        assert self._encoder is not None
        options = {"clip_skip": request.clip_skip, "emphasis": request.emphasis}
        cond, info = self._encoder.encode_pair(request.prompt, request.negative, **options)
        if not split or applied.uncond == applied.cond:
            return cond, info
        assert self._adapters is not None
        self._adapters.activate(applied.names, applied.uncond, applied.ratios)
        try:
            uncond, uncond_info = self._encoder.encode_pair(request.prompt, request.negative, **options)
        finally:
            self._adapters.activate(applied.names, applied.cond, applied.ratios)
        merged = {k: v for k, v in cond.items() if not k.startswith("negative_")}
        merged |= {k: v for k, v in uncond.items() if k.startswith("negative_")}
        used = {**info.used, **uncond_info.used}
        return merged, PairInfo(used=used, padded=info.padded, notes=info.notes)

    def _run(
        self,
        embeddings: Mapping[str, torch.Tensor],
        generators: list[Any],
        request: GenerationRequest,
        *,
        num_images_per_prompt: int,
        row_scales: Mapping[str, list[float]],
        row_ratios: Mapping[str, list[Any]] | None = None,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> tuple[np.ndarray, str]:
        """The pipeline call with per-step progress, cancellation and NaN watch, then the VAE
        decode (:func:`assistant.engine.vae.decode`). Returns np images and the decode's note.

        img2img and the hires fix run through :class:`assistant.engine.passes.Passes` (the same
        call, embeddings and per-row weights); progress counts the steps of every pass."""
        steps = sampling_steps(request)
        watch = _NanWatch(request)
        done = [0]

        def on_step_end(_pipe: Any, _step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            done[0] = min(done[0] + 1, steps)
            watch.check(tensors["latents"], done[0] - 1)
            if progress is not None:
                progress(done[0], steps)
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"Generation cancelled after step {done[0]} of {steps}.")
            return tensors

        call = dict(
            **embeddings,
            num_inference_steps=request.steps,
            guidance_scale=float(request.cfg),
            width=request.width,
            height=request.height,
            num_images_per_prompt=num_images_per_prompt,
            output_type="latent",
            callback_on_step_end=on_step_end,
        )
        latents = noise.initial_latents(
            generators,
            (4, request.height // self._pipe.vae_scale_factor, request.width // self._pipe.vae_scale_factor),
            self.info.device,
            self._pipe.unet.dtype,
        )
        if latents is None:
            call["generator"] = generators
        else:  # Philox (RNG: NV): the starting noise is drawn here, the rest by the sampler's steps
            call["latents"] = latents
        rows = (
            self._row_scaler().unet_rows(row_scales, row_ratios or None)
            if row_scales
            else contextlib.nullcontext()
        )
        fuse = (
            not row_scales
            and not self.settings.low_vram
            and worth_fusing(steps, self.settings.fuse_min_steps)
        )
        fusing = fused(self._pipe.unet) if fuse else contextlib.nullcontext()
        try:
            with rows, fusing as report:
                if report is not None:
                    self.last_fuse = report
                if request.init_image is None and request.hires is None:
                    with noise.philox_step_noise(self._pipe.scheduler, generators):
                        latents_out = self._pipe(**call).images
                else:
                    latents_out = self._passes().run(call, request, generators, device=self.info.device)
            return vae_module.decode(self._pipe, latents_out)
        except torch.OutOfMemoryError as exc:
            raise _out_of_memory(request, num_images_per_prompt) from exc

    def _generate_batched(
        self, cells: list[GenerationRequest], progress: Progress, cancel: threading.Event | None
    ) -> list[GenerationResult]:
        """Cells that differ only in LoRA weights, as one denoising pass (rows = cells x batch)."""
        info = self.info
        first = cells[0]
        started = time.perf_counter()
        batch = first.batch_size
        seeds_per_cell = []
        for cell in cells:
            seed = limits.random_seed() if cell.seed == -1 else cell.seed
            seeds_per_cell.append(batch_seeds(seed, batch))
        guidance = first.cfg > 1
        # 1. one adapter set for all cells: the union of their adapters
        applied_cells = [
            self._prepare_adapters(cell.loras, leave_out=cell.leave_out_unloadable) for cell in cells
        ]
        assert self._adapters is not None
        names = list(dict.fromkeys(n for a in applied_cells for n in a.names))
        parts = {n: self._adapters.components(n) for n in names}
        # 2. per-cell embeddings under each cell's text-encoder weights
        embeds: list[dict[str, torch.Tensor]] = []
        encodings: list[PairInfo] = []
        for applied in applied_cells:
            self._adapters.activate(applied.names, applied.cond, applied.ratios)
            kwargs, encoded = self._encode(first, applied, split=applied.split and guidance)
            embeds.append(kwargs)
            encodings.append(encoded)
        # the union at weight 1; the row hooks scale each cell's rows (assistant.engine.rows)
        union = LoraState(tuple(names), tuple(_weight_dict(parts[n], 1.0, 1.0) for n in names))
        self._adapters.activate(union.names, union.weights)
        kwargs = _stack_embeddings(embeds, batch)
        # 3. per-row UNet weights: uncond rows then cond rows (diffusers' CFG order)
        cond_rows: dict[str, list[float]] = {n: [] for n in names}
        uncond_rows: dict[str, list[float]] = {n: [] for n in names}
        for applied in applied_cells:
            by_name = dict(zip(applied.names, zip(applied.cond, applied.uncond, strict=True), strict=True))
            for n in names:
                cond_w, uncond_w = by_name.get(n, ({"unet": 0.0}, {"unet": 0.0}))
                cond_rows[n] += [cond_w.get("unet", 0.0)] * batch
                uncond_rows[n] += [uncond_w.get("unet", 0.0)] * batch
        scales = {n: (uncond_rows[n] + cond_rows[n]) if guidance else cond_rows[n] for n in names}
        # LoRA block weights per row (assistant.lbw): each cell's ratios on its rows
        ratio_rows: dict[str, list[Any]] = {}
        for n in names:
            per_cell = [dict(zip(a.names, a.ratios, strict=True)).get(n) for a in applied_cells]
            if all(r is None for r in per_cell):
                continue
            cond_ratios = [r for r in per_cell for _ in range(batch)]
            ratio_rows[n] = cond_ratios + cond_ratios if guidance else cond_ratios
        seed = seeds_per_cell[0][0]
        self._pipe.scheduler = make_scheduler(
            self._base_scheduler_config(), first.sampler, first.scheduler, seed
        )
        generators = noise.generators([s for seeds in seeds_per_cell for s in seeds], first.rng, info.device)
        images, vae_note = self._run(
            kwargs,
            generators,
            first,
            num_images_per_prompt=1,
            row_scales=scales,
            row_ratios=ratio_rows,
            progress=progress,
            cancel=cancel,
        )
        if _check_state_on():
            self.check_state(union)
        elapsed = time.perf_counter() - started
        results = []
        for index, (cell, applied, seeds, encoded) in enumerate(
            zip(cells, applied_cells, seeds_per_cell, encodings, strict=True)
        ):
            cell_images = images[index * batch : (index + 1) * batch]
            timings = {"denoise": elapsed / len(cells), "batched_cells": float(len(cells))}
            results.append(
                self._result(
                    cell,
                    images=cell_images,
                    seeds=seeds,
                    applied=applied,
                    info=info,
                    timings=timings,
                    encoded=encoded,
                    notes=(vae_note,) if vae_note else (),
                )
            )
        return results

    def _passes(self) -> Any:
        """img2img / hires-fix runner over this pipeline (:mod:`assistant.engine.passes`)."""
        if self._passes_runner is None:
            from .passes import Passes

            self._passes_runner = Passes(self._pipe)
        return self._passes_runner

    def _row_scaler(self) -> Any:
        if self._rows is None:
            from .rows import RowScaler

            adapters = self._adapters
            assert adapters is not None
            self._rows = RowScaler(self._pipe, block_of=adapters.block_of)
        return self._rows

    def _refresh_rows(self) -> None:
        if self._rows is not None:
            self._rows.refresh()

    def _result(
        self,
        request: GenerationRequest,
        *,
        images: np.ndarray,
        seeds: tuple[int, ...],
        applied: _Applied,
        info: EngineInfo,
        timings: dict[str, float],
        encoded: PairInfo | None = None,
        notes: tuple[str, ...] = (),
    ) -> GenerationResult:
        from .. import infotext
        from ..types import format_weight

        bad = [i for i in range(len(images)) if not np.isfinite(images[i]).all()]
        if len(bad) == len(images):
            raise GenerationError(_nan_message(seeds, request))
        extra: dict[str, str] = {}
        if applied.split and request.cfg > 1:
            extra["Negative LoRA weights"] = ", ".join(
                f"{lora.name}: {format_weight(lora.uncond_te_weight)}"
                + (
                    f"/{format_weight(lora.uncond_unet_weight)}"
                    if lora.uncond_unet_weight != lora.uncond_te_weight
                    else ""
                )
                for lora in request.loras
                if lora.split_branches
            )
        pil_images, texts, kept_seeds = [], [], []
        for i, seed in enumerate(seeds):
            if i in bad:
                continue
            pil_images.append(_to_pil(images[i]))
            kept_seeds.append(seed)
            texts.append(
                infotext.for_request(
                    request,
                    seed,
                    model_name=info.model_name,
                    model_hash=info.model_hash,
                    lora_hashes=applied.hashes,
                    extra=extra or None,
                    vae_name=info.vae_name,
                    vae_hash=info.vae_hash,
                    ti_hashes=dict(encoded.used) if encoded else None,
                    pad_conds=bool(encoded and encoded.padded),
                )
            )
        warnings = (_nan_message(tuple(seeds[i] for i in bad), request),) if bad else ()
        warnings += tuple(applied.notes) + tuple(notes) + (tuple(encoded.notes) if encoded else ())
        return GenerationResult(
            images=tuple(pil_images),
            infotexts=tuple(texts),
            seeds=tuple(kept_seeds),
            request=request,
            timings=dict(timings),
            warnings=warnings,
        )


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _weight_dict(parts: frozenset[str] | set[str], te: float, unet: float) -> dict[str, float]:
    """diffusers' per-component weights for one adapter, only for the parts it patches."""
    out: dict[str, float] = {}
    for part in parts:
        out[part] = float(unet if part == "unet" else te)
    return out


def _added(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    """Per-component weights of one file written twice in a prompt (A1111 applies both tags)."""
    return {part: float(a.get(part, 0.0)) + float(b.get(part, 0.0)) for part in {*a, *b}}


def _uncond_row_scales(applied: _Applied, batch: int) -> dict[str, list[float]]:
    """UNet row weights [uncond x batch; cond x batch] for the adapters whose branches differ."""
    scales: dict[str, list[float]] = {}
    for name, cond, uncond in zip(applied.names, applied.cond, applied.uncond, strict=True):
        if "unet" in cond and cond["unet"] != uncond["unet"]:
            scales[name] = [uncond["unet"]] * batch + [cond["unet"]] * batch
    return scales


def _stack_embeddings(embeds: list[dict[str, torch.Tensor]], batch: int) -> dict[str, torch.Tensor]:
    """Concatenate per-cell embeddings (each repeated ``batch`` times); they have one length."""
    kwargs: dict[str, list[torch.Tensor]] = {}
    for item in embeds:
        for key, tensor in item.items():
            kwargs.setdefault(key, []).append(tensor.repeat_interleave(batch, dim=0))
    out: dict[str, torch.Tensor] = {}
    for key, tensors in kwargs.items():
        if tensors[0].dim() == 3:
            longest = max(t.shape[1] for t in tensors)
            if any(t.shape[1] != longest for t in tensors):
                raise GenerationError("batched cells need prompts of the same token length")
        out[key] = torch.cat(tensors, dim=0)
    return out


def _batch_groups(requests: Sequence[GenerationRequest]) -> list[list[int]]:
    """Indices of requests that can share one denoising pass (same everything but LoRA weights).

    Prompts are compared as they are encoded (LoRA tags removed), so blind-box cells whose text
    differs only in ``<lora:…>`` weights share a pass; each keeps its own text in its infotext.
    """
    from ..prompt import encoder_text

    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, r in enumerate(requests):
        base, _schedule = split_name(r.sampler, r.scheduler)
        seed_key = r.seed if "SDE" in base or r.seed == -1 else None  # one Brownian tree per pass
        files = tuple(sorted(str(Path(lora.path).expanduser().resolve()) for lora in r.loras))
        key = (
            encoder_text(r.prompt),  # LoRA tags are not encoded: cells that differ only there batch
            encoder_text(r.negative),
            r.clip_skip,
            r.rng,
            r.emphasis,
            r.width,
            r.height,
            r.steps,
            float(r.cfg),
            split_name(r.sampler, r.scheduler),
            r.batch_size,
            files,
            seed_key,
            index if r.seed == -1 else None,
            r.init_image.digest if r.init_image is not None else None,  # img2img cells share one image
            r.denoising_strength if r.init_image is not None or r.hires is not None else None,
            r.resize_mode if r.init_image is not None else None,
            r.hires,
        )
        groups.setdefault(key, []).append(index)
    out: list[list[int]] = []
    for indices in groups.values():
        first = requests[indices[0]]
        rows = min(MAX_BATCH_ROWS, MAX_BATCH_PIXELS // (first.width * first.height))
        per_pass = max(1, rows // first.batch_size)
        out += [indices[i : i + per_pass] for i in range(0, len(indices), per_pass)]
    return sorted(out, key=lambda g: g[0])


def _rows_available() -> bool:
    try:
        from . import rows  # noqa: F401
    except ImportError:
        return False
    return True


class _NanWatch:
    """Stops a run as soon as every image's latents are NaN/inf (they never recover)."""

    def __init__(self, request: GenerationRequest) -> None:
        self.request = request
        self.bad_rows: set[int] = set()

    def check(self, latents: torch.Tensor, step: int) -> None:
        finite = torch.isfinite(latents.flatten(1)).all(dim=1)
        if bool(finite.all()):
            return
        self.bad_rows |= {i for i, ok in enumerate(finite.tolist()) if not ok}
        if len(self.bad_rows) == latents.shape[0]:
            raise GenerationError(
                f"The image became NaN/inf at step {step + 1} (it would come out black). "
                f"{_nan_cause(self.request)} On fp16 GPUs a VAE in fp16 can also cause it."
            )


def _nan_message(seeds: tuple[int, ...], request: GenerationRequest) -> str:
    which = ", ".join(str(s) for s in seeds)
    return (
        f"Image(s) with seed {which} contained NaN/inf values (a black image) and were dropped. "
        + _nan_cause(request)
    )


def _nan_cause(request: GenerationRequest) -> str:
    """The likelier culprit: an extreme prompt attention weight, else the LoRA weights."""
    from ..prompt import parse_attention

    weights = [
        w for text in (request.prompt, request.negative) for _chunk, w in parse_attention(text) if w != -1.0
    ]
    top = max((abs(w) for w in weights), default=1.0)
    if top > 10:
        return (
            f"The prompt's attention weights reach {top:.3g} (deeply nested brackets or a large (word:N)); "
            "weights that high break the image: remove brackets or lower the number."
        )
    return "A LoRA weight is probably too high: try about 0.4, or remove LoRAs one by one."


def _embedding_width(pipe: Any) -> int:
    """The vector width an embedding needs on this pipeline (both encoders' for SDXL)."""
    width = int(pipe.text_encoder.config.hidden_size)
    second = getattr(pipe, "text_encoder_2", None)
    return width + int(second.config.hidden_size) if second is not None else width


def _load_textual_inversion(entry: Any) -> TextualInversion | None:
    """The tensors of one embedding file (A1111's layouts, see :mod:`assistant.embeddings`)."""
    from safetensors.torch import load_file

    from ..embeddings import shorthash

    try:
        data = load_file(entry.path, device="cpu")
    except Exception as exc:  # listed as broken by the library; the render goes on without it
        log.warning("embedding %s could not be read: %s", entry.path, error_reason(exc))
        return None
    if "clip_l" in data and "clip_g" in data:
        vectors = {"clip_l": data["clip_l"].float(), "clip_g": data["clip_g"].float()}
    else:
        tensor = next(iter(data.values())).float()
        vectors = {"": tensor.unsqueeze(0) if tensor.ndim == 1 else tensor}
    return TextualInversion(entry.name, vectors, shorthash(entry.path))


def _to_pil(image: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray((image * 255).round().astype("uint8"))


def _quiet_libraries() -> None:
    """transformers/diffusers print per-load progress bars and key reports; keep the log readable."""
    try:
        import diffusers
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        diffusers.utils.logging.set_verbosity_error()
    except Exception:  # pragma: no cover - logging only
        pass


def _injected_name(pipe: Any) -> str:
    if getattr(pipe, "_lora_mixer_name", ""):
        return str(pipe._lora_mixer_name)
    return (
        tiny.TINY_XL_MODEL_NAME if getattr(pipe, "text_encoder_2", None) is not None else tiny.TINY_MODEL_NAME
    )


def _base_of(pipe: Any) -> str:
    from .checkpoints import FAMILY_BASES

    if getattr(pipe, "_lora_mixer_config", "") in FAMILY_BASES:
        return FAMILY_BASES[pipe._lora_mixer_config]
    if getattr(pipe, "text_encoder_2", None) is not None:
        return "sdxl"
    hidden = getattr(getattr(pipe.text_encoder, "config", None), "hidden_size", 768)
    return "sd2" if hidden == 1024 else "sd15"


def _describe(
    pipe: Any, *, name: str, warnings: tuple[str, ...], model_hash: str = "", load_seconds: float = 0.0
) -> EngineInfo:
    """EngineInfo for a pipeline; the tiny models (random and embedded) are recognised by their names."""
    is_embedded = name in _EMBEDDED_NAMES
    is_tiny = is_embedded or name in (_TINY_NAMES | _TINY_XL_NAMES)
    device = str(getattr(pipe, "_lora_mixer_device", "") or getattr(pipe, "device", "cpu"))
    dtype = str(getattr(pipe.unet, "dtype", torch.float32)).removeprefix("torch.")
    base = _base_of(pipe)
    family = family_of(pipe)
    banner = ""
    if is_embedded:
        model_hash = model_hash or hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
        default, banner = embedded.EMBEDDED_SIZE, embedded.BANNER
        family += ", embedded demo"
    elif is_tiny:
        model_hash = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
        default, banner = tiny.TINY_DEFAULT_SIZE, tiny.TINY_BANNER
        family += ", tiny demo"
    elif base == "sd2":
        default = 768 if "v-prediction" in family else 512
    else:
        default = 1024 if base == "sdxl" else 512
    return EngineInfo(
        model_name=name,
        model_hash=model_hash,
        base=base,
        is_tiny=is_tiny,
        device=device,
        dtype=dtype,
        default_size=default,
        banner=banner,
        attention=getattr(pipe, "_lora_mixer_attention", "sdpa"),
        warnings=warnings,
        family=family,
        load_seconds=load_seconds,
    )


def _out_of_memory(request: GenerationRequest, images: int) -> GenerationError:
    """Free what the failed call held and say what to change (the engine stays usable)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return GenerationError(
        f"Out of GPU memory rendering {images} image(s) at {request.width}x{request.height}. Lower the "
        "size or the batch size, or start with --low-vram; nothing else was changed and the next "
        "render starts clean."
    )


def resolve_sampler(request: GenerationRequest) -> GenerationRequest:
    """The request with its sampler split and its schedule resolved as A1111 v1.9+ does
    ("DPM++ 2M" → "DPM++ 2M" + "Karras"; "Euler a" stays without a schedule type), so the
    infotext names what really ran."""
    base, schedule = split_name(request.sampler, request.scheduler)
    scheduler = None if schedule == "Automatic" else schedule
    if (base, scheduler) == (request.sampler, request.scheduler):
        return request
    return replace(request, sampler=base, scheduler=scheduler)


def batch_seeds(seed: int, count: int) -> tuple[int, ...]:
    """A1111's seeds for a batch: seed, seed + 1, … (wrapped past 2**32 - 1, see ``wrap_seed``)."""
    return tuple(wrap_seed(seed + i) for i in range(count))


def _load_pipeline(settings: Settings) -> tuple[Any, EngineInfo]:
    """The configured model, or the embedded one (:mod:`assistant.engine.embedded`) when none is
    configured or a hub id cannot be reached (offline); ``tiny-sd15``/``tiny-sdxl`` are the
    random-weight pipelines. A local file or folder that fails to load is an error, not a swap."""
    choice = choose_device(settings.device)
    model = (settings.model or "").strip()
    warnings: tuple[str, ...] = ()
    offload = settings.low_vram and choice.device.startswith("cuda")
    if model and model not in _TINY_NAMES | _TINY_XL_NAMES | _EMBEDDED_NAMES:
        try:
            started = time.perf_counter()
            pipe, model_hash = _load_real(model, choice, settings, place=not offload)
            pipe._lora_mixer_device = choice.device
            pipe._lora_mixer_attention = configure_attention(pipe, choice, low_vram=settings.low_vram)
            pipe.set_progress_bar_config(disable=True)
            seconds = time.perf_counter() - started
            info = _describe(
                pipe, name=_model_name(model), warnings=(), model_hash=model_hash, load_seconds=seconds
            )
            log.info("loaded %s (%s) in %.1f s", info.model_name, info.family, seconds)
            return pipe, info
        except GenerationError:
            raise
        except Exception as exc:
            reason = error_reason(exc)
            if Path(model).expanduser().exists():  # a file or folder that is there but broken
                raise GenerationError(f"Could not load model '{model}' ({reason}).") from exc
            offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
            hint = (
                " — offline mode (HF_HUB_OFFLINE) is on"
                if offline
                else " — if the hub cannot be reached from here, set HF_ENDPOINT to a mirror "
                "(e.g. HF_ENDPOINT=https://hf-mirror.com)"
            )
            warnings = (
                f"Could not load model '{model}' ({reason}){hint}; using the embedded demo model instead.",
            )
    if model not in _TINY_NAMES | _TINY_XL_NAMES:
        if embedded.available():
            dtype = choice.dtype if choice.device != "cpu" else torch.float32
            pipe = embedded.load(choice.device, dtype)
            pipe._lora_mixer_device = choice.device
            pipe._lora_mixer_attention = (
                configure_attention(pipe, choice, low_vram=True) if settings.low_vram else "sdpa"
            )
            weights = embedded.EMBEDDED_DIR / "unet" / "diffusion_pytorch_model.safetensors"
            return pipe, _describe(
                pipe,
                name=embedded.EMBEDDED_NAME,
                warnings=warnings,
                model_hash=_file_hash(weights, Path(settings.cache_dir)),
            )
        warnings = (
            *warnings,
            f"The embedded model's files are missing ({embedded.EMBEDDED_DIR}); using the random-weight "
            "demo pipeline (images are noise).",
        )
    xl = model in _TINY_XL_NAMES
    build = tiny.build_tiny_sdxl if xl else tiny.build_tiny_sd15
    pipe = build(choice.device, choice.dtype if choice.device != "cpu" else torch.float32)
    pipe._lora_mixer_device = choice.device
    pipe._lora_mixer_attention = (
        configure_attention(pipe, choice, low_vram=True) if settings.low_vram else "sdpa"
    )
    name = tiny.TINY_XL_MODEL_NAME if xl else tiny.TINY_MODEL_NAME
    return pipe, _describe(pipe, name=name, warnings=warnings)


def _model_name(model: str) -> str:
    path = Path(model)
    return path.stem if path.suffix in (".safetensors", ".ckpt") else path.name or model


def pretrained_variant(choice: DeviceChoice, source: str) -> str | None:
    """``"fp16"`` for a hub id on CUDA (half the download, as diffusers' docs advise); None else."""
    if not choice.device.startswith("cuda") or Path(source).expanduser().exists():
        return None
    return "fp16"


def _load_real(
    model: str, choice: DeviceChoice, settings: Settings, *, place: bool = True
) -> tuple[Any, str]:
    """A hub id, a local diffusers folder or a single-file checkpoint -> (pipeline, A1111 hash).

    ``place``: move it to the device (not with model CPU offload, which places parts itself).
    """
    from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    path = Path(model).expanduser()
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    model_hash = ""
    if path.is_file():
        if path.suffix != ".safetensors":
            raise GenerationError(
                f"Model file '{path}' is not a .safetensors checkpoint; LoRA Mixer loads no pickle files "
                "(.ckpt/.pt/.bin can run code when loaded). Convert it to .safetensors first."
            )
        pipe, kind, _seconds = load_single_file(path, choice.dtype, settings.model_configs or CONFIGS_DIR)
        pipe._lora_mixer_family = kind.label
        pipe._lora_mixer_config = kind.folder
        model_hash = _file_hash(path, Path(settings.cache_dir))
    else:
        source = str(path) if path.is_dir() else model
        options: dict[str, Any] = {
            "torch_dtype": choice.dtype,
            "safety_checker": None,
            "local_files_only": offline,
            "use_safetensors": True,
        }
        variant = pretrained_variant(choice, source)
        try:
            pipe = DiffusionPipeline.from_pretrained(source, variant=variant, **options)
        except (OSError, ValueError) as exc:
            if variant is None:
                raise
            log.info("no %s variant of %s (%s); loading the full-precision files", variant, source, exc)
            pipe = DiffusionPipeline.from_pretrained(source, **options)
    if not isinstance(pipe, (StableDiffusionPipeline, StableDiffusionXLPipeline)):
        raise GenerationError(
            f"Model '{model}' is a {type(pipe).__name__}; LoRA Mixer supports Stable Diffusion 1.x/2.x "
            "and SDXL text-to-image pipelines."
        )
    if getattr(pipe, "safety_checker", None) is not None:
        pipe.safety_checker = None  # A1111 has none; it would black out images silently
    return (pipe.to(choice.device) if place else pipe), model_hash


def _file_hash(path: Path, cache_dir: Path) -> str:
    """A1111's model hash (first 10 hex of the file's sha256), cached by path, size and mtime."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = cache_dir / "model-hashes.json"
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return str(cache[key])
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()[:10]
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache[key] = value
        cache_file.write_text(json.dumps(cache, indent=1), encoding="utf-8")
    except OSError:
        pass
    return value
