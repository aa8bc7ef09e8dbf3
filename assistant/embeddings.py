"""Textual-inversion embeddings: the files in ``models/embeddings``, as A1111 reads them.

Pure Python (headers only, never tensors): :func:`scan` lists each ``.safetensors`` file with its
token (the file name without extension, as in A1111), its layout, how many vectors it has and the
base model its width belongs to:

- ``emb_params`` (kohya / A1111's own safetensors export), ``*`` or ``string_to_param.*`` (a
  flattened A1111 ``.pt``), or any other single tensor (diffusers' ``<concept>`` files):
  ``[vectors, width]`` or ``[width]``; width 768 = SD1.x, 1024 = SD2.x;
- ``clip_l`` + ``clip_g`` (SDXL): ``[vectors, 768]`` and ``[vectors, 1280]``.

Pickle files (``.pt``/``.bin``/``.ckpt``/``.pth``) are listed as refused — loading them can run
code — with how to convert them; a file that is not an embedding (a LoRA, several tensors) is
listed as broken with the reason. :func:`mentioned` finds the embeddings a prompt names (A1111
matches the name's CLIP tokens; case does not matter there, so it does not here either).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .types import Base

#: Vector width -> base model (SDXL embeddings are recognised by their clip_l/clip_g pair).
WIDTH_BASES: dict[int, Base] = {768: "sd15", 1024: "sd2"}
#: The widths A1111 expects per loaded model (``get_expected_shape``): SDXL is clip_l + clip_g.
BASE_WIDTHS: dict[str, int] = {"sd15": 768, "sd2": 1024, "sdxl": 768 + 1280}
_PICKLE_SUFFIXES = (".pt", ".bin", ".ckpt", ".pth")
_SINGLE_KEYS = ("emb_params", "*", "string_to_param.*")


@dataclass(frozen=True, slots=True)
class EmbeddingInfo:
    """One embedding file. ``status``: "ok", "refused" (pickle) or "broken" (with ``problem``)."""

    name: str
    path: str
    base: Base = "unknown"
    vectors: int = 0
    width: int = 0  # per token: 768 / 1024, or 2048 for SDXL (768 + 1280)
    layout: str = ""  # "emb_params" | "clip_l+clip_g" | "string_to_param" | "single tensor"
    size: int = 0
    status: str = "ok"
    problem: str = ""

    @property
    def loadable(self) -> bool:
        return self.status == "ok"


def _describe(path: str, name: str, size: int) -> EmbeddingInfo:
    from .library import LibraryError, read_safetensors_header

    try:
        _length, tensors, _metadata = read_safetensors_header(path, size)
    except LibraryError as exc:
        return EmbeddingInfo(name, path, size=size, status="broken", problem=str(exc).split(": ", 1)[-1])
    shapes = {key: list(spec.get("shape", [])) for key, spec in tensors.items()}
    if {"clip_l", "clip_g"} <= set(shapes):
        l_shape, g_shape = shapes["clip_l"], shapes["clip_g"]
        if len(l_shape) != 2 or len(g_shape) != 2 or l_shape[0] != g_shape[0]:
            return EmbeddingInfo(
                name,
                path,
                size=size,
                status="broken",
                problem=f"clip_l {l_shape} and clip_g {g_shape} do not pair up",
            )
        return EmbeddingInfo(name, path, "sdxl", l_shape[0], l_shape[1] + g_shape[1], "clip_l+clip_g", size)
    if len(shapes) != 1:
        keys = ", ".join(sorted(shapes)[:4])
        return EmbeddingInfo(
            name,
            path,
            size=size,
            status="broken",
            problem=f"not a textual-inversion embedding: {len(shapes)} tensors ({keys}…); a LoRA or a model?",
        )
    key, shape = next(iter(shapes.items()))
    if len(shape) == 1:
        shape = [1, shape[0]]
    if len(shape) != 2 or shape[0] < 1:
        return EmbeddingInfo(
            name, path, size=size, status="broken", problem=f"tensor '{key}' has shape {shape}"
        )
    layout = (
        "emb_params" if key == "emb_params" else "string_to_param" if key in _SINGLE_KEYS else "single tensor"
    )
    return EmbeddingInfo(name, path, WIDTH_BASES.get(shape[1], "unknown"), shape[0], shape[1], layout, size)


def scan(folders: Iterable[str | os.PathLike[str]]) -> tuple[tuple[EmbeddingInfo, ...], tuple[str, ...]]:
    """(embeddings sorted by name, notes). Subfolders are scanned; a missing folder is a note.
    The first file of a name wins (A1111 keeps one embedding per token); later ones are noted."""
    found: dict[str, EmbeddingInfo] = {}
    notes: list[str] = []
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            notes.append(f"embeddings folder {root} does not exist")
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for filename in sorted(filenames):
                path = os.path.join(dirpath, filename)
                stem, suffix = os.path.splitext(filename)
                suffix = suffix.lower()
                if suffix == ".safetensors":
                    info = _describe(path, stem, os.path.getsize(path))
                elif suffix in _PICKLE_SUFFIXES:
                    info = EmbeddingInfo(
                        stem,
                        path,
                        size=os.path.getsize(path),
                        status="refused",
                        problem=f"a {suffix} pickle file: refused (loading it can run code); "
                        "convert it to .safetensors",
                    )
                else:
                    continue
                if stem.casefold() in found:
                    notes.append(f"embedding '{stem}' exists twice; using {found[stem.casefold()].path}")
                    continue
                found[stem.casefold()] = info
    return tuple(sorted(found.values(), key=lambda i: i.name.casefold())), tuple(notes)


def fits(info: EmbeddingInfo, base: str) -> bool:
    """True when ``info`` can be used on a model of ``base`` (A1111's expected shape)."""
    return info.loadable and info.width == BASE_WIDTHS.get(base, -1)


def mentioned(text: str, embeddings: Sequence[EmbeddingInfo]) -> list[EmbeddingInfo]:
    """The embeddings ``text`` names, in order of first mention (whole words, any letter case)."""
    if not text or not embeddings:
        return []
    lowered = text.casefold()
    hits: list[tuple[int, EmbeddingInfo]] = []
    for info in embeddings:
        m = re.search(rf"(?<![\w]){re.escape(info.name.casefold())}(?![\w])", lowered)
        if m:
            hits.append((m.start(), info))
    return [info for _pos, info in sorted(hits, key=lambda h: h[0])]


def shorthash(path: str | os.PathLike[str]) -> str:
    """A1111's embedding hash for ``TI hashes``: the first 12 hex digits of the file's sha256."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]
