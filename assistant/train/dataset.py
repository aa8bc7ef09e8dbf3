"""kohya-ss training folders: read, check and describe a dataset before any model is loaded.

Pure Python (Pillow for the image check; no torch). The layout is kohya's "DreamBooth style"::

    DATASET/
      10_catgirl/            # 10 = repeats (each image is seen 10 times per epoch), "catgirl" = class token
        0001.png
        0001.txt             # its caption (first line), or 0001.caption
      5_catgirl smiling/
        ...

As in sd-scripts: the repeat count is the number before the first ``_``; the class token is the
rest (``10_cat_girl`` → ``cat_girl``); a caption is the first line of the same-stem ``.txt`` or
``.caption`` file; an image without a caption file is captioned with the class token.
:func:`tag_frequency` counts comma-separated tags per folder, lower-cased, the way sd-scripts
fills ``ss_tag_frequency``.

Unlike sd-scripts — which logs a warning and skips a folder without a repeat count, an empty
folder or an unreadable image, and then trains on whatever is left — :func:`read_dataset` collects
every such problem and raises one :class:`~assistant.errors.DatasetError` listing them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CAPTION_EXTENSIONS = (".txt", ".caption")
#: Folders and files sd-scripts and tools leave in dataset folders; never training data.
_IGNORED = {".ipynb_checkpoints", "__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}
MAX_REPEATS = 10_000
#: An image smaller than this on its shorter side is refused (it would be upscaled into mush).
MIN_IMAGE_SIDE = 32


@dataclass(frozen=True, slots=True)
class TrainImage:
    """One image with its caption and where the caption came from."""

    path: str
    caption: str
    caption_source: str  # "file" (a .txt/.caption next to it) or "folder" (the class token)
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Subset:
    """One ``{repeats}_{class token}`` folder."""

    path: str
    repeats: int
    class_token: str
    images: tuple[TrainImage, ...]

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass(frozen=True, slots=True)
class Dataset:
    """A checked dataset: its folders, with counts the trainer and the metadata need."""

    root: str
    subsets: tuple[Subset, ...]
    notes: tuple[str, ...] = ()  # non-fatal remarks (e.g. images captioned by their folder name)

    @property
    def num_images(self) -> int:
        return sum(len(s.images) for s in self.subsets)

    @property
    def num_train_images(self) -> int:
        """Images × repeats: the samples of one epoch (sd-scripts' ``ss_num_train_images``)."""
        return sum(len(s.images) * s.repeats for s in self.subsets)

    def items(self) -> list[TrainImage]:
        """Every image repeated as its folder says, in a stable order (one epoch's samples)."""
        return [image for s in self.subsets for _ in range(s.repeats) for image in s.images]

    def tag_frequency(self) -> dict[str, dict[str, int]]:
        """``{folder name: {tag: captions containing it}}`` (sd-scripts' ``ss_tag_frequency``)."""
        return {s.name: tag_frequency(i.caption for i in s.images) for s in self.subsets}

    def dataset_dirs(self) -> dict[str, dict[str, int]]:
        """``{folder name: {"n_repeats": r, "img_count": n}}`` (sd-scripts' ``ss_dataset_dirs``)."""
        return {s.name: {"n_repeats": s.repeats, "img_count": len(s.images)} for s in self.subsets}

    def trigger_words(self) -> list[str]:
        """The tags every caption has, in caption order, generic ones (``1girl``, ``solo``,
        quality words — the library's list) left out: what a user must type to get the concept."""
        from ..library import GENERIC_TAGS

        counts: dict[str, int] = {}
        for tags in self.tag_frequency().values():
            for tag, n in tags.items():
                counts[tag] = counts.get(tag, 0) + n
        return [t for t, n in counts.items() if n >= self.num_images and t not in GENERIC_TAGS]


def tag_frequency(captions: Iterable[str]) -> dict[str, int]:
    """How many captions contain each comma-separated tag (stripped, lower-cased)."""
    counts: dict[str, int] = {}
    for caption in captions:
        for raw in caption.split(","):
            tag = raw.strip().lower()
            if tag:
                counts[tag] = counts.get(tag, 0) + 1
    return counts


def parse_folder_name(name: str) -> tuple[int, str] | None:
    """``"10_catgirl"`` → ``(10, "catgirl")``; None when the name has no repeat count."""
    head, sep, rest = name.partition("_")
    if not sep or not head.isdigit():
        return None
    return int(head), rest


def _read_caption(path: Path) -> tuple[str | None, str | None]:
    """(caption, problem): sd-scripts reads the first line of a UTF-8 file."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        return None, f"{path}: cannot be read ({exc.strerror or exc})"
    try:
        decoded = text.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, f"{path}: not UTF-8 text (save the caption as UTF-8)"
    lines = [line.strip() for line in decoded.splitlines() if line.strip()]
    if not lines:
        return (
            None,
            f"{path}: the caption file is empty "
            "(write the caption, or delete the file to use the folder name)",
        )
    return lines[0], None


def _check_image(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:  # verify() leaves the file unusable; reopen for the size
            image.load()
            size = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return None, f"{path}: not a readable image ({type(exc).__name__}: {str(exc)[:120]})"
    if min(size) < MIN_IMAGE_SIDE:
        return None, f"{path}: {size[0]}x{size[1]} px is too small (at least {MIN_IMAGE_SIDE} px a side)"
    return size, None


def read_dataset(root: str | os.PathLike[str], *, caption_extension: str | None = None) -> Dataset:
    """Read and check a kohya dataset folder; raises DatasetError listing every problem."""
    base = Path(root).expanduser()
    if not base.exists():
        raise DatasetError(str(root), [f"no such folder: {base}"])
    if not base.is_dir():
        raise DatasetError(str(root), [f"{base} is a file; give the folder that holds the 10_name folders"])
    extensions = (caption_extension,) if caption_extension else CAPTION_EXTENSIONS
    if caption_extension and not caption_extension.startswith("."):
        raise DatasetError(
            str(root), [f"caption extension '{caption_extension}' must start with a dot (.txt)"]
        )
    problems: list[str] = []
    notes: list[str] = []
    subsets: list[Subset] = []
    entries = sorted(p for p in base.iterdir() if p.name not in _IGNORED and not p.name.startswith("."))
    loose = [p.name for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if loose:
        problems.append(
            f"{len(loose)} image(s) directly in {base} (e.g. {loose[0]}); kohya's layout puts them in a "
            f"subfolder named REPEATS_NAME, e.g. {base / ('10_' + _guess_token(base))}/"
        )
    folders = [p for p in entries if p.is_dir()]
    for folder in folders:
        parsed = parse_folder_name(folder.name)
        if parsed is None:
            has_images = any(f.suffix.lower() in IMAGE_EXTENSIONS for f in folder.iterdir() if f.is_file())
            if has_images:
                problems.append(
                    f"folder '{folder.name}' has no repeat count: rename it '10_{folder.name}' "
                    "(the number is how many times each image is repeated per epoch)"
                )
            continue
        repeats, token = parsed
        if not 1 <= repeats <= MAX_REPEATS:
            problems.append(f"folder '{folder.name}': repeat count {repeats} must be 1 to {MAX_REPEATS}")
            continue
        subset, folder_problems, folder_notes = _read_subset(folder, repeats, token, extensions)
        problems += folder_problems
        notes += folder_notes
        if subset is not None:
            subsets.append(subset)
    if not subsets and not problems:
        problems.append(
            f"no training folders in {base}: put the images in a subfolder named REPEATS_NAME, "
            f"e.g. {base / '10_catgirl'}/"
        )
    if problems:
        raise DatasetError(str(root), problems)
    return Dataset(root=str(base), subsets=tuple(subsets), notes=tuple(notes))


def _guess_token(base: Path) -> str:
    return base.name.replace(" ", "_") or "name"


def _read_subset(
    folder: Path, repeats: int, token: str, extensions: tuple[str, ...]
) -> tuple[Subset | None, list[str], list[str]]:
    problems: list[str] = []
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.name not in _IGNORED), key=lambda p: p.name
    )
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    image_stems = {p.stem for p in images}
    captions: dict[str, Path] = {}
    for extension in extensions:  # .txt before .caption when both exist
        for p in files:
            if p.suffix.lower() == extension:
                captions.setdefault(p.stem, p)
    orphans = sorted(
        name for stem, name in ((s, c.name) for s, c in captions.items()) if stem not in image_stems
    )
    if orphans:
        problems.append(
            f"folder '{folder.name}': {len(orphans)} caption file(s) without an image "
            f"({', '.join(orphans[:5])}{' …' if len(orphans) > 5 else ''}); "
            "add the image or delete the caption"
        )
    if not images:
        problems.append(f"folder '{folder.name}' has no images ({', '.join(IMAGE_EXTENSIONS)})")
        return None, problems, []
    items: list[TrainImage] = []
    by_folder: list[str] = []
    for path in images:
        size, problem = _check_image(path)
        if problem:
            problems.append(problem)
            continue
        assert size is not None
        caption_file = captions.get(path.stem)
        if caption_file is not None:
            caption, problem = _read_caption(caption_file)
            if problem:
                problems.append(problem)
                continue
            assert caption is not None
            items.append(TrainImage(str(path), caption, "file", *size))
        else:
            if not token.strip():
                problems.append(
                    f"{path}: no caption file and folder '{folder.name}' has no class token after the "
                    "repeat count to use instead; add a caption or rename the folder e.g. "
                    f"'{repeats}_catgirl'"
                )
                continue
            by_folder.append(path.name)
            items.append(TrainImage(str(path), token, "folder", *size))
    notes = []
    if by_folder:
        notes.append(
            f"folder '{folder.name}': {len(by_folder)} image(s) without a caption file are captioned "
            f"'{token}' (the folder name)"
        )
    return Subset(str(folder), repeats, token, tuple(items)), problems, notes


def describe(dataset: Dataset) -> Mapping[str, object]:
    """A JSON-ready summary (CLI ``--json``, the Train tab)."""
    return {
        "root": dataset.root,
        "images": dataset.num_images,
        "images_with_repeats": dataset.num_train_images,
        "folders": dataset.dataset_dirs(),
        "tag_frequency": dataset.tag_frequency(),
        "notes": list(dataset.notes),
    }
