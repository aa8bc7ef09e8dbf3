"""A1111's prompt encoding: 75-token chunks, BREAK, emphasis, textual inversion, clip skip, SDXL.

The default prompt encoder of LoRA Mixer, written to give the tensors AUTOMATIC1111 gives
(``modules/sd_hijack_clip.py``, ``sd_hijack_open_clip.py``, ``sd_emphasis.py``,
``sd_models_xl.py``; tests compare with a straight port of that code on the tiny pipelines):

1. The text is A1111's: extra-network tags removed (:func:`assistant.prompt.encoder_text`), then
   attention parsed by :func:`assistant.prompt.parse_attention` — the pure parser is the only
   grammar; this module never reads brackets itself.
2. Each fragment is tokenized with :class:`ClipTokenizer` (OpenAI's text cleaning: ftfy, HTML
   entities, whitespace, lower case; then CLIP's BPE), each token carrying its fragment's weight.
3. Tokens fill chunks of 75. ``BREAK`` closes a chunk. When a chunk is full and a comma lies
   within the last 20 tokens, the words after that comma move to the next chunk (A1111's
   ``comma_padding_backtrack``). A textual-inversion name (matched on its tokens, as A1111 does)
   becomes its vectors, never split across chunks. Each chunk is ``BOS + 75 + EOS``, padded with
   EOS; OpenCLIP encoders (SD2, SDXL's second) pad with id 0 after the first EOS.
4. Each chunk goes through the text encoder: the last layer (``Clip skip: 1``), or the layer
   ``clip_skip`` from the end followed by the final layer norm (SD1.x). SD2 ignores clip skip
   (as A1111 does); SDXL uses the penultimate layer of both encoders without a norm, as trained
   (A1111's default; its clip skip does not apply to SDXL either).
5. Emphasis ("Original"): token embeddings times their weights, then the chunk is rescaled so its
   mean is the original mean. Negative weights stay negative. "No norm" skips the rescale,
   "Ignore" parses and drops weights, "None" reads brackets as words.
6. Chunks are concatenated (a prompt of 90 tokens gives 154 vectors). SDXL: the two encoders'
   outputs are concatenated per token; the pooled vector comes from the second encoder's FIRST
   chunk. An empty SDXL negative prompt is all zeros (A1111/sgm ``force_zero_embeddings``).
7. Prompt and negative prompt must have the same length for one batched UNet call; the shorter
   is padded with the empty prompt's encoding, chunk by chunk (A1111's "Pad prompt/negative
   prompt" option, infotext ``Pad conds: True``). A1111 without that option runs the two passes
   separately instead, which differs slightly when the lengths differ.

Cost: one text-encoder call per prompt pair (all chunks of both prompts in one batch), and
tokenization at ~70 µs per fragment.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from .checks import EMPHASIS_MODES

CHUNK_LENGTH = 75
#: A1111's ``comma_padding_backtrack``: a full chunk moves words after a comma this close to its end.
COMMA_BACKTRACK = 20
DEFAULT_EMPHASIS = EMPHASIS_MODES[0]


def clean_text(text: str) -> str:
    """OpenAI CLIP's ``basic_clean`` + ``whitespace_clean`` + lower case (``SimpleTokenizer``).

    ftfy repairs mojibake and, among others, turns full-width characters into ASCII ("，" -> ",")
    and curly quotes into straight ones — what CLIP (and A1111) saw, so the same ids result.
    """
    import ftfy

    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """CLIP's tokenizer as OpenAI wrote it: :func:`clean_text`, then the BPE of a Hugging Face
    ``CLIPTokenizer`` (the same vocabulary and merges; its own normalisation is then a no-op).

    Special-token strings typed in a prompt (``<|endoftext|>``) are read as text, like
    ``SimpleTokenizer`` does. Ids match open_clip's reference on the parity corpus (tested).
    """

    def __init__(self, hf_tokenizer: Any) -> None:
        self.hf = hf_tokenizer
        self.bos = int(hf_tokenizer.bos_token_id)
        self.eos = int(hf_tokenizer.eos_token_id)
        self.comma = hf_tokenizer.get_vocab().get(",</w>")

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids (no BOS/EOS, no truncation) for each text."""
        if not texts:
            return []
        cleaned = [clean_text(t) for t in texts]
        out = self.hf(cleaned, add_special_tokens=False, truncation=False, split_special_tokens=True)
        return [list(ids) for ids in out["input_ids"]]


# ----------------------------------------------------------------------------------------------
# Textual inversion
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextualInversion:
    """One loaded embedding. ``vectors`` maps an encoder key ("clip_l", "clip_g", or "" for a
    single-encoder file) to a ``[n, width]`` tensor; ``hash`` is A1111's shorthash (12 hex)."""

    name: str
    vectors: Mapping[str, torch.Tensor]
    hash: str = ""

    @property
    def count(self) -> int:
        return int(next(iter(self.vectors.values())).shape[0])

    def for_encoder(self, key: str) -> torch.Tensor:
        return self.vectors[key] if key in self.vectors else self.vectors[""]


class EmbeddingLookup:
    """A1111's ``EmbeddingDatabase.ids_lookup``: embeddings keyed by the first id of their name's
    tokens, longest first, matched on the token sequence at a position."""

    def __init__(self, tokenizer: ClipTokenizer, embeddings: Sequence[TextualInversion]) -> None:
        self._by_first: dict[int, list[tuple[list[int], TextualInversion]]] = {}
        names = [e.name for e in embeddings]
        for ids, embedding in zip(tokenizer.encode(names), embeddings, strict=True):
            if not ids:
                continue
            entries = self._by_first.setdefault(ids[0], [])
            entries.append((ids, embedding))
            entries.sort(key=lambda item: len(item[0]), reverse=True)

    def __bool__(self) -> bool:
        return bool(self._by_first)

    def find(self, tokens: Sequence[int], offset: int) -> tuple[TextualInversion | None, int]:
        for ids, embedding in self._by_first.get(tokens[offset], ()):
            if list(tokens[offset : offset + len(ids)]) == ids:
                return embedding, len(ids)
        return None, 0


# ----------------------------------------------------------------------------------------------
# Chunks
# ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class PromptChunk:
    """77 token ids with their weights and the embeddings to put at offsets (as in A1111)."""

    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)
    fixes: list[tuple[int, TextualInversion]] = field(default_factory=list)


def parsed_prompt(text: str, emphasis: str) -> list[tuple[str, float]]:
    """(fragment, weight) pairs for ``text`` (A1111 prompt text, extra-network tags included)."""
    from ..prompt import encoder_text, parse_attention

    words = encoder_text(text)
    if emphasis == "None":
        return [(words, 1.0)]
    return parse_attention(words)


def tokenize_line(
    parsed: Sequence[tuple[str, float]],
    tokenized: Sequence[Sequence[int]],
    tokenizer: ClipTokenizer,
    lookup: EmbeddingLookup | None,
) -> list[PromptChunk]:
    """A1111's ``tokenize_line``: fragments -> chunks of BOS + 75 tokens + EOS."""
    chunks: list[PromptChunk] = []
    chunk = PromptChunk()
    last_comma = -1

    def next_chunk() -> None:
        nonlocal chunk, last_comma
        missing = CHUNK_LENGTH - len(chunk.tokens)
        if missing > 0:
            chunk.tokens += [tokenizer.eos] * missing
            chunk.multipliers += [1.0] * missing
        chunk.tokens = [tokenizer.bos, *chunk.tokens, tokenizer.eos]
        chunk.multipliers = [1.0, *chunk.multipliers, 1.0]
        last_comma = -1
        chunks.append(chunk)
        chunk = PromptChunk()

    for tokens, (text, weight) in zip(tokenized, parsed, strict=True):
        if text == "BREAK" and weight == -1:
            next_chunk()
            continue
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == tokenizer.comma:
                last_comma = len(chunk.tokens)
            elif (
                len(chunk.tokens) == CHUNK_LENGTH
                and last_comma != -1
                and len(chunk.tokens) - last_comma <= COMMA_BACKTRACK
            ):
                cut = last_comma + 1
                moved_tokens, moved_weights = chunk.tokens[cut:], chunk.multipliers[cut:]
                chunk.tokens, chunk.multipliers = chunk.tokens[:cut], chunk.multipliers[:cut]
                next_chunk()
                chunk.tokens, chunk.multipliers = moved_tokens, moved_weights
            if len(chunk.tokens) == CHUNK_LENGTH:
                next_chunk()
            embedding, length = lookup.find(tokens, position) if lookup else (None, 0)
            if embedding is None:
                chunk.tokens.append(token)
                chunk.multipliers.append(weight)
                position += 1
                continue
            count = embedding.count
            if len(chunk.tokens) + count > CHUNK_LENGTH:
                next_chunk()
            chunk.fixes.append((len(chunk.tokens), embedding))
            chunk.tokens += [0] * count
            chunk.multipliers += [weight] * count
            position += length
    if chunk.tokens or not chunks:
        next_chunk()
    return chunks


# ----------------------------------------------------------------------------------------------
# Text encoders
# ----------------------------------------------------------------------------------------------


def _text_model(encoder: Any) -> Any:
    """The module holding ``embeddings``/``final_layer_norm`` (transformers 5 flattened
    ``CLIPTextModel``; ``CLIPTextModelWithProjection`` still wraps it in ``text_model``)."""
    return getattr(encoder, "text_model", encoder)


@dataclass(frozen=True, slots=True)
class _Side:
    """One text encoder as A1111 drives it."""

    model: Any
    tokenizer: ClipTokenizer
    pad: int  # id after the first EOS: EOS (OpenAI CLIP) or 0 (OpenCLIP)
    layer: str  # "clip" (SD1: last, or clip skip + final norm) | "final" (SD2) | "penultimate" (SDXL)
    key: str  # textual-inversion vector key
    pooled: bool = False


@contextmanager
def _fixes(
    model: Any, batch_fixes: Sequence[Sequence[tuple[int, TextualInversion]]], key: str
) -> Iterator[None]:
    """A1111's ``EmbeddingsWithFixes``: embedding vectors replace token embeddings at offsets."""
    if not any(batch_fixes):
        yield
        return
    module = _text_model(model).embeddings.token_embedding

    def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        rows = []
        for fixes, original in zip(batch_fixes, output, strict=True):
            row = original
            for offset, embedding in fixes:
                vec = embedding.for_encoder(key).to(device=row.device, dtype=row.dtype)
                count = min(row.shape[0] - offset - 1, vec.shape[0])
                row = torch.cat([row[: offset + 1], vec[:count], row[offset + 1 + count :]])
            rows.append(row)
        return torch.stack(rows)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@dataclass(slots=True)
class Encoded:
    """One prompt encoded: ``[1, 77 * chunks, width]`` and the pooled vector (SDXL)."""

    z: torch.Tensor
    pooled: torch.Tensor | None
    chunks: int
    used: dict[str, str] = field(default_factory=dict)  # embedding name -> hash


@dataclass(frozen=True, slots=True)
class PairInfo:
    """What the infotext needs from an encoding: embeddings used, whether conds were padded."""

    used: Mapping[str, str]
    padded: bool
    notes: tuple[str, ...] = ()


class A1111Encoder:
    """Prompt pairs -> pipeline keyword arguments, A1111's way, for one SD1.x/SD2/SDXL pipeline.

    ``embeddings`` are the textual inversions for this model's encoders (wrong-width ones already
    left out by the caller); :meth:`set_embeddings` replaces them.
    """

    def __init__(self, pipe: Any, embeddings: Sequence[TextualInversion] = ()) -> None:
        self._pipe = pipe
        self.is_xl = getattr(pipe, "text_encoder_2", None) is not None
        first = ClipTokenizer(pipe.tokenizer)
        if self.is_xl:
            second = ClipTokenizer(getattr(pipe, "tokenizer_2", None) or pipe.tokenizer)
            self._sides = (
                _Side(pipe.text_encoder, first, first.eos, "penultimate", "clip_l"),
                _Side(pipe.text_encoder_2, second, 0, "penultimate", "clip_g", pooled=True),
            )
        else:
            open_clip = getattr(pipe.text_encoder.config, "hidden_size", 768) == 1024  # SD2: OpenCLIP-H
            self._sides = (
                _Side(
                    pipe.text_encoder,
                    first,
                    0 if open_clip else first.eos,
                    "final" if open_clip else "clip",
                    "",
                ),
            )
        self.is_sd2 = not self.is_xl and self._sides[0].layer == "final"
        self._lookup: EmbeddingLookup | None = None
        self.set_embeddings(embeddings)

    def set_embeddings(self, embeddings: Sequence[TextualInversion]) -> None:
        self._embeddings = tuple(embeddings)
        self._lookup = EmbeddingLookup(self._sides[0].tokenizer, self._embeddings) if embeddings else None

    @property
    def embeddings(self) -> tuple[TextualInversion, ...]:
        return self._embeddings

    # -- public --------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_pair(
        self, positive: str, negative: str, *, clip_skip: int = 1, emphasis: str = DEFAULT_EMPHASIS
    ) -> tuple[dict[str, torch.Tensor], PairInfo]:
        """The pipeline kwargs (``prompt_embeds``, ``negative_prompt_embeds`` and, for SDXL, the
        pooled pair) for one prompt pair, padded to one length, and what the infotext needs."""
        from ..prompt import encoder_text

        zero_negative = self.is_xl and encoder_text(negative) == ""
        texts = [positive] if zero_negative else [positive, negative]
        encoded = self.encode(texts, clip_skip=clip_skip, emphasis=emphasis)
        cond = encoded[0]
        if zero_negative:
            uncond = Encoded(torch.zeros_like(cond.z[:, :77]), torch.zeros_like(cond.pooled), 1)  # type: ignore[arg-type]
        else:
            uncond = encoded[1]
        padded = cond.chunks != uncond.chunks
        if padded:
            empty = self.encode([""], clip_skip=clip_skip, emphasis=emphasis)[0].z
            longest = max(cond.chunks, uncond.chunks)
            for item in (cond, uncond):
                if item.chunks < longest:
                    item.z = torch.cat([item.z, empty.repeat(1, longest - item.chunks, 1)], dim=1)
        kwargs = {"prompt_embeds": cond.z, "negative_prompt_embeds": uncond.z}
        if self.is_xl:
            kwargs["pooled_prompt_embeds"] = cond.pooled  # type: ignore[assignment]
            kwargs["negative_pooled_prompt_embeds"] = uncond.pooled  # type: ignore[assignment]
        used = {**cond.used, **uncond.used}
        notes = ()
        if clip_skip > 1 and (self.is_xl or self.is_sd2):
            family = "SDXL" if self.is_xl else "SD2.x"
            notes = (f"Clip skip {clip_skip} has no effect on {family} models (as in A1111).",)
        return kwargs, PairInfo(used=used, padded=padded, notes=notes)

    @torch.no_grad()
    def encode(
        self, texts: Sequence[str], *, clip_skip: int = 1, emphasis: str = DEFAULT_EMPHASIS
    ) -> list[Encoded]:
        """Each text alone (no padding partner): ``[1, 77 * chunks, width]`` and pooled."""
        if emphasis not in EMPHASIS_MODES:
            raise ValueError(f"emphasis {emphasis!r} is not one of {', '.join(EMPHASIS_MODES)}")
        parsed = [parsed_prompt(text, emphasis) for text in texts]
        tokenizer = self._sides[0].tokenizer
        fragments = [fragment for line in parsed for fragment, _w in line]
        ids = iter(tokenizer.encode(fragments))
        chunked = [tokenize_line(line, [next(ids) for _ in line], tokenizer, self._lookup) for line in parsed]
        if emphasis == "Ignore":
            for chunks in chunked:
                for chunk in chunks:
                    chunk.multipliers = [1.0] * len(chunk.multipliers)
        flat = [chunk for chunks in chunked for chunk in chunks]
        outputs = [self._run(side, flat, clip_skip, emphasis) for side in self._sides]
        z_all = torch.cat([z for z, _p in outputs], dim=-1) if len(outputs) > 1 else outputs[0][0]
        pooled_all = next((p for _z, p in outputs if p is not None), None)
        results, start = [], 0
        for chunks in chunked:
            count = len(chunks)
            z = z_all[start : start + count].reshape(1, count * z_all.shape[1], z_all.shape[2])
            pooled = pooled_all[start : start + 1] if pooled_all is not None else None
            used = {emb.name: emb.hash for chunk in chunks for _o, emb in chunk.fixes}
            results.append(Encoded(z, pooled, count, used))
            start += count
        return results

    # -- internals -----------------------------------------------------------------------------

    def _device(self, model: Any) -> torch.device:
        if hasattr(model, "_hf_hook"):  # model CPU offload: inputs go where the hook runs it
            return torch.device(self._pipe._execution_device)
        return next(model.parameters()).device

    def _run(
        self, side: _Side, chunks: Sequence[PromptChunk], clip_skip: int, emphasis: str
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All chunks through one encoder: ``[chunks, 77, width]`` after emphasis, pooled per chunk."""
        device = self._device(side.model)
        tokens = torch.tensor([c.tokens for c in chunks], dtype=torch.long)
        if side.pad != side.tokenizer.eos:
            for row, chunk in enumerate(chunks):
                end = chunk.tokens.index(side.tokenizer.eos)
                tokens[row, end + 1 :] = side.pad
        with _fixes(side.model, [c.fixes for c in chunks], side.key):
            out = side.model(input_ids=tokens.to(device), output_hidden_states=True)
        if side.layer == "penultimate":
            z = out.hidden_states[-2]
        elif side.layer == "clip" and clip_skip > 1:
            z = _text_model(side.model).final_layer_norm(out.hidden_states[-clip_skip])
        else:
            z = out.last_hidden_state
        pooled = out.text_embeds if side.pooled else None
        if emphasis in ("Original", "No norm"):
            multipliers = torch.tensor([c.multipliers for c in chunks], device=z.device, dtype=z.dtype)
            rows = []
            for row in range(z.shape[0]):
                original = z[row : row + 1]
                if bool((multipliers[row] == 1).all()):
                    rows.append(original)  # A1111's result exactly (x * 1 * m / m), without its 0/0
                    continue
                weighted = original * multipliers[row].reshape(1, -1, 1).expand(original.shape)
                if emphasis == "Original":
                    weighted = weighted * (original.mean() / weighted.mean())
                rows.append(weighted)
            z = torch.cat(rows)
        return z, pooled
