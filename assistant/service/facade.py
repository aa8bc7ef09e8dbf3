"""The :class:`Service`: the one object the Gradio app, the A1111 API and the CLI call.

It is composed of this package's parts, each one responsibility over the state that
:class:`~assistant.service.core.ServiceCore` holds (engine, library, settings, the render gate):
:mod:`~assistant.service.turns` (chat messages and buttons) on :mod:`~assistant.service.plans`
(blind box, A/B, sweep) on :mod:`~assistant.service.rendering` (prepare, render, save), with
:mod:`~assistant.service.catalog` (LoRAs, recipes, embeddings, PNG Info),
:mod:`~assistant.service.outputs` (saved files, History), :mod:`~assistant.service.models` (base
models), :mod:`~assistant.service.training` and :mod:`~assistant.service.options` (A1111 options).
"""

from __future__ import annotations

from .catalog import Catalog
from .core import ServiceCore
from .models import Models
from .options import Options
from .outputs import Outputs
from .plans import Plans
from .rendering import Rendering
from .training import Training
from .turns import Turns


class Service(Turns, Plans, Rendering, Training, Catalog, Outputs, Models, Options, ServiceCore):
    """Engine + library + settings behind one gate; the API and the app share one instance.

    ``engine`` and ``library`` can be injected (tests); otherwise :meth:`start` builds them from
    ``settings`` and ``engine_options`` (in-process by default). Rendering methods are
    thread-safe: as many renders run at once as the engine's ``capacity`` (one in-process).
    ``history`` decides whether the History is private per user/session or server-wide.
    """
