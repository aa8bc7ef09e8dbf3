"""The scan index on disk (``lora-index-*.marshal`` / ``lora-facts-*.marshal``) and lazy metadata.

A warm scan reads only the hot index; header metadata is fetched from the cold facts file on
first use (:class:`_LazyMetadata`). Both files carry a version that includes a digest of this
package's source and of :mod:`assistant.layouts`, so a cache written by other code (an older
``assistant/library.py`` included) is ignored and rebuilt, never misread.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .detect import _header_facts

#: 8: the module became the ``assistant/library/`` package (the digest covers all its modules).
_INDEX_VERSION = 8


class _Index:
    """The scan cache, two :mod:`marshal` files per set of roots.

    * hot ``lora-index-*.marshal``: ``path -> [size, mtime_ns, signature, fields, has_metadata]``,
      the finished :class:`LoraInfo` fields (metadata itself is read lazily from the cold file,
      see :class:`_LazyMetadata`), valid while the file's
      size/mtime and the ``signature`` (catalog digest, sidecar stats) hold. A warm scan reads
      only this file.
    * cold ``lora-facts-*.marshal``: ``path -> [size, mtime_ns, facts]``, what each header or
      sidecar said; loaded only when some entry must be merged again.

    marshal holds plain dicts, lists, tuples and strings here (loading it runs no code); a
    version key includes the Python version and a digest of this package's source (changed
    heuristics invalidate the cache), and anything unexpected is ignored.
    """

    def __init__(self, hot: Path | None, cold: Path | None) -> None:
        self.hot_file, self.cold_file = hot, cold
        self.old: dict[str, list[Any]] = _load_marshal(hot)
        self.new: dict[str, list[Any]] = {}
        self.changed = False
        self._old_facts: dict[str, list[Any]] | None = None
        self.new_facts: dict[str, list[Any]] = {}
        self.facts_changed = False
        self.live: set[str] = set()  # sidecar paths seen by this scan
        self.metadata_store = _MetadataStore(cold)

    def entry(self, path: str, size: int, mtime_ns: int) -> list[Any] | None:
        """The hot entry when the file is unchanged (and carry it into the new index)."""
        cached = self.old.get(path)
        if type(cached) is list and len(cached) == 5 and cached[0] == size and cached[1] == mtime_ns:
            self.new[path] = cached
            return cached
        return None

    def facts(self, path: str, size: int, mtime_ns: int, compute: Any) -> dict[str, Any]:
        """A file's facts: decoded from the cold index when unchanged, else ``compute(path, size)``."""
        self.live.add(path)
        if self._old_facts is None:
            self._old_facts = _load_marshal(self.cold_file)
        cached = self._old_facts.get(path)
        if (
            type(cached) is list
            and len(cached) == 3
            and cached[0] == size
            and cached[1] == mtime_ns
            and type(cached[2]) is dict
        ):
            self.new_facts[path] = cached
            return cached[2]
        facts = compute(path, size)
        self.new_facts[path] = [size, mtime_ns, facts]
        self.facts_changed = True
        return facts

    def remember(
        self,
        path: str,
        size: int,
        mtime_ns: int,
        *,
        signature: tuple[Any, ...],
        fields: dict[str, Any],
        metadata: Mapping[str, str],
    ) -> None:
        """Store the finished fields (strings interned, so marshal writes repeats once)."""
        fields = {k: _intern(v) for k, v in fields.items()}
        entry = [size, mtime_ns, signature, fields, 1 if metadata else 0]
        if self.old.get(path) != entry:
            self.changed = True
        self.new[path] = entry

    def save(self) -> None:
        if self.hot_file is not None and (self.changed or self.new.keys() != self.old.keys()):
            _atomic_write(self.hot_file, marshal.dumps({"version": _index_version(), "entries": self.new}))
        if self.cold_file is not None and (self.facts_changed or self._old_facts is not None):
            old = self._old_facts if self._old_facts is not None else _load_marshal(self.cold_file)
            live = self.live | self.new.keys()
            facts = {p: v for p, v in old.items() if p in live}
            facts.update(self.new_facts)
            if facts != old:
                _atomic_write(self.cold_file, marshal.dumps({"version": _index_version(), "entries": facts}))


def _intern(value: Any) -> Any:
    if type(value) is str:
        return sys.intern(value)
    if type(value) is tuple:
        return tuple(sys.intern(v) if type(v) is str else v for v in value)
    return value


def _load_marshal(file: Path | None) -> dict[str, list[Any]]:
    if file is None:
        return {}
    try:
        with open(file, "rb") as handle:
            data = marshal.loads(handle.read())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if isinstance(data, dict) and data.get("version") == _index_version():
        entries = data.get("entries")
        if isinstance(entries, dict):
            return entries
    return {}


def _code_digest() -> str:
    """A digest of this package's source (every module, in name order) and of
    :mod:`assistant.layouts` (the layout table): cached entries die with the heuristics that made
    them."""
    digest = hashlib.sha1()
    package = Path(__file__).parent
    try:
        for source in (*sorted(package.glob("*.py")), package.parent / "layouts.py"):
            digest.update(source.read_bytes())
    except OSError:
        return "unknown"
    return digest.hexdigest()[:12]


_CODE_DIGEST = _code_digest()


def _index_version() -> str:
    return f"{_INDEX_VERSION}/{sys.version_info[0]}.{sys.version_info[1]}/{_CODE_DIGEST}"


def _atomic_write(file: Path, data: bytes) -> None:
    """Write next to ``file`` and rename into place; a failed cache write is not an error."""
    tmp = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=file.name, suffix=".tmp", dir=file.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, file)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


class _MetadataStore:
    """Header metadata for warm-scanned entries, read from the cold index on first use (or, when
    the index no longer has the file, from the file's header again)."""

    def __init__(self, cold_file: Path | None) -> None:
        self.cold_file = cold_file
        self._facts: dict[str, list[Any]] | None = None
        self._lock = threading.Lock()

    def get(self, path: str, size: int, mtime_ns: int) -> dict[str, str]:
        with self._lock:
            if self._facts is None:
                self._facts = _load_marshal(self.cold_file)
            cached = self._facts.get(path)
        if (
            type(cached) is list
            and len(cached) == 3
            and cached[:2] == [size, mtime_ns]
            and type(cached[2]) is dict
        ):
            metadata = cached[2].get("metadata")
        else:
            metadata = _header_facts(path, size).get("metadata")
        return metadata if isinstance(metadata, dict) else {}


class _LazyMetadata(Mapping[str, str]):
    """Read-only trimmed header metadata, fetched on first use (keeps warm scans cheap)."""

    __slots__ = ("_data", "_key", "_store")

    def __init__(self, store: _MetadataStore, path: str, size: int, mtime_ns: int) -> None:
        self._store = store
        self._key = (path, size, mtime_ns)
        self._data: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._data is None:
            self._data = self._store.get(*self._key)
        return self._data

    def __getitem__(self, key: str) -> str:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return repr(self._load())

    def __reduce__(self) -> tuple[type[dict[str, str]], tuple[dict[str, str]]]:
        """Copies and pickles are plain dicts (``dataclasses.asdict``, ``copy.deepcopy``)."""
        return (dict, (dict(self._load()),))

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, str]:
        return dict(self._load())
