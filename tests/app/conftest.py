"""The real server (``python app.py``) on loopback, started once per test session.

The process is exactly what a user runs: the tiny offline pipeline (no model configured), the
demo LoRAs shipped in ``models/Lora``, and a temporary outputs and cache folder. Tests talk to
it over HTTP only (gradio_client, webuiapi, httpx).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LORA_DIR = PROJECT_ROOT / "models" / "Lora"
#: The smallest render the app tests use (tiny pipeline, a fraction of a second on 2 cores).
TINY = {"width": 64, "height": 64, "steps": 2, "cfg_scale": 7.0, "seed": 1234, "sampler_name": "Euler"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AppServer:
    process: subprocess.Popen[bytes]
    port: int
    outputs: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_app(workdir: Path, *, ready_timeout: float = 240.0) -> AppServer:
    """Run ``python app.py --host 127.0.0.1 --port N`` and wait until the engine answers."""
    port = free_port()
    outputs = workdir / "outputs"
    log_path = workdir / "server.log"
    env = dict(os.environ)
    env.update(
        {
            "LORA_MIXER_LORA_DIRS": str(LORA_DIR),
            "LORA_MIXER_OUTPUTS": str(outputs),
            "LORA_MIXER_CACHE": str(workdir / "cache"),
            "LORA_MIXER_MODEL": "",
            "LORA_MIXER_DEVICE": "cpu",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = AppServer(process, port, outputs, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{server.log()[-4000:]}")
        try:
            # /samplers waits for the engine: 200 means the pipeline is loaded.
            if httpx.get(f"{server.url}/sdapi/v1/samplers", timeout=30).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_app(server)
    raise RuntimeError(f"app.py did not answer within {ready_timeout:.0f} s:\n{server.log()[-4000:]}")


def stop_app(server: AppServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=15)


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
