"""Our CLIP tokenizer gives the ids of OpenAI's reference tokenizer, and the shipped vocabulary
is exactly the one derived from OpenAI's BPE file.

"Ours" is what the engine uses: :class:`assistant.engine.encoding.ClipTokenizer` over the
``CLIPTokenizer`` loaded from ``assistant/engine/configs/clip`` (CLIP-L padding and OpenCLIP's
``!`` padding alike). The reference is open_clip's ``SimpleTokenizer`` from the pinned wheel
(tests/engine/reference_clip.py). The corpus: A1111 prompts with weights, BREAK and tags, Chinese
and Japanese with full-width punctuation, emoji, HTML entities, curly quotes, mojibake, other
scripts, and prompts far beyond 77 tokens (no truncation on either side).
"""

from __future__ import annotations

import json
import random

import pytest

from assistant.engine.checkpoints import CLIP_TOKENIZER_DIR, clip_tokenizer
from assistant.engine.encoding import ClipTokenizer
from assistant.engine.tokenizer import CLIP_VOCAB_SIZE, write_clip_tokenizer_folder

from .reference_clip import MEMBERS, reference_files, simple_tokenizer

CURATED = [
    "1girl, cat ears, <lora:catgirl_v1:0.8>, <lora:cyberpunk_style:0.3>",
    "(masterpiece:1.2), best quality, ((detailed eyes)), [blurry], (worst quality:-0.5)",
    "1girl, red scarf BREAK blue sky, (clouds:0.8)",
    "extra cat ears, worst quality, blurry, lowres",
    "EasyNegative, bad-hands-5, ng_deepnegative_v1_75t, verybadimagenegative_v1.3",
    "一个猫耳女孩，（杰作），赛博朋克风格，霓虹灯",
    "多耳怪，画风突变毕加索，出图全黑",
    "猫耳の女の子、ネオン、夜の街「東京」",
    "고양이 귀 소녀, 네온 도시",
    "кошачьи уши, девушка, неон",
    "γάτα, κορίτσι, νέον",
    "فتاة بأذني قطة",
    "café naïve résumé Zürich Ångström",
    "emoji 😀🐱✨🌸 cat 🏳️‍🌈 flag 👩🏽‍💻",
    "“quoted” ‘single’ text — em dash – en dash … ellipsis",
    "HTML &amp; entities &lt;b&gt; &quot;quoted&quot; &#39;x&#39; &nbsp;space",
    "mojibake: Ã©t Ã¨ â€œsmartâ€\x9d Ã¼ber",
    "ligatures ﬁne ﬂow ﬀ, fullwidth ＡＢＣ１２３，ｗｉｄｅ",
    "numbers 1girl 2boys 3.5 1024x1024 4k 8k uhd 16:9",
    "C++ t-shirt -- == ++ ... !!! ??? ### @@@ $$$ %%% ^^^ &&& ***",
    "it's don't we're they've I'm you'll she'd IT'S DON'T",
    "tabs\tand\nnew lines\r\n  and   spaces",
    "<|startoftext|> and <|endoftext|> typed as words",
    "\\(escaped\\) \\[brackets\\] back\\\\slash",
    "a" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "",
    "   ",
    ",,,,",
    "(((((((((deep nesting)))))))))",
    "[[[[[[less]]]]]] {a|b|c} __wildcard__ [cat:dog:0.5] [cat|dog] AND",
    "score_9, score_8_up, score_7_up, source_anime, rating_safe",
    "<lyco:foo:0.5> <hypernet:bar:1> <lora:名前:0.7>",
    "Ⅻ ① ⑳ ㈠ ㊀ ℃ ℉ № ™ ® ©",
    "zero\u200bwidth\u200djoiner\ufeffbom",
    "combining e\u0301 a\u0308 n\u0303 (decomposed)",
    "İstanbul ß ẞ ǅ ﬀ Σίσυφος",
    "ｈａｌｆ-width ｶﾀｶﾅ ﾊﾝｶｸ",
    "math ∑∫√∞≈≠ arrows ←→↑↓ boxes ■□▲△",
    "https://civitai.com/models/12345?version=67890#gallery",
]

_TAGS = [
    "1girl",
    "solo",
    "cat ears",
    "animal ears",
    "long hair",
    "blue eyes",
    "school uniform",
    "JK uniform",
    "pleated skirt",
    "smile",
    "looking at viewer",
    "upper body",
    "neon lights",
    "cyberpunk",
    "night",
    "rain",
    "city",
    "watercolor",
    "lineart",
    "monochrome",
    "soft lighting",
    "cinematic lighting",
    "masterpiece",
    "best quality",
    "highres",
    "absurdres",
    "extra cat ears",
    "bad hands",
    "lowres",
    "猫耳",
    "女孩",
    "杰作",
    "最高品质",
    "水彩",
    "夜景",
    "霓虹",
    "赛博朋克",
    "和服",
    "桜",
    "笑顔",
    "🐱",
    "✨",
    "🌸",
    "🔥",
    "💜",
    "—",
    "…",
    "「引用」",
    "（括号）",
    "、",
    "，",
    "。",
    "！",
]
_WRAPS = ["{}", "({})", "[{}]", "(({}))", "({}:1.3)", "({}:0.7)", "({}:-0.5)", "\\({}\\)", "{} BREAK"]


def corpus(count: int = 260, seed: int = 13) -> list[str]:
    """The curated prompts plus seeded random A1111-style mixes (some far beyond 77 tokens)."""
    rng = random.Random(seed)
    prompts = list(CURATED)
    while len(prompts) < count:
        n = rng.choice([3, 6, 12, 40, 90])
        terms = [rng.choice(_WRAPS).format(rng.choice(_TAGS)) for _ in range(n)]
        sep = rng.choice([", ", "，", ",", " ", "、"])
        prompts.append(sep.join(terms))
    return prompts


@pytest.fixture(scope="module")
def reference():
    return simple_tokenizer()


def test_shipped_vocabulary_is_derived_from_openai_bpe(tmp_path) -> None:
    folder = reference_files()
    made = write_clip_tokenizer_folder(folder / MEMBERS[1], tmp_path / "clip")
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        assert (made / name).read_bytes() == (CLIP_TOKENIZER_DIR / name).read_bytes(), name
    vocab = json.loads((CLIP_TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == CLIP_VOCAB_SIZE
    assert (vocab["<|startoftext|>"], vocab["<|endoftext|>"], vocab[",</w>"], vocab["!"]) == (
        49406,
        49407,
        267,
        0,
    )


def test_ids_equal_openai_reference_on_the_corpus(reference) -> None:
    prompts = corpus()
    assert len(prompts) >= 200
    ours_l = ClipTokenizer(clip_tokenizer())
    ours_g = ClipTokenizer(clip_tokenizer("!"))
    ids_l, ids_g = ours_l.encode(prompts), ours_g.encode(prompts)
    mismatches = [
        (text, ref, mine)
        for text, mine, ref in zip(prompts, ids_l, map(reference.encode, prompts), strict=True)
        if mine != ref
    ]
    assert not mismatches, f"{len(mismatches)} of {len(prompts)} prompts differ, first: {mismatches[0]}"
    assert ids_g == ids_l
    assert max(len(ids) for ids in ids_l) > 300  # long prompts are not truncated
    assert sum(len(ids) for ids in ids_l) > 10_000


def test_special_ids_and_pads() -> None:
    l_tok, g_tok = clip_tokenizer(), clip_tokenizer("!")
    assert (l_tok.bos_token_id, l_tok.eos_token_id, l_tok.pad_token_id) == (49406, 49407, 49407)
    assert (g_tok.bos_token_id, g_tok.eos_token_id, g_tok.pad_token_id) == (49406, 49407, 0)
