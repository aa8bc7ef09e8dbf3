"""The Ray engine on a real local Ray instance: 2 CPU replicas of the default (embedded) model.

One Ray instance for the whole module (starting it and the replicas is most of the cost). Every
image is compared with the in-process engine's for the same request: bit for bit for single
renders and sequential cells, within 1/255 for batched cells. The module ends with the tests that
change the cluster most (a model switch, a killed replica) and with the real front ends joined
to the same cluster: ``app.py --engine ray --ray-address …`` over HTTP, and the CLI.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray is imported: loopback
ray = pytest.importorskip("ray", reason="the Ray extra (requirements-ray.txt) is not installed")
torch = pytest.importorskip("torch")

from assistant import blend  # noqa: E402
from assistant.backend import EngineOptions  # noqa: E402
from assistant.cluster.front import RayEngine  # noqa: E402
from assistant.config import DEFAULT_LORA_DIR, EMBEDDED_MODEL, Settings  # noqa: E402
from assistant.errors import Cancelled, GenerationError, LoraLoadError  # noqa: E402
from assistant.service import RenderSettings, Service  # noqa: E402
from assistant.types import GenerationRequest, GenerationResult, PlannedLora  # noqa: E402
from tests.server import PROJECT_ROOT, start_server  # noqa: E402

pytestmark = [pytest.mark.engine, pytest.mark.slow]

#: The default model (the embedded one: the shipped demo LoRAs in DEFAULT_LORA_DIR are trained for it).
SETTINGS = Settings(lora_dirs=(str(DEFAULT_LORA_DIR),))
BASE = GenerationRequest(
    "1girl, cat ears, city",
    negative="lowres",
    seed=11,
    steps=3,
    cfg=7.0,
    sampler="Euler a",
    width=64,
    height=64,
)


def lora(name: str, weight: float, **extra: Any) -> PlannedLora:
    return PlannedLora(name, str(DEFAULT_LORA_DIR / f"{name}.safetensors"), weight, hash=name[:6], **extra)


def req(*loras: PlannedLora, **changes: Any) -> GenerationRequest:
    return dataclasses.replace(BASE, loras=loras, **changes)


def pixels(results: GenerationResult | list[GenerationResult]) -> np.ndarray:
    items = results if isinstance(results, list) else [results]
    return np.stack([np.asarray(image, dtype=np.int16) for r in items for image in r.images])


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayEngine]:
    temp = tempfile.mkdtemp(prefix="ray-lm-")  # short: Ray's socket paths must fit in 107 bytes
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LORA_MIXER_RAY_TEMP_DIR", temp)
        engine = RayEngine(SETTINGS, EngineOptions(kind="ray", replicas=2))
        started = time.perf_counter()
        engine.load()
        print(f"\nRay instance + 2 replicas ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        try:
            yield engine
        finally:
            engine.close()
            shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def local() -> Any:
    """The in-process engine on the same model: the reference for every image."""
    from assistant.engine.core import Engine

    torch.set_num_threads(1)  # the replicas run one thread each: the same float reductions
    engine = Engine(SETTINGS)
    engine.load()
    return engine


def _init_image() -> Any:
    """A 64x64 PNG as an img2img source (its pixels travel to the replica with the request)."""
    from PIL import Image

    from assistant.images import init_image

    buffer = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((64, 64)).save(buffer, format="PNG")
    return init_image(buffer.getvalue(), name="gradient.png")


def rendered_on(engine: RayEngine, action: Callable[[], Any]) -> tuple[Any, set[str]]:
    """``action()`` and the replicas that rendered something for it."""
    before = {s.replica: s.version for s in engine.replicas()}
    result = action()
    after = {s.replica: s.version for s in engine.replicas()}
    return result, {r for r, v in after.items() if v > before.get(r, 0)}


# -- single renders ----------------------------------------------------------------------------------


def test_a_render_on_a_replica_equals_the_in_process_render(cluster: RayEngine, local: Any) -> None:
    info = cluster.info
    assert (info.model_name, info.backend) == (EMBEDDED_MODEL, "Ray Serve, 2 replicas")
    for request in (
        BASE,
        req(lora("catgirl_v1", 0.7)),
        req(lora("catgirl_v1", 0.5, negative_weight=0.8), lora("cyberpunk_style", 0.4), batch_size=2),
        req(lora("catgirl_v1", 0.6), init_image=_init_image(), denoising_strength=0.6, steps=4),  # img2img
    ):
        ours = cluster.generate(request)
        theirs = local.generate(request)
        assert np.array_equal(pixels(ours), pixels(theirs))
        assert ours.infotexts == theirs.infotexts
        assert ours.seeds == theirs.seeds
        assert ours.request is not None
        assert ours.request.loras == request.loras
    # progress comes back while it renders (the first step at once, then a few a second) and ends
    # at the last step; a render faster than that may send none (the service ends it anyway)
    steps: list[tuple[int, int]] = []
    cluster.generate(req(steps=24, width=128, height=128), progress=lambda s, t: steps.append((s, t)))
    assert steps[0] == (1, 24)
    assert steps[-1] == (24, 24)
    assert steps == sorted(steps)


def test_a_render_goes_to_the_replica_that_holds_its_loras(cluster: RayEngine) -> None:
    mix = req(lora("jk_uniform", 0.6), lora("soft_light", 0.4))
    _, first = rendered_on(cluster, lambda: cluster.generate(mix))
    assert len(first) == 1
    holder = next(iter(first))
    adapters = {s.replica: set(s.adapters) for s in cluster.replicas()}
    others = [r for r in adapters if r != holder]
    assert others
    assert not any({"jk_uniform", "soft_light"} & {a.rsplit("_", 1)[0] for a in adapters[o]} for o in others)
    # both replicas idle each time: a random router would pick the other one half of the time
    for seed in range(5):
        _, used = rendered_on(
            cluster, lambda seed=seed: cluster.generate(dataclasses.replace(mix, seed=seed))
        )
        assert used == {holder}


def test_it_answers_a_caller_whose_thread_runs_an_event_loop(cluster: RayEngine, local: Any) -> None:
    """Ray's blocking calls refuse such a thread (an async handler, Playwright's sync API)."""
    import asyncio

    def in_a_loop_thread(call: Callable[[], Any]) -> Any:
        out: dict[str, Any] = {}

        async def inside() -> None:
            out["value"] = call()  # a blocking call made while this thread's event loop runs

        thread = threading.Thread(target=lambda: asyncio.run(inside()))
        thread.start()
        thread.join(120)
        return out["value"]

    ours = in_a_loop_thread(lambda: cluster.generate(BASE))
    assert np.array_equal(pixels(ours), pixels(local.generate(BASE)))
    assert len(in_a_loop_thread(cluster.replicas)) == 2


def test_a_lora_error_on_a_replica_reaches_the_caller_as_the_same_error(
    cluster: RayEngine, local: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    request = req(PlannedLora("broken", str(broken), 0.8))
    with pytest.raises(LoraLoadError) as ours:
        cluster.generate(request)
    with pytest.raises(LoraLoadError) as theirs:
        local.generate(request)
    assert str(ours.value) == str(theirs.value)
    assert np.array_equal(pixels(cluster.generate(BASE)), pixels(local.generate(BASE)))  # nothing left behind


def test_cancel_stops_the_replica_after_its_current_step(cluster: RayEngine, local: Any) -> None:
    cancel = threading.Event()
    steps: list[int] = []

    def progress(step: int, _total: int) -> None:
        steps.append(step)
        cancel.set()

    started = time.perf_counter()
    with pytest.raises(Cancelled, match="cancelled"):
        cluster.generate(req(steps=150, width=128, height=128), progress=progress, cancel=cancel)
    assert time.perf_counter() - started < 60
    assert steps
    assert max(steps) < 150
    # the replicas are free and clean again
    assert np.array_equal(pixels(cluster.generate(BASE)), pixels(local.generate(BASE)))


# -- grids ----------------------------------------------------------------------------------------------


def blind_box_cells(n: int = 8, **changes: Any) -> list[GenerationRequest]:
    base = req(lora("catgirl_v1", 0.6), lora("cyberpunk_style", 0.5), **changes)
    return list(blend.blind_box(base, n=n, seed=3).requests)


def test_a_sequential_grid_is_split_across_replicas_and_equals_the_in_process_grid(
    cluster: RayEngine, local: Any
) -> None:
    cells = blind_box_cells()
    steps: list[tuple[int, int]] = []
    ours, used = rendered_on(
        cluster,
        lambda: cluster.generate_many(cells, batched=False, progress=lambda s, t: steps.append((s, t))),
    )
    assert used == {s.replica for s in cluster.replicas()}  # both replicas rendered cells
    theirs = local.generate_many(cells, batched=False)
    assert np.array_equal(pixels(ours), pixels(theirs))
    assert [r.infotexts for r in ours] == [r.infotexts for r in theirs]
    assert [r.request.label for r in ours if r.request] == [c.label for c in cells]  # in order
    assert steps[-1] == (sum(c.steps for c in cells),) * 2


def test_a_batched_grid_is_within_one_level_of_the_in_process_batched_grid(
    cluster: RayEngine, local: Any
) -> None:
    cells = blind_box_cells()
    ours, used = rendered_on(cluster, lambda: cluster.generate_many(cells, batched=True))
    assert len(used) == 2
    theirs = local.generate_many(cells, batched=True)
    assert np.abs(pixels(ours) - pixels(theirs)).max() <= 1  # 1/255: a 4-row pass vs an 8-row pass
    assert [r.seeds for r in ours] == [r.seeds for r in theirs]


def test_the_service_runs_one_render_per_replica_at_once(cluster: RayEngine, tmp_path: Path) -> None:
    service = Service(dataclasses.replace(SETTINGS, outputs_dir=str(tmp_path)), engine=cluster)
    service.start(background=False)
    assert service.capacity == 2
    spans: dict[int, list[float]] = {0: [], 1: []}

    def render(index: int) -> None:
        def progress(_done: int, _total: int, _what: str) -> None:
            spans[index].append(time.monotonic())

        service.generate(
            "1girl, <lora:catgirl_v1:0.5>",
            settings=RenderSettings(steps=40, width=64, height=64, seed=index, sampler="Euler"),
            use_assistant=False,
            progress=progress,
        )

    threads = [threading.Thread(target=render, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    # the two renders overlapped in time (the in-process engine would run them one after the other)
    assert max(spans[0][1], spans[1][1]) < min(spans[0][-1], spans[1][-1])


# -- the real front ends, joined to the same cluster --------------------------------------------------------


def _cli(*args: str, cwd: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "LORA_MIXER_MODEL": ""}
    done = subprocess.run(
        [sys.executable, "-m", "assistant", *args, "--json"],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_the_cli_blind_box_on_ray_equals_the_in_process_one(cluster: RayEngine, tmp_path: Path) -> None:
    address = ray.get_runtime_context().gcs_address
    common = (
        "blindbox",
        "1girl, <lora:catgirl_v1:0.6>, <lora:cyberpunk_style:0.5>",
        "-n",
        "4",
        "--seed",
        "5",
        "--steps",
        "3",
        "--size",
        "64x64",
        "--sequential",
    )
    on_ray = _cli(*common, "--engine", "ray", "--ray-address", address, "--out", "ray", cwd=tmp_path)
    in_process = _cli(*common, "--out", "local", cwd=tmp_path)
    assert on_ray["engine"] == "Ray Serve, 2 replicas"
    for a, b in zip(on_ray["cells"], in_process["cells"], strict=True):
        image_a = np.asarray(_png(tmp_path / a["file"]))
        image_b = np.asarray(_png(tmp_path / b["file"]))
        assert np.array_equal(image_a, image_b)


def _png(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB").copy()


def test_app_py_on_ray_serves_signed_in_users_over_http(
    cluster: RayEngine, local: Any, tmp_path: Path
) -> None:
    import httpx

    address = ray.get_runtime_context().gcs_address
    server = start_server(
        DEFAULT_LORA_DIR,
        tmp_path,
        extra_args=("--engine", "ray", "--ray-address", address, "--max-queue", "2"),
        extra_env={"LORA_MIXER_DEVICE": "", "LORA_MIXER_API_AUTH": "alice:secret-a"},
        api_auth=("alice", "secret-a"),
    )
    try:
        url = f"{server.url}/sdapi/v1"
        body = {
            "prompt": "1girl, cat ears, city",
            "negative_prompt": "lowres",
            "seed": 11,
            "steps": 3,
            "cfg_scale": 7,
            "width": 64,
            "height": 64,
            "sampler_name": "Euler a",
            "assistant": False,
        }
        assert httpx.post(f"{url}/txt2img", json=body, timeout=60).status_code == 401
        alice = httpx.Client(auth=("alice", "secret-a"), timeout=300)
        options = alice.get(f"{url}/options").json()
        assert options["lora_mixer_engine"] == "Ray Serve, 2 replicas"
        response = alice.post(f"{url}/txt2img", json=body)
        assert response.status_code == 200, response.text
        image = _decode(response.json()["images"][0])
        assert np.array_equal(np.asarray(image, dtype=np.int16), pixels(local.generate(BASE))[0])
        saved = Path(json.loads(response.json()["info"])["saved_paths"][0])
        assert saved.parent.parent.name.startswith("alice-")  # outputs/users/alice-…/<day>/
        # the queue bound as today: 2 renders running or waiting, the third answered 503 at once
        slow = {**body, "steps": 150, "width": 128, "height": 128}
        statuses: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: statuses.append(alice.post(f"{url}/txt2img", json=slow).status_code)
            )
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and alice.get(f"{url}/progress").json()["state"]["job_count"] < 2:
            time.sleep(0.2)
        busy = alice.post(f"{url}/txt2img", json=body)
        assert busy.status_code == 503
        assert busy.headers["Retry-After"]
        alice.post(f"{url}/interrupt")
        for thread in threads:
            thread.join(120)
        assert sorted(statuses) == [499, 499]
    finally:
        server.stop()
    log = server.log()
    assert "secret-a" not in log
    assert "Traceback" not in log, log[-4000:]


def _decode(data: str) -> Any:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        return image.convert("RGB").copy()


# -- cluster changes (model switch, a killed replica) -----------------------------------------------------


def test_a_model_switch_reaches_every_replica_and_a_failed_one_changes_nothing(
    cluster: RayEngine, tmp_path: Path
) -> None:
    service = Service(
        dataclasses.replace(SETTINGS, outputs_dir=str(tmp_path / "outputs"), allow_model_switch=True),
        engine=cluster,
    )
    service.start(background=False)
    info = service.switch_model("tiny-sdxl")
    assert info.model_name == "tiny-sdxl-demo"
    assert info.backend == "Ray Serve, 2 replicas"
    assert {s.info.model_name for s in cluster.replicas()} == {"tiny-sdxl-demo"}
    rendered = service.generate("1girl", settings=RenderSettings(steps=2, width=64, height=64, seed=1))
    assert "tiny-sdxl-demo" in rendered.infotexts[0]
    # a model no replica can load: refused, and every replica keeps the running one
    with pytest.raises(GenerationError):
        cluster.switch_model(dataclasses.replace(SETTINGS, model=str(tmp_path / "not-a-model")))
    assert {s.info.model_name for s in cluster.replicas()} == {"tiny-sdxl-demo"}
    assert cluster.info.model_name == "tiny-sdxl-demo"
    cluster.switch_model(SETTINGS)  # back to the module's settings for the tests after this one
    assert {s.info.model_name for s in cluster.replicas()} == {EMBEDDED_MODEL}


def test_a_vae_change_reaches_every_replica_without_reloading_the_model(
    cluster: RayEngine, local: Any, tmp_path: Path
) -> None:
    import json

    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    from assistant.engine.checkpoints import CONFIGS_DIR
    from assistant.engine.core import Engine
    from tests.engine.ldm import vae_to_ldm

    # an original-layout VAE file for the running model, and config folders that describe it
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS_DIR / "sd15", configs / "sd15")
    (configs / "sd15" / "vae" / "config.json").write_text(json.dumps(dict(local.pipeline.vae.config)))
    torch.manual_seed(11)
    other = AutoencoderKL.from_config(local.pipeline.vae.config)
    vae_dir = tmp_path / "VAE"
    vae_dir.mkdir()
    state = vae_to_ldm(other.state_dict(), len(other.config.block_out_channels), prefix="")
    save_file({k: v.contiguous() for k, v in state.items()}, str(vae_dir / "kl-f8-anime.safetensors"))
    settings = dataclasses.replace(SETTINGS, vae_dir=str(vae_dir), model_configs=str(configs))
    try:
        cluster.switch_model(settings)  # new folders: the replicas load the model with them
        pids = {s.replica: s.pid for s in cluster.replicas()}
        info = cluster.set_vae("kl-f8-anime.safetensors")
        assert info.vae_name == "kl-f8-anime.safetensors"
        statuses = cluster.replicas()
        assert {s.info.vae_name for s in statuses} == {"kl-f8-anime.safetensors"}
        assert {s.replica: s.pid for s in statuses} == pids  # the same replicas, not new ones
        reference = Engine(dataclasses.replace(settings, vae="kl-f8-anime.safetensors"))
        reference.load()
        ours = cluster.generate(BASE)
        assert np.array_equal(pixels(ours), pixels(reference.generate(BASE)))
        assert "VAE: kl-f8-anime" in ours.infotexts[0]
        assert not np.array_equal(pixels(ours), pixels(local.generate(BASE)))  # the VAE did change
    finally:
        cluster.switch_model(SETTINGS)
    assert {s.info.vae_name for s in cluster.replicas()} == {""}


def test_a_replica_killed_mid_grid_has_its_cells_rendered_again_elsewhere(
    cluster: RayEngine, local: Any
) -> None:
    cells = blind_box_cells(8, steps=12)
    statuses = cluster.replicas()
    assert len(statuses) == 2
    victim = statuses[0]
    both_started = threading.Event()
    total = sum(c.steps for c in cells)

    def progress(_done: int, started_total: int) -> None:
        if started_total >= total:  # both chunks have reported: both replicas are rendering
            both_started.set()

    out: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: out.setdefault(
            "results", cluster.generate_many(cells, batched=False, progress=progress)
        )
    )
    rerun_before = cluster.rerun_cells
    thread.start()
    assert both_started.wait(120)
    ray.kill(ray.get_actor(victim.actor_name, namespace="serve"), no_restart=True)
    thread.join(300)
    assert "results" in out, "the grid did not complete after a replica was killed"
    assert cluster.rerun_cells - rerun_before == 4  # the dead replica's chunk, rendered again
    assert np.array_equal(pixels(out["results"]), pixels(local.generate_many(cells, batched=False)))
