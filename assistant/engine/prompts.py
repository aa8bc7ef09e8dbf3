"""Prompt text -> text-encoder embeddings with compel (A1111 attention syntax converted first).

compel reads ``(word)1.2`` / ``word++``, not A1111's ``(word:1.2)``; :mod:`assistant.prompt`
converts (``to_compel(encoder_text(text))``: LoRA tags removed, then attention syntax
rewritten). Long prompts are not truncated: compel encodes 75-token chunks like A1111, and
positive and negative embeddings are padded to the same length. SDXL uses compel's SDXL path
(both text encoders, penultimate hidden states, pooled embeddings from the second one).

Compel is built once per pipeline; it calls the pipeline's own text encoders, so text-encoder
LoRA adapters (and their weights) apply to the embeddings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

_COMPEL_SYNTAX = "()[]+-\\."  # weights, blends, escapes: anything compel would read specially
_LORA_TAG = re.compile(r"<(?:lora|lyco|hypernet):[^>]*>", re.IGNORECASE)


def _fallback_encoder_text(text: str) -> str:
    """Used only while assistant.prompt is missing: drop extra-network tags, tidy commas."""
    text = _LORA_TAG.sub("", text)
    text = re.sub(r"\s*,(\s*,)+", ",", text)
    return " ".join(text.split()).strip(" ,")


def compel_text(text: str) -> str:
    """A1111 prompt text (tags, ``(x:1.2)``, ``[x]``, BREAK) -> the text compel should encode."""
    try:
        from .. import prompt as a1111
    except ImportError:  # pragma: no cover - only before assistant.prompt exists
        return _fallback_encoder_text(text)
    return a1111.to_compel(a1111.encoder_text(text))


@dataclass(frozen=True, slots=True)
class Embeddings:
    """The keyword arguments a SD / SDXL pipeline call takes instead of prompt strings."""

    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor
    pooled_prompt_embeds: torch.Tensor | None = None
    negative_pooled_prompt_embeds: torch.Tensor | None = None

    def kwargs(self) -> dict[str, torch.Tensor]:
        out = {"prompt_embeds": self.prompt_embeds, "negative_prompt_embeds": self.negative_prompt_embeds}
        if self.pooled_prompt_embeds is not None:
            out["pooled_prompt_embeds"] = self.pooled_prompt_embeds
            out["negative_pooled_prompt_embeds"] = self.negative_pooled_prompt_embeds
        return out


class PromptEncoder:
    """compel bound to one pipeline (SD1.x/SD2 or SDXL)."""

    def __init__(self, pipe: Any) -> None:
        from compel import CompelForSD, CompelForSDXL

        self._pipe = pipe
        self.is_xl = getattr(pipe, "text_encoder_2", None) is not None
        self._compel = CompelForSDXL(pipe) if self.is_xl else CompelForSD(pipe)

    def _plain(self, text: str) -> bool:
        """True when compel would add nothing: no weight syntax and within one 77-token chunk.

        compel parses every prompt with pyparsing (~0.1 s a prompt on a laptop CPU); for such
        texts the pipeline's own ``encode_prompt`` gives the same tensors bit for bit (tested).
        """
        if any(c in text for c in _COMPEL_SYNTAX) or "AND" in text:
            return False
        tokenizer = self._pipe.tokenizer
        return len(tokenizer(text).input_ids) <= tokenizer.model_max_length

    @torch.no_grad()
    def encode(self, positive: str, negative: str) -> Embeddings:
        """Embeddings for one prompt pair (A1111 text), padded to the same length."""
        pos, neg = compel_text(positive), compel_text(negative)
        if not self.is_xl and self._plain(pos) and self._plain(neg):
            # the text encoder's own device: diffusers' ``_execution_device`` walks every module
            device = next(self._pipe.text_encoder.parameters()).device
            cond, uncond = self._pipe.encode_prompt(pos, device, 1, True, negative_prompt=neg)
            return Embeddings(cond, uncond)
        if self.is_xl:
            out = self._compel(main_prompt=pos, negative_prompt=neg)
            return Embeddings(out.embeds, out.negative_embeds, out.pooled_embeds, out.negative_pooled_embeds)
        out = self._compel(pos, negative_prompt=neg)
        return Embeddings(out.embeds, out.negative_embeds)

    @torch.no_grad()
    def encode_one(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(embeds, pooled or None) for one A1111 text alone (no padding partner)."""
        if self.is_xl:
            out = self._compel(main_prompt=compel_text(text))
            return out.embeds, out.pooled_embeds
        return self._compel(compel_text(text)).embeds, None
