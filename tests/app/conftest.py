"""The real server (``python app.py``) on loopback, started once per test session.

The process is exactly what a user runs: the tiny offline pipeline (no model configured), the
demo LoRAs shipped in ``models/Lora``, and a temporary outputs and cache folder. Tests talk to
it over HTTP only (gradio_client, webuiapi, httpx).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import LORA_DIR, Server, start_server
from tests.server import TINY as SERVER_TINY

#: The app tests' server is ``tests.server.Server`` (shared with the hostile tests and the load test).
AppServer = Server
#: The smallest render the app tests use (tiny pipeline, a fraction of a second on 2 cores).
TINY = {**SERVER_TINY, "cfg_scale": 7.0}


def start_app(workdir: Path, *, ready_timeout: float = 240.0) -> Server:
    """``python app.py`` on loopback with the shipped demo LoRAs; returns once the engine answers."""
    return start_server(LORA_DIR, workdir, ready_timeout=ready_timeout)


def stop_app(server: Server) -> None:
    server.stop()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = start_app(tmp_path_factory.mktemp("app-server"))
    try:
        yield server
    finally:
        stop_app(server)
        if "Traceback" in server.log():
            print(server.log()[-6000:], file=sys.stderr)


@pytest.fixture(scope="session")
def http(app_server: AppServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_server.url, timeout=300) as client:
        yield client
