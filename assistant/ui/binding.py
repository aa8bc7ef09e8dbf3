"""Handlers take typed values; Gradio passes one value per input component.

:func:`bind` turns a handler such as ``generate(positive, negative, *, settings: RenderSettings,
image: ImageInputs, request)`` into the function Gradio calls: a spelled-out signature (one
parameter per component, named as the API has always named them: ``sampler``, ``steps``, …,
``init_image``, ``strength``, …) whose values are packed into ONE typed value per group —
the seven render settings into a :class:`~assistant.service.RenderSettings`, the image panel's eight
values into an :class:`~assistant.ui.img2img.ImageInputs` — and handed over by keyword.

Pure: no gradio import (``gr.Request`` is found by the parameter's name, ``request``).
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..service import RenderSettings
from ..types import DEFAULT_SAMPLER
from .img2img import PANEL_DEFAULTS, PANEL_FIELDS, ImageInputs

__all__ = ["GROUPS", "RENDER_FIELDS", "Group", "bind", "render_settings"]

#: The Settings accordion's components a render reads, in the order the layout lists them (and
#: the API parameter names of /chat, /generate, /blindbox, /ab and /sweep).
RENDER_FIELDS: tuple[str, ...] = ("sampler", "steps", "cfg", "width", "height", "seed", "batch")


def render_settings(values: Sequence[Any]) -> RenderSettings:
    """The accordion's values (:data:`RENDER_FIELDS` order) as one :class:`RenderSettings`, not yet
    checked: a value out of range is said by ``RenderSettings.validated`` (in the reply)."""
    sampler, steps, cfg, width, height, seed, batch = values
    return RenderSettings(
        sampler=sampler or DEFAULT_SAMPLER,
        steps=steps,  # validated() turns whole floats into ints
        cfg=cfg,
        width=width,
        height=height,
        seed=seed,
        batch_size=batch,
    )


@dataclass(frozen=True, slots=True)
class Group:
    """Components that reach a handler as one value: their parameter names, defaults (None: the
    API requires them), and how their values become the value."""

    fields: tuple[str, ...]
    pack: Callable[[Sequence[Any]], Any]
    defaults: tuple[Any, ...] | None = None


#: A handler parameter annotated with one of these types takes that group's components.
GROUPS: dict[type, Group] = {
    RenderSettings: Group(RENDER_FIELDS, render_settings),
    ImageInputs: Group(PANEL_FIELDS, ImageInputs.from_values, PANEL_DEFAULTS),
}

_PLAIN = inspect.Parameter.POSITIONAL_OR_KEYWORD


def _group_of(hint: Any) -> Group | None:
    """The group of an annotation (``RenderSettings``, ``ImageInputs | None``), or None."""
    if isinstance(hint, type) and hint in GROUPS:
        return GROUPS[hint]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        found = [GROUPS[arg] for arg in typing.get_args(hint) if isinstance(arg, type) and arg in GROUPS]
        return found[0] if len(found) == 1 else None
    return None


def bind(handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler`` as Gradio calls it: one positional parameter per input component, in the
    handler's parameter order with each typed group (:data:`GROUPS`) spelled out, then
    ``request`` (default None, annotated with the handler's own request type so Gradio finds it).

    The call packs each group into its value and calls ``handler`` by keyword, so a handler's
    inputs may be keyword-only. A generator handler stays a generator (Gradio streams it).
    """
    signature = inspect.signature(handler)
    hints = typing.get_type_hints(handler)
    plan: list[tuple[str, Group | None]] = []  # handler parameter → its group (None: one value)
    params: list[inspect.Parameter] = []
    request: inspect.Parameter | None = None
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{handler.__name__}: bind() cannot spell out *{param.name}")
        if param.name == "request":
            hint = hints.get("request", param.annotation)
            request = param.replace(kind=_PLAIN, default=None, annotation=hint)
            continue
        group = _group_of(hints.get(param.name))
        plan.append((param.name, group))
        if group is None:
            params.append(param.replace(kind=_PLAIN))
            continue
        defaults = group.defaults or (inspect.Parameter.empty,) * len(group.fields)
        params += [
            inspect.Parameter(field, _PLAIN, default=default)
            for field, default in zip(group.fields, defaults, strict=True)
        ]
    spelled = signature.replace(
        parameters=[*params, *([request] if request else [])], return_annotation=inspect.Signature.empty
    )

    def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Gradio's values (positional, the request among them) as the handler's keywords."""
        given = spelled.bind(*args, **kwargs)
        given.apply_defaults()
        values = given.arguments
        out: dict[str, Any] = {}
        for name, group in plan:
            out[name] = values[name] if group is None else group.pack([values[f] for f in group.fields])
        if request is not None:
            out["request"] = values["request"]
        return out

    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def bound(*args: Any, **kwargs: Any) -> Any:
            yield from handler(**call(args, kwargs))

    else:

        @functools.wraps(handler)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return handler(**call(args, kwargs))

    bound.__signature__ = spelled  # type: ignore[attr-defined]
    # the real class (Gradio finds the request by it), not the string of a postponed annotation
    bound.__annotations__ = {"request": request.annotation} if request is not None else {}
    del bound.__wrapped__  # Gradio must read the new signature, not the handler's
    return bound
