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
