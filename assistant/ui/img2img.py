"""The image side of the app (issue 14): the Init image slot and denoising strength next to the
prompt boxes, the hires fix, and a PNG dropped anywhere on the prompt panel restoring its parameters.

The pure part — :class:`ImageInputs` (the panel's values for one request, which
:func:`assistant.ui.binding.bind` hands a handler as ONE typed argument), :func:`fill_values` (what a
restore puts where) — is tested without a server. :func:`build_panel` makes the Gradio components;
it is the one function here that imports gradio (when called, inside
``assistant.ui.layout.build_demo``), so importing this module stays free of gradio.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import limits
from ..img2img import UPSCALERS
from ..types import RESIZE_MODES, HiresFix, InitImage

__all__ = [
    "DROP_JS",
    "PANEL_DEFAULTS",
    "PANEL_FIELDS",
    "ImageInputs",
    "ImagePanel",
    "build_panel",
    "fill_values",
]

#: The panel's inputs, in the order :meth:`ImagePanel.inputs` lists their components.
PANEL_FIELDS: tuple[str, ...] = (
    "init_image",
    "strength",
    "resize_mode",
    "hires",
    "hr_upscaler",
    "hr_scale",
    "hr_steps",
    "hr_strength",
)


#: The components' initial values, in :data:`PANEL_FIELDS` order.
PANEL_DEFAULTS: tuple[Any, ...] = (
    None,
    limits.DENOISING_DEFAULT,
    0,
    False,
    "Latent",
    2.0,
    0,
    limits.HIRES_DENOISING_DEFAULT,
)


@dataclass(frozen=True, slots=True)
class ImageInputs:
    """The image panel's values for one request (what :func:`bind` hands a handler)."""

    init_path: str | None = None
    strength: float = limits.DENOISING_DEFAULT
    resize_mode: int = 0
    hires: bool = False
    hr_upscaler: str = "Latent"
    hr_scale: float = 2.0
    hr_steps: int = 0
    hr_strength: float = limits.HIRES_DENOISING_DEFAULT

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> ImageInputs:
        """Component values in :data:`PANEL_FIELDS` order (None or odd values: the defaults;
        range checks are :meth:`assistant.service.RenderSettings.validated`'s)."""
        raw = dict(zip(PANEL_FIELDS, values, strict=False))
        default = cls()

        def number(key: str, fallback: float) -> float:
            value = raw.get(key)
            return (
                float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else fallback
            )

        mode = raw.get("resize_mode")
        if isinstance(mode, str):
            mode = RESIZE_MODES.index(mode) if mode in RESIZE_MODES else 0
        path = raw.get("init_image")
        return cls(
            init_path=str(path) if isinstance(path, (str, Path)) and str(path) else None,
            strength=number("strength", default.strength),
            resize_mode=int(mode) if isinstance(mode, int) else 0,
            hires=bool(raw.get("hires")),
            hr_upscaler=str(raw.get("hr_upscaler") or default.hr_upscaler),
            hr_scale=number("hr_scale", default.hr_scale),
            hr_steps=int(number("hr_steps", default.hr_steps)),
            hr_strength=number("hr_strength", default.hr_strength),
        )

    def apply(self, settings: Any, init: InitImage | None) -> Any:
        """``settings`` (a RenderSettings) with this panel: img2img when there is an init image,
        else the hires fix when it is on (A1111 has no hires fix in img2img)."""
        if init is not None:
            return dataclasses.replace(
                settings, init_image=init, denoising_strength=self.strength, resize_mode=self.resize_mode
            )
        if self.hires:
            hires = HiresFix(scale=self.hr_scale, steps=self.hr_steps, upscaler=self.hr_upscaler)
            return dataclasses.replace(settings, hires=hires, denoising_strength=self.hr_strength)
        return settings


def fill_values(fill: Mapping[str, Any]) -> dict[str, Any]:
    """A :attr:`assistant.service.Turn.fill` as component values by name (settings and panel):
    ``init_image`` a path or None (emptied), ``hires`` a bool and its fields, ``strength`` /
    ``hr_strength`` from ``denoising_strength``, ``sampler`` with its schedule type written in."""
    out: dict[str, Any] = {}
    for key in ("sampler", "steps", "cfg", "width", "height", "seed"):
        if key in fill and fill[key] is not None:
            out[key] = fill[key]
    if fill.get("scheduler") and "sampler" in out:
        out["sampler"] = f"{out['sampler']} {fill['scheduler']}"
    if "init_image" in fill:
        out["init_image"] = fill["init_image"] or None
    hires_given = "hires" in fill
    hires = fill.get("hires")
    if hires_given:
        out["hires"] = hires is not None
        if isinstance(hires, HiresFix):
            out["hr_upscaler"] = hires.upscaler
            out["hr_scale"] = hires.scale
            out["hr_steps"] = hires.steps
    if fill.get("denoising_strength") is not None:
        out["hr_strength" if isinstance(hires, HiresFix) else "strength"] = float(fill["denoising_strength"])
    return out


@dataclass
class ImagePanel:
    """The panel's components (made by :func:`build_panel` inside ``gr.Blocks``)."""

    init_image: Any
    strength: Any
    resize_mode: Any
    hires: Any
    hr_upscaler: Any
    hr_scale: Any
    hr_steps: Any
    hr_strength: Any
    restore_file: Any
    restore_note: Any

    @property
    def inputs(self) -> list[Any]:
        return [getattr(self, name) for name in PANEL_FIELDS]


def _raw_path(payload: Any) -> str | None:
    """The uploaded file's path as sent: the image is read by :mod:`assistant.images` (bounded,
    every format and mode handled), not by Gradio's own converter (which would choke on a
    decompression bomb or clip a 16-bit PNG before we see it)."""
    if payload is None:
        return None
    path = getattr(payload, "path", None)
    return str(path) if path else None


def build_panel() -> ImagePanel:
    """The Init image slot and strength (beside the prompt boxes), the resize mode, the hires fix
    accordion, and the hidden file the drop-a-PNG restore uploads into. Call inside ``gr.Blocks``."""
    import gradio as gr

    with gr.Row(equal_height=False):
        init_image = gr.Image(
            label="Init image (img2img)",
            type="filepath",
            image_mode=None,
            sources=["upload", "clipboard"],
            height=180,
            elem_id="init-image",
            scale=1,
        )
        with gr.Column(scale=1, min_width=160):
            strength = gr.Slider(
                *limits.DENOISING,
                value=limits.DENOISING_DEFAULT,
                step=0.01,
                label="Denoising strength",
                info="img2img: how far from the init image",
                elem_id="strength",
            )
            resize_mode = gr.Dropdown(
                list(RESIZE_MODES),
                value=RESIZE_MODES[0],
                type="index",
                label="Resize mode",
                elem_id="resize-mode",
            )
    init_image.preprocess = _raw_path  # type: ignore[method-assign]
    with gr.Accordion("Hires fix (txt2img)", open=False, elem_id="hires-accordion"):
        with gr.Row():
            hires = gr.Checkbox(False, label="Hires fix", elem_id="hires")
            hr_upscaler = gr.Dropdown(
                list(UPSCALERS), value="Latent", label="Upscaler", elem_id="hr-upscaler"
            )
        with gr.Row():
            hr_scale = gr.Slider(
                *limits.HIRES_SCALE, value=2.0, step=0.05, label="Upscale by", elem_id="hr-scale"
            )
            hr_steps = gr.Slider(
                *limits.HIRES_STEPS, value=0, step=1, label="Hires steps (0: as the first pass)"
            )
            hr_strength = gr.Slider(
                *limits.DENOISING,
                value=limits.HIRES_DENOISING_DEFAULT,
                step=0.01,
                label="Denoising strength (hires)",
                elem_id="hr-strength",
            )
    restore_note = gr.Markdown(elem_id="restore-note")
    restore_file = gr.File(
        visible="hidden", file_types=["image"], file_count="single", type="filepath", elem_id="restore-file"
    )
    return ImagePanel(
        init_image=init_image,
        strength=strength,
        resize_mode=resize_mode,
        hires=hires,
        hr_upscaler=hr_upscaler,
        hr_scale=hr_scale,
        hr_steps=hr_steps,
        hr_strength=hr_strength,
        restore_file=restore_file,
        restore_note=restore_note,
    )


#: A PNG (or JPEG/WebP with parameters) dropped anywhere on the prompt panel — except the Init
#: image slot, where a drop is an init image — goes to the hidden restore file, whose upload event
#: restores its parameters (A1111 does the same for a drop on its prompt box).
DROP_JS = """
() => {
  const panel = document.querySelector('#prompt-panel');
  if (!panel || panel.dataset.lmDrop) return;
  panel.dataset.lmDrop = '1';
  const imageOf = (event) => {
    const types = Array.from((event.dataTransfer && event.dataTransfer.types) || []);
    if (!types.includes('Files') || event.target.closest('#init-image')) return null;
    const files = Array.from(event.dataTransfer.files || []);
    const isImage = (f) => f.type.startsWith('image/') || /\\.(png|jpe?g|webp|gif|bmp|tiff?)$/i.test(f.name);
    return files.find(isImage) || (files.length ? null : true);
  };
  panel.addEventListener('dragover', (event) => {
    if (!imageOf(event)) return;
    event.preventDefault();
    panel.classList.add('lm-drop');
  }, true);
  panel.addEventListener('dragleave', (event) => {
    if (!panel.contains(event.relatedTarget)) panel.classList.remove('lm-drop');
  }, true);
  panel.addEventListener('drop', (event) => {
    panel.classList.remove('lm-drop');
    const file = imageOf(event);
    if (!file || file === true) return;
    event.preventDefault();
    event.stopPropagation();
    const input = document.querySelector('#restore-file input[type=file]');
    if (!input) return;
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
  }, true);
}
"""

CSS = """
#prompt-panel.lm-drop {outline: 3px dashed #6366f1; outline-offset: 4px; border-radius: 8px;}
#restore-note:empty {display: none;}
"""
