"""The API's bound on waiting renders, with a stand-in service (no engine, no server)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from assistant.api import create_app


class _BlockingService:
    """Just enough of Service for txt2img: generate() waits until released."""

    outputs_dir = Path("/nonexistent/outputs")  # the file guard's folder (nothing is saved here)

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        self.release.wait(30)
        raise RuntimeError("stand-in: nothing rendered")


def test_requests_beyond_the_bound_get_503_at_once() -> None:
    service = _BlockingService()
    client = TestClient(create_app(service, max_waiting=1))  # type: ignore[arg-type]
    first: dict[str, int] = {}
    thread = threading.Thread(
        target=lambda: first.setdefault(
            "status", client.post("/sdapi/v1/txt2img", json={"prompt": "x"}).status_code
        )
    )
    thread.start()
    assert service.entered.wait(30)
    started = time.monotonic()
    busy = client.post("/sdapi/v1/txt2img", json={"prompt": "x"})
    assert time.monotonic() - started < 5
    assert busy.status_code == 503
    assert busy.headers["Retry-After"]
    assert "waiting" in busy.json()["detail"]
    service.release.set()
    thread.join(30)
    # the unexpected failure of the stand-in is a 500 without a traceback in the body
    assert first["status"] == 500
