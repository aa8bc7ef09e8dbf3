"""The shape of the assistant/api/ package (issue 17 item 8): small modules, each with a
docstring, and every public name the single-file ``assistant/api.py`` (1,082 lines) had."""

from __future__ import annotations

import assistant.api as api

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


def test_the_old_public_names_are_still_importable_from_assistant_api() -> None:
    absent = [name for name in OLD_PUBLIC_NAMES if not hasattr(api, name)]
    assert absent == []
    assert set(OLD_PUBLIC_NAMES) <= set(api.__all__)
    assert api.PREFIX == "/sdapi/v1"
