"""Images users send: init images for img2img and PNGs to read parameters from — read safely.

Every image goes through :func:`open_image` (bytes in; a lazily opened Pillow image out), which
refuses before decoding anything: more than :data:`assistant.limits.IMAGE_BYTES` of file, a
format outside :data:`FORMATS` (no EPS/PostScript: Pillow would run Ghostscript), a header that
promises more than :data:`assistant.limits.IMAGE_PIXELS` pixels (a decompression bomb) or a side
over :data:`assistant.limits.IMAGE_SIDE`. :func:`to_rgb` then decodes it the way A1111's img2img
does and says what it did: the first frame of an animation, the EXIF orientation applied
(``ImageOps.exif_transpose``), 16-bit samples reduced to 8 bits (not clipped to white),
transparency flattened on white (A1111's ``img2img_background_color``), CMYK/YCbCr/palette to RGB.

:func:`read_infotext` is A1111's ``read_info_from_image``: the PNG ``parameters`` text chunk, a
JPEG/WebP EXIF ``UserComment`` or a GIF comment, plus the other info items A1111 returns.
:func:`resize_image` is A1111's ``images.resize_image`` (resize modes 0-2; mode 3 resizes latents,
in the engine). :func:`decode_base64` reads an A1111 API image (``data:`` prefix allowed), bounded
before it is decoded.

Pillow and numpy only: no torch, no gradio. Every failure is an :class:`~assistant.errors.ImageError`
whose message names the image.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import limits
from .errors import ImageError, ImageTooLarge
from .types import InitImage

__all__ = [
    "FORMATS",
    "ReadImage",
    "decode_base64",
    "init_image",
    "open_image",
    "read_file",
    "read_image",
    "read_infotext",
    "resize_image",
    "to_rgb",
]

#: Formats LoRA Mixer decodes (Pillow's names). Others — PostScript/EPS above all, which Pillow
#: hands to Ghostscript — are refused before any decoder runs.
FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_FORMAT_NAMES = "PNG, JPEG, WebP, GIF, BMP or TIFF"
#: A1111's default ``img2img_background_color``: what transparent pixels become.
BACKGROUND = (255, 255, 255)
#: Pixels are kept up to this side; a larger image is downscaled when read (no render is larger
#: than :data:`assistant.limits.SIZE`, so nothing is lost, and memory stays bounded).
WORKING_SIDE = 2 * limits.SIZE[1]
#: A1111's info keys ``read_info_from_image`` leaves out of ``items``.
_IGNORED_INFO_KEYS = frozenset(
    {
        "jfif",
        "jfif_version",
        "jfif_unit",
        "jfif_density",
        "dpi",
        "exif",
        "loop",
        "background",
        "timestamp",
        "duration",
        "progressive",
        "progression",
        "icc_profile",
        "chromaticity",
        "photoshop",
    }
)
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _limit_mib() -> str:
    return f"{limits.IMAGE_BYTES // (1024 * 1024)} MiB"


def read_file(path: str | os.PathLike[str], *, what: str = "image") -> bytes:
    """A file's bytes, refused before reading when it is over :data:`assistant.limits.IMAGE_BYTES`."""
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise ImageError(f"{what} '{file.name}' cannot be read: {exc.strerror or exc}") from None
    if size > limits.IMAGE_BYTES:
        raise ImageTooLarge(f"{what} '{file.name}' is {_mib(size)}; the limit is {_limit_mib()}")
    try:
        return file.read_bytes()
    except OSError as exc:
        raise ImageError(f"{what} '{file.name}' cannot be read: {exc.strerror or exc}") from None


def decode_base64(text: str, *, what: str = "image") -> bytes:
    """The bytes of an A1111 API image: base64, optionally as a ``data:image/…;base64,`` URL.

    The length is checked before anything is decoded; URLs are not fetched (A1111 fetches them
    only with ``api_enable_requests``, and a server that fetches what a client names is an SSRF).
    """
    if not isinstance(text, str):
        raise ImageError(f"{what} must be a base64 string, not {type(text).__name__}")
    if len(text) > limits.API_BODY_BYTES:
        raise ImageTooLarge(f"{what} is {_mib(len(text))} of base64; an image file may be {_limit_mib()}")
    head = text[:64].lstrip().lower()
    if head.startswith(("http://", "https://")):
        raise ImageError(
            f"{what} is a URL; LoRA Mixer fetches no URLs — send the image itself, base64-encoded"
        )
    data = text.strip()
    if data.startswith("data:"):
        meta, comma, payload = data.partition(",")
        if not comma or ";base64" not in meta:
            raise ImageError(f"{what} is a data URL without base64 data (expected 'data:image/png;base64,…')")
        data = payload
    data = "".join(data.split())
    if not data:
        raise ImageError(f"{what} is empty; send a base64-encoded PNG or JPEG")
    if len(data) * 3 // 4 > limits.IMAGE_BYTES + 3:
        raise ImageTooLarge(
            f"{what} decodes to about {_mib(len(data) * 3 // 4)}; the limit is {_limit_mib()}"
        )
    data += "=" * (-len(data) % 4)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        try:  # the URL-safe alphabet ("-" and "_"), which some clients use
            return base64.b64decode(data, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise ImageError(f"{what} is not valid base64") from None


def open_image(data: bytes, *, what: str = "image") -> Any:
    """A lazily opened Pillow image, checked before decoding (size, format, pixel count)."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > limits.IMAGE_BYTES:
        raise ImageTooLarge(f"{what} is {_mib(len(data))}; the limit is {_limit_mib()}")
    if not data:
        raise ImageError(f"{what} is empty (0 bytes); send a {_FORMAT_NAMES} file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{what} is a decompression bomb ({exc}); nothing was decoded") from None
    except UnidentifiedImageError:
        raise ImageError(f"{what} is not an image LoRA Mixer can read; send a {_FORMAT_NAMES} file") from None
    except (OSError, ValueError, SyntaxError) as exc:  # a header that lies
        raise ImageError(f"{what} is damaged: its header cannot be read ({_short(exc)})") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{what} has no pixels ({width}x{height})")
    if width > limits.IMAGE_SIDE or height > limits.IMAGE_SIDE or width * height > limits.IMAGE_PIXELS:
        raise ImageTooLarge(
            f"{what} is {width}x{height} pixels; the limit is {limits.IMAGE_PIXELS:,} pixels and "
            f"{limits.IMAGE_SIDE:,} a side (checked before decoding: nothing was decoded)"
        )
    return image


def _short(exc: BaseException, limit: int = 160) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True)
class ReadImage:
    """A decoded RGB image, what was done to read it, and its A1111 parameters (if any)."""

    image: Any  # PIL.Image.Image, mode RGB
    notes: tuple[str, ...]
    infotext: str | None
    items: dict[str, Any]
    format: str
    original_size: tuple[int, int]


def to_rgb(image: Any, *, what: str = "image") -> tuple[Any, list[str]]:
    """Decode an :func:`open_image` image as A1111's img2img reads it: the first frame, EXIF
    orientation applied, 8-bit RGB with transparency on white. Returns (image, notes)."""
    from PIL import Image, ImageOps

    notes: list[str] = []
    frames = int(getattr(image, "n_frames", 1) or 1)
    if frames > 1:
        image.seek(0)
        notes.append(f"{what} is animated ({frames} frames): its first frame is used")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{what} is a decompression bomb ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = _short(exc)
        if "truncated" in reason or isinstance(exc, EOFError):
            raise ImageError(f"{what} is truncated (the file ends before its pixels do): {reason}") from None
        raise ImageError(
            f"{what} cannot be decoded ({reason}); it is damaged or not really a {image.format}"
        ) from None
    orientation = _orientation(image)
    if orientation not in (None, 1):
        try:
            image = ImageOps.exif_transpose(image)
        except Exception as exc:  # a broken EXIF block: keep the stored orientation
            notes.append(f"{what}'s EXIF orientation {orientation} could not be applied ({_short(exc)})")
        else:
            notes.append(f"{what} was turned upright as its EXIF orientation ({orientation}) says")
    image, note = _eight_bit_rgb(image, what)
    if note:
        notes.append(note)
    if max(image.size) > WORKING_SIDE:
        scale = WORKING_SIDE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        notes.append(
            f"{what} was read at {size[0]}x{size[1]} (from {image.width}x{image.height}; renders are at most "
            f"{limits.SIZE[1]} a side)"
        )
        image = image.resize(size, resample=Image.Resampling.LANCZOS)
    return image, notes


def _orientation(image: Any) -> int | None:
    try:
        value = image.getexif().get(0x0112)
    except Exception:
        return None
    return value if isinstance(value, int) else None


def _eight_bit_rgb(image: Any, what: str) -> tuple[Any, str]:
    """8-bit RGB: 16-bit and float samples scaled (Pillow's own conversion clips them to white),
    alpha flattened on :data:`BACKGROUND`, other colour modes converted."""
    import numpy as np
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image, ""
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image)
        wide = mode.startswith("I;16") or int(values.max(initial=0)) > 255
        scaled = np.clip(np.round(values / 257.0) if wide else values, 0, 255).astype("uint8")
        note = f"{what} has 16-bit samples: reduced to 8 bits" if wide else ""
        return Image.fromarray(scaled, "L").convert("RGB"), note
    if mode == "F":
        values = np.asarray(image, dtype="float64")
        top = 1.0 if float(np.nanmax(values, initial=0.0)) <= 1.0 else 255.0
        scaled = np.nan_to_num(np.clip(values / top * 255.0, 0, 255)).round().astype("uint8")
        return Image.fromarray(scaled, "L").convert(
            "RGB"
        ), f"{what} has floating-point samples: scaled to 8 bits"
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        alpha_min = rgba.getchannel("A").getextrema()[0]
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        background.alpha_composite(rgba)
        note = (
            f"{what}'s transparent parts were filled with white (A1111's img2img background)"
            if alpha_min < 255
            else ""
        )
        return background.convert("RGB"), note
    try:
        converted = image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(
            f"{what} is in colour mode {mode}, which cannot be converted to RGB ({_short(exc)})"
        ) from None
    note = f"{what} is {mode}: converted to RGB" if mode in ("CMYK", "YCbCr", "LAB", "HSV") else ""
    return converted, note


def read_infotext(image: Any) -> tuple[str | None, dict[str, Any]]:
    """A1111's ``read_info_from_image``: the generation parameters (PNG ``parameters`` chunk,
    JPEG/WebP EXIF ``UserComment``, GIF ``comment``) and the image's other info items (JSON-ready).
    A text over :data:`assistant.limits.INFOTEXT_CHARS` is not parameters A1111 or LoRA Mixer wrote:
    None."""
    items: dict[str, Any] = dict(getattr(image, "info", None) or {})
    try:  # PNG text chunks after the pixels too (Pillow loads the image for them)
        text = getattr(image, "text", None)
    except (OSError, ValueError, SyntaxError, EOFError):
        text = None
    if isinstance(text, dict):
        for key, value in text.items():
            items.setdefault(key, value)
    geninfo = items.pop("parameters", None)
    if "exif" in items:
        comment = _exif_comment(image)
        if comment:
            geninfo = comment
    elif "comment" in items:
        comment = items["comment"]
        geninfo = comment.decode("utf-8", errors="replace") if isinstance(comment, bytes) else comment
    for key in _IGNORED_INFO_KEYS:
        items.pop(key, None)
    clean = {str(k): _jsonable(v) for k, v in items.items()}
    if not isinstance(geninfo, str) or not geninfo.strip() or len(geninfo) > limits.INFOTEXT_CHARS:
        return None, clean
    return geninfo, clean


def _exif_comment(image: Any) -> str:
    """EXIF ``UserComment`` as piexif's ``UserComment.load`` reads it (8-byte charset prefix)."""
    try:
        raw = image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    except Exception:
        return ""
    if isinstance(raw, str):
        return raw.strip("\x00")
    if not isinstance(raw, bytes):
        return ""
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\x00":
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return body.decode("utf-16", errors="replace").strip("\x00")
        return body.decode("utf-16-be", errors="replace").strip("\x00")
    if prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        return body.decode("utf-8", errors="replace").strip("\x00")
    return raw.decode("utf-8", errors="ignore").strip("\x00")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")[:2000]
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return str(value)[:2000]


def read_image(data: bytes, *, what: str = "image") -> ReadImage:
    """Open, check and decode ``data``; the parameters come from the file as it was sent."""
    image = open_image(data, what=what)
    original = image.size
    file_format = str(image.format or "")
    rgb, notes = to_rgb(image, what=what)
    infotext, items = read_infotext(image)
    return ReadImage(rgb, tuple(notes), infotext, items, file_format, original)


def init_image(data: bytes, *, name: str = "", what: str | None = None) -> InitImage:
    """An :class:`~assistant.types.InitImage` from a file's bytes (checked and decoded)."""
    label = what or (f"init image '{name}'" if name else "init image")
    read = read_image(data, what=label)
    return from_pil(read.image, name=name, notes=read.notes)


def from_pil(image: Any, *, name: str = "", notes: tuple[str, ...] = ()) -> InitImage:
    """An :class:`~assistant.types.InitImage` of an RGB Pillow image (``to_rgb`` first for others)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    pixels = rgb.tobytes()
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode() + pixels).hexdigest()
    return InitImage(
        rgb=pixels, width=rgb.width, height=rgb.height, digest=digest, name=name, notes=tuple(notes)
    )


# -- A1111's resize modes -----------------------------------------------------------------------


def resize_image(mode: int, image: Any, width: int, height: int) -> Any:
    """A1111's ``images.resize_image`` with no upscaler model (``upscaler_for_img2img`` None):

    0 "Just resize": stretched to width x height (Lanczos);
    1 "Crop and resize": scaled to cover, centred, the overflow cut off;
    2 "Resize and fill": scaled to fit, centred, the empty bands filled by stretching the
    image's edge rows/columns.
    """
    from PIL import Image

    lanczos = Image.Resampling.LANCZOS

    def resize(im: Any, w: int, h: int) -> Any:
        return im.resize((w, h), resample=lanczos)

    if mode == 0:
        return resize(image, width, height)
    ratio = width / height
    src_ratio = image.width / image.height
    if mode == 1:
        src_w = width if ratio > src_ratio else image.width * height // image.height
        src_h = height if ratio <= src_ratio else image.height * width // image.width
        resized = resize(image, src_w, src_h)
        result = Image.new("RGB", (width, height))
        result.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        return result
    if mode != 2:
        raise ImageError(f"resize mode {mode} is not 0, 1 or 2 here (3, latent upscale, is done on latents)")
    src_w = width if ratio < src_ratio else image.width * height // image.height
    src_h = height if ratio >= src_ratio else image.height * width // image.width
    resized = resize(image, src_w, src_h)
    result = Image.new("RGB", (width, height))
    result.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if ratio < src_ratio:
        fill_height = height // 2 - src_h // 2
        if fill_height > 0:
            result.paste(resized.resize((width, fill_height), box=(0, 0, width, 0)), box=(0, 0))
            result.paste(
                resized.resize((width, fill_height), box=(0, resized.height, width, resized.height)),
                box=(0, fill_height + src_h),
            )
    elif ratio > src_ratio:
        fill_width = width // 2 - src_w // 2
        if fill_width > 0:
            result.paste(resized.resize((fill_width, height), box=(0, 0, 0, height)), box=(0, 0))
            result.paste(
                resized.resize((fill_width, height), box=(resized.width, 0, resized.width, height)),
                box=(fill_width + src_w, 0),
            )
    return result


def latent_source_size(width: int, height: int) -> tuple[int, int]:
    """Resize mode 3 encodes the image at its own size (then resizes the latents): that size in
    whole latents (multiples of 8), at most :data:`assistant.limits.SIZE` a side and
    :data:`assistant.limits.PIXELS_PER_ACTION` / 4 pixels, aspect kept."""
    low, high = limits.SIZE
    scale = min(1.0, high / width, high / height, (limits.PIXELS_PER_ACTION / 4 / (width * height)) ** 0.5)
    return (
        max(low, int(width * scale) // limits.SIZE_MULTIPLE * limits.SIZE_MULTIPLE),
        max(low, int(height * scale) // limits.SIZE_MULTIPLE * limits.SIZE_MULTIPLE),
    )
