"""Extra-network tags: every A1111 form, validation, names, spans, notes."""

from __future__ import annotations

import pytest

from assistant.errors import PromptError
from assistant.prompt import PromptLimits, parse
from assistant.types import ExtraTag, LoraTag

# -- the prompts from the source articles --------------------------------------------------------


def test_article_prompt_with_negative_tag() -> None:
    positive = "(masterpiece:1.2), 1girl, cat ears, <lora:catgirl_v1:0.8>"
    negative = "(worst quality:2), blurry, extra cat ears, <lora:catgirl_v1:-0.1>"
    prompt = parse(positive, negative)
    assert prompt.loras == (
        LoraTag("catgirl_v1", 0.8, span=(36, 57), raw="<lora:catgirl_v1:0.8>"),
        LoraTag("catgirl_v1", -0.1, in_negative=True, span=(43, 65), raw="<lora:catgirl_v1:-0.1>"),
    )
    assert positive[36:57] == "<lora:catgirl_v1:0.8>"
    assert negative[43:65] == "<lora:catgirl_v1:-0.1>"
    assert prompt.positive_text == "(masterpiece:1.2), 1girl, cat ears"
    assert prompt.negative_text == "(worst quality:2), blurry, extra cat ears"
    assert prompt.positive_loras == prompt.loras[:1]
    assert prompt.negative_loras == prompt.loras[1:]
    assert prompt.notes == ()


def test_article_prompt_three_loras() -> None:
    prompt = parse("1girl, <lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.3>, <lora:soft_light:0.4>")
    assert [(t.name, t.weight) for t in prompt.loras] == [
        ("catgirl_v1", 0.5),
        ("cyberpunk_style", 0.3),
        ("soft_light", 0.4),
    ]
    assert prompt.positive_text == "1girl"
    assert all(not t.in_negative for t in prompt.loras)


# -- forms ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "name", "te", "unet", "dyn"),
    [
        ("<lora:x>", "x", 1.0, None, None),
        ("<lora:x:0.7>", "x", 0.7, None, None),
        ("<lora:x:0.7:0.3>", "x", 0.7, 0.3, None),
        ("<lora:x:0.7:0.3:8>", "x", 0.7, 0.3, 8),
        ("<lora:x:te=0.6>", "x", 0.6, None, None),
        ("<lora:x:unet=0.4>", "x", 1.0, 0.4, None),
        ("<lora:x:unet=0.4:te=0.6>", "x", 0.6, 0.4, None),
        ("<lora:x:dyn=16:te=0.6:unet=0.5>", "x", 0.6, 0.5, 16),
        ("<lora:x:0.9:te=0.2>", "x", 0.2, None, None),  # named te overrides the position
        ("<lora:x:0.9:0.8:unet=0.1>", "x", 0.9, 0.1, None),
        ("<lora:te=0.5:x>", "x", 0.5, None, None),  # A1111: named items are not positional
        ("<lora:x: 0.5 >", "x", 0.5, None, None),  # float() ignores spaces
        ("<lora:x:-1.5>", "x", -1.5, None, None),
        ("<lora:x:+.5>", "x", 0.5, None, None),
        ("<lora:x:2>", "x", 2.0, None, None),
        ("<lora:x:1e-1>", "x", 0.1, None, None),
    ],
)
def test_lora_forms(tag: str, name: str, te: float, unet: float | None, dyn: int | None) -> None:
    (lora,) = parse(f"1girl, {tag}").loras
    assert (lora.name, lora.weight, lora.unet, lora.dyn) == (name, te, unet, dyn)
    assert lora.te_weight == te
    assert lora.unet_weight == (te if unet is None else unet)
    assert lora.raw == tag
    assert lora.span == (7, 7 + len(tag))


def test_lyco_is_a_lora_and_keeps_its_type() -> None:
    (tag,) = parse("<lyco:locon_x:0.6>").loras
    assert (tag.name, tag.weight, tag.tag_type) == ("locon_x", 0.6, "lyco")
    assert tag.render() == "<lyco:locon_x:0.6>"


def test_upper_case_type_is_read_with_a_note() -> None:
    prompt = parse("a, <LoRA:x:0.5>")
    assert [(t.name, t.tag_type) for t in prompt.loras] == [("x", "lora")]
    assert any("lower-case" in n for n in prompt.notes)
    assert prompt.positive_text == "a"


@pytest.mark.parametrize(
    "name",
    ["cat girl v1", "my.lora.v2", "style-x_1", "猫娘_v1", "🐱girl", "Kinder Überraschung", " padded "],
)
def test_names_are_kept_exactly(name: str) -> None:
    (tag,) = parse(f"<lora:{name}:0.5>").loras
    assert tag.name == name


def test_hypernet_and_unknown_types_are_extras() -> None:
    text = "a, <hypernet:anime:0.5>, b, <wildcard:x>"
    prompt = parse(text)
    assert prompt.loras == ()
    assert prompt.extras == (
        ExtraTag("hypernet", ("anime", "0.5"), span=(3, 23), raw="<hypernet:anime:0.5>"),
        ExtraTag("wildcard", ("x",), span=(28, 40), raw="<wildcard:x>"),
    )
    assert prompt.positive_text == "a, b"
    # hypernet is a type A1111 knows; "wildcard" is not, and the user is told
    assert len(prompt.notes) == 1
    assert "wildcard" in prompt.notes[0]


def test_tags_in_negative_prompt_are_marked() -> None:
    prompt = parse("1girl", "blurry, <lora:fix:-0.3>, <hypernet:h:1>")
    assert [(t.name, t.in_negative, t.span) for t in prompt.loras] == [("fix", True, (8, 23))]
    assert prompt.extras[0].in_negative
    assert prompt.negative_text == "blurry"


def test_unknown_named_argument_and_extra_positions_are_noted() -> None:
    prompt = parse("<lora:x:0.5:0.5:4:9:foo=1>")
    (tag,) = prompt.loras
    assert (tag.weight, tag.unet, tag.dyn) == (0.5, 0.5, 4)
    assert any("foo" in n for n in prompt.notes)
    assert any("4th" in n for n in prompt.notes)


def test_unclosed_tag_is_words_for_a1111_but_not_for_the_encoder() -> None:
    prompt = parse("1girl, <lora:x:0.5, cat ears")
    assert prompt.loras == ()
    assert prompt.positive_text == "1girl, cat ears"
    assert any("not closed" in n for n in prompt.notes)


def test_empty_args_is_a_tag_without_a_name() -> None:
    # A1111's [^>]+ needs a character, so A1111 reads "<lora:>" as words; the user meant a tag
    # and forgot the name: say so (a note calling it "not closed" would be wrong)
    with pytest.raises(PromptError, match=r"LoRA tag <lora:> \(prompt\) has no name"):
        parse("a, <lora:>, b")
    assert parse("a, <hypernet:>, b").loras == ()  # other types stay A1111's words


def test_tag_may_span_lines_like_a1111() -> None:
    (tag,) = parse("<lora:x:\n0.5>").loras  # A1111's [^>]+ crosses lines; float() skips the newline
    assert (tag.name, tag.weight) == ("x", 0.5)
    with pytest.raises(PromptError, match=r"control character \(\\x0a\)"):
        parse("<lora:x\n:0.5>")  # a newline in a name is refused like any control character


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("<lora::0.8>", ["no name", "<lora::0.8>"]),
        ("<lora: :0.8>", ["no name"]),
        ("<lora:te=1>", ["no name"]),
        ("1girl, <lora:>", ["no name", "<lora:>"]),
        ("<LYCO:>, 1girl", ["no name", "<LYCO:>"]),
        ("<lora:x:abc>", ["'abc'", "<lora:x:abc>", "not a number", "-2", "2"]),
        ("<lora:x:>", ["empty", "<lora:x:>"]),
        ("<lora:x:nan>", ["'nan'", "finite"]),
        ("<lora:x:inf>", ["'inf'", "finite"]),
        ("<lora:x:-inf>", ["'-inf'", "finite"]),
        ("<lora:x:1e309>", ["'1e309'", "finite"]),
        ("<lora:x:2.5>", ["2.5", "outside", "-2 to 2"]),
        ("<lora:x:-3>", ["-3", "outside"]),
        ("<lora:x:0.5:9>", ["UNet weight 9", "outside"]),
        ("<lora:x:0.5:a>", ["UNet weight 'a'"]),
        ("<lora:x:te=nan>", ["te", "'nan'"]),
        ("<lora:x:unet=7>", ["unet", "7", "outside"]),
        ("<lora:x:1:1:abc>", ["dyn 'abc'", "whole number"]),
        ("<lora:x:1:1:0>", ["dyn '0'"]),
        ("<lora:x:dyn=1.5>", ["dyn '1.5'"]),
        ("<lora:a<lora:b:1>", ["contains '<'", "'>'"]),
        ("<lora:a\x00b:1>", ["control character", "\\x00"]),
        ("<lora:a\x1bb:1>", ["control character", "\\x1b"]),
    ],
)
def test_invalid_tags_raise_prompt_error(text: str, words: list[str]) -> None:
    with pytest.raises(PromptError) as err:
        parse(f"1girl, {text}")
    message = str(err.value)
    for word in words:
        assert word in message, message
    assert "\x00" not in message
    assert "\x1b" not in message


def test_negative_prompt_errors_say_so() -> None:
    with pytest.raises(PromptError, match=r"negative prompt"):
        parse("1girl", "<lora:x:nan>")


def test_limits_are_configurable() -> None:
    limits = PromptLimits(min_weight=0, max_weight=1, max_loras=2, max_length=40, max_name_length=5)
    assert parse("<lora:x:1>", limits=limits).loras[0].weight == 1.0
    with pytest.raises(PromptError, match=r"from 0 to 1"):
        parse("<lora:x:-0.1>", limits=limits)
    with pytest.raises(PromptError, match=r"3 LoRA tags.*at most 2"):
        parse("<lora:a>", "<lora:b>, <lora:c>", limits=limits)
    with pytest.raises(PromptError, match=r"41 characters.*limit is 40"):
        parse("x" * 41, limits=limits)
    with pytest.raises(PromptError, match=r"negative prompt is 41 characters"):
        parse("x", "y" * 41, limits=limits)
    with pytest.raises(PromptError, match=r"6 characters long; the limit is 5"):
        parse("<lora:abcdef>", limits=limits)


def test_limits_refuse_an_empty_range() -> None:
    with pytest.raises(ValueError, match="min_weight 1 is above max_weight 0"):
        PromptLimits(min_weight=1, max_weight=0)
    with pytest.raises(ValueError, match="0 or more"):
        PromptLimits(max_loras=-1)


def test_default_limits_count_loras_of_both_prompts() -> None:
    positive = ", ".join(f"<lora:p{i}:0.1>" for i in range(15))
    negative = ", ".join(f"<lora:n{i}:0.1>" for i in range(5))
    assert len(parse(positive, negative).loras) == 20
    with pytest.raises(PromptError, match=r"21 LoRA tags"):
        parse(positive + ", <lora:one_more>", negative)


def test_non_text_input_is_a_prompt_error() -> None:
    with pytest.raises(PromptError, match="text"):
        parse(12345)  # type: ignore[arg-type]


def test_tags_in_comment_lines_are_ignored() -> None:
    prompt = parse("1girl\n# <lora:off:1.5>, old idea\n<lora:on:0.5>")
    assert [t.name for t in prompt.loras] == ["on"]
    assert prompt.loras[0].span == (33, 46)
    assert prompt.positive_text == "1girl\n"
    # an invalid tag in a comment is not an error either
    assert parse("# <lora:x:nan>\n1girl").positive_text == "1girl"
