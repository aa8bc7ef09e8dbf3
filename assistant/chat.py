"""The chat brain: a message → an :class:`Intent` → a :class:`ChatReply` (markdown).

Pure: no torch, no gradio, no files. :func:`route` decides what a message is — a prompt to advise,
a slash command (``/blindbox 8``, ``/ab A B``, ``/sweep NAME 0.2..1.0x5``, ``/loras [filter]``,
``/recipe NAME``, ``/help``), a troubleshooting question ("why is my image black", "出图全黑"),
or something else — and :func:`respond` answers it from the rule table in ``presets/rules.yaml``,
with prompt-specific advice when a prompt is in the context. Replies follow the user's language
(Chinese when the message contains CJK characters). The chat only plans and explains; the app
decides to render for prompt, blind-box, A/B and sweep intents using ``Intent.args``.

Change reasons and warnings come from the rules in English and Chinese (``Change.reason_zh``,
``AdviceWarning.message_zh``); headings, answers and explanations written here are in the user's
language too. Prompt-parser notes are English only (they quote the offending text).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import limits
from .advisor import advise
from .blend import weight_axis
from .errors import AmbiguousLoraName, LoraMixerError, LoraNotFound
from .messages import HELP, Language, _t, format_advice, say
from .prompt import mentions_lora_tag
from .rules.config import RulesConfig, default_rules_config
from .rules.state import kind_zh
from .types import Advice, LoraInfo, format_weight

if TYPE_CHECKING:
    from .library import Library

log = logging.getLogger(__name__)

__all__ = ["ChatAction", "ChatContext", "ChatMemory", "ChatReply", "Intent", "IntentKind", "respond", "route"]

IntentKind = Literal[
    "advise", "img2img", "blindbox", "ab", "sweep", "library", "recipe", "troubleshoot", "help", "unknown"
]

# Every bound is assistant.limits' number, so the chat quotes the same limit as the parser, the
# API schema and the README.
BLINDBOX_MIN, BLINDBOX_MAX = limits.BLINDBOX_CELLS
BLINDBOX_DEFAULT = limits.BLINDBOX_DEFAULT
SWEEP_MIN_COUNT, SWEEP_MAX_COUNT = limits.SWEEP_VALUES
SWEEP_DEFAULT_COUNT = limits.SWEEP_DEFAULT_VALUES
WEIGHT_MIN, WEIGHT_MAX = limits.LORA_WEIGHT
LIST_LIMIT = 30
# A message holds one prompt (with an optional "Negative prompt:" line): longer than a prompt may
# be, it is refused before any parsing, quoting the prompt limit. Commands are short by nature.
MAX_MESSAGE_CHARS = limits.PROMPT_CHARS
MAX_COMMAND_CHARS = limits.COMMAND_CHARS
#: How many later messages a symptom asked about without a prompt waits for that prompt.
MEMORY_TURNS = 3
FILTER_MAX_CHARS = 200
_EXAMPLE = "1girl, <lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.5>"


@dataclass(frozen=True, slots=True)
class Intent:
    """What a message asks for.

    ``args`` by kind (``# eg``):
    advise ``{"positive": "1girl, <lora:x:0.8>", "negative": None}`` (negative given only when the
    message has a ``Negative prompt:`` line); img2img ``{"strength": 0.4, "positive": "…" or None,
    "negative": None}`` (``/img2img 0.4 [prompt]``; no prompt: the prompt box); blindbox ``{"n": 8}``;
    ab ``{"a": "x", "b": "y"}``;
    sweep ``{"name": "x", "start": 0.2, "stop": 1.0, "count": 5, "weights": [0.2, 0.4, …]}``;
    library ``{"filter": "cat"}``; recipe ``{"name": "cyber_hotpot"}``;
    troubleshoot ``{"symptoms": ["black-image"], "faq": []}``; unknown ``{"command": "/foo"}``.
    Any kind may carry ``{"error": "…"}`` when the arguments could not be read.
    """

    kind: IntentKind
    args: Mapping[str, Any] = field(default_factory=dict)
    language: Language = "en"
    text: str = ""


@dataclass(frozen=True, slots=True)
class ChatMemory:
    """What one conversation remembers between turns (the UI keeps one per session).

    ``symptoms``: symptom ids asked about when there was no prompt to fix ("多耳怪怎么办"); the
    next prompt within ``turns_left`` messages gets their fix, and the reply says so.
    ``symptom_text``: how the user named them (quoted back). ``negative``: the negative prompt the
    last turn left in the box, so a prompt sent without a ``Negative prompt:`` line can say that
    it carries it.
    """

    symptoms: tuple[str, ...] = ()
    symptom_text: str = ""
    turns_left: int = 0
    negative: str | None = None

    def aged(self) -> ChatMemory:
        """This memory one message later (waiting symptoms expire)."""
        left = self.turns_left - 1
        if left <= 0:
            return dataclasses.replace(self, symptoms=(), symptom_text="", turns_left=0)
        return dataclasses.replace(self, turns_left=left)


@dataclass(frozen=True, slots=True)
class ChatContext:
    """What the chat knows besides the message: the library, the prompt boxes, the model.

    ``apply_changes``: when True, prompt replies put the rewritten prompts in the UI boxes; when
    False they only suggest. ``recipes`` maps a name to a recipe (``assistant.presets.Recipe``).
    """

    library: Library
    positive: str = ""
    negative: str = ""
    base: str = "sd15"
    apply_changes: bool = True
    config: RulesConfig | None = None
    recipes: Mapping[str, Any] = field(default_factory=dict)
    memory: ChatMemory = field(default_factory=ChatMemory)
    #: where this turn's img2img source is: "attached" (sent with the message), "slot" (the Init
    #: image slot), or "" (none: a prompt renders txt2img, ``/img2img`` only sets the strength)
    image: str = ""
    strength: float = limits.DENOISING_DEFAULT


@dataclass(frozen=True, slots=True)
class ChatAction:
    """What a reply asks to render, decided once here: the service runs it with one switch.

    ``kind`` is the button it stands for; ``options`` its arguments (``n`` for a blind box, ``a``
    and ``b`` for an A/B, ``x_axis`` — an :class:`~assistant.blend.Axis` — for a sweep).
    """

    kind: Literal["generate", "blindbox", "ab", "sweep"]
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChatReply:
    """The markdown answer, the intent behind it, the advice (if any) and the prompt boxes.

    ``positive``/``negative`` are what the UI boxes should hold after this turn (unchanged boxes
    are passed through). ``action`` is the render this message asks for (None: only the answer).
    """

    text: str
    intent: Intent
    advice: Advice | None = None
    positive: str = ""
    negative: str = ""
    memory: ChatMemory = field(default_factory=ChatMemory)
    action: ChatAction | None = None


# ----------------------------------------------------------------------------------------------
# Routing
# ----------------------------------------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff60]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_ATTENTION = re.compile(r"\([^()]*:\s*-?\d+(\.\d+)?\s*\)")
_NEGATIVE_LINE = re.compile(r"(?im)^\s*(negative prompt|negative|负面提示词|反向提示词)\s*[:\uff1a]\s*")
_QUESTION = re.compile(
    r"[?\uff1f]\s*$|^(why|how|what|which|when|where|can|could|should|does|do|is|are|help)\b"
    r"|为什么|怎么|如何|什么|哪个|多少|吗|呢|咋",
    re.IGNORECASE,
)
_PROMPT_WORDS = re.compile(
    r"\b(\d+(girl|boy)s?|solo|masterpiece|best quality|high quality|portrait|landscape|looking at viewer)\b",
    re.IGNORECASE,
)
_LIBRARY_WORDS = re.compile(
    r"\b(list|show|which|what)\b.*\bloras?\b|\bloras?\b.*\b(do i have|available|installed)\b"
    r"|有哪些\s*lora|lora\s*列表|列出",
    re.IGNORECASE,
)
#: What may follow ``/sweep NAME from..to`` (:func:`assistant.limits.split_range`): ``x5``.
_SWEEP_COUNT = re.compile(r"^(?:[x×*]\s*(?P<count>\d+))?$", re.IGNORECASE)


def language_of(text: str) -> Language:
    """ "zh" when the text contains Chinese characters, else "en" (also for Japanese: kana mark
    it, and an English reply serves a Japanese user better than a Chinese one)."""
    return "zh" if _CJK.search(text) and not _KANA.search(text) else "en"


def route(message: str, config: RulesConfig | None = None) -> Intent:
    """Classify one chat message. Never raises: unreadable arguments go into ``args["error"]``."""
    text = (message or "").strip()
    language = language_of(text)
    if not text:
        return Intent("help", {}, language, text)
    command = text.startswith(("/", "\uff0f"))
    # a command is held to the command limit (the tighter one, so it is the one quoted); a prompt,
    # and a command that carries one (/advise), to the prompt limit
    if command and len(text) > MAX_COMMAND_CHARS and not _is_prompt_command(text):
        return Intent("unknown", {"error": _too_long(len(text), MAX_COMMAND_CHARS, language)}, language, "")
    if len(text) > MAX_MESSAGE_CHARS:
        return Intent("unknown", {"error": _too_long(len(text), MAX_MESSAGE_CHARS, language)}, language, "")
    if command:
        return _route_command(text, language)
    config = config if config is not None else default_rules_config()
    if mentions_lora_tag(text):
        complaint = _complaint_with_prompt(text, config)
        if complaint is not None:
            return Intent("troubleshoot", complaint, language, text)
        return Intent("advise", _prompt_args(text), language, text)
    symptoms = config.match_symptoms(text)
    faq = config.match_faq(text)
    looks_like_prompt = _looks_like_prompt(text)
    if (symptoms or faq) and not (looks_like_prompt and not _QUESTION.search(text)):
        return Intent("troubleshoot", {"symptoms": symptoms, "faq": faq}, language, text)
    if _LIBRARY_WORDS.search(text):
        return Intent("library", {"filter": ""}, language, text)
    if text.casefold() in {"help", "帮助", "?", "\uff1f", "h"}:
        return Intent("help", {}, language, text)
    if looks_like_prompt:
        return Intent("advise", _prompt_args(text), language, text)
    return Intent("unknown", {}, language, text)


_COMPLAINT_END = re.compile(r"[?\uff1f:\uff1a\n]")


def _complaint_with_prompt(text: str, config: RulesConfig) -> dict[str, Any] | None:
    """``"多耳怪: 1girl, <lora:x:0.9>"`` / ``"why is my image black?\n<prompt>"`` → the symptoms and
    questions of the head and the prompt after it; None when the head is no complaint."""
    end = _COMPLAINT_END.search(text)
    if end is None or end.start() > 200 or "<" in text[: end.start()]:
        return None
    head, rest = text[: end.start()], text[end.end() :].strip()
    symptoms, faq = config.match_symptoms(head), config.match_faq(head)
    if not (symptoms or faq) or not mentions_lora_tag(rest):
        return None
    return {"symptoms": symptoms, "faq": faq, **_prompt_args(rest)}


def _too_long(length: int, limit: int, language: Language) -> str:
    what = "one prompt" if limit == MAX_MESSAGE_CHARS else "a command"
    what_zh = "一条提示词" if limit == MAX_MESSAGE_CHARS else "一条命令"
    return say("too_long", language, length=length, limit=limit, what=what, what_zh=what_zh)


def _is_prompt_command(text: str) -> bool:
    """``/advise …`` carries a whole prompt, so it gets the message limit, not the command one."""
    return text[1:].partition(" ")[0].casefold() in ("advise", "prompt", "fix")


def _looks_like_prompt(text: str) -> bool:
    if _QUESTION.search(text) and "," not in text:
        return False
    return text.count(",") + text.count("\uff0c") >= 2 or bool(
        _PROMPT_WORDS.search(text) or _ATTENTION.search(text)
    )


def _prompt_args(text: str) -> dict[str, Any]:
    match = _NEGATIVE_LINE.search(text)
    if match is None:
        return {"positive": text, "negative": None}
    return {"positive": text[: match.start()].strip(), "negative": text[match.end() :].strip()}


def _route_command(text: str, language: Language) -> Intent:
    head, _, rest = text[1:].partition(" ")
    command = head.casefold()
    rest = rest.strip()
    if command in ("help", "h", "?", "帮助"):
        return Intent("help", {}, language, text)
    if command in ("loras", "lora", "library", "list"):
        return Intent("library", {"filter": rest[:FILTER_MAX_CHARS]}, language, text)
    if command in ("recipe", "recipes"):
        return Intent("recipe", {"name": rest}, language, text)
    if command in ("advise", "prompt", "fix"):
        return Intent("advise", _prompt_args(rest), language, text)
    if command in ("img2img", "i2i"):
        return Intent("img2img", _img2img_args(rest), language, text)
    try:
        words = shlex.split(rest)
    except ValueError:
        words = rest.split()
    if command in ("blindbox", "blind", "盲盒"):
        return Intent("blindbox", _blindbox_args(words), language, text)
    if command == "ab":
        if len(words) != 2:
            return Intent("ab", _error("ab_usage"), language, text)
        return Intent("ab", {"a": words[0], "b": words[1]}, language, text)
    if command == "sweep":
        return Intent("sweep", _sweep_args(words), language, text)
    return Intent("unknown", {"command": "/" + head}, language, text)


def _img2img_args(rest: str) -> dict[str, Any]:
    """``/img2img 0.4 [prompt]``: the denoising strength (optional) and an optional prompt."""
    head, _, tail = rest.partition(" ")
    low, high = limits.DENOISING
    try:
        strength: float | None = float(head) if head else None
    except ValueError:
        strength = None
        tail = rest
    if strength is not None and not low <= strength <= high:  # NaN fails this too
        return _error("strength_range", low=low, high=high, given=head)
    args = {"strength": strength, **_prompt_args(tail.strip())}
    if not args["positive"]:
        args["positive"] = None
    return args


def _blindbox_args(words: list[str]) -> dict[str, Any]:
    if not words:
        return {"n": BLINDBOX_DEFAULT}
    try:
        n = int(words[0])
    except ValueError:
        return _error("blindbox_not_int", given=words[0], low=BLINDBOX_MIN, high=BLINDBOX_MAX)
    if not BLINDBOX_MIN <= n <= BLINDBOX_MAX:
        return _error("blindbox_range", low=BLINDBOX_MIN, high=BLINDBOX_MAX, n=n)
    return {"n": n}


def _error(key: str, *, name: str | None = None, **fields: Any) -> dict[str, Any]:
    """Intent arguments that could not be read: the message ``key`` in both languages (and the
    LoRA ``name`` the command was about, when it got that far)."""
    args: dict[str, Any] = {} if name is None else {"name": name}
    return {**args, "error": say(key, "en", **fields), "error_zh": say(key, "zh", **fields)}


def _sweep_args(words: list[str]) -> dict[str, Any]:
    if not words:
        return _error("sweep_usage")
    if len(words) == 1:
        start, stop, count = 0.2, 1.0, SWEEP_DEFAULT_COUNT
    else:
        span = limits.split_range("".join(words[1:]))
        match = _SWEEP_COUNT.match(span[2]) if span is not None else None
        if span is None or match is None:
            return _error("sweep_not_range", name=words[0], given=" ".join(words[1:]))
        start, stop = span[0], span[1]
        count = int(match["count"]) if match["count"] else SWEEP_DEFAULT_COUNT
    if not SWEEP_MIN_COUNT <= count <= SWEEP_MAX_COUNT:
        return _error("sweep_count", name=words[0], low=SWEEP_MIN_COUNT, high=SWEEP_MAX_COUNT, count=count)
    if not (WEIGHT_MIN <= start <= WEIGHT_MAX and WEIGHT_MIN <= stop <= WEIGHT_MAX):
        return _error("sweep_weights", name=words[0], low=WEIGHT_MIN, high=WEIGHT_MAX, start=start, stop=stop)
    step = (stop - start) / (count - 1) if count > 1 else 0.0
    weights = [round(start + i * step, 4) for i in range(count)]
    axis = weight_axis(words[0], weights)
    return {"name": words[0], "start": start, "stop": stop, "count": count, "weights": weights, "axis": axis}


# ----------------------------------------------------------------------------------------------
# Replies
# ----------------------------------------------------------------------------------------------

def respond(message: str, context: ChatContext) -> ChatReply:
    """Answer one chat message. Never raises: user errors become a reply that explains them."""
    config = context.config if context.config is not None else default_rules_config()
    intent = route(message, config)
    try:
        reply = _HANDLERS[intent.kind](intent, context, config)
    except LoraMixerError as exc:
        reply = _reply(say("failed", intent.language, error=exc), intent, context)
    except Exception:  # the chat is a UI boundary: log the bug, answer politely
        log.exception("chat reply failed for %r", message)
        reply = _reply(say("internal_error", intent.language), intent, context)
    # One memory for the conversation: the advise and troubleshoot replies decide what waits for
    # the next prompt; every other message ages it. The boxes' negative prompt is remembered so the
    # next prompt can say it carries it.
    memory = reply.memory if reply.memory is not _KEEP else context.memory.aged()
    memory = dataclasses.replace(memory, negative=reply.negative)
    return dataclasses.replace(reply, memory=memory, action=_action(reply))


def _action(reply: ChatReply) -> ChatAction | None:
    """The render a reply asks for: a prompt (or recipe, or img2img) renders its advice; the plan
    commands render their grid of the prompt box; an error or a plain answer renders nothing."""
    intent = reply.intent
    args = intent.args
    if "error" in args:
        return None
    if intent.kind in ("advise", "recipe", "img2img"):
        return ChatAction("generate") if reply.advice is not None else None
    if intent.kind == "blindbox":
        return ChatAction("blindbox", {"n": int(args["n"])})
    if intent.kind == "ab":
        return ChatAction("ab", {"a": args["a"], "b": args["b"]})
    if intent.kind == "sweep":
        return ChatAction("sweep", {"x_axis": args["axis"]})
    return None


#: A reply whose handler left the conversation memory alone (``respond`` ages it).
_KEEP = ChatMemory(symptom_text="\0keep")


def _reply(
    text: str,
    intent: Intent,
    context: ChatContext,
    advice: Advice | None = None,
    memory: ChatMemory = _KEEP,
) -> ChatReply:
    positive, negative = context.positive, context.negative
    if advice is not None and context.apply_changes:
        positive, negative = advice.positive, advice.negative
    return ChatReply(
        text=text, intent=intent, advice=advice, positive=positive, negative=negative, memory=memory
    )


def _advise_reply(intent: Intent, context: ChatContext, config: RulesConfig) -> ChatReply:
    lang = intent.language
    positive = intent.args.get("positive", "")
    negative_arg = intent.args.get("negative")
    negative = context.negative if negative_arg is None else negative_arg
    if not positive.strip():
        return _help_reply(intent, context, config)
    memory = context.memory
    symptoms = memory.symptoms if memory.turns_left > 0 else ()
    advice = advise(
        positive, negative, library=context.library, config=config, base=context.base, symptoms=symptoms
    )
    source = None
    if negative_arg is None and negative.strip():
        carried = memory.negative is not None and negative == memory.negative
        source = "carried" if carried else "box"
    parts = []
    if symptoms:
        parts.append(_remembered(memory, config, lang))
    parts.append(format_advice(advice, lang, applied=context.apply_changes, negative_source=source))
    unknown = _unknown_names(advice, context.library)
    if unknown:
        parts.append(_available(context.library, context.base, lang))
    text = "\n\n".join(parts)
    # the symptom waited for this prompt: it is applied now, so it stops waiting
    memory = dataclasses.replace(memory, symptoms=(), symptom_text="", turns_left=0)
    if context.apply_changes:
        return ChatReply(text, intent, advice, advice.positive, advice.negative, memory)
    return ChatReply(text, intent, advice, positive, negative, memory)  # the boxes get what was typed


def _img2img_reply(intent: Intent, context: ChatContext, config: RulesConfig) -> ChatReply:
    """``/img2img 0.4 [prompt]``: img2img of the attached image (or the Init image slot's) at that
    strength, the prompt advised like any other; without an image it only sets the strength."""
    lang = intent.language
    args = intent.args
    if "error" in args:
        text = args.get("error_zh") if lang == "zh" else args["error"]
        return _reply(say("cannot_read", lang, error=text), intent, context)
    strength = args["strength"] if args.get("strength") is not None else context.strength
    shown = format_weight(strength)
    if not context.image:
        text = say("strength_set", lang, shown=shown)
        return _reply(text, _with_error(intent, text), context)
    prompt = args.get("positive")
    wanted = {"positive": context.positive, "negative": None}
    if prompt is not None:
        wanted = {"positive": prompt, "negative": args.get("negative")}
    intent = Intent("img2img", {**args, "strength": strength}, lang, intent.text)
    if not str(wanted["positive"]).strip():  # A1111 renders img2img without a prompt, too
        negative = context.negative if wanted["negative"] is None else str(wanted["negative"])
        advice = advise("", negative, library=context.library, config=config, base=context.base)
        text = say("img2img_no_prompt", lang)
        return _reply(text, intent, context, advice)
    reply = _advise_reply(Intent("advise", wanted, lang, intent.text), context, config)
    return dataclasses.replace(reply, intent=intent)


def _remembered(memory: ChatMemory, config: RulesConfig, lang: Language) -> str:
    """The lead of a reply that applies a symptom discussed earlier."""
    titles = say("title_separator", lang).join(
        config.symptoms[s].title.get(lang) for s in memory.symptoms if s in config.symptoms
    )
    return say("remembered", lang, asked=memory.symptom_text or titles, titles=titles)


def _unknown_names(advice: Advice, library: Library) -> list[str]:
    return [
        w.lora
        for w in advice.warnings
        if w.rule == "resolve-names" and w.lora and _try_resolve(library, w.lora) is None
    ]


def _available(library: Library, base: str, lang: Language, limit: int = 8) -> str:
    """The LoRAs one could use instead of an unknown name (the loaded base's first)."""
    infos = [i for i in library.all() if i.loadable]
    infos.sort(key=lambda i: (i.base not in (base, "unknown"), i.name.casefold()))
    names = ", ".join(f"`{i.name}`" for i in infos[:limit])
    more = len(infos) - limit
    if not infos:
        return say("library_empty", lang)
    if lang == "zh":
        return f"库里有:{names}" + (f" 等 {len(infos)} 个" if more > 0 else "") + "。发 `/loras` 查看全部。"
    return f"Your LoRAs: {names}" + (f" and {more} more" if more > 0 else "") + " — `/loras` lists them all."


def _troubleshoot_reply(intent: Intent, context: ChatContext, config: RulesConfig) -> ChatReply:
    lang = intent.language
    if intent.args.get("positive"):  # the prompt came with the question: it is the one to fix
        negative = intent.args.get("negative")
        context = dataclasses.replace(
            context,
            positive=intent.args["positive"],
            negative=context.negative if negative is None else negative,
        )
    parts: list[str] = []
    for sid in intent.args.get("symptoms", []):
        s = config.symptoms[sid]
        parts.append(
            f"### {s.title.get(lang)}\n- **{_t('cause', lang)}**: {s.cause.get(lang)}\n"
            f"- **{_t('fix', lang)}**: {s.fix.get(lang)}"
            + (f"\n- {s.note.get(lang)}" if s.note is not None else "")
        )
    for fid in intent.args.get("faq", []):
        f = config.faq[fid]
        parts.append(f"### {f.title.get(lang)}\n{f.answer.get(lang)}")
        if fid == "weight" and context.positive.strip():
            parts.append(_weight_advice(context, lang, config.strength.cap))
    advice = None
    symptoms = intent.args.get("symptoms", [])
    negative_tags = "negative-weight" in intent.args.get("faq", []) and mentions_lora_tag(context.negative)
    memory = context.memory.aged()
    if context.positive.strip() and (symptoms or negative_tags):
        advice = advise(
            context.positive,
            context.negative,
            library=context.library,
            config=config,
            symptoms=symptoms,
            base=context.base,
        )
        parts.append(
            f"## {_t('for_prompt', lang)}\n" + format_advice(advice, lang, applied=context.apply_changes)
        )
        memory = dataclasses.replace(memory, symptoms=(), symptom_text="", turns_left=0)
    elif symptoms:
        parts.append(_t("no_prompt", lang))
        # the promise above is kept: the next prompt (within a few messages) gets this fix
        memory = dataclasses.replace(
            memory, symptoms=tuple(symptoms), symptom_text=intent.text[:80], turns_left=MEMORY_TURNS
        )
    if not parts:  # routed here by keywords that name no table entry (a custom config)
        return _help_reply(intent, context, config)
    return _reply("\n\n".join(parts), intent, context, advice, memory)


def _weight_advice(context: ChatContext, lang: Language, cap: float) -> str:
    from .prompt import parse

    lines = []
    total = 0.0
    for tag in parse(context.positive, context.negative).positive_loras:
        info = _try_resolve(context.library, tag.name)
        if info is None:
            continue
        typical = {
            "character": "0.6–0.8",
            "clothing": "0.5–0.7",
            "concept": "0.3–0.8",
            "style": "0.3–0.5",
        }.get(info.kind, "0.4–0.7")
        total += max(abs(tag.te_weight), abs(tag.unet_weight))
        preferred = info.preferred_weight
        pref = "" if preferred is None else say("preferred", lang, weight=format_weight(preferred))
        kind = kind_zh(info.kind) if lang == "zh" else info.kind
        weight = format_weight(tag.weight)
        fields = {"name": info.name, "kind": kind, "weight": weight, "typical": typical, "preferred": pref}
        lines.append(say("weight_line", lang, **fields))
    if not lines:
        return ""
    over = total > cap + 1e-9
    shown = {"total": format_weight(round(total, 2)), "cap": format_weight(cap)}
    lines.append(say("total_over" if over else "total_within", lang, **shown))
    return f"## {_t('for_prompt', lang)}\n" + "\n".join(lines)


def _library_reply(intent: Intent, context: ChatContext, config: RulesConfig) -> ChatReply:
    lang = intent.language
    query = str(intent.args.get("filter", "")).strip()
    infos = list(context.library.search(query) if query else context.library.all())
    if not infos:
        text = say("no_match", lang, query=query) if query else say("library_empty", lang)
        return _reply(text, intent, context)
    rows = [say("library_head", lang), "| --- | --- | --- | --- | --- | --- |"]
    for info in infos[:LIST_LIMIT]:
        weight = "" if info.preferred_weight is None else format_weight(info.preferred_weight)
        status = info.status if info.loadable else f"{info.status}: {info.problem}"
        rows.append(
            f"| `{_cell(info.name)}` | {info.kind} | {info.base} | {_cell(', '.join(info.triggers))} "
            f"| {weight} | {_cell(status)} |"
        )
    more = len(infos) - LIST_LIMIT
    if more > 0:
        rows.append(say("more", lang, more=more))
    return _reply("\n".join(rows), intent, context)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _recipe_reply(intent: Intent, context: ChatContext, config: RulesConfig) -> ChatReply:
    lang = intent.language
    name = str(intent.args.get("name", "")).strip()
    recipe = context.recipes.get(name) or next(
        (r for key, r in context.recipes.items() if key.casefold() == name.casefold()), None
    )
    if recipe is None:
        known = ", ".join(f"`{k}`" for k in sorted(context.recipes)) or _t("no_loras", lang)
        what = say("no_recipe", lang, name=name) if name else say("recipe_usage", lang)
        return _reply(f"{what} {say('recipes', lang)}: {known}", intent, context)
    tags = recipe.tags()
    positive = ", ".join(p for p in (recipe.prompt.strip(), tags) if p)
    advice = advise(positive, recipe.negative, library=context.library, config=config, base=context.base)
    intro = f"**{recipe.name}**" + (f" — {recipe.description}" if recipe.description else "")
    args = {**intent.args, "positive": advice.positive, "negative": advice.negative}
    intent = Intent(intent.kind, args, intent.language, intent.text)
    return _reply(
        intro + "\n\n" + format_advice(advice, lang, applied=context.apply_changes), intent, context, advice
    )


def _plan_reply(intent: Intent, context: ChatContext, config: RulesConfig) -> ChatReply:
    """/blindbox, /ab, /sweep: check the arguments and say what the app will render."""
    lang = intent.language
    args = intent.args
    if "error" in args:
        error = (args.get("error_zh") or args["error"]) if lang == "zh" else args["error"]
        return _reply(say("cannot_read_command", lang, error=error), intent, context)
    if intent.kind == "blindbox":
        if not mentions_lora_tag(context.positive):
            text = say("blindbox_needs_lora", lang, example=_EXAMPLE)
            return _reply(text, _with_error(intent, text), context)
        n = int(args["n"])
        each = "each with a random mix" if n > 1 else "with a random mix"
        text = say("blindbox_plan", lang, n=n, images=_count(n, "image"), each=each)
        return _reply(text, intent, context)
    names = [args["a"], args["b"]] if intent.kind == "ab" else [args["name"]]
    resolved = []
    for name in names:
        try:
            info = context.library.resolve(name)
        except (LoraNotFound, AmbiguousLoraName) as exc:
            text = _lookup_error(exc, lang)
            return _reply(text, _with_error(intent, text), context)
        problem = _unusable(info, context.base, lang)
        if problem:
            return _reply(problem, _with_error(intent, problem), context)
        resolved.append(info.name)
    args = {
        **args,
        **({"a": resolved[0], "b": resolved[1]} if intent.kind == "ab" else {"name": resolved[0]}),
    }
    intent = Intent(intent.kind, args, intent.language, intent.text)
    if not context.positive.strip():
        what = "A/B" if intent.kind == "ab" else say("a_sweep", lang)
        text = say("plan_needs_prompt", lang, what=what, example=_EXAMPLE)
        return _reply(text, _with_error(intent, text), context)
    if intent.kind == "ab":
        text = say("ab_plan", lang, a=resolved[0], b=resolved[1])
    else:
        weights = ", ".join(format_weight(w) for w in args["weights"])
        text = say("sweep_plan", lang, name=resolved[0], weights=weights)
    return _reply(text, intent, context)


def _count(n: int, noun: str) -> str:
    """``1 image``, ``4 images``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _with_error(intent: Intent, error: str) -> Intent:
    """The intent marked as not to be rendered (``args["error"]``)."""
    return Intent(intent.kind, {**intent.args, "error": error}, intent.language, intent.text)


def _unusable(info: LoraInfo, base: str, lang: Language = "en") -> str:
    """Why a LoRA cannot be rendered on this model, or "" when it can."""
    if not info.loadable:
        problem = info.problem or say("no_reason", lang)
        return say("lora_unusable", lang, name=info.name, status=info.status, problem=problem)
    if info.base not in ("unknown", base) and base != "unknown":
        return say("lora_wrong_base", lang, name=info.name, lora_base=info.base, base=base)
    return ""


def _lookup_error(exc: LoraNotFound | AmbiguousLoraName, lang: Language) -> str:
    """A name the library does not know (or knows twice), said for a chat user (not the CLI's hint)."""
    if isinstance(exc, AmbiguousLoraName):
        names = ", ".join(f"'{c}'" for c in exc.candidates)
        return say("ambiguous", lang, name=exc.name, names=names)
    names = ", ".join(f"'{s}'" for s in exc.suggestions)
    hint = say("did_you_mean", lang, names=names) if names else ""
    return say("not_found", lang, name=exc.name, hint=hint)


def _help_reply(intent: Intent, context: ChatContext, config: RulesConfig) -> ChatReply:
    return _reply(HELP[intent.language], intent, context)


def _unknown_reply(intent: Intent, context: ChatContext, config: RulesConfig) -> ChatReply:
    lang = intent.language
    command = intent.args.get("command")
    if intent.args.get("error"):
        return _reply(str(intent.args["error"]), intent, context)
    lead = say("unknown_command", lang, command=command) if command else say("not_understood", lang)
    return _reply(f"{lead}\n\n{HELP[lang]}", intent, context)


_HANDLERS = {
    "advise": _advise_reply,
    "img2img": _img2img_reply,
    "troubleshoot": _troubleshoot_reply,
    "library": _library_reply,
    "recipe": _recipe_reply,
    "blindbox": _plan_reply,
    "ab": _plan_reply,
    "sweep": _plan_reply,
    "help": _help_reply,
    "unknown": _unknown_reply,
}


# ----------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------


def _try_resolve(library: Library, name: str) -> LoraInfo | None:
    try:
        return library.resolve(name)
    except (LoraNotFound, AmbiguousLoraName):
        return None
