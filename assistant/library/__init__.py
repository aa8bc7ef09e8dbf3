"""The LoRA library: which LoRA files the user has and what each one is.

Pure Python (safetensors *header* + json + yaml): no torch, and no tensor is ever loaded. The one
I/O boundary is :meth:`Library.scan` (walks the folders, reads headers and sidecars, keeps a
cache index on disk) and :meth:`Library.hashes` (reads a whole file, lazily, on request). Name
resolution and search work on in-memory maps only, so a hostile name (``../../etc/passwd``, NUL
bytes, 10k characters) can never reach the filesystem.

Where each field comes from (later wins for the fields it sets):

1. the safetensors header: kohya ``ss_*`` metadata, ModelSpec ``modelspec.*``, tensor names and
   shapes (base model, network format, rank, alpha, guessed kind and triggers);
2. A1111's sidecar ``<stem>.json`` (``activation text``, ``preferred weight``, ``sd version``,
   ``negative text``, ``notes``, ``description``; a ``kind`` key is read too);
3. Civitai's ``<stem>.civitai.info`` (``trainedWords``, ``baseModel``, ``description``);
4. the project catalog ``presets/loras.yaml`` (see :mod:`assistant.presets`).

Documented heuristics (used only when nothing above declares the value):

* **Base model**: metadata (``ss_base_model_version``, ``modelspec.architecture``, ``ss_v2``),
  else tensor widths: the cross-attention ``to_k``/``to_v`` input width is the text-embedding
  width (768 → sd15, 1024 → sd2, 2048 → sdxl); else the text-encoder width (768 → sd15,
  1024 → sd2); ``lora_te2_``/``text_encoder_2`` keys → sdxl. When metadata and tensor widths
  disagree the tensors win (they decide whether the file loads at all) and ``base_source`` says so;
  non-standard widths (e.g. a tiny test model's 32) never override metadata.
* **Kind**: words in the file name, in this priority: adjuster words (``add``, ``detail``,
  ``saturation``, ``brightness``, ``contrast``, ``slider`` …) → concept; clothing words
  (``uniform``, ``dress``, ``outfit``, ``jk`` …) → clothing; style words (``style``,
  ``outline``, ``lineart``, ``light``, ``watercolor`` …) → style; character words (``girl``,
  ``boy``, ``character`` …) → character. Else the tag frequency: person-count tags (``1girl``,
  ``solo`` …) in at least half the captions → character. Else "other". ``kind_source`` starts
  with "guessed" whenever a heuristic decided.
* **Triggers** from ``ss_tag_frequency``: counts are summed over the dataset folders, generic
  tags (:data:`GENERIC_TAGS`: person counts, quality, framing, backgrounds) are dropped, and the
  most frequent remaining tags are kept — at most 3, each seen in at least half as many captions
  as the most frequent one.

Statuses: ``ok`` (a loadable ``.safetensors``), ``refused`` (pickle formats ``.ckpt/.pt/.bin/.pth``
— unpickling can run code —, symlinks leaving the roots, full checkpoints or embeddings in the
LoRA folder) and ``broken`` (empty, truncated, HTML page, Git-LFS pointer, bad JSON header,
offsets not covering the file, non-string metadata …) with the reason in ``problem``. For ``ok``
entries ``problem`` may hold a non-fatal warning (an unreadable sidecar, a name A1111 tags
cannot express, tensor names of no known layout).

Hashes follow A1111 exactly: ``modules/hashes.py`` ``addnet_hash_safetensors`` hashes the bytes
after ``8 + header_length`` and ``extensions-builtin/Lora/network.py`` shows its first 12 hex
digits (``Lora hashes`` in the infotext); Civitai's AutoV2 is the whole file's sha256, first 10.

Speed: a scan stats every file; with ``cache_dir`` the finished entries are kept in a
:mod:`marshal` index keyed by path, size and mtime (plus sidecar stats and the catalog digest),
so a warm scan reads no header; :meth:`Library.refresh` also reuses unchanged entry objects.
``bench/library_bench.py`` measures cold/warm scans of 10,000 files and name resolution.

The package, one concern a module (import the public names from ``assistant.library``):

* :mod:`.header`: reading and validating a safetensors header (``read_safetensors_header``);
* :mod:`.detect`: what a header says (format, base model, rank, alpha; ``file_base``,
  ``base_mismatch``); :mod:`.guess`: the trigger and kind heuristics above;
* :mod:`.sidecars`: A1111 ``<stem>.json``, Civitai ``<stem>.civitai.info``, previews;
* :mod:`.cache`: the scan index on disk and lazily read metadata;
* :mod:`.scan`: the folder walk and the merge of the sources into one :class:`LoraInfo`;
* :mod:`.resolve`: name → entry (aliases, relative paths, did-you-mean), search;
* :mod:`.hashing`: :class:`Hashes`, the hash cache, ``with_hashes`` (the one hashing path);
* :mod:`.core`: :class:`Library` (scan, refresh, listing), built on the two above.
"""

from __future__ import annotations

from ..errors import LibraryError
from .core import DEFAULT_CATALOG, Library, info_to_dict
from .detect import BASE_LABELS, KEPT_METADATA, base_mismatch, file_base
from .guess import GENERIC_TAGS
from .hashing import Hashes, embedded_hash, with_hashes
from .header import HEADER_CAP, read_safetensors_header
from .scan import LOADABLE_SUFFIXES, PICKLE_SUFFIXES
from .sidecars import PREVIEW_EXTENSIONS

__all__ = [
    "BASE_LABELS",
    "DEFAULT_CATALOG",
    "GENERIC_TAGS",
    "HEADER_CAP",
    "KEPT_METADATA",
    "LOADABLE_SUFFIXES",
    "PICKLE_SUFFIXES",
    "PREVIEW_EXTENSIONS",
    "Hashes",
    "Library",
    "LibraryError",
    "base_mismatch",
    "embedded_hash",
    "file_base",
    "info_to_dict",
    "read_safetensors_header",
    "with_hashes",
]
