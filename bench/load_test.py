"""Bounded load test of the real server: ``python bench/load_test.py [--requests 200] [--clients 20]``.

Starts ``python app.py`` on 127.0.0.1 (a free port, the tiny offline pipeline, the demo LoRAs in a
temporary folder), then ``--clients`` threads send ``--requests`` renders in total (64x64, 2
steps, each with a different LoRA mix) for at most ``--duration`` seconds: half through the
A1111 API (``POST /sdapi/v1/txt2img``), half through the Gradio queue (``gradio_client``, the path
the UI takes). It reports requests served, rejected with ``queue_full`` (expected once the
Gradio queue's ``max_size`` is reached), errors (anything else: must be 0), p50/p99 latency of the
served ones, and whether the server still answers afterwards; then it stops the server and
appends the figures to ``bench/RESULTS.md`` (``--no-write`` to skip). ``--engine ray --replicas N``
runs the server on the Ray engine (a private Ray instance the server starts on loopback, N CPU
replicas). Loopback only; the loop is bounded by both the request count and the deadline, so it
always stops by itself.
Exit code 0 when errors == 0 and the server survived, else 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from results_table import append_row  # noqa: E402  (bench/ is the script folder)

from tests.server import TINY, Server, start_server  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
MIXES = (
    "1girl, cat ears, <lora:catgirl_v1:0.6>",
    "1girl, city, <lora:cyberpunk_style:0.7>",
    "1girl, <lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.3>, <lora:soft_light:0.4>",
    "portrait, <lora:add_detail:-0.5>",
    "1girl, jk uniform, <lora:jk_uniform:0.8>",
    "landscape",
)


@dataclass
class Tally:
    """Outcomes collected by all client threads (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    by_path: dict[str, list[float]] = field(default_factory=lambda: {"api": [], "ui": []})
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, outcome: str, latency: float, error: str = "", path: str = "") -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            if outcome == "served":
                self.latencies.append(latency)
                self.by_path.setdefault(path, []).append(latency)
            if error and len(self.errors) < 20:
                self.errors.append(error)


class Budget:
    """Hands out request numbers until the count or the deadline runs out."""

    def __init__(self, total: int, deadline: float) -> None:
        self._left = total
        self._deadline = deadline
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self._left <= 0 or time.monotonic() >= self._deadline:
                return None
            self._left -= 1
            return self._left


def api_client(server: Server, budget: Budget, tally: Tally) -> None:
    """One A1111-API client: renders until the budget is spent."""
    with httpx.Client(timeout=120) as client:
        while (number := budget.take()) is not None:
            payload = {**TINY, "prompt": MIXES[number % len(MIXES)], "seed": number}
            started = time.monotonic()
            try:
                response = client.post(f"{server.url}/sdapi/v1/txt2img", json=payload)
            except httpx.HTTPError as exc:
                tally.add("error", 0, f"api: {type(exc).__name__}: {exc}")
                continue
            elapsed = time.monotonic() - started
            if response.status_code == 200 and response.json().get("images"):
                tally.add("served", elapsed, path="api")
            elif response.status_code in (429, 503):
                tally.add("queue_full", elapsed)
            else:
                tally.add("error", elapsed, f"api: HTTP {response.status_code}: {response.text[:200]}")


def connect_ui(server: Server, attempts: int = 5) -> Any:
    """A gradio_client for the server, made before the clock starts (setup is not a request)."""
    from gradio_client import Client

    for attempt in range(attempts):
        try:
            return Client(server.url, verbose=False, httpx_kwargs={"timeout": 60})
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def ui_client(client: Any, budget: Budget, tally: Tally, api_name: str) -> None:
    """One Gradio client (the UI's path, through the bounded queue)."""
    from gradio_client.exceptions import AppError

    while (number := budget.take()) is not None:
        started = time.monotonic()
        try:
            client.predict(
                MIXES[number % len(MIXES)],  # positive
                "",  # negative
                True,  # apply the assistant's changes
                TINY["sampler_name"],
                TINY["steps"],
                TINY["cfg_scale"],
                TINY["width"],
                TINY["height"],
                number,  # seed
                1,  # batch
                [],  # chat history
                api_name=api_name,
            )
        except Exception as exc:
            elapsed = time.monotonic() - started
            text = str(exc)
            # the app's own bound (--max-queue requests running or waiting) answers "server is busy"
            if any(word in text.lower() for word in ("queue is full", "queue_full", "server is busy")):
                tally.add("queue_full", elapsed)
            elif isinstance(exc, AppError):
                tally.add("error", elapsed, f"ui: AppError: {text[:200]}")
            else:
                tally.add("error", elapsed, f"ui: {type(exc).__name__}: {text[:200]}")
            continue
        tally.add("served", time.monotonic() - started, path="ui")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run(
    requests: int,
    clients: int,
    duration: float,
    *,
    ui_share: float,
    ui_api_name: str,
    max_queue: int | None = None,
    engine: str = "local",
    replicas: int = 1,
) -> dict[str, object]:
    """Start the server, run the clients, stop the server; returns the figures."""
    from assistant.engine.demo_loras import write_demo_loras

    with tempfile.TemporaryDirectory(prefix="lora-mixer-load-") as tmp:
        work = Path(tmp)
        lora_dir = work / "Lora"
        write_demo_loras(lora_dir)
        started_server = time.monotonic()
        extra: tuple[str, ...] = ("--max-queue", str(max_queue)) if max_queue is not None else ()
        if engine == "ray":
            extra += ("--engine", "ray", "--replicas", str(replicas))
        server = start_server(lora_dir, work, extra_args=extra)
        startup_s = time.monotonic() - started_server
        try:
            # Warm up once (first render compiles kernels, loads adapters) so latencies are steady.
            httpx.post(f"{server.url}/sdapi/v1/txt2img", json={**TINY, "prompt": MIXES[0]}, timeout=300)
            tally = Tally()
            ui_clients = round(clients * ui_share)
            ui_connections = [connect_ui(server) for _ in range(ui_clients)]
            budget = Budget(requests, time.monotonic() + duration)  # the clock starts now
            threads = [
                threading.Thread(target=ui_client, args=(conn, budget, tally, ui_api_name), daemon=True)
                for conn in ui_connections
            ] + [
                threading.Thread(target=api_client, args=(server, budget, tally), daemon=True)
                for _ in range(clients - ui_clients)
            ]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=duration + 180)
            wall = time.monotonic() - began
            hung = sum(thread.is_alive() for thread in threads)
            alive = server.alive()
            after = httpx.post(
                f"{server.url}/sdapi/v1/txt2img", json={**TINY, "prompt": MIXES[0]}, timeout=300
            )
            alive_after = alive and after.status_code == 200
        finally:
            server.stop()
            if server.process.returncode not in (0, None) or "Traceback" in server.log():
                tail = server.log()[-6000:]
                print(f"server log (exit {server.process.returncode}):\n{tail}", file=sys.stderr)
    sent = sum(tally.outcomes.values())
    return {
        "requests": requests,
        "sent": sent,
        "clients": clients,
        "ui_clients": ui_clients,
        "served": tally.outcomes["served"],
        "queue_full": tally.outcomes["queue_full"],
        "errors": tally.outcomes["error"],
        "error_samples": tally.errors,
        "hung_clients": hung,
        "wall_s": wall,
        "throughput_rps": tally.outcomes["served"] / wall if wall else 0.0,
        "p50_s": percentile(tally.latencies, 50),
        "p99_s": percentile(tally.latencies, 99),
        "api_served": len(tally.by_path["api"]),
        "api_p50_s": percentile(tally.by_path["api"], 50),
        "api_p99_s": percentile(tally.by_path["api"], 99),
        "ui_served": len(tally.by_path["ui"]),
        "ui_p50_s": percentile(tally.by_path["ui"], 50),
        "ui_p99_s": percentile(tally.by_path["ui"], 99),
        "max_queue": "app default (32)" if max_queue is None else max_queue,
        "engine": "in-process"
        if engine == "local"
        else f"Ray, {replicas} replica{'s' if replicas != 1 else ''}",
        "startup_s": startup_s,
        "alive_after": alive_after,
        # 1-minute load average at the end: on a shared machine the figures scale with it.
        "load_avg": os.getloadavg()[0],
    }


def markdown_row(figures: dict[str, object]) -> str:
    engine = str(figures.get("engine", "in-process"))
    machine = f"{platform.machine()}, {_cores()} cores, load {figures['load_avg']:.1f}"
    if engine != "in-process":
        machine += f", engine: {engine}"
    return (
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {machine} | "
        f"{figures['sent']}/{figures['requests']} | {figures['clients']} ({figures['ui_clients']} UI) | "
        f"{figures['max_queue']} | "
        f"{figures['served']} | {figures['queue_full']} | {figures['errors']} | "
        f"{figures['p50_s']:.2f} | {figures['p99_s']:.2f} | "
        f"{figures['api_p50_s']:.2f} / {figures['api_p99_s']:.2f} | "
        f"{figures['ui_p50_s']:.2f} / {figures['ui_p99_s']:.2f} | "
        f"{figures['throughput_rps']:.2f} | "
        f"{'yes' if figures['alive_after'] else 'NO'} |"
    )


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


SECTION = "## Load test (`bench/load_test.py`)"
TABLE_HEAD = (
    "| when (UTC) | machine | sent/planned | clients | queue max | served | queue_full | errors "
    "| p50 s | p99 s | API p50/p99 s | UI p50/p99 s | served/s | answers after |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="total requests (default 200)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--duration", type=float, default=60.0, help="stop sending after this many seconds")
    parser.add_argument(
        "--ui-share", type=float, default=0.5, help="fraction of clients using the Gradio queue"
    )
    parser.add_argument("--ui-api-name", default="/generate", help="gradio api_name of the generate event")
    parser.add_argument(
        "--max-queue", type=int, default=None, help="pass --max-queue N to app.py (default: the app's own)"
    )
    parser.add_argument("--engine", choices=("local", "ray"), default="local", help="the server's engine")
    parser.add_argument("--replicas", type=int, default=2, help="Ray replicas with --engine ray (default 2)")
    parser.add_argument("--no-write", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 2000 or not 1 <= args.clients <= 64 or not 0 < args.duration <= 600:
        parser.error("keep it bounded: 1-2000 requests, 1-64 clients, a duration of at most 600 s")
    figures = run(
        args.requests,
        args.clients,
        args.duration,
        ui_share=args.ui_share,
        ui_api_name=args.ui_api_name,
        max_queue=args.max_queue,
        engine=args.engine,
        replicas=args.replicas,
    )
    for key, value in figures.items():
        if key != "error_samples":
            print(f"{key:>15}: {value:.3f}" if isinstance(value, float) else f"{key:>15}: {value}")
    for sample in figures["error_samples"]:  # type: ignore[attr-defined]
        print(f"  error: {sample}")
    if not args.no_write:
        append_row(SECTION, TABLE_HEAD, markdown_row(figures))
        print(f"appended to {RESULTS.relative_to(ROOT)}")
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0 if figures["errors"] == 0 and figures["alive_after"] and not figures["hung_clients"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
