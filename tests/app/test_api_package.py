"""The shape of the assistant/api/ package (issue 17 item 8): small modules, each with a
docstring, and every public name the single-file ``assistant/api.py`` (1,082 lines) had."""

from __future__ import annotations

import ast
from pathlib import Path

import assistant.api as api

PACKAGE = Path(api.__file__).parent

#: Every public name the single-file ``assistant/api.py`` defined (importers use ``create_app``,
#: ``app_kwargs`` and ``Txt2ImgRequest``; the rest is the module's documented surface).
OLD_PUBLIC_NAMES = (
    "DOCS_ASSETS",
    "DOC_PATHS",
    "PREFIX",
    "ErrorBody",
    "Img2ImgRequest",
    "JSONBodyRoute",
    "LoraEntry",
    "ModelEntry",
    "PngInfoRequest",
    "SamplerEntry",
    "Txt2ImgRequest",
    "Txt2ImgResponse",
    "app_kwargs",
    "create_app",
    "create_router",
    "decode_base64",
    "docs_routes",
    "validation_handler",
    "validation_message",
)


def _modules() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(PACKAGE.glob("*.py"))}


def test_api_is_a_package_of_modules_under_700_lines() -> None:
    modules = _modules()
    assert PACKAGE.name == "api"
    assert not (PACKAGE.parent / "api.py").exists()  # a stale single file would be shadowed
    assert len(modules) > 1
    sizes = {name: len(text.splitlines()) for name, text in modules.items()}
    assert {name: lines for name, lines in sizes.items() if lines > 700} == {}


def test_every_module_of_the_api_package_says_what_it_is_for() -> None:
    missing = [name for name, text in _modules().items() if not ast.get_docstring(ast.parse(text))]
    assert missing == []


def test_the_old_public_names_are_still_importable_from_assistant_api() -> None:
    absent = [name for name in OLD_PUBLIC_NAMES if not hasattr(api, name)]
    assert absent == []
    assert set(OLD_PUBLIC_NAMES) <= set(api.__all__)
    assert api.PREFIX == "/sdapi/v1"
