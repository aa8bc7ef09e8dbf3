"""LoRA file hashes as A1111 and Civitai write them, the hash cache, and the one hashing path.

A1111's ``Lora hashes`` value hashes the bytes after ``8 + header_length``
(``modules/hashes.py`` ``addnet_hash_safetensors``, first 12 hex digits; since v1.6 the file's
embedded ``sshs_model_hash`` is preferred); Civitai's AutoV2 is the whole file's sha256, first 10.
Files are read lazily, on request, and the results kept in ``cache_dir/lora-hashes.json`` (keyed
by path, size and mtime). :func:`with_hashes` is the one path that fills ``PlannedLora.hash``
for Generate, blind box, A/B, sweeps, the API and the CLI. :class:`_Hashing` is a base class of
:class:`assistant.library.Library`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from ..errors import LibraryError, LoraMixerError
from ..types import LoraInfo, PlannedLora
from .cache import _atomic_write
from .header import HEADER_CAP

if TYPE_CHECKING:
    from .core import Library

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Hashes:
    """A LoRA's hashes as A1111 and Civitai write them.

    ``a1111``: sha256 of the bytes after the safetensors header, first 12 hex (A1111's
    ``Lora hashes`` infotext; kohya's/additional-networks' "addnet" hash); ``autov2``: sha256 of
    the whole file, first 10 hex (Civitai's AutoV2); ``sha256``: the whole file's sha256;
    ``addnet``: the full 64-hex sha256 after the header.
    """

    a1111: str
    autov2: str
    sha256: str
    addnet: str = ""
    embedded: str = ""  # kohya's precomputed ``sshs_model_hash`` metadata (64 hex), "" if none

    @property
    def infotext(self) -> str:
        """What A1111 writes in ``Lora hashes``: since v1.6 it prefers the file's embedded
        ``sshs_model_hash`` (first 12 hex) and falls back to :attr:`a1111`."""
        return self.embedded[:12] if self.embedded else self.a1111


class _Hashing:
    """The hash methods of a :class:`~assistant.library.Library` (its hash cache and lock)."""

    roots: tuple[str, ...]
    cache_dir: str | None
    _by_path: dict[str, LoraInfo]
    _hash_lock: threading.Lock
    _hash_cache: dict[str, list[Any]] | None
    _hold_hash_writes: bool

    if TYPE_CHECKING:

        def resolve(self, name: str) -> LoraInfo: ...

        def loadable(self) -> list[LoraInfo]: ...

    @overload
    def hashes(self, name_or_info: str | LoraInfo) -> Hashes: ...

    @overload
    def hashes(self, name_or_info: str | LoraInfo, *, compute: bool) -> Hashes | None: ...

    def hashes(self, name_or_info: str | LoraInfo, *, compute: bool = True) -> Hashes | None:
        """A1111 (12 hex), AutoV2 (10 hex) and full sha256 of a loadable LoRA.

        Read from the disk cache (``cache_dir/lora-hashes.json``, keyed by path, size and
        mtime) or computed now in one pass over the file (with ``compute=False``: None instead of
        reading the file). Raises :class:`LoraNotFound` for an unknown name and
        :class:`LibraryError` for an entry that is not loadable or has changed into a
        non-safetensors file.
        """
        info = self.resolve(name_or_info) if isinstance(name_or_info, str) else name_or_info
        if not isinstance(info, LoraInfo):
            raise LibraryError(f"hashes() takes a LoRA name or a LoraInfo, not {type(info).__name__}")
        known = self._by_path.get(info.path)
        if known is None and self.roots:
            raise LibraryError(f"'{info.name}' ({info.path}) is not part of this library")
        info = known or info
        if not info.loadable:
            raise LibraryError(f"cannot hash '{info.name}': it is {info.status} ({info.problem})")
        try:
            st = os.stat(info.path)
        except OSError as exc:
            raise LibraryError(f"cannot hash '{info.name}': {exc.strerror or exc} ({info.path})") from None
        with self._hash_lock:
            cache = self._load_hash_cache()
            cached = cache.get(info.path)
            if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
                sha, addnet = cached[2], cached[3]
            elif not compute:
                return None
            else:
                sha, addnet = _file_hashes(info)
                cache[info.path] = [st.st_size, st.st_mtime_ns, sha, addnet]
                if not self._hold_hash_writes:
                    self._write_hash_cache()
        return Hashes(
            a1111=addnet[:12], autov2=sha[:10], sha256=sha, addnet=addnet, embedded=embedded_hash(info)
        )

    def hash_all(self, *, max_bytes: int | None = None) -> int:
        """Hash every loadable LoRA not in the cache yet (up to ``max_bytes`` each), writing the
        cache once at the end; returns how many files were read. For a background thread."""
        read = 0
        self._hold_hash_writes = True
        try:
            for info in self.loadable():
                if max_bytes is not None and info.size > max_bytes:
                    continue
                try:
                    if self.hashes(info, compute=False) is None:
                        self.hashes(info)
                        read += 1
                except (LibraryError, OSError):
                    continue  # deleted or replaced meanwhile: a later listing says so
        finally:
            self._hold_hash_writes = False
            if read:
                with self._hash_lock:
                    self._write_hash_cache()
        return read

    def _write_hash_cache(self) -> None:
        """Write the hash cache, merged with what other processes wrote meanwhile (hold the lock)."""
        if self.cache_dir is None:
            return
        cache = self._load_hash_cache()
        on_disk = _read_hash_file(Path(self.cache_dir) / "lora-hashes.json")
        on_disk.update(cache)
        cache.update(on_disk)
        _atomic_write(
            Path(self.cache_dir) / "lora-hashes.json", json.dumps({"version": 1, "entries": on_disk}).encode()
        )

    def cached_hashes(self, name_or_info: str | LoraInfo) -> Hashes | None:
        """:meth:`hashes` when the disk cache already has them, else None (never reads the file)."""
        return self.hashes(name_or_info, compute=False)

    def _load_hash_cache(self) -> dict[str, list[Any]]:
        if self._hash_cache is None:
            self._hash_cache = {}
            if self.cache_dir is not None:
                self._hash_cache = _read_hash_file(Path(self.cache_dir) / "lora-hashes.json")
        return self._hash_cache


def embedded_hash(info: LoraInfo) -> str:
    """kohya's precomputed ``sshs_model_hash`` (64 hex, lower case) from the header, "" if none."""
    embedded = str(info.metadata.get("sshs_model_hash", "")).strip().lower()
    return embedded if re.fullmatch(r"[0-9a-f]{64}", embedded) else ""


def with_hashes(loras: Sequence[PlannedLora], library: Library) -> tuple[PlannedLora, ...]:
    """``loras`` with each empty ``hash`` filled in with what A1111 writes in ``Lora hashes``
    (:attr:`Hashes.infotext`): the one hashing path of Generate, blind box, A/B, sweeps, the API
    and the CLI, so one file has one hash in every infotext. Plans leave hashes empty (they stay
    pure and fast); a file that cannot be hashed keeps ``""``."""
    filled: list[PlannedLora] = []
    for lora in loras:
        digest = lora.hash
        if not digest:
            try:
                digest = library.hashes(library.resolve(lora.name)).infotext
            except (LoraMixerError, OSError) as err:
                _log.warning("no hash for LoRA %s: %s", lora.name, err)
        filled.append(dataclasses.replace(lora, hash=digest) if digest != lora.hash else lora)
    return tuple(filled)


def _read_hash_file(file: Path) -> dict[str, list[Any]]:
    """``path -> [size, mtime_ns, sha256, addnet]`` from the hash cache; {} when absent or odd."""
    try:
        with open(file, "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        return {}
    return {
        k: v
        for k, v in entries.items()
        if isinstance(v, list) and len(v) == 4 and all(isinstance(x, str) and len(x) == 64 for x in v[2:])
    }


def _file_hashes(info: LoraInfo) -> tuple[str, str]:
    """(sha256 of the whole file, sha256 of the bytes after the safetensors header), one pass."""
    whole = hashlib.sha256()
    after = hashlib.sha256()
    try:
        with open(info.path, "rb") as handle:
            head = handle.read(8)
            whole.update(head)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length < 0 or length > HEADER_CAP:
                raise LibraryError(f"cannot hash '{info.name}': the file no longer has a safetensors header")
            header = handle.read(length)
            whole.update(header)
            while chunk := handle.read(1024 * 1024):
                whole.update(chunk)
                after.update(chunk)
    except OSError as exc:
        raise LibraryError(f"cannot hash '{info.name}': {exc.strerror or exc} ({info.path})") from None
    return whole.hexdigest(), after.hexdigest()
