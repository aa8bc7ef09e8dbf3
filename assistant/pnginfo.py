"""What made this image? — A1111's PNG Info and "Send to txt2img", with the LoRA library.

Pure (no torch, no gradio, no Pillow): :func:`describe` takes the infotext read from an image
(:func:`assistant.images.read_infotext`; A1111's or LoRA Mixer's) and the library, and returns an
:class:`ImageReport`: the prompt pair to put back in the boxes, the settings to restore (A1111's
"Send to txt2img": steps, sampler and schedule, CFG, seed, size, denoising strength, hires fix), and
each LoRA of the prompt matched against the library —

1. **by hash** first: the image's ``Lora hashes`` (A1111: the file's tensor-data sha256, first 12
   hex — "AutoV3" — or kohya's embedded ``sshs_model_hash``) or a Civitai ``Hashes`` JSON
   (``"lora:name": "AutoV2"``: the whole file's sha256, first 10 hex). A LoRA found under another
   file name is renamed in the restored prompt, as A1111's Lora extension does on paste;
2. **by name** second (the image carries no hash, or no local file has it); a file with the same
   name but another hash is said to be a different file;
3. else **missing**, with the hash to look it up by.

It also says what cannot be restored here (a server-wide setting such as Clip skip or RNG, another
base model, A1111 features LoRA Mixer does not have). The service hashes the library files first
(:meth:`assistant.service.Service.describe_image`); this module only compares.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import limits
from .errors import AmbiguousLoraName, LoraNotFound, PromptError
from .infotext import InfoText, parse
from .types import HiresFix, LoraInfo, format_weight

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .library import Hashes, Library

__all__ = ["ImageReport", "LoraMatch", "describe", "hash_matches"]

#: Parameters a restore uses or that say nothing about the picture.
_USED = frozenset(
    {
        "Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model",
        "VAE hash", "VAE", "Denoising strength", "Clip skip", "RNG", "Emphasis", "Pad conds",
        "Hires upscale", "Hires resize", "Hires steps", "Hires upscaler", "Lora hashes", "TI hashes",
        "Hashes", "Version", "Negative LoRA weights", "Token merging ratio", "Downcast alphas_cumprod",
        "Schedule max sigma", "Schedule min sigma", "Schedule rho", "User", "Init image hash",
        "Noise multiplier", "ENSD", "NGMS",
    }
)  # fmt: skip
#: A prompt read from an image may hold what the render limits refuse (a weight of 3): read it all.
_READ_LIMITS: Any = None


def _read_limits() -> Any:
    global _READ_LIMITS
    if _READ_LIMITS is None:
        from .prompt import PromptLimits

        _READ_LIMITS = PromptLimits(
            min_weight=-1e6,
            max_weight=1e6,
            max_loras=10_000,
            max_length=limits.INFOTEXT_CHARS,
            max_name_length=1_000,
        )
    return _READ_LIMITS


@dataclass(frozen=True, slots=True)
class LoraMatch:
    """One ``<lora:…>`` of the image's prompt and what the library has for it.

    ``how``: "hash" (a local file has the image's hash; ``local`` may be another name), "name"
    (no hash in the image, or none matched: the file of that name), "name, other file" (a file of
    that name whose hash differs), or "missing".
    """

    name: str
    weight: float
    hash: str = ""
    local: str | None = None
    how: str = "missing"
    in_negative: bool = False
    base: str = ""


@dataclass(frozen=True, slots=True)
class ImageReport:
    """An image's parameters as LoRA Mixer reads and restores them (see the module docstring)."""

    infotext: str | None
    prompt: str = ""
    negative: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    loras: tuple[LoraMatch, ...] = ()
    notes: tuple[str, ...] = ()
    not_restored: tuple[str, ...] = ()
    made_by: str = ""
    info: InfoText | None = None

    @property
    def found(self) -> bool:
        return self.infotext is not None

    @property
    def missing(self) -> tuple[LoraMatch, ...]:
        return tuple(m for m in self.loras if m.how == "missing")

    def markdown(self, *, restored: bool = True, compact: bool = False) -> str:
        """The chat's answer: what made the image, the LoRAs, the settings, what was restored
        (``compact``: without the prompts, which the boxes show — the prompt panel's note)."""
        if not self.found:
            lines = [
                "**This image carries no generation parameters** — no A1111 or LoRA Mixer infotext (PNG "
                "`parameters` chunk, JPEG/WebP EXIF comment). Many sites strip them on upload; the "
                "original PNG usually still has them."
            ]
            lines += [f"- {note}" for note in self.notes]
            lines.append(
                "To render over it instead, send it again **with a prompt** (img2img), or `/img2img 0.5`."
            )
            return "\n\n".join(lines)
        parts = [f"**What made this image** ({self.made_by})" if self.made_by else "**What made this image**"]
        if not compact:
            parts.append(_fence(self.prompt or " "))
            if self.negative:
                parts += ["**Negative prompt**", _fence(self.negative)]
        if self.loras:
            rows = ["**LoRAs**"]
            for match in self.loras:
                rows.append(f"- {_lora_line(match)}")
            parts.append("\n".join(rows))
        settings = _settings_line(self.settings)
        if settings:
            parts.append(f"**Settings used**: {settings}")
        if self.not_restored:
            parts.append("**Not restored here**\n" + "\n".join(f"- {item}" for item in self.not_restored))
        if self.notes:
            parts.append("\n".join(f"- {note}" for note in self.notes))
        if restored:
            missing = self.missing
            lead = "I put this prompt and these settings in the boxes (A1111's *Send to txt2img*)"
            if missing:
                names = ", ".join(f"`{m.name}`" for m in missing)
                verb = "is" if len(missing) == 1 else "are"
                lead += f"; {names} {verb} not in your library, so a render will differ"
            parts.append(lead + ". **Generate** renders it again.")
        return "\n\n".join(parts)


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _lora_line(match: LoraMatch) -> str:
    weight = format_weight(match.weight)
    where = " (negative prompt)" if match.in_negative else ""
    digest = f" · hash `{match.hash}`" if match.hash else ""
    if match.how == "hash":
        if match.local and match.local != match.name:
            return (
                f"`{match.name}` {weight}{where} — in your library as `{match.local}` (same hash{digest}); "
                "renamed in the prompt"
            )
        return f"`{match.name}` {weight}{where} — in your library (same hash{digest})"
    if match.how == "name":
        why = "its file has no hash here yet" if match.hash else "the image names no hash"
        return f"`{match.local or match.name}` {weight}{where} — in your library (matched by name; {why})"
    if match.how == "name, other file":
        return (
            f"`{match.name}` {weight}{where} — a file of this name is in your library, but it is a different "
            f"file (its hash differs from the image's{digest}): the result will differ"
        )
    hint = f" — look it up by its hash `{match.hash}` (Civitai's search takes it)" if match.hash else ""
    return f"`{match.name}` {weight}{where} — **missing**: not in your library{hint}"


def _settings_line(settings: Mapping[str, Any]) -> str:
    order = (
        ("steps", "Steps {}"),
        ("sampler", "{}"),
        ("cfg", "CFG {}"),
        ("seed", "seed {}"),
        ("size", "{}"),
        ("denoising_strength", "denoising {}"),
    )
    parts = []
    for key, pattern in order:
        value = settings.get(key)
        if value is None:
            continue
        if key == "size":
            value = f"{value[0]}x{value[1]}"
        elif isinstance(value, float):
            value = format_weight(value)
        parts.append(pattern.format(value))
    hires = settings.get("hires")
    if isinstance(hires, HiresFix):
        how = (
            f"to {hires.resize_x}x{hires.resize_y}"
            if hires.resize_x or hires.resize_y
            else f"×{format_weight(hires.scale)}"
        )
        parts.append(
            f"hires fix {how} with {hires.upscaler}" + (f", {hires.steps} steps" if hires.steps else "")
        )
    return ", ".join(parts)


def hash_matches(digest: str, hashes: Hashes) -> bool:
    """True when an image's LoRA hash names this file: A1111's 12 hex (tensor data, or kohya's
    embedded hash), Civitai's AutoV2 (10 hex of the whole file), or a longer prefix of a sha256."""
    text = digest.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,64}", text):
        return False
    exact = {hashes.a1111, hashes.autov2, hashes.infotext}
    if text in exact:
        return True
    return len(text) >= 10 and any(
        full.startswith(text) for full in (hashes.sha256, hashes.addnet, hashes.embedded) if full
    )


def _civitai_hashes(text: str) -> dict[str, str]:
    """Civitai's ``Hashes: {"model": "…", "lora:name": "…"}`` -> ``{"name": "…"}``."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(key, str) and isinstance(value, str) and key.lower().startswith(("lora:", "lyco:")):
            out[key.split(":", 1)[1].strip()] = value.strip()
    return out


def describe(
    text: str | None,
    library: Library,
    *,
    hashes_of: Callable[[LoraInfo], Hashes | None],
    base: str = "sd15",
    model_name: str = "",
    server: Mapping[str, Any] | None = None,
    samplers: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> ImageReport:
    """Read ``text`` (an infotext, or None when the image had none) against ``library``.

    ``hashes_of`` gives a library file's hashes (or None when unknown); ``server`` holds the
    server-wide settings (``clip_skip``, ``rng``, ``emphasis``) a restore cannot change per render;
    ``samplers`` the accepted sampler names (to write a schedule type back into one, as the UI's
    sampler menu lists them).
    """
    if text is None or not text.strip():
        return ImageReport(infotext=None, notes=tuple(notes))
    info = parse(text)
    all_notes = list(notes)
    prompt, negative, matches = _match_loras(info, library, hashes_of, all_notes)
    settings = _settings(info, samplers)
    not_restored = _not_restored(info, server or {}, model_name)
    version = info.version or ""
    made_by = version if version else ("AUTOMATIC1111 or a compatible tool" if info.params else "")
    return ImageReport(
        infotext=text,
        prompt=prompt,
        negative=negative,
        settings=settings,
        loras=tuple(matches),
        notes=tuple(all_notes),
        not_restored=tuple(not_restored),
        made_by=made_by,
        info=info,
    )


def _match_loras(
    info: InfoText, library: Library, hashes_of: Callable[[LoraInfo], Hashes | None], notes: list[str]
) -> tuple[str, str, list[LoraMatch]]:
    from .prompt import parse as parse_prompt

    known = dict(info.lora_hashes)
    for name, digest in _civitai_hashes(info.params.get("Hashes", "")).items():
        known.setdefault(name, digest)
    try:
        parsed = parse_prompt(info.prompt, info.negative, limits=_read_limits())
    except PromptError:
        return info.prompt, info.negative, []
    files = [entry for entry in library.all() if entry.loadable]
    cache: dict[str, Hashes | None] = {}

    def file_hash(entry: LoraInfo) -> Hashes | None:
        if entry.path not in cache:
            cache[entry.path] = hashes_of(entry)
        return cache[entry.path]

    texts = {False: info.prompt, True: info.negative}
    renames: list[tuple[bool, tuple[int, int], str, str]] = []
    matches: list[LoraMatch] = []
    for tag in parsed.loras:
        digest = known.get(tag.name) or known.get(tag.name.replace(":", "").replace(",", ""), "")
        local: LoraInfo | None = None
        how = "missing"
        if digest:
            local = next(
                (e for e in files if (h := file_hash(e)) is not None and hash_matches(digest, h)), None
            )
            if local is not None:
                how = "hash"
        if local is None:
            try:
                by_name = library.resolve(tag.name)
            except (LoraNotFound, AmbiguousLoraName):
                by_name = None
            if by_name is not None and by_name.loadable:
                local = by_name
                own = file_hash(by_name) if digest else None
                how = "name, other file" if own is not None else "name"
        if how == "hash" and local is not None and local.name != tag.name and tag.span is not None:
            renames.append((tag.in_negative, tag.span, tag.name, local.name))
        matches.append(
            LoraMatch(
                name=tag.name,
                weight=tag.weight,
                hash=digest,
                local=local.name if local is not None else None,
                how=how,
                in_negative=tag.in_negative,
                base=local.base if local is not None else "",
            )
        )
    for in_negative, (start, end), old, new in sorted(renames, key=lambda r: r[1][0], reverse=True):
        text = texts[in_negative]
        texts[in_negative] = text[:start] + text[start:end].replace(old, new, 1) + text[end:]
    unhashed = sum(1 for value in cache.values() if value is None)
    if unhashed and any(m.hash and m.how != "hash" for m in matches):
        notes.append(
            f"{unhashed} LoRA file(s) of your library have "
            "no hash yet (large files are hashed in the background): a LoRA renamed among them is found by "
            "name only"
        )
    return texts[False], texts[True], matches


def _settings(info: InfoText, samplers: Sequence[str]) -> dict[str, Any]:
    """What "Send to txt2img" fills in, as RenderSettings field names."""
    out: dict[str, Any] = {}
    if info.steps is not None:
        out["steps"] = info.steps
    sampler, schedule = info.sampler, info.schedule_type
    if sampler:
        combined = f"{sampler} {schedule}" if schedule and schedule != "Automatic" else sampler
        if samplers and combined not in samplers and sampler in samplers:
            out["sampler"], out["scheduler"] = sampler, schedule
        else:
            out["sampler"] = combined
    if info.cfg is not None:
        out["cfg"] = info.cfg
    if info.seed is not None:
        out["seed"] = info.seed
    if info.size is not None:
        out["size"] = info.size
    if info.denoising_strength is not None:
        out["denoising_strength"] = info.denoising_strength
    hires = info.hires
    if hires is not None:
        out["hires"] = hires
    return out


def _not_restored(info: InfoText, server: Mapping[str, Any], model_name: str) -> list[str]:
    out: list[str] = []
    params = info.params
    model = info.model
    if model and model_name and model.casefold() != model_name.casefold():
        out.append(f"the model: the image was made with `{model}`, this server runs `{model_name}`")
    for label, field_name in (("Clip skip", "clip_skip"), ("RNG", "rng"), ("Emphasis", "emphasis")):
        value: Any = {"clip_skip": info.clip_skip, "rng": info.rng, "emphasis": info.emphasis}[field_name]
        current = server.get(field_name)
        if current is not None and str(value) != str(current):
            out.append(f"{label} {value} (this server renders with {current}; set it under Settings)")
    vae = info.vae
    if vae:
        out.append(f"VAE `{vae}` (choose it under Settings → VAE if you have it)")
    ignored = [k for k in params if k not in _USED]
    if ignored:
        out.append("A1111 settings LoRA Mixer does not have: " + ", ".join(f"`{k}`" for k in ignored[:12]))
    return out
