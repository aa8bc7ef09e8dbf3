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
