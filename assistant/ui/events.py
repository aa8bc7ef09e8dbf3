"""How the app's Gradio events run: as their sender, with errors as toasts, on a GPU slice.

:func:`friendly` wraps every handler the layout wires: a :class:`~assistant.errors.LoraMixerError`
becomes a toast saying what was wrong, anything else is logged and answered with
:data:`GENERIC_ERROR`; a plain handler runs as its sender (:func:`requester_of`), so the images
it saves go to that user's or session's folder. :func:`gpu` is Hugging Face ZeroGPU's decorator
when the ``spaces`` package is present, else a no-op.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from .. import owners
from ..errors import LoraMixerError

__all__ = ["GENERIC_ERROR", "friendly", "gpu", "requester_of"]

log = logging.getLogger("lora_mixer.app")

F = TypeVar("F", bound=Callable[..., Any])

GENERIC_ERROR = "Something went wrong on the server; nothing was changed. The server log has the details."

try:  # Hugging Face ZeroGPU: run renders on a GPU slice when the `spaces` package is present
    import spaces  # type: ignore[import-not-found]

    gpu = spaces.GPU
except ImportError:  # everywhere else: a no-op decorator

    def gpu(fn: F | None = None, **_kwargs: Any) -> Any:
        return fn if fn is not None else (lambda f: f)


def _toast(message: str) -> gr.Error:
    """A toast for ``message``. Toasts render HTML, so ``<lora:…>`` would vanish (cutting the
    message mid-quote): the text is escaped."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def requester_of(request: gr.Request | None) -> owners.Requester:
    """Who sent a UI event: the signed-in user, else the browser session (one page load)."""
    if request is None:
        return owners.current()
    return owners.Requester(
        user=getattr(request, "username", None) or None,
        session=getattr(request, "session_hash", None) or None,
        channel="ui",
    )


def friendly(fn: F) -> F:
    """Show LoraMixerError messages as gr.Error; log anything else and show a generic message.

    Works for plain handlers and for generator handlers (streamed replies) alike. A plain
    handler runs as its sender (:func:`requester_of` the ``gr.Request`` Gradio passes), so the
    images it saves go to that user's or session's folder (:mod:`assistant.owners`); a streamed
    request's render runs in its own thread, bound to its sender there (``Handlers._render``).
    """

    def explain(err: Exception) -> gr.Error:
        if isinstance(err, gr.Error):
            return err
        if isinstance(err, LoraMixerError):
            return _toast(str(err))
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(GENERIC_ERROR, print_exception=False)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def streaming(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:
                raise explain(err) from None

        return streaming  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        request = next((v for v in (*args, *kwargs.values()) if isinstance(v, gr.Request)), None)
        try:
            with owners.acting_for(requester_of(request)):
                return fn(*args, **kwargs)
        except Exception as err:
            raise explain(err) from None

    return wrapper  # type: ignore[return-value]
