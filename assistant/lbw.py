"""LoRA block weights: the ``lbw=`` syntax of A1111's sd-webui-lora-block-weight extension (pure).

``<lora:name:0.8:lbw=1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1>`` or ``<lora:name:0.8:lbw=OUTD>`` scales a
LoRA's effect per UNet block: the weight a layer gets is the tag's weight times its block's ratio.
As in the extension (``scripts/lora_block_weight.py``):

- a list has 17 values (SD1.x/2.x: ``BASE IN01 IN02 IN04 IN05 IN07 IN08 M00 OUT03`` … ``OUT11``, the
  blocks that hold attention), 26 (SD1.x/2.x full: ``BASE IN00``–``IN11 M00 OUT00``–``OUT11``), 12
  (SDXL: ``BASE IN04 IN05 IN07 IN08 M00 OUT00``–``OUT05``) or 20 (SDXL full: ``BASE IN00``–``IN08
  M00 OUT00``–``OUT08``) numbers; any list is spread onto the 26 blocks (``to26``), blocks a list
  does not name getting 0 (so a 17-value list, even ``ALL``, turns off a LoCon's layers in
  ``IN00 IN03 IN06 IN09``–``IN11`` and ``OUT00``–``OUT02``, exactly as the extension does);
- ``BASE`` is the text encoder(s); a UNet layer belongs to the block its original (sgm) name is in
  (``input_blocks_4_…`` is ``IN04``), found by :mod:`assistant.engine.keymap`; layers in no block
  (``time_embed``, ``out``, SDXL's ``label_emb``) keep ratio 1, as in the extension;
- a preset name stands for its list: the extension's default presets (:data:`PRESETS`).

Not supported (said, never ignored): the extension's random values ``R``/``U``, the inherited
``X`` value, its ``lbwe=`` element weights and ``start=``/``stop=`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import PromptError

__all__ = [
    "BLOCKS26",
    "BLOCK_IDS",
    "PRESETS",
    "describe",
    "parse_lbw",
    "ratios_of",
]

BLOCKS26 = (
    "BASE",
    *(f"IN{i:02d}" for i in range(12)),
    "M00",
    *(f"OUT{i:02d}" for i in range(12)),
)
_BLOCKS17 = (
    "BASE", "IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "M00",
    "OUT03", "OUT04", "OUT05", "OUT06", "OUT07", "OUT08", "OUT09", "OUT10", "OUT11",
)  # fmt: skip
_BLOCKS12 = ("BASE", "IN04", "IN05", "IN07", "IN08", "M00", *(f"OUT{i:02d}" for i in range(6)))
_BLOCKS20 = ("BASE", *(f"IN{i:02d}" for i in range(9)), "M00", *(f"OUT{i:02d}" for i in range(9)))

#: list length -> the blocks its values are for, in order
BLOCK_IDS: dict[int, tuple[str, ...]] = {12: _BLOCKS12, 17: _BLOCKS17, 20: _BLOCKS20, 26: BLOCKS26}

#: The extension's default presets (``DEF_WEIGHT_PRESET``), 17 values each.
PRESETS: dict[str, tuple[float, ...]] = {
    "NONE": (0,) * 17,
    "ALL": (1,) * 17,
    "INS": (1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "IND": (1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "INALL": (1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "MIDD": (1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
    "OUTD": (1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0),
    "OUTS": (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1),
    "OUTALL": (1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    "ALL0.5": (0.5,) * 17,
}

_LENGTHS = ", ".join(str(n) for n in sorted(BLOCK_IDS))


def parse_lbw(text: str, where: str = "") -> tuple[float, ...]:
    """The 26 block ratios (``BASE``, ``IN00``–``IN11``, ``M00``, ``OUT00``–``OUT11``) of an
    ``lbw=`` value: a preset name (case as written, like the extension) or a list of numbers.

    Raises :class:`PromptError` with what is wrong (``where``: the tag, for the message)."""
    value = text.strip()
    at = f" in {where}" if where else ""
    if not value:
        raise PromptError(f"lbw= is empty{at}; give a preset ({', '.join(PRESETS)}) or {_LENGTHS} numbers")
    if value in PRESETS:
        values: Sequence[float] = PRESETS[value]
    else:
        items = [item.strip() for item in value.split(",")]
        if len(items) == 1:
            raise PromptError(
                f"lbw={value}{at} is not a known preset ({', '.join(PRESETS)}) nor a list of numbers"
            )
        if len(items) not in BLOCK_IDS:
            raise PromptError(
                f"lbw{at} has {len(items)} values; sd-webui-lora-block-weight reads {_LENGTHS} "
                "(17 for SD1.5, 12 for SDXL, 26/20 for every block)"
            )
        numbers = []
        for item in items:
            if item in ("R", "U") or item.startswith("X"):
                raise PromptError(
                    f"lbw value '{item}'{at} (the extension's random/inherited value) is not supported; "
                    "write a number"
                )
            try:
                number = float(item)
            except ValueError:
                raise PromptError(f"lbw value '{item}'{at} is not a number") from None
            if not math.isfinite(number):
                raise PromptError(f"lbw value '{item}'{at} is not a finite number")
            numbers.append(number)
        values = numbers
    ids = BLOCK_IDS[len(values)]
    out = [0.0] * 26
    for block, ratio in zip(ids, values, strict=True):
        out[BLOCKS26.index(block)] = float(ratio)
    return tuple(out)


def describe(ratios: Sequence[float], base: str = "sd15") -> str:
    """A short explanation: ``text encoder 1, IN01–IN08 0, M00 0, OUT03–OUT06 1, OUT07–OUT11 0``
    (the blocks this base has: SDXL's UNet has IN00–IN08, M00, OUT00–OUT08)."""
    present = [b for b in BLOCKS26 if base != "sdxl" or b in _BLOCKS20]
    parts: list[str] = []
    run: list[str] = []
    current: float | None = None

    def flush() -> None:
        if not run:
            return
        label = run[0] if len(run) == 1 else f"{run[0]}–{run[-1]}"
        if run == ["BASE"]:
            label = "text encoder"
        parts.append(f"{label} {current:g}")

    for block in present:
        ratio = ratios[BLOCKS26.index(block)]
        if current is None or ratio != current or block in ("IN00", "M00", "OUT00"):
            flush()
            run, current = [block], ratio
        else:
            run.append(block)
    flush()
    return ", ".join(parts)


def ratios_of(text: str) -> tuple[float, ...] | None:
    """:func:`parse_lbw` of a tag's ``lbw`` text, None for none (the text was checked when read)."""
    return parse_lbw(text) if text else None
