"""LoRA Mixer web app: a chat-first Gradio UI and the A1111-compatible API on one server.

    python app.py --host 127.0.0.1 --port 7860 --model <hub id | folder | .safetensors> --lora-dir <folder>

The entry point (also Hugging Face Spaces'): the app itself lives in :mod:`assistant.ui` —
:mod:`~assistant.ui.launch` (the command line and the launch), :mod:`~assistant.ui.layout` and
:mod:`~assistant.ui.page` (the page), :mod:`~assistant.ui.handlers` and :mod:`~assistant.ui.flow`
(the handlers, which convert component values, call :class:`assistant.service.Service` — the same
object the ``/sdapi/v1`` routes call — and format the result). Global state is only that shared
service (engine, library); each user's choices live in their session (components,
``gr.BrowserState``). Importing this module builds nothing and launches nothing.
"""

from __future__ import annotations

import os

# Gradio's usage analytics phone home at launch; off unless the user opts in (set it to "True").
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from assistant.ui.binding import bind
from assistant.ui.events import GENERIC_ERROR, friendly, gpu, requester_of
from assistant.ui.flow import FILL_OUTPUTS, FlowHandlers, apply_fill
from assistant.ui.handlers import HISTORY_LIMIT, KNOWN_SAMPLERS, Handlers, thumbs_dir
from assistant.ui.launch import blocked_paths, launch, main, parse_args, settings_from_args, warn_exposure
from assistant.ui.layout import CHAT_EXAMPLES, CSS, build_demo, setting_slider

__all__ = [
    "CHAT_EXAMPLES",
    "CSS",
    "FILL_OUTPUTS",
    "GENERIC_ERROR",
    "HISTORY_LIMIT",
    "KNOWN_SAMPLERS",
    "FlowHandlers",
    "Handlers",
    "apply_fill",
    "bind",
    "blocked_paths",
    "build_demo",
    "friendly",
    "gpu",
    "launch",
    "main",
    "parse_args",
    "requester_of",
    "setting_slider",
    "settings_from_args",
    "thumbs_dir",
    "warn_exposure",
]

if __name__ == "__main__":
    raise SystemExit(main())
