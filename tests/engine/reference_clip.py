"""The reference CLIP tokenizer: open_clip's ``SimpleTokenizer`` (OpenAI's code), fetched at test time.

``open_clip_torch`` cannot be installed here (it pulls torchvision and a CUDA torch), so the
tests take its pure-Python tokenizer module and OpenAI's BPE file from the wheel itself:
``pip download --no-deps`` of one pinned version (checked by sha256) into ``.cache/reference/``,
then the two files are unpacked and imported. It runs wherever PyPI answers (CI does); where it
cannot, the test FAILS with the reason — a parity test that skipped would prove nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from ..reference_wheels import CACHE, unpacked_wheel

WHEEL = "open_clip_torch-3.3.0-py3-none-any.whl"
REQUIREMENT = "open_clip_torch==3.3.0"
WHEEL_SHA256 = "c549ad5ed6bfc119cc11105033c0a2b9d7a2a4afeb40a58a09aab3da1a0043ce"
MEMBERS = ("open_clip/tokenizer.py", "open_clip/bpe_simple_vocab_16e6.txt.gz")


def reference_files() -> Path:
    """The folder holding ``open_clip/tokenizer.py`` and the BPE file (downloaded once)."""
    folder = CACHE / "open_clip_torch-3.3.0"
    if all((folder / m).is_file() for m in MEMBERS):
        return folder
    return unpacked_wheel(
        REQUIREMENT,
        WHEEL,
        WHEEL_SHA256,
        folder=folder,
        members=MEMBERS.__contains__,
        purpose="The CLIP parity test",
    )


def simple_tokenizer() -> object:
    """An instance of open_clip's ``SimpleTokenizer`` (OpenAI's BPE, ftfy + html cleaning)."""
    folder = reference_files()
    spec = importlib.util.spec_from_file_location("_reference_clip_tokenizer", folder / MEMBERS[0])
    assert spec is not None
    assert spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer(str(folder / MEMBERS[1]))
