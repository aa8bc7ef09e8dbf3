"""The A1111-compatible API on the real server: the ``webuiapi`` client and plain HTTP."""

from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
from PIL import Image

from assistant.infotext import parse as parse_infotext
from assistant.library import Library

from .conftest import LORA_DIR, TINY, AppServer

pytestmark = [pytest.mark.server, pytest.mark.engine, pytest.mark.slow]

webuiapi = pytest.importorskip("webuiapi")


def _catgirl_hash() -> str:
    return Library.scan([LORA_DIR], cache_dir=None).hashes("catgirl_v1").a1111


def test_webuiapi_txt2img_names_the_lora_hash(app_server: AppServer) -> None:
    api = webuiapi.WebUIApi(host="127.0.0.1", port=app_server.port)
    result = api.txt2img(
        prompt="1girl, cat ears, <lora:catgirl_v1:0.8>",
        sampler_name="DPM++ 2M Karras",
        steps=2,
        width=64,
        height=64,
        seed=7,
    )
    assert result.image.size == (64, 64)
    infotext = result.image.info["parameters"]  # the PNG chunk, as A1111 writes it
    assert infotext == result.info["infotexts"][0]
    parsed = parse_infotext(infotext)
    assert parsed.lora_hashes == {"catgirl_v1": _catgirl_hash()}
    assert parsed.seed == 7
    assert (parsed.sampler, parsed.schedule_type) == ("DPM++ 2M", "Karras")
    assert result.info["all_seeds"] == [7]
    # the assistant ran: its changes are reported, and the image was saved with the same text
    assert result.info["assistant"]["enabled"] is True
    assert result.info["assistant"]["loras"][0]["name"] == "catgirl_v1"
    saved = result.info["saved_paths"]
    assert len(saved) == 1
    with Image.open(saved[0]) as image:
        assert image.info["parameters"] == infotext


def test_webuiapi_batch_and_iterations(app_server: AppServer) -> None:
    api = webuiapi.WebUIApi(host="127.0.0.1", port=app_server.port)
    result = api.txt2img(prompt="1girl", steps=2, width=64, height=64, seed=100, batch_size=2, n_iter=2)
    assert len(result.images) == 4
    assert result.info["all_seeds"] == [100, 101, 102, 103]


def test_assistant_off_renders_the_prompt_as_written(http: httpx.Client) -> None:
    prompt = "1girl, <lora:catgirl_v1:0.8>"
    body = http.post("/sdapi/v1/txt2img", json={**TINY, "prompt": prompt, "assistant": False}).json()
    info = json.loads(body["info"])
    assert info["prompt"] == prompt
    assert info["assistant"] == {**info["assistant"], "enabled": False, "changes": []}
    assert "Lora hashes" in info["infotexts"][0]


def test_unknown_lora_without_assistant_is_404_with_suggestion(http: httpx.Client) -> None:
    response = http.post(
        "/sdapi/v1/txt2img", json={**TINY, "prompt": "1girl, <lora:catgirl_v9:0.8>", "assistant": False}
    )
    assert response.status_code == 404
    assert "catgirl_v9" in response.json()["detail"]
    assert "catgirl_v1" in response.json()["detail"]


def test_images_are_base64_png_with_infotext(http: httpx.Client) -> None:
    body = http.post("/sdapi/v1/txt2img", json={**TINY, "prompt": "1girl"}).json()
    data = base64.b64decode(body["images"][0])
    assert data.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(data)) as image:
        assert "Steps: 2" in image.info["parameters"]
    assert body["parameters"]["prompt"] == "1girl"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"width": 65}, ("width", "multiple of 8", "65")),
        ({"height": 0}, ("height",)),
        ({"steps": 0}, ("steps",)),
        ({"steps": 1000}, ("steps",)),
        ({"batch_size": 99}, ("batch_size",)),
        ({"seed": 2**40}, ("seed",)),
        ({"prompt": 5}, ("prompt",)),
    ],
)
def test_validation_422_names_the_field(
    http: httpx.Client, fields: dict[str, object], words: tuple[str, ...]
) -> None:
    response = http.post("/sdapi/v1/txt2img", json={**TINY, **fields})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "ValidationError"
    for word in words:
        assert word in body["detail"]


def test_nan_cfg_is_rejected(http: httpx.Client) -> None:
    content = b'{"prompt": "1girl", "width": 64, "height": 64, "steps": 2, "cfg_scale": NaN}'
    response = http.post("/sdapi/v1/txt2img", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "cfg_scale" in response.json()["detail"]
    assert "finite" in response.json()["detail"]


@pytest.mark.parametrize("body", [b'{"prompt": ', b'{"prompt": "\xff"}', b"[" * 5000 + b"]" * 5000])
def test_undecodable_bodies_are_422(http: httpx.Client, body: bytes) -> None:
    response = http.post("/sdapi/v1/txt2img", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"] or "body" in response.json()["detail"]


def test_unknown_sampler_lists_valid_ones(http: httpx.Client) -> None:
    response = http.post("/sdapi/v1/txt2img", json={**TINY, "prompt": "1girl", "sampler_name": "Euler z"})
    assert response.status_code == 422
    assert "Euler z" in response.json()["detail"]
    assert "DPM++ 2M" in response.json()["detail"]


def test_unknown_a1111_fields_are_ignored_and_noted(http: httpx.Client) -> None:
    payload = {
        **TINY,
        "prompt": "1girl",
        "restore_faces": True,
        "tiling": False,
        "hr_sampler_name": "DDIM",  # a hires field, but the hires fix is off: nothing to report
        "subseed_strength": 0.3,
    }
    info = json.loads(http.post("/sdapi/v1/txt2img", json=payload).json()["info"])
    assert info["ignored_fields"] == ["restore_faces", "subseed_strength"]
    assert any("restore_faces" in note for note in info["notes"])
    hires = {**payload, "enable_hr": True, "hr_scale": 1.5}
    info = json.loads(http.post("/sdapi/v1/txt2img", json=hires).json()["info"])
    assert info["ignored_fields"] == ["hr_sampler_name", "restore_faces", "subseed_strength"]  # not enable_hr


def test_webuiapi_defaults_are_not_reported_as_ignored(app_server: AppServer) -> None:
    api = webuiapi.WebUIApi(host="127.0.0.1", port=app_server.port)
    result = api.txt2img(prompt="1girl", steps=2, width=64, height=64)
    assert result.info["ignored_fields"] == []


def test_loras_listing(http: httpx.Client) -> None:
    entries = http.get("/sdapi/v1/loras").json()
    by_name = {entry["name"]: entry for entry in entries}
    assert "catgirl_v1" in by_name
    assert by_name["catgirl_v1"]["path"].endswith("catgirl_v1.safetensors")
    # A1111's four fields, and what the file is made of (issue 12)
    assert set(by_name["catgirl_v1"]) == {"name", "alias", "path", "metadata", "algorithm", "rank"}
    assert by_name["catgirl_v1"]["algorithm"] in ("lora", "locon")  # a kohya file (3x3 convs: locon)
    assert isinstance(by_name["catgirl_v1"]["rank"], int)
    assert by_name["catgirl_v1"]["rank"] >= 1
    assert all(len(json.dumps(value)) < 400 for value in by_name["catgirl_v1"]["metadata"].values())


def test_refresh_loras(http: httpx.Client) -> None:
    response = http.post("/sdapi/v1/refresh-loras")
    assert response.status_code == 200
    assert int(response.headers["X-Lora-Count"]) >= 1


def test_samplers_models_options(http: httpx.Client) -> None:
    samplers = [s["name"] for s in http.get("/sdapi/v1/samplers").json()]
    assert "DPM++ 2M Karras" in samplers
    assert "Euler a" in samplers
    models = http.get("/sdapi/v1/sd-models").json()
    # no models/Stable-diffusion: the embedded model (running) and the random-weight pipelines
    assert [m["model_name"] for m in models] == ["tiny-shapes-sd15", "tiny-sd15", "tiny-sdxl"]
    options = http.get("/sdapi/v1/options").json()
    assert options["sd_model_checkpoint"] == models[0]["title"]
    assert options["sd_model_checkpoint"].startswith("tiny-shapes-sd15 [")
    assert options["lora_mixer_tiny_model"] is True
    schedulers = [s["label"] for s in http.get("/sdapi/v1/schedulers").json()]
    assert schedulers == ["Automatic", "Karras", "Exponential"]


def test_webuiapi_switches_the_base_model(app_server: AppServer, http: httpx.Client) -> None:
    api = webuiapi.WebUIApi(host="127.0.0.1", port=app_server.port)
    try:
        api.util_set_model("tiny-sdxl")  # A1111's client: closest title, then POST /options
        assert api.util_get_current_model().startswith("tiny-sdxl [")
        result = api.txt2img(prompt="1girl, <lora:watercolor_xl:0.5>", steps=2, width=64, height=64, seed=3)
        parsed = parse_infotext(result.info["infotexts"][0])
        assert parsed.params["Model"] == "tiny-sdxl-demo"
        assert list(parsed.lora_hashes) == ["watercolor_xl"]
        refused = http.post("/sdapi/v1/options", json={"sd_model_checkpoint": "sd-v9"})
        assert refused.status_code == 422
        available = "available: tiny-shapes-sd15, tiny-sd15, tiny-sdxl"
        assert f"unknown base model 'sd-v9'; {available}" in refused.json()["detail"]
        assert http.post("/sdapi/v1/options", json={"sd_model_checkpoint": 5}).status_code == 422
        assert api.util_get_current_model().startswith("tiny-sdxl [")  # a refused switch changes nothing
    finally:
        api.util_set_model("tiny-shapes-sd15")
    assert http.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("tiny-shapes-sd15 [")


def test_openapi_schema_lists_the_api(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    for path in ("/sdapi/v1/txt2img", "/sdapi/v1/loras", "/sdapi/v1/samplers", "/sdapi/v1/refresh-loras"):
        assert path in schema["paths"]
    body = schema["components"]["schemas"]["Txt2ImgRequest"]["properties"]
    assert {"prompt", "negative_prompt", "cfg_scale", "sampler_name", "assistant"} <= set(body)


def test_launch_hardening(app_server: AppServer, http: httpx.Client) -> None:
    config = http.get("/config").json()
    assert config["max_file_size"] > 0
    assert http.get("/monitoring").status_code in (403, 404)
    lora = LORA_DIR / "catgirl_v1.safetensors"
    assert http.get(f"/gradio_api/file={lora}").status_code in (403, 404)
    assert "Traceback" not in app_server.log()


def test_interrupt_stops_an_api_render(app_server: AppServer, http: httpx.Client) -> None:
    import threading
    import time

    assert http.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0
    answer: dict[str, httpx.Response] = {}
    body = {"prompt": "1girl, <lora:catgirl_v1:0.5>", "steps": 150, "width": 256, "height": 256, "seed": 1}
    worker = threading.Thread(target=lambda: answer.update(r=http.post("/sdapi/v1/txt2img", json=body)))
    worker.start()
    deadline = time.monotonic() + 120
    state: dict = {}
    while time.monotonic() < deadline:
        state = http.get("/sdapi/v1/progress").json()
        if state["state"]["sampling_step"] > 0:
            break
        time.sleep(0.05)
    assert state["state"]["job_count"] == 1, state
    assert state["state"]["sampling_steps"] == 150
    assert 0 < state["progress"] < 1
    webuiapi.WebUIApi(host="127.0.0.1", port=app_server.port).interrupt()  # A1111's client call
    worker.join(timeout=120)
    response = answer["r"]
    assert response.status_code == 499, response.text
    assert response.json()["error"] == "Cancelled"
    assert http.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0
    after = http.post("/sdapi/v1/txt2img", json={"prompt": "1girl", "steps": 2, "width": 64, "height": 64})
    assert after.status_code == 200
