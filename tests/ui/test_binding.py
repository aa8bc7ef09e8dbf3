"""Handlers take the render settings as ONE value (issue 17): assistant.ui.binding.bind spells the
values out for Gradio (the API's parameter names unchanged) and packs them for the handler."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from assistant.config import DEFAULT_LORA_DIR, Settings
from assistant.fake_engine import FakeEngine
from assistant.service import RenderSettings, Service
from assistant.types import DEFAULT_SAMPLER
from assistant.ui.binding import RENDER_FIELDS, bind, render_settings
from assistant.ui.img2img import PANEL_FIELDS, ImageInputs

SETTINGS = ["Euler", 3, 7.0, 64, 64, 5, 2]  # sampler, steps, cfg, width, height, seed, batch
PANEL = [None, 0.75, 0, False, "Latent", 2.0, 0, 0.7]


class Request:
    """Stands for ``gr.Request`` (Gradio finds the request by its annotation)."""


def test_render_settings_packs_the_accordion_in_order() -> None:
    packed = render_settings(SETTINGS)
    assert packed == RenderSettings(
        sampler="Euler", steps=3, cfg=7.0, width=64, height=64, seed=5, batch_size=2
    )
    assert render_settings(["", *SETTINGS[1:]]).sampler == DEFAULT_SAMPLER  # an empty dropdown


def test_bind_spells_out_the_settings_and_hands_them_over_as_one_value() -> None:
    seen: dict[str, Any] = {}

    def handler(
        prompt: str, *, settings: RenderSettings, history: list[Any] | None, image: ImageInputs | None = None,
        request: Request,
    ) -> Iterator[str]:  # fmt: skip
        seen.update(prompt=prompt, settings=settings, history=history, image=image, request=request)
        yield "done"

    bound = bind(handler)
    params = inspect.signature(bound).parameters
    assert list(params) == ["prompt", *RENDER_FIELDS, "history", *PANEL_FIELDS, "request"]
    assert all(params[f].default is inspect.Parameter.empty for f in RENDER_FIELDS)  # the API requires them
    assert params["strength"].default == 0.75  # the panel stays optional for API clients
    assert inspect.isgeneratorfunction(bound)
    assert bound.__annotations__ == {"request": Request}
    req = Request()
    assert list(bound("1girl", *SETTINGS, [], *PANEL, req)) == ["done"]
    assert seen == {
        "prompt": "1girl",
        "settings": render_settings(SETTINGS),
        "history": [],
        "image": ImageInputs(),
        "request": req,
    }


def test_bind_keeps_a_plain_handler_plain_and_refuses_star_args() -> None:
    def plain(name: str, *, sampler: str, steps: float) -> tuple[str, str, float]:
        return name, sampler, steps

    bound = bind(plain)
    assert not inspect.isgeneratorfunction(bound)
    assert list(inspect.signature(bound).parameters) == ["name", "sampler", "steps"]
    assert bound("x", "Euler", 3) == ("x", "Euler", 3)

    def star(*values: Any) -> None:
        return None

    with pytest.raises(TypeError, match="cannot spell out"):
        bind(star)


# -- the app's handlers ----------------------------------------------------------------------------

#: The API parameters of the render endpoints, as gradio_client callers send them (never to change).
API_PARAMETERS = {
    "chat": ["message", "history", "positive", "negative", "apply_changes", *RENDER_FIELDS, "recipe"],
    "generate": ["positive", "negative", "apply_changes", *RENDER_FIELDS, "history"],
    "blindbox": ["positive", "negative", "apply_changes", "count", *RENDER_FIELDS, "history", "recipe"],
    "ab": ["positive", "negative", "apply_changes", "a", "b", *RENDER_FIELDS, "history"],
    "sweep": ["positive", "negative", "apply_changes", "x_axis", "y_axis", *RENDER_FIELDS, "history"],
}


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def handlers(tmp_path: Path, fake: FakeEngine) -> Any:
    pytest.importorskip("gradio")
    from assistant.ui.handlers import Handlers

    folders = {"outputs_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}
    service = Service(Settings(lora_dirs=(str(DEFAULT_LORA_DIR),), **folders), engine=fake)
    service.start(background=False)  # the fake engine: no torch, a render in milliseconds
    return Handlers(service)


@pytest.mark.parametrize("name", sorted(API_PARAMETERS))
def test_render_handlers_take_one_settings_value_and_keep_their_api_parameters(
    handlers: Any, name: str
) -> None:
    handler = getattr(handlers, name)
    assert inspect.signature(handler).parameters["settings"].annotation in ("RenderSettings", RenderSettings)
    names = list(inspect.signature(bind(handler)).parameters)
    assert names == [*API_PARAMETERS[name], *PANEL_FIELDS, "request"]


def test_recipe_handler_keeps_its_api_parameters(handlers: Any) -> None:
    names = list(inspect.signature(bind(handlers.recipe)).parameters)
    assert names == [
        "name",
        "positive",
        "negative",
        "applied",
        "sampler",
        "steps",
        "cfg",
        "width",
        "height",
        "seed",
    ]


def test_bound_generate_renders_with_the_packed_settings(handlers: Any, fake: FakeEngine) -> None:
    request = SimpleNamespace(session_hash="s1", username=None)
    generate = bind(handlers.generate)
    *_, last = generate("1girl, <lora:catgirl_v1:0.6>", "", False, *SETTINGS, [], *PANEL, request)
    history, positive, _negative = last
    assert positive == "1girl, <lora:catgirl_v1:0.6>"
    (request_made,) = fake.requests
    assert (request_made.steps, request_made.width, request_made.seed) == (3, 64, 5)
    assert request_made.batch_size == 2  # Generate keeps the batch size
    reply = history[-1]["content"]
    assert [Path(part["path"]).name for part in reply if isinstance(part, dict)] == [
        "00000-5.png",
        "00001-6.png",
    ]


def test_bound_blindbox_draws_one_image_a_cell(handlers: Any, fake: FakeEngine) -> None:
    request = SimpleNamespace(session_hash="s2", username=None)
    blindbox = bind(handlers.blindbox)
    prompt = "1girl, <lora:catgirl_v1:0.6>, <lora:cyberpunk_style:0.5>"
    list(blindbox(prompt, "", False, 2, *SETTINGS, [], None, *PANEL, request))
    requests = fake.requests
    assert requests
    assert all(
        r.batch_size == 1 for r in requests
    )  # a grid cell is one image, whatever the batch slider says
