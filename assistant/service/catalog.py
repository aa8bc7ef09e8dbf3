"""What the server has: the LoRAs (listed, searched, hashed), the recipes, the embeddings, and
what made an image (A1111's PNG Info, its LoRAs matched against the library).

Listings never read a LoRA file: hashes come from the file's own metadata, a render that used
it, or the disk cache the background hasher fills (:attr:`~assistant.service.core.HASH_ON_LIST_MAX_BYTES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import LoraMixerError
from ..types import LoraInfo, PlannedLora
from .core import HASH_ON_LIST_MAX_BYTES, ServiceCore

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..pnginfo import ImageReport


class Catalog(ServiceCore):
    """The library's listings and hashes, recipes, embeddings and PNG Info over the shared state."""

    def loras(self, query: str = "", *, kind: str | None = None, base: str | None = None) -> list[LoraInfo]:
        """LoRAs matching ``query`` (name, alias, trigger), ``kind`` and ``base`` ("" or None: any)."""
        library = self.library
        query = (query or "").strip()
        kind = kind or None
        base = base or None
        if not query and kind is None and base is None:
            return list(library.all())
        return list(library.search(query, kind=kind, base=base))

    def lora_hash(self, info: LoraInfo) -> str:
        """A1111's short LoRA hash (12 hex) for listings, "" while unknown.

        Never reads a LoRA file (a listing must not wait for hundreds of MB): the hash comes from
        the file's embedded ``sshs_model_hash``, a render that used it, or the disk cache, which
        :meth:`start` fills in a background thread (files up to ``HASH_ON_LIST_MAX_BYTES``).
        """
        if info.status != "ok":
            return ""
        known = self._known_hashes.get(info.path)
        if known is not None:
            return known
        try:
            hashes = self.library.cached_hashes(info)
        except (LoraMixerError, OSError):
            return ""
        if hashes is None:
            from ..library import embedded_hash

            return embedded_hash(info)[:12]
        self._known_hashes[info.path] = hashes.infotext
        return hashes.infotext

    def with_hashes(self, plan: Sequence[PlannedLora]) -> tuple[PlannedLora, ...]:
        """The plan with each LoRA's A1111 hash filled in (for the infotext's ``Lora hashes``).

        The advisor leaves hashes empty (it must stay fast); the library computes one per file
        once and caches it on disk. A file that cannot be hashed keeps ``""``.
        """
        from ..library import with_hashes

        filled = with_hashes(plan, self.library)
        self._known_hashes.update({lora.path: lora.hash for lora in filled if lora.hash})
        return filled

    def refresh_loras(self) -> int:
        """Rescan the LoRA folders; returns how many loadable LoRAs there are now."""
        library = self.library
        with self._library_lock:
            refreshed = library.refresh()
            if refreshed is not None and refreshed is not library:
                self._library = refreshed
        return len(self.library.loadable())

    def recipes(self) -> dict[str, Any]:
        """Named mixes from ``presets/recipes/*.yaml`` (loaded once; errors are PresetError)."""
        if self._recipes is None:
            from ..presets import load_recipes

            self._recipes = dict(load_recipes(self.settings.recipes_dir))
        return self._recipes

    def embeddings(self) -> dict[str, Any]:
        """``/sdapi/v1/embeddings`` in A1111's shape: ``{"loaded": {name: {...}}, "skipped": {...}}``.

        Loaded: usable with the running model (its vector width); skipped: readable files made for
        another base. ``shape`` is the vector width and ``vectors`` their count, as in A1111.
        """
        info = self._engine_info
        loaded_names = set(info.embeddings if info is not None else ())
        out: dict[str, dict[str, Any]] = {"loaded": {}, "skipped": {}}
        for entry in self.library.embeddings:
            if not entry.loadable:
                continue
            item = {
                "step": None,
                "sd_checkpoint": None,
                "sd_checkpoint_name": None,
                "shape": entry.width,
                "vectors": entry.vectors,
            }
            out["loaded" if entry.name in loaded_names else "skipped"][entry.name] = item
        return out

    def refresh_embeddings(self) -> None:
        """Rescan the embeddings folders: the library lists them, the engine loads the usable ones."""
        self.refresh_loras()
        if self._engine is not None and self.ready:
            with self._render_lock:
                self._engine.reload_embeddings()
                self._engine_info = self._engine.info

    def describe_image(self, data: bytes, *, name: str = "") -> ImageReport:
        """What made an image (A1111's PNG Info + "Send to txt2img"): its infotext read, its LoRAs
        matched against the library by hash, then by name (:func:`assistant.pnginfo.describe`).

        Library files are hashed as needed (cached on disk); uncached files over
        ``HASH_ON_LIST_MAX_BYTES`` are left to the background hasher. Raises
        :class:`~assistant.errors.ImageError` for what is not a readable image.
        """
        from .. import images, pnginfo

        label = f"image '{name}'" if name else "image"
        image = images.open_image(data, what=label)
        text, _items = images.read_infotext(image)
        _rgb, notes = images.to_rgb(image, what=label)
        library = self.library

        def hashes_of(info: LoraInfo) -> Any:
            try:
                known = library.hashes(info, compute=False)
                if known is None and info.size <= HASH_ON_LIST_MAX_BYTES:
                    known = library.hashes(info)
            except (LoraMixerError, OSError):
                return None
            if known is not None:
                self._known_hashes[info.path] = known.infotext
            return known

        engine_info = self._engine_info
        samplers = self._engine.samplers() if self.ready and self._engine is not None else []
        return pnginfo.describe(
            text,
            library,
            hashes_of=hashes_of,
            base=self._base(),
            model_name=engine_info.model_name if engine_info is not None else "",
            server={
                "clip_skip": self.settings.clip_skip,
                "rng": self.settings.rng,
                "emphasis": self.settings.emphasis,
            },
            samplers=samplers,
            notes=[n for n in notes if "first frame" in n],
        )

    @staticmethod
    def png_info(data: bytes) -> dict[str, Any]:
        """``/sdapi/v1/png-info``: A1111's ``{"info", "items", "parameters"}`` for an image file."""
        from .. import images
        from ..infotext import a1111_parameters

        image = images.open_image(data, what="image")
        text, items = images.read_infotext(image)
        return {"info": text or "", "items": items, "parameters": a1111_parameters(text or "")}
