"""The ``python -m assistant`` subcommands (one module each) and the options they share."""

from __future__ import annotations

import argparse
import os

from ..config import Settings, load_settings
from ..errors import LibraryError


def add_lora_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--lora-dir DIR`` (repeatable): the folders the library scans."""
    parser.add_argument(
        "--lora-dir",
        action="append",
        metavar="DIR",
        help="a LoRA folder (repeat for several; default: the configured folders, models/Lora)",
    )


def settings_with_lora_dirs(args: argparse.Namespace) -> Settings:
    """The configured settings, with the ``--lora-dir`` folders (when given) as the LoRA folders.

    Raises :class:`LibraryError` naming a folder that does not exist (a typo must not scan an
    empty library and report every LoRA as unknown).
    """
    settings = load_settings()
    if not args.lora_dir:
        return settings
    for folder in args.lora_dir:
        if not os.path.isdir(folder):
            raise LibraryError(f"--lora-dir {folder}: no such folder")
    return settings.replace(lora_dirs=tuple(args.lora_dir))


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """A1111's model settings every rendering command (and app.py) takes; unset = the configured
    value (environment, lora-mixer.yaml, default)."""
    from ..engine.checks import EMPHASIS_MODES, MAX_CLIP_SKIP, RNG_SOURCES

    parser.add_argument(
        "--clip-skip",
        type=int,
        default=None,
        metavar="N",
        help=f"A1111's Clip skip, 1-{MAX_CLIP_SKIP} (2 for most anime models; default 1)",
    )
    parser.add_argument(
        "--rng",
        type=str.upper,
        choices=RNG_SOURCES,
        default=None,
        help="where the noise comes from, as A1111's RNG setting: GPU (default), CPU or NV",
    )
    parser.add_argument(
        "--emphasis",
        choices=EMPHASIS_MODES,
        default=None,
        help="A1111's emphasis mode for (word:1.2) weights (default Original)",
    )
    parser.add_argument(
        "--vae",
        default=None,
        metavar="VAE",
        help="Automatic (default), None, a file of the VAE folder, a path, a diffusers folder or a hub id",
    )
    parser.add_argument("--vae-dir", default=None, metavar="DIR", help="the VAE folder (A1111's models/VAE)")
    parser.add_argument(
        "--embeddings-dir",
        action="append",
        default=None,
        metavar="DIR",
        help="a textual-inversion folder (repeat for several; default models/embeddings)",
    )
    parser.add_argument(
        "--low-vram", action="store_true", default=None, help="CUDA: model CPU offload and a low-memory VAE"
    )


def model_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    """``settings`` with the :func:`add_model_options` flags that were given, checked."""
    from ..config import check_settings

    changed = settings.replace(
        clip_skip=args.clip_skip,
        rng=args.rng,
        emphasis=args.emphasis,
        vae=args.vae,
        vae_dir=args.vae_dir,
        embeddings_dirs=tuple(args.embeddings_dir) if args.embeddings_dir else None,
        low_vram=args.low_vram,
    )
    return check_settings(changed)
