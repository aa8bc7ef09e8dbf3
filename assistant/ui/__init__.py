"""The Gradio app (``app.py`` is its entry point).

The gradio side: :mod:`~assistant.ui.launch` (command line, launch), :mod:`~assistant.ui.layout`
(the page's events), :mod:`~assistant.ui.page` (its components), :mod:`~assistant.ui.handlers` and
:mod:`~assistant.ui.flow` (the event handlers), :mod:`~assistant.ui.events` (how an event runs:
errors as toasts, as its sender).

The pure helpers import neither gradio nor torch (``tests/test_imports.py``), so each is
unit-tested without a server: :mod:`~assistant.ui.binding` (component values → a handler's typed
values), :mod:`~assistant.ui.conversation`, :mod:`~assistant.ui.cards`, :mod:`~assistant.ui.prompts`,
:mod:`~assistant.ui.messages`, :mod:`~assistant.ui.img2img` and :mod:`~assistant.ui.train` (these two
import gradio only inside the function that builds their components).
"""
