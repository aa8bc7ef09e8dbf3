# ruff: noqa: B905, E501, PLW2901, RUF005  (the reference is A1111's code, kept in its own style)
"""Our prompt encoding against a straight port of AUTOMATIC1111's, on the tiny pipelines.

``a1111_*`` below is A1111's code (modules/prompt_parser.py ``parse_prompt_attention``,
modules/sd_hijack_clip.py ``tokenize_line``/``process_tokens``/``forward``,
sd_hijack_open_clip.py, sd_emphasis.py "Original"), kept as close to the original as Python
allows, with ``opts`` as arguments. It shares nothing with assistant/engine/encoding.py, so a
difference in chunking, comma backtracking, BREAK, emphasis, clip skip, padding ids or pooling
shows up as a tensor difference. The compel bridge this replaced failed the BREAK, negative
weight and weighting tests.
"""

from __future__ import annotations

import re

import pytest
import torch

from assistant.engine.encoding import A1111Encoder, TextualInversion

# -- A1111's code ------------------------------------------------------------------------------

re_attention = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
re_break = re.compile(r"\s*\bBREAK\b\s*", re.S)


def a1111_parse_prompt_attention(text):
    res = []
    round_brackets = []
    square_brackets = []
    round_bracket_multiplier = 1.1
    square_bracket_multiplier = 1 / 1.1

    def multiply_range(start_position, multiplier):
        for p in range(start_position, len(res)):
            res[p][1] *= multiplier

    for m in re_attention.finditer(text):
        text = m.group(0)
        weight = m.group(1)
        if text.startswith("\\"):
            res.append([text[1:], 1.0])
        elif text == "(":
            round_brackets.append(len(res))
        elif text == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), float(weight))
        elif text == ")" and round_brackets:
            multiply_range(round_brackets.pop(), round_bracket_multiplier)
        elif text == "]" and square_brackets:
            multiply_range(square_brackets.pop(), square_bracket_multiplier)
        else:
            parts = re.split(re_break, text)
            for i, part in enumerate(parts):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])
    for pos in round_brackets:
        multiply_range(pos, round_bracket_multiplier)
    for pos in square_brackets:
        multiply_range(pos, square_bracket_multiplier)
    if len(res) == 0:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


class PromptChunk:
    def __init__(self):
        self.tokens = []
        self.multipliers = []
        self.fixes = []


class A1111Clip:
    """FrozenCLIPEmbedderWithCustomWords(Base) / FrozenOpenCLIPEmbedder(2)WithCustomWords."""

    chunk_length = 75
    comma_padding_backtrack = 20

    def __init__(self, tokenizer, transformer, *, id_pad=None, layer="clip", clip_skip=1, embeddings=(), key=""):
        self.tokenizer = tokenizer
        self.transformer = transformer
        vocab = tokenizer.get_vocab()
        self.comma_token = vocab.get(",</w>", None)
        self.id_start = tokenizer.bos_token_id
        self.id_end = tokenizer.eos_token_id
        self.id_pad = self.id_end if id_pad is None else id_pad
        self.layer = layer
        self.clip_skip = clip_skip
        self.key = key
        self.ids_lookup = {}
        for emb in embeddings:  # EmbeddingDatabase.register_embedding
            ids = tokenizer([emb.name], add_special_tokens=False)["input_ids"][0]
            self.ids_lookup.setdefault(ids[0], [])
            self.ids_lookup[ids[0]] = sorted(self.ids_lookup[ids[0]] + [(ids, emb)], key=lambda x: len(x[0]), reverse=True)
        self.fixes = None

    def find_embedding_at_position(self, tokens, offset):
        token = tokens[offset]
        possible_matches = self.ids_lookup.get(token, None)
        if possible_matches is None:
            return None, None
        for ids, embedding in possible_matches:
            if tokens[offset : offset + len(ids)] == ids:
                return embedding, len(ids)
        return None, None

    def tokenize(self, texts):
        return self.tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

    def tokenize_line(self, line):
        parsed = a1111_parse_prompt_attention(line)
        tokenized = self.tokenize([text for text, _ in parsed])
        chunks = []
        chunk = PromptChunk()
        token_count = 0
        last_comma = -1

        def next_chunk(is_last=False):
            nonlocal token_count
            nonlocal last_comma
            nonlocal chunk
            if is_last:
                token_count += len(chunk.tokens)
            else:
                token_count += self.chunk_length
            to_add = self.chunk_length - len(chunk.tokens)
            if to_add > 0:
                chunk.tokens += [self.id_end] * to_add
                chunk.multipliers += [1.0] * to_add
            chunk.tokens = [self.id_start] + chunk.tokens + [self.id_end]
            chunk.multipliers = [1.0] + chunk.multipliers + [1.0]
            last_comma = -1
            chunks.append(chunk)
            chunk = PromptChunk()

        for tokens, (text, weight) in zip(tokenized, parsed):
            if text == "BREAK" and weight == -1:
                next_chunk()
                continue
            position = 0
            while position < len(tokens):
                token = tokens[position]
                if token == self.comma_token:
                    last_comma = len(chunk.tokens)
                elif (
                    self.comma_padding_backtrack != 0
                    and len(chunk.tokens) == self.chunk_length
                    and last_comma != -1
                    and len(chunk.tokens) - last_comma <= self.comma_padding_backtrack
                ):
                    break_location = last_comma + 1
                    reloc_tokens = chunk.tokens[break_location:]
                    reloc_mults = chunk.multipliers[break_location:]
                    chunk.tokens = chunk.tokens[:break_location]
                    chunk.multipliers = chunk.multipliers[:break_location]
                    next_chunk()
                    chunk.tokens = reloc_tokens
                    chunk.multipliers = reloc_mults
                if len(chunk.tokens) == self.chunk_length:
                    next_chunk()
                embedding, embedding_length_in_tokens = self.find_embedding_at_position(tokens, position)
                if embedding is None:
                    chunk.tokens.append(token)
                    chunk.multipliers.append(weight)
                    position += 1
                    continue
                emb_len = int(embedding.count)
                if len(chunk.tokens) + emb_len > self.chunk_length:
                    next_chunk()
                chunk.fixes.append((len(chunk.tokens), embedding))
                chunk.tokens += [0] * emb_len
                chunk.multipliers += [weight] * emb_len
                position += embedding_length_in_tokens
        if chunk.tokens or not chunks:
            next_chunk(is_last=True)
        return chunks, token_count

    def embeddings_with_fixes(self, module, inputs, inputs_embeds):  # sd_hijack.EmbeddingsWithFixes
        batch_fixes = self.fixes
        if not batch_fixes or max(len(x) for x in batch_fixes) == 0:
            return inputs_embeds
        vecs = []
        for fixes, tensor in zip(batch_fixes, inputs_embeds):
            for offset, embedding in fixes:
                emb = embedding.for_encoder(self.key)
                emb_len = min(tensor.shape[0] - offset - 1, emb.shape[0])
                tensor = torch.cat([tensor[0 : offset + 1], emb[0:emb_len], tensor[offset + 1 + emb_len :]])
            vecs.append(tensor)
        return torch.stack(vecs)

    def encode_with_transformers(self, tokens):
        text_model = getattr(self.transformer, "text_model", self.transformer)
        handle = text_model.embeddings.token_embedding.register_forward_hook(self.embeddings_with_fixes)
        try:
            outputs = self.transformer(input_ids=tokens, output_hidden_states=True)
        finally:
            handle.remove()
        if self.layer == "penultimate":  # SDXL: hidden_states[layer_idx] / OpenCLIP "penultimate"
            z = outputs.hidden_states[-2]
        elif self.layer == "clip" and self.clip_skip > 1:
            z = outputs.hidden_states[-self.clip_skip]
            z = text_model.final_layer_norm(z)
        else:
            z = outputs.last_hidden_state
        pooled = getattr(outputs, "text_embeds", None)
        return z, pooled

    def process_tokens(self, remade_batch_tokens, batch_multipliers):
        tokens = torch.asarray(remade_batch_tokens)
        if self.id_end != self.id_pad:
            for batch_pos in range(len(remade_batch_tokens)):
                index = remade_batch_tokens[batch_pos].index(self.id_end)
                tokens[batch_pos, index + 1 : tokens.shape[1]] = self.id_pad
        z, pooled = self.encode_with_transformers(tokens)
        multipliers = torch.asarray(batch_multipliers)
        original_mean = z.mean()  # EmphasisOriginal.after_transformers
        z = z * multipliers.reshape(multipliers.shape + (1,)).expand(z.shape)
        new_mean = z.mean()
        z = z * (original_mean / new_mean)
        return z, pooled

    @torch.no_grad()
    def forward(self, texts):
        batch_chunks = [self.tokenize_line(line)[0] for line in texts]
        chunk_count = max(len(x) for x in batch_chunks)
        zs, pooled = [], None
        for i in range(chunk_count):
            batch_chunk = [chunks[i] for chunks in batch_chunks]
            self.fixes = [x.fixes for x in batch_chunk]
            z, p = self.process_tokens([x.tokens for x in batch_chunk], [x.multipliers for x in batch_chunk])
            pooled = p if i == 0 else pooled
            zs.append(z)
        return torch.hstack(zs), pooled


def a1111_sd1(pipe, text, *, clip_skip=1, embeddings=()):
    return A1111Clip(pipe.tokenizer, pipe.text_encoder, clip_skip=clip_skip, embeddings=embeddings).forward([text])[0]


def a1111_sdxl(pipe, text):
    """sgm GeneralConditioner: CLIP-L (hidden layer -2) + OpenCLIP-G (penultimate, pad 0), pooled from G."""
    z_l, _ = A1111Clip(pipe.tokenizer, pipe.text_encoder, layer="penultimate").forward([text])
    z_g, pooled = A1111Clip(pipe.tokenizer_2, pipe.text_encoder_2, id_pad=0, layer="penultimate").forward([text])
    return torch.cat([z_l, z_g], dim=-1), pooled


# -- tests -------------------------------------------------------------------------------------

LONG = ", ".join(f"cat ears {i}" for i in range(40))  # > 75 tokens, commas everywhere
PROMPTS = [
    "1girl, cat ears, city",
    "1girl, (cat ears:1.3), [city], ((night))",
    "(worst quality:-0.5), blurry, (extra cat ears:1.5)",  # negative weight kept
    "1girl, red scarf BREAK blue sky, (clouds:0.8)",
    "a BREAK b BREAK c",
    LONG,
    "(" + LONG + ":1.2) BREAK watercolor",
    "masterpiece " * 80,  # > 75 tokens, no comma to backtrack to
    "",
]


@pytest.mark.parametrize("text", PROMPTS)
def test_sd15_encoding_equals_a1111(tiny_pipe, text: str) -> None:
    ours = A1111Encoder(tiny_pipe).encode([text])[0]
    reference = a1111_sd1(tiny_pipe, text)
    assert ours.z.shape == reference.shape
    torch.testing.assert_close(ours.z, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("clip_skip", [2, 3])
def test_clip_skip_equals_a1111(tiny_pipe, clip_skip: int) -> None:
    # the tiny text encoder has 2 layers: skip 2 = the first layer's output + final layer norm
    text = "1girl, (cat ears:1.2), city"
    ours = A1111Encoder(tiny_pipe).encode([text], clip_skip=clip_skip)[0]
    torch.testing.assert_close(ours.z, a1111_sd1(tiny_pipe, text, clip_skip=clip_skip), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours.z, A1111Encoder(tiny_pipe).encode([text])[0].z)


def test_chunking_breaks_and_backtracks_like_a1111(tiny_pipe) -> None:
    encoder = A1111Encoder(tiny_pipe)
    assert encoder.encode(["a BREAK b BREAK c"])[0].chunks == 3
    long = encoder.encode([LONG])[0]
    assert long.chunks > 1
    assert long.z.shape[1] == 77 * long.chunks
    # BREAK in the middle of the first chunk: the second starts with "blue"
    assert encoder.encode(["1girl, red scarf BREAK blue sky"])[0].z.shape[1] == 2 * 77


def test_negative_weights_stay_negative(tiny_pipe) -> None:
    """compel wrote negative weights as 0.0; A1111 multiplies by them."""
    encoder = A1111Encoder(tiny_pipe)
    negative = encoder.encode(["(blurry:-0.5), city"])[0].z
    zero = encoder.encode(["(blurry:0), city"])[0].z
    assert not torch.allclose(negative, zero)


@pytest.mark.parametrize("text", ["1girl, (cat ears:1.3), [city] BREAK night", LONG])
def test_sdxl_encoding_and_pooled_equal_a1111(tiny_xl_pipe, text: str) -> None:
    encoder = A1111Encoder(tiny_xl_pipe)
    ours = encoder.encode([text])[0]
    z, pooled = a1111_sdxl(tiny_xl_pipe, text)
    torch.testing.assert_close(ours.z, z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.pooled, pooled, rtol=1e-5, atol=1e-5)


def test_sdxl_empty_negative_is_zeros_and_pair_is_padded(tiny_xl_pipe) -> None:
    kwargs, info = A1111Encoder(tiny_xl_pipe).encode_pair(LONG, "")
    assert info.padded  # several chunks vs 1
    assert kwargs["prompt_embeds"].shape == kwargs["negative_prompt_embeds"].shape
    assert kwargs["prompt_embeds"].shape[1] > 77
    assert torch.count_nonzero(kwargs["negative_prompt_embeds"][:, :77]) == 0
    assert torch.count_nonzero(kwargs["negative_pooled_prompt_embeds"]) == 0


def test_pair_padding_uses_the_empty_prompt(tiny_pipe) -> None:
    encoder = A1111Encoder(tiny_pipe)
    kwargs, info = encoder.encode_pair(LONG, "lowres")
    empty = encoder.encode([""])[0].z
    assert info.padded
    padding = kwargs["negative_prompt_embeds"][:, 77:]
    torch.testing.assert_close(padding, empty.repeat(1, padding.shape[1] // 77, 1))


def test_textual_inversion_vectors_replace_their_tokens_like_a1111(tiny_pipe) -> None:
    width = tiny_pipe.text_encoder.config.hidden_size
    generator = torch.Generator().manual_seed(5)
    emb = TextualInversion("catgirl", {"": torch.randn(3, width, generator=generator)}, "0123456789ab")
    encoder = A1111Encoder(tiny_pipe, [emb])
    text = "(catgirl:1.2), city, " + "night, " * 35  # the 3 vectors near a chunk edge too
    ours = encoder.encode([text])[0]
    assert ours.used == {"catgirl": "0123456789ab"}
    torch.testing.assert_close(ours.z, a1111_sd1(tiny_pipe, text, embeddings=[emb]), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours.z[:, :77], A1111Encoder(tiny_pipe).encode([text])[0].z[:, :77])


def test_emphasis_modes(tiny_pipe) -> None:
    encoder = A1111Encoder(tiny_pipe)
    text = "1girl, (cat ears:1.5)"
    original = encoder.encode([text])[0].z
    no_norm = encoder.encode([text], emphasis="No norm")[0].z
    ignore = encoder.encode([text], emphasis="Ignore")[0].z
    plain = encoder.encode(["1girl, cat ears"])[0].z
    assert not torch.allclose(original, no_norm)
    torch.testing.assert_close(ignore, plain)
    with pytest.raises(ValueError, match="emphasis 'Loud' is not one of Original"):
        encoder.encode([text], emphasis="Loud")
