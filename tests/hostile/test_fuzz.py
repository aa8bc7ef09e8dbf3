"""Property-based fuzzing (hypothesis) of the advisor and the API request model.

The parser has its own fuzz test in test_prompt.py. Here: any prompt pair built from real and
hostile LoRA names, odd weights and grammar characters gives either a LoraMixerError or an
:class:`~assistant.types.Advice` whose plan only holds loadable LoRAs with finite, bounded
weights; and any JSON object sent to ``/sdapi/v1/txt2img`` either fails validation or becomes
render settings inside the published limits.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.errors import LoraMixerError

from .cases import FILE_CASES
from .conftest import hostile_stem

advisor = pytest.importorskip("assistant.advisor")
library_module = pytest.importorskip("assistant.library")

NAMES = [
    *("catgirl_v1", "cyberpunk_style", "soft_light", "add_detail", "watercolor_xl", "CATGIRL_V1", "catgrl"),
    *("../../etc/passwd", "/etc/passwd", "猫娘", "", " "),
    *(hostile_stem(c.id) for c in FILE_CASES[:8]),
]
WEIGHTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda w: f"{w:g}"),
    st.sampled_from(["", "abc", "0.8:a", "te=0.5", "unet=-1", "1e309", "-0", "0.5:0.5:4", "nan"]),
)
TAG = st.builds(lambda n, w: f"<lora:{n}:{w}>", st.sampled_from(NAMES), WEIGHTS) | st.builds(
    lambda n: f"<lora:{n}>", st.sampled_from(NAMES)
)
WORDS = st.sampled_from(
    ["1girl", "cat ears", "(masterpiece:1.2)", "[blurry]", "BREAK", "extra ears", ", ", "(", ">"]
)
PROMPT = st.lists(TAG | WORDS | st.text(max_size=6), max_size=12).map(", ".join)


@pytest.fixture(scope="module")
def library(hostile_lora_dir: Path):  # type: ignore[no-untyped-def]
    return library_module.Library.scan([str(hostile_lora_dir)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(positive=PROMPT, negative=PROMPT)
def test_fuzz_advisor(library, positive: str, negative: str) -> None:  # type: ignore[no-untyped-def]
    try:
        advice = advisor.advise(positive, negative, library=library, base="sd15")
    except LoraMixerError as err:
        message = str(err)
        advice = None
    else:
        message = "accepted"
    assert message.strip(), "an error must say what is wrong"
    if advice is None:
        return
    loadable = {info.path for info in library.loadable()}
    for planned in advice.plan:
        assert planned.path in loadable, f"planned a LoRA that is not loadable: {planned}"
        for value in (
            planned.te_weight,
            planned.unet_weight,
            planned.uncond_te_weight,
            planned.uncond_unet_weight,
        ):
            assert math.isfinite(value)
            assert abs(value) <= 2.0


api = pytest.importorskip("assistant.api")
service_module = pytest.importorskip("assistant.service")

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
FIELDS = ["prompt", "negative_prompt", "seed", "steps", "cfg_scale", "width", "height", "sampler_name",
          "scheduler", "batch_size", "n_iter", "assistant", "symptoms", "enable_hr"]  # fmt: skip
BODY = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES | st.integers(-(2**70), 2**70), max_size=8)


@settings(max_examples=300, deadline=None)
@given(body=BODY)
def test_fuzz_api_request_model(body: dict[str, object]) -> None:
    from pydantic import ValidationError

    problems: list[object] = []
    validated = None
    try:
        validated = api.Txt2ImgRequest.model_validate(body).render_settings().validated()
    except ValidationError as err:
        problems = list(err.errors())
    except LoraMixerError as err:
        problems = [str(err).strip()]
    if validated is None:
        assert problems, "a rejection must say what was wrong"
        assert all(problems)
        return
    limits = service_module.LIMITS
    for name in ("steps", "width", "height", "batch_size", "n_iter", "seed"):
        low, high = limits[name]
        value = getattr(validated, name)
        assert isinstance(value, int)
        assert low <= value <= high, (name, value)
    assert math.isfinite(validated.cfg)
    assert validated.width % 8 == 0
    assert validated.height % 8 == 0
