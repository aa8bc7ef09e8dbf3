"""The AUTOMATIC1111 prompt language: extra-network tags, attention weights, BREAK, comments.

Pure Python (``re`` and ``math`` only). Everything here is a function of text:

* :func:`parse` turns a positive/negative prompt pair into a :class:`~assistant.types.Prompt`
  (``<lora:…>``/``<lyco:…>`` tags as :class:`~assistant.types.LoraTag`, other extra-network tags
  as :class:`~assistant.types.ExtraTag`, the text-encoder text, and notes for the user).
* :func:`render` writes a ``Prompt`` back as A1111 text; untouched text comes back byte for byte.
* :func:`parse_attention` is A1111's ``prompt_parser.parse_prompt_attention``; the engine's
  A1111 encoder (``assistant.engine.encoding``) reads its result: the one grammar of weights.
* :func:`encoder_text`, :func:`split_terms`, :func:`has_term` answer questions about the words.
* :func:`replace_tag`, :func:`remove_tag`, :func:`reorder_tags`, :func:`insert_terms`,
  :func:`append_terms` are the text edits the advisor makes; each returns new text and leaves the
  bytes outside the edit unchanged.

A1111 sources these rules follow: ``modules/extra_networks.py`` (``<(\\w+):([^>]+)>``, arguments
split on ``:``, an item with exactly one ``=`` is named), ``extensions-builtin/Lora/
extra_networks_lora.py`` (``te`` defaults to 1.0, ``unet`` to ``te``, ``dyn`` to None; named
``te=``/``unet=``/``dyn=`` override positions), ``modules/prompt_parser.py`` (attention) and
``modules/processing_scripts/comments.py`` (comments).

Intended differences from A1111, each a place where A1111 crashes, silently ignores something the
user meant, or behaves in a way nobody relies on:

1. Errors instead of crashes or silent skips: a LoRA tag with an empty name, a weight that is not
   a finite number, a weight outside :class:`PromptLimits`, a ``dyn`` that is not a positive whole
   number, a name with control characters or longer than a file name can be, a tag that contains
   ``<`` (an earlier tag was not closed), too many LoRA tags or too long a prompt raise
   :class:`~assistant.errors.PromptError` naming the tag and the allowed values.
2. ``<LoRA:…>``/``<LYCO:…>`` (any letter case) count as LoRA tags, with a note; A1111 skips
   unknown extra-network types, and only lower-case ``lora``/``lyco`` are registered.
3. An unclosed ``<lora:…`` (no ``>``) is plain text to A1111. We keep it in the prompt, add a
   note, and leave it out of the encoder text: it is a typo, never words for the text encoder.
4. A malformed attention number such as ``(x:1.2.3)`` crashes A1111 (``float('1.2.3')``). We read
   the text as if the number alternative of the tokenizer had not matched: ``:1.2.3`` is plain
   text and the ``)`` closes a plain ``(…)`` (x1.1); a note says so. The same holds for a number
   that overflows to infinity.
5. ``BREAK`` is always ``("BREAK", -1.0)``. A1111 multiplies the -1 of a BREAK inside brackets
   (``(a BREAK b)`` gives ``("BREAK", -1.1)``), which then is no longer recognised as a break.
6. Comments: a line that starts with ``#`` is removed (with its newline), and extra-network tags
   on it are ignored. A1111 1.8+ also hides the rest of a line after a ``#`` in the middle of a
   line; we keep such text, because ``#`` appears inside ordinary tags (``#1``, colour codes).
7. Deeply nested attention (more than about 50,000 bracket-segment multiplications) switches to
   an equivalent linear algorithm; its weights may differ from A1111's in the last bit because
   the multiplications happen in another order. A1111's own loop is quadratic there.
8. A computed attention weight that overflows is replaced by 1.0, with a note.
9. Encoder text: tags are removed with the commas and spaces around them tidied, so no ``, ,``
   remains (A1111 removes only the tag itself). Comma spacing does change CLIP tokens; the
   tidy only removes separators that belonged to the removed tag.
10. A1111's prompt editing (``[from:to:step]``), alternation (``[a|b]``) and ``AND`` (composable
    diffusion) are not run: the text goes to the encoder as words (brackets as de-emphasis), and a
    note names the first occurrence of each so the user knows. ``<lora:>`` (no name) is refused
    like any nameless tag, although A1111's tag pattern reads it as words.
11. Terms are separated by commas, line breaks and the full-width ``，`` and ideographic ``、``
    commas of Chinese and Japanese input methods (for the edit helpers: ``has_term``,
    ``insert_terms`` …); the encoder text keeps them as written.

Cost: every function is linear in the length of the text (tag scanning stops at the last ``>``,
BREAK splitting widens over whitespace by hand instead of A1111's backtracking ``\\s*`` regex,
deep attention nesting switches algorithm). Pure per-text steps are memoised with
``functools.lru_cache`` (tag scan, tag reading, encoder text): a prompt that is parsed again, as a
UI does on every edit, costs a few tens of microseconds. :func:`clear_caches` frees them.

The package, one responsibility a module (this ``__init__`` re-exports the public names, so
``from assistant.prompt import parse`` works as before):

* :mod:`.tags` — the one LoRA-tag grammar (scan, read, check, write; :class:`PromptLimits`);
* :mod:`.reader` — :func:`parse` and :func:`encoder_text`;
* :mod:`.attention` — :func:`parse_attention` (weights, escapes, ``BREAK``);
* :mod:`.terms` — :func:`split_terms`, :func:`has_term`, :func:`missing_terms`,
  :func:`insert_terms`, :func:`append_terms`;
* :mod:`.rewrite` — :func:`render`, :func:`retag` and the tag edits;
* :mod:`.text` — comment lines, tidy removal, quoting text in error messages.
"""

from __future__ import annotations

from . import reader, tags, terms
from .attention import parse_attention
from .reader import encoder_text, parse
from .rewrite import remove_tag, render, reorder_tags, replace_tag, retag
from .tags import DEFAULT_LIMITS as DEFAULT_LIMITS
from .tags import KNOWN_EXTRA_TYPES as KNOWN_EXTRA_TYPES
from .tags import PromptLimits, mentions_lora_tag
from .terms import LEADING_TERMS as LEADING_TERMS
from .terms import TERM_SEPARATORS as TERM_SEPARATORS
from .terms import append_terms, has_term, insert_terms, missing_terms, split_terms
from .terms import term_spans as term_spans

__all__ = [
    "PromptLimits",
    "append_terms",
    "clear_caches",
    "encoder_text",
    "has_term",
    "insert_terms",
    "mentions_lora_tag",
    "missing_terms",
    "parse",
    "parse_attention",
    "remove_tag",
    "render",
    "reorder_tags",
    "replace_tag",
    "retag",
    "split_terms",
]


def clear_caches() -> None:
    """Forget memoised tag scans and tag readings (they are pure; this only frees memory, and
    lets benchmarks measure the uncached path)."""
    for cached in (
        tags._scan_tags,
        tags._tag_values,
        tags._cached_lora_tag,
        tags._allowed,
        reader._encoder_and_notes,
        terms._terms,
        terms._term_set,
    ):
        cached.cache_clear()
