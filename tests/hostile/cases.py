"""The hostile-input table: every case, and the outcome each layer must give.

One row per case; the tests in this folder are parametrised over these tuples, so adding a case
needs no new test code. ``mentions`` are case-insensitive regular expressions that must ALL match
the message the user reads (the error, the chat reply, the CLI's stderr, the API's JSON): a case
passes only when the message names the offending thing, not merely when "something failed".

Outcomes, as the user meets them:

* ``"error"`` — the input is refused: ``PromptError`` from the parser, a chat reply that explains,
  exit code 2 and one line on stderr from the CLI, HTTP 4xx with JSON from the API.
* ``"skip"``  — the request is served, the offending LoRA is *not applied* and the user is told
  (an advice warning / a note in the API's ``info``). The image then equals the baseline image of
  the same prompt without that tag, bit for bit.
* ``"omit"``  — like ``"skip"``, but found only when the engine tries to apply the file (the
  library cannot tell from the header): the render leaves it out with a note naming it and why
  (issue 12's partial mixes; ``"strict": true`` makes it a 4xx).
* ``"ok"``    — ordinary input that merely looks odd (CJK names, an unclosed ``<lora:`` that A1111
  reads as plain text): served normally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["error", "skip", "omit", "ok"]

#: The LoRA every normal request uses (a demo LoRA of the tiny pipeline and of the test library).
GOOD = "catgirl_v1"
GOOD2 = "cyberpunk_style"


@dataclass(frozen=True)
class PromptCase:
    """A hostile prompt. ``parse`` is the parser's outcome, ``user`` the outcome through the
    assistant (advise / chat / API). ``loras`` is how many tags the parser must find when it
    accepts the text (None: not checked)."""

    id: str
    positive: str
    negative: str = ""
    parse: Outcome = "error"
    user: Outcome = "error"
    mentions: tuple[str, ...] = ()
    loras: int | None = None


def _many(n: int) -> str:
    return ", ".join(f"<lora:{GOOD}_{i}:0.1>" for i in range(n))


LONG_NAME = "a" * 10_000

PROMPT_CASES: tuple[PromptCase, ...] = (
    # -- names ---------------------------------------------------------------------------------
    PromptCase(
        "name-traversal",
        "1girl, <lora:../../etc/passwd:1>",
        parse="ok",
        user="skip",
        mentions=(r"\.\./\.\./etc/passwd",),
        loras=1,
    ),
    PromptCase(
        "name-traversal-deep",
        "1girl, <lora:../../../../../../../../etc/shadow:0.5>",
        parse="ok",
        user="skip",
        mentions=(r"etc/shadow",),
        loras=1,
    ),
    PromptCase(
        "name-absolute",
        "1girl, <lora:/etc/passwd:1>",
        parse="ok",
        user="skip",
        mentions=(r"/etc/passwd",),
        loras=1,
    ),
    PromptCase(
        "name-windows-absolute",
        r"1girl, <lora:C:\Windows\win.ini:1>",  # A1111 splits on ':' -> name 'C', weight '\Windows…'
        mentions=(r"win\.ini", r"not a number"),
    ),
    PromptCase(
        "name-backslash",
        r"1girl, <lora:..\..\secret:1>",
        parse="ok",
        user="skip",
        mentions=(r"secret",),
        loras=1,
    ),
    PromptCase(
        "name-url-encoded",
        "1girl, <lora:%2e%2e%2f%2e%2e%2fetc%2fpasswd:1>",
        parse="ok",
        user="skip",
        mentions=(r"%2e%2e",),
        loras=1,
    ),
    PromptCase(
        "name-nul-byte",
        "1girl, <lora:catgirl\x00../../etc/passwd:1>",
        parse="error",
        user="error",
        mentions=(r"control|NUL|\\x00|character",),
    ),
    PromptCase(
        "name-10k-chars",
        f"1girl, <lora:{LONG_NAME}:1>",
        parse="error",
        user="error",
        mentions=(r"name|long|characters",),
    ),
    PromptCase(
        "name-cjk-unknown",
        "1girl, <lora:猫娘_v1:0.8>",
        parse="ok",
        user="skip",
        mentions=(r"猫娘_v1",),
        loras=1,
    ),
    PromptCase(
        "name-emoji-unknown",
        "1girl, <lora:🐱girl:0.8>",
        parse="ok",
        user="skip",
        mentions=(r"🐱girl",),
        loras=1,
    ),
    PromptCase("name-empty", "1girl, <lora::0.8>", parse="error", user="error", mentions=(r"name",)),
    PromptCase(
        "name-case-typo",
        "1girl, <lora:CatGirl_V1:0.6>",
        parse="ok",
        user="ok",
        mentions=(r"catgirl_v1",),
        loras=1,
    ),
    PromptCase(
        "name-near-typo",
        "1girl, <lora:catgrl_v1:0.6>",
        parse="ok",
        user="skip",
        mentions=(r"catgrl_v1", r"catgirl_v1"),
        loras=1,
    ),
    # -- weights -------------------------------------------------------------------------------
    PromptCase("weight-nan", f"1girl, <lora:{GOOD}:nan>", mentions=(r"nan", GOOD)),
    PromptCase("weight-inf", f"1girl, <lora:{GOOD}:inf>", mentions=(r"inf", GOOD)),
    PromptCase("weight-minus-inf", f"1girl, <lora:{GOOD}:-inf>", mentions=(r"inf", GOOD)),
    PromptCase("weight-1e309", f"1girl, <lora:{GOOD}:1e309>", mentions=(r"1e309", GOOD)),
    PromptCase("weight-abc", f"1girl, <lora:{GOOD}:abc>", mentions=(r"abc", GOOD)),
    PromptCase("weight-empty", f"1girl, <lora:{GOOD}:>", mentions=(GOOD, r"weight|empty|number")),
    PromptCase("weight-unet-not-number", f"1girl, <lora:{GOOD}:0.8:a:b>", mentions=(GOOD, r"'a'|\ba\b")),
    PromptCase("weight-plus-100", f"1girl, <lora:{GOOD}:100>", mentions=(r"100", r"-2|2")),
    PromptCase("weight-minus-100", f"1girl, <lora:{GOOD}:-100>", mentions=(r"-100", r"-2|2")),
    PromptCase("weight-named-te-nan", f"1girl, <lora:{GOOD}:te=nan>", mentions=(r"nan", GOOD)),
    PromptCase(
        "weight-negative-prompt-nan", "1girl", negative=f"blurry, <lora:{GOOD}:nan>", mentions=(r"nan", GOOD)
    ),
    PromptCase("loras-50", "1girl, " + _many(50), mentions=(r"50", r"LoRA")),
    # -- text ----------------------------------------------------------------------------------
    PromptCase("tag-unclosed", "1girl, <lora:x:0.5", parse="ok", user="ok", loras=0),
    PromptCase("tag-nested", "1girl, <lora:<lora:x:1>:1>", parse="error", user="error", mentions=(r"lora",)),
    PromptCase("parens-100k", "(" * 100_000, mentions=(r"long|characters|limit",)),
    PromptCase("angles-100k", "<" * 100_000, mentions=(r"long|characters|limit",)),
    PromptCase("prompt-1mb", "1girl, " + "masterpiece " * 90_000, mentions=(r"long|characters|limit",)),
    PromptCase("parens-9990-nested", "(" * 9_990 + "1girl" + ")" * 9_990, parse="ok", user="ok", loras=0),
    PromptCase("brackets-19k-unclosed", "[" * 19_000 + "1girl", parse="ok", user="ok", loras=0),
    PromptCase("lora-open-3000", "<lora:" * 3_000, parse="ok", user="ok", loras=0),
    PromptCase("loras-21", "1girl, " + _many(21), mentions=(r"21", r"at most 20")),
    PromptCase("dyn-not-number", f"1girl, <lora:{GOOD}:0.5:0.5:abc>", mentions=(r"abc", r"dyn")),
    PromptCase("comment-hides-tag", f"# <lora:{GOOD}:nan>\n1girl", parse="ok", user="ok", loras=0),
    PromptCase("parens-unbalanced", "((((((1girl, cat ears", parse="ok", user="ok", loras=0),
    PromptCase("control-chars", "1girl\x1b[31m, cat ears\x07\x08", parse="ok", user="ok", loras=0),
    PromptCase("bad-attention-number", "(1girl:1.2.3), cat ears", parse="ok", user="ok", loras=0),
)


@dataclass(frozen=True)
class FileCase:
    """A hostile file in the LoRA folder.

    ``status`` is the library's verdict (``"absent"``: not listed at all) and ``mentions`` what its
    ``problem`` text must say. ``user`` is the outcome when a prompt names the file through the
    assistant (API/chat): ``"skip"`` = served without it and a warning naming it, ``"error"`` =
    4xx naming it. ``user_mentions`` is what that warning or error must say besides the name.
    """

    id: str
    builder: str  # key of tests.hostile.files.BUILDERS
    status: Literal["refused", "broken", "ok", "absent"]
    mentions: tuple[str, ...] = ()
    user: Outcome = "skip"
    user_mentions: tuple[str, ...] = ()


FILE_CASES: tuple[FileCase, ...] = (
    FileCase("pickle-ckpt", "ckpt", "refused", (r"\.ckpt is a pickle", r"arbitrary code")),
    FileCase("pickle-pt", "pt", "refused", (r"\.pt is a pickle", r"arbitrary code")),
    FileCase("pickle-bin", "bin", "refused", (r"\.bin is a pickle", r"arbitrary code")),
    FileCase("zero-byte", "zero_byte", "broken", (r"empty file \(0 bytes\)",)),
    FileCase("html", "html", "broken", (r"HTML page",)),
    FileCase("lfs-pointer", "lfs_pointer", "broken", (r"Git LFS pointer", r"git lfs pull")),
    FileCase("truncated-data", "truncated", "broken", (r"truncated", r"beyond the end")),
    FileCase("truncated-header", "truncated_header", "broken", (r"truncated", r"header")),
    FileCase("huge-header-length", "huge_header", "broken", (r"header length", r"16 MB cap")),
    FileCase("header-over-cap", "header_over_cap", "broken", (r"header length", r"16 MB cap")),
    FileCase("invalid-json-header", "invalid_json_header", "broken", (r"not valid JSON",)),
    FileCase("non-utf8-header", "non_utf8_header", "broken", (r"not UTF-8",)),
    FileCase("json-not-object", "json_not_object", "broken", (r"a list, not an object",)),
    FileCase("offsets-beyond-file", "offsets_beyond_file", "broken", (r"beyond the end of the file",)),
    FileCase("offsets-shape-mismatch", "offsets_overlapping", "broken", (r"offsets and shapes disagree",)),
    FileCase("offsets-aliased", "offsets_aliased", "broken", (r"overlaps",)),
    FileCase("offsets-hole-at-end", "offsets_hole_at_end", "broken", (r"do not cover the file",)),
    FileCase("offsets-gap-at-start", "offsets_gap_at_start", "broken", (r"gap",)),
    FileCase("offsets-reversed", "offsets_reversed", "broken", (r"invalid data_offsets",)),
    FileCase("unknown-dtype", "unknown_dtype", "broken", (r"unknown dtype 'X99'",)),
    FileCase("negative-shape", "negative_shape", "broken", (r"invalid shape",)),
    FileCase("astronomic-shape", "astronomic_shape", "broken", (r"offsets and shapes disagree",)),
    FileCase("non-string-metadata", "non_string_metadata", "broken", (r"ss_network_dim", r"not a string")),
    FileCase("metadata-not-object", "metadata_not_object", "broken", (r"__metadata__ is a str",)),
    FileCase("escaping-symlink", "escaping_symlink", "refused", (r"outside the LoRA folders",)),
    FileCase("dangling-symlink", "dangling_symlink", "broken", (r"target is missing",)),
    FileCase("directory", "directory", "absent", ()),
    # Valid files that still cannot work on the (tiny) SD1.5 model:
    FileCase(
        "odd-kohya-metadata", "bad_tag_frequency", "ok", (), user="omit", user_mentions=(r"load|size|shape",)
    ),
    FileCase("sdxl-on-sd15", "sdxl", "ok", (), user="skip", user_mentions=(r"sdxl|SDXL",)),
    # keys that name no UNet/text-encoder layer: refused at scan time (issue 12)
    FileCase("no-matching-keys", "alien_keys", "refused", (r"layer names",), user="skip"),
    FileCase(
        "no-tensors", "no_tensors", "ok", (r"no LoRA tensors",), user="omit", user_mentions=(r"tensor|key",)
    ),
)


@dataclass(frozen=True)
class GenerationCase:
    """Generation settings through the API (A1111 field names) and what the 422 message names."""

    id: str
    payload: dict[str, object] = field(default_factory=dict)
    mentions: tuple[str, ...] = ()


GENERATION_CASES: tuple[GenerationCase, ...] = (
    GenerationCase("width-not-multiple-of-8", {"width": 70}, (r"width", r"70", r"8")),
    GenerationCase("height-zero", {"height": 0}, (r"height",)),
    GenerationCase("width-negative", {"width": -64}, (r"width",)),
    GenerationCase("width-100000", {"width": 100_000}, (r"width",)),
    GenerationCase("steps-zero", {"steps": 0}, (r"steps",)),
    GenerationCase("steps-10000", {"steps": 10_000}, (r"steps",)),
    GenerationCase("cfg-nan", {"cfg_scale": "NaN"}, (r"cfg",)),
    GenerationCase("cfg-infinity", {"cfg_scale": "Infinity"}, (r"cfg",)),
    GenerationCase("batch-1000", {"batch_size": 1000}, (r"batch",)),
    GenerationCase("n-iter-1000", {"n_iter": 1000}, (r"n_iter|iter|batch",)),
    GenerationCase("unknown-sampler", {"sampler_name": "Euler z"}, (r"Euler z", r"DPM\+\+ 2M")),
    GenerationCase("unknown-scheduler", {"scheduler": "Bogus"}, (r"Bogus",)),
    GenerationCase("seed-too-large", {"seed": 2**70}, (r"seed",)),
    GenerationCase("seed-below-minus-one", {"seed": -5}, (r"seed",)),
    GenerationCase("width-string", {"width": "wide"}, (r"width",)),
    GenerationCase("steps-float", {"steps": 2.5}, (r"steps",)),
    GenerationCase("prompt-number", {"prompt": 12345}, (r"prompt",)),
    GenerationCase("prompt-list", {"prompt": ["1girl"]}, (r"prompt",)),
    GenerationCase("prompt-null", {"prompt": None}, (r"prompt",)),
)
