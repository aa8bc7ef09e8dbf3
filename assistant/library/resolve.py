"""Name resolution and search: a name written in a prompt → one library entry.

Works on in-memory maps only (never the filesystem), so a hostile name cannot reach the disk.
Order: exact stem → case-, width- and Unicode-form-insensitive stem (NFKC + casefold) → alias
(exact, then folded) → relative path ``sub/folder/name`` → :class:`LoraNotFound` with
did-you-mean suggestions (substring matches, then similar spellings among the names sharing the
most 3-grams). :class:`_Resolving` holds the maps and is a base class of
:class:`assistant.library.Library`.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import AmbiguousLoraName, LibraryError, LoraNotFound
from ..types import BASES, KINDS, LoraInfo

#: Characters that cannot appear in a name written as ``<lora:name:weight>``.
_TAG_UNSAFE = re.compile(r"[:<>\x00-\x1f]")
_MAX_NAME = 512

_Hit = LoraInfo | tuple[LoraInfo, ...]


def _stem(file_name: str) -> str:
    return file_name.rsplit(".", 1)[0] if "." in file_name else file_name


class _Resolving:
    """The name maps of a :class:`~assistant.library.Library` and the lookups that use them."""

    _infos: tuple[LoraInfo, ...]
    roots: tuple[str, ...]

    def _build_maps(self) -> None:
        """The maps resolve() needs; the rarer ones (paths, spellings, search text) are built lazily."""
        infos = self._infos
        self._exact = _index_by((info.name, info) for info in infos)
        self._lower = _index_by((_fold(info.name), info) for info in infos)
        with_aliases = [info for info in infos if info.aliases]
        self._alias = _index_by((name, info) for info in with_aliases for name in info.aliases)
        self._alias_lower = _index_by((_fold(name), info) for info in with_aliases for name in info.aliases)
        self._by_path = {info.path: info for info in infos}

    @functools.cached_property
    def _relative_map(self) -> dict[str, _Hit]:
        pairs = ((self._relative(info), info) for info in self._infos)
        return _index_by((_fold(rel), info) for rel, info in pairs if rel and rel != info.name)

    @functools.cached_property
    def _spellings(self) -> dict[str, str]:
        spellings: dict[str, str] = {}
        for info in self._infos:
            spellings.setdefault(_fold(info.name), info.name)
            for name in info.aliases:
                spellings.setdefault(_fold(name), name)
        return spellings

    @functools.cached_property
    def _trigrams(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for key in self._spellings:
            for gram in _grams(key):
                index.setdefault(gram, []).append(key)
        return index

    @functools.cached_property
    def _haystacks(self) -> list[tuple[LoraInfo, str]]:
        rows = []
        for info in self._infos:
            parts = (info.name, *info.aliases, *info.triggers, info.notes, info.description, info.kind)
            rows.append((info, _fold("\n".join(parts))))
        return rows

    def _relative(self, info: LoraInfo) -> str:
        """``sub/name`` of an entry relative to its root (posix separators), "" when not under one."""
        for root in self.roots:
            prefix = root.rstrip(os.sep) + os.sep
            if info.path.startswith(prefix):
                rel = info.path[len(prefix) :]
                return _stem(rel).replace(os.sep, "/")
        return ""

    def search(self, text: str = "", *, kind: str | None = None, base: str | None = None) -> list[LoraInfo]:
        """Entries whose name, aliases, triggers, notes or description contain ``text`` (any case),
        optionally only of one ``kind`` and/or ``base``. Unknown kinds or bases raise LibraryError."""
        if kind is not None and kind not in KINDS:
            raise LibraryError(f"unknown kind '{kind}'; use one of: {', '.join(KINDS)}")
        if base is not None and base not in BASES:
            raise LibraryError(f"unknown base '{base}'; use one of: {', '.join(BASES)}")
        needle = _fold((text or "").strip())
        return [
            info
            for info, hay in self._haystacks
            if (not needle or needle in hay)
            and (kind is None or info.kind == kind)
            and (base is None or info.base == base)
        ]

    # -- resolution -------------------------------------------------------------------------------

    def _lookup(self, name: str) -> _Hit | None:
        hit = self._exact.get(name)
        if hit is not None:
            return hit
        if type(name) is not str or not name or len(name) > _MAX_NAME:
            return None
        key = _fold(name)
        hit = self._lower.get(key) or self._alias.get(name) or self._alias_lower.get(key)
        if hit is None:
            hit = self._relative_map.get(key.replace("\\", "/"))
        if hit is None and name != name.strip():
            return self._lookup(name.strip())
        if hit is None and key.endswith(".safetensors"):  # the file name, as a file manager shows it
            return self._lookup(name[: -len(".safetensors")])
        return hit

    def resolve(self, name: str) -> LoraInfo:
        """The entry for a name written in a prompt (any status: check ``info.loadable``).

        Raises :class:`LoraNotFound` (with did-you-mean suggestions) or
        :class:`AmbiguousLoraName`. Never touches the filesystem.
        """
        hit = self._lookup(name) if isinstance(name, str) else None
        if type(hit) is LoraInfo:
            return hit
        if hit:
            raise AmbiguousLoraName(str(name), self._candidates(hit))  # type: ignore[arg-type]
        raise _not_found(name, self.suggest(name) if isinstance(name, str) else [])

    def get(self, name: str) -> LoraInfo | None:
        """Like :meth:`resolve` but ``None`` instead of raising (also for ambiguous names)."""
        hit = self._lookup(name) if isinstance(name, str) else None
        return hit if type(hit) is LoraInfo else None

    def _candidates(self, hits: tuple[LoraInfo, ...]) -> list[str]:
        """Names that tell the hits apart: the names, else ``sub/name``, else the file names (with
        their extension: ``evil.ckpt`` and ``evil.pt`` are both ``evil``), refused ones marked."""
        names = [info.name for info in hits]
        if len(set(names)) == len(names):
            return names
        relative = [self._relative(info) or info.path for info in hits]
        if len(set(relative)) == len(relative):
            return relative
        return [os.path.basename(info.path) + ("" if info.loadable else f" ({info.status})") for info in hits]

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` known names or aliases close to ``name``, best first (prefix/substring
        matches, then similar spellings). Empty for empty, over-long or non-text input."""
        if not isinstance(name, str) or not name.strip() or len(name) > 200 or n <= 0:
            return []
        key = _fold(name.strip())
        keys = self._spellings
        contained = sorted(
            (k for k in keys if len(key) >= 3 and (k.startswith(key) or key in k or k in key) and k != key),
            key=lambda k: (not k.startswith(key), abs(len(k) - len(key)), k),
        )
        # similar spellings: difflib on the 100 keys sharing the most 3-grams (not on all keys)
        shared: Counter[str] = Counter()
        grams = self._trigrams
        for gram in _grams(key):
            shared.update(grams.get(gram, ()))
        pool = [k for k, _count in shared.most_common(100)]
        close = difflib.get_close_matches(key, pool, n=n, cutoff=0.6)
        picked = list(dict.fromkeys([*contained, *close]))
        return [keys[k] for k in picked[:n]]


def _fold(text: str) -> str:
    """The case- and width-insensitive form of a name: NFKC (full-width ｃａｔ → cat, composed
    accents) then casefold."""
    return unicodedata.normalize("NFKC", text).casefold()


def _grams(text: str) -> set[str]:
    """The 3-character pieces of `` text `` (padded, so short names have some)."""
    padded = f" {text} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def _index_by(pairs: Iterable[tuple[str, LoraInfo]]) -> dict[str, _Hit]:
    """key -> the one entry, or the reduced hit when several entries share the key."""
    out: dict[str, Any] = {}
    shared: dict[str, list[LoraInfo]] = {}
    for key, info in pairs:
        if key in out:
            shared.setdefault(key, [out[key]]).append(info)
        else:
            out[key] = info
    for key, infos in shared.items():
        out[key] = _reduce(infos)
    return out


def _reduce(hits: list[LoraInfo]) -> _Hit:
    """One entry, or the loadable one among several, or all of them (ambiguous)."""
    if len(hits) == 1:
        return hits[0]
    loadable = [h for h in hits if h.status == "ok"]
    if len(loadable) == 1:
        return loadable[0]
    return tuple(loadable or hits)


def _not_found(name: object, suggestions: Sequence[str]) -> LoraNotFound:
    text = name if isinstance(name, str) else repr(name)
    shown = text if len(text) <= 80 else text[:60] + f"… ({len(text)} characters)"
    shown = shown.encode("unicode_escape").decode("ascii") if _TAG_UNSAFE.search(shown) else shown
    message = f"LoRA not found: '{shown}'."
    if suggestions:
        message += " Did you mean: " + ", ".join(f"'{s}'" for s in suggestions) + "?"
    else:
        message += " Run 'python -m assistant loras' to list the library."
    return LoraNotFound(text, suggestions, message=message)
