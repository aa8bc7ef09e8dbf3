"""Cheap image measurements that say what a model or a LoRA did. Pure numpy (+ Pillow to read).

Used by the tests that check meaning (a red circle is red; a style grows with its weight; the
brightness adjuster at -1 darkens) and by ``tools/make_demo_loras.py`` for the catalog figures.
Every function takes RGB images (PIL or ``uint8`` HxWx3 arrays) and returns plain floats in 0..1
unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def as_array(image: Any) -> np.ndarray:
    """float32 HxWx3 in 0..1."""
    array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.float32)
    return array / 255.0 if array.max() > 1.0 else array


def channel_means(image: Any) -> tuple[float, float, float]:
    """Mean red, green and blue."""
    r, g, b = as_array(image).reshape(-1, 3).mean(axis=0)
    return float(r), float(g), float(b)


def redness(image: Any) -> float:
    """Red minus the mean of green and blue (-1..1): how much redder than it is green/blue."""
    r, g, b = channel_means(image)
    return r - (g + b) / 2


def blueness(image: Any) -> float:
    r, g, b = channel_means(image)
    return b - (r + g) / 2


def luma(image: Any) -> np.ndarray:
    a = as_array(image)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def brightness(image: Any) -> float:
    """Mean luma (Rec. 601)."""
    return float(luma(image).mean())


def saturation(image: Any) -> float:
    """Mean HSV saturation."""
    a = as_array(image)
    high, low = a.max(axis=2), a.min(axis=2)
    return float(np.where(high > 1e-6, (high - low) / np.maximum(high, 1e-6), 0.0).mean())


def monochrome(image: Any) -> float:
    """1 - mean chroma (max - min of the channels): 1 for a grey image, lower the more colourful."""
    a = as_array(image)
    return float(1.0 - (a.max(axis=2) - a.min(axis=2)).mean())


def darkness(image: Any, threshold: float = 0.2) -> float:
    """Share of pixels darker than ``threshold`` (a night-sky background scores high)."""
    return float((luma(image) < threshold).mean())


def detail(image: Any) -> float:
    """High-frequency energy: mean absolute Laplacian of the luma (×4, so sharp images reach ~0.1+)."""
    y = luma(image)
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(np.abs(lap).mean())


def coarse_detail(image: Any, size: int = 32) -> float:
    """:func:`detail` of the image shrunk to ``size`` px: outlines and hatching a tiny model can
    draw, without the pixel-level sharpness its VAE cannot (the demo ``add_detail`` LoRA)."""
    from PIL import Image

    pil = image if hasattr(image, "resize") else Image.fromarray((as_array(image) * 255).astype(np.uint8))
    return detail(pil.convert("RGB").resize((size, size), Image.Resampling.BOX))


def nearest_distance(images: Iterable[Any], references: Sequence[Any], size: int = 32) -> float:
    """Mean over ``images`` of the RMS distance to the closest reference image, both shrunk to
    ``size`` px: how much the images look like a training set (lower = more alike)."""
    from PIL import Image

    def small(image: Any) -> np.ndarray:
        pil = image if hasattr(image, "resize") else Image.fromarray((as_array(image) * 255).astype(np.uint8))
        return as_array(pil.convert("RGB").resize((size, size), Image.Resampling.BOX)).reshape(-1)

    refs = np.stack([small(r) for r in references])
    out = [float(np.sqrt(((refs - small(im)) ** 2).mean(axis=1)).min()) for im in images]
    return float(np.mean(out))


def mean_of(metric: Any, images: Iterable[Any]) -> float:
    values = [metric(image) for image in images]
    return float(np.mean(values)) if values else float("nan")


def is_monotone(values: Sequence[float], *, increasing: bool = True, tolerance: float = 0.0) -> bool:
    """True when each value moves the given way from the previous one (by more than ``tolerance``)."""
    steps = np.diff(np.asarray(values, dtype=np.float64))
    return bool(np.all(steps > tolerance)) if increasing else bool(np.all(steps < -tolerance))


# ----------------------------------------------------------------------------------------------
# Shapes and textures: what the foreground shape is, measured without a classifier
# ----------------------------------------------------------------------------------------------

#: Harmonic of the radial signature each polygon shows (a triangle's outline bulges 3 times a turn).
SHAPE_HARMONICS: dict[str, int] = {"triangle": 3, "square": 4, "star": 5}
#: Below this amplitude (relative to the mean radius) an outline counts as round.
ROUND_BELOW = 0.045


def background_colour(image: Any, ring: int = 3) -> np.ndarray:
    """The median colour of the image's outer ``ring`` pixels (the background, for a centred subject)."""
    a = as_array(image)
    edges = (a[:ring], a[-ring:], a[:, :ring], a[:, -ring:])
    border = np.concatenate([edge.reshape(-1, 3) for edge in edges])
    return np.median(border, axis=0)


def foreground_mask(image: Any, threshold: float | None = None) -> np.ndarray:
    """The subject as a boolean mask: pixels far (RGB distance) from the background colour, the
    largest connected piece, holes filled (a striped shape is one piece). ``threshold`` defaults to
    Otsu's split of the distances (at least 0.12, so flat noise is not a subject)."""
    from scipy import ndimage

    a = as_array(image)
    distance = np.sqrt(((a - background_colour(image)) ** 2).sum(axis=2))
    if threshold is None:
        threshold = max(0.12, _otsu(distance))
    mask = distance > threshold
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = ndimage.sum(mask, labels, index=range(1, count + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(largest)


def _otsu(values: np.ndarray, bins: int = 64) -> float:
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    total = weight[-1]
    mean = np.cumsum(hist * centres)
    between = (mean[-1] * weight / total - mean) ** 2 / np.maximum(weight * (total - weight), 1)
    return float(centres[int(np.argmax(between[:-1]))])


def radial_signature(mask: np.ndarray, bins: int = 90) -> np.ndarray:
    """The outline's distance from the mask's centroid at ``bins`` angles, divided by its mean
    (a circle is flat at 1; empty bins are filled from their neighbours)."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 12:
        return np.ones(bins)
    cy, cx = ys.mean(), xs.mean()
    dy, dx = ys - cy, xs - cx
    angle = ((np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * bins).astype(int) % bins
    radius = np.hypot(dx, dy) + 0.5
    outline = np.zeros(bins)
    np.maximum.at(outline, angle, radius)
    filled = outline > 0
    if not filled.all():
        index = np.arange(bins)
        outline = np.interp(index, index[filled], outline[filled], period=bins)
    return outline / outline.mean()


def shape_harmonics(image: Any) -> dict[int, float]:
    """Amplitudes of harmonics 1–8 of the subject's radial signature (relative to its mean radius)."""
    signature = radial_signature(foreground_mask(image))
    spectrum = np.abs(np.fft.rfft(signature - signature.mean())) * 2 / len(signature)
    return {k: float(spectrum[k]) for k in range(1, 9)}


def shape_of(image: Any) -> str:
    """circle, triangle, square or star: the strongest of harmonics 3/4/5 of the outline, or
    ``circle`` when none reaches :data:`ROUND_BELOW`."""
    harmonics = shape_harmonics(image)
    name, k = max(SHAPE_HARMONICS.items(), key=lambda item: harmonics[item[1]])
    return name if harmonics[k] >= ROUND_BELOW else "circle"


def texture_contrast(image: Any, erode: int = 3) -> float:
    """Luma standard deviation inside the subject (its edge eroded away): ~0 for a plain shape,
    high for a striped or dotted one."""
    from scipy import ndimage

    mask = ndimage.binary_erosion(foreground_mask(image), iterations=erode)
    if mask.sum() < 16:
        return 0.0
    return float(luma(image)[mask].std())


# ----------------------------------------------------------------------------------------------
# The demo character and clothing: ears on top, a navy collar
# ----------------------------------------------------------------------------------------------


def ear_score(image: Any, spread: float = 35.0, window: float = 10.0) -> float:
    """Pointed ears on top of the subject: the outline's radius at ``spread`` degrees either side
    of straight up minus its radius at the same angles either side of straight down (relative to
    the mean radius). ~0 for a circle or a square (symmetric top and bottom), negative for a
    triangle or a star (a point at the top, points below), ~+0.18 for the demo mascot drawn at 64 px."""
    signature = radial_signature(foreground_mask(image), bins=90)
    angles = np.arange(90) * 4.0 - 180.0 + 2.0  # bin centres, image coordinates (y down): up = -90

    def around(centre: float) -> float:
        offset = (angles - centre + 180.0) % 360.0 - 180.0
        return float(signature[np.abs(offset) <= window].mean())

    top = (around(-90.0 - spread) + around(-90.0 + spread)) / 2
    bottom = (around(90.0 - spread) + around(90.0 + spread)) / 2
    return top - bottom


def navy_share(image: Any) -> float:
    """Share of navy pixels (luma < 0.25, blue above red and green by 0.08–0.4; a bright blue is
    not navy): the sailor collar of the demo clothing LoRA."""
    a = as_array(image)
    excess = a[..., 2] - np.maximum(a[..., 0], a[..., 1])
    dark_blue = (luma(a) < 0.25) & (excess > 0.08) & (excess < 0.4)
    return float(dark_blue.mean())
