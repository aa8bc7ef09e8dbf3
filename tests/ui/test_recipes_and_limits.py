"""The recipe menu (one recipe at a time) and the one limits table (README = assistant.limits)."""

from __future__ import annotations

from pathlib import Path

from assistant import limits
from assistant.api import Txt2ImgRequest
from assistant.config import PRESETS_DIR
from assistant.presets import load_recipes
from assistant.ui.prompts import apply_recipe

RECIPES = load_recipes(Path(PRESETS_DIR) / "recipes")
SETTINGS: dict[str, object] = {
    "sampler": "Euler",
    "steps": 20,
    "cfg": 7,
    "width": 512,
    "height": 512,
    "seed": -1,
}


def test_picking_a_second_recipe_replaces_the_first() -> None:
    positive, negative, updates, first, set_now, _ = apply_recipe(
        "masterpiece", "", SETTINGS, None, RECIPES["catgirl_cyber_blindbox"]
    )
    assert "seed 42" in set_now
    settings = {**SETTINGS, **updates}
    positive, negative, updates, second, set_now, restored = apply_recipe(
        positive, negative, settings, first, RECIPES["cyber_hotpot"]
    )
    assert (
        positive
        == "masterpiece, 1girl, <lora:catgirl_v1:0.5>, <lora:cyberpunk_style:0.3>, <lora:soft_light:0.4>"
    )
    assert negative == "extra limbs, (low quality:2)"
    assert updates["seed"] == -1  # the first recipe's seed is put back …
    assert "seed -1" in restored  # … and the note says so
    assert updates["steps"] == 28
    assert second.name == "cyber_hotpot"


def test_no_recipe_takes_it_back_but_keeps_the_users_words_and_edits() -> None:
    positive, negative, updates, applied, _, _ = apply_recipe(
        "1girl, blue eyes", "lowres", SETTINGS, None, RECIPES["catgirl_portrait"]
    )
    assert positive.startswith("1girl, blue eyes, ")  # "1girl" was there already: not the recipe's
    settings = {**SETTINGS, **updates, "cfg": 5}  # the user changed CFG after picking the recipe
    positive, negative, updates, now, _set_now, _restored = apply_recipe(
        positive, negative, settings, applied, None
    )
    assert positive == "1girl, blue eyes"
    assert negative == "lowres"
    assert now.name == ""
    assert "cfg" not in updates  # changed by hand since: left alone
    assert updates["steps"] == 20


def test_one_limit_per_thing_in_the_readme_the_api_schema_and_the_parser() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- limits:start -->", 1)[1].split("<!-- limits:end -->", 1)[0]
    assert block.strip() == limits.markdown_table()
    schema = Txt2ImgRequest.model_json_schema()
    assert schema["properties"]["prompt"]["maxLength"] == limits.PROMPT_CHARS
    assert schema["properties"]["negative_prompt"]["maxLength"] == limits.PROMPT_CHARS
    assert schema["properties"]["steps"]["maximum"] == limits.STEPS[1]
    from assistant.chat import MAX_MESSAGE_CHARS
    from assistant.engine.checks import MAX_LORA_WEIGHT, MAX_SIZE
    from assistant.prompt import DEFAULT_LIMITS

    assert MAX_MESSAGE_CHARS == DEFAULT_LIMITS.max_length == limits.PROMPT_CHARS
    assert MAX_LORA_WEIGHT == DEFAULT_LIMITS.max_weight == limits.LORA_WEIGHT[1]
    assert limits.SIZE[1] == MAX_SIZE
    assert "41,000" not in readme


def test_one_default_for_steps_and_cfg_in_the_ui_the_api_the_cli_and_a_request() -> None:
    """The CLI rendered 28 steps where the UI and the API rendered 20: one number now (A1111's)."""
    import argparse

    from assistant.commands.blindbox import add_common_arguments
    from assistant.service import RenderSettings
    from assistant.types import GenerationRequest

    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    cli = parser.parse_args(["1girl"])
    api = Txt2ImgRequest(prompt="1girl")
    for steps, cfg in (
        (cli.steps, cli.cfg),
        (api.steps, api.cfg_scale),
        (RenderSettings().steps, RenderSettings().cfg),
        (GenerationRequest("x").steps, GenerationRequest("x").cfg),
    ):
        assert (steps, cfg) == (limits.STEPS_DEFAULT, limits.CFG_DEFAULT) == (20, 7.0)


def test_one_error_type_for_one_limit_wherever_it_is_checked() -> None:
    """Steps 0 was a PromptError from the render settings and a GenerationError from the engine's
    check; both are now a LimitError (which is both, so older handlers keep working)."""
    import pytest

    from assistant.engine.checks import check_request
    from assistant.errors import GenerationError, LimitError, PromptError
    from assistant.service import RenderSettings
    from assistant.types import GenerationRequest, PlannedLora

    with pytest.raises(LimitError, match="steps 0 is out of range; use a value from 1 to 150"):
        RenderSettings(steps=0).validated()
    with pytest.raises(LimitError, match="steps 0 is not allowed; use a whole number from 1 to 150"):
        check_request(GenerationRequest("x", steps=0))
    too_strong = PlannedLora("x", "/x.safetensors", limits.LORA_WEIGHT[1] + 1)
    with pytest.raises(LimitError, match=r"LoRA weight for 'x' 3\.0 is not allowed"):
        check_request(GenerationRequest("x", loras=(too_strong,)))
    assert issubclass(LimitError, PromptError)
    assert issubclass(LimitError, GenerationError)


def test_a_lora_weight_past_the_limit_is_one_error_type_in_the_parser_the_plans_and_the_engine() -> None:
    """Weight 3 was a PromptError in the parser, a PlanError in a sweep and a GenerationError in the
    engine's check: a LimitError in all three now (each still its old type too)."""
    import pytest

    from assistant import blend
    from assistant.engine.checks import check_request
    from assistant.errors import LimitError
    from assistant.prompt import parse
    from assistant.types import GenerationRequest, PlannedLora

    with pytest.raises(LimitError, match="outside the allowed range"):
        parse("1girl, <lora:x:3>")
    with pytest.raises(blend.PlanLimitError, match="outside ±2"):
        blend.parse_axis("x=0.5,3")
    assert issubclass(blend.PlanLimitError, LimitError)
    assert issubclass(blend.PlanLimitError, blend.PlanError)
    with pytest.raises(LimitError, match="LoRA weight for 'x'"):
        check_request(GenerationRequest("x", loras=(PlannedLora("x", "/x.safetensors", 3.0),)))
    with pytest.raises(LimitError, match="at most 16"):
        blend.parse_axis("cfg=1..17 (+1)")


def test_seeds_drawn_from_nothing_come_from_one_helper() -> None:
    from assistant.commands.blindbox import plan_seed

    drawn = {limits.random_seed() for _ in range(200)}
    assert all(limits.SEED[0] < seed <= limits.SEED[1] for seed in drawn)
    assert max(drawn) >= 2**31  # the CLI and the blind box drew below 2**31 only
    assert plan_seed(7) == 7
    assert 0 <= plan_seed(-1) <= limits.SEED[1]
