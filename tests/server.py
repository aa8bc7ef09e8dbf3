"""Start the real LoRA Mixer server (``python app.py``) on loopback, and talk to it.

Used by the app, browser and hostile tests and by ``bench/load_test.py``. The server runs in its own process
(exactly what a user starts), on 127.0.0.1 and a free port, with the LoRA folder and outputs
folder given through the documented environment variables. Nothing here imports gradio or torch.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LORA_DIR = PROJECT_ROOT / "models" / "Lora"

#: The smallest render every hostile request uses (tiny pipeline: a few hundred ms on 2 cores).
TINY = {"width": 64, "height": 64, "steps": 2, "cfg_scale": 7, "seed": 1234, "sampler_name": "Euler"}


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running ``python app.py`` process and its base URL."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    lora_dir: Path
    outputs_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    #: HTTP Basic credentials for /sdapi/v1 when the server was started with API passwords.
    api_auth: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        """The process runs AND answers an HTTP request."""
        if self.process.poll() is not None:
            return False
        try:
            return (
                httpx.get(f"{self.url}/sdapi/v1/samplers", timeout=10, auth=self.api_auth).status_code == 200
            )
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def raw_get(self, raw_path: str, timeout: float = 10) -> tuple[int, bytes]:
        """GET with the path sent exactly as written (httpx would normalise ``../`` away)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.putrequest("GET", raw_path, skip_accept_encoding=True)
            conn.endheaders()
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_server(
    lora_dir: Path,
    workdir: Path,
    *,
    extra_args: tuple[str, ...] = (),
    extra_env: Mapping[str, str] | None = None,
    ready_timeout: float = 240.0,
    attempts: int = 2,
    api_auth: tuple[str, str] | None = None,
) -> Server:
    """:func:`start_server_once`, retried once when Gradio's own start-up self-check fails.

    Gradio's ``launch`` HEADs its own URL five times with a 3 s timeout and exits ("When localhost
    is not accessible…") when all time out — which happens on an overloaded machine while the
    engine imports torch in the background. That is a start-up flake, not a hostile-input
    outcome, so it gets one more try; any other exit is raised at once.
    """
    for attempt in range(attempts):
        try:
            return start_server_once(
                lora_dir,
                workdir,
                extra_args=extra_args,
                extra_env=extra_env,
                ready_timeout=ready_timeout,
                api_auth=api_auth,
            )
        except RuntimeError as exc:
            if "localhost is not accessible" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def write_test_embeddings(folder: Path) -> Path:
    """Two textual inversions in A1111's ``emb_params`` layout: ``tinyneg`` fits the embedded demo
    model the servers run (64-wide vectors), ``sd15neg`` is an SD1.5 one (768-wide; listed as skipped)."""
    import struct

    folder.mkdir(parents=True, exist_ok=True)
    for name, width, count in (("tinyneg", 64, 2), ("sd15neg", 768, 1)):
        values = [((i * 37) % 17 - 8) / 40.0 for i in range(width * count)]
        data = struct.pack(f"<{len(values)}f", *values)
        header = json.dumps(
            {"emb_params": {"dtype": "F32", "shape": [count, width], "data_offsets": [0, len(data)]}}
        ).encode()
        header += b" " * (-len(header) % 8)
        (folder / f"{name}.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + data)
    return folder


def start_server_once(
    lora_dir: Path,
    workdir: Path,
    *,
    extra_args: tuple[str, ...] = (),
    extra_env: Mapping[str, str] | None = None,
    ready_timeout: float = 240.0,
    api_auth: tuple[str, str] | None = None,
) -> Server:
    """Run ``python app.py --host 127.0.0.1 --port N`` and wait until the API answers.

    ``api_auth`` (user, password) are the API credentials the server was given (through
    ``--api-auth``/``--auth`` in ``extra_args`` or the environment), used to ask it whether it is up.
    """
    port = free_port()
    outputs = workdir / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"server-{port}.log"
    env = dict(os.environ)
    embeddings = write_test_embeddings(workdir / "embeddings")
    env.update(
        {
            "LORA_MIXER_EMBEDDINGS_DIRS": str(embeddings),
            "LORA_MIXER_VAE_DIR": str(workdir / "VAE"),
            "LORA_MIXER_LORA_DIRS": str(lora_dir),
            "LORA_MIXER_OUTPUTS": str(outputs),
            "LORA_MIXER_CACHE": str(workdir / "cache"),
            "LORA_MIXER_MODEL": "",
            "LORA_MIXER_DEVICE": "cpu",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            # One torch thread: on a shared 2-core machine OpenMP's spinning threads make a tiny
            # 64x64 render 30x slower; the server handles one render at a time anyway.
            "OMP_NUM_THREADS": "1",
        }
    )
    env.update(extra_env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(PROJECT_ROOT / "app.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *extra_args,
            ],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log_path, lora_dir, outputs, env, api_auth)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_text = server.log()
            reason = next((line for line in log_text.splitlines() if line.startswith("ValueError")), "")
            raise RuntimeError(f"app.py exited with {process.returncode}: {reason}\n{log_text[-4000:]}")
        if server.alive():
            return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"app.py did not answer within {ready_timeout:.0f} s:\n{server.log()[-4000:]}")


def txt2img(client: httpx.Client, url: str, **fields: object) -> httpx.Response:
    """POST /sdapi/v1/txt2img with the tiny settings plus ``fields``."""
    payload = {**TINY, "prompt": "1girl, cat ears", "negative_prompt": "", **fields}
    return client.post(f"{url}/sdapi/v1/txt2img", json=payload, timeout=300)


def image_digest(response: httpx.Response) -> str:
    """sha256 of the decoded pixels of the first image (PNG metadata such as timings excluded)."""
    import io

    from PIL import Image

    data = base64.b64decode(response.json()["images"][0])
    with Image.open(io.BytesIO(data)) as image:
        return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()
