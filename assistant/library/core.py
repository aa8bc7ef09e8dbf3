"""The :class:`Library` itself: an immutable snapshot of the LoRA folders.

Construction (:meth:`Library.scan`, :meth:`Library.from_infos`, :meth:`Library.refresh`) and
listing live here; name resolution and search come from :class:`.resolve._Resolving`, hashes
from :class:`.hashing._Hashing`. A scan walks the roots (:mod:`.scan`), builds one entry per file
through the index cache (:mod:`.cache`) and lists the textual-inversion embeddings beside.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config import PRESETS_DIR
from ..presets import Catalog, load_catalog
from ..types import LoraInfo
from .cache import _Index
from .hashing import _Hashing
from .resolve import _Resolving
from .scan import _build_info, _CatalogView, _walk

DEFAULT_CATALOG = PRESETS_DIR / "loras.yaml"


def info_to_dict(info: LoraInfo) -> dict[str, Any]:
    """A JSON-ready dict of a :class:`LoraInfo` (tuples become lists, metadata a plain dict)."""
    data = dataclasses.asdict(info)
    data["metadata"] = dict(info.metadata)
    data["loadable"] = info.loadable
    return data


class Library(_Resolving, _Hashing):
    """An immutable snapshot of the user's LoRA folders, with fast name resolution.

    Build one with :meth:`scan` (folders on disk) or :meth:`from_infos` (in memory, for tests).
    :meth:`refresh` returns a *new* library; the old one stays valid. Resolution order:
    exact stem → case-insensitive stem (also width- and Unicode-form-insensitive: NFKC) → alias
    (``ss_output_name``, catalog aliases; exact then case-insensitive) → relative path
    (``sub/folder/name``) → :class:`LoraNotFound` with did-you-mean suggestions. When a step
    matches several files and exactly one is loadable, that one wins; otherwise
    :class:`AmbiguousLoraName` lists the candidates.
    """

    def __init__(
        self,
        infos: Iterable[LoraInfo],
        *,
        roots: Sequence[str] = (),
        catalog: str | None = None,
        cache_dir: str | None = None,
        notes: Sequence[str] = (),
        scan_seconds: float = 0.0,
        embeddings: Sequence[Any] = (),
        embedding_dirs: Sequence[str] = (),
    ) -> None:
        self._infos: tuple[LoraInfo, ...] = tuple(
            sorted(infos, key=lambda i: (i.name.casefold(), i.name, i.path))
        )
        self.roots: tuple[str, ...] = tuple(roots)
        self.catalog_path = catalog
        self.cache_dir = cache_dir
        self.notes: tuple[str, ...] = tuple(notes)
        self.scan_seconds = scan_seconds
        #: Textual-inversion embeddings (:class:`assistant.embeddings.EmbeddingInfo`), by name.
        self.embeddings: tuple[Any, ...] = tuple(embeddings)
        self.embedding_dirs: tuple[str, ...] = tuple(embedding_dirs)
        self._hash_lock = threading.Lock()
        self._hash_cache: dict[str, list[Any]] | None = None
        self._hold_hash_writes = False  # hash_all writes the cache once at the end
        self._scan_keys: dict[str, tuple[Any, ...]] = {}
        self._build_maps()

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def scan(
        cls,
        roots: Sequence[str | os.PathLike[str]],
        *,
        catalog: str | os.PathLike[str] | None = DEFAULT_CATALOG,
        cache_dir: str | os.PathLike[str] | None = None,
        embedding_dirs: Sequence[str | os.PathLike[str]] = (),
        _previous: Library | None = None,
    ) -> Library:
        """Scan the folders (subfolders included) into a library.

        ``catalog``: a ``loras.yaml`` file (the default one may be absent; an explicitly given
        file must exist), or ``None`` for no catalog. Catalog errors raise :class:`PresetError`.
        ``cache_dir``: where the scan index (``lora-index-*.marshal`` and ``lora-facts-*.marshal``,
        keyed by path, size and mtime, see :class:`_Index`) and the hash cache
        (``lora-hashes.json``) live; ``None`` writes nothing to disk.
        A missing root is recorded in :attr:`notes`, never an error. Bad files never break the
        scan: they are listed with status ``broken``/``refused`` and the reason.
        ``embedding_dirs``: textual-inversion folders, listed in :attr:`embeddings`
        (:func:`assistant.embeddings.scan`; headers only).
        """
        started = time.perf_counter()
        if isinstance(roots, str | os.PathLike):
            roots = [roots]
        root_list = [os.path.abspath(os.fspath(r)) for r in roots]
        catalog_file = os.fspath(catalog) if catalog is not None else None
        loaded: Catalog | None = None
        is_default = catalog_file is not None and os.path.abspath(catalog_file) == os.path.abspath(
            DEFAULT_CATALOG
        )
        if catalog_file is not None and (os.path.exists(catalog_file) or not is_default):
            loaded = load_catalog(catalog_file)
        cache = os.fspath(cache_dir) if cache_dir is not None else None
        hot = cold = None
        if cache is not None:
            digest = hashlib.sha1("\0".join(os.path.realpath(r) for r in root_list).encode()).hexdigest()[:16]
            hot = Path(cache) / f"lora-index-{digest}.marshal"
            cold = Path(cache) / f"lora-facts-{digest}.marshal"
        index = _Index(hot, cold)
        notes: list[str] = []
        real_roots = [os.path.realpath(r) for r in root_list]
        view = _CatalogView(loaded, catalog_file)
        reuse: dict[str, tuple[tuple[Any, ...], LoraInfo]] = {}
        if _previous is not None:
            reuse = {
                p: (k, _previous._by_path[p])
                for p, k in _previous._scan_keys.items()
                if p in _previous._by_path
            }
        keys: dict[str, tuple[Any, ...]] = {}
        infos = [
            _build_info(found, index, catalog=view, real_roots=real_roots, reuse=reuse, keys=keys)
            for found in _walk(root_list, notes)
        ]
        index.save()
        if loaded is not None:
            present = {i.name.casefold() for i in infos}
            missing = sorted(n for n in loaded.loras if n.casefold() not in present)
            if missing:
                notes.append("catalog entries without a file: " + ", ".join(missing[:20]))
        from ..config import DEFAULT_EMBEDDINGS_DIR
        from ..embeddings import scan as scan_embeddings

        embedding_roots = [os.fspath(d) for d in embedding_dirs]
        default = os.path.realpath(DEFAULT_EMBEDDINGS_DIR)
        present = [d for d in embedding_roots if os.path.isdir(d) or os.path.realpath(d) != default]
        embeddings, embedding_notes = scan_embeddings(present)  # the default folder may be absent
        notes.extend(embedding_notes)
        library = cls(
            infos,
            roots=root_list,
            catalog=catalog_file,
            cache_dir=cache,
            notes=notes,
            embeddings=embeddings,
            embedding_dirs=embedding_roots,
        )
        library._scan_keys = keys
        if _previous is not None and _previous.cache_dir == cache:
            library._hash_cache = _previous._hash_cache
        library.scan_seconds = time.perf_counter() - started
        return library

    @classmethod
    def from_infos(cls, infos: Iterable[LoraInfo], embeddings: Sequence[Any] = ()) -> Library:
        """An in-memory library of ready-made entries (no folders; :meth:`refresh` returns it as is)."""
        return cls(infos, embeddings=embeddings)

    def refresh(self) -> Library:
        """Rescan the same roots, catalog and cache: a NEW library (this one is left unchanged).

        Unchanged files (same size, mtime, sidecars, catalog and preview) keep their
        :class:`LoraInfo` objects, so a refresh costs little more than a ``stat`` per file.
        A library made by :meth:`from_infos` has nothing to rescan and returns itself.
        """
        if not self.roots:
            return self
        return Library.scan(
            self.roots,
            catalog=self.catalog_path,
            cache_dir=self.cache_dir,
            embedding_dirs=self.embedding_dirs,
            _previous=self,
        )

    # -- listing ----------------------------------------------------------------------------------

    def all(self) -> list[LoraInfo]:
        """Every entry, refused and broken included, sorted by name (case-insensitive)."""
        return list(self._infos)

    def loadable(self) -> list[LoraInfo]:
        """The entries with status ``ok``, sorted by name."""
        return [info for info in self._infos if info.status == "ok"]

    def __len__(self) -> int:
        return len(self._infos)

    def __bool__(self) -> bool:
        """Always true: an empty library is still a library (``lib.refresh() or lib`` must not
        fall back to the stale one). Use ``len(lib)`` to test for entries."""
        return True

    def __iter__(self) -> Iterator[LoraInfo]:
        return iter(self._infos)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __repr__(self) -> str:
        loadable = len(self.loadable())
        return f"Library({len(self._infos)} entries, {loadable} loadable, roots={list(self.roots)!r})"
