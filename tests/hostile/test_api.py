"""Hostile requests to the real server (``python app.py`` on 127.0.0.1) over real HTTP.

Every case asserts its specific answer (status code and a message naming the problem), then
that the server still answers and that the next normal request gives the baseline image bit for
bit — a bad request must leave no trace (no stuck adapter, no changed setting, no dead worker).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from assistant.prompt import parse
from tests.server import PROJECT_ROOT, TINY, Server, image_digest, txt2img

from .cases import FILE_CASES, GENERATION_CASES, GOOD, PROMPT_CASES, FileCase, GenerationCase, PromptCase
from .conftest import NORMAL_PROMPT, assert_unharmed, hostile_stem

pytestmark = [pytest.mark.server, pytest.mark.engine, pytest.mark.slow]


def _detail(response: httpx.Response) -> str:
    body = response.json()
    assert isinstance(body, dict), body
    assert "Traceback" not in response.text
    return str(body.get("detail", ""))


def _matches_all(text: str, patterns: tuple[str, ...], what: str) -> None:
    for pattern in patterns:
        assert re.search(pattern, text, re.IGNORECASE), f"{what}: {text[:400]!r} !~ {pattern!r}"


def _warnings(response: httpx.Response) -> str:
    info = json.loads(response.json()["info"])
    items = [w["message"] for w in info["assistant"]["warnings"]] + list(info.get("notes", []))
    return " | ".join(items)


# ----------------------------------------------------------------------------------------------
# Prompts (assistant on: the path A1111 scripts take through LoRA Mixer)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in PROMPT_CASES if c.user == "error"], ids=lambda c: c.id)
def test_prompt_error(server: Server, http: httpx.Client, baseline: str, case: PromptCase) -> None:
    response = txt2img(http, server.url, prompt=case.positive, negative_prompt=case.negative)
    assert response.status_code == 422, response.text[:500]
    detail = _detail(response)
    _matches_all(detail, case.mentions, case.id)
    assert len(detail) < 2000
    assert_unharmed(server, http, baseline)


@pytest.mark.parametrize("case", [c for c in PROMPT_CASES if c.user == "skip"], ids=lambda c: c.id)
def test_prompt_unknown_lora_is_skipped(
    server: Server, http: httpx.Client, baseline: str, case: PromptCase
) -> None:
    """An unknown/escaping name is reported and not applied: the image equals the prompt without it."""
    response = txt2img(http, server.url, prompt=case.positive)
    assert response.status_code == 200, response.text[:500]
    _matches_all(_warnings(response), case.mentions, case.id)
    info = json.loads(response.json()["info"])
    assert info["assistant"]["loras"] == [], info["assistant"]["loras"]
    # The same prompt as the text encoder sees it (tag removed, separators tidied): same pixels.
    without = txt2img(http, server.url, prompt=parse(case.positive).positive_text)
    assert image_digest(response) == image_digest(without)
    assert_unharmed(server, http, baseline)


@pytest.mark.parametrize("case", [c for c in PROMPT_CASES if c.user == "skip"], ids=lambda c: c.id)
def test_prompt_unknown_lora_without_assistant_is_404(
    server: Server, http: httpx.Client, baseline: str, case: PromptCase
) -> None:
    """With ``assistant: false`` the prompt is applied as written, so an unknown name is a 404."""
    response = txt2img(http, server.url, prompt=case.positive, assistant=False)
    assert response.status_code == 404, response.text[:500]
    _matches_all(_detail(response), (r"not found",), case.id)
    assert_unharmed(server, http, baseline)


# ----------------------------------------------------------------------------------------------
# Files in the LoRA folder, named in a prompt
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in FILE_CASES if c.status != "absent"], ids=lambda c: c.id)
def test_hostile_file_in_prompt(server: Server, http: httpx.Client, baseline: str, case: FileCase) -> None:
    stem = hostile_stem(case.id)
    prompt = f"1girl, cat ears, <lora:{stem}:0.5>"
    response = txt2img(http, server.url, prompt=prompt)
    if case.user == "error":
        assert 400 <= response.status_code < 500, response.text[:500]
        _matches_all(_detail(response), (re.escape(stem), *case.user_mentions), case.id)
    else:
        assert response.status_code == 200, response.text[:500]
        _matches_all(_warnings(response), (re.escape(stem), *case.user_mentions), case.id)
        without = txt2img(http, server.url, prompt="1girl, cat ears")
        assert image_digest(response) == image_digest(without), "a skipped LoRA still changed the image"
    assert_unharmed(server, http, baseline)


def test_hostile_files_are_not_listed_as_loras(server: Server, http: httpx.Client) -> None:
    names = {entry["name"] for entry in http.get(f"{server.url}/sdapi/v1/loras").json()}
    assert GOOD in names
    bad = {hostile_stem(c.id) for c in FILE_CASES if c.status in ("refused", "broken", "absent")}
    assert not names & bad


# ----------------------------------------------------------------------------------------------
# Generation settings and request bodies
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", GENERATION_CASES, ids=lambda c: c.id)
def test_generation_settings_rejected(
    server: Server, http: httpx.Client, baseline: str, case: GenerationCase
) -> None:
    payload = {**TINY, "prompt": "1girl, cat ears", **case.payload}
    content = json.dumps(payload, allow_nan=True).encode()
    # JSON has no NaN/Infinity; send them as bare tokens like a sloppy client would.
    content = content.replace(b'"NaN"', b"NaN").replace(b'"Infinity"', b"Infinity")
    response = http.post(
        f"{server.url}/sdapi/v1/txt2img", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text[:500]
    _matches_all(_detail(response), case.mentions, case.id)
    assert_unharmed(server, http, baseline)


MALFORMED_BODIES = {
    "truncated-json": b'{"prompt": "1girl",',
    "not-json": b"prompt=1girl&steps=2",
    "json-array": b'["1girl"]',
    "json-string": b'"1girl"',
    "json-null": b"null",
    "empty-body": b"",
    "deeply-nested": b'{"prompt": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "prompt-2mb": json.dumps({"prompt": "masterpiece, " * 160_000}).encode(),
    "bad-utf8": b'{"prompt": "\xff\xfe"}',
}


@pytest.mark.parametrize("name", list(MALFORMED_BODIES))
def test_malformed_body(server: Server, http: httpx.Client, baseline: str, name: str) -> None:
    response = http.post(
        f"{server.url}/sdapi/v1/txt2img",
        content=MALFORMED_BODIES[name],
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text[:500]
    assert _detail(response)
    assert len(response.content) < 100_000, "the error must not echo a huge body back"
    assert_unharmed(server, http, baseline)


def test_unknown_fields_are_ignored_and_noted(server: Server, http: httpx.Client, baseline: str) -> None:
    response = txt2img(
        http, server.url, prompt=NORMAL_PROMPT, restore_faces=True, tiling=True, hr_prompt="x", s_churn=0.5
    )
    assert response.status_code == 200
    ignored = set(json.loads(response.json()["info"])["ignored_fields"])
    assert ignored == {"restore_faces", "tiling", "s_churn"}  # hr_prompt: the hires fix is off
    assert image_digest(response) == baseline


# ----------------------------------------------------------------------------------------------
# Files served by the web server
# ----------------------------------------------------------------------------------------------


def _file_forms(server: Server) -> dict[str, str]:
    lora = server.lora_dir / f"{GOOD}.safetensors"
    return {
        "dotdot": "/gradio_api/file=../../../../../../etc/passwd",
        "dotdot-legacy-route": "/file=../../../../../../etc/passwd",
        "encoded-dots": "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "double-encoded": "/gradio_api/file=%252e%252e/%252e%252e/etc/passwd",
        "encoded-slashes": "/gradio_api/file=..%2f..%2f..%2f..%2fetc%2fpasswd",
        "absolute": "/gradio_api/file=/etc/passwd",
        "double-slash": "/gradio_api/file=//etc/passwd",
        "file-url": "/gradio_api/file=file:///etc/passwd",
        "proc-environ": "/gradio_api/file=/proc/self/environ",
        "lora-file": f"/gradio_api/file={lora}",
        "lora-file-case": f"/gradio_api/file={str(lora).upper()}",
        "lora-file-dotdot": f"/gradio_api/file={server.lora_dir}/../Lora/{GOOD}.safetensors",
        "lora-folder": f"/gradio_api/file={server.lora_dir}",
        "symlink-out": f"/gradio_api/file={server.lora_dir}/{hostile_stem('escaping-symlink')}.safetensors",
        "app-source": f"/gradio_api/file={PROJECT_ROOT / 'app.py'}",
        "project-config": f"/gradio_api/file={PROJECT_ROOT / 'pyproject.toml'}",
        "ssrf-loopback": f"/gradio_api/file=http://127.0.0.1:{server.port}/sdapi/v1/options",
        "ssrf-metadata": "/gradio_api/file=http://169.254.169.254/latest/meta-data/",
    }


FILE_FORMS = [
    "dotdot", "dotdot-legacy-route", "encoded-dots", "double-encoded", "encoded-slashes", "absolute",
    "double-slash", "file-url", "proc-environ", "lora-file", "lora-file-case", "lora-file-dotdot",
    "lora-folder", "symlink-out", "app-source", "project-config", "ssrf-loopback", "ssrf-metadata",
]  # fmt: skip


@pytest.mark.parametrize("form", FILE_FORMS)
def test_file_route_traversal(server: Server, form: str) -> None:
    status, body = server.raw_get(_file_forms(server)[form])
    assert status in (400, 403, 404), f"{form}: HTTP {status}"
    assert b"root:" not in body
    assert b"lora_unet" not in body, f"{form}: LoRA bytes served"
    assert b"ss_network" not in body, f"{form}: LoRA metadata served"
    assert b"sd_model_checkpoint" not in body, f"{form}: the server fetched a loopback URL"
    assert server.alive()


def test_upload_over_the_size_limit(server: Server, http: httpx.Client) -> None:
    config = http.get(f"{server.url}/config").json()
    limit = config.get("max_file_size")
    assert limit, "the app must set max_file_size for a public Space"
    big = b"\0" * (int(limit) + 1024)
    response = http.post(f"{server.url}/gradio_api/upload", files={"files": ("big.png", big, "image/png")})
    assert response.status_code == 413, response.text[:300]
    assert server.alive()


def test_openapi_schema_served(server: Server, http: httpx.Client) -> None:
    schema = http.get(f"{server.url}/openapi.json").json()
    assert "/sdapi/v1/txt2img" in schema["paths"]


def test_monitoring_is_off(server: Server) -> None:
    status, _ = server.raw_get("/gradio_api/monitoring")
    assert status in (403, 404)


def test_lora_dir_is_blocked(server: Server) -> None:
    """The LoRA folder is in Gradio's blocked paths: 403 even for the exact absolute path."""
    lora = Path(server.lora_dir) / f"{GOOD}.safetensors"
    status, _ = server.raw_get(f"/gradio_api/file={lora}")
    assert status == 403
