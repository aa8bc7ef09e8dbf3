"""render() round trips and the advisor's text edits (bytes outside an edit never change)."""

from __future__ import annotations

import dataclasses

import pytest

from assistant.errors import PromptError
from assistant.prompt import (
    append_terms,
    encoder_text,
    has_term,
    insert_terms,
    parse,
    remove_tag,
    render,
    reorder_tags,
    replace_tag,
    split_terms,
)
from assistant.types import LoraTag, Prompt

ARTICLE = "(masterpiece:1.2), 1girl, cat ears, <lora:catgirl_v1:0.8>"
THREE = "1girl, <lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.3>, <lora:soft_light:0.4>"


# -- render --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        ARTICLE,
        THREE,
        "<lora:x:1.000>,<LYCO:y:te=0.50:unet=.3>  odd   spacing ,, kept\n# comment <lora:z:9>\n",
        "(a:1.2.3) [b] \\(c\\) BREAK <hypernet:h:1> <lora:猫娘 v1:0.70>",
        "",
    ],
)
def test_untouched_prompt_renders_byte_for_byte(text: str) -> None:
    assert render(parse(text, text)) == (text, text)


def test_changed_weight_is_written_canonically_and_the_rest_is_kept() -> None:
    prompt = parse(THREE)
    loras = list(prompt.loras)
    loras[1] = dataclasses.replace(loras[1], weight=0.25)
    positive, _ = render(dataclasses.replace(prompt, loras=tuple(loras)))
    assert positive == "1girl, <lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.25>, <lora:soft_light:0.4>"


def test_dropped_tag_is_removed_and_new_tag_appended() -> None:
    prompt = parse(THREE)
    new = LoraTag("add_detail", 0.3)
    positive, _ = render(dataclasses.replace(prompt, loras=(prompt.loras[0], prompt.loras[2], new)))
    assert positive == "1girl, <lora:catgirl_v1:0.5>, <lora:soft_light:0.4>, <lora:add_detail:0.3>"


def test_negative_tags_render_into_the_negative_prompt() -> None:
    prompt = Prompt("1girl", "blurry", loras=(LoraTag("fix", -0.2, in_negative=True),))
    assert render(prompt) == ("1girl", "blurry, <lora:fix:-0.2>")
    assert render(Prompt("", "", loras=(LoraTag("x", 1.0, unet=0.5, dyn=8),))) == ("<lora:x:1:0.5:8>", "")


def test_render_refuses_names_that_cannot_be_written() -> None:
    for name in ["a:b", "a>b", "", "te=1"]:
        with pytest.raises(PromptError, match="cannot be written"):
            render(Prompt("x", loras=(LoraTag(name, 0.5),)))


# -- encoder text and terms ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ARTICLE, "(masterpiece:1.2), 1girl, cat ears"),
        (THREE, "1girl"),
        ("<lora:a:1>, 1girl, cat ears", "1girl, cat ears"),
        ("1girl, <lora:a:1>, cat ears", "1girl, cat ears"),
        ("1girl,<lora:a:1>,cat ears", "1girl,cat ears"),
        ("1girl <lora:a:1> cat ears", "1girl cat ears"),
        ("1girl<lora:a:1>cat", "1girlcat"),
        ("1girl <lora:a:1>, cat", "1girl, cat"),
        ("a, <lora:a:1> <lora:b:1>, b", "a, b"),
        ("a,\n<lora:a:1>,\nb", "a,\nb"),
        ("<lora:a:1>", ""),
        ("a, <hypernet:h:1>, <lyco:y:1>", "a"),
        ("a, b, , c, <lora:a:1>", "a, b, , c"),  # the user's own ", ," is not ours to change
        ("(a, <lora:x:1>), b", "(a), b"),  # a bracket ends the list like the text's end does
        ("(<lora:x:1>, a), b", "(a), b"),
        ("[a,<lora:x:1>]", "[a]"),
        (r"a \(<lora:x:1>, b", r"a \(, b"),  # an escaped bracket is a character, not a list
    ],
)
def test_encoder_text_tidies_only_around_tags(text: str, expected: str) -> None:
    assert encoder_text(text) == expected
    assert ", ," not in encoder_text(text) or ", ," in text


def test_split_terms_and_has_term() -> None:
    text = "(masterpiece:1.2), 1girl, [cat ears], \\(smile\\), a BREAK b, <lora:x:1>"
    assert split_terms(text) == ["masterpiece", "1girl", "cat ears", "(smile)", "a", "b"]
    assert has_term(text, "Cat  Ears")
    assert has_term(text, " masterpiece ")
    assert has_term(text, "cat ears, 1girl")  # every term of a phrase must be present
    assert not has_term(text, "cat ears, tail")
    assert not has_term(text, "cat")  # whole terms only
    assert not has_term(text, "x")  # the tag's name is not a term
    assert not has_term(text, " , ")
    assert has_term(text, "(cat ears:1.3)")
    assert has_term("1girl, <lora:x:1>, 猫耳", "猫耳")


# -- edits ---------------------------------------------------------------------------------------


def test_replace_tag_keeps_everything_else() -> None:
    prompt = parse(THREE)
    old = prompt.loras[1]
    out = replace_tag(THREE, old, dataclasses.replace(old, weight=0.65))
    start, end = old.span
    assert out == THREE[:start] + "<lora:cyberpunk_style:0.65>" + THREE[end:]


def test_replace_tag_refuses_a_stale_tag() -> None:
    tag = parse(THREE).loras[0]
    with pytest.raises(PromptError, match="changed since it was parsed"):
        replace_tag("x" + THREE, tag, tag)
    with pytest.raises(PromptError, match="no position"):
        replace_tag(THREE, LoraTag("x"), LoraTag("y"))


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, "1girl, <lora:cyberpunk_style:0.3>, <lora:soft_light:0.4>"),
        (1, "1girl, <lora:catgirl_v1:0.5>, <lora:soft_light:0.4>"),
        (2, "1girl, <lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.3>"),
    ],
)
def test_remove_tag(index: int, expected: str) -> None:
    assert remove_tag(THREE, parse(THREE).loras[index]) == expected


def test_remove_first_item_tidies_the_leading_comma() -> None:
    text = "<lora:a:1>, 1girl, cat ears"
    assert remove_tag(text, parse(text).loras[0]) == "1girl, cat ears"


def test_reorder_tags_moves_raw_text_between_slots() -> None:
    text = "1girl, <lora:style:0.3>, cat ears, <lora:char:te=0.7>"
    style, char = parse(text).loras
    assert reorder_tags(text, [char, style]) == "1girl, <lora:char:te=0.7>, cat ears, <lora:style:0.3>"
    assert reorder_tags(text, [style, char]) == text
    with pytest.raises(PromptError):
        reorder_tags(text, [style, style])


def test_insert_terms_after_the_leading_run() -> None:
    assert (
        insert_terms(ARTICLE, ["catgirl"])
        == "(masterpiece:1.2), 1girl, catgirl, cat ears, <lora:catgirl_v1:0.8>"
    )
    assert insert_terms("cat ears, 1girl", ["catgirl"]) == "catgirl, cat ears, 1girl"
    assert insert_terms("masterpiece, 1girl", ["a", "b"]) == "masterpiece, 1girl, a, b"
    assert insert_terms("", ["a", "b"]) == "a, b"
    assert insert_terms("  ", ["a"]) == "a"
    assert insert_terms("x", []) == "x"
    # never inside brackets or tags; quality terms in brackets still count as leading
    assert insert_terms("(masterpiece, best quality:1.2), [x, y]", ["t"]) == (
        "(masterpiece, best quality:1.2), t, [x, y]"
    )
    assert insert_terms("<lora:a,b:1>, 1girl", ["t"]) == "t, <lora:a,b:1>, 1girl"
    assert insert_terms("# note\nsolo, cat", ["t"]) == "# note\nsolo, t, cat"


def test_chinese_prompts_lead_with_their_subject_and_use_full_width_commas() -> None:
    assert insert_terms("一个女孩, 猫耳, 樱花", ["catgirl"]) == "一个女孩, catgirl, 猫耳, 樱花"
    assert insert_terms("杰作，一个女孩，猫耳", ["catgirl"]) == "杰作，一个女孩，catgirl, 猫耳"
    assert has_term("一个女孩，猫耳，樱花", "猫耳")
    assert not has_term("一个女孩，猫耳樱花", "猫耳")


def test_append_terms() -> None:
    assert append_terms("a, b", ["c", "d"]) == "a, b, c, d"
    assert append_terms("a, b, ", ["c"]) == "a, b, c"
    assert append_terms("a,,\n", ["c"]) == "a, c"
    assert append_terms("", ["c"]) == "c"
    assert append_terms("a\n# keep me last", ["c"]) == "a, c\n# keep me last"
    assert append_terms("a", [" ", ""]) == "a"


def _separator_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    while start and text[start - 1] in " ,":
        start -= 1
    while end < len(text) and text[end] in " ,":
        end += 1
    return start, end


@pytest.mark.parametrize(
    "text",
    [
        "  (masterpiece:1.2),1girl ,  cat ears,<lora:a:0.5>  ,  [blurry]",
        "<lora:a:0.5>,(x:1.1)",
        "a <lora:a:0.5>",
        "a,\n<lora:a:0.5>\nb",
    ],
)
def test_edits_change_no_byte_outside_the_edit(text: str) -> None:
    tag = parse(text).loras[0]
    low, high = _separator_bounds(text, *tag.span)
    removed = remove_tag(text, tag)
    assert removed.startswith(text[:low])
    assert removed.endswith(text[high:])
    assert set(removed[low : len(removed) - (len(text) - high)]) <= set(" ,")
    assert ", ," not in removed
    replaced = replace_tag(text, tag, LoraTag("b", 0.2))
    start, end = tag.span
    assert replaced == text[:start] + "<lora:b:0.2>" + text[end:]
