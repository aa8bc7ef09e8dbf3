"""Per-row LoRA weights (assistant.engine.rows) on the tiny SD1.x pipeline, 64x64, 3 steps, CPU.

Tolerances (measured on this pipeline, CPU fp32, adapters with a strong effect: weight 1 moves
latents by ~4 on a scale of ~11):

- the per-row path vs the ordinary path on the SAME batch (each row taken from a run with
  ``set_adapters(w_row)``): bit-exact (``torch.equal``); the hook multiplies by
  ``w * alpha / r`` in the same float32 arithmetic PEFT uses for a Python scalar.
- N cells in one batch vs N sequential generations: max abs diff in latents ~2e-5 (batched
  GEMMs round differently); asserted <= 1e-4 in latents and <= 2/255 in uint8 pixels.
- negative-branch weights vs a hand-written CFG loop running the UNet twice per step: same
  order of difference; asserted <= 1e-4 in latents.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from assistant.engine.rows import (
    EncodedRows,
    RowScaler,
    RowWeightsError,
    encode_rows,
    generate_rows,
    unet_row_scales,
)

from .conftest import CFG, SIZE, STEPS, add_random_adapter, generators, torch

pytestmark = pytest.mark.engine

PROMPT = "1girl, cat ears, masterpiece"
NEGATIVE = "lowres, blurry"
LATENT_TOL = 1e-4
PIXEL_TOL = 2  # out of 255


def ordinary(pipe: Any, wa: float, wb: float, *, seed: int = 5, output_type: str = "latent", **kw: Any):
    """One plain diffusers generation with ``set_adapters(["a", "b"], [wa, wb])``."""
    pipe.set_adapters(["a", "b"], [wa, wb])
    kw.setdefault("prompt", PROMPT)
    kw.setdefault("negative_prompt", NEGATIVE)
    return pipe(
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        height=SIZE,
        width=SIZE,
        generator=torch.Generator().manual_seed(seed),
        output_type=output_type,
        **kw,
    ).images


def embeds(pipe: Any, prompt: str, n: int) -> EncodedRows:
    """Prompt embeddings (with the current text-encoder weights) repeated for ``n`` rows."""
    out, _ = pipe.encode_prompt([prompt] * n, pipe.device, 1, False)
    return EncodedRows(out)


def unet_call(pipe: Any, rows: int) -> torch.Tensor:
    torch.manual_seed(3)
    sample = torch.randn(rows, 4, SIZE // 8, SIZE // 8)
    context = torch.randn(rows, 77, 32)
    return pipe.unet(sample, 500, encoder_hidden_states=context).sample


def lora_hooks(pipe: Any) -> int:
    """Forward hooks and pre-hooks left anywhere in the UNet and text encoder."""
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks)
        for model in (pipe.unet, pipe.text_encoder)
        for m in model.modules()
    )


def scalings(pipe: Any) -> list[tuple[str, str, float]]:
    return [
        (name, adapter, value)
        for model in (pipe.unet, pipe.text_encoder)
        for name, m in model.named_modules()
        for adapter, value in getattr(m, "scaling", {}).items()
    ]


# -- exactness of the mechanism ----------------------------------------------------------------


def test_unet_rows_equal_ordinary_rows_bit_exact(pipe, scaler):
    """Row i of a per-row UNet call == row i of an ordinary call with set_adapters(w_i)."""
    weights = [(0.8, 0.3), (-0.4, 0.9), (0.0, 1.5)]
    with scaler.unet_rows({"a": [w[0] for w in weights], "b": [w[1] for w in weights]}):
        mixed = unet_call(pipe, len(weights))
    for i, (wa, wb) in enumerate(weights):
        pipe.set_adapters(["a", "b"], [wa, wb])
        assert torch.equal(mixed[i], unet_call(pipe, len(weights))[i]), f"row {i}"
    pipe.set_adapters(["a", "b"], [0.8, 0.3])
    assert not torch.equal(mixed[1], unet_call(pipe, len(weights))[1])  # the rows really differ


def test_text_rows_equal_ordinary_rows_bit_exact(pipe, scaler):
    weights = [(0.8, 0.3), (-0.4, 0.9)]
    got = encode_rows(pipe, scaler, [PROMPT, PROMPT], {"a": [0.8, -0.4], "b": [0.3, 0.9]}).embeds
    for i, (wa, wb) in enumerate(weights):
        pipe.set_adapters(["a", "b"], [wa, wb])
        assert torch.equal(got[i], embeds(pipe, PROMPT, 2).embeds[i]), f"row {i}"
    assert not torch.equal(got[0], got[1])


def test_uniform_rows_equal_set_adapters_bit_exact(pipe, scaler):
    """(1) All rows at weight w == the ordinary set_adapters(w) path, bit for bit."""
    pipe.set_adapters(["a", "b"], [0.6, 0.4])
    cond, uncond = embeds(pipe, PROMPT, 2), embeds(pipe, NEGATIVE, 2)
    reference = pipe(
        prompt_embeds=cond.embeds,
        negative_prompt_embeds=uncond.embeds,
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        height=SIZE,
        width=SIZE,
        generator=generators(5, 2),
        output_type="latent",
    ).images
    pipe.set_adapters(["a", "b"], [1.0, 1.0])
    got = generate_rows(
        pipe,
        scaler,
        cond=cond,
        uncond=uncond,
        cond_scales={"a": [0.6, 0.6], "b": [0.4, 0.4]},
        generator=generators(5, 2),
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        height=SIZE,
        width=SIZE,
        output_type="latent",
    ).images
    assert torch.equal(got, reference)


# -- blind box: N cells in one pass ---------------------------------------------------------------


def test_batched_cells_equal_sequential_generations(pipe, scaler):
    """(2) 4 cells differing only in LoRA weights (te and unet) == 4 sequential generations."""
    cells = [(0.8, 0.3), (0.2, 0.9), (0.55, 0.65), (1.0, 0.0)]
    scales = {"a": [c[0] for c in cells], "b": [c[1] for c in cells]}
    pipe.set_adapters(["a", "b"], [1.0, 1.0])
    cond = encode_rows(pipe, scaler, [PROMPT] * len(cells), scales)
    uncond = encode_rows(pipe, scaler, [NEGATIVE] * len(cells), scales)
    common = {
        "cond": cond,
        "uncond": uncond,
        "cond_scales": scales,
        "num_inference_steps": STEPS,
        "guidance_scale": CFG,
        "height": SIZE,
        "width": SIZE,
    }
    latents = generate_rows(pipe, scaler, generator=generators(5, len(cells)), output_type="latent", **common)
    images = generate_rows(pipe, scaler, generator=generators(5, len(cells)), output_type="np", **common)
    for i, (wa, wb) in enumerate(cells):
        ref_latents = ordinary(pipe, wa, wb)
        ref_image = ordinary(pipe, wa, wb, output_type="np")
        assert (latents.images[i] - ref_latents[0]).abs().max().item() <= LATENT_TOL, f"cell {i}"
        pixels = np.abs(
            np.round(images.images[i] * 255).astype(int) - np.round(ref_image[0] * 255).astype(int)
        )
        assert pixels.max() <= PIXEL_TOL, f"cell {i}"
    assert (latents.images[0] - latents.images[1]).abs().max().item() > 0.1  # cells differ


# -- negative-branch weights ----------------------------------------------------------------------


def reference_cfg(pipe: Any, cond: torch.Tensor, uncond: torch.Tensor, c: tuple, u: tuple, seed: int):
    """CFG by hand: the UNet runs twice per step, cond with set_adapters(c), uncond with set_adapters(u)."""
    scheduler = pipe.scheduler
    scheduler.set_timesteps(STEPS, device="cpu")
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=generator) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        pipe.set_adapters(["a", "b"], list(c))
        noise_cond = pipe.unet(model_input, t, encoder_hidden_states=cond).sample
        pipe.set_adapters(["a", "b"], list(u))
        noise_uncond = pipe.unet(model_input, t, encoder_hidden_states=uncond).sample
        noise = noise_uncond + CFG * (noise_cond - noise_uncond)
        latents = scheduler.step(noise, t, latents, generator=generator).prev_sample
    return latents


@pytest.mark.parametrize(("c", "u"), [((0.7, 0.4), (0.0, -0.3)), ((0.5, 0.0), (0.5, 0.8))])
def test_negative_branch_weights_equal_manual_cfg(pipe, scaler, c, u):
    """(3) uncond rows with their own weights == a two-UNet-calls-per-step CFG reference."""
    pipe.set_adapters(["a", "b"], [1.0, 1.0])
    cond, uncond = embeds(pipe, PROMPT, 1), embeds(pipe, NEGATIVE, 1)
    expected = reference_cfg(pipe, cond.embeds, uncond.embeds, c, u, seed=9)
    pipe.set_adapters(["a", "b"], [1.0, 1.0])
    got = generate_rows(
        pipe,
        scaler,
        cond=cond,
        uncond=uncond,
        cond_scales={"a": [c[0]], "b": [c[1]]},
        uncond_scales={"a": [u[0]], "b": [u[1]]},
        generator=generators(9, 1),
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        height=SIZE,
        width=SIZE,
        output_type="latent",
    ).images
    assert (got - expected).abs().max().item() <= LATENT_TOL
    same_weights = reference_cfg(pipe, cond.embeds, uncond.embeds, c, c, seed=9)
    assert (got - same_weights).abs().max().item() > 0.01  # the negative branch really changed


def test_negative_equal_to_positive_is_the_ordinary_path(pipe, scaler):
    """(4) u == c (given explicitly or left out) is bit-identical to a plain pipeline call."""
    pipe.set_adapters(["a", "b"], [0.7, 0.2])
    cond, uncond = embeds(pipe, PROMPT, 1), embeds(pipe, NEGATIVE, 1)
    reference = pipe(
        prompt_embeds=cond.embeds,
        negative_prompt_embeds=uncond.embeds,
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        height=SIZE,
        width=SIZE,
        generator=torch.Generator().manual_seed(4),
        output_type="latent",
    ).images
    pipe.set_adapters(["a", "b"], [1.0, 1.0])
    for uncond_scales in ({"a": [0.7], "b": [0.2]}, None):
        got = generate_rows(
            pipe,
            scaler,
            cond=cond,
            uncond=uncond,
            cond_scales={"a": [0.7], "b": [0.2]},
            uncond_scales=uncond_scales,
            generator=torch.Generator().manual_seed(4),
            num_inference_steps=STEPS,
            guidance_scale=CFG,
            height=SIZE,
            width=SIZE,
            output_type="latent",
        ).images
        assert torch.equal(got, reference)


def test_unet_row_scales_order_and_defaults():
    both = unet_row_scales({"a": [1.0, 2.0]}, {"a": [3.0, 4.0], "n": [-0.1, -0.2]}, guidance=True)
    assert both == {"a": [3.0, 4.0, 1.0, 2.0], "n": [-0.1, -0.2, 0.0, 0.0]}
    assert unet_row_scales({"a": [1.0]}, None, guidance=True) == {"a": [1.0, 1.0]}
    assert unet_row_scales({"a": [1.0]}, {"a": [5.0]}, guidance=False) == {"a": [1.0]}
    with pytest.raises(RowWeightsError, match="list lengths"):
        unet_row_scales({"a": [1.0, 2.0]}, {"a": [1.0]}, guidance=True)


def test_cfg_batch_order_is_uncond_then_cond(rows_pipe):
    """The row layout the scales rely on: diffusers 0.42 stacks [negative; positive] (SD1.x and SDXL)."""
    from assistant.engine.tiny import build_tiny_sdxl

    for pipe in (rows_pipe, build_tiny_sdxl()):
        seen: list[dict[str, Any]] = []

        def record(_module, _args, kwargs, seen=seen):
            seen.append(kwargs)

        handle = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
        try:
            pipe(
                prompt=PROMPT,
                negative_prompt=NEGATIVE,
                num_inference_steps=1,
                guidance_scale=CFG,
                height=SIZE,
                width=SIZE,
                output_type="latent",
            )
        finally:
            handle.remove()
        if hasattr(pipe, "text_encoder_2"):
            pos, neg, pooled, neg_pooled = pipe.encode_prompt(
                prompt=PROMPT,
                device="cpu",
                num_images_per_prompt=1,
                do_classifier_free_guidance=True,
                negative_prompt=NEGATIVE,
            )
            assert torch.equal(seen[0]["added_cond_kwargs"]["text_embeds"], torch.cat([neg_pooled, pooled]))
        else:
            pos, neg = pipe.encode_prompt(PROMPT, "cpu", 1, True, NEGATIVE)
        assert torch.equal(seen[0]["encoder_hidden_states"], torch.cat([neg, pos]))


# -- no trace outside contexts ------------------------------------------------------------------


def test_outside_contexts_generation_is_unchanged(pipe, scaler):
    """(5) Using the scaler (even a context that fails) leaves no hook and no changed scaling."""
    before = ordinary(pipe, 0.6, 0.3)
    state = scalings(pipe)
    assert lora_hooks(pipe) == 0
    with scaler.unet_rows({"a": [0.1, 0.9], "b": 0.5}), scaler.text_rows({"a": [0.2, 0.3]}):
        assert lora_hooks(pipe) > 0
        unet_call(pipe, 2)
    with pytest.raises(RowWeightsError, match="batch of 3"), scaler.unet_rows({"a": [0.1, 0.9]}):
        unet_call(pipe, 3)
    with pytest.raises(KeyError), scaler.unet_rows({"a": [0.1, 0.9]}):
        raise KeyError("user code failing inside the context")
    assert lora_hooks(pipe) == 0
    assert scalings(pipe) == state
    assert torch.equal(ordinary(pipe, 0.6, 0.3), before)


# -- refresh after loading / deleting adapters ------------------------------------------------------


def test_refresh_after_load_and_delete(pipe, scaler):
    """(6) New adapters are found, deleted ones refused, a reloaded name uses its new weights."""
    scaler.refresh()
    scaler.refresh()  # idempotent
    assert scaler.adapters("unet") == ["a", "b"]
    assert scaler.adapters("text") == ["a", "b"]
    try:
        for seed in (33, 44):  # load, delete, load again under the same name with other weights
            add_random_adapter(pipe, "c", seed=seed, text=False)
            pipe.set_adapters(["a", "b", "c"], [1.0, 1.0, 1.0])
            with scaler.unet_rows({"c": [0.3, -0.5]}):  # no explicit refresh: the index heals itself
                mixed = unet_call(pipe, 2)
            for i, w in enumerate((0.3, -0.5)):
                pipe.set_adapters(["a", "b", "c"], [1.0, 1.0, w])
                assert torch.equal(mixed[i], unet_call(pipe, 2)[i])
            assert "c" in scaler.adapters("unet")
            assert "c" not in scaler.adapters("text")
            pipe.delete_adapters("c")
            pipe.set_adapters(["a", "b"], [1.0, 1.0])
            with pytest.raises(RowWeightsError, match=r"\['c'\] are not loaded.*'a', 'b'"):  # noqa: SIM117
                with scaler.unet_rows({"c": [0.3, -0.5]}):
                    pass
    finally:
        if "c" in pipe.get_list_adapters().get("unet", []):
            pipe.delete_adapters("c")
    scaler.refresh()
    assert scaler.adapters("unet") == ["a", "b"]


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scales", "message"),
    [
        ({"a": [0.1, 0.2], "b": [0.1, 0.2, 0.3]}, "'b' has 3 row weights but 'a' has 2"),
        ({"zz": [0.1]}, r"\['zz'\] are not loaded in this pipeline; loaded adapters: \['a', 'b'\]"),
        ({"a": [0.1, float("nan")]}, "non-finite weight nan"),
        ({"a": ["0.5"]}, "weight '0.5' for adapter 'a' is not a number"),
        ({"a": []}, "empty list"),
        ({"a": "0.5"}, "must be a number or a list"),
        ([("a", 0.5)], "must be a mapping"),
    ],
)
def test_bad_scales_are_refused_at_entry(pipe, scaler, scales, message):
    with pytest.raises(RowWeightsError, match=message):  # noqa: SIM117
        with scaler.unet_rows(scales):
            pass
    assert lora_hooks(pipe) == 0


def test_wrong_batch_sizes_name_the_component(pipe, scaler):
    with pytest.raises(RowWeightsError, match=r"pipe\.unet was called with a batch of 2 rows but 3"):  # noqa: SIM117
        with scaler.unet_rows({"a": [0.1, 0.2, 0.3]}):
            unet_call(pipe, 2)
    with pytest.raises(RowWeightsError, match=r"pipe\.text_encoder was called with a batch of 1 rows but 2"):
        encode_rows(pipe, scaler, [PROMPT], {"a": [0.1, 0.2]})
    with pytest.raises(RowWeightsError, match="2 generators for 1 cells"):
        generate_rows(
            pipe,
            scaler,
            cond=embeds(pipe, PROMPT, 1),
            uncond=embeds(pipe, NEGATIVE, 1),
            cond_scales={"a": [1.0]},
            generator=generators(1, 2),
        )
    with pytest.raises(RowWeightsError, match=r"cond_scales\['a'\] has 2 weights for 1 cells"):
        generate_rows(
            pipe,
            scaler,
            cond=embeds(pipe, PROMPT, 1),
            uncond=None,
            cond_scales={"a": [1, 2]},
            guidance_scale=1,
        )
    with pytest.raises(RowWeightsError, match=r"guidance_scale > 1 needs the negative"):
        generate_rows(pipe, scaler, cond=embeds(pipe, PROMPT, 1), uncond=None, cond_scales={"a": [1]})


def test_inactive_disabled_and_nested_are_refused(pipe, scaler):
    pipe.set_adapters(["a"], [1.0])
    with pytest.raises(RowWeightsError, match=r"'b' is loaded but not active in unet \(active: \['a'\]\)"):  # noqa: SIM117
        with scaler.unet_rows({"b": [0.5, 0.6]}):
            pass
    pipe.set_adapters(["a", "b"], [1.0, 1.0])
    pipe.disable_lora()
    with pytest.raises(RowWeightsError, match=r"disabled.*enable_lora"):  # noqa: SIM117
        with scaler.unet_rows({"a": [0.5, 0.6]}):
            pass
    pipe.enable_lora()
    with scaler.unet_rows({"a": [0.5, 0.6]}):
        with pytest.raises(RowWeightsError, match="already active"):  # noqa: SIM117
            with scaler.unet_rows({"a": [0.5, 0.6]}):
                pass
        with pytest.raises(RowWeightsError, match="refresh"):
            scaler.refresh()
    assert lora_hooks(pipe) == 0


# Fused, DoRA, embedding and compiled layers: a small PEFT model stands in for the UNet, so the
# shared tiny pipeline is never fused or compiled.


def small_unet(**config: Any) -> torch.nn.Module:
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 8), torch.nn.Linear(8, 8))
    targets = config.pop("targets", ["1"])
    return inject_adapter_in_model(LoraConfig(r=2, target_modules=targets, **config), model, "x")


def test_fused_embedding_text_rows_and_compiled_are_refused():
    fused = small_unet()
    fused[1].merge(adapter_names=["x"])
    with pytest.raises(RowWeightsError, match=r"fused \(merged\).*unfuse_lora"):  # noqa: SIM117
        with RowScaler(SimpleNamespace(unet=fused)).unet_rows({"x": [0.5, 1.0]}):
            pass
    embedding = small_unet(targets=["0"])
    scaler = RowScaler(SimpleNamespace(text_encoder=embedding))
    with pytest.raises(RowWeightsError, match=r"Embedding LoRA layer at text_encoder\.0"):  # noqa: SIM117
        with scaler.text_rows({"x": [0.5, 1.0]}):
            pass
    with scaler.text_rows({"x": [0.5, 0.5]}):  # one weight for all rows is just set_scale
        assert embedding[0].scaling["x"] == 0.5 * 8 / 2
    assert embedding[0].scaling["x"] == 8 / 2
    in_place = small_unet()
    in_place.compile()  # nn.Module.compile(): compiled lazily, on the first call (never made here)
    for compiled in (torch.compile(small_unet()), in_place):
        with pytest.raises(RowWeightsError, match=r"compiled with torch\.compile"):  # noqa: SIM117
            with RowScaler(SimpleNamespace(unet=compiled)).unet_rows({"x": [0.5, 1.0]}):
                pass


def test_peft_dora_rows_run_as_groups_of_equal_rows():
    """PEFT's DoRA layers cannot scale their output per row (the weight sits inside a norm): the
    UNet runs each group of equal rows as its own call — row i equals an ordinary call at w_i
    (up to the smaller batch's rounding) and nothing is left behind."""
    from assistant.engine.tiny import build_tiny_sd15

    pipe = build_tiny_sd15()
    add_random_adapter(pipe, "d", seed=33, text=False, use_dora=True)
    pipe.set_adapters(["d"], [1.0])
    scaler = RowScaler(pipe)
    weights = [0.3, 1.0, 0.3, -0.5]
    before = scalings(pipe)
    with scaler.unet_rows({"d": weights}):
        mixed = unet_call(pipe, len(weights))
    assert scalings(pipe) == before
    assert "DoRA" in scaler.split_reason
    for i, weight in enumerate(weights):
        pipe.set_adapters(["d"], [weight])
        want = unet_call(pipe, len(weights))[i]
        assert float((mixed[i] - want).abs().max()) <= LATENT_TOL, f"row {i}"
    pipe.set_adapters(["d"], [1.0])
    assert not torch.equal(mixed[0], mixed[1])
    assert "forward" not in pipe.unet.__dict__  # the UNet's own forward is back
    with scaler.unet_rows({"d": [0.5, 0.5]}):  # equal rows: plain set_scale, no groups
        unet_call(pipe, 2)
    assert scaler.split_reason == ""


# -- SDXL ----------------------------------------------------------------------------------------


def test_sdxl_cells_equal_ordinary_rows():
    """SDXL (two text encoders, pooled embeddings, added time ids): per-row == ordinary rows."""
    from assistant.engine.tiny import build_tiny_sdxl

    pipe = build_tiny_sdxl()
    add_random_adapter(pipe, "a", seed=11, text=False)
    pipe.set_adapters(["a"], [1.0])
    scaler = RowScaler(pipe)
    cond = encode_rows(pipe, scaler, [PROMPT, PROMPT])
    uncond = encode_rows(pipe, scaler, [NEGATIVE, NEGATIVE])
    assert cond.pooled is not None
    kw = {"num_inference_steps": 2, "guidance_scale": CFG, "height": SIZE, "width": SIZE}
    got = generate_rows(
        pipe,
        scaler,
        cond=cond,
        uncond=uncond,
        cond_scales={"a": [0.2, 0.9]},
        generator=generators(3, 2),
        output_type="latent",
        **kw,
    ).images
    for i, w in enumerate((0.2, 0.9)):
        pipe.set_adapters(["a"], [w])
        ref = pipe(
            prompt_embeds=cond.embeds,
            negative_prompt_embeds=uncond.embeds,
            pooled_prompt_embeds=cond.pooled,
            negative_pooled_prompt_embeds=uncond.pooled,
            generator=generators(3, 2),
            output_type="latent",
            **kw,
        ).images
        assert torch.equal(got[i], ref[i]), f"cell {i}"
    assert not torch.equal(got[0], got[1])
