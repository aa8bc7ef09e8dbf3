"""The prompt package as a whole: one clear_caches for the memoised steps of all its modules."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from assistant import prompt


def _caches() -> dict[str, Any]:
    """Every ``functools.lru_cache`` function defined in a module of the package, by name."""
    found: dict[str, Any] = {}
    for info in pkgutil.iter_modules(prompt.__path__):
        module = importlib.import_module(f"{prompt.__name__}.{info.name}")
        for name, value in vars(module).items():
            if hasattr(value, "cache_clear") and getattr(value, "__module__", None) == module.__name__:
                found[f"{info.name}.{name}"] = value
    return found


def test_clear_caches_empties_the_caches_of_every_module_of_the_package() -> None:
    """prompt.py became a package; a cache in any of its modules must still be freed by clear_caches."""
    caches = _caches()
    assert caches
    parsed = prompt.parse("1girl, (cat ears:1.2), <lora:catgirl_v1:0.8>", "<lora:add_detail:-0.5>")
    assert prompt.has_term(parsed.positive, "cat ears")
    assert [name for name, cache in caches.items() if not cache.cache_info().currsize] == []
    prompt.clear_caches()
    assert {name: cache.cache_info().currsize for name, cache in caches.items()} == dict.fromkeys(caches, 0)
