"""Base models: the ones to switch to, the one running, and switching while renders wait.

:meth:`Models.models` lists the configured model, the checkpoints and diffusers folders of
``settings.models_dir``, the embedded model and the tiny demo pipelines; :meth:`Models.switch_model`
loads another under the engine gate (every render waits) and keeps the running one when it fails.
:func:`model_label` is a model's short name, as the UI and the API show it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..backend import EngineInfo, ScaledEngine, create_engine, swap_engine
from ..config import EMBEDDED_MODEL, TINY_MODELS
from ..errors import GenerationError, LoraMixerError, ModelSwitchDisabled, PromptError
from .core import ServiceCore

log = logging.getLogger(__name__)


def model_label(model: str) -> str:
    """A base model's short name: a checkpoint's stem, a folder's name, a hub id or tiny name as is."""
    path = Path(model)
    if path.suffix in (".safetensors", ".ckpt"):
        return path.stem
    if model.startswith(("/", "~", ".")) or path.is_dir():
        return path.name or model
    return model


class Models(ServiceCore):
    """The service's base models: list, name, switch (the banner and default size they imply)."""

    def models(self) -> list[str]:
        """The base models one can switch to, as ``--model`` values: the configured one, every
        ``.safetensors`` checkpoint and diffusers folder in ``settings.models_dir``, and the two
        tiny demo pipelines."""
        found: list[str] = []
        if self._configured_model:
            found.append(self._configured_model)
        folder = Path(self.settings.models_dir or "").expanduser()
        if self.settings.models_dir and folder.is_dir():
            for entry in sorted(folder.iterdir(), key=lambda p: p.name.casefold()):
                checkpoint = entry.suffix == ".safetensors" and entry.is_file()
                if checkpoint or (entry / "model_index.json").is_file():
                    found.append(str(entry))
        if _embedded_available():
            found.append(EMBEDDED_MODEL)
        found += TINY_MODELS
        return list(dict.fromkeys(found))

    def current_model(self) -> str:
        """The ``--model`` value of the running pipeline (a tiny one's name when it runs)."""
        info = self._engine_info
        if info is not None and info.model_name == EMBEDDED_MODEL:
            return EMBEDDED_MODEL
        if info is not None and info.is_tiny:
            return TINY_MODELS[1] if info.base == "sdxl" else TINY_MODELS[0]
        return self.settings.model or (EMBEDDED_MODEL if _embedded_available() else TINY_MODELS[0])

    def banner(self) -> str:
        """The demo-model banner (markdown) for the UI: what the running tiny model can draw, or
        that its images are noise; "" for a real model."""
        from ..ui.messages import EMBEDDED_BANNER, TINY_BANNER

        info = self._engine_info
        if info is not None:
            if not info.is_tiny:
                return ""
            return EMBEDDED_BANNER if info.model_name == EMBEDDED_MODEL else TINY_BANNER
        if self.settings.model and self.settings.model != EMBEDDED_MODEL:
            return TINY_BANNER if self.settings.model in TINY_MODELS else ""
        return EMBEDDED_BANNER if _embedded_available() else TINY_BANNER

    def default_size(self) -> int:
        """The image size renders default to: the model's native size (128 for the embedded one)."""
        info = self._engine_info
        if info is not None:
            return info.default_size
        if not self.settings.model or self.settings.model == EMBEDDED_MODEL:
            return 128 if _embedded_available() else 256
        return 256 if self.settings.model in TINY_MODELS else 512

    def switch_model(self, model: str) -> EngineInfo:
        """Load another base model and render with it from now on; returns its ``EngineInfo``.

        ``model`` is one of :meth:`models` or its :func:`model_label`. The new model loads while
        renders wait; when it cannot load, the running one stays and :class:`GenerationError` says
        why (the engine's fallback to the tiny pipeline is not taken here). On a GPU the running
        model is freed first (two SD models rarely fit at once) and loaded again after a failure.
        A scaled engine (Ray) switches every replica itself, with the same rules.
        """
        if not self.settings.model_switch_allowed:
            raise ModelSwitchDisabled(
                "switching the base model is turned off on this server (a shared Space: one visitor's "
                "switch would change everyone's model); its owner can allow it with "
                "LORA_MIXER_ALLOW_MODEL_SWITCH=1"
            )
        wanted = self._find_model(model)
        self._ready.wait()
        with self._render_lock.exclusive():
            if wanted == self.current_model() and self._engine_error is None and self._engine_info:
                return self._engine_info
            settings = self.settings.replace(model=wanted)
            engine = self._engine
            try:
                if isinstance(engine, ScaledEngine):
                    info = engine.switch_model(settings)
                else:
                    options = self._engine_options
                    engine, info = swap_engine(
                        engine, self._engine_info, settings, lambda s: create_engine(s, options)
                    )
            except LoraMixerError as err:
                raise GenerationError(f"could not switch to {model_label(wanted)}: {err}") from err
            self._engine = engine
            self._engine_info, self._engine_error, self.settings = info, None, settings
        log.info("switched the base model to %s", model_label(wanted))
        return info

    def _find_model(self, model: str) -> str:
        text = (model or "").strip()
        choices = self.models()
        for choice in choices:
            if text in (choice, model_label(choice)):
                return choice
        # A1111 clients send titles ("name [hash]"); infotexts name the model as the engine does
        # ("tiny-sd15-demo", a hub id's last part, a checkpoint's stem)
        folded = text.split(" [")[0].strip().casefold()
        for choice in choices:
            path = Path(choice)
            names = {model_label(choice), path.name, path.stem, f"{choice}-demo"}
            if folded and folded in {n.casefold() for n in names}:
                return choice
        raise PromptError(
            f"unknown base model {text!r}; available: {', '.join(model_label(c) for c in choices)}"
        )


def _embedded_available() -> bool:
    from ..engine.embedded import available

    return available()
