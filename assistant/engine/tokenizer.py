"""A small, deterministic byte-level BPE vocabulary for the tiny demo pipeline's CLIP tokenizer.

Real CLIP vocabularies are downloaded with a model; LoRA Mixer must run offline, so it trains a
tiny BPE (CLIP layout: 256 byte symbols, the same 256 with the word-end marker ``</w>``, merges,
then ``<|startoftext|>`` and ``<|endoftext|>``) on a built-in word list of prompt vocabulary.
The result is written as ``vocab.json`` + ``merges.txt`` + ``tokenizer_config.json`` into a
folder and loaded with ``CLIPTokenizer.from_pretrained(folder)`` (transformers 5 ignores the
``vocab_file=`` keyword, so a folder is the supported way).

Pure Python: training takes a few milliseconds and the output is byte-identical on every run.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

#: Total vocabulary size the tiny text encoders are built for (ids >= len(vocab) are never used).
VOCAB_SIZE = 1000
MODEL_MAX_LENGTH = 77
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"

# Words users type into Stable Diffusion prompts; repeated words weigh more in the merges.
_CORPUS = """
1girl 1boy solo girl boy woman man cat ears cat_ears tail catgirl animal ears fox wolf
masterpiece best quality high quality highres absurdres detailed intricate details ultra detailed
worst quality low quality lowres blurry bad anatomy bad hands extra fingers extra limbs extra cat ears
watermark signature text jpeg artifacts deformed ugly duplicate cropped out of frame
cyberpunk city neon lights night rain street futuristic sci-fi scifi hologram
soft light soft lighting cinematic lighting rim light backlight sunlight golden hour shadow
watercolor painting oil painting sketch lineart outline anime manga illustration photo realistic
portrait upper body full body close-up looking at viewer smile smiling blush open mouth
school uniform jk uniform serafuku sailor collar pleated skirt skirt shirt dress hoodie jacket
long hair short hair blonde hair black hair white hair pink hair blue eyes red eyes green eyes
outdoors indoors sky cloud clouds flower flowers cherry blossoms tree forest beach ocean water
detail saturation brightness contrast colorful vibrant pastel dark bright
standing sitting walking holding hands hat ribbon bow glasses earrings necklace
the a an of in on at with and by for from to
"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    visible += list(range(ord("®"), ord("ÿ") + 1))
    chars = visible[:]
    extra = 0
    for b in range(256):
        if b not in visible:
            visible.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(visible, (chr(c) for c in chars), strict=True))


def _words(corpus: str) -> list[tuple[str, ...]]:
    """Corpus words as symbol tuples, the last symbol carrying ``</w>`` (CLIP's word end)."""
    table = bytes_to_unicode()
    words: list[tuple[str, ...]] = []
    for raw in corpus.replace("_", " ").split():
        symbols = [table[b] for b in raw.lower().encode("utf-8")]
        symbols[-1] += "</w>"
        words.append(tuple(symbols))
    return words


def train_bpe(vocab_size: int = VOCAB_SIZE, extra: str = "") -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train the BPE: returns (vocab token -> id, merges in rank order). Deterministic.

    Ties between equally frequent pairs are broken by the pair's text, so the result never
    depends on dict ordering or hashing. ``extra`` (whitespace-separated words) is added to the
    built-in prompt vocabulary (the trained embedded model adds its captions' words).
    """
    table = bytes_to_unicode()
    base = list(table.values())
    vocab_list = base + [s + "</w>" for s in base]
    budget = vocab_size - len(vocab_list) - 2
    counts = Counter(_words(_CORPUS + "\n" + extra))
    merges: list[tuple[str, str]] = []
    while len(merges) < budget:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, n in counts.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = best[0] + best[1]
        new_counts: Counter[tuple[str, ...]] = Counter()
        for word, n in counts.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_counts[tuple(out)] += n
        counts = new_counts
    vocab_list += [a + b for a, b in merges]
    vocab_list += [BOS, EOS]
    return {token: i for i, token in enumerate(vocab_list)}, merges


def write_tokenizer_folder(folder: str | Path, vocab_size: int = VOCAB_SIZE, extra: str = "") -> Path:
    """Write vocab.json, merges.txt and tokenizer_config.json into ``folder``; returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = train_bpe(vocab_size, extra)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MODEL_MAX_LENGTH,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------------------------
# The real CLIP vocabulary (OpenAI's BPE file -> the vocab.json / merges.txt every SD model ships)
# ----------------------------------------------------------------------------------------------

#: Merges OpenAI's CLIP uses from its BPE file (``bpe_simple_vocab_16e6.txt.gz``): 49152 - 256 - 2.
CLIP_MERGES = 49152 - 256 - 2
CLIP_VOCAB_SIZE = 49408


def clip_vocab_from_bpe(bpe_text: str) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """OpenAI's CLIP vocabulary from the text of its BPE merges file, exactly as CLIP builds it.

    CLIP's ``SimpleTokenizer``: the 256 byte symbols, the same with ``</w>``, one entry per merge
    (the first line of the file is a header, then ``CLIP_MERGES`` merges), then
    ``<|startoftext|>`` and ``<|endoftext|>`` — 49,408 ids, the vocabulary of every Stable
    Diffusion text encoder (CLIP ViT-L/14, OpenCLIP ViT-H/14 and ViT-bigG/14 share it).
    """
    lines = bpe_text.split("\n")[1 : CLIP_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    if len(merges) != CLIP_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"not CLIP's BPE file: expected {CLIP_MERGES} merges of two symbols each")
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(vocab)}, [(a, b) for a, b in merges]


def write_clip_tokenizer_folder(bpe_gz: str | Path, folder: str | Path) -> Path:
    """Write CLIP's ``vocab.json`` + ``merges.txt`` (Hugging Face's layout) and a CLIP-L
    ``tokenizer_config.json`` derived from OpenAI's ``bpe_simple_vocab_16e6.txt.gz``.

    This is how ``assistant/engine/configs/clip`` was made (from the copy in the
    ``open_clip_torch`` wheel); ``tests/engine/test_clip_tokenizer.py`` makes it again and
    compares byte for byte.
    """
    import gzip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(bpe_gz) as handle:
        vocab, merges = clip_vocab_from_bpe(handle.read().decode("utf-8"))
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MODEL_MAX_LENGTH,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
        "add_prefix_space": False,
        "errors": "replace",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    return folder
