"""Cold start of ``python app.py``: seconds until the server answers, and until the first image.

    .venv/bin/python bench/startup_bench.py [--runs 3] [--json]

Each run starts a fresh ``python app.py`` on a free loopback port (tiny demo pipeline, the demo
LoRAs, a temporary outputs folder), then measures from the moment the process is spawned:

- ``answer_s``: the first HTTP 200 from the server (``GET /`` — the page a user opens);
- ``first_image_s``: the first 64x64, 2-step image returned by ``POST /sdapi/v1/txt2img``
  (sent as soon as the server answers; it waits for the pipeline to finish loading).

Goals on a 2-core machine: answer <= 15 s, first image <= 20 s. Prints the median of the runs
(and every run) with the load average around them — numbers measured in this run only. On a
shared machine (load above the CPU count) the times stretch with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"answer_s": 15.0, "first_image_s": 20.0}
TINY = {"prompt": "1girl, cat ears, <lora:catgirl_v1:0.8>", "width": 64, "height": 64, "steps": 2, "seed": 1}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_run(timeout: float = 300.0) -> dict[str, float]:
    """Start the app once; return answer_s and first_image_s."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="lora-mixer-bench-") as tmp:
        env = dict(os.environ)
        env.update(
            {
                "LORA_MIXER_LORA_DIRS": str(ROOT / "models" / "Lora"),
                "LORA_MIXER_OUTPUTS": str(Path(tmp) / "outputs"),
                "LORA_MIXER_CACHE": str(Path(tmp) / "cache"),
                "LORA_MIXER_MODEL": "",
                "LORA_MIXER_DEVICE": "cpu",
                "GRADIO_ANALYTICS_ENABLED": "False",
                "HF_HUB_OFFLINE": "1",
            }
        )
        url = f"http://127.0.0.1:{port}"
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 - closed in finally
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            answer = _wait_for_answer(process, url, started, timeout)
            response = httpx.post(f"{url}/sdapi/v1/txt2img", json=TINY, timeout=timeout)
            response.raise_for_status()
            first_image = time.perf_counter() - started
            if not response.json().get("images"):
                raise RuntimeError("txt2img answered without an image")
            return {"answer_s": round(answer, 2), "first_image_s": round(first_image, 2)}
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _wait_for_answer(process: subprocess.Popen[bytes], url: str, started: float, timeout: float) -> float:
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with code {process.returncode}")
        try:
            if httpx.get(url + "/", timeout=5).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"app.py did not answer within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold starts to measure (median is reported)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    runs = [one_run() for _ in range(max(1, args.runs))]
    load_after = os.getloadavg()[0]
    summary = {key: statistics.median(run[key] for run in runs) for key in GOALS}
    verdict = {key: summary[key] <= goal for key, goal in GOALS.items()}
    if args.json:
        print(
            json.dumps(
                {"runs": runs, "median": summary, "goals": GOALS, "met": verdict, "cpus": os.cpu_count()}
            )
        )
    else:
        print(
            f"cold start of python app.py, {len(runs)} run(s), {os.cpu_count()} CPUs, "
            f"1-min load average {load_before:.1f} before / {load_after:.1f} after "
            "(a load above the CPU count means other work shared the CPUs)"
        )
        for index, run in enumerate(runs, start=1):
            print(
                f"  run {index}: server answers {run['answer_s']:.2f} s, "
                f"first image {run['first_image_s']:.2f} s"
            )
        for key, goal in GOALS.items():
            status = "ok" if verdict[key] else "OVER GOAL"
            print(f"  median {key}: {summary[key]:.2f} s (goal <= {goal:.0f} s) {status}")
    return 0 if all(verdict.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
