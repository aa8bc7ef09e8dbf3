"""A1111's server-wide options (clip skip, RNG, emphasis, the VAE) and the samplers and VAE
files there are to choose from (``/sdapi/v1/options``, ``/sdapi/v1/samplers``, ``/sdapi/v1/sd-vae``).
"""

from __future__ import annotations

from typing import Any

from ..config import VAE_AUTOMATIC, VAE_NONE
from ..errors import ModelSwitchDisabled
from .core import ServiceCore
from .render_settings import RenderSettings


class Options(ServiceCore):
    """The options this server renders with, changed as A1111's Settings change them."""

    def samplers(self) -> list[str]:
        """A1111 sampler names the engine supports (waits for the engine)."""
        self.wait_ready()
        return list(self._engine.samplers())

    def options(self) -> dict[str, Any]:
        """The A1111 option names and values this server renders with."""
        info = self._engine_info
        return {
            "CLIP_stop_at_last_layers": self.settings.clip_skip,
            "randn_source": self.settings.rng,
            "emphasis": self.settings.emphasis,
            "sd_vae": self.settings.vae or VAE_AUTOMATIC,
            "sd_vae_loaded": (info.vae_name if info is not None else "") or None,
        }

    def set_options(
        self,
        *,
        clip_skip: int | None = None,
        rng: str | None = None,
        emphasis: str | None = None,
        vae: str | None = None,
    ) -> dict[str, Any]:
        """Change server-wide A1111 options (as A1111's Settings do); returns :meth:`options`.

        Clip skip, RNG and emphasis apply to later renders; a VAE loads at once (renders wait) and
        one that cannot load leaves the current VAE, with the reason. On a shared Space (model
        switching off) the VAE is fixed like the model.
        """
        checked = RenderSettings(clip_skip=clip_skip, rng=rng, emphasis=emphasis).validated()
        changes = {k: getattr(checked, k) for k in ("clip_skip", "rng", "emphasis") if getattr(checked, k)}
        if vae is not None:
            if not self.settings.model_switch_allowed:
                raise ModelSwitchDisabled(
                    "changing the VAE is turned off on this server (a shared Space); its owner can allow it "
                    "with LORA_MIXER_ALLOW_MODEL_SWITCH=1"
                )
            engine_info = self.wait_ready()
            with self._render_lock:
                self._engine_info = self._engine.set_vae(vae) if self._engine is not None else engine_info
            changes["vae"] = vae
        self.settings = self.settings.replace(**changes)
        return self.options()

    def vae_choices(self) -> list[str]:
        """A1111's ``sd_vae`` menu: Automatic, None, then the VAE folder's files."""
        from ..engine.vae import vae_files

        return [VAE_AUTOMATIC, VAE_NONE, *(p.name for p in vae_files(self.settings.vae_dir))]

    def vae_files(self) -> list[dict[str, str]]:
        """``/sdapi/v1/sd-vae``: ``[{"model_name", "filename"}]`` as A1111 lists them."""
        from ..engine.vae import vae_files

        return [{"model_name": p.name, "filename": str(p)} for p in vae_files(self.settings.vae_dir)]
