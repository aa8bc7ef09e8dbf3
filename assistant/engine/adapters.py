"""LoRA files as named PEFT adapters in one pipeline, with an LRU cache and load rollback.

Each file is loaded once (``pipe.load_lora_weights(path, adapter_name=…)``) and kept while it is
among the ``capacity`` most recently used; evicting one really deletes it
(``pipe.delete_adapters``), so memory stays bounded. A file that changed on disk (size or mtime)
is reloaded — the "stale cached LoRA" problem A1111 users meet is impossible here.

A load that fails is rolled back: diffusers 0.42 loads the UNet part first and the text-encoder
part second, so a file whose text-encoder tensors do not fit leaves a UNet-only "half adapter"
behind; one whose keys match nothing only logs "No LoRA keys associated …". Both become a
:class:`~assistant.errors.LoraLoadError`, and every trace of the adapter is deleted so the next
generation equals the baseline bit for bit. Before loading, the file's base model is checked
with the library's detection (:func:`assistant.library.file_base`: metadata, second-text-encoder
keys, tensor widths, UNet key names): an SDXL LoRA on an SD1.5 model is refused with the same
sentence the assistant's base-model rule writes, whether or not the assistant ran. What diffusers,
PEFT and transformers log or warn while loading is collected (:class:`LoadReport`) instead of
reaching stderr; a failure's reason is rewritten into whole sentences (the layer that does not
fit, how many do not) rather than a dump cut at a fixed length.

State: :meth:`AdapterCache.activate` sets the COMPLETE LoRA state of EVERY PEFT layer of every
component — enabled or disabled, which adapters are active, each active adapter's scale — from
its arguments alone; nothing is read back from the layers first. :meth:`AdapterCache.verify`
compares every layer with a :class:`LoraState` (the engine runs it after each render when
``LORA_MIXER_CHECK_STATE=1``; see :mod:`assistant.engine.core`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import LoraLoadError
from ..library import BASE_LABELS, base_mismatch, file_base

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


def freeze(pipe: Any) -> None:
    """No parameter of any pipeline component requires grad (inference needs none).

    Not only a memory matter: PyTorch picks another ``linear`` kernel for a weight that requires
    grad, even under ``no_grad`` (the 3-D input of SDXL's linear ``proj_in`` rounds differently,
    ~1e-6). PEFT freezes a component's base weights when a LoRA is first loaded into it and
    turns grads ON for each new adapter's own weights, so without this a component's numerics
    depended on whether some earlier request had loaded a LoRA into it.
    """
    import torch

    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.requires_grad_(False)


def present_components(pipe: Any, adapter: str) -> set[str]:
    """Components in which ``adapter`` currently exists."""
    return {component for component, names in pipe.get_list_adapters().items() if adapter in names}


@dataclass(frozen=True, slots=True)
class LoraState:
    """The complete LoRA state one render needs: the active adapters, in order (the order PEFT
    sums their deltas in), and each one's weight per component (``{"unet": 0.8,
    "text_encoder": 0.8}``; a component missing from a dict counts as 1.0, like diffusers).
    No adapters means every LoRA layer switched off: the base model exactly.

    Extension point: a fused (merged) render would add the fused adapters here, so that
    :meth:`AdapterCache.verify` knows which layers may be merged.
    """

    names: tuple[str, ...] = ()
    weights: tuple[Mapping[str, float], ...] = ()
    #: LoRA block weights (:mod:`assistant.lbw`): per adapter None or the 26 block ratios its UNet
    #: layers' weights are multiplied by (empty: none has any)
    ratios: tuple[Sequence[float] | None, ...] = ()

    def __post_init__(self) -> None:
        if len(self.names) != len(self.weights):
            raise ValueError(f"{len(self.names)} adapter names but {len(self.weights)} weight dicts")
        if self.ratios and len(self.ratios) != len(self.names):
            raise ValueError(f"{len(self.names)} adapter names but {len(self.ratios)} block-ratio entries")


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What diffusers, PEFT and transformers logged or warned while one file loaded
    (``messages``, for the debug log), and what of it changes the result (``warnings``: whole
    sentences every render that uses the file says to the user — layers left out, tensors
    dropped). ``route``: ``diffusers`` (its own loader) or ``lycoris``
    (:mod:`assistant.engine.lycoris`); ``algorithm``: the file's (:mod:`assistant.layouts`)."""

    messages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    route: str = "diffusers"
    algorithm: str = ""


@dataclass(frozen=True, slots=True)
class _Entry:
    adapter: str
    stamp: tuple[int, int]  # (size, mtime_ns) when loaded
    components: frozenset[str]
    report: LoadReport = field(default_factory=LoadReport)


class AdapterCache:
    """The adapters loaded into one pipeline, least recently used first.

    Not thread-safe on its own: the engine calls it under its pipeline lock.
    """

    def __init__(self, pipe: Any, capacity: int = 8, *, base: str = "unknown") -> None:
        if capacity < 1:
            raise ValueError(f"adapter cache size must be at least 1, got {capacity}")
        self.pipe = pipe
        self.capacity = capacity
        self.base = base  # the loaded model's base ("sd15" | "sd2" | "sdxl"): files are checked against it
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # resolved path -> entry
        self._layers: dict[str, list[Any]] | None = None  # component -> PEFT tuner layers
        self._blocks: list[int] | None = None  # lbw block index per UNet layer (see blocks())
        self._keymap: Any = None  # KeyMap of the pipeline, built on the first LyCORIS load
        #: resolved path -> (size, mtime) and the error its load raised: the same file is not
        #: read again for every cell of a grid (a changed file is tried again)
        self._failed: dict[str, tuple[tuple[int, int], LoraLoadError]] = {}
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

    def adapter_for(self, path: str | Path) -> str | None:
        """The adapter loaded from ``path``, or None (never loads anything)."""
        entry = self._entries.get(str(Path(path).expanduser().resolve()))
        return entry.adapter if entry is not None else None

    def report(self, adapter: str) -> LoadReport:
        """What the libraries said while ``adapter`` loaded (messages a later issue may surface)."""
        for entry in self._entries.values():
            if entry.adapter == adapter:
                return entry.report
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
        failed = self._failed.get(key)
        if failed is not None and failed[0] == stamp:
            raise LoraLoadError(name, failed[1].reason)
        entry = self._entries.get(key)
        if entry is not None and entry.stamp == stamp:
            self._entries.move_to_end(key)
            return entry.adapter
        if entry is not None:  # the file changed on disk since it was loaded
            log.info("LoRA %s changed on disk; reloading", file)
            self._delete(key)
        self._make_room(keep)
        adapter = adapter_name_for(file)
        try:
            components, report = self._load(name, file, adapter)
        except LoraLoadError as err:
            self._failed[key] = (stamp, err)
            raise
        finally:
            self._changed()
        self._failed.pop(key, None)
        self._entries[key] = _Entry(adapter, stamp, frozenset(components), report)
        self.loads += 1
        return adapter

    def activate(
        self,
        names: Sequence[str],
        weights: Sequence[Mapping[str, float]],
        ratios: Sequence[Sequence[float] | None] = (),
    ) -> None:
        """Set the COMPLETE LoRA state of every PEFT layer: ``names`` active with ``weights``.

        For each layer of each component, from the arguments alone (nothing is read back first):

        - switched on when ``names`` is not empty, off otherwise (``disable_adapters``: the layer
          computes its base layer only, bit for bit the model without LoRA);
        - active adapters = ``names`` in this order (PEFT sums the deltas in it; names a layer
          does not hold are skipped by PEFT's forward, as with ``set_adapters``);
        - each named adapter's ``scaling`` = ``weight * alpha / r`` (``set_scale``), ``weight``
          from the adapter's dict for this component, a missing component counting as 1.0 like
          diffusers.

        This is what ``pipe.set_adapters(names, weights)`` plus ``enable_lora``/``disable_lora``
        do in diffusers 0.42, minus what only training needs (``requires_grad`` toggles on every
        module of every component, ~25 ms for the tiny model): the layers are indexed once per
        load, and every parameter stays frozen (:func:`freeze`, at load time). A state that
        depended on the previous request (e.g. switching layers back on only when the first one
        reads "off") would leak one render into the next: a layer created by a newly loaded file
        is on while older, shared layers stay off.
        """
        if len(names) != len(weights):
            raise ValueError(f"{len(names)} adapter names but {len(weights)} weight dicts")
        active = list(names)
        disabled = not active
        blocked = any(r is not None for r in ratios)
        for component, layers in self._layer_index().items():
            values = [float(w.get(component, 1.0)) for w in weights]
            blocks = self.blocks(component) if blocked else None
            for index, layer in enumerate(layers):
                layer._disable_adapters = disabled
                layer._active_adapter = list(active)
                for i, (adapter, value) in enumerate(zip(active, values, strict=True)):
                    ratio = ratios[i] if blocks is not None else None
                    if ratio is not None and blocks is not None and blocks[index] >= 0:
                        layer.set_scale(adapter, value * float(ratio[blocks[index]]))
                    else:
                        layer.set_scale(adapter, value)

    def block_of(self, component: str, path: str) -> int:
        """The lbw block index (:data:`assistant.lbw.BLOCKS26`) of the UNet layer at ``path``, -1
        for text-encoder layers (their ``BASE`` ratio is in their weight) and layers in no block."""
        if component != "unet":
            return -1
        from ..lbw import BLOCKS26
        from .keymap import KeyMap

        if self._keymap is None:
            self._keymap = KeyMap(self.pipe)
        block = self._keymap.block("unet", re.sub(r"(\.base_layer)+$", "", path))
        return BLOCKS26.index(block) if block in BLOCKS26 else -1

    def blocks(self, component: str) -> list[int]:
        """Per layer of :meth:`_layer_index` ``[component]``: its block's index in
        :data:`assistant.lbw.BLOCKS26`, -1 for UNet layers in no block and for text-encoder layers
        (the engine puts ``BASE`` into their weight, see :meth:`block_of`)."""
        if component != "unet":
            return [-1] * len(self._layer_index().get(component, []))
        if self._blocks is None:
            paths = {id(m): n for n, m in self.pipe.unet.named_modules()}
            self._blocks = [
                self.block_of("unet", paths.get(id(layer), ""))
                for layer in self._layer_index().get("unet", [])
            ]
        return self._blocks

    def verify(self, state: LoraState) -> list[str]:
        """Every way the pipeline's LoRA layers differ from ``state`` (empty: they match).

        Checks each PEFT layer of each component — on/off, the active adapters and their order,
        each active adapter's scale (exactly ``set_scale``'s value), no fused (merged) adapter,
        no forward hook left on a ``lora_B`` (per-row weights attach them only during a call) —
        and the pipeline as a whole: no parameter requires grad (:func:`freeze`), the adapters
        present are the ones this cache loaded, each in the components it was loaded into (no
        half adapter after a failed load).
        """
        problems: list[str] = []
        names = list(state.names)
        enabled = bool(names)
        ratios = dict(zip(names, state.ratios, strict=True)) if state.ratios else {}
        for component, layers in self._index_now().items():
            values = {a: float(w.get(component, 1.0)) for a, w in zip(names, state.weights, strict=True)}
            for where, layer in layers:
                block = self.block_of(component, where) if ratios else -1
                found: list[str] = []
                if bool(layer.disable_adapters) == enabled:
                    found.append("disabled, needs enabled" if enabled else "enabled, needs disabled")
                active = list(layer.active_adapters)
                if enabled and active != names:
                    found.append(f"active adapters {active}, needs {names}")
                for adapter in names:
                    if adapter in layer.scaling:
                        ratio = ratios.get(adapter)
                        value = values[adapter]
                        if ratio is not None and block >= 0:
                            value = value * float(ratio[block])
                        want = _scale(layer, adapter, value)
                        if layer.scaling[adapter] != want:
                            found.append(f"{adapter} scale {layer.scaling[adapter]!r}, needs {want!r}")
                if getattr(layer, "merged", False):
                    found.append(f"fused adapters {list(layer.merged_adapters)}")
                lora_b = getattr(layer, "lora_B", None)
                if lora_b is not None and any(m._forward_hooks for m in lora_b.values()):
                    found.append("a forward hook is left on lora_B")
                if getattr(layer, "_row_factors", None):
                    found.append(f"per-row factors are left for {sorted(layer._row_factors)}")
                if found:
                    problems.append(f"layer {component}.{where}: {'; '.join(found)}")
        present: dict[str, set[str]] = {}
        for component, adapters in self.pipe.get_list_adapters().items():
            for adapter in adapters:
                present.setdefault(adapter, set()).add(component)
        for component in self.pipe._lora_loadable_modules:
            model = getattr(self.pipe, component, None)
            if model is not None and any(q.requires_grad for q in model.parameters()):
                thawed = [n for n, q in model.named_parameters() if q.requires_grad]
                problems.append(f"{component}: {len(thawed)} parameters require grad (e.g. {thawed[0]})")
        cached = {entry.adapter: set(entry.components) for entry in self._entries.values()}
        for adapter, components in sorted(present.items()):
            if adapter not in cached:
                problems.append(f"adapter {adapter} is in {sorted(components)} but not in the cache")
            elif components != cached[adapter]:
                problems.append(
                    f"adapter {adapter} is in {sorted(components)}, loaded into {sorted(cached[adapter])}"
                )
        for adapter in names:
            if adapter not in cached:
                problems.append(f"adapter {adapter} is needed but not loaded")
        return problems

    def layers(self) -> list[Any]:
        """Every PEFT tuner layer of every component, in module order."""
        return [layer for layers in self._layer_index().values() for layer in layers]

    def _index_now(self) -> dict[str, list[tuple[str, Any]]]:
        """(module name, layer) per component, walked now (the check must not trust the index)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        out: dict[str, list[tuple[str, Any]]] = {}
        for component in self.pipe._lora_loadable_modules:
            model = getattr(self.pipe, component, None)
            if model is not None:
                out[component] = [(n, m) for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
        return out

    def _layer_index(self) -> dict[str, list[Any]]:
        if self._layers is None:
            from peft.tuners.tuners_utils import BaseTunerLayer

            index: dict[str, list[Any]] = {}
            for component in self.pipe._lora_loadable_modules:
                model = getattr(self.pipe, component, None)
                if model is None:
                    continue
                index[component] = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
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

    def _changed(self) -> None:
        """After adapters were added or deleted: re-index the layers, freeze every parameter again
        (PEFT turns grads on for a new adapter, and for the one it activates when deleting)."""
        self._layers = None
        self._blocks = None
        freeze(self.pipe)

    def _delete(self, key: str) -> None:
        entry = self._entries.pop(key)
        try:
            with _library_output():  # PEFT warns when the deleted adapter was the active one
                self.pipe.delete_adapters(entry.adapter)
        finally:
            self._changed()

    def _load(self, name: str, file: Path, adapter: str) -> tuple[set[str], LoadReport]:
        """Load one file; on any failure remove what it left behind and raise LoraLoadError."""
        try:
            wanted = targeted_components(file)
        except Exception as exc:
            raise LoraLoadError(name, f"it is not a readable .safetensors file ({exc}).") from None
        if not wanted:
            raise LoraLoadError(
                name, "the file holds no LoRA tensors for the UNet or a text encoder (unknown key layout)."
            )
        base, source = file_base(file)
        mismatch = base_mismatch(base, source, self.base)
        if mismatch:
            label = BASE_LABELS.get(base, base)
            raise LoraLoadError(
                name, f"it is {mismatch}; nothing was loaded. Load an {label} model to use it."
            )
        available = {c for c in self.pipe._lora_loadable_modules if getattr(self.pipe, c, None) is not None}
        missing = sorted(wanted - available)
        if missing:
            raise LoraLoadError(
                name,
                f"it has weights for {', '.join(missing)}, which this model does not have: it was made "
                "for another base model (an SDXL LoRA on an SD1.5 model has text_encoder_2 weights).",
            )
        layout = _file_layout(name, file)
        if layout.unsupported:
            raise LoraLoadError(
                name, f"it is a {layout.label} file: {layout.unsupported}; nothing was loaded."
            )
        if layout.diffusers:
            unmatched, total = self._unmatched(file)
            report = self._load_diffusers(name, file, adapter)
            if unmatched and len(unmatched) < total:
                # diffusers lists every unexpected tensor (thousands of names); say it as a count
                examples = ", ".join(f"'{s}'" for s in unmatched[:3])
                said = tuple(w for w in report.warnings if "unexpected keys" not in w)
                mine = (
                    f"{len(unmatched)} of its {total} layers name no layer of this model and were left out "
                    f"(e.g. {examples})."
                )
                report = replace(report, warnings=(mine, *said))
        else:
            report = self._load_lycoris(name, file, adapter, layout.algorithm)
        report = replace(report, algorithm=layout.algorithm)
        for message in report.messages:
            log.debug("while loading %s: %s", file, message)
        loaded = present_components(self.pipe, adapter)
        if loaded != wanted:
            self._rollback(adapter)
            lost = ", ".join(sorted(wanted - loaded))
            raise LoraLoadError(
                name,
                f"its {lost} weights match no layer of this model, so it was made for another base model "
                "or architecture; nothing was applied.",
            )
        return loaded, report

    def _unmatched(self, file: Path) -> tuple[list[str], int]:
        """The module stems of a plain LoRA file that name no layer of this pipeline, and how many
        modules the file has (diffusers applies the others and warns with every tensor name)."""
        from ..layouts import modules
        from ..library import read_safetensors_header
        from .keymap import KeyMap

        try:
            _length, tensors, _metadata = read_safetensors_header(file)
        except Exception:
            return [], 0
        if self._keymap is None:
            self._keymap = KeyMap(self.pipe)
        found, _unknown = modules(tensors)
        stems = sorted(s for s, m in found.items() if m.kind != "meta")
        return [s for s in stems if self._keymap.find(s) is None], len(stems)

    def _load_diffusers(self, name: str, file: Path, adapter: str) -> LoadReport:
        """The plain LoRA layouts, through diffusers' own loader."""
        with _library_output() as said:
            try:
                with warnings.catch_warnings():  # PEFT warns on every second adapter; that is the point here
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    self.pipe.load_lora_weights(str(file), adapter_name=adapter)
            except Exception as exc:
                self._rollback(adapter)
                log.debug("loading %s failed: %s: %s", file, type(exc).__name__, exc)
                raise LoraLoadError(name, explain_load_error(exc, said)) from None
        return LoadReport(tuple(said), result_changing(said), route="diffusers")

    def _load_lycoris(self, name: str, file: Path, adapter: str, algorithm: str) -> LoadReport:
        """LoHa, LoKr, LoCon Tucker, DoRA, full/diff and norm layers (:mod:`assistant.engine.lycoris`)."""
        from safetensors.torch import load_file

        from .keymap import KeyMap
        from .lycoris import load_lycoris

        try:
            tensors = load_file(str(file), device="cpu")
        except Exception as exc:
            raise LoraLoadError(name, f"its tensors could not be read ({exc}).") from None
        if self._keymap is None:
            self._keymap = KeyMap(self.pipe)
        try:
            result = load_lycoris(self.pipe, adapter, name, tensors, self._keymap, algorithm=algorithm)
        except LoraLoadError:
            raise
        except Exception as exc:
            self._rollback(adapter)
            log.debug("loading %s failed: %s: %s", file, type(exc).__name__, exc)
            raise LoraLoadError(name, f"{type(exc).__name__}: {_whole_sentences(str(exc))}") from None
        return LoadReport(result.notes, tuple(f"{n}." for n in result.notes), route="lycoris")

    def _rollback(self, adapter: str) -> None:
        with _library_output():
            self.pipe.delete_adapters(adapter)
        self._changed()
        left = present_components(self.pipe, adapter)
        if left:  # never expected: say so loudly rather than generate with a half adapter
            raise RuntimeError(f"could not remove the partial adapter {adapter!r} from {sorted(left)}")


def _file_layout(name: str, file: Path) -> Any:
    """The file's layout from its header (:func:`assistant.layouts.analyse`)."""
    from ..layouts import analyse
    from ..library import read_safetensors_header

    try:
        _length, tensors, _metadata = read_safetensors_header(file)
    except Exception as exc:
        raise LoraLoadError(name, f"it is not a readable .safetensors file ({exc}).") from None
    return analyse(tensors)


#: Library messages that mean part of a file was not applied (the result differs from the file).
#: ("No LoRA keys associated to CLIPTextModel found" is not one: a UNet-only file has none, and a
#: file whose text-encoder keys all failed is refused by the components check in ``_load``.)
_RESULT_CHANGING = re.compile(
    r"unexpected key|not loaded|were not used|missing key|dropp|ignor|not (?:be )?appl|skipp|discard|"
    r"not supported",
    re.IGNORECASE,
)


def result_changing(said: Sequence[str]) -> tuple[str, ...]:
    """What diffusers/PEFT/transformers said that changes the image (keys not loaded, tensors
    dropped …), each as whole sentences (see :func:`_whole_sentences`)."""
    out: list[str] = []
    for message in said:
        if message.startswith("No LoRA keys associated to"):
            continue
        if _RESULT_CHANGING.search(message) and "peft_config" not in message:
            text = _whole_sentences(message)
            out.append(text if text.endswith((".", "…", ")")) else f"{text}.")
    return tuple(dict.fromkeys(out))


def _scale(layer: Any, adapter: str, weight: float) -> float:
    """``scaling[adapter]`` as the layer's ``set_scale`` computes it for ``weight`` (PEFT's
    ``LoraLayer``, or :class:`~assistant.engine.lycoris.LycorisLayer`)."""
    expected = getattr(layer, "expected_scaling", None)
    if expected is not None:
        return float(expected(adapter, weight))
    if layer.use_rslora.get(adapter, False):
        return weight * layer.lora_alpha[adapter] / math.sqrt(layer.r[adapter])
    return weight * layer.lora_alpha[adapter] / layer.r[adapter]


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.into.append(record.getMessage())
        except Exception:  # pragma: no cover - a broken record is not worth a failed load
            self.into.append(str(record.msg))


_LIBRARIES = ("diffusers", "peft", "transformers")


@contextmanager
def _library_output() -> Iterator[list[str]]:
    """Collect what diffusers, PEFT and transformers log (WARNING and up) or warn meanwhile.

    Their loggers print to stderr through their own handlers: a failed load would dump e.g.
    199 lines of size mismatches next to our one-sentence reason. Here their handlers are
    swapped for a collector (and restored after); the caller decides what reaches the user.
    Not thread-safe across engines (logging and ``warnings`` are process-global); the engine
    calls it under its pipeline lock.
    """
    said: list[str] = []
    collector = _Collect(said)
    saved = []
    for name in _LIBRARIES:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate, logger.level))
        logger.handlers = [collector]
        logger.propagate = False
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield said
        said.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        for logger, handlers, propagate, level in saved:
            logger.handlers = handlers
            logger.propagate = propagate
            logger.setLevel(level)


_MISMATCH = re.compile(
    r"size mismatch for (?P<param>\S+): copying a param with shape torch\.Size\(\[(?P<file>[^\]]*)\]\) "
    r"from checkpoint, the shape in current model is torch\.Size\(\[(?P<model>[^\]]*)\]\)"
)
#: transformers 5 logs a table instead ("key | MISMATCH | Reinit due to size mismatch - ckpt:
#: torch.Size([8, 99]) vs model:torch.Size([8, 32])", keys like "encoder.layers.{0, 1}.…").
_REPORT_ROW = re.compile(
    r"^(?P<param>[^|\n]+?)\s*\|\s*MISMATCH\s*\|.*?ckpt: ?torch\.Size\(\[(?P<file>[^\]]*)\]\) "
    r"vs model: ?torch\.Size\(\[(?P<model>[^\]]*)\]\)",
    re.MULTILINE,
)
_BRACES = re.compile(r"\{([^}]*)\}")
_QUOTED = re.compile(r"'([^']+)'")
#: The longest reason kept whole; a longer library message keeps its first sentences up to here.
MAX_REASON = 600


def explain_load_error(exc: Exception, said: Sequence[str] = ()) -> str:
    """Why ``load_lora_weights`` failed, in whole sentences (never cut mid-word).

    Shape mismatches (the file was made for another base model) name the first layer that does
    not fit, the two shapes and how many layers do not; "target modules not found" (no key of
    the file names a layer of this model) gives a count and examples; other errors keep their
    first sentences, up to :data:`MAX_REASON` characters, ended with a note that the rest is in
    the server log (at debug level). ``said``: what the libraries logged meanwhile (transformers
    reports a text encoder's mismatches there and raises "For details look at the above report!").
    """
    text = str(exc)
    mismatches = list(_MISMATCH.finditer(text)) or [m for line in said for m in _MISMATCH.finditer(line)]
    mismatches = mismatches or [m for line in said for m in _REPORT_ROW.finditer(line)]
    if mismatches:
        first = mismatches[0]
        layer = re.sub(r"\.lora_[AB]\.[^.]+\.weight$|\.lora_[AB]\.weight$", "", first["param"].strip())
        layer = re.sub(r"\x1b\[[0-9;]*m", "", layer)
        count = sum(_layers_in(m["param"]) for m in mismatches)
        more = f" (and {count - 1} more layers)" if count > 1 else ""
        return (
            "its tensor shapes do not fit this model, so it was made for another base model or "
            f"architecture: layer {layer} has shape [{first['file']}] in the file but "
            f"[{first['model']}] in this model{more}; nothing was applied."
        )
    if type(exc).__name__ == "NoMatchingPeftModuleError" or "not found in the base model" in text:
        names = sorted(set(_QUOTED.findall(text)))
        examples = ", ".join(f"'{n}'" for n in names[:3])
        return (
            f"none of its {len(names) or 'layer'} layer names exist in this model"
            + (f" (e.g. {examples})" if examples else "")
            + ", so it was made for another base model or architecture, or names its layers in a "
            "way LoRA Mixer does not read; nothing was applied."
        )
    return f"{type(exc).__name__}: {_whole_sentences(text)}"


def _layers_in(param: str) -> int:
    """How many layers a report key stands for ("layers.{0, 1}.fc1" is 2, "layers.{0...11}" 12)."""
    count = 1
    for group in _BRACES.findall(param):
        items = 0
        for part in (p.strip() for p in group.split(",")):
            low, dots, high = part.partition("...")
            items += (
                int(high) - int(low) + 1 if dots and low.isdigit() and high.isdigit() else int(bool(part))
            )
        count *= max(items, 1)
    return count


def _whole_sentences(text: str, limit: int = MAX_REASON) -> str:
    """``text`` on one line; when longer than ``limit``, its first whole sentences (or items of a
    list) up to ``limit``, and a note that the rest is in the server log."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = max(flat.rfind(". ", 0, limit), flat.rfind(": ", 0, limit), flat.rfind(", ", 0, limit))
    head = flat[: cut + 1] if cut > 0 else flat[: flat.rfind(" ", 0, limit)]
    rest = len(flat) - len(head)
    return f"{head.rstrip(',:')} … ({rest:,} more characters in the server log at debug level)"
