"""Hostile and awkward image files, built in memory (nothing is downloaded, nothing big is stored).

Each :class:`ImageCase` is one file a user could send as an init image or to PNG Info, with what
must happen: ``error`` (a regex the message must match; nothing decoded past the check) or
``ok`` (decoded, with ``check`` run on the RGB result and ``note`` a regex one of the reading notes
must match). Builders are small: the decompression bombs are PNG/GIF/TIFF *headers* that promise
billions of pixels over a few bytes of data, which is exactly what the size check must stop.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

INFOTEXT = (
    "1girl, cat ears, <lora:catgirl_v1:0.7>\nNegative prompt: lowres\n"
    "Steps: 7, Sampler: Euler a, CFG scale: 6.5, Seed: 4242, Size: 128x96, Version: v1.10.1"
)


def _png(image: Image.Image, text: str | None = None) -> bytes:
    info = None
    if text is not None:
        info = PngInfo()
        info.add_text("parameters", text)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _raw_png(width: int, height: int, depth: int, color: int, rows: bytes, extra: bytes = b"") -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + extra
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def photo(width: int = 48, height: int = 32) -> Image.Image:
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([255 * xx / (width - 1), 255 * yy / (height - 1), np.full_like(xx, 90.0)], axis=-1)
    return Image.fromarray(pixels.astype("uint8"))


def bomb_png(width: int, height: int) -> bytes:
    """A PNG header promising width x height pixels; the data is one row of zeros (never read)."""
    return _raw_png(width, height, 8, 2, b"\x00" * (1 + 3 * min(width, 64)))


def bomb_gif(width: int, height: int) -> bytes:
    image = Image.new("P", (4, 4))
    buffer = io.BytesIO()
    image.save(buffer, "GIF")
    data = bytearray(buffer.getvalue())
    data[6:10] = struct.pack("<HH", width, height)  # the logical screen size
    return bytes(data)


def png16_gray() -> bytes:
    """16-bit grayscale at 0x8080 (= 128 in 8 bits): Pillow's plain convert() clips it to 255."""
    return _png(Image.fromarray(np.full((8, 8), 0x8080, dtype=np.uint16), "I;16"))


def png16_rgb() -> bytes:
    row = b"\x00" + struct.pack(">HHH", 0xFFFF, 0x8000, 0x0000) * 4
    return _raw_png(4, 4, 16, 2, row * 4)


def cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(buffer, "JPEG", quality=95)  # red
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """A 40x20 JPEG whose EXIF says 'rotate 90° clockwise' (Orientation 6): upright it is 20x40,
    red on top."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # the left half: after the turn, the top
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def jpeg_with_usercomment() -> bytes:
    """A1111's JPEG: the infotext in EXIF UserComment, as piexif writes it (UNICODE, UTF-16 BE)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + INFOTEXT.encode("utf-16-be")
    buffer = io.BytesIO()
    photo().save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (16, 16), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def palette_transparent() -> bytes:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(0, (0, 0, 4, 8))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)  # index 0 (black) is transparent -> white
    return buffer.getvalue()


def rgba_clear() -> bytes:
    return _png(Image.new("RGBA", (8, 8), (10, 20, 30, 0)))


def la_png() -> bytes:
    return _png(Image.new("LA", (8, 8), (100, 255)))


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def ztxt_bomb() -> bytes:
    """A compressed text chunk inflating past Pillow's MAX_TEXT_CHUNK (1 MiB): a text bomb."""
    text = zlib.compress(b"a" * (4 * 1024 * 1024), 9)
    chunk = _chunk(b"zTXt", b"parameters\x00\x00" + text)
    return _raw_png(4, 4, 8, 2, (b"\x00" + b"\x00" * 12) * 4, extra=chunk)


def long_infotext() -> bytes:
    return _png(photo(), text="x, " * 40_000)


def big_photo_png() -> bytes:
    return _png(Image.new("RGB", (5000, 100), (30, 60, 90)))


@dataclass(frozen=True)
class ImageCase:
    id: str
    build: Callable[[], bytes]
    error: str | None = None  # regex of the message; None: it must be read
    note: str | None = None  # regex one reading note must match
    check: Callable[[Image.Image], bool] | None = None


def _pixel(x: int, y: int, rgb: tuple[int, int, int], tolerance: int = 12) -> Callable[[Image.Image], bool]:
    def check(image: Image.Image) -> bool:
        got = image.getpixel((x, y))
        return all(abs(a - b) <= tolerance for a, b in zip(got, rgb, strict=True))

    return check


CASES: tuple[ImageCase, ...] = (
    ImageCase("not-an-image", lambda: b"this is plain text, not a picture\n", error="not an image"),
    ImageCase("html", lambda: b"<!doctype html><html><body>hi</body></html>", error="not an image"),
    ImageCase("empty", lambda: b"", error="empty"),
    ImageCase(
        "svg",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        error="not an image",
    ),
    ImageCase(
        "eps-postscript",
        lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        error="not an image",
    ),
    ImageCase("truncated-png", lambda: truncated(_png(photo(64, 64))), error="truncated|damaged|decoded"),
    ImageCase("truncated-jpeg", lambda: truncated(cmyk_jpeg()), error="truncated|damaged|decoded"),
    ImageCase("bomb-png-over-our-limit", lambda: bomb_png(9000, 9000), error="81,000,000|limit is"),
    ImageCase("bomb-png-over-pillow-limit", lambda: bomb_png(20000, 20000), error="decompression bomb|limit"),
    ImageCase("bomb-gif", lambda: bomb_gif(65535, 65535), error="decompression bomb|limit"),
    ImageCase("side-too-long", lambda: bomb_png(20000, 2), error="a side|limit"),
    ImageCase("ztxt-text-bomb", ztxt_bomb, error="damaged|Decompressed|too large"),
    ImageCase("animated-gif", lambda: animated("GIF"), note="first frame", check=_pixel(8, 8, (255, 0, 0))),
    ImageCase(
        "animated-webp", lambda: animated("WEBP"), note="first frame", check=_pixel(8, 8, (255, 0, 0), 24)
    ),
    ImageCase("png-16-bit-gray", png16_gray, note="16-bit", check=_pixel(2, 2, (128, 128, 128), 1)),
    ImageCase("png-16-bit-rgb", png16_rgb, check=_pixel(1, 1, (255, 128, 0), 1)),
    ImageCase("cmyk-jpeg", cmyk_jpeg, note="CMYK", check=_pixel(8, 8, (255, 0, 0), 24)),
    ImageCase(
        "exif-rotated-jpeg",
        exif_rotated_jpeg,
        note="EXIF orientation",
        check=lambda im: im.size == (20, 40) and _pixel(10, 5, (255, 0, 0), 40)(im),
    ),
    ImageCase(
        "palette-transparency", palette_transparent, note="white", check=_pixel(1, 1, (255, 255, 255), 0)
    ),
    ImageCase("rgba-transparent", rgba_clear, note="white", check=_pixel(3, 3, (255, 255, 255), 0)),
    ImageCase("la-png", la_png, check=_pixel(3, 3, (100, 100, 100), 0)),
    ImageCase("wide-photo", big_photo_png, check=lambda im: im.size == (4096, 82)),
)

BY_ID = {case.id: case for case in CASES}
