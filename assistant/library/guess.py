"""The documented heuristics for what a file does not declare: trigger words and kind.

* **Triggers** from kohya's ``ss_tag_frequency`` (or ModelSpec's ``trigger_phrase`` when
  declared): counts summed over the dataset folders, :data:`GENERIC_TAGS` dropped, at most 3 of
  the most frequent kept, each seen in at least half as many captions as the first.
* **Kind** from words in the file name (adjuster → concept, clothing, style, character words, in
  that priority), else the tag frequency (person-count tags in half the captions → character).
  ``kind_source`` always starts with "guessed".

Pure functions over strings and dicts: no file is read here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: Tags that say nothing about what a LoRA adds; never chosen as trigger words.
GENERIC_TAGS = frozenset(
    {
        "1girl",
        "1boy",
        "2girls",
        "2boys",
        "3girls",
        "3boys",
        "multiple girls",
        "multiple boys",
        "solo",
        "solo focus",
        "no humans",
        "masterpiece",
        "best quality",
        "high quality",
        "highres",
        "absurdres",
        "lowres",
        "normal quality",
        "worst quality",
        "ultra detailed",
        "detailed",
        "8k",
        "4k",
        "realistic",
        "photorealistic",
        "looking at viewer",
        "looking away",
        "simple background",
        "white background",
        "black background",
        "grey background",
        "gray background",
        "transparent background",
        "blurry background",
        "blurry",
        "depth of field",
        "upper body",
        "full body",
        "cowboy shot",
        "portrait",
        "close-up",
        "closeup",
        "standing",
        "sitting",
        "smile",
        "open mouth",
        "closed mouth",
        "blush",
    }
)
_PERSON_TAGS = frozenset({"1girl", "1boy", "2girls", "2boys", "solo", "multiple girls", "multiple boys"})

# kind heuristic: (kind, words). A word matches a name token, or (5+ letters) any part of the name.
_KIND_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("concept", ("add", "more", "less", "detail", "detailer", "saturation", "brightness", "contrast",
                 "slider", "tweaker", "enhancer", "exposure", "adjuster")),
    ("clothing", ("uniform", "dress", "outfit", "clothes", "clothing", "costume", "armor", "bikini",
                  "kimono", "hanfu", "skirt", "shirt", "hoodie", "swimsuit", "jacket", "lingerie", "jk",
                  "cheongsam", "qipao", "maid")),
    ("style", ("style", "outline", "lineart", "light", "lighting", "watercolor", "painting", "sketch",
               "ink", "manga", "pixel", "aesthetic", "cyberpunk", "cinematic", "film", "render", "art")),
    ("character", ("girl", "boy", "character", "chara", "waifu", "woman", "man", "oc")),
)  # fmt: skip


def _normal_tag(tag: str) -> str:
    return " ".join(tag.replace("_", " ").split()).strip()


def _metadata_triggers(metadata: Mapping[str, str]) -> tuple[list[str], str, dict[str, int]]:
    """Triggers declared by ModelSpec, else derived from ss_tag_frequency (see module docstring)."""
    counts: dict[str, int] = {}
    spelled: dict[str, str] = {}
    raw = metadata.get("ss_tag_frequency", "")
    if raw:
        try:
            folders = json.loads(raw)
        except ValueError:
            folders = None
        if isinstance(folders, dict):
            for tags in folders.values():
                if not isinstance(tags, dict):
                    continue
                for tag, count in tags.items():
                    if not isinstance(tag, str) or type(count) is not int or count <= 0:
                        continue
                    shown = _normal_tag(tag)
                    if not shown or len(shown) > 100:
                        continue
                    key = shown.casefold()
                    counts[key] = counts.get(key, 0) + count
                    spelled.setdefault(key, shown)
    declared = metadata.get("modelspec.trigger_phrase", "").strip()
    if declared:
        words = [w.strip() for w in declared.split(",") if w.strip()]
        return words[:20], "metadata modelspec.trigger_phrase", counts
    specific = sorted(
        ((n, key) for key, n in counts.items() if key not in GENERIC_TAGS),
        key=lambda item: (-item[0], item[1]),
    )
    if not specific:
        return [], "", counts
    top = specific[0][0]
    chosen = [spelled[key] for n, key in specific[:3] if n * 2 >= top]
    return chosen, f"ss_tag_frequency (top {len(chosen)} of {len(counts)} tags, generic tags skipped)", counts


def _person_share(counts: Mapping[str, int]) -> float:
    """Share of captions with a person-count tag, using the most frequent tag as the caption count."""
    if not counts:
        return 0.0
    captions = max(counts.values())
    people = max((counts.get(tag, 0) for tag in _PERSON_TAGS), default=0)
    return round(people / captions, 3)


_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


_KIND_TOKENS = tuple((kind, words, frozenset(words)) for kind, words in _KIND_WORDS)
_KIND_SUBSTRINGS = tuple(
    (kind, re.compile("|".join(re.escape(w) for w in words if len(w) >= 4))) for kind, words in _KIND_WORDS
)
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")


def _guess_kind(name: str, facts: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, kind_source) from the documented heuristic; the source always starts with 'guessed'."""
    low = name.lower()
    tokens = {t for t in _TOKEN_SPLIT.split(_CAMEL.sub(" ", name).lower()) if t}
    tokens |= {t.rstrip("0123456789") for t in tokens}
    for (kind, words, word_set), (_kind, pattern) in zip(_KIND_TOKENS, _KIND_SUBSTRINGS, strict=True):
        if tokens & word_set:
            word = next(w for w in words if w in tokens)
            return kind, f"guessed from name word '{word}'"
        match = pattern.search(low)
        if match:
            return kind, f"guessed from name word '{match.group(0)}'"
    share = float(facts.get("person_share") or 0.0)
    if share >= 0.5:
        return "character", f"guessed from tag frequency (person tags in {share:.0%} of captions)"
    top = str(facts.get("top_tag") or "").split()
    for kind, word_set in ((k, ws) for k, _w, ws in _KIND_TOKENS[1:3]):
        if word_set.intersection(top):
            return kind, f"guessed from tag frequency (most frequent tag '{' '.join(top)}')"
    return "other", "guessed: no name word or tag evidence"
