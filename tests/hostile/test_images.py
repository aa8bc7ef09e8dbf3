"""Hostile images (issue 14): every case of :mod:`tests.hostile.images` read by the pure reader,
sent to the API (img2img and PNG Info), attached in the chat, given to the CLI — each a clear
message or correct handling, never a traceback, a crash, or a decoded bomb. Huge base64 bodies
are refused before they are read whole.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant import images, limits
from assistant.config import Settings
from assistant.errors import ImageError, ImageTooLarge
from assistant.service import RenderSettings, Service
from tests.server import PROJECT_ROOT, TINY, Server

from .conftest import assert_unharmed
from .images import BY_ID, CASES, INFOTEXT, ImageCase, jpeg_with_usercomment

BAD = [case for case in CASES if case.error]
GOOD = [case for case in CASES if not case.error]


# -- the reader itself (fast, no server) ----------------------------------------------------------


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_bad_images_are_refused_with_a_clear_message(case: ImageCase) -> None:
    with pytest.raises(ImageError) as caught:
        images.read_image(case.build(), what="init image 'x.png'")
    message = str(caught.value)
    assert re.search(case.error or "", message, re.IGNORECASE), message
    assert "init image 'x.png'" in message
    assert "Traceback" not in message
    assert len(message) < 400


@pytest.mark.parametrize("case", GOOD, ids=lambda c: c.id)
def test_awkward_images_are_read_correctly(case: ImageCase) -> None:
    read = images.read_image(case.build(), what="image")
    assert read.image.mode == "RGB"
    if case.check is not None:
        assert case.check(read.image), (read.image.size, read.image.getpixel((1, 1)))
    if case.note:
        assert any(re.search(case.note, note, re.IGNORECASE) for note in read.notes), read.notes


def test_bombs_are_stopped_before_any_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The size check reads the header only: no decoder may run on a bomb."""
    from PIL import ImageFile

    def no_decoding(self, *args, **kwargs):  # pragma: no cover - failing path
        raise AssertionError("a decoder ran on a decompression bomb")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for case_id in ("bomb-png-over-our-limit", "bomb-png-over-pillow-limit", "bomb-gif", "side-too-long"):
        with pytest.raises(ImageTooLarge):
            images.read_image(BY_ID[case_id].build())


def test_huge_files_and_base64_are_refused_before_decoding() -> None:
    too_big = b"\x89PNG" + b"\x00" * (limits.IMAGE_BYTES + 1)
    with pytest.raises(ImageTooLarge, match="MiB"):
        images.open_image(too_big)
    with pytest.raises(ImageTooLarge, match="MiB"):
        images.decode_base64("A" * (limits.API_BODY_BYTES + 1))
    with pytest.raises(ImageTooLarge, match="decodes to"):
        images.decode_base64("A" * (limits.IMAGE_BYTES * 4 // 3 + 100))
    with pytest.raises(ImageError, match="URL"):
        images.decode_base64("https://example.com/cat.png")
    with pytest.raises(ImageError, match="not valid base64"):
        images.decode_base64("data:image/png;base64,@@@@")
    data = BY_ID["la-png"].build()
    encoded = base64.b64encode(data).decode()
    assert images.decode_base64(f"data:image/png;base64,{encoded}") == data
    assert images.decode_base64(encoded.rstrip("=")) == data  # missing padding, as some clients send
    assert images.decode_base64(encoded[:20] + "\n" + encoded[20:]) == data  # MIME line breaks


def test_infotext_read_from_png_jpeg_and_not_from_huge_text() -> None:
    from .images import _png, long_infotext, photo

    assert images.read_infotext(images.open_image(_png(photo(), INFOTEXT)))[0] == INFOTEXT
    assert images.read_infotext(images.open_image(jpeg_with_usercomment()))[0] == INFOTEXT
    assert images.read_infotext(images.open_image(long_infotext()))[0] is None


# -- the chat (through the service; nothing renders, so no engine) ------------------------------


@pytest.fixture(scope="module")
def chat_service(tmp_path_factory: pytest.TempPathFactory, hostile_lora_dir: Path) -> Service:
    root = tmp_path_factory.mktemp("hostile-chat")
    settings = Settings(
        lora_dirs=(str(hostile_lora_dir),), outputs_dir=str(root / "out"), cache_dir=str(root / "c")
    )
    return Service(settings)


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
@pytest.mark.parametrize("text", ["", "1girl, <lora:catgirl_v1:0.5>"], ids=["alone", "with-prompt"])
def test_chat_attachment_is_explained_never_raised(
    chat_service: Service, tmp_path: Path, case: ImageCase, text: str
) -> None:
    path = tmp_path / f"{case.id}.png"
    path.write_bytes(case.build())
    turn = chat_service.chat_turn(text, image=path, settings=RenderSettings(steps=2, width=64, height=64))
    assert turn.markdown.startswith("⚠"), turn.markdown[:300]
    assert re.search(case.error or "", turn.markdown, re.IGNORECASE)
    assert path.name in turn.markdown
    assert turn.job is None


def test_chat_attachment_over_the_file_limit(chat_service: Service, tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as handle:
        handle.truncate(limits.IMAGE_BYTES + 1)  # sparse: nothing is written, the size is what counts
    turn = chat_service.chat_turn("", image=path)
    assert "huge.png" in turn.markdown
    assert "limit is 20 MiB" in turn.markdown


# -- the CLI --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", ["bomb-png-over-pillow-limit", "not-an-image", "truncated-png"])
def test_cli_init_image_errors_are_one_line(tmp_path: Path, case_id: str) -> None:
    path = tmp_path / "init.png"
    path.write_bytes(BY_ID[case_id].build())
    done = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "assistant", "generate", "1girl", "--init-image", str(path), "--dry-run"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(BY_ID[case_id].error or "", done.stderr, re.IGNORECASE), done.stderr
    assert "init.png" in done.stderr


# -- the API of the real server ------------------------------------------------------------------



def _img2img(http: httpx.Client, url: str, data: bytes, **fields: object) -> httpx.Response:
    encoded = "data:image/png;base64," + base64.b64encode(data).decode()
    payload = {**TINY, "prompt": "1girl", "init_images": [encoded], "denoising_strength": 0.5, **fields}
    return http.post(f"{url}/sdapi/v1/img2img", json=payload, timeout=300)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_api_refuses_bad_init_images(
    server: Server, http: httpx.Client, baseline: str, case: ImageCase
) -> None:
    response = _img2img(http, server.url, case.build())
    assert response.status_code in (413, 422), response.text[:300]
    body = response.json()
    assert re.search(case.error or "", body["detail"], re.IGNORECASE), body
    assert "Traceback" not in response.text
    info = http.post(
        f"{server.url}/sdapi/v1/png-info", json={"image": base64.b64encode(case.build()).decode()}
    )
    if case.id == "truncated-png":
        assert info.status_code == 200  # the parameters precede the pixels: PNG Info reads them (A1111 too)
    elif case.id == "truncated-jpeg":  # cut inside its markers: a damaged header, or no parameters
        assert info.status_code in (200, 422), info.text[:300]
    else:
        assert info.status_code in (413, 422), info.text[:300]
    assert "Traceback" not in info.text
    assert_unharmed(server, http, baseline)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("case_id", ["animated-gif", "png-16-bit-gray", "cmyk-jpeg", "exif-rotated-jpeg"])
def test_api_renders_awkward_init_images(server: Server, http: httpx.Client, case_id: str) -> None:
    response = _img2img(http, server.url, BY_ID[case_id].build())
    assert response.status_code == 200, response.text[:300]
    info = json.loads(response.json()["info"])
    assert "Denoising strength: 0.5" in info["infotexts"][0]
    if BY_ID[case_id].note:
        assert any(re.search(BY_ID[case_id].note or "", note, re.IGNORECASE) for note in info["notes"]), info[
            "notes"
        ]


@pytest.mark.server
@pytest.mark.slow
def test_api_bounds_huge_bodies_before_reading_them(
    server: Server, http: httpx.Client, baseline: str
) -> None:
    big = b'{"prompt": "x", "init_images": ["' + b"A" * (limits.API_BODY_BYTES + 10) + b'"]}'
    started = time.monotonic()
    response = http.post(
        f"{server.url}/sdapi/v1/img2img", content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text[:300]
    assert "MiB" in response.json()["detail"]

    def chunks():  # no Content-Length: the bound applies while it streams in
        yield b'{"prompt": "x", "init_images": ["'
        for _ in range(limits.API_BODY_BYTES // (1024 * 1024) + 2):
            yield b"A" * (1024 * 1024)
        yield b'"]}'

    streamed = http.post(
        f"{server.url}/sdapi/v1/png-info", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text[:300]
    assert time.monotonic() - started < 120
    assert_unharmed(server, http, baseline)
