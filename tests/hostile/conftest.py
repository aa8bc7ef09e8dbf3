"""Fixtures of the hostile suite: a LoRA folder full of bad files next to good ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import Server

from .cases import FILE_CASES, GOOD, GOOD2
from .files import BUILDERS, write_lora


def hostile_stem(case_id: str) -> str:
    """The file stem a file case is written under (``bad-<id>``)."""
    return f"bad-{case_id}"


def build_hostile_folder(root: Path) -> Path:
    """``root/Lora``: the demo LoRAs of the tiny pipeline plus one file per FILE_CASES row.

    The demo LoRAs (catgirl_v1, cyberpunk_style, … and the SDXL watercolor_xl) are the project's
    own files matching the tiny model, so the same folder serves the library, engine and server
    tests. Without the engine package the two good names are plain SD1.5-layout files.
    """
    folder = root / "Lora"
    folder.mkdir(parents=True)
    try:
        from assistant.engine.demo_loras import write_demo_loras
    except ImportError:
        write_lora(folder, GOOD)
        write_lora(folder, GOOD2)
    else:
        write_demo_loras(folder)
    for case in FILE_CASES:
        BUILDERS[case.builder](folder, hostile_stem(case.id))
    return folder


@pytest.fixture(scope="session")
def hostile_lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA root holding every hostile file (built once; tests must not modify it)."""
    return build_hostile_folder(tmp_path_factory.mktemp("hostile"))


# ----------------------------------------------------------------------------------------------
# The real server, shared by the API, UI and concurrency suites (started once, lazily)
# ----------------------------------------------------------------------------------------------

#: The normal request every hostile case is followed by (its image must never change).
NORMAL_PROMPT = f"1girl, cat ears, <lora:{GOOD}:0.6>"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tests.server import PROJECT_ROOT, start_server

    if not (PROJECT_ROOT / "app.py").is_file():
        pytest.skip("app.py not built yet")
    root = tmp_path_factory.mktemp("hostile-server")
    srv = start_server(build_hostile_folder(root), root)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=300) as client:
        yield client


@pytest.fixture(scope="session")
def baseline(server: Server, http: httpx.Client) -> str:
    """Pixel digest of the normal request's image, taken before any hostile request."""
    from tests.server import image_digest, txt2img

    response = txt2img(http, server.url, prompt=NORMAL_PROMPT)
    assert response.status_code == 200, response.text
    first = image_digest(response)
    again = txt2img(http, server.url, prompt=NORMAL_PROMPT)
    assert image_digest(again) == first, (
        "the tiny pipeline must be deterministic for these tests to mean anything"
    )
    return first


def assert_unharmed(server: Server, http: httpx.Client, baseline: str) -> None:
    """The server is up and the next normal request gives the baseline image bit for bit."""
    from tests.server import image_digest, txt2img

    assert server.process.poll() is None, f"server died:\n{server.log()[-3000:]}"
    response = txt2img(http, server.url, prompt=NORMAL_PROMPT)
    assert response.status_code == 200, response.text[:500]
    assert image_digest(response) == baseline, "a hostile request changed the next normal image"
