"""The Train tab's handlers (assistant.ui.train) over a real service and the embedded model.

The browser test (tests/browser/test_train_tab.py) clicks through one run; here the tab's logic is
driven directly: its values become one typed request, the stream reports progress and ends with
the result, and Cancel stops a run after its current step without writing a file. Every wait is
on a condition (a step was reported, the run ended), with a generous deadline for a loaded machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Settings
from assistant.errors import TrainingError
from assistant.service import Service
from assistant.ui import train as train_ui
from tests.train.conftest import write_dataset

pytestmark = [pytest.mark.engine]

#: The tab's values after the files, in train_ui.FIELDS order (a small, fast run at 64 px).
VALUES: dict[str, Any] = {
    "name": "tab_mascot", "trigger": "catgirl", "repeats": 2, "caption": "", "steps": 4, "rank": 4,
    "alpha": 2, "lr": 1e-3, "batch": 2, "resolution": 64, "optimizer": "adamw", "scheduler": "constant",
    "train_te": False, "conv_dim": 0, "seed": 3, "sample_prompt": "",
}  # fmt: skip


def _values(**changes: Any) -> list[Any]:
    merged = {**VALUES, **changes}
    return [merged[name] for name in train_ui.FIELDS]


def test_the_tabs_values_become_one_typed_request() -> None:
    request = train_ui.train_request(_values(steps=12.0, resolution=0, conv_dim=8, name="  x  "))
    assert (request.name, request.steps, request.resolution, request.conv_dim) == ("x", 12, None, 8)
    assert (request.alpha, request.lr, request.batch_size) == (2.0, 1e-3, 2)
    assert request.train_text_encoder is False
    with pytest.raises(TrainingError, match=r"Steps: 2\.5 must be a whole number"):
        train_ui.train_request(_values(steps=2.5))
    with pytest.raises(TrainingError, match="Learning rate: 'fast' is not a number"):
        train_ui.train_request(_values(lr="fast"))
    with pytest.raises(TrainingError, match="Rank: None is not a number"):
        train_ui.train_request(_values(rank=None))


def test_loss_rows_carry_each_step_and_its_moving_average() -> None:
    rows = train_ui.loss_rows([4.0, 2.0, 0.0], window=2)
    assert [r["loss"] for r in rows if r["curve"] == "step"] == [4.0, 2.0, 0.0]
    assert [r["loss"] for r in rows if r["curve"] != "step"] == [4.0, 3.0, 1.0]
    assert train_ui.loss_rows([]) == []


def test_upload_paths_take_paths_or_file_objects() -> None:
    class Upload:
        name = "/tmp/a.png"

    assert train_ui.upload_paths(["/tmp/b.png", Upload()]) == ["/tmp/b.png", "/tmp/a.png"]
    assert train_ui.upload_paths(None) == []


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("train-tab")
    (root / "Lora").mkdir()
    service = Service(
        Settings(
            lora_dirs=(str(root / "Lora"),),
            device="cpu",
            cache_dir=str(root / "cache"),
            outputs_dir=str(root / "outputs"),
            allow_training=True,
        )
    )
    service.start(background=False)
    yield service
    service.training.cancel()
    service.training.wait(60)


@pytest.fixture
def uploads(tmp_path: Path) -> list[str]:
    data = write_dataset(tmp_path / "img", images=4, repeats=2)
    return sorted(str(p) for p in (data / "2_catgirl").iterdir())


def _drain(stream: Iterator[Any], seen: list[str], errors: list[BaseException]) -> None:
    try:
        for status, _curve, _samples in stream:
            seen.append(status)
    except BaseException as err:
        errors.append(err)


def _wait_for(condition: Any, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _is_at_step(state: Any, name: str) -> bool:
    return state.running and state.name == name and state.step >= 1


def test_check_then_train_streams_progress_and_lists_the_lora(service: Service, uploads: list[str]) -> None:
    handlers = train_ui.TrainHandlers(service, poll=0.05)
    plan = handlers.check(uploads, *_values())
    assert "Ready to train `tab_mascot`" in plan
    assert "4 images" in plan
    assert "catgirl" in plan
    statuses = [status for status, _curve, _samples in handlers.train(uploads, *_values())]
    assert statuses[-1].startswith("**Done `tab_mascot`**")
    assert "<lora:tab_mascot:0.8>" in statuses[-1]
    lora_dir = Path(service.settings.lora_dirs[0])
    assert (lora_dir / "tab_mascot.safetensors").is_file()
    assert "tab_mascot" in [info.name for info in service.loras()]  # the library was rescanned
    with pytest.raises(TrainingError, match="already exists"):  # never overwrites a LoRA
        handlers.check(uploads, *_values())


def test_cancel_stops_the_run_after_its_step_and_writes_no_file(
    service: Service, uploads: list[str]
) -> None:
    handlers = train_ui.TrainHandlers(service, poll=0.05)
    assert handlers.cancel() == "No training is running."
    seen: list[str] = []
    errors: list[BaseException] = []
    stream = handlers.train(uploads, *_values(name="cancelled_mascot", steps=5000))
    worker = threading.Thread(target=_drain, args=(stream, seen, errors), daemon=True)
    worker.start()
    # this run's first step: the module's service keeps the last run's state ("done", step 4 of the
    # test before), so a bare `step >= 1` held before this run had even started
    _wait_for(lambda: _is_at_step(service.training.snapshot(), "cancelled_mascot"), "the first training step")
    with pytest.raises(TrainingError, match="already going"):  # one run at a time
        service.start_training(uploads, train_ui.train_request(_values(name="second")))
    assert handlers.cancel() == "Cancelling after the current step…"
    worker.join(300)
    assert not worker.is_alive()
    assert not errors
    state = service.training.snapshot()
    assert state.status == "cancelled"
    assert state.step < 5000
    assert seen[-1].startswith("**Cancelled `cancelled_mascot`**")
    assert "no LoRA file was written" in seen[-1]
    assert not (Path(service.settings.lora_dirs[0]) / "cancelled_mascot.safetensors").exists()
