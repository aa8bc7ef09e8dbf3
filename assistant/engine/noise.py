"""Where the random numbers come from: A1111's ``RNG`` setting (``randn_source``): GPU, CPU or NV.

A1111 draws each image's starting noise, and the later noise of ancestral samplers, from one
generator per seed (``modules/rng.py``: ``ImageRNG``); diffusers does the same with a list of
generators. What differs is the device:

- ``GPU`` (A1111's default; not written in its infotext): torch's generator on the device the
  model runs on. On CUDA the numbers differ from the CPU's for the same seed; on a CPU-only
  machine GPU and CPU are the same numbers. Apple MPS draws on the CPU (as A1111 does).
- ``CPU`` (infotext ``RNG: CPU``): torch's CPU generator everywhere: the same image on every
  machine.
- ``NV`` (infotext ``RNG: NV``): A1111's Philox 4x32-10 + Box-Muller port of CUDA's
  ``torch.randn`` (``modules/rng_philox.py``), run on the CPU: a seed from an image made on an
  NVIDIA GPU gives the same noise on any machine.

So a seed from an A1111 image (``RNG:`` absent = GPU) replays on CUDA with ``--rng gpu``, and an
image made here with ``--rng cpu`` replays anywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .checks import RNG_SOURCES

DEFAULT_RNG = RNG_SOURCES[0]

_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
_TWO_POW32_INV = np.array([2.3283064e-10], dtype=np.float32)
_TWO_POW32_INV_2PI = np.array([2.3283064e-10 * 6.2831855], dtype=np.float32)


def _split32(x: np.ndarray) -> np.ndarray:
    """(N,) uint64 -> (2, N) uint32 (low, high)."""
    return x.view(np.uint32).reshape(-1, 2).transpose(1, 0)


class PhiloxGenerator:
    """CUDA's ``torch.randn`` on the CPU, as A1111's ``rng_philox.Generator`` computes it."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.offset = 0

    def randn(self, shape: Sequence[int]) -> np.ndarray:
        n = int(np.prod(shape))
        counter = np.zeros((4, n), dtype=np.uint32)
        counter[0] = self.offset
        counter[2] = np.arange(n, dtype=np.uint32)
        self.offset += 1
        key = _split32(np.full(n, self.seed, dtype=np.uint64))
        for round_ in range(10):
            v1 = _split32(counter[0].astype(np.uint64) * _PHILOX_M[0])
            v2 = _split32(counter[2].astype(np.uint64) * _PHILOX_M[1])
            counter[0] = v2[1] ^ counter[1] ^ key[0]
            counter[1] = v2[0]
            counter[2] = v1[1] ^ counter[3] ^ key[1]
            counter[3] = v1[0]
            if round_ < 9:
                key[0] = key[0] + np.uint32(_PHILOX_W[0])
                key[1] = key[1] + np.uint32(_PHILOX_W[1])
        u = counter[0] * _TWO_POW32_INV + _TWO_POW32_INV / 2
        v = counter[1] * _TWO_POW32_INV_2PI + _TWO_POW32_INV_2PI / 2
        return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32).reshape(tuple(shape))


def generator_device(source: str, device: str | torch.device) -> str:
    """The device torch generators live on for ``source`` when the model runs on ``device``."""
    kind = torch.device(device).type
    if source == "CPU" or kind in ("cpu", "mps"):
        return "cpu"
    return str(torch.device(device))


def generators(seeds: Sequence[int], source: str, device: str | torch.device) -> list[Any]:
    """One generator per image, seeded like A1111's ``create_generator``."""
    if source == "NV":
        return [PhiloxGenerator(s) for s in seeds]
    where = generator_device(source, device)
    return [torch.Generator(where).manual_seed(int(s)) for s in seeds]


def initial_latents(
    gens: Sequence[Any], shape: Sequence[int], device: str | torch.device, dtype: torch.dtype
) -> torch.Tensor | None:
    """The starting noise for Philox generators (``[n, *shape]``); None for torch generators,
    whose first draw diffusers makes itself (the same numbers, from the same generators)."""
    if not gens or not isinstance(gens[0], PhiloxGenerator):
        return None
    return torch.stack([torch.from_numpy(g.randn(shape)) for g in gens]).to(device=device, dtype=dtype)


@contextmanager
def philox_step_noise(scheduler: Any, gens: Sequence[Any]) -> Iterator[None]:
    """Ancestral/SDE samplers draw noise with diffusers' ``randn_tensor`` in their module; with
    Philox generators that draw comes from them (one per image, in order), as in A1111's NV mode.
    A no-op for torch generators."""
    if not gens or not isinstance(gens[0], PhiloxGenerator):
        yield
        return
    module = sys.modules.get(type(scheduler).__module__)
    original = getattr(module, "randn_tensor", None)
    if module is None or original is None:
        yield
        return

    def randn_tensor(
        shape: Sequence[int], generator: Any = None, device: Any = None, dtype: Any = None, **_kw: Any
    ) -> torch.Tensor:
        rows = int(shape[0])
        per = [gens[i % len(gens)].randn(tuple(shape[1:])) for i in range(rows)]
        return torch.from_numpy(np.stack(per)).to(device=device, dtype=dtype)

    module.randn_tensor = randn_tensor  # type: ignore[attr-defined]
    try:
        yield
    finally:
        module.randn_tensor = original  # type: ignore[attr-defined]
