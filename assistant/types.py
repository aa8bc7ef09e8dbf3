"""The value types every layer shares.

Pure Python, frozen dataclasses: functions take them and return new ones. Nothing here imports
torch or gradio. Modules may add fields *with defaults*; renaming a field is a cross-module change.

One request flows as: text -> :class:`Prompt` (prompt.parse) -> :class:`LoraInfo` per tag
(library.resolve) -> :class:`Advice` with a plan of :class:`PlannedLora` (advisor.advise) ->
:class:`GenerationRequest` (blend / app) -> :class:`GenerationResult` (engine).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .limits import CFG_DEFAULT, STEPS_DEFAULT

Kind = Literal["character", "clothing", "concept", "style", "other"]
Base = Literal["sd15", "sd2", "sdxl", "unknown"]

KINDS: tuple[Kind, ...] = ("character", "clothing", "concept", "style", "other")
BASES: tuple[Base, ...] = ("sd15", "sd2", "sdxl", "unknown")


def format_weight(value: float) -> str:
    """A weight as A1111 users write it: ``0.8``, ``1``, ``-0.1``, ``0.55`` (no trailing zeros)."""
    if not math.isfinite(value):
        raise ValueError(f"weight {value!r} is not finite")
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# ----------------------------------------------------------------------------------------------
# Prompt language
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoraTag:
    """One ``<lora:…>`` / ``<lyco:…>`` occurrence, as written.

    ``weight`` is A1111's first multiplier (text encoder, and UNet unless ``unet`` is given);
    ``unet`` is the UNet multiplier when it differs; ``dyn`` is A1111's dynamic-dim argument.
    ``span`` is the (start, end) character offsets of the tag in the text it came from
    (the positive or, when ``in_negative``, the negative prompt).
    """

    name: str
    weight: float = 1.0
    unet: float | None = None
    dyn: int | None = None
    in_negative: bool = False
    span: tuple[int, int] | None = None
    tag_type: str = "lora"  # "lora" or "lyco", as written
    raw: str = ""  # the exact source text of the tag, "" when built by code
    lbw: str = ""  # LoRA block weights as written after ``lbw=`` (a preset or numbers, assistant.lbw)

    @property
    def te_weight(self) -> float:
        return self.weight

    @property
    def unet_weight(self) -> float:
        return self.weight if self.unet is None else self.unet

    def render(self) -> str:
        """A1111 text for this tag (``raw`` is NOT used: this is the canonical form)."""
        parts = [self.name, format_weight(self.weight)]
        if self.unet is not None or self.dyn is not None:
            parts.append(format_weight(self.unet_weight))
        if self.dyn is not None:
            parts.append(str(self.dyn))
        if parts[1:] == ["1"]:
            parts = [self.name, "1"]
        if self.lbw:
            parts.append(f"lbw={self.lbw}")
        return f"<{self.tag_type}:{':'.join(parts)}>"


@dataclass(frozen=True, slots=True)
class ExtraTag:
    """Another extra-network tag (``<hypernet:name:1>`` …): kept in the text, reported, not applied."""

    tag_type: str
    args: tuple[str, ...]
    in_negative: bool = False
    span: tuple[int, int] | None = None
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Prompt:
    """A parsed A1111 prompt pair.

    ``positive``/``negative`` are the texts exactly as given (tags included), so an untouched
    prompt renders back byte for byte. ``positive_text``/``negative_text`` are what goes to the
    text encoder: tags removed, commas and spaces tidied, attention syntax kept.
    ``loras`` lists positive-prompt tags first, then negative-prompt tags, each in text order.
    ``notes`` are parser remarks a user should read (e.g. a malformed number kept as text).
    """

    positive: str
    negative: str = ""
    loras: tuple[LoraTag, ...] = ()
    extras: tuple[ExtraTag, ...] = ()
    positive_text: str = ""
    negative_text: str = ""
    notes: tuple[str, ...] = ()

    @property
    def positive_loras(self) -> tuple[LoraTag, ...]:
        return tuple(t for t in self.loras if not t.in_negative)

    @property
    def negative_loras(self) -> tuple[LoraTag, ...]:
        return tuple(t for t in self.loras if t.in_negative)


# ----------------------------------------------------------------------------------------------
# Library
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoraInfo:
    """What the library knows about one LoRA file (read from headers and sidecars, never tensors).

    ``status`` is "ok" for a loadable file, "refused" (pickle formats, paths escaping the roots)
    or "broken" (corrupt, truncated, Git-LFS pointer …) with the reason in ``problem``.
    ``*_source`` fields say how a value was decided, e.g. "catalog", "sidecar",
    "metadata ss_base_model_version", "tensor widths (768)", "guessed from name 'style'".
    """

    name: str
    path: str
    aliases: tuple[str, ...] = ()
    kind: Kind = "other"
    kind_source: str = "default"
    base: Base = "unknown"
    base_source: str = "unknown"
    triggers: tuple[str, ...] = ()
    triggers_source: str = ""
    preferred_weight: float | None = None
    negative_text: str = ""
    notes: str = ""
    description: str = ""
    rank: int | None = None
    alpha: float | None = None
    network_format: str = "unknown"  # kohya | kohya-sdxl | peft | diffusers | lycoris | unknown
    algorithm: str = ""  # lora | locon | tucker | dora | loha | lokr | full (+dora), see assistant.layouts
    preview: str | None = None
    size: int = 0
    mtime: float = 0.0
    status: Literal["ok", "refused", "broken"] = "ok"
    problem: str = ""
    source: str = ""  # catalog "source" (e.g. a hub id to download from when online)
    metadata: Mapping[str, str] = field(default_factory=dict)  # trimmed header metadata

    @property
    def loadable(self) -> bool:
        return self.status == "ok"


# ----------------------------------------------------------------------------------------------
# Advice
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One edit the assistant made, and why. ``before``/``after`` are short quoted fragments.

    ``reason_zh`` is the same reason in Chinese (shown to users who write Chinese; "" = none).
    """

    rule: str
    before: str
    after: str
    reason: str
    reason_zh: str = ""


@dataclass(frozen=True, slots=True)
class AdviceWarning:
    """Something the user should know that the assistant did not (or could not) fix."""

    rule: str
    message: str
    lora: str | None = None
    message_zh: str = ""


@dataclass(frozen=True, slots=True)
class PlannedLora:
    """One LoRA as the engine should apply it.

    Cond branch (the positive prompt's pass): ``weight`` for the text encoder, ``unet`` for the
    UNet. Uncond branch (the negative prompt's pass of classifier-free guidance):
    ``negative_weight``/``negative_unet``; ``None`` means "same as the cond branch", which is
    A1111's behaviour (a LoRA patches the whole model). A ``<lora:x:w>`` tag written in the
    negative prompt sets the uncond-branch weight (see assistant/rules/negative_tags.py).
    """

    name: str
    path: str
    weight: float = 1.0
    unet: float | None = None
    negative_weight: float | None = None
    negative_unet: float | None = None
    hash: str = ""  # A1111 LoRA hash (first 12 hex of sha256 after the header), "" if unknown
    #: LoRA block weights (``lbw=`` of sd-webui-lora-block-weight, :mod:`assistant.lbw`): the 26
    #: ratios ``BASE IN00…IN11 M00 OUT00…OUT11`` the weights are multiplied by per block, or None
    lbw: tuple[float, ...] | None = None

    @property
    def te_weight(self) -> float:
        return self.weight

    @property
    def unet_weight(self) -> float:
        return self.weight if self.unet is None else self.unet

    @property
    def uncond_te_weight(self) -> float:
        return self.te_weight if self.negative_weight is None else self.negative_weight

    @property
    def uncond_unet_weight(self) -> float:
        if self.negative_unet is not None:
            return self.negative_unet
        if self.negative_weight is not None:
            return self.negative_weight
        return self.unet_weight

    @property
    def split_branches(self) -> bool:
        """True when the uncond branch uses other weights than the cond branch."""
        return (self.uncond_te_weight, self.uncond_unet_weight) != (self.te_weight, self.unet_weight)


@dataclass(frozen=True, slots=True)
class Advice:
    """The assistant's answer: rewritten prompts, every change with its reason, warnings, plan."""

    positive: str
    negative: str
    changes: tuple[Change, ...] = ()
    warnings: tuple[AdviceWarning, ...] = ()
    plan: tuple[PlannedLora, ...] = ()
    original_positive: str = ""
    original_negative: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.changes)


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------

DEFAULT_SAMPLER = "DPM++ 2M Karras"

#: A1111's img2img resize modes (``resize_mode`` 0-3), by number.
RESIZE_MODES: tuple[str, ...] = (
    "Just resize",
    "Crop and resize",
    "Resize and fill",
    "Just resize (latent upscale)",
)


@dataclass(frozen=True, slots=True)
class InitImage:
    """An img2img source image, already read and checked (:func:`assistant.images.init_image`).

    ``rgb`` holds the pixels (8-bit RGB, ``width * height * 3`` bytes, rows top to bottom), so the
    core stays free of Pillow objects; ``digest`` (sha256 of the pixels and size) identifies it
    (equality, batching, the manifest). ``name`` is where it came from (a file name, "chat",
    "API"); ``notes`` say what was done to read it (first frame of an animation, EXIF rotation …).
    """

    rgb: bytes = field(repr=False, compare=False)
    width: int
    height: int
    digest: str
    name: str = field(default="", compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def to_pil(self) -> Any:
        """The pixels as a Pillow RGB image (imports Pillow)."""
        from PIL import Image

        return Image.frombytes("RGB", (self.width, self.height), self.rgb)

    def describe(self) -> dict[str, Any]:
        """What a manifest or a JSON report says about it (never the pixels)."""
        return {"name": self.name, "width": self.width, "height": self.height, "sha256": self.digest}


@dataclass(frozen=True, slots=True)
class HiresFix:
    """A1111's hires fix for a txt2img request: render, upscale, then an img2img pass at
    ``GenerationRequest.denoising_strength``.

    ``scale`` ("Upscale by") is used when ``resize_x`` and ``resize_y`` are both 0 ("Resize width
    to" / "Resize height to"); ``steps`` 0 means as many as the first pass; ``upscaler`` is one of
    :data:`assistant.img2img.UPSCALERS` (A1111's latent modes, Lanczos, Nearest, None).
    """

    scale: float = 2.0
    resize_x: int = 0
    resize_y: int = 0
    steps: int = 0
    upscaler: str = "Latent"


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything needed to render one image (or one batch).

    ``prompt``/``negative`` are A1111 text; any ``<lora:…>`` tags in them are ignored by the
    engine (they are written to the infotext as the user sees them): ``loras`` is the plan that
    is applied. ``seed`` -1 means random (the engine reports the seed it drew); image i of a
    batch uses ``seed + i`` like A1111. ``scheduler`` is A1111's "Schedule type" (None: implied
    by the sampler name, e.g. "DPM++ 2M Karras").
    """

    prompt: str
    negative: str = ""
    loras: tuple[PlannedLora, ...] = ()
    seed: int = -1
    steps: int = STEPS_DEFAULT
    cfg: float = CFG_DEFAULT
    sampler: str = DEFAULT_SAMPLER
    scheduler: str | None = None
    width: int = 512
    height: int = 512
    batch_size: int = 1
    label: str = ""  # grid label, e.g. "catgirl 0.55 · cyber 0.65"
    extra: Mapping[str, Any] = field(default_factory=dict)
    clip_skip: int = 1  # A1111's CLIP_stop_at_last_layers ("Clip skip: 2"); 1 = the last layer
    rng: str = "GPU"  # A1111's randn_source: "GPU" (its default), "CPU" or "NV"
    emphasis: str = "Original"  # A1111's emphasis mode: "Original", "No norm", "Ignore", "None"
    #: img2img: the source image (None: txt2img); ``denoising_strength`` is A1111's (img2img and
    #: the hires fix's second pass); ``resize_mode`` A1111's 0-3 (:data:`RESIZE_MODES`).
    init_image: InitImage | None = None
    denoising_strength: float = 0.75
    resize_mode: int = 0
    hires: HiresFix | None = None
    #: A LoRA the engine cannot apply (its layout, keys that name no layer of this model, another
    #: base's shapes): False raises LoraLoadError (nothing rendered); True leaves it out of the
    #: render with a warning naming it and why, and renders the rest (what the service asks for
    #: unless the user asked for ``strict``).
    leave_out_unloadable: bool = False


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """Images (PIL) with their A1111 infotexts and seeds; ``timings`` in seconds by phase."""

    images: tuple[Any, ...]
    infotexts: tuple[str, ...]
    seeds: tuple[int, ...]
    request: GenerationRequest | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
