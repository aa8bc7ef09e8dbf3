"""A1111 "infotext": the generation parameters stored in a PNG's ``parameters`` text chunk.

The text has three parts, exactly as AUTOMATIC1111's ``create_infotext`` writes them::

    1girl, cat ears, <lora:catgirl_v1:0.6>
    Negative prompt: worst quality, blurry
    Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, …

The prompt may span several lines; the ``Negative prompt:`` line is left out when there is no
negative prompt; the last line is ``key: value`` pairs separated by ``, ``. A value holding a
comma, colon, newline or double quote is written as a JSON string (A1111's ``quote``), and the
reader undoes that (A1111's ``unquote``). :func:`parse` reads what A1111 writes, including the
pre-1.9 combined sampler names (``Sampler: DPM++ 2M Karras``) that v1.9 split into ``Sampler`` +
``Schedule type``. Pure Python; Pillow is imported only by the PNG helpers.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:  # pragma: no cover - typing only
    from PIL.PngImagePlugin import PngInfo

    from .types import GenerationRequest, HiresFix

__all__ = [
    "DEFAULT_VERSION",
    "SCHEDULE_TYPES",
    "InfoText",
    "a1111_parameters",
    "build",
    "for_request",
    "format_number",
    "parse",
    "png_info",
    "quote",
    "read_png",
    "split_sampler",
    "unquote",
]

#: A1111's parameter regex (modules/infotext_utils.py): ``key: value`` or ``key: "json string"``.
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_KEY = re.compile(r"\w[\w \-/]+")
_RE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_NEGATIVE_PREFIX = "Negative prompt:"

#: A1111 (v1.9+) schedule type labels; a pre-1.9 sampler name ends with one of them
#: ("DPM++ 2M Karras" = sampler "DPM++ 2M" + schedule type "Karras"). Longest first so that
#: "SGM Uniform" wins over "Uniform".
SCHEDULE_TYPES: tuple[str, ...] = (
    "Align Your Steps",
    "Polyexponential",
    "SGM Uniform",
    "Exponential",
    "KL Optimal",
    "Automatic",
    "Uniform",
    "Karras",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
)
_SCHEDULE_ALIASES: dict[str, str] = {
    "sgm_uniform": "SGM Uniform",
    "kl_optimal": "KL Optimal",
    "align_your_steps": "Align Your Steps",
}


#: The ``Version`` value this project writes.
DEFAULT_VERSION = f"LoRA Mixer {__version__}"


def quote(value: object) -> str:
    """A1111's ``quote``: JSON-quote a value holding ``,`` ``:`` a newline or ``"``.

    A1111 itself quotes only on ``,``, ``:`` and newlines; quoting also on ``"`` and on
    surrounding whitespace keeps every value round-trippable and is read back by A1111 alike.
    """
    text = str(value)
    if any(c in text for c in ',:\n\r"') or text != text.strip():
        return json.dumps(text, ensure_ascii=False)
    return text


def unquote(text: str) -> str:
    """A1111's ``unquote``: a value in double quotes is a JSON string; anything else is as is."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def format_number(value: float) -> str:
    """A number as A1111 shows it: ``7`` for 7.0, ``7.5``, ``0.55`` (shortest exact repr)."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"number {value!r} is not finite")
    if number.is_integer():
        return str(int(number))
    return repr(number)


def split_sampler(sampler: str, schedule_type: str | None = None) -> tuple[str, str | None]:
    """Split a pre-1.9 combined sampler name: ``"DPM++ 2M Karras"`` -> ``("DPM++ 2M", "Karras")``.

    A suffix in the name wins over ``schedule_type`` (as in A1111's ``get_sampler_and_scheduler``);
    a name without a known suffix comes back unchanged with ``schedule_type`` (which may be None).
    Lower-case scheduler ids (``karras``, ``sgm_uniform``) are read as their labels.
    """
    name = sampler.strip()
    found: str | None = None
    lowered = name.lower()
    for label in SCHEDULE_TYPES:
        if lowered.endswith(" " + label.lower()):
            found, name = label, name[: -(len(label) + 1)].rstrip()
            break
    else:
        for alias, label in _SCHEDULE_ALIASES.items():
            if lowered.endswith(" " + alias):
                found, name = label, name[: -(len(alias) + 1)].rstrip()
                break
    if found is None and schedule_type is not None and schedule_type.strip():
        explicit = schedule_type.strip()
        explicit = _SCHEDULE_ALIASES.get(explicit.lower(), explicit)
        for label in SCHEDULE_TYPES:
            if explicit.lower() == label.lower():
                explicit = label
        return name, explicit
    return name, found


@dataclass(frozen=True)
class InfoText:
    """A parsed infotext. ``params`` maps each ``key`` of the last line to its unquoted value.

    The typed accessors return None when a key is missing or unreadable; ``sampler`` and
    ``schedule_type`` always give the v1.9+ split form, whichever form was written.
    """

    prompt: str
    negative: str = ""
    params: dict[str, str] = field(default_factory=dict)

    def _int(self, key: str) -> int | None:
        try:
            return int(self.params[key].strip())
        except (KeyError, ValueError):
            return None

    def _float(self, key: str) -> float | None:
        try:
            value = float(self.params[key].strip())
        except (KeyError, ValueError):
            return None
        return value if math.isfinite(value) else None

    @property
    def steps(self) -> int | None:
        return self._int("Steps")

    @property
    def seed(self) -> int | None:
        return self._int("Seed")

    @property
    def cfg(self) -> float | None:
        return self._float("CFG scale")

    @property
    def sampler(self) -> str | None:
        """The sampler name without a schedule suffix (``DPM++ 2M``)."""
        if "Sampler" not in self.params:
            return None
        return split_sampler(self.params["Sampler"], self.params.get("Schedule type"))[0]

    @property
    def schedule_type(self) -> str | None:
        """The schedule type label (``Karras``), from ``Schedule type`` or a pre-1.9 sampler name."""
        if "Sampler" not in self.params:
            value = self.params.get("Schedule type")
            return value or None
        return split_sampler(self.params["Sampler"], self.params.get("Schedule type"))[1]

    @property
    def size(self) -> tuple[int, int] | None:
        match = _RE_SIZE.match(self.params.get("Size", "").strip())
        return (int(match.group(1)), int(match.group(2))) if match else None

    @property
    def width(self) -> int | None:
        size = self.size
        return size[0] if size else None

    @property
    def height(self) -> int | None:
        size = self.size
        return size[1] if size else None

    @property
    def model(self) -> str | None:
        return self.params.get("Model")

    @property
    def model_hash(self) -> str | None:
        return self.params.get("Model hash")

    @property
    def version(self) -> str | None:
        return self.params.get("Version")

    @property
    def clip_skip(self) -> int:
        """``Clip skip: 2`` -> 2; absent (A1111 leaves it out at 1) or unreadable -> 1."""
        value = self._int("Clip skip")
        return value if value is not None and value >= 1 else 1

    @property
    def rng(self) -> str:
        """A1111's ``RNG`` (CPU, NV); absent means its default, GPU."""
        return self.params.get("RNG", "").strip().upper() or "GPU"

    @property
    def emphasis(self) -> str:
        """A1111's ``Emphasis`` (No norm, Ignore, None); absent means Original."""
        return self.params.get("Emphasis", "").strip() or "Original"

    @property
    def vae(self) -> str | None:
        return self.params.get("VAE")

    @property
    def vae_hash(self) -> str | None:
        return self.params.get("VAE hash")

    @property
    def pad_conds(self) -> bool:
        return self.params.get("Pad conds", "").strip().lower() == "true"

    @property
    def ti_hashes(self) -> dict[str, str]:
        """``TI hashes: "EasyNegative: c74b4e810b03, …"`` as ``{"EasyNegative": "c74b4e810b03"}``."""
        return _hash_list(self.params.get("TI hashes", ""))

    @property
    def denoising_strength(self) -> float | None:
        """``Denoising strength`` (img2img, or the hires fix's second pass)."""
        return self._float("Denoising strength")

    @property
    def hires_upscale(self) -> float | None:
        """``Hires upscale: 2`` (A1111's "Upscale by")."""
        return self._float("Hires upscale")

    @property
    def hires_resize(self) -> tuple[int, int] | None:
        """``Hires resize: 1024x768`` as (1024, 768) ("Resize width/height to")."""
        match = _RE_SIZE.match(self.params.get("Hires resize", "").strip())
        return (int(match.group(1)), int(match.group(2))) if match else None

    @property
    def hires_steps(self) -> int | None:
        """``Hires steps`` (absent: as many as the first pass)."""
        return self._int("Hires steps")

    @property
    def hires_upscaler(self) -> str | None:
        return self.params.get("Hires upscaler")

    @property
    def hires(self) -> HiresFix | None:
        """The hires fix these parameters describe (None without one). A1111 leaves ``Hires
        upscaler`` out when it ran its default, "Latent"."""
        from .types import HiresFix

        scale, resize = self.hires_upscale, self.hires_resize
        if scale is None and resize is None and "Hires upscaler" not in self.params:
            return None
        x, y = resize or (0, 0)
        return HiresFix(
            scale=scale if scale is not None else 2.0,
            resize_x=x,
            resize_y=y,
            steps=max(0, self.hires_steps or 0),
            upscaler=(self.hires_upscaler or "Latent").strip() or "Latent",
        )

    @property
    def lora_hashes(self) -> dict[str, str]:
        """``Lora hashes: "a: 0123456789ab, b: …"`` as ``{"a": "0123456789ab", …}``."""
        return _hash_list(self.params.get("Lora hashes", ""))

    def render(self) -> str:
        """The infotext again, in A1111's layout (parameters in their stored order)."""
        return _join(self.prompt, self.negative, self.params)


def _hash_list(text: str) -> dict[str, str]:
    """``"a: 0123, b: 4567"`` -> ``{"a": "0123", "b": "4567"}`` (A1111's hash lists)."""
    result: dict[str, str] = {}
    for part in text.split(","):
        name, sep, digest = part.rpartition(":")
        if sep and name.strip():
            result[name.strip()] = digest.strip()
    return result


def _join(prompt: str, negative: str, params: Mapping[str, str]) -> str:
    for key in params:
        if not _RE_KEY.fullmatch(key):
            raise ValueError(
                f"infotext key {key!r} is not allowed: use letters, digits, spaces, '-' or '/' "
                "(at least two characters, starting with a letter or digit)"
            )
    line = ", ".join(f"{key}: {quote(value)}" for key, value in params.items())
    text = prompt
    if negative:
        text += f"\n{_NEGATIVE_PREFIX} {negative}"
    return f"{text}\n{line}"


def _clean_lora_name(name: str) -> str:
    return name.replace(":", "").replace(",", "").strip()


def build(
    *,
    prompt: str,
    negative: str,
    steps: int,
    sampler: str,
    schedule_type: str | None,
    cfg: float,
    seed: int,
    width: int,
    height: int,
    model_name: str,
    model_hash: str,
    lora_hashes: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
    version: str = DEFAULT_VERSION,
    vae_name: str = "",
    vae_hash: str = "",
    clip_skip: int = 1,
    rng: str = "GPU",
    ti_hashes: Mapping[str, str] | None = None,
    emphasis: str = "Original",
    pad_conds: bool = False,
    denoising_strength: float | None = None,
    hires: HiresFix | None = None,
) -> str:
    """The A1111 infotext for one image.

    A pre-1.9 combined sampler name (``DPM++ 2M Karras``) with no ``schedule_type`` is written in
    the v1.9+ split form (``Sampler: DPM++ 2M, Schedule type: Karras``). Empty ``model_name`` /
    ``model_hash`` / ``lora_hashes`` are left out, as A1111 leaves out None values. ``extra``
    pairs go before ``Version`` in the given order. ``version`` defaults to
    :data:`DEFAULT_VERSION` (``LoRA Mixer <assistant.__version__>``).

    As A1111 writes them, and only when they differ from its defaults: ``VAE hash``/``VAE`` (an
    external VAE), ``Clip skip`` (above 1), ``RNG`` (CPU or NV; GPU is the default),
    ``TI hashes`` (the embeddings the prompts used), ``Emphasis`` (not Original) and
    ``Pad conds: True`` (prompt and negative prompt were padded to one length). ``Denoising
    strength`` (img2img and the hires fix) and the hires fix's ``Hires upscale`` (or ``Hires
    resize``), ``Hires steps`` (when not 0) and ``Hires upscaler``, in A1111's places. ``Size`` is
    the first pass's size, as A1111 writes it.
    """
    base_sampler, schedule = split_sampler(sampler, schedule_type)
    params: dict[str, str] = {"Steps": str(int(steps)), "Sampler": base_sampler}
    if schedule:
        params["Schedule type"] = schedule
    params["CFG scale"] = format_number(cfg)
    params["Seed"] = str(int(seed))
    params["Size"] = f"{int(width)}x{int(height)}"
    if model_hash:
        params["Model hash"] = model_hash
    if model_name:
        params["Model"] = model_name
    if vae_hash:
        params["VAE hash"] = vae_hash
    if vae_name:
        params["VAE"] = vae_name
    if denoising_strength is not None:
        params["Denoising strength"] = format_number(denoising_strength)
    if int(clip_skip) > 1:
        params["Clip skip"] = str(int(clip_skip))
    if rng and rng != "GPU":
        params["RNG"] = rng
    if ti_hashes:
        params["TI hashes"] = ", ".join(f"{_clean_lora_name(n)}: {d}" for n, d in ti_hashes.items() if d)
    if emphasis and emphasis != "Original":
        params["Emphasis"] = emphasis
    if pad_conds:
        params["Pad conds"] = "True"
    if hires is not None:
        if hires.resize_x or hires.resize_y:
            params["Hires resize"] = f"{int(hires.resize_x)}x{int(hires.resize_y)}"
        else:
            params["Hires upscale"] = format_number(hires.scale)
        if hires.steps:
            params["Hires steps"] = str(int(hires.steps))
        params["Hires upscaler"] = hires.upscaler
    if lora_hashes:
        # A1111 (extensions-builtin/Lora) strips ':' and ',' from names so the list stays parseable.
        params["Lora hashes"] = ", ".join(
            f"{_clean_lora_name(name)}: {digest}" for name, digest in lora_hashes.items()
        )
    for key, value in (extra or {}).items():
        if key in params or key == "Version":
            raise ValueError(f"infotext extra key {key!r} clashes with a standard key; pick another name")
        params[key] = str(value)
    params["Version"] = version
    return _join(prompt, negative, params)


def for_request(
    request: GenerationRequest,
    seed: int,
    *,
    model_name: str = "",
    model_hash: str = "",
    lora_hashes: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    vae_name: str = "",
    vae_hash: str = "",
    ti_hashes: Mapping[str, str] | None = None,
    pad_conds: bool = False,
) -> str:
    """:func:`build` for one image of ``request`` (the seed it was drawn with). ``lora_hashes``
    defaults to the hashes the request's plan carries; clip skip, RNG, emphasis, the denoising
    strength (img2img, hires fix) and the hires fix come from the request."""
    if lora_hashes is None:
        lora_hashes = {lora.name: lora.hash for lora in request.loras if lora.hash}
    return build(
        prompt=request.prompt,
        negative=request.negative,
        steps=request.steps,
        sampler=request.sampler,
        schedule_type=request.scheduler,
        cfg=request.cfg,
        seed=seed,
        width=request.width,
        height=request.height,
        model_name=model_name,
        model_hash=model_hash,
        lora_hashes=lora_hashes,
        extra=extra,
        vae_name=vae_name,
        vae_hash=vae_hash,
        clip_skip=request.clip_skip,
        rng=request.rng,
        ti_hashes=ti_hashes,
        emphasis=request.emphasis,
        pad_conds=pad_conds,
        denoising_strength=(
            request.denoising_strength
            if request.init_image is not None or request.hires is not None
            else None
        ),
        hires=request.hires,
    )


def parse(text: str) -> InfoText:
    """Read an infotext the way A1111's ``parse_generation_parameters`` does.

    Lines before the parameter line are the prompt, up to a line starting with
    ``Negative prompt:``; each prompt line is stripped like A1111 does. The last line counts as
    the parameter line only when it holds at least three ``key: value`` pairs.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    last = lines[-1]
    if len(_RE_PARAM.findall(last)) < 3:
        last = ""
    else:
        lines = lines[:-1]
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for raw_line in lines:
        line = raw_line.strip()
        if line.startswith(_NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(_NEGATIVE_PREFIX) :].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    params: dict[str, str] = {}
    for key, value in _RE_PARAM.findall(last):
        params[key] = unquote(value) if value[:1] == '"' and value[-1:] == '"' else value
    return InfoText(prompt="\n".join(prompt_lines), negative="\n".join(negative_lines), params=params)


#: Fields A1111's ``parse_generation_parameters`` adds when the text does not name them (so a
#: paste resets them), in its order; ``Clip skip`` is a string there, the others as typed.
_A1111_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("Clip skip", "1"),
    ("Hires resize-1", 0),
    ("Hires resize-2", 0),
    ("Hires sampler", "Use same sampler"),
    ("Hires checkpoint", "Use same checkpoint"),
    ("Hires prompt", ""),
    ("Hires negative prompt", ""),
    ("Mask mode", "Inpaint masked"),
    ("Masked content", "original"),
    ("Inpaint area", "Whole picture"),
    ("Masked area padding", 32),
    ("RNG", "GPU"),
    ("Schedule type", "Automatic"),
    ("Schedule max sigma", 0),
    ("Schedule min sigma", 0),
    ("Schedule rho", 0),
    ("VAE Encoder", "Full"),
    ("VAE Decoder", "Full"),
    ("FP8 weight", "Disable"),
)


def a1111_parameters(text: str) -> dict[str, Any]:
    """What A1111's ``parse_generation_parameters`` returns for ``text`` (``/sdapi/v1/png-info``'s
    ``parameters``): ``Prompt``, ``Negative prompt``, every ``key: value`` as a string (sizes split
    into ``Size-1``/``Size-2``, ``Hires resize-1``/``-2`` …), then A1111's defaults for the fields it
    resets on paste. Styles are not extracted (LoRA Mixer has none)."""
    parsed = parse(text) if text.strip() else InfoText(prompt="")
    result: dict[str, Any] = {"Prompt": parsed.prompt, "Negative prompt": parsed.negative}
    for key, value in parsed.params.items():
        match = _RE_SIZE.match(value)
        if match is not None:
            result[f"{key}-1"], result[f"{key}-2"] = match.group(1), match.group(2)
        else:
            result[key] = value
    for key, value in _A1111_DEFAULTS:
        result.setdefault(key, value)
    return result


def png_info(text: str) -> PngInfo:
    """A Pillow ``PngInfo`` holding ``text`` as the ``parameters`` chunk (as A1111 saves it).

    Nothing else (no timestamp, no software tag) goes in, so saving the same image with the
    same text gives the same bytes.
    """
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", text)
    return info


def read_png(path_or_image: Any) -> InfoText | None:
    """The parsed ``parameters`` chunk of a PNG (a path or an open PIL image); None if absent."""
    from PIL import Image

    if isinstance(path_or_image, (str, os.PathLike)):
        with Image.open(path_or_image) as image:
            image.load()
            text = image.info.get("parameters")
    else:
        image = path_or_image
        text = getattr(image, "text", None)
        text = text.get("parameters") if isinstance(text, Mapping) else None
        if text is None:
            text = image.info.get("parameters")
    if not isinstance(text, str) or not text.strip():
        return None
    return parse(text)
