"""Where images go and how they are found again: the requester's folder under the outputs
(:mod:`assistant.owners`), numbered files that carry their A1111 infotext, and the History.

:meth:`Outputs.save_results` is the one image-saving path of single renders (app, API, CLI); grids
are saved by :func:`assistant.grid.save` in a folder from :meth:`Outputs._next_folder`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from .. import owners
from ..owners import Requester
from ..types import GenerationResult
from .core import ServiceCore
from .results import HistoryItem

_NUMBERED = re.compile(r"^(\d{5})-")


class Outputs(ServiceCore):
    """The outputs folder of the service: saving numbered images, listing the History."""

    @property
    def outputs_dir(self) -> Path:
        return Path(self.settings.outputs_dir).expanduser().resolve()

    def owner_dir(self, requester: Requester | None = None) -> Path:
        """The folder the requester's images go to (the outputs folder itself when shared)."""
        requester = requester or owners.current()
        return self.outputs_dir / self.history_policy.folder(requester)

    def _day_dir(self) -> Path:
        folder = self.owner_dir() / datetime.now(UTC).strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _next_number(self, folder: Path) -> int:
        numbers = [int(m.group(1)) for p in folder.iterdir() if (m := _NUMBERED.match(p.name))]
        return max(numbers, default=-1) + 1

    def _next_folder(self, kind: str) -> Path:
        day = self._day_dir()
        folder = day / f"{self._next_number(day):05d}-{kind}"
        folder.mkdir()
        return folder

    def save_results(
        self, results: Sequence[GenerationResult], *, folder: str | Path | None = None
    ) -> list[str]:
        """Save every image as ``outputs/<day>/<nnnnn>-<seed>.png`` (or ``<folder>/<nnnnn>-<seed>.png``)
        with its infotext chunk: the one image-saving path of single renders (app, API, CLI)."""
        from ..infotext import png_info

        paths: list[str] = []
        with self._save_lock:
            if folder is not None:
                day = Path(folder)
                day.mkdir(parents=True, exist_ok=True)
            else:
                day = self._day_dir()
            number = self._next_number(day)
            for result in results:
                for image, text, seed in zip(result.images, result.infotexts, result.seeds, strict=False):
                    path = day / f"{number:05d}-{seed}.png"
                    image.save(path, pnginfo=png_info(text))
                    paths.append(str(path))
                    number += 1
        return paths

    def history(self, limit: int = 40, *, requester: Requester | None = None) -> list[HistoryItem]:
        """The newest saved images and grids, newest first (a grid's cell files are left out).

        With a private :class:`~assistant.owners.HistoryPolicy` only the requester's own folder
        is read (the bound requester when none is given); with a shared one, every file."""
        from ..infotext import read_png

        requester = requester or owners.current()
        if self.history_policy.sees_all(requester):
            root = self.outputs_dir
        else:
            root = self.owner_dir(requester)
            if root == self.outputs_dir:  # a private history never falls back to everything
                return []
        if not root.is_dir():
            return []
        files = sorted(
            (p for p in root.rglob("*.png") if p.is_file() and not p.name.startswith("cell-")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )[: max(0, limit)]
        items: list[HistoryItem] = []
        for path in files:
            try:
                info = read_png(path)
            except (OSError, ValueError):
                info = None
            items.append(
                HistoryItem(
                    path=str(path),
                    prompt=info.prompt if info is not None else "",
                    seed=info.seed if info is not None else None,
                    mtime=path.stat().st_mtime,
                )
            )
        return items
