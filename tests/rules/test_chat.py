"""Chat routing and replies, English and Chinese."""

from __future__ import annotations

import pytest

from assistant.blend import parse_axis, weight_axis
from assistant.chat import ChatContext, ChatReply, format_advice, language_of, respond, route
from assistant.presets import load_recipes
from assistant.rules.config import DEFAULT_RULES_PATH

from .library_spec import DEMO_LIBRARY

PROMPT = "1girl, <lora:catgirl_v1:0.9>, <lora:cyberpunk_style:0.5>"
WITH_PROMPT = ChatContext(library=DEMO_LIBRARY, positive=PROMPT, negative="lowres")
EMPTY = ChatContext(library=DEMO_LIBRARY)
RECIPES = load_recipes(DEFAULT_RULES_PATH.parent / "recipes")


@pytest.mark.parametrize(
    ("message", "kind", "language"),
    [
        ("why is my image black", "troubleshoot", "en"),
        ("出图全黑", "troubleshoot", "zh"),
        ("LoRA 不生效", "troubleshoot", "zh"),
        ("多耳怪", "troubleshoot", "zh"),
        ("我的图片为什么是黑的", "troubleshoot", "zh"),
        ("图片发黑", "troubleshoot", "zh"),
        ("lora没用", "troubleshoot", "zh"),
        ("my images come out black", "troubleshoot", "en"),
        ("画风突变", "troubleshoot", "zh"),
        ("缓存见鬼,改了没变化", "troubleshoot", "zh"),
        ("how do I use a negative weight", "troubleshoot", "en"),
        ("what weight should I use", "troubleshoot", "en"),
        ("权重设多少?", "troubleshoot", "zh"),
        ("1girl, <lora:catgirl_v1:0.8>", "advise", "en"),
        ("1girl, solo, smile, masterpiece", "advise", "en"),
        ("black hair, 1girl, smile", "advise", "en"),
        ("1girl, extra cat ears, <lora:catgirl_v1:0.8>", "advise", "en"),
        ("一个女孩, 猫耳, 樱花, <lora:catgirl_v1:0.7>", "advise", "zh"),
        ("/blindbox 8", "blindbox", "en"),
        ("/ab catgirl_v1 catgirl_v2", "ab", "en"),
        ("/sweep catgirl_v1 0.2..1.0x5", "sweep", "en"),
        ("/loras cat", "library", "en"),
        ("which loras do I have", "library", "en"),
        ("/recipe cyber_hotpot", "recipe", "en"),
        ("/help", "help", "en"),
        ("", "help", "en"),
        ("hello there", "unknown", "en"),
        ("你好", "unknown", "zh"),
        ("/frobnicate", "unknown", "en"),
    ],
)
def test_route(message: str, kind: str, language: str) -> None:
    intent = route(message)
    assert (intent.kind, intent.language) == (kind, language)


def test_route_symptom_ids_and_faq_ids() -> None:
    assert route("why is my image black").args["symptoms"] == ["black-image"]
    assert route("多耳怪").args["symptoms"] == ["extra-ears"]
    assert route("how do I use a negative weight").args["faq"] == ["negative-weight"]
    assert route("banana split").kind != "troubleshoot"  # "nan" matches whole words only


@pytest.mark.parametrize(
    ("message", "args"),
    [
        ("/blindbox 8", {"n": 8}),
        ("/blindbox", {"n": 8}),
        ("/ab catgirl_v1 cyberpunk_style", {"a": "catgirl_v1", "b": "cyberpunk_style"}),
        ("/ab 'my lora' other", {"a": "my lora", "b": "other"}),
        (
            "/sweep catgirl_v1 0.2..1.0x5",
            {
                "name": "catgirl_v1",
                "start": 0.2,
                "stop": 1.0,
                "count": 5,
                "weights": [0.2, 0.4, 0.6, 0.8, 1.0],
                "axis": weight_axis("catgirl_v1", [0.2, 0.4, 0.6, 0.8, 1.0]),
            },
        ),
        (
            "/sweep soft_light 0..0.6x4",
            {
                "name": "soft_light",
                "start": 0.0,
                "stop": 0.6,
                "count": 4,
                "weights": [0.0, 0.2, 0.4, 0.6],
                "axis": parse_axis("soft_light=0,0.2,0.4,0.6"),
            },
        ),
        ("/loras cyber", {"filter": "cyber"}),
        ("/recipe cyber_hotpot", {"name": "cyber_hotpot"}),
    ],
)
def test_command_arguments(message: str, args: dict) -> None:
    assert dict(route(message).args) == args


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("/blindbox abc", "not a whole number"),
        ("/blindbox 0", "1 to 16"),
        ("/blindbox 1000", "1 to 16"),
        ("/ab only_one", "usage: /ab"),
        ("/sweep", "usage: /sweep"),
        ("/sweep catgirl_v1 lots", "is not a range"),
        ("/sweep catgirl_v1 0.2..1x99", "1 to 16"),
        ("/sweep catgirl_v1 0..5x3", "between -2 and 2"),
    ],
)
def test_bad_command_arguments_are_explained_not_raised(message: str, error: str) -> None:
    intent = route(message)
    assert error in intent.args["error"]
    reply = respond(message, WITH_PROMPT)
    assert error in reply.text


def test_negative_prompt_line_is_split_off() -> None:
    intent = route("1girl, <lora:catgirl_v1:0.8>\nNegative prompt: lowres, <lora:catgirl_v1:-0.1>")
    assert intent.args == {
        "positive": "1girl, <lora:catgirl_v1:0.8>",
        "negative": "lowres, <lora:catgirl_v1:-0.1>",
    }


def test_language_of() -> None:
    assert language_of("出图全黑") == "zh"
    assert language_of("why black") == "en"
    assert language_of("猫耳の女の子が黒い") == "en"  # Japanese: an English reply, not a Chinese one


# -- replies --------------------------------------------------------------------------------------


def test_prompt_reply_has_code_block_diff_and_plan() -> None:
    reply = respond("1girl, <lora:Catgirl_v1:1.3>, <lora:cyberpunk_style:0.5>", EMPTY)
    assert isinstance(reply, ChatReply)
    assert reply.intent.kind == "advise"
    assert reply.advice is not None
    assert "```text\n1girl, catgirl, cat ears" in reply.text
    assert "`resolve-names`" in reply.text
    assert "`strength-budget`" in reply.text
    assert "LoRAs to apply" in reply.text
    assert reply.positive == reply.advice.positive
    assert reply.negative == reply.advice.negative


def test_prompt_reply_in_chinese_uses_chinese_headings() -> None:
    reply = respond("一个女孩, <lora:catgirl_v1:0.8>", EMPTY)
    assert "改写后的提示词" in reply.text
    assert "将加载的 LoRA" in reply.text


def test_apply_changes_off_keeps_the_boxes_as_typed() -> None:
    ctx = ChatContext(library=DEMO_LIBRARY, apply_changes=False)
    reply = respond("1girl, <lora:jk_uniform:0.6>", ctx)
    assert reply.positive == "1girl, <lora:jk_uniform:0.6>"
    assert "not applied" in reply.text
    assert reply.advice is not None
    assert reply.advice.positive == "1girl, JK uniform, <lora:jk_uniform:0.6>"


def test_clean_prompt_says_nothing_to_change() -> None:
    reply = respond(
        "(masterpiece:1.2), 1girl, catgirl, cat ears, <lora:catgirl_v1:0.7>\nNegative prompt: extra cat ears",
        EMPTY,
    )
    assert "nothing to change" in reply.text
    assert "Warnings" not in reply.text


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("why is my image black", ["0.4", "VAE"]),
        ("出图全黑", ["0.4", "VAE"]),
        ("LoRA 不生效", ["触发词"]),
        ("多耳怪", ["extra cat ears:1.5", "0.6"]),
        ("画风突变", ["基础模型"]),
        ("how do I use a negative weight", ["negative (unconditional) pass", "add_detail"]),
        ("负权重怎么用", ["负向分支"]),
        ("what weight should I use", ["0.6–0.8", "1.2"]),
        ("缓存见鬼", ["修改时间"]),
    ],
)
def test_troubleshooting_answers_from_the_table(message: str, expected: list[str]) -> None:
    reply = respond(message, EMPTY)
    assert reply.intent.kind == "troubleshoot"
    for text in expected:
        assert text in reply.text, text


def test_troubleshooting_with_a_prompt_gives_prompt_specific_fixes() -> None:
    reply = respond("多耳怪", WITH_PROMPT)
    assert reply.advice is not None
    assert "<lora:catgirl_v1:0.6>" in reply.advice.positive
    assert "(extra cat ears:1.5)" in reply.advice.negative
    assert "针对你当前的提示词" in reply.text
    assert reply.positive == reply.advice.positive


def test_black_image_with_a_prompt_lowers_every_lora() -> None:
    reply = respond("why is my image black?", WITH_PROMPT)
    assert reply.advice is not None
    assert [p.weight for p in reply.advice.plan] == [0.4, 0.4]


def test_weight_question_with_a_prompt_lists_its_loras() -> None:
    reply = respond("what weight should I use", WITH_PROMPT)
    assert "`catgirl_v1` (character): now 0.9" in reply.text
    assert reply.advice is None
    assert reply.positive == PROMPT  # a question does not rewrite the boxes


def test_negative_weight_question_explains_the_tags_in_the_prompt() -> None:
    ctx = ChatContext(library=DEMO_LIBRARY, positive=PROMPT, negative="lowres, <lora:catgirl_v1:-0.1>")
    reply = respond("how do I use a negative weight", ctx)
    assert reply.advice is not None
    assert "STRONGER" in reply.text


def test_symptom_without_a_prompt_asks_for_one() -> None:
    reply = respond("why is my image black", EMPTY)
    assert reply.advice is None
    assert "Paste your prompt" in reply.text


def test_library_listing_and_filter() -> None:
    reply = respond("/loras cyber", EMPTY)
    assert "`cyberpunk_style`" in reply.text
    assert "`catgirl_v1`" not in reply.text
    assert "No LoRA matches 'zzz'" in respond("/loras zzz", EMPTY).text
    assert "| 名称 |" in respond("有哪些 lora", EMPTY).text


def test_recipe_reply_advises_the_recipe() -> None:
    ctx = ChatContext(library=DEMO_LIBRARY, recipes=RECIPES)
    reply = respond("/recipe cyber_hotpot", ctx)
    assert reply.advice is not None
    assert "<lora:catgirl_v1:0.5>" in reply.advice.positive
    assert reply.positive == reply.advice.positive
    missing = respond("/recipe nope", ctx)
    assert "No recipe named 'nope'" in missing.text
    assert "`cyber_hotpot`" in missing.text


def test_blindbox_needs_loras_in_the_prompt() -> None:
    assert "at least one" in respond("/blindbox 4", EMPTY).text
    assert "4 images" in respond("/blindbox 4", WITH_PROMPT).text


def test_ab_and_sweep_resolve_names_with_did_you_mean() -> None:
    reply = respond("/ab Catgirl_V1 cyberpunk_style", EMPTY)
    assert reply.intent.args["a"] == "catgirl_v1"
    bad = respond("/sweep catgrl_v1 0.2..1x3", EMPTY)
    assert "Did you mean" in bad.text
    assert "catgirl_v1" in bad.text
    sweep = respond("/sweep soft_light 0.2..0.6x3", WITH_PROMPT)
    assert "0.2, 0.4, 0.6" in sweep.text


def test_ab_and_sweep_on_an_empty_prompt_box_ask_for_a_prompt_and_render_nothing() -> None:
    for message in ("/ab catgirl_v1 catgirl_v2", "/sweep catgirl_v1 0.2..1.0x5"):
        reply = respond(message, EMPTY)
        assert "needs a prompt" in reply.text
        assert "rendered with" not in reply.text
        assert "error" in reply.intent.args  # the app renders nothing for it
    reply = respond("/sweep catgirl_v1 0.2..1.0x5", ChatContext(library=DEMO_LIBRARY, positive="你好"))
    assert "error" not in reply.intent.args
    assert "需要" not in respond("/ab catgirl_v1 catgirl_v2", WITH_PROMPT).text


@pytest.mark.parametrize(
    "message", ["hello there", "你好", "/frobnicate", "???", "<lora:", "((((", "\x00\x01", "a" * 5000]
)
def test_unknown_or_odd_input_gets_a_helpful_reply(message: str) -> None:
    reply = respond(message, WITH_PROMPT)
    assert reply.text.strip()
    assert reply.positive == PROMPT or reply.intent.kind == "advise"


def test_prompt_error_becomes_a_reply() -> None:
    reply = respond("1girl, <lora:catgirl_v1:abc>", EMPTY)
    assert reply.text.strip()
    assert "Traceback" not in reply.text


def test_format_advice_fences_backticks() -> None:
    from assistant.advisor import advise

    advice = advise("1girl, ```weird```", library=DEMO_LIBRARY)
    text = format_advice(advice)
    assert "````text\n1girl, ```weird```\n````" in text


def test_help_in_both_languages() -> None:
    assert "/blindbox N" in respond("/help", EMPTY).text
    assert "盲盒" in respond("/帮助", EMPTY).text


def test_full_width_punctuation() -> None:
    assert route("缓存见鬼\uff0c改了没变化").kind == "troubleshoot"
    assert route("一个女孩\uff0c猫耳\uff0c樱花").kind == "advise"
    assert route("权重设多少\uff1f").kind == "troubleshoot"
    assert route("\uff0fhelp").kind == "help"
    assert route("/sweep catgirl_v1 0.2\uff5e0.6x3").args["weights"] == [0.2, 0.4, 0.6]
    assert route("1girl, <lora:x:1>\n负面提示词\uff1alowres").args["negative"] == "lowres"


def test_ab_and_sweep_refuse_unusable_loras_before_rendering() -> None:
    from .library_spec import build_library

    library = build_library(
        {
            "extra_loras": [
                {"name": "old_style", "kind": "style", "status": "refused", "problem": "pickle format"}
            ]
        }
    )
    ctx = ChatContext(library=library, positive=PROMPT)
    refused = respond("/ab old_style catgirl_v1", ctx)
    assert "refused (pickle format)" in refused.text
    assert "error" in refused.intent.args  # the app does not render it
    wrong_base = respond("/sweep watercolor_xl 0..1x3", ctx)
    assert "made for sdxl" in wrong_base.text
    assert "error" in wrong_base.intent.args
    unknown = respond("/ab catgrl_v1 catgirl_v1", ctx)
    assert "error" in unknown.intent.args


def test_chinese_replies_explain_each_change_in_chinese() -> None:
    reply = respond("一个女孩, <lora:Catgirl_V1:0.8>, <lora:catgrl:0.5>", EMPTY)
    assert "'Catgirl_V1' 是 LoRA 文件 'catgirl_v1' 的大小写不同的写法" in reply.text
    assert "缺少触发词,LoRA 几乎不会生效:'catgirl_v1' 需要 'catgirl'、'cat ears'" in reply.text
    assert "LoRA 库里没有 'catgrl',这次不会加载" in reply.text
    assert "你是不是想写 'catgirl'" in reply.text  # the specifics stay
    assert "Did you mean" not in reply.text
    assert "Trigger words were missing" not in reply.text
    # the subject stays first: the triggers go after 一个女孩, as after 1girl
    assert reply.positive.startswith("一个女孩, catgirl, cat ears, <lora:catgirl_v1:0.8>")


def test_every_reason_and_warning_has_a_chinese_text() -> None:
    """Each rule's reasons and warnings come in both languages (a Chinese reply stays Chinese)."""
    from assistant.advisor import advise

    messy = (
        "<lora:cyberpunk_style:0.9>, <lora:Catgirl_V1:1.8>, <lora:catgrl:0.5>, <lora:catgirl_v1:0.3>,"
        " <lora:watercolor_xl:0.5>, <lora:catgirl_v2:0.4>, <hypernet:x:1>"
    )
    for symptoms in ((), ("extra-ears",), ("black-image",), ("no-effect",), ("style-drift",), ("???",)):
        advice = advise(messy, "<lora:catgirl_v1:-0.1>", library=DEMO_LIBRARY, symptoms=symptoms)
        assert advice.changes
        for change in advice.changes:
            assert change.reason_zh, change
        for warning in advice.warnings:
            assert warning.message_zh or warning.rule == "prompt", warning


def test_overlong_messages_are_refused_before_parsing() -> None:
    # A message holds one prompt (a negative line included): the prompt limit, one number everywhere …
    both = "1girl, " + "a" * 9_000 + "\nNegative prompt: " + "b" * 9_000
    assert route(both).kind == "advise"
    assert route("1girl, " + "a" * 19_000 + "\nNegative prompt: " + "b" * 19_000).kind == "unknown"
    # … and a command (which carries a few words) far less.
    reply = respond("1girl, " * 6_000, EMPTY)
    assert reply.intent.kind == "unknown"
    assert "41,999 characters" in reply.text
    assert "the limit is 20,000 characters" in reply.text  # the prompt limit: one number everywhere
    reply = respond("/loras " + "x" * 3_000, EMPTY)
    assert "3,007 characters" in reply.text
    assert "2,000" in reply.text
    reply = respond("多耳怪" * 20_000, EMPTY)
    assert "60,000 个字符" in reply.text
    # /advise carries a prompt, so it gets the message limit (the prompt limit), not the command one.
    reply = respond("/advise " + "1girl, " * 2_500, EMPTY)
    assert reply.intent.kind == "advise"
    reply = respond("/advise " + "1girl, " * 3_000, EMPTY)
    assert "21,007 characters" in reply.text
    assert "the limit is 20,000 characters" in reply.text


@pytest.mark.parametrize(
    ("message", "symptom", "expected"),
    [
        ("多耳怪: 1girl, <lora:catgirl_v1:0.9>", "extra-ears", "<lora:catgirl_v1:0.6>"),
        ("多耳怪：1girl, <lora:catgirl_v1:0.9>", "extra-ears", "<lora:catgirl_v1:0.6>"),
        ("why is my image black?\n1girl, <lora:catgirl_v1:0.9>", "black-image", "<lora:catgirl_v1:0.4>"),
    ],
)
def test_a_complaint_with_its_prompt_fixes_that_prompt(message: str, symptom: str, expected: str) -> None:
    reply = respond(message, WITH_PROMPT)  # the prompt in the message wins over the prompt box
    assert reply.intent.kind == "troubleshoot"
    assert reply.intent.args["symptoms"] == [symptom]
    assert reply.advice is not None
    assert expected in reply.positive
    assert "多耳怪" not in reply.positive
    assert "why" not in reply.positive


def test_a_prompt_with_colons_is_still_a_prompt() -> None:
    for message in ("(masterpiece:1.2), 1girl, <lora:catgirl_v1:0.8>", "<lora:catgirl_v1:0.8>: black hair"):
        assert route(message).kind == "advise"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("/ab catgirl_v1 猫", "找不到 LoRA '猫'(库里没有)"),
        ("/sweep 猫娘 0.2..1.0x50", "扫描只能取 1 到 16 步,不能是 50"),
        ("/blindbox 一百", "'一百' 不是整数"),
        ("/ab 猫", "用法:/ab 名字A 名字B"),
    ],
)
def test_command_errors_in_chinese(message: str, expected: str) -> None:
    reply = respond(message, WITH_PROMPT)
    assert expected in reply.text
    assert "python -m assistant" not in reply.text  # a chat user is not sent to the CLI


def test_unknown_lora_in_a_command_points_to_the_chat_listing() -> None:
    reply = respond("/ab catgirl_v1 catgrl", WITH_PROMPT)
    assert "LoRA not found: 'catgrl'" in reply.text
    assert "Did you mean 'catgirl'" in reply.text
    assert "/loras" in reply.text


def test_weight_question_with_a_prompt_adds_up_the_mix() -> None:
    reply = respond("what weight should I use", WITH_PROMPT)  # 0.9 + 0.5
    assert "total 1.4: over the 1.2 budget" in reply.text
    reply = respond("权重设多少?", ChatContext(library=DEMO_LIBRARY, positive="1girl, <lora:catgirl_v1:0.5>"))
    assert "`catgirl_v1`(角色):现在 0.5" in reply.text
    assert "合计 0.5(上限 1.2)" in reply.text


# -- one conversation memory (issue 15) -----------------------------------------------------------


def _next(reply: ChatReply, message: str, **context: object) -> ChatReply:
    """The next message of the same conversation: the boxes and the memory the last reply left."""
    values = {"positive": reply.positive, "negative": reply.negative, **context}
    return respond(message, ChatContext(library=DEMO_LIBRARY, memory=reply.memory, **values))  # type: ignore[arg-type]


def test_a_symptom_asked_without_a_prompt_is_applied_to_the_next_prompt() -> None:
    asked = respond("多耳怪怎么办", EMPTY)
    assert "把提示词发给我" in asked.text
    assert asked.memory.symptoms == ("extra-ears",)
    fixed = _next(asked, "一个猫耳女孩, <lora:catgirl_v1:1.2>")
    assert "<lora:catgirl_v1:0.6>" in fixed.positive
    assert "(extra cat ears:1.5)" in fixed.negative
    assert "多耳怪怎么办" in fixed.text  # the reply says which earlier question it applied
    assert fixed.memory.symptoms == ()  # applied once
    again = _next(fixed, "一个猫耳女孩, <lora:catgirl_v1:1.2>", negative="")
    assert "多耳怪怎么办" not in again.text


def test_a_remembered_symptom_waits_three_messages_then_expires() -> None:
    reply = respond("extra ears, what do I do", EMPTY)
    assert reply.memory.symptoms == ("extra-ears",)
    reply = _next(reply, "/help")
    reply = _next(reply, "/loras cat")
    assert reply.memory.symptoms == ("extra-ears",)
    applied = _next(reply, "1girl, <lora:catgirl_v1:1.2>")
    assert "Applied the fix" in applied.text
    reply = _next(reply, "/help")  # a third message instead of the prompt: the fix stops waiting
    assert reply.memory.symptoms == ()
    assert "Applied the fix" not in _next(reply, "1girl, <lora:catgirl_v1:1.2>").text


def test_a_negative_prompt_from_the_previous_turn_is_shown_as_carried() -> None:
    first = respond("1girl, <lora:catgirl_v1:0.8>", EMPTY)
    assert first.negative == "extra cat ears"  # the LoRA's declared negative text
    second = _next(first, "1girl, solo, <lora:cyberpunk_style:0.5>")
    assert "Negative prompt (carried from the previous turn)" in second.text
    typed = _next(first, "1girl, solo, <lora:cyberpunk_style:0.5>", negative="lowres")
    assert "Negative prompt (from the Negative prompt box)" in typed.text
    inline = _next(first, "1girl, <lora:cyberpunk_style:0.5>\nNegative prompt: blurry")
    assert "carried" not in inline.text


def test_an_unknown_lora_is_never_called_fine_and_the_reply_says_what_exists() -> None:
    reply = respond("1girl, <lora:nonexistent:0.8>", EMPTY)
    assert "already follows the rules" not in reply.text
    assert "read the warnings" in reply.text
    assert "`catgirl_v1`" in reply.text
    assert "/loras" in reply.text


def test_a_negative_weight_on_a_character_lora_is_warned() -> None:
    reply = respond("1girl, <lora:catgirl_v1:-0.5>", EMPTY)
    assert "already follows the rules" not in reply.text
    assert "negative weight" in reply.text
    detail = respond("1girl, <lora:add_detail:-0.5>", EMPTY).text
    assert "negative weight" not in detail.split("**Warnings**")[-1]


def test_one_image_blind_box_is_singular() -> None:
    assert "1 image," in respond("/blindbox 1", WITH_PROMPT).text
    assert "1 images" not in respond("/blindbox 1", WITH_PROMPT).text


@pytest.mark.parametrize(
    ("message", "context", "kind", "options"),
    [
        ("1girl, <lora:catgirl_v1:0.8>", EMPTY, "generate", {}),
        ("/blindbox 4", WITH_PROMPT, "blindbox", {"n": 4}),
        ("/ab catgirl_v1 cyberpunk_style", WITH_PROMPT, "ab", {"a": "catgirl_v1", "b": "cyberpunk_style"}),
        (
            "/sweep catgirl_v1 0.2..0.6x3",
            WITH_PROMPT,
            "sweep",
            {"x_axis": parse_axis("catgirl_v1=0.2,0.4,0.6")},
        ),
        ("/help", WITH_PROMPT, None, None),
        ("/blindbox 99", WITH_PROMPT, None, None),
        ("/loras", WITH_PROMPT, None, None),
    ],
)
def test_a_reply_carries_the_one_action_the_service_runs(message, context, kind, options) -> None:
    """The service switched on the intent a second time; the reply now says what to render."""
    action = respond(message, context).action
    if kind is None:
        assert action is None
    else:
        assert action is not None
        assert (action.kind, dict(action.options)) == (kind, options)
