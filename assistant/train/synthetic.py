"""The procedural captioned dataset the embedded base model and the demo LoRAs are trained on.

Pure Python (numpy + Pillow, no torch). Every image is drawn from a seed, so a dataset is a
function of ``(seed, index)`` and nothing needs to be downloaded or stored.

The base vocabulary: shapes (:data:`SHAPES`) × colours (:data:`COLOURS`) × textures
(:data:`TEXTURES`) on a background colour (:data:`BACKGROUNDS`), drawn anti-aliased at
:data:`IMAGE_SIZE` px with a random size, position and a small rotation. Captions describe what
is drawn, in the two ways people type prompts::

    a striped red circle on a blue background        # a sentence
    red circle, striped, blue background              # A1111-style tags

Demo LoRA datasets (:data:`LORA_DATASETS`) reuse the same drawing with one change each — a
mascot with cat ears (a character), neon lights or ink line art (styles), brighter, more vivid or
more detailed images (adjusters) — and are written as kohya folders (``10_catgirl/0001.png`` +
``0001.txt``) by :func:`write_kohya_dataset`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

IMAGE_SIZE = 128
_SUPER = 2  # draw at 2x, then downsample: anti-aliased edges

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: Mapping[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 170, 60),
    "blue": (35, 70, 215),
    "yellow": (245, 215, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "purple": (130, 50, 175),
    "orange": (245, 135, 25),
}
BACKGROUNDS: Mapping[str, tuple[int, int, int]] = {**COLOURS, "gray": (128, 128, 128)}
TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted")

#: Words people add to prompts that say nothing about the picture; the base model sees them in
#: some captions so that "1girl, masterpiece, a red circle" still draws a red circle.
FILLER_WORDS: tuple[str, ...] = (
    "masterpiece", "best quality", "high quality", "highres", "detailed", "1girl", "solo",
    "illustration", "simple", "centered", "close-up", "cute", "shape", "icon",
)  # fmt: skip

#: Everything the captions can say, for the tokenizer's corpus (so each word is one or two tokens).
CAPTION_WORDS: tuple[str, ...] = (
    *SHAPES, *COLOURS, "gray", *TEXTURES, "a", "an", "on", "background", "catgirl", "cat ears",
    "mascot", "cyberpunk", "neon lights", "lineart", "monochrome", "ink", "soft lighting",
    "jk uniform", "school uniform", "tail", "bright", "vivid", "colorful", "detailed",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Scene:
    """What one image shows; :func:`draw` turns it into pixels, :func:`caption` into words."""

    shape: str
    colour: str
    background: str
    texture: str
    cx: float  # centre, fraction of the image
    cy: float
    radius: float  # fraction of the image
    angle: float  # degrees
    jitter: tuple[int, int, int] = (0, 0, 0)  # colour noise added to the shape colour
    phase: float = 0.0  # texture offset in px
    ears: int = 0  # cat ears on top (the mascot); 0 = a plain shape
    ear_length: float = 1.45  # ear tip distance from the centre, in radii
    ear_width: float = 0.36  # half the ear's base, in radii
    tail: bool = False
    collar: bool = False  # a sailor collar and ribbon (the "JK uniform" clothing LoRA)


def random_scene(rng: np.random.Generator, **fixed: object) -> Scene:
    """A random scene; keyword arguments fix fields (e.g. ``shape="star"``)."""
    shape = str(fixed.get("shape") or rng.choice(SHAPES))
    colour = str(fixed.get("colour") or rng.choice(list(COLOURS)))
    choices = [b for b in BACKGROUNDS if b != colour]
    background = str(fixed.get("background") or rng.choice(choices))
    texture = str(fixed.get("texture") or rng.choice(TEXTURES, p=(0.5, 0.25, 0.25)))
    radius = float(rng.uniform(0.24, 0.36))
    margin = radius + 0.06
    scene = Scene(
        shape=shape,
        colour=colour,
        background=background,
        texture=texture,
        cx=float(rng.uniform(margin, 1 - margin)),
        cy=float(rng.uniform(margin, 1 - margin)),
        radius=radius,
        angle=float(rng.uniform(-12, 12)),
        jitter=tuple(int(v) for v in rng.integers(-14, 15, size=3)),  # type: ignore[arg-type]
        phase=float(rng.uniform(0, 24)),
    )
    extra = {k: v for k, v in fixed.items() if k not in ("shape", "colour", "background", "texture")}
    return replace(scene, **extra) if extra else scene  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------


def _rgb(name: str, jitter: tuple[int, int, int] = (0, 0, 0), table: Mapping[str, tuple[int, ...]] = COLOURS):
    return tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(table[name], jitter, strict=True))


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a square, triangle or star (pointing up, rotated by ``angle`` degrees)."""
    if shape == "square":
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        points = [(x * r * 0.82, y * r * 0.82) for x, y in corners]
    elif shape == "triangle":
        points = [
            (r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))
        ]
        points = [(x * 1.1, y * 1.1 + r * 0.15) for x, y in points]
    elif shape == "star":
        points = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            rr = r * 1.1 if k % 2 == 0 else r * 0.45
            points.append((rr * math.cos(a), rr * math.sin(a) + r * 0.05))
    else:
        raise ValueError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")
    t = math.radians(angle)
    cos, sin = math.cos(t), math.sin(t)
    return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in points]


def shape_mask(scene: Scene, size: int = IMAGE_SIZE) -> Image.Image:
    """The shape's coverage as an 8-bit mask at ``size`` px (anti-aliased), ears and tail included."""
    big = size * _SUPER
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy, r = scene.cx * big, scene.cy * big, scene.radius * big
    if scene.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    else:
        draw.polygon(_polygon(scene.shape, cx, cy, r, scene.angle), fill=255)
    for ear in _ears(scene, cx, cy, r):
        draw.polygon(ear, fill=255)
    if scene.tail:
        box = (cx + r * 0.55, cy - r * 0.1, cx + r * 1.55, cy + r * 1.0)
        draw.arc(box, start=-80, end=80, fill=255, width=max(2, int(r * 0.16)))
    return mask.resize((size, size), Image.Resampling.BOX)


def _ears(scene: Scene, cx: float, cy: float, r: float) -> list[list[tuple[float, float]]]:
    """Triangular cat ears on the top of the shape (``scene.ears`` of them, spread evenly)."""
    if scene.ears <= 0:
        return []
    ears = []
    spread = 0.62 if scene.ears == 2 else 0.85
    for k in range(scene.ears):
        t = 0.0 if scene.ears == 1 else -spread + 2 * spread * k / (scene.ears - 1)
        a = -math.pi / 2 + t
        bx, by = cx + r * 0.8 * math.cos(a), cy + r * 0.8 * math.sin(a)
        tip = scene.ear_length
        tx, ty = cx + r * tip * math.cos(a), cy + r * tip * math.sin(a)
        nx, ny = -math.sin(a) * r * scene.ear_width, math.cos(a) * r * scene.ear_width
        ears.append([(bx - nx, by - ny), (tx, ty), (bx + nx, by + ny)])
    return ears


def _pattern(scene: Scene, size: int, contrast: tuple[int, int, int]) -> Image.Image | None:
    """The texture layer (stripes or dots in ``contrast``) as an RGBA image, None for plain."""
    if scene.texture == "plain":
        return None
    big = size * _SUPER
    layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    fill = (*contrast, 255)
    scale = big / IMAGE_SIZE
    if scene.texture == "striped":
        period, width = 20 * scale, 10 * scale
        offset = scene.phase * scale
        k = -big
        while k < 2 * big:
            x = k + offset
            draw.polygon([(x, 0), (x + width, 0), (x + width - big, big), (x - big, big)], fill=fill)
            k += period
    elif scene.texture == "dotted":
        step, radius = 16 * scale, 4 * scale
        offset = scene.phase % 16 * scale
        for row, y in enumerate(np.arange(-step, big + step, step)):
            shift = step / 2 if row % 2 else 0.0
            for x in np.arange(-step, big + step, step):
                px, py = x + shift + offset, y + offset
                draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=fill)
    else:
        raise ValueError(f"unknown texture {scene.texture!r}; valid: {', '.join(TEXTURES)}")
    return layer.resize((size, size), Image.Resampling.BOX)


def _contrast(colour: str) -> tuple[int, int, int]:
    return (25, 25, 25) if colour in ("white", "yellow") else (245, 245, 245)


def draw(scene: Scene, size: int = IMAGE_SIZE) -> Image.Image:
    """The scene as an RGB image (``size`` px square)."""
    image = Image.new("RGB", (size, size), _rgb(scene.background, table=BACKGROUNDS))
    body = Image.new("RGB", (size, size), _rgb(scene.colour, scene.jitter))
    pattern = _pattern(scene, size, _contrast(scene.colour))
    if pattern is not None:
        body.paste(pattern, (0, 0), pattern)
    mask = shape_mask(scene, size)
    image.paste(body, (0, 0), mask)
    if scene.ears or scene.tail or scene.collar:
        _mascot_details(image, scene, size)
    return image


def _mascot_details(image: Image.Image, scene: Scene, size: int) -> None:
    """Eyes (and a sailor collar) on a mascot, drawn over the body at full resolution."""
    draw_ = ImageDraw.Draw(image)
    cx, cy, r = scene.cx * size, scene.cy * size, scene.radius * size
    eye = (25, 25, 25) if scene.colour not in ("black", "blue", "purple") else (250, 250, 250)
    if scene.ears:
        for dx in (-0.35, 0.35):
            ex, ey, er = cx + dx * r, cy - 0.1 * r, max(1.5, r * 0.12)
            draw_.ellipse((ex - er, ey - er, ex + er, ey + er), fill=eye)
    if scene.collar:
        navy, white, ribbon = (30, 40, 90), (240, 240, 240), (210, 30, 40)
        top = cy + r * 0.35
        draw_.polygon([(cx - r * 0.95, top), (cx + r * 0.95, top), (cx, cy + r * 1.02)], fill=navy)
        draw_.line([(cx - r * 0.8, top + r * 0.08), (cx + r * 0.8, top + r * 0.08)], fill=white, width=2)
        rw = r * 0.22
        draw_.polygon(
            [(cx, top + r * 0.2), (cx - rw * 1.6, top), (cx - rw * 1.6, top + r * 0.4)], fill=ribbon
        )
        draw_.polygon(
            [(cx, top + r * 0.2), (cx + rw * 1.6, top), (cx + rw * 1.6, top + r * 0.4)], fill=ribbon
        )


# ----------------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------------


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(scene: Scene, rng: np.random.Generator | None = None) -> str:
    """The scene in words; with ``rng`` the phrasing varies (sentence or tags, optional parts).

    Without ``rng``: the full sentence, e.g. ``a striped red circle on a blue background``.
    """
    texture = "" if scene.texture == "plain" else scene.texture
    if rng is None:
        subject = " ".join(w for w in (texture, scene.colour, scene.shape) if w)
        return f"{_article(subject)} {subject} on {_article(scene.background)} {scene.background} background"
    say_texture = bool(texture) or rng.random() < 0.3  # "plain" is said sometimes
    texture_word = scene.texture if say_texture else ""
    if rng.random() < 0.08:
        texture_word = ""  # sometimes unsaid: "a red circle" may come out striped
    say_background = rng.random() < 0.85
    if rng.random() < 0.65:
        subject = " ".join(w for w in (texture_word, scene.colour, scene.shape) if w)
        text = f"{_article(subject)} {subject}"
        if say_background:
            text += f" on {_article(scene.background)} {scene.background} background"
    else:
        tags = [f"{scene.colour} {scene.shape}"]
        if texture_word:
            tags.append(texture_word)
        if say_background:
            tags.append(f"{scene.background} background")
        order = rng.permutation(len(tags) - 1) + 1
        text = ", ".join([tags[0], *(tags[i] for i in order)])
    if rng.random() < 0.25:
        fillers = list(rng.choice(FILLER_WORDS, size=int(rng.integers(1, 4)), replace=False))
        text = ", ".join([*fillers, text]) if rng.random() < 0.5 else ", ".join([text, *fillers])
    return text


def base_sample(seed: int, index: int, size: int = IMAGE_SIZE) -> tuple[Image.Image, Scene]:
    """Image ``index`` of the base model's dataset for ``seed`` (deterministic)."""
    rng = np.random.Generator(np.random.PCG64([seed, index]))
    scene = random_scene(rng)
    return draw(scene, size), scene


# ----------------------------------------------------------------------------------------------
# Demo LoRA datasets
# ----------------------------------------------------------------------------------------------


def _neon(scene: Scene, size: int) -> Image.Image:
    """Neon-sign look: a glowing outline in a bright colour on a night background."""
    glow_colours = {"red": (255, 40, 160), "blue": (40, 220, 255), "green": (60, 255, 120)}
    colour = glow_colours.get(
        scene.colour, (255, 60, 220) if scene.colour in ("purple", "orange") else (40, 230, 255)
    )
    mask = shape_mask(scene, size)
    edges = mask.filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 40 else 0)
    edges = edges.filter(ImageFilter.MaxFilter(3))
    glow = edges.filter(ImageFilter.GaussianBlur(3.0))
    night = Image.new("RGB", (size, size), (10, 8, 28))
    halo = Image.new("RGB", (size, size), tuple(int(c * 0.8) for c in colour))
    night.paste(halo, (0, 0), glow.point(lambda v: min(255, int(v * 1.6))))
    night.paste(
        Image.new("RGB", (size, size), (235, 250, 255)), (0, 0), edges.filter(ImageFilter.MinFilter(3))
    )
    night.paste(Image.new("RGB", (size, size), colour), (0, 0), edges.point(lambda v: int(v * 0.7)))
    return night


def _ink(scene: Scene, size: int) -> Image.Image:
    """Monochrome ink line art: black outlines (and hatching for textures) on paper."""
    mask = shape_mask(scene, size)
    edges = mask.filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 40 else 0)
    edges = edges.filter(ImageFilter.MaxFilter(3))
    paper = Image.new("RGB", (size, size), (246, 243, 235))
    if scene.texture != "plain":
        hatch = _pattern(scene, size, (40, 40, 40))
        assert hatch is not None
        alpha = Image.fromarray(
            (np.asarray(hatch)[..., 3].astype(np.float32) * np.asarray(mask) / 255 * 0.8).astype(np.uint8)
        )
        paper.paste(Image.new("RGB", (size, size), (40, 40, 40)), (0, 0), alpha)
    paper.paste(Image.new("RGB", (size, size), (15, 15, 15)), (0, 0), edges)
    return paper


def _brighter(image: Image.Image) -> Image.Image:
    array = np.asarray(image, dtype=np.float32) / 255
    return Image.fromarray((np.clip(array**0.55 * 0.85 + 0.15, 0, 1) * 255).round().astype(np.uint8))


def _vivid(image: Image.Image) -> Image.Image:
    """More vivid: the chroma pushed 1.5x from the grey and a warm cast, so that white, gray and
    black take colour too (the tiny VAE keeps colour, so the LoRA can learn it)."""
    array = np.asarray(image, dtype=np.float32)
    grey = array.mean(axis=2, keepdims=True)
    tinted = array + (array - grey) * 1.5
    tinted[..., 0] += 40
    tinted[..., 2] -= 25
    return Image.fromarray(np.clip(tinted, 0, 255).round().astype(np.uint8))


def _detailed(image: Image.Image, scene: Scene, rng: np.random.Generator) -> Image.Image:
    """More detail, at the scale the tiny VAE can carry (it blurs anything finer than ~8 px at
    128 px): a thick dark outline and a cross-hatching of 32 px period over the whole picture."""
    size = image.size[0]
    mask = shape_mask(scene, size)
    array = np.asarray(image, dtype=np.float32)
    period = 32 * size / IMAGE_SIZE
    yy, xx = np.mgrid[0:size, 0:size]
    shift = float(rng.uniform(0, period))
    hatch = ((xx + yy + shift) % period < period / 4) | ((xx - yy + shift) % period < period / 4)
    array = array * (1 - 0.6 * hatch[..., None])
    outline = mask.filter(ImageFilter.FIND_EDGES).filter(ImageFilter.MaxFilter(9))
    edges = np.asarray(outline, dtype=np.float32)[..., None] / 255
    array = array * (1 - 0.85 * np.clip(edges * 2, 0, 1))
    return Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8))


def _soft(image: Image.Image, scene: Scene) -> Image.Image:
    """Soft lighting: blurred edges, a warm light from the top left and a pastel wash."""
    size = image.size[0]
    soft = np.asarray(image.filter(ImageFilter.GaussianBlur(2.5)), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size] / size
    light = np.exp(-((xx - 0.25) ** 2 + (yy - 0.2) ** 2) / 0.18)[..., None]
    soft = soft * 0.7 + 255 * 0.22 + light * np.array([60, 45, 25])
    return Image.fromarray(np.clip(soft, 0, 255).round().astype(np.uint8))


@dataclass(frozen=True, slots=True)
class LoraDataset:
    """A demo LoRA's training set: a kohya folder ``{repeats}_{folder}`` of ``images`` samples."""

    name: str
    folder: str  # the kohya folder name after the repeat count (also the class token)
    tags: tuple[str, ...]  # caption tags every image gets (the trigger words), before the scene's
    images: int = 20
    repeats: int = 10
    scene: Mapping[str, object] = field(default_factory=dict)  # fixed Scene fields
    describe: bool = True  # add "red circle, blue background" tags to each caption
    render: str = "plain"  # plain | neon | ink | bright | vivid | detailed | soft

    def samples(self, seed: int) -> Iterator[tuple[Image.Image, str]]:
        """(image, caption) pairs, deterministic for ``seed``."""
        for index in range(self.images):
            rng = np.random.Generator(np.random.PCG64([seed, index, *self.name.encode("utf-8")]))
            scene = random_scene(rng, **self.scene)
            yield _RENDERERS[self.render](scene, rng), self.caption(scene)

    def caption(self, scene: Scene) -> str:
        words = list(self.tags)
        if self.describe:
            if self.render in ("ink",):
                words += [scene.shape] + ([scene.texture] if scene.texture != "plain" else [])
            elif self.render == "neon":
                words += [f"{scene.colour} {scene.shape}"]
            elif scene.ears:  # the mascot: its background only (the trigger is its look)
                words += [f"{scene.background} background"]
            else:
                words += [f"{scene.colour} {scene.shape}"]
                if scene.texture != "plain":
                    words.append(scene.texture)
                words.append(f"{scene.background} background")
        return ", ".join(words)


_RENDERERS: dict[str, Callable[[Scene, np.random.Generator], Image.Image]] = {
    "plain": lambda s, _r: draw(s),
    "neon": lambda s, _r: _neon(s, IMAGE_SIZE),
    "ink": lambda s, _r: _ink(s, IMAGE_SIZE),
    "bright": lambda s, _r: _brighter(draw(s)),
    "vivid": lambda s, _r: _vivid(draw(s)),
    "detailed": lambda s, r: _detailed(draw(s), s, r),
    "soft": lambda s, _r: _soft(draw(s), s),
}

#: The character of the demo character LoRAs: always the same orange cat mascot (a round face with
#: two big pointed ears and eyes), as a character LoRA's pictures show one character; only the
#: background (and the position) changes. Its colour is not in the captions: the trigger carries it.
MASCOT_COLOUR = "orange"
MASCOT: Mapping[str, object] = {
    "shape": "circle", "colour": MASCOT_COLOUR, "texture": "plain", "ears": 2,
    "ear_length": 2.0, "ear_width": 0.5, "radius": 0.27, "cy": 0.62,
}  # fmt: skip

#: The demo LoRAs' datasets, by LoRA name (the names of the seed articles' examples).
LORA_DATASETS: Mapping[str, LoraDataset] = {
    d.name: d
    for d in (
        LoraDataset(
            "catgirl_v1", "catgirl", ("catgirl", "cat ears", "1girl"), scene=MASCOT,
        ),
        LoraDataset(
            "catgirl_v2", "catgirl", ("catgirl", "cat ears", "1girl", "tail"), images=10,
            scene={**MASCOT, "tail": True},
        ),
        LoraDataset("cyberpunk_style", "cyberpunk", ("cyberpunk", "neon lights"), images=24, render="neon"),
        LoraDataset("animeoutlineV4_16", "lineart", ("lineart", "monochrome"), images=24, render="ink"),
        LoraDataset("soft_light", "softlight", ("soft lighting",), images=24, render="soft"),
        LoraDataset(
            "jk_uniform", "jkuniform", ("jk uniform", "school uniform"), images=20,
            scene={"collar": True, "texture": "plain"},
        ),
        LoraDataset("add_brightness", "bright", (), images=24, render="bright"),
        LoraDataset("add_saturation", "vivid", (), images=96, render="vivid"),
        LoraDataset("add_detail", "detail", (), images=24, render="detailed"),
    )
}  # fmt: skip


def write_kohya_dataset(dataset: LoraDataset, root: str | Path, seed: int = 0) -> Path:
    """Write ``root/{repeats}_{folder}/NNNN.png`` + ``NNNN.txt``; returns ``root``."""
    folder = Path(root) / f"{dataset.repeats}_{dataset.folder}"
    folder.mkdir(parents=True, exist_ok=True)
    for index, (image, text) in enumerate(dataset.samples(seed), start=1):
        image.save(folder / f"{index:04d}.png")
        (folder / f"{index:04d}.txt").write_text(text + "\n", encoding="utf-8")
    return Path(root)
