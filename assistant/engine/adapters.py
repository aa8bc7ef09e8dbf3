"""LoRA files as named PEFT adapters in one pipeline, with an LRU cache and load rollback.

Each file is loaded once (``pipe.load_lora_weights(path, adapter_name=…)``) and kept while it is
among the ``capacity`` most recently used; evicting one really deletes it
(``pipe.delete_adapters``), so memory stays bounded. A file that changed on disk (size or mtime)
is reloaded — the "stale cached LoRA" problem A1111 users meet is impossible here.

A load that fails is rolled back: diffusers 0.42 loads the UNet part first and the text-encoder
part second, so a file whose text-encoder tensors do not fit leaves a UNet-only "half adapter"
behind; one whose keys match nothing only logs "No LoRA keys associated …". Both become a
:class:`~assistant.errors.LoraLoadError`, and every trace of the adapter is deleted so the next
generation equals the baseline bit for bit.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LoraLoadError

log = logging.getLogger(__name__)

# Which pipeline component a LoRA key prefix targets (kohya and diffusers/PEFT spellings).
_COMPONENT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("lora_unet_", "unet"),
    ("unet.", "unet"),
    ("lora_te2_", "text_encoder_2"),
    ("text_encoder_2.", "text_encoder_2"),
    ("lora_te1_", "text_encoder"),
    ("lora_te_", "text_encoder"),
    ("text_encoder.", "text_encoder"),
)


def adapter_name_for(path: str | Path) -> str:
    """A stable, unique PEFT-safe adapter name: the file stem (no dots) + 8 hex of its full path."""
    resolved = str(Path(path).expanduser().resolve())
    stem = re.sub(r"[^0-9A-Za-z_]", "_", Path(resolved).stem)[:48] or "lora"
    return f"{stem}_{hashlib.sha1(resolved.encode('utf-8')).hexdigest()[:8]}"


def targeted_components(path: str | Path) -> set[str]:
    """Components a LoRA file has tensors for, from its safetensors header (no tensor read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
    found = set()
    for key in keys:
        for prefix, component in _COMPONENT_PREFIXES:
            if key.startswith(prefix):
                found.add(component)
                break
    return found


def present_components(pipe: Any, adapter: str) -> set[str]:
    """Components in which ``adapter`` currently exists."""
    return {component for component, names in pipe.get_list_adapters().items() if adapter in names}


@dataclass(frozen=True, slots=True)
class _Entry:
    adapter: str
    stamp: tuple[int, int]  # (size, mtime_ns) when loaded
    components: frozenset[str]


class AdapterCache:
    """The adapters loaded into one pipeline, least recently used first.

    Not thread-safe on its own: the engine calls it under its pipeline lock.
    """

    def __init__(self, pipe: Any, capacity: int = 8) -> None:
        if capacity < 1:
            raise ValueError(f"adapter cache size must be at least 1, got {capacity}")
        self.pipe = pipe
        self.capacity = capacity
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # resolved path -> entry
        self._layers: dict[str, list[Any]] | None = None  # component -> PEFT tuner layers
        self.loads = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def adapters(self) -> list[str]:
        """Adapter names, least recently used first."""
        return [e.adapter for e in self._entries.values()]

    def components(self, adapter: str) -> frozenset[str]:
        """The pipeline components ``adapter`` patches (e.g. {"unet"} for a UNet-only LoRA)."""
        for entry in self._entries.values():
            if entry.adapter == adapter:
                return entry.components
        raise KeyError(adapter)

    def ensure(self, name: str, path: str | Path, *, keep: frozenset[str] = frozenset()) -> str:
        """The adapter for ``path``, loading it if needed; ``keep`` adapters are never evicted.

        ``name`` is the LoRA's display name, used in error messages.
        """
        file = Path(path).expanduser()
        if not file.is_file():
            raise LoraLoadError(name, f"file not found: {file}")
        key = str(file.resolve())
        stat = file.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        entry = self._entries.get(key)
        if entry is not None and entry.stamp == stamp:
            self._entries.move_to_end(key)
            return entry.adapter
        if entry is not None:  # the file changed on disk since it was loaded
            log.info("LoRA %s changed on disk; reloading", file)
            self._delete(key)
        self._make_room(keep)
        adapter = adapter_name_for(file)
        components = self._load(name, file, adapter)
        self._entries[key] = _Entry(adapter, stamp, frozenset(components))
        self._layers = None
        self.loads += 1
        return adapter

    def activate(self, names: list[str], weights: list[dict[str, float]]) -> None:
        """Make ``names`` the active adapters with per-component ``weights`` — fast ``set_adapters``.

        Does for every PEFT layer what ``pipe.set_adapters(names, weights)`` does in diffusers
        0.42 (``set_weights_and_activate_adapters``): the active list becomes ``names`` and each
        adapter's ``scaling`` becomes ``weight * alpha / r`` (``set_scale``), a component missing
        from an adapter's dict counting as 1.0 like diffusers. It skips what only training needs:
        diffusers walks every module of every component and toggles ``requires_grad`` on each
        call (~25 ms for the tiny model, more for SD); here the LoRA layers are indexed once per
        load and their parameters frozen once. Tests check the state and the images equal
        ``set_adapters``' bit for bit.
        """
        if len(names) != len(weights):
            raise ValueError(f"{len(names)} adapter names but {len(weights)} weight dicts")
        for component, layers in self._layer_index().items():
            for layer in layers:
                layer._active_adapter = list(names)
                for adapter, weight in zip(names, weights, strict=True):
                    layer.set_scale(adapter, float(weight.get(component, 1.0)))

    def lora_disabled(self) -> bool | None:
        """Whether the pipeline's LoRA layers are switched off (``disable_lora``); None: no layers.

        Read from the layers themselves, not remembered: another engine or a test may share the
        pipeline object.
        """
        for layers in self._layer_index().values():
            if layers:
                return bool(layers[0].disable_adapters)
        return None

    def _layer_index(self) -> dict[str, list[Any]]:
        if self._layers is None:
            from peft.tuners.tuners_utils import BaseTunerLayer

            index: dict[str, list[Any]] = {}
            for component in self.pipe._lora_loadable_modules:
                model = getattr(self.pipe, component, None)
                if model is None:
                    continue
                layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
                for layer in layers:
                    for param in layer.parameters():
                        if param.requires_grad:
                            param.requires_grad_(False)
                index[component] = layers
            self._layers = index
        return self._layers

    def unload_all(self) -> None:
        """Delete every adapter (the pipeline's weights are back to the base model's)."""
        for key in list(self._entries):
            self._delete(key)

    # -- internals ---------------------------------------------------------------------------

    def _make_room(self, keep: frozenset[str]) -> None:
        while len(self._entries) >= self.capacity:
            victim = next((k for k, e in self._entries.items() if e.adapter not in keep), None)
            if victim is None:
                break  # every cached adapter is needed by this request: exceed the size briefly
            self._delete(victim)
            self.evictions += 1

    def _delete(self, key: str) -> None:
        entry = self._entries.pop(key)
        self._layers = None
        self.pipe.delete_adapters(entry.adapter)

    def _load(self, name: str, file: Path, adapter: str) -> set[str]:
        """Load one file; on any failure remove what it left behind and raise LoraLoadError."""
        try:
            wanted = targeted_components(file)
        except Exception as exc:
            raise LoraLoadError(name, f"not a readable .safetensors file ({exc})") from None
        if not wanted:
            raise LoraLoadError(
                name, "the file holds no LoRA tensors for UNet or text encoder (unknown key layout)"
            )
        available = {c for c in self.pipe._lora_loadable_modules if getattr(self.pipe, c, None) is not None}
        missing = sorted(wanted - available)
        if missing:
            raise LoraLoadError(
                name,
                f"it has weights for {', '.join(missing)}, which this model does not have "
                f"(made for another base model, e.g. SDXL LoRA on SD1.5)",
            )
        try:
            with warnings.catch_warnings():  # PEFT warns on every second adapter; that is the point here
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                self.pipe.load_lora_weights(str(file), adapter_name=adapter)
        except Exception as exc:
            self._rollback(adapter)
            raise LoraLoadError(name, _explain(exc)) from None
        loaded = present_components(self.pipe, adapter)
        if loaded != wanted:
            self._rollback(adapter)
            lost = ", ".join(sorted(wanted - loaded))
            raise LoraLoadError(
                name,
                f"its {lost} weights match no layer of this model "
                "(a LoRA for another base model or architecture); nothing was applied",
            )
        return loaded

    def _rollback(self, adapter: str) -> None:
        self._layers = None
        self.pipe.delete_adapters(adapter)
        left = present_components(self.pipe, adapter)
        if left:  # never expected: say so loudly rather than generate with a half adapter
            raise RuntimeError(f"could not remove the partial adapter {adapter!r} from {sorted(left)}")


def _explain(exc: Exception) -> str:
    text = str(exc)
    if "size mismatch" in text or "ignore_mismatched_sizes" in text:
        first = next((line.strip() for line in text.splitlines() if "size mismatch" in line), "")
        return (
            "its tensor shapes do not fit this model — it was made for another base model (SD1.5 vs SDXL)"
            + (f". First mismatch: {first[:220]}" if first else "")
        )
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"
