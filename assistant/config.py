"""Settings: where LoRAs and models live, which device, where outputs go.

Precedence (later wins): defaults < YAML file (``LORA_MIXER_CONFIG`` or ``lora-mixer.yaml`` in
the working directory) < environment variables < command-line flags (``Settings.replace``).

Environment variables: ``LORA_MIXER_MODEL`` (hub id, local diffusers folder or single-file
``.safetensors``; empty = the embedded demo model), ``LORA_MIXER_ALLOW_TRAINING`` (the Train tab; off on
a Hugging Face Space unless set to 1), ``LORA_MIXER_LORA_DIRS`` (folders
separated by ``os.pathsep``), ``LORA_MIXER_DEVICE`` (cpu, cuda, cuda:1 …; empty = auto),
``LORA_MIXER_OUTPUTS``, ``LORA_MIXER_CACHE``, ``LORA_MIXER_ADAPTER_CACHE``, ``LORA_MIXER_LOW_VRAM``,
``LORA_MIXER_MODELS_DIR`` (checkpoints offered for switching at run time, A1111's
``models/Stable-diffusion`` layout: ``.safetensors`` files and diffusers folders),
``LORA_MIXER_VAE`` (``Automatic``, ``None``, a file in the VAE folder, a path, a diffusers folder or a
hub id), ``LORA_MIXER_VAE_DIR`` (A1111's ``models/VAE``), ``LORA_MIXER_EMBEDDINGS_DIRS`` (textual
inversions, A1111's ``embeddings``; folders separated by ``os.pathsep``), ``LORA_MIXER_CLIP_SKIP``
(1–12), ``LORA_MIXER_RNG`` (GPU, CPU or NV), ``LORA_MIXER_EMPHASIS`` (Original, No norm, Ignore,
None) and ``LORA_MIXER_MODEL_CONFIGS`` (a folder with ``sd15``/``sd2``/``sd2-v``/``sdxl`` diffusers
config folders for single-file checkpoints; default: the shipped ones).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError

from .errors import PresetError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PRESETS_DIR = PROJECT_ROOT / "presets"
DEFAULT_LORA_DIR = PROJECT_ROOT / "models" / "Lora"
DEFAULT_MODELS_DIR = PROJECT_ROOT / "models" / "Stable-diffusion"
DEFAULT_VAE_DIR = PROJECT_ROOT / "models" / "VAE"
DEFAULT_EMBEDDINGS_DIR = PROJECT_ROOT / "models" / "embeddings"
#: ``vae`` values with A1111's meaning: a VAE named like the checkpoint if there is one, else its
#: own ("Automatic"); always the checkpoint's own ("None").
VAE_AUTOMATIC, VAE_NONE = "Automatic", "None"
#: The random-weight demo pipelines (see ``assistant.engine.tiny``): always available.
TINY_MODELS = ("tiny-sd15", "tiny-sdxl")
#: The embedded default model, trained here on shapes (``assistant.engine.embedded``); used when
#: no model is configured.
EMBEDDED_MODEL = "tiny-shapes-sd15"


def _folders(value: Any) -> Any:
    """A folder list as YAML or the environment give it: one path (a string) is one folder."""
    return (str(value),) if isinstance(value, (str, os.PathLike)) else value


#: A list of folders; ``lora_dirs: /data/loras`` means the one folder, not its characters.
Folders = Annotated[tuple[str, ...], BeforeValidator(_folders)]


@dataclass(frozen=True, slots=True)
class Settings:
    """The server's settings. :func:`load_settings` validates the YAML file and the environment
    against these field types (pydantic; unknown keys are refused); code that builds a Settings
    directly passes the right types."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    lora_dirs: Folders = (str(DEFAULT_LORA_DIR),)
    model: str | None = None
    models_dir: str = str(DEFAULT_MODELS_DIR)
    device: str | None = None
    outputs_dir: str = "outputs"
    cache_dir: str = str(PROJECT_ROOT / ".cache")
    catalog: str = str(PRESETS_DIR / "loras.yaml")
    rules: str = str(PRESETS_DIR / "rules.yaml")
    recipes_dir: str = str(PRESETS_DIR / "recipes")
    adapter_cache_size: int = 8
    low_vram: bool = False
    #: Renders of at least this many sampling steps whose LoRA mix is the same for every step and
    #: row run with the LoRAs fused into the UNet's weights (restored bit for bit after; see
    #: assistant.engine.fuse); 0 never fuses. ``LORA_MIXER_FUSE_MIN_STEPS``.
    fuse_min_steps: int = 10
    #: Whether users may switch the base model (UI menu, API). None: yes, except on a Hugging Face
    #: Space (``SPACE_ID`` is set), where one visitor's switch would change every visitor's model.
    allow_model_switch: bool | None = None
    vae: str | None = None  # None = "Automatic"
    vae_dir: str = str(DEFAULT_VAE_DIR)
    embeddings_dirs: Folders = (str(DEFAULT_EMBEDDINGS_DIR),)
    clip_skip: int = 1
    rng: str = "GPU"
    emphasis: str = "Original"
    model_configs: str | None = None
    #: Whether the Train tab may train LoRAs. None: yes, except on a Hugging Face Space, where any
    #: visitor's run would take the server's CPU/GPU for minutes and write into the shared LoRA folder.
    allow_training: bool | None = None

    def replace(self, **changes: Any) -> Settings:
        """A copy with the given fields changed; ``None`` values are ignored (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def model_switch_allowed(self) -> bool:
        if self.allow_model_switch is not None:
            return self.allow_model_switch
        return not os.environ.get("SPACE_ID")

    @property
    def training_allowed(self) -> bool:
        if self.allow_training is not None:
            return self.allow_training
        return not os.environ.get("SPACE_ID")

    @property
    def uses_tiny_model(self) -> bool:
        return not self.model


#: Environment variables read by :func:`load_settings`, and the setting each one sets. Folder
#: lists are separated by ``os.pathsep``; flags read 1/0, true/false, yes/no, on/off.
_ENV: dict[str, str] = {
    "LORA_MIXER_MODEL": "model",
    "LORA_MIXER_DEVICE": "device",
    "LORA_MIXER_OUTPUTS": "outputs_dir",
    "LORA_MIXER_CACHE": "cache_dir",
    "LORA_MIXER_MODELS_DIR": "models_dir",
    "LORA_MIXER_VAE": "vae",
    "LORA_MIXER_VAE_DIR": "vae_dir",
    "LORA_MIXER_MODEL_CONFIGS": "model_configs",
    "LORA_MIXER_LORA_DIRS": "lora_dirs",
    "LORA_MIXER_EMBEDDINGS_DIRS": "embeddings_dirs",
    "LORA_MIXER_LOW_VRAM": "low_vram",
    "LORA_MIXER_ALLOW_MODEL_SWITCH": "allow_model_switch",
    "LORA_MIXER_ALLOW_TRAINING": "allow_training",
    "LORA_MIXER_CLIP_SKIP": "clip_skip",
    "LORA_MIXER_RNG": "rng",
    "LORA_MIXER_EMPHASIS": "emphasis",
    "LORA_MIXER_ADAPTER_CACHE": "adapter_cache_size",
    "LORA_MIXER_FUSE_MIN_STEPS": "fuse_min_steps",
}
#: Variables whose empty value means "unset the setting" (the tiny model, auto device …); the
#: others are ignored when empty.
_ENV_EMPTY_IS_NONE = frozenset(
    {"model", "device", "outputs_dir", "cache_dir", "models_dir", "vae", "vae_dir", "model_configs"}
)
_FOLDER_LISTS = frozenset({"lora_dirs", "embeddings_dirs"})


def _settings_adapter() -> TypeAdapter[Settings]:
    return TypeAdapter(Settings)


def _validated(values: dict[str, Any], source: str, names: dict[str, str]) -> dict[str, Any]:
    """``values`` checked against :class:`Settings`' types; PresetError names ``source`` and the key
    (``names`` maps a field to what the user wrote, e.g. its environment variable)."""
    try:
        settings = _settings_adapter().validate_python(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else ""
            where = ".".join(str(part) for part in error["loc"][1:])
            shown = names.get(key, key) + (f"[{where}]" if where else "")
            if error["type"] == "unexpected_keyword_argument":
                valid = ", ".join(sorted(f.name for f in dataclasses.fields(Settings)))
                problems.append(f"unknown setting '{shown}'; valid: {valid}")
            else:
                problems.append(f"'{shown}': {error['msg']} (got {error['input']!r})")
        raise PresetError(f"{source}: " + "; ".join(problems)) from None
    return {key: getattr(settings, key) for key in values}


def _file_values(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path}: expected a mapping of settings at the top level")
    return _validated({str(key): value for key, value in data.items()}, str(path), {})


def _env_values() -> dict[str, Any]:
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    for env, name in _ENV.items():
        text = os.environ.get(env)
        if text is None or (not text and name not in _ENV_EMPTY_IS_NONE):
            continue
        names[name] = env
        if name in _FOLDER_LISTS:
            values[name] = tuple(p for p in text.split(os.pathsep) if p)
        else:
            values[name] = text or None
    return _validated(values, "environment", names)


def load_settings(config_file: str | os.PathLike[str] | None = None) -> Settings:
    """Defaults, then the YAML file, then the environment, each checked against :class:`Settings`'
    types (a wrong type is a PresetError naming the file or variable and the key; a single folder
    where a list of folders is meant is that one folder)."""
    values: dict[str, Any] = {}
    path = Path(config_file or os.environ.get("LORA_MIXER_CONFIG") or "lora-mixer.yaml")
    if path.is_file():
        values.update(_file_values(path))
    values.update(_env_values())
    return check_settings(Settings(**values))


def check_settings(settings: Settings) -> Settings:
    """``settings`` with rng/emphasis spelled canonically; PresetError names a bad value."""
    from .engine.checks import EMPHASIS_MODES, MAX_CLIP_SKIP, RNG_SOURCES, normalize_choice
    from .errors import GenerationError

    try:
        rng = normalize_choice("RNG", settings.rng, RNG_SOURCES)
        emphasis = normalize_choice("emphasis", settings.emphasis, EMPHASIS_MODES)
    except GenerationError as exc:
        raise PresetError(str(exc)) from None
    if isinstance(settings.clip_skip, bool) or not isinstance(settings.clip_skip, int) or not (
        1 <= settings.clip_skip <= MAX_CLIP_SKIP
    ):
        raise PresetError(f"clip skip {settings.clip_skip!r} is not allowed; use 1 to {MAX_CLIP_SKIP}")
    fuse = settings.fuse_min_steps
    if isinstance(fuse, bool) or not isinstance(fuse, int) or fuse < 0:
        raise PresetError(f"fuse_min_steps {fuse!r} is not allowed; use a whole number, 0 to never fuse")
    return dataclasses.replace(settings, rng=rng, emphasis=emphasis)
