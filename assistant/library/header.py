"""Reading and validating a safetensors header without touching tensor data.

The first read of every scanned file. :func:`read_safetensors_header` is public (the engine and
the embeddings scan check files with it); :func:`_read_header` also returns the first bytes read,
so the scan takes a small scalar (``.alpha``) from them without reading again. A file that is not a
valid safetensors file raises :class:`_Broken` with a user-facing reason and a status: ``broken``
(empty, truncated, HTML page, Git-LFS pointer, bad JSON, offsets not covering the file …) or
``refused`` (a pickle renamed to ``.safetensors``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any, NoReturn

from ..errors import LibraryError

#: Largest safetensors JSON header we read (real LoRA headers are 10 KB – 2 MB).
HEADER_CAP = 16 * 1024 * 1024
_FIRST_READ = 64 * 1024

_DTYPE_SIZES: dict[str, float] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
    "F4": 0.5, "F6_E2M3": 0.75, "F6_E3M2": 0.75,
}  # fmt: skip


class _Broken(Exception):
    """A file problem found while reading a header: ``status`` and a user-facing reason."""

    def __init__(self, reason: str, status: str = "broken") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _sniff(head: bytes, size: int) -> None:
    """Recognise files that are not safetensors at all, by their first bytes."""
    if size == 0:
        raise _Broken("empty file (0 bytes): the download or copy did not finish")
    if head.startswith(b"version https://git-lfs"):
        raise _Broken(
            f"a Git LFS pointer ({size} bytes), not the weights: run 'git lfs pull' in the repository "
            "or download the file itself"
        )
    start = head[:256].lstrip().lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--")):
        raise _Broken("an HTML page, not a safetensors file (a failed download? the site may need a login)")
    if size >= 8 and 8 + int.from_bytes(head[:8], "little") <= size:
        return  # the length field is plausible: validated by the caller
    if head.startswith(b"PK\x03\x04") or head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        raise _Broken(
            "a PyTorch pickle/zip file renamed to .safetensors: refused (unpickling can run code)", "refused"
        )
    if start.startswith((b"{", b"[")):
        raise _Broken("a JSON text file, not a safetensors file (no 8-byte header length)")
    if size < 8:
        raise _Broken(f"truncated: {size} bytes, shorter than the 8-byte header length of a safetensors file")


def read_safetensors_header(
    path: str | os.PathLike[str], size: int | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Read and validate a safetensors header without touching tensor data.

    Returns ``(header_length, tensors, metadata)`` where ``tensors`` maps a name to its
    ``{"dtype", "shape", "data_offsets"}``. Checks the 16 MB cap, JSON validity, string-only
    metadata, dtype/shape/byte-range agreement and that the offsets tile the data section exactly.
    Raises :class:`LibraryError` with the reason otherwise.
    """
    try:
        return _read_header(os.fspath(path), os.path.getsize(path) if size is None else size)[:3]
    except _Broken as exc:
        raise LibraryError(f"{os.fspath(path)}: {exc.reason}") from None


def _read_exact(fd: int, count: int) -> bytes:
    """Up to ``count`` bytes from ``fd`` (fewer only at end of file). os.read skips the buffered
    file object, which matters when a cold scan opens thousands of files."""
    chunks = []
    while count > 0:
        chunk = os.read(fd, min(count, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _read_header(path: str, size: int) -> tuple[int, dict[str, Any], dict[str, str], bytes]:
    """(header length, tensors, metadata, first bytes read) or raise :class:`_Broken`."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        head = _read_exact(fd, min(size, _FIRST_READ)) if size else b""
        _sniff(head, size)
        length = int.from_bytes(head[:8], "little")
        if length < 2:
            raise _Broken(f"header length is {length}: not a safetensors file")
        if length > HEADER_CAP:
            raise _Broken(
                f"header length {length:,} bytes is over the {HEADER_CAP // (1024 * 1024)} MB cap "
                "(a corrupt file, or not a safetensors file)"
            )
        if 8 + length > size:
            raise _Broken(
                f"truncated: the header needs {length:,} bytes but only {size - 8:,} follow the length field"
            )
        raw = head[8 : 8 + length]
        if len(raw) < length:
            raw += _read_exact(fd, length - len(raw))
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Broken(f"header is not UTF-8 text (bad byte at {exc.start}): not a safetensors file") from None
    try:
        header = json.loads(text)
    except ValueError as exc:
        raise _Broken(
            f"header is not valid JSON ({getattr(exc, 'msg', exc)} at byte {getattr(exc, 'pos', '?')})"
        ) from None
    if not isinstance(header, dict):
        raise _Broken(f"header JSON is a {type(header).__name__}, not an object of tensors")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise _Broken(f"__metadata__ is a {type(metadata).__name__}, not an object of strings")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise _Broken(
                f"metadata value for '{key}' is {type(value).__name__ if value is not None else 'null'}, "
                "not a string (safetensors metadata holds strings only)"
            )
    _check_offsets(header, size - 8 - length)
    return length, header, metadata, head


def _check_offsets(tensors: Mapping[str, Any], data_size: int) -> None:
    """Every tensor's bytes match its dtype×shape, and the byte ranges tile the data exactly."""
    spans: list[tuple[int, int, str]] = []
    append = spans.append
    sizes = _DTYPE_SIZES
    prod = math.prod
    for name, entry in tensors.items():
        try:
            dtype, shape = entry["dtype"], entry["shape"]
            start, end = entry["data_offsets"]
            itemsize = sizes[dtype]
            count = prod(shape)
        except (TypeError, KeyError, ValueError):
            _explain_bad_tensor(name, entry)
        if (
            type(start) is not int
            or type(end) is not int
            or not 0 <= start <= end
            or type(shape) is not list
            or type(count) is not int
            or (shape and min(shape) < 0)
        ):
            _explain_bad_tensor(name, entry)
        needed = count * itemsize
        if needed != end - start and math.ceil(needed) != end - start:
            raise _Broken(
                f"tensor '{name}' spans {end - start} bytes but its shape {shape} {dtype} "
                f"needs {math.ceil(needed)}: offsets and shapes disagree"
            )
        append((start, end, name))
    spans.sort()
    position = 0
    for start, end, name in spans:
        if start != position:
            if start < position:
                raise _Broken(f"tensor '{name}' overlaps another tensor's data offsets at byte {start}")
            raise _Broken(f"data offsets leave a gap of {start - position} bytes before tensor '{name}'")
        position = end
    if position > data_size:
        raise _Broken(
            f"truncated: the tensors need {position:,} data bytes but the file has {data_size:,} "
            "(offsets point beyond the end of the file)"
        )
    if position < data_size:
        raise _Broken(
            f"{data_size - position:,} bytes after the last tensor: the offsets do not cover the file"
        )


def _explain_bad_tensor(name: str, entry: Any) -> NoReturn:
    """Raise the specific reason a tensor description is invalid (the slow path)."""
    if not isinstance(entry, dict):
        raise _Broken(f"tensor '{name}' is described by a {type(entry).__name__}, not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _DTYPE_SIZES:
        raise _Broken(f"tensor '{name}' has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise _Broken(f"tensor '{name}' has an invalid shape {shape!r}")
    raise _Broken(f"tensor '{name}' has invalid data_offsets {offsets!r}")
