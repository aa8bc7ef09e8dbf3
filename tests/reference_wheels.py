"""Pinned reference wheels fetched at test time (never installed): one place for the download.

Some reference code cannot enter the runtime install (open_clip pulls a CUDA torch; lycoris-lora
brings its trainer's dependencies), so the tests ``pip download --no-deps`` one pinned wheel into
``.cache/reference/``, check its sha256 and unpack the members they need. Where PyPI cannot be
reached the test FAILS with the reason (a reference test that skipped would prove nothing);
putting the wheel into the cache folder works offline.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "reference"


def unpacked_wheel(
    requirement: str,
    wheel_name: str,
    sha256: str,
    *,
    folder: Path,
    members: Callable[[str], bool],
    purpose: str,
) -> Path:
    """Download ``requirement``'s wheel once (sha256-checked) and unpack the members selected by
    ``members`` into ``folder``, which is returned. ``purpose`` names the test in the failure."""
    wheel = CACHE / wheel_name
    if not wheel.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        done = subprocess.run(
            [*command, "-d", str(CACHE), requirement],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not wheel.is_file():
            pytest.fail(
                f"could not fetch the reference ({requirement}) from the package index: "
                f"{(done.stderr or done.stdout).strip()[-600:]}. {purpose} needs PyPI once; "
                f"or put {wheel_name} into {CACHE}.",
                pytrace=False,
            )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != sha256:
        pytest.fail(f"{wheel} is not the pinned reference wheel (sha256 {digest})", pytrace=False)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if members(member):
                archive.extract(member, folder)
    return folder
