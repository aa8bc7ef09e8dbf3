"""A long-running engine renders exactly what a fresh one renders, whatever came before.

Hypothesis state machines drive ONE long-lived engine per sequence (and, in the last test, one
:class:`~assistant.service.Service` behind the real A1111 HTTP API) through random sequences of
what a server sees in a day: no LoRA, weight 0, attention-only, full kohya, LoCon, UNet-only,
TE-only and PEFT files, mixes, separate text-encoder/UNet weights, negative-prompt LoRA weights,
batched blind-box cells, failed loads (wrong base, corrupt file, a half-fitting file), a
cancelled render and (through the service) model switches. Every image is compared with a fresh
engine's render of the same request: bit for bit on CPU, batched blind-box cells within 1/255
(a larger batch may round differently; ``tests/engine_rows`` measures it). The engines run with
a 4-file adapter cache, so evictions and reloads happen too, and with
``LORA_MIXER_CHECK_STATE=1`` (tests/conftest.py), so each render also checks every LoRA layer.

On a failure Hypothesis prints the shortest sequence it found, as runnable steps — this one is
what it found on the engine before the fix::

    state = SD15Engine()
    state.render(loras=(Use(kind='te', weight=0.0, unet=1.0),))
    state.no_lora()
    state.render(loras=(Use('te', 1.0), Use('attention', 1.0), Use('locon', 1.0)))
    state.teardown()
    AssertionError: render (<lora:te:1>, <lora:attention:1>, <lora:locon:1>): differs from a
    fresh engine's render (max 153/255, mean 20.93, 11868 of 12288 values)

Sizes (:data:`DEFAULT_SIZES`): SD1.5 engine 4 sequences of up to 10 steps, SDXL engine 2 x 6,
service 2 x 8 — most of the time goes to the fresh references (cached per request for the
whole session). ``LORA_MIXER_STATE_EXAMPLES`` / ``LORA_MIXER_STATE_STEPS`` set all machines at
once for a soak run, e.g. ``LORA_MIXER_STATE_EXAMPLES=200 LORA_MIXER_STATE_STEPS=30`` with
``pytest --timeout=0`` (the suite's 600 s per-test limit would stop it); ``LORA_MIXER_STATE_LOG=<file>``
counts the steps run.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from assistant.errors import Cancelled, LoraLoadError
from assistant.types import GenerationRequest, PlannedLora, format_weight
from tests.server import free_port

from .harness import (
    BAD_KINDS,
    CFG,
    KINDS,
    NEGATIVE,
    PROMPT,
    SAMPLER,
    SEED,
    SIZE,
    STEPS,
    Model,
    assert_like_fresh,
    pixels,
    request,
)

pytestmark = [pytest.mark.engine, pytest.mark.slow]

#: (sequences, steps per sequence) per machine in CI: the SD1.5 engine is cheap, so it gets the
#: most; an SDXL fresh reference loads files of ~1000 layers (~1.5 s each on one core).
DEFAULT_SIZES = {"sd15": (4, 10), "sdxl": (2, 6), "service": (2, 8)}


def _settings(machine: str) -> settings:
    """Hypothesis settings for one machine; LORA_MIXER_STATE_EXAMPLES / _STEPS override all."""
    examples, steps = DEFAULT_SIZES[machine]
    return settings(
        max_examples=int(os.environ.get("LORA_MIXER_STATE_EXAMPLES", examples)),
        stateful_step_count=int(os.environ.get("LORA_MIXER_STATE_STEPS", steps)),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


#: Few values on purpose: requests repeat across steps and sequences, so fresh references are
#: reused (each costs a model copy, its loads and a render). 0 is "the same as no LoRA".
WEIGHTS = (1.0, 0.6, -0.7, 0.0)
MIX_WEIGHTS = (1.0, 0.5, -0.6)
CELL_WEIGHTS = (0.3, 1.0)
#: Mixes a user would stack (character + style …), as file kinds, in prompt order.
MIXES: tuple[tuple[str, ...], ...] = (
    ("attention", "kohya"),
    ("locon", "te"),
    ("peft", "unet"),
    ("te", "attention", "locon"),
)


@dataclass(frozen=True)
class Use:
    """One LoRA in a step, shown as the A1111 tag it stands for (so printed steps read well)."""

    kind: str
    weight: float
    unet: float | None = None  # <lora:kind:te:unet>
    negative: float | None = None  # its weight in the negative (uncond) pass

    def __repr__(self) -> str:
        unet = f":{format_weight(self.unet)}" if self.unet is not None else ""
        negative = f" negative={format_weight(self.negative)}" if self.negative is not None else ""
        return f"<lora:{self.kind}:{format_weight(self.weight)}{unet}>{negative}"

    def planned(self, model: Model) -> PlannedLora:
        return model.lora(self.kind, self.weight, unet=self.unet, negative_weight=self.negative)

    def tag(self, model: Model) -> str:
        unet = f":{format_weight(self.unet)}" if self.unet is not None else ""
        return f"<lora:{model.files[self.kind].stem}:{format_weight(self.weight)}{unet}>"


def _one() -> st.SearchStrategy[tuple[Use, ...]]:
    use = st.builds(
        Use,
        kind=st.sampled_from(KINDS),
        weight=st.sampled_from(WEIGHTS),
        unet=st.none() | st.sampled_from((0.0, 1.0)),
    )
    return st.tuples(use)


def _mix() -> st.SearchStrategy[tuple[Use, ...]]:
    return st.sampled_from(MIXES).flatmap(
        lambda kinds: st.tuples(*(st.builds(Use, st.just(k), st.sampled_from(MIX_WEIGHTS)) for k in kinds))
    )


LORAS = _one() | _mix()


#: A LoRA's weight in the negative (uncond) pass: stronger (below its weight), off, weaker.
NEGATIVE_WEIGHTS = (-0.5, 0.0, 1.0)


def _negative_first(loras: tuple[Use, ...], negative: float | None) -> tuple[Use, ...]:
    """The first LoRA of a step with its own negative-pass weight (``None``: the same as cond)."""
    if negative is None:
        return loras
    return (dataclasses.replace(loras[0], negative=negative), *loras[1:])


def _cells() -> st.SearchStrategy[tuple[tuple[Use, ...], ...]]:
    """2 blind-box cells: the same LoRA files, different weights (the first LoRA of a cell may
    have its own negative-pass weight: a split cell in the batched pass)."""
    kinds = st.sampled_from(tuple((k,) for k in KINDS)) | st.sampled_from(MIXES)

    def cell(ks: tuple[str, ...]) -> st.SearchStrategy[tuple[Use, ...]]:
        first = st.builds(
            Use, st.just(ks[0]), st.sampled_from(CELL_WEIGHTS), negative=st.none() | st.just(-0.5)
        )
        rest = (st.builds(Use, st.just(k), st.sampled_from(CELL_WEIGHTS)) for k in ks[1:])
        return st.tuples(first, *rest)

    return kinds.flatmap(lambda ks: st.tuples(cell(ks), cell(ks)))


def _check_refusal(message: str, name: str) -> None:
    assert name in message, message
    assert message.rstrip(")").endswith((".", "…")) or message.endswith(")"), f"cut short: {message!r}"
    for dump in ("Traceback", "{'", "torch.Size(", "size mismatch for"):
        assert dump not in message, message


class Counted(RuleBasedStateMachine):
    """Counts steps; with ``LORA_MIXER_STATE_LOG=<file>`` each finished sequence appends a line
    ``<machine> steps=<n>`` to it (how a soak run reports what it covered)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = -1  # the invariant also runs once before the first step

    @invariant()
    def count(self) -> None:
        self.steps += 1

    def teardown(self) -> None:
        log = os.environ.get("LORA_MIXER_STATE_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(f"{type(self).__name__} steps={max(self.steps, 0)}\n")


def _cancel_after_first_step() -> tuple[threading.Event, Any]:
    cancel = threading.Event()

    def progress(done: int, *_rest: Any) -> None:
        if done >= 1:
            cancel.set()

    return cancel, progress


# ----------------------------------------------------------------------------------------------
# One long-lived engine
# ----------------------------------------------------------------------------------------------


class EngineMachine(Counted):
    """ONE engine per sequence; every image against a fresh engine's."""

    model: ClassVar[Model]

    def __init__(self) -> None:
        super().__init__()
        self.engine = self.model.engine(cache_size=4)

    def _compare(self, req: GenerationRequest, what: str) -> None:
        assert self.model.fresh is not None
        assert_like_fresh(pixels(self.engine.generate(req)), self.model.fresh(req), what)

    @rule()
    def no_lora(self) -> None:
        self._compare(request(), "no LoRA")

    @rule(loras=LORAS)
    def render(self, loras: tuple[Use, ...]) -> None:
        self._compare(request(u.planned(self.model) for u in loras), f"render {loras}")

    @rule(loras=LORAS, negative=st.sampled_from(NEGATIVE_WEIGHTS))
    def negative_weights(self, loras: tuple[Use, ...], negative: float) -> None:
        loras = _negative_first(loras, negative)
        self._compare(request(u.planned(self.model) for u in loras), f"negative-pass weights {loras}")

    @rule(cells=_cells())
    def blind_box(self, cells: tuple[tuple[Use, ...], ...]) -> None:
        requests = [request(u.planned(self.model) for u in cell) for cell in cells]
        results = self.engine.generate_many(requests, batched=True)
        assert self.model.fresh is not None
        for cell, req, result in zip(cells, requests, results, strict=True):
            assert_like_fresh(pixels(result), self.model.fresh(req), f"blind-box cell {cell}", tolerance=1)

    @rule(bad=st.sampled_from(BAD_KINDS), good=st.none() | st.sampled_from(KINDS))
    def failed_load(self, bad: str, good: str | None) -> None:
        loras = [self.model.lora(good, 0.6)] if good else []
        loras.append(self.model.lora(bad, 0.8))
        with pytest.raises(LoraLoadError) as caught:
            self.engine.generate(request(loras))
        _check_refusal(str(caught.value), self.model.files[bad].stem)

    @rule(loras=LORAS, negative=st.none() | st.sampled_from(NEGATIVE_WEIGHTS))
    def cancelled(self, loras: tuple[Use, ...], negative: float | None) -> None:
        cancel, progress = _cancel_after_first_step()
        loras = _negative_first(loras, negative)
        with pytest.raises(Cancelled):
            self.engine.generate(
                request(u.planned(self.model) for u in loras), progress=progress, cancel=cancel
            )

    @rule(cells=_cells())
    def cancelled_blind_box(self, cells: tuple[tuple[Use, ...], ...]) -> None:
        """Cancelled inside the batched pass (per-row hooks attached)."""
        cancel, progress = _cancel_after_first_step()
        with pytest.raises(Cancelled):
            self.engine.generate_many(
                [request(u.planned(self.model) for u in cell) for cell in cells],
                batched=True,
                progress=progress,
                cancel=cancel,
            )


def _engine_machine(model: Model) -> type[EngineMachine]:
    name = f"{model.key.upper()}Engine"
    return type(name, (EngineMachine,), {"model": model, "__qualname__": name})


@pytest.mark.parametrize("key", ["sd15", "sdxl"])
def test_one_engine_renders_like_fresh_engines(structured: dict[str, Model], key: str) -> None:
    run_state_machine_as_test(_engine_machine(structured[key]), settings=_settings(key))


# ----------------------------------------------------------------------------------------------
# One service behind the real HTTP API, switching models
# ----------------------------------------------------------------------------------------------


class ApiServer:
    """The A1111 API of one service on 127.0.0.1 (uvicorn in a thread: real HTTP, real JSON)."""

    def __init__(self, service: Any) -> None:
        import uvicorn

        from assistant.api import create_app

        self.port = free_port()
        config = uvicorn.Config(
            create_app(service), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api-under-test", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}/sdapi/v1", timeout=120)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _decode(image_b64: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(image_b64))) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)[None]


class ServiceMachine(Counted):
    """One Service per sequence (its engine lives through the sequence until a model switch)."""

    models: ClassVar[dict[str, Model]]
    workdir: ClassVar[Path]

    def __init__(self) -> None:
        super().__init__()
        from assistant.config import Settings
        from assistant.service import Service

        sd15 = self.models["sd15"]
        assert sd15.folder is not None
        catalog = self.workdir / "empty-catalog.yaml"
        catalog.write_text("loras: {}\n", encoding="utf-8")
        self.service = Service(
            Settings(
                lora_dirs=(str(sd15.files["kohya"].parent),),
                model=str(sd15.folder),
                models_dir=str(sd15.folder.parent),
                device="cpu",
                outputs_dir=str(self.workdir / "outputs"),
                cache_dir=str(self.workdir / "cache"),
                catalog=str(catalog),
                adapter_cache_size=4,
                allow_model_switch=True,
            )
        )
        self.service.start(background=False)
        self.api = ApiServer(self.service)
        self.current = "sd15"

    def teardown(self) -> None:
        self.api.stop()
        super().teardown()

    @property
    def model(self) -> Model:
        return self.models[self.current]

    def _fresh(self, req: GenerationRequest) -> np.ndarray:
        assert self.model.fresh is not None
        return self.model.fresh(req)

    def _txt2img(self, prompt: str, negative: str = NEGATIVE, *, strict: bool = False) -> httpx.Response:
        payload = {
            "strict": strict,
            "prompt": prompt,
            "negative_prompt": negative,
            "seed": SEED,
            "steps": STEPS,
            "cfg_scale": CFG,
            "width": SIZE,
            "height": SIZE,
            "sampler_name": SAMPLER,
            "assistant": False,
        }
        return self.api.client.post("/txt2img", json=payload)

    def _settings(self) -> Any:
        from assistant.service import RenderSettings

        return RenderSettings(sampler=SAMPLER, steps=STEPS, cfg=CFG, width=SIZE, height=SIZE, seed=SEED)

    @rule(loras=st.just(()) | LORAS)
    def api_txt2img(self, loras: tuple[Use, ...]) -> None:
        """POST /sdapi/v1/txt2img, assistant off: the prompt's tags exactly as written."""
        prompt = ", ".join([PROMPT, *(u.tag(self.model) for u in loras)])
        response = self._txt2img(prompt)
        assert response.status_code == 200, response.text
        body = response.json()
        info = json.loads(body["info"])
        planned = [
            PlannedLora(
                name=entry["name"],
                path=str(self.model.files[entry["name"].split("_", 1)[1]]),
                weight=entry["weight"],
                unet=entry["unet"],
            )
            for entry in info["assistant"]["loras"]
        ]
        req = request(planned, prompt=info["prompt"], negative=info["negative_prompt"], seed=info["seed"])
        assert_like_fresh(_decode(body["images"][0]), self._fresh(req), f"API txt2img {prompt!r}")

    @rule(loras=LORAS, negative_tag=st.none() | st.sampled_from((-0.5, 0.5)))
    def assistant_render(self, loras: tuple[Use, ...], negative_tag: float | None) -> None:
        """The service with the assistant on: its rewrite (budget, negative tags) is what renders."""
        prompt = ", ".join([PROMPT, *(u.tag(self.model) for u in loras)])
        negative = NEGATIVE
        if negative_tag is not None:
            negative += f", <lora:{self.model.files[loras[0].kind].stem}:{format_weight(negative_tag)}>"
        rendered = self.service.generate(prompt, negative, self._settings(), use_assistant=True)
        assert_like_fresh(pixels(rendered.results[0]), self._fresh(rendered.request), f"assistant {prompt!r}")

    @rule(kinds=st.sampled_from(MIXES) | st.sampled_from(tuple((k,) for k in KINDS)))
    def blind_box(self, kinds: tuple[str, ...]) -> None:
        prompt = ", ".join([PROMPT, *(f"<lora:{self.model.files[k].stem}:0.6>" for k in kinds)])
        plan = self.service.blindbox(prompt, NEGATIVE, self._settings(), n=2, seed=SEED, use_assistant=False)
        for result in plan.results:
            assert result.request is not None
            assert_like_fresh(pixels(result), self._fresh(result.request), f"blind box {kinds}", tolerance=1)

    @rule(bad=st.sampled_from(BAD_KINDS), strict=st.booleans())
    def failed_load(self, bad: str, strict: bool) -> None:
        """``"strict": true``: 4xx naming the file; otherwise (issue 12) the render without it and a
        note naming it and why."""
        name = self.model.files[bad].stem
        response = self._txt2img(f"{PROMPT}, <lora:{name}:0.8>", strict=strict)
        if strict:
            assert response.status_code in (400, 422), response.text
            _check_refusal(response.json()["detail"], name)
            return
        assert response.status_code == 200, response.text
        body = response.json()
        (note,) = [n for n in json.loads(body["info"])["notes"] if name in n]
        _check_refusal(note, name)
        without = request((), prompt=f"{PROMPT}, <lora:{name}:0.8>")  # the same text, no LoRA applied
        assert_like_fresh(_decode(body["images"][0]), self._fresh(without), f"left out {bad}")

    @rule(loras=LORAS)
    def cancelled(self, loras: tuple[Use, ...]) -> None:
        cancel, progress = _cancel_after_first_step()
        prompt = ", ".join([PROMPT, *(u.tag(self.model) for u in loras)])
        with pytest.raises(Cancelled):
            self.service.generate(
                prompt, NEGATIVE, self._settings(), use_assistant=False, progress=progress, cancel=cancel
            )

    @rule(to=st.sampled_from(("sd15", "sdxl")))
    def switch_model(self, to: str) -> None:
        folder = self.models[to].folder
        assert folder is not None
        response = self.api.client.post("/options", json={"sd_model_checkpoint": folder.name})
        assert response.status_code == 200, response.text
        self.current = to


def test_service_and_api_render_like_fresh_engines(structured: dict[str, Model], tmp_path: Path) -> None:
    machine = type(
        "ServiceAndApi",
        (ServiceMachine,),
        {"models": structured, "workdir": tmp_path, "__qualname__": "ServiceAndApi"},
    )
    run_state_machine_as_test(machine, settings=_settings("service"))
