"""``load_settings``: lora-mixer.yaml and the environment are checked against Settings' types."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import _ENV, Settings, load_settings
from assistant.errors import PresetError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*_ENV, "LORA_MIXER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lora-mixer.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_one_folder_written_as_a_string_is_that_folder_not_its_characters(tmp_path: Path) -> None:
    settings = load_settings(_yaml(tmp_path, "lora_dirs: /data/loras\nembeddings_dirs: /data/ti\n"))
    assert settings.lora_dirs == ("/data/loras",)
    assert settings.embeddings_dirs == ("/data/ti",)
    listed = load_settings(_yaml(tmp_path, "lora_dirs: [/a, /b]\n"))
    assert listed.lora_dirs == ("/a", "/b")


def test_a_quoted_number_is_read_as_the_number(tmp_path: Path) -> None:
    settings = load_settings(_yaml(tmp_path, 'adapter_cache_size: "8"\nclip_skip: "2"\nlow_vram: "yes"\n'))
    assert settings.adapter_cache_size == 8
    assert isinstance(settings.adapter_cache_size, int)
    assert settings.clip_skip == 2
    assert settings.low_vram is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("adapter_cache_size: eight\n", "'adapter_cache_size': Input should be a valid integer"),
        ("lora_dirs: [/a, 3]\n", "'lora_dirs[1]': Input should be a valid string"),
        ("low_vram: maybe\n", "'low_vram': Input should be a valid boolean"),
        ("lora_dir: /a\n", "unknown setting 'lora_dir'; valid: adapter_cache_size"),
        ("- a\n", "expected a mapping of settings"),
    ],
)
def test_a_wrong_type_in_the_file_names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(PresetError) as refused:
        load_settings(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert message in str(refused.value)


def test_the_environment_wins_over_the_file_and_names_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _yaml(tmp_path, "adapter_cache_size: 3\nlora_dirs: /from/yaml\nmodel: from-yaml\n")
    monkeypatch.setenv("LORA_MIXER_ADAPTER_CACHE", "5")
    monkeypatch.setenv("LORA_MIXER_LORA_DIRS", "/x:/y")
    monkeypatch.setenv("LORA_MIXER_MODEL", "")  # empty: back to the tiny demo model
    settings = load_settings(path)
    assert (settings.adapter_cache_size, settings.lora_dirs, settings.model) == (5, ("/x", "/y"), None)
    monkeypatch.setenv("LORA_MIXER_ADAPTER_CACHE", "lots")
    with pytest.raises(PresetError, match="environment: 'LORA_MIXER_ADAPTER_CACHE': Input should be a valid"):
        load_settings(path)


def test_defaults_without_a_file() -> None:
    assert load_settings("/nonexistent/lora-mixer.yaml") == Settings()
