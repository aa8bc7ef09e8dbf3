"""What a grid shows, measured: the A/B difference map and a weight sweep's effect curve.

Pure (Pillow and numpy; no torch). Both read the rendered cells of a
:class:`~assistant.blend.Plan`:

- :func:`ab_difference` — per-pixel |A − B| of the A and B cells (A and "none" when there is no
  B), colour-mapped (black: same, purple → orange → yellow: more change), with a score: the mean
  change in percent of full scale, and the share of pixels that changed by more than 10 %.
- :func:`effect_curve` — for a sweep over one LoRA's weight: each cell's change from the same
  seed at weight 0 (mean |cell − weight 0| in percent), and the sweet spot: the weight after
  which more weight adds little change (the marginal change per unit of weight falls below
  :data:`KNEE` of its steepest part). When the sweep has no weight-0 cell, the caller renders one
  (:func:`reference_request`) and passes it in.

The numbers are about pixels, not about taste: a large change can be a broken image. The reply
says so; the grid shows both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from PIL import Image as PILImage

    from .blend import Plan
    from .types import GenerationRequest

__all__ = [
    "KNEE",
    "ABDifference",
    "EffectCurve",
    "ab_difference",
    "change",
    "colour_map",
    "effect_curve",
    "reference_request",
]

#: The sweet spot: where the change per unit of weight drops below this share of its steepest step.
KNEE = 0.35
#: Below this mean change (percent), a LoRA has no visible effect in the swept range.
FLAT = 1.0
#: A pixel "changed" when its mean |difference| over RGB exceeds this share of full scale.
PIXEL_CHANGED = 0.10
#: |difference| (0..255) that maps to the top of the colour map (larger ones saturate).
FULL_SCALE = 128.0

# Anchor colours of the map (an "inferno"-like ramp), from no change to full scale.
_RAMP = (
    (0.0, (0, 0, 4)),
    (0.25, (87, 16, 110)),
    (0.5, (188, 55, 84)),
    (0.75, (249, 142, 9)),
    (1.0, (252, 255, 164)),
)


def _array(image: PILImage.Image) -> Any:
    import numpy as np

    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _same_size(a: PILImage.Image, b: PILImage.Image) -> tuple[PILImage.Image, PILImage.Image]:
    if a.size == b.size:
        return a, b
    return a, b.resize(a.size)


def change(a: PILImage.Image, b: PILImage.Image) -> float:
    """Mean |a − b| over pixels and channels, in percent of full scale (0 = identical)."""
    a, b = _same_size(a, b)
    import numpy as np

    return float(np.abs(_array(a) - _array(b)).mean() / 255.0 * 100.0)


def colour_map(a: PILImage.Image, b: PILImage.Image) -> PILImage.Image:
    """Per-pixel |a − b| (mean over RGB) coloured with the ramp; black where nothing changed."""
    import numpy as np
    from PIL import Image

    a, b = _same_size(a, b)
    diff = np.abs(_array(a) - _array(b)).mean(axis=2)
    level = np.clip(diff / FULL_SCALE, 0.0, 1.0)
    out = np.zeros((*level.shape, 3), dtype=np.float32)
    stops = [s for s, _c in _RAMP]
    colours = np.array([c for _s, c in _RAMP], dtype=np.float32)
    for channel in range(3):
        out[..., channel] = np.interp(level, stops, colours[:, channel])
    return Image.fromarray(out.round().astype(np.uint8), mode="RGB")


@dataclass(frozen=True)
class ABDifference:
    """How much B changes the image against A (same prompt, same seed)."""

    a_label: str
    b_label: str
    changed: float  # mean |A − B|, percent of full scale
    pixels_changed: float  # share of pixels (0..1) with a change above PIXEL_CHANGED
    image: Any = dataclasses.field(repr=False, compare=False, default=None)  # the colour map

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a_label,
            "b": self.b_label,
            "changed_percent": round(self.changed, 2),
            "pixels_changed": round(self.pixels_changed, 4),
            "scale": f"black = same; yellow = |A−B| ≥ {FULL_SCALE:g}/255",
        }

    def describe(self) -> str:
        return (
            f"**How much changed** ({self.a_label} → {self.b_label}): {self.changed:.1f}% mean |A−B|, "
            f"{self.pixels_changed:.0%} of the pixels changed visibly (difference map: black = same, "
            "yellow = most change)."
        )


def ab_difference(plan: Plan, images: Sequence[PILImage.Image]) -> ABDifference | None:
    """The difference map of an A/B plan's A and B cells (A and none without a B); None otherwise."""
    import numpy as np

    if plan.kind != "ab" or len(images) != len(plan.cells):
        return None
    variants = list(plan.meta.get("variants") or [])
    if len(variants) != len(plan.cells) or "a" not in variants:
        return None
    other = "b" if "b" in variants else "none" if "none" in variants else None
    if other is None:
        return None
    i, j = variants.index("a"), variants.index(other)
    a, b = _same_size(images[i], images[j])
    diff = np.abs(_array(a) - _array(b)).mean(axis=2)
    return ABDifference(
        a_label=plan.cells[i].label,
        b_label=plan.cells[j].label,
        changed=float(diff.mean() / 255.0 * 100.0),
        pixels_changed=float((diff > PIXEL_CHANGED * 255).mean()),
        image=colour_map(a, b),
    )


@dataclass(frozen=True)
class EffectCurve:
    """A LoRA's effect against its weight: the change from weight 0, and where it stops growing.

    ``verdict``: "sweet-spot" (the change levels off at ``sweet_spot``), "growing" (still growing
    at the largest weight swept), "flat" (no visible effect in the range).
    """

    lora: str
    weights: tuple[float, ...]
    effect: tuple[float, ...]  # percent, one per weight
    sweet_spot: float | None
    verdict: str
    reference: str  # "cell" (a weight-0 cell of the sweep) or "extra render"

    def to_json(self) -> dict[str, Any]:
        return {
            "lora": self.lora,
            "weights": list(self.weights),
            "effect_percent": [round(e, 2) for e in self.effect],
            "sweet_spot": self.sweet_spot,
            "verdict": self.verdict,
            "reference": self.reference,
            "knee": KNEE,
        }

    def describe(self) -> str:
        from .types import format_weight

        points = ", ".join(
            f"{format_weight(w)} → {e:.1f}%" for w, e in zip(self.weights, self.effect, strict=True)
        )
        head = f"**Effect curve of `{self.lora}`** (change from weight 0, same seed): {points}."
        if self.verdict == "flat":
            return (
                f"{head} No visible effect in this range (under {FLAT:g}%): check the trigger words "
                "and the base model, or sweep higher."
            )
        if self.verdict == "growing":
            return (
                f"{head} The change keeps growing up to {format_weight(self.weights[-1])}: no plateau in "
                "this range (look at the cells: past the sweet spot images usually break)."
            )
        return (
            f"{head} **Sweet spot ≈ {format_weight(self.sweet_spot or 0)}**: past it, more weight adds "
            "little change (and images tend to break)."
        )


def reference_request(plan: Plan) -> GenerationRequest | None:
    """The weight-0 render an effect curve needs when the sweep has no weight-0 cell, else None.

    It is the first cell's request without the swept LoRA (weight 0 renders like no LoRA), the
    same seed and settings.
    """
    axis = _lora_axis(plan)
    if axis is None or any(float(v) == 0 for v in axis.values):
        return None
    first = plan.cells[0].request
    loras = tuple(lora for lora in first.loras if lora.name != axis.target)
    return dataclasses.replace(first, loras=loras, label=f"{axis.target}: 0 (reference)")


def _lora_axis(plan: Plan) -> Any:
    if plan.kind != "sweep" or plan.x_axis is None or plan.x_axis.kind != "lora":
        return None
    return plan.x_axis


def effect_curve(
    plan: Plan, images: Sequence[PILImage.Image], reference: PILImage.Image | None = None
) -> EffectCurve | None:
    """The effect curve of a LoRA-weight sweep (its first row); None for other plans."""
    axis = _lora_axis(plan)
    if axis is None or len(images) != len(plan.cells):
        return None
    row = [(float(axis.values[c.col]), images[i]) for i, c in enumerate(plan.cells) if c.row == 0]
    zero = next((image for weight, image in row if weight == 0), None)
    source = "cell"
    if zero is None:
        if reference is None:
            return None
        zero, source = reference, "extra render"
    points = sorted((w, change(image, zero)) for w, image in row)
    positive = [(w, e) for w, e in points if w >= 0] or [(abs(w), e) for w, e in points]
    positive.sort()
    weights = tuple(w for w, _e in positive)
    effect = tuple(e for _w, e in positive)
    spot, verdict = _sweet_spot(weights, effect)
    return EffectCurve(
        lora=str(axis.target),
        weights=weights,
        effect=effect,
        sweet_spot=spot,
        verdict=verdict,
        reference=source,
    )


def _sweet_spot(weights: Sequence[float], effect: Sequence[float]) -> tuple[float | None, str]:
    """Where the change per unit of weight falls below KNEE of its steepest step."""
    if not effect or max(effect) < FLAT:
        return None, "flat"
    xs = [0.0, *weights] if weights[0] > 0 else list(weights)
    ys = [0.0, *effect] if weights[0] > 0 else list(effect)
    slopes = [
        (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1]) if xs[i] > xs[i - 1] else 0.0 for i in range(1, len(xs))
    ]
    steepest = max(range(len(slopes)), key=lambda i: slopes[i])
    for i in range(steepest + 1, len(slopes)):
        if slopes[i] < KNEE * slopes[steepest]:
            return xs[i], "sweet-spot"  # the weight where the flat part begins
    return None, "growing"
