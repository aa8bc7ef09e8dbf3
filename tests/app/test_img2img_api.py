"""``/sdapi/v1/img2img``, ``/sdapi/v1/png-info`` and the hires fix in txt2img (issue 14), through
the real ``webuiapi`` client and raw HTTP against the real server (``python app.py``)."""

from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
import webuiapi
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from assistant.infotext import parse as parse_infotext

from .conftest import TINY, AppServer

pytestmark = [pytest.mark.server, pytest.mark.engine]

SMALL = {"steps": 4, "width": 64, "height": 64, "seed": 21, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def api(app_server: AppServer) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(host="127.0.0.1", port=app_server.port)


def _photo(width: int = 96, height: int = 64) -> Image.Image:
    image = Image.new("RGB", (width, height), (200, 120, 40))
    image.paste((30, 60, 220), (width // 3, 0, 2 * width // 3, height))
    image.paste((240, 240, 240), (0, 0, width, height // 4))  # varies down too: "fill" is not "stretch"
    return image


def _png_bytes(image: Image.Image, text: str | None = None) -> bytes:
    info = None
    if text is not None:
        info = PngInfo()
        info.add_text("parameters", text)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def test_webuiapi_img2img_works_unchanged(api: webuiapi.WebUIApi) -> None:
    result = api.img2img(
        images=[_photo()],
        prompt="1girl, <lora:catgirl_v1:0.5>",
        denoising_strength=0.5,
        **SMALL,
    )
    assert result.image.size == (64, 64)
    text = result.info["infotexts"][0]
    assert "Denoising strength: 0.5" in text
    assert "Lora hashes" in text
    assert "catgirl_v1" in parse_infotext(text).lora_hashes
    assert result.info["denoising_strength"] == 0.5
    assert result.info["ignored_fields"] == []  # webuiapi's mask and pix2pix defaults are not reported
    assert result.parameters["init_images"] is None  # A1111 leaves them out unless asked
    assert [lora["name"] for lora in result.info["assistant"]["loras"]] == ["catgirl_v1"]


def test_img2img_resize_modes_and_echoed_init_images(http: httpx.Client) -> None:
    encoded = base64.b64encode(_png_bytes(_photo())).decode()
    images = []
    for mode in range(4):
        body = {**SMALL, "prompt": "1girl", "init_images": [encoded], "resize_mode": mode}
        if mode == 1:
            body["include_init_images"] = True
        response = http.post("/sdapi/v1/img2img", json=body)
        assert response.status_code == 200, response.text[:300]
        data = base64.b64decode(response.json()["images"][0])
        images.append(Image.open(io.BytesIO(data)).convert("RGB").tobytes())
        if mode == 1:
            assert response.json()["parameters"]["init_images"] == [encoded]
    assert len(set(images)) == 4  # stretched, cropped, filled, latent-resized: four pictures


def test_img2img_with_a_data_url_and_an_empty_prompt(http: httpx.Client) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(_png_bytes(_photo())).decode()
    response = http.post("/sdapi/v1/img2img", json={**SMALL, "init_images": [data_url]})
    assert response.status_code == 200, response.text[:300]
    info = json.loads(response.json()["info"])
    assert info["prompt"] == ""


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"mask": "x"}, 422, "inpainting is not supported"),
        ({"init_images": []}, 422, "init_images"),
        ({"init_images": ["a", "b"]}, 422, "init_images"),
        ({"resize_mode": 4}, 422, "resize_mode"),
        ({"denoising_strength": 1.5}, 422, "denoising_strength"),
        ({"init_images": ["https://example.com/a.png"]}, 422, "fetches no URLs"),
        ({"init_images": ["bm90IGFuIGltYWdl"]}, 422, "not an image"),
    ],
)
def test_img2img_refusals_name_the_problem(http: httpx.Client, body: dict, status: int, says: str) -> None:
    encoded = base64.b64encode(_png_bytes(_photo())).decode()
    response = http.post("/sdapi/v1/img2img", json={**SMALL, "init_images": [encoded], **body})
    assert response.status_code == status, response.text[:300]
    assert says in response.json()["detail"]


def test_webuiapi_png_info_of_a_real_users_png(api: webuiapi.WebUIApi, app_server: AppServer) -> None:
    """A user opens a PNG this server saved and asks what made it (webuiapi re-encodes the PIL
    image but copies its text chunks; the parameters survive)."""
    made = api.txt2img(prompt="1girl, <lora:cyberpunk_style:0.4>", **SMALL)
    saved = made.info["saved_paths"][0]
    with Image.open(saved) as image:
        result = api.png_info(image)
    info = result.json["info"]
    assert info == made.info["infotexts"][0]
    parameters = result.parameters
    assert parameters["Prompt"] == made.info["prompt"]
    assert parameters["Steps"] == "4"
    assert parameters["Seed"] == "21"
    assert parameters["Size-1"] == "64"
    assert parameters["Size-2"] == "64"
    assert parameters["Clip skip"] == "1"  # A1111's defaults for what the text leaves out
    assert "cyberpunk_style" in parameters["Lora hashes"]


def test_png_info_of_jpeg_and_of_an_image_without_parameters(http: httpx.Client) -> None:
    from tests.hostile.images import INFOTEXT, jpeg_with_usercomment

    jpeg = http.post("/sdapi/v1/png-info", json={"image": base64.b64encode(jpeg_with_usercomment()).decode()})
    assert jpeg.status_code == 200
    assert jpeg.json()["info"] == INFOTEXT
    assert jpeg.json()["parameters"]["Seed"] == "4242"
    bare = http.post(
        "/sdapi/v1/png-info",
        json={"image": "data:image/png;base64," + base64.b64encode(_png_bytes(_photo())).decode()},
    )
    assert bare.status_code == 200
    body = bare.json()
    assert body["info"] == ""
    assert body["parameters"]["Prompt"] == ""
    assert set(body) == {"info", "items", "parameters"}


def test_txt2img_hires_fix_through_webuiapi(api: webuiapi.WebUIApi) -> None:
    result = api.txt2img(
        prompt="1girl",
        enable_hr=True,
        hr_scale=1.5,
        hr_upscaler=webuiapi.HiResUpscaler.Lanczos,
        hr_second_pass_steps=2,
        denoising_strength=0.6,
        **SMALL,
    )
    assert result.image.size == (96, 96)
    text = result.info["infotexts"][0]
    for key in ("Size: 64x64", "Denoising strength: 0.6", "Hires upscale: 1.5", "Hires steps: 2"):
        assert key in text
    assert "Hires upscaler: Lanczos" in text
    assert result.info["ignored_fields"] == []
    assert result.info["extra_generation_params"]["Hires upscale"] == 1.5
    latent = api.txt2img(prompt="1girl", enable_hr=True, hr_resize_x=96, hr_resize_y=80, **SMALL)
    assert latent.image.size == (96, 80)
    assert "Hires resize: 96x80" in latent.info["infotexts"][0]


def test_hires_upscalers_that_need_weights_are_refused(http: httpx.Client) -> None:
    body = {**TINY, "prompt": "1girl", "enable_hr": True, "hr_upscaler": "R-ESRGAN 4x+"}
    response = http.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "R-ESRGAN 4x+" in detail
    assert "does not ship" in detail
    assert "Latent (nearest-exact)" in detail
    too_big = {**TINY, "prompt": "1girl", "width": 1024, "height": 1024, "enable_hr": True, "hr_scale": 4}
    response = http.post("/sdapi/v1/txt2img", json=too_big)
    assert response.status_code == 422
    assert "4096x4096" in response.json()["detail"]
