"""The folder walk and the building of one :class:`LoraInfo` per file found.

:func:`_walk` lists LoRA-like files under the roots (subfolders included; symlinks leaving the
roots refused, hidden folders skipped). :func:`_build_info` makes one entry, reusing the previous
scan's entry or the cached fields when nothing changed, else merging the sources in order
(:func:`_merge`): header facts < A1111 sidecar < Civitai info < the project catalog.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..presets import Catalog
from ..types import LoraInfo
from .cache import _Index, _LazyMetadata
from .detect import _header_facts
from .guess import _guess_kind
from .resolve import _TAG_UNSAFE, _stem
from .sidecars import _a1111_sidecar_facts, _civitai_facts, _previews

LOADABLE_SUFFIXES = (".safetensors",)
#: Pickle-based formats: listed, never loaded (``torch.load`` can execute arbitrary code).
PICKLE_SUFFIXES = (".ckpt", ".pt", ".bin", ".pth")


# ----------------------------------------------------------------------------------------------
# Folder walk
# ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Found:
    path: str  # as found under the root (absolute, not resolved)
    root: str
    name: str  # file name
    directory: str
    listing: frozenset[str]  # names in the same folder (sidecars, previews)
    links: frozenset[str]  # names in the folder that are symlinks
    previews: dict[str, str]  # stem -> preview image file name in the same folder
    sidecar_stems: frozenset[str]  # stems with a <stem>.json or <stem>.civitai.info here
    size: int = 0
    mtime_ns: int = 0
    problem: str = ""
    status: str = "ok"


def _inside(real: str, real_roots: Sequence[str]) -> bool:
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in real_roots)


def _walk(roots: Sequence[str], notes: list[str]) -> Iterator[_Found]:
    """Every LoRA-like file under the roots (subfolders included; hidden folders and macOS
    ``._*`` AppleDouble files skipped)."""
    real_roots = [os.path.realpath(r) for r in roots]
    visited: set[str] = set()
    suffixes = LOADABLE_SUFFIXES + PICKLE_SUFFIXES
    for root in roots:
        if not os.path.isdir(root):
            notes.append(
                f"LoRA folder {root} does not exist"
                if not os.path.exists(root)
                else f"{root} is not a folder"
            )
            continue
        stack = [root]
        while stack:
            directory = stack.pop()
            real_dir = os.path.realpath(directory)
            if real_dir in visited:
                continue
            visited.add(real_dir)
            try:
                with os.scandir(directory) as entries:
                    items = list(entries)
            except OSError as exc:
                notes.append(f"cannot list {directory}: {exc.strerror or exc}")
                continue
            listing = frozenset(e.name for e in items)
            links = frozenset(e.name for e in items if e.is_symlink())
            previews = _previews(listing)
            sidecar_stems = frozenset(
                n[: -len(".civitai.info")] if n.endswith(".civitai.info") else n[: -len(".json")]
                for n in listing
                if n.endswith((".json", ".civitai.info"))
            )
            subdirs: list[str] = []
            for entry in items:
                name = entry.name
                lower = name.lower()
                is_link = name in links
                if not lower.endswith(suffixes):
                    if not name.startswith(".") and _is_dir(entry):
                        if is_link and not _inside(os.path.realpath(entry.path), real_roots):
                            notes.append(f"folder link {entry.path} points outside the LoRA folders; skipped")
                        else:
                            subdirs.append(entry.path)
                    continue
                if name.startswith("._"):  # macOS AppleDouble metadata, not a model
                    continue
                found = _Found(entry.path, root, name, directory, listing, links, previews, sidecar_stems)
                if is_link:
                    target = os.path.realpath(entry.path)
                    if not os.path.exists(target):
                        found.status, found.problem = (
                            "broken",
                            f"symlink target is missing ({os.readlink(entry.path)})",
                        )
                        yield found
                        continue
                    if not _inside(target, real_roots):
                        found.status = "refused"
                        found.problem = f"symlink points outside the LoRA folders (to {target}); refused"
                        yield found
                        continue
                try:
                    st = entry.stat()
                except OSError as exc:
                    found.status, found.problem = "broken", f"cannot stat the file ({exc.strerror or exc})"
                    yield found
                    continue
                if not _stat_is_file(st.st_mode):
                    if _stat_is_dir(st.st_mode) and not name.startswith("."):
                        subdirs.append(entry.path)
                    continue
                found.size, found.mtime_ns = st.st_size, st.st_mtime_ns
                yield found
            stack.extend(sorted(subdirs, reverse=True))


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _stat_is_file(mode: int) -> bool:
    return (mode & 0o170000) == 0o100000


def _stat_is_dir(mode: int) -> bool:
    return (mode & 0o170000) == 0o040000


def _sidecar_path(found: _Found, name: str, real_roots: Sequence[str]) -> str | None:
    """``directory/name`` when it exists and (if a symlink) stays inside the roots."""
    if name not in found.listing:
        return None
    path = os.path.join(found.directory, name)
    if name in found.links and not _inside(os.path.realpath(path), real_roots):
        return None
    return path


class _CatalogView:
    """Exact and case-insensitive lookup of catalog entries, plus a digest for cache signatures."""

    def __init__(self, catalog: Catalog | None, file: str | None) -> None:
        self.exact = dict(catalog.loras) if catalog is not None else {}
        self.folded = {name.casefold(): entry for name, entry in reversed(self.exact.items())}
        digest = ""
        if catalog is not None and file is not None:
            with contextlib.suppress(OSError):
                digest = hashlib.sha1(Path(file).read_bytes()).hexdigest()
        self.digest = digest
        self.plain_key = (digest, None, None)  # the signature of a file without sidecars

    def get(self, name: str) -> Any:
        found = self.exact.get(name)
        return found if found is not None else self.folded.get(name.casefold())


_NO_SIDECARS: tuple[tuple[None, None], ...] = ((None, None), (None, None))


def _build_info(
    found: _Found,
    index: _Index,
    *,
    catalog: _CatalogView,
    real_roots: Sequence[str],
    reuse: Mapping[str, tuple[tuple[Any, ...], LoraInfo]],
    keys: dict[str, tuple[Any, ...]],
) -> LoraInfo:
    """One entry. ``reuse`` holds the previous scan's entries (path -> (key, info)) for refresh();
    the key of every loadable-format file is written to ``keys``."""
    name = _stem(found.name)
    suffix = found.name[len(name) :].lower()
    if found.status != "ok":
        return LoraInfo(
            name=name,
            path=found.path,
            size=found.size,
            mtime=found.mtime_ns / 1e9,
            status=found.status,  # type: ignore[arg-type]
            problem=found.problem,
        )
    if suffix in PICKLE_SUFFIXES:
        return LoraInfo(
            name=name,
            path=found.path,
            size=found.size,
            mtime=found.mtime_ns / 1e9,
            status="refused",
            problem=f"{suffix} is a pickle format: loading it can run arbitrary code; use .safetensors",
        )
    preview = found.previews.get(name)
    if preview is not None:
        preview = _sidecar_path(found, preview, real_roots)

    # the catalog digest and the sidecars' stats decide whether the cached fields still hold
    if name in found.sidecar_stems:
        sidecars: Sequence[tuple[str | None, tuple[int, int] | None]] = []
        signature: list[Any] = [catalog.digest]
        for sidecar in (f"{name}.json", f"{name}.civitai.info"):
            path = _sidecar_path(found, sidecar, real_roots)
            stat = None
            if path is not None:
                try:
                    st = os.stat(path)
                    stat = (st.st_size, st.st_mtime_ns)
                except OSError:
                    path = None
            sidecars.append((path, stat))  # type: ignore[attr-defined]
            signature.append(stat)
        signature_key = tuple(signature)
    else:
        sidecars, signature_key = _NO_SIDECARS, catalog.plain_key
    key = (found.size, found.mtime_ns, signature_key, preview)
    keys[found.path] = key
    previous = reuse.get(found.path)
    if previous is not None and previous[0] == key:
        index.entry(found.path, found.size, found.mtime_ns)
        _keep_sidecars(index, sidecars)
        return previous[1]

    cached = index.entry(found.path, found.size, found.mtime_ns)
    if (
        cached is not None
        and cached[2] == signature_key
        and type(cached[3]) is dict
        and type(cached[4]) is int
    ):
        fields, metadata = cached[3], cached[4]
        _keep_sidecars(index, sidecars)
    else:
        facts = index.facts(found.path, found.size, found.mtime_ns, _header_facts)
        if facts["status"] != "ok":
            fields = {"status": facts["status"], "problem": facts["problem"]}
            if facts.get("algorithm"):
                fields["algorithm"] = facts["algorithm"]
            metadata = ""
        else:
            fields = _merge(name, found, facts=facts, sidecars=sidecars, catalog=catalog, index=index)
            metadata = facts["metadata"]
        index.remember(
            found.path, found.size, found.mtime_ns, signature=signature_key, fields=fields, metadata=metadata
        )
    return LoraInfo(
        name=name,
        path=found.path,
        size=found.size,
        mtime=found.mtime_ns / 1e9,
        preview=preview if fields.get("status", "ok") == "ok" else None,
        metadata=(
            metadata
            if type(metadata) is dict
            else _LazyMetadata(index.metadata_store, found.path, found.size, found.mtime_ns)
            if metadata
            else {}
        ),
        **fields,
    )


def _keep_sidecars(index: _Index, sidecars: Sequence[tuple[str | None, tuple[int, int] | None]]) -> None:
    """Mark sidecars as still present, so their cached facts survive for the next re-merge."""
    for path, stat in sidecars:
        if path is not None and stat is not None:
            index.live.add(path)


def _merge(
    name: str,
    found: _Found,
    *,
    facts: Mapping[str, Any],
    sidecars: Sequence[tuple[str | None, tuple[int, int] | None]],
    catalog: _CatalogView,
    index: _Index,
) -> dict[str, Any]:
    """The LoraInfo fields of one loadable file: header facts < sidecar < civitai < catalog."""
    fields: dict[str, Any] = {
        "network_format": facts["network_format"],
        "algorithm": facts.get("algorithm", ""),
        "base": facts["base"],
        "base_source": facts["base_source"],
        "rank": facts["rank"],
        "alpha": facts["alpha"],
        "triggers": tuple(facts["triggers"]),
        "triggers_source": facts["triggers_source"] if facts["triggers"] else "",
        "description": facts.get("usage_hint", ""),
    }
    warnings = [facts["problem"]] if facts.get("problem") else []
    aliases: list[str] = []
    if facts["output_name"] and facts["output_name"] != name:
        aliases.append(facts["output_name"])
    if name.lower() in ("adapter_model", "pytorch_lora_weights") and found.directory != found.root:
        aliases.append(os.path.basename(found.directory))
    declared_kind: tuple[str, str] | None = None

    # 2.-3. sidecars: A1111 <stem>.json, then Civitai <stem>.civitai.info
    for (path, stat), reader, label in zip(
        sidecars, (_a1111_sidecar_facts, _civitai_facts), ("sidecar", "civitai"), strict=True
    ):
        if path is None or stat is None:
            continue
        extra = index.facts(path, stat[0], stat[1], lambda p, _size, read=reader: read(p))
        if "warning" in extra:
            warnings.append(extra["warning"])
            continue
        if "triggers" in extra:
            fields["triggers"], fields["triggers_source"] = tuple(extra["triggers"]), label
        if "base" in extra:
            fields["base"], fields["base_source"] = extra["base"], extra["base_source"]
        for key in ("preferred_weight", "negative_text", "notes", "description"):
            if key in extra:
                fields[key] = extra[key]
        if "kind" in extra:
            declared_kind = (extra["kind"], label)

    # 4. the project catalog
    entry = catalog.get(name)
    if entry is not None:
        if entry.kind:
            declared_kind = (entry.kind, "catalog")
        if entry.triggers is not None:
            fields["triggers"], fields["triggers_source"] = tuple(entry.triggers), "catalog"
        if entry.base:
            earlier, earlier_source = fields["base"], fields["base_source"]
            if earlier_source == "catalog" or earlier == "unknown":
                source = "catalog"
            elif entry.base == earlier:
                source = f"catalog (agrees with {earlier_source})"
            else:  # the catalog wins (it is the user's word), but the conflict stays visible
                source = f"catalog (overrides {earlier_source}, which says {earlier})"
                warnings.append(
                    f"the catalog says base {entry.base} but the file's {earlier_source} says {earlier}"
                )
            fields["base"], fields["base_source"] = entry.base, source
        if entry.preferred_weight is not None:
            fields["preferred_weight"] = entry.preferred_weight
        for key in ("negative_text", "source", "notes", "description"):
            if getattr(entry, key):
                fields[key] = getattr(entry, key)
        aliases.extend(entry.aliases)

    fields["kind"], fields["kind_source"] = declared_kind or _guess_kind(name, facts)
    fields["aliases"] = tuple(dict.fromkeys(a for a in aliases if a != name))
    if _TAG_UNSAFE.search(name):
        warnings.append(
            "the name contains ':', '<', '>' or a control character: a <lora:…> tag cannot name it"
        )
    fields["problem"] = "; ".join(warnings)
    return fields
