"""Which engine to build: flags over environment, validation, the hint when Ray is missing."""

from __future__ import annotations

import importlib.util

import pytest

from assistant.backend import EngineOptions, create_engine
from assistant.config import Settings
from assistant.errors import PresetError


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORA_MIXER_ENGINE", "ray")
    monkeypatch.setenv("LORA_MIXER_RAY_ADDRESS", "10.0.0.5:6379")
    monkeypatch.setenv("LORA_MIXER_REPLICAS", "4")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())  # Ray "installed"
    from_env = EngineOptions.from_env()
    assert (from_env.kind, from_env.ray_address, from_env.replicas) == ("ray", "10.0.0.5:6379", 4)
    assert from_env.capacity == 4
    flags = EngineOptions.from_env(kind="local", ray_address="auto", replicas=2)
    assert (flags.kind, flags.ray_address, flags.replicas) == ("local", "auto", 2)
    assert flags.capacity == 1  # in-process: one render at a time, whatever --replicas says


def test_defaults_are_the_in_process_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LORA_MIXER_ENGINE", "LORA_MIXER_RAY_ADDRESS", "LORA_MIXER_REPLICAS"):
        monkeypatch.delenv(name, raising=False)
    options = EngineOptions.from_env()
    assert (options.kind, options.ray_address, options.replicas) == ("local", None, 1)
    assert type(create_engine(Settings(), options)).__name__ == "Engine"  # not loaded: no torch yet


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (EngineOptions(kind="spark"), "engine 'spark' is not known; use one of: local, ray"),
        (EngineOptions(kind="local", replicas=0), "replicas must be from 1 to 64"),
        (EngineOptions(kind="local", replicas=65), "replicas must be from 1 to 64"),
        (EngineOptions(kind="local", gpus_per_replica=-1), "cannot be negative"),
    ],
)
def test_bad_options_are_refused_with_the_allowed_values(options: EngineOptions, message: str) -> None:
    with pytest.raises(PresetError, match=message):
        options.validated()


def test_a_bad_replica_count_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORA_MIXER_REPLICAS", "two")
    with pytest.raises(PresetError, match="LORA_MIXER_REPLICAS must be a whole number"):
        EngineOptions.from_env()


def test_without_the_ray_extra_the_answer_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "ray" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(PresetError, match=r"pip install -r requirements-ray\.txt"):
        EngineOptions.from_env(kind="ray")


def test_the_cluster_config_file_deploys_what_the_front_looks_for() -> None:
    """docs/ray-serve.yaml (README "Scale out"): valid for Serve, named as the front expects."""
    pytest.importorskip("ray", reason="the Ray extra (requirements-ray.txt) is not installed")
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from assistant.cluster import APP_NAME, DEPLOYMENT_NAME
    from assistant.cluster.deploy import build
    from assistant.config import PROJECT_ROOT

    config = ServeDeploySchema.model_validate(
        yaml.safe_load((PROJECT_ROOT / "docs" / "ray-serve.yaml").read_text(encoding="utf-8"))
    )
    assert config.proxy_location == "Disabled"
    (app,) = config.applications
    assert (app.name, app.import_path, app.route_prefix) == (APP_NAME, "assistant.cluster.deploy:build", None)
    deployment = build(app.args)._bound_deployment
    assert deployment.name == DEPLOYMENT_NAME
    assert deployment.num_replicas == 8
    assert deployment.ray_actor_options["num_gpus"] == 1
    settings = deployment.init_args[0]
    assert settings.model == "/shared/models/sd15.safetensors"
    assert settings.adapter_cache_size == 8
    cpu = build({"replicas": "2", "device": "cpu"})._bound_deployment
    assert (cpu.num_replicas, cpu.ray_actor_options["num_gpus"]) == (2, 0)
    with pytest.raises(PresetError, match="unknown argument 'modle'"):
        build({"modle": "x"})


def test_ray_is_an_optional_extra_that_ci_installs() -> None:
    from assistant.config import PROJECT_ROOT

    def entries(name: str) -> list[str]:
        text = (PROJECT_ROOT / name).read_text(encoding="utf-8")
        return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]

    assert not any(entry.startswith("ray") for entry in entries("requirements.txt"))  # runtime: no Ray
    assert entries("requirements-ray.txt") == ["ray[serve]==2.60.0"]  # pinned, and no torch with it
    assert "-r requirements-ray.txt" in entries("requirements-dev.txt")  # the README test command
