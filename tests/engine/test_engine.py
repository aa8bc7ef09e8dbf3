"""Engine behaviour on the tiny pipeline, with diffusers' own LoRA test patterns.

Images are 64x64 with 2-3 steps; equality is bit for bit (CPU, fp32) unless a tolerance is
stated. Every test leaves the shared pipeline without adapters (``clean_engine``).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from assistant import infotext
from assistant.config import Settings
from assistant.engine.core import Engine
from assistant.engine.schedulers import make_scheduler, sampler_names
from assistant.engine.tiny import build_tiny_sd15
from assistant.errors import Cancelled, GenerationError, LoraLoadError
from assistant.types import GenerationRequest, PlannedLora

from .conftest import lora_path

pytestmark = pytest.mark.engine

BASE = GenerationRequest(
    "1girl, (cat ears:1.2), city",
    negative="lowres, blurry",
    seed=7,
    steps=2,
    cfg=7.0,
    sampler="Euler a",
    width=64,
    height=64,
)


def lora(name: str, weight: float = 1.0, **kw) -> PlannedLora:
    return PlannedLora(name=name, path=lora_path(name), weight=weight, hash=f"h{name[:6]}", **kw)


def req(*loras: PlannedLora, **changes) -> GenerationRequest:
    return dataclasses.replace(BASE, loras=tuple(loras), **changes)


def pixels(result) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in result.images])


def differs(a, b, at_least: float = 0.5) -> bool:
    return float(np.abs(pixels(a) - pixels(b)).mean()) > at_least


@pytest.fixture
def baseline(clean_engine):
    return clean_engine.generate(BASE)


# -- with / without LoRA ------------------------------------------------------------------------


def test_lora_changes_the_image(clean_engine, baseline) -> None:
    assert differs(clean_engine.generate(req(lora("catgirl_v1", 0.8))), baseline)


def test_weight_zero_disabled_and_unloaded_equal_base(clean_engine, baseline) -> None:
    assert np.array_equal(pixels(clean_engine.generate(req(lora("catgirl_v1", 0.0)))), pixels(baseline))
    clean_engine.generate(req(lora("catgirl_v1", 0.8)))
    assert clean_engine.loaded_adapters()
    disabled = clean_engine.generate(BASE)  # adapters loaded, none requested -> disable_lora
    assert np.array_equal(pixels(disabled), pixels(baseline))
    clean_engine.unload_all()
    assert clean_engine.pipeline.get_list_adapters() in ({}, {"unet": [], "text_encoder": []})
    assert np.array_equal(pixels(clean_engine.generate(BASE)), pixels(baseline))


def test_two_adapters_differ_from_each_alone(clean_engine) -> None:
    a = clean_engine.generate(req(lora("catgirl_v1", 0.6)))
    b = clean_engine.generate(req(lora("cyberpunk_style", 0.6)))
    both = clean_engine.generate(req(lora("catgirl_v1", 0.6), lora("cyberpunk_style", 0.6)))
    assert differs(both, a)
    assert differs(both, b)
    # switching back needs no reload and gives the same image as before
    loads = clean_engine._adapters.loads
    assert np.array_equal(pixels(clean_engine.generate(req(lora("catgirl_v1", 0.6)))), pixels(a))
    assert clean_engine._adapters.loads == loads


def test_negative_weight_differs_from_positive(clean_engine, baseline) -> None:
    plus = clean_engine.generate(req(lora("add_detail", 1.0)))
    minus = clean_engine.generate(req(lora("add_detail", -1.0)))
    assert differs(plus, minus)
    assert differs(minus, baseline)


def _component_outputs(pipe):
    torch.manual_seed(0)
    ids = torch.tensor([[960, 272, 576, 267, 961]])
    sample = torch.randn(1, 4, 8, 8)
    hidden = torch.randn(1, 77, 32)
    with torch.no_grad():
        te = pipe.text_encoder(ids)[0]
        unet = pipe.unet(sample, 10, encoder_hidden_states=hidden).sample
    return te, unet


def test_te_only_and_unet_only_weights_act_only_there(clean_engine) -> None:
    pipe = clean_engine.pipeline
    te0, unet0 = _component_outputs(pipe)
    clean_engine.generate(req(lora("catgirl_v1", 0.8, unet=0.0)))  # <lora:catgirl_v1:0.8:0>
    te1, unet1 = _component_outputs(pipe)
    assert not torch.equal(te1, te0)
    assert torch.equal(unet1, unet0)
    clean_engine.generate(req(lora("catgirl_v1", 0.0, unet=0.8)))  # <lora:catgirl_v1:0:0.8>
    te2, unet2 = _component_outputs(pipe)
    assert torch.equal(te2, te0)
    assert not torch.equal(unet2, unet0)


# -- equality with raw diffusers ------------------------------------------------------------------


def test_engine_equals_direct_pipe_call(clean_engine) -> None:
    request = req(
        lora("catgirl_v1", 0.7, unet=0.5), lora("soft_light", 0.4), cfg=6.5, prompt="1girl, cat ears"
    )
    ours = clean_engine.generate(request)
    pipe = build_tiny_sd15()
    pipe.load_lora_weights(lora_path("catgirl_v1"), adapter_name="a")
    pipe.load_lora_weights(lora_path("soft_light"), adapter_name="b")
    pipe.set_adapters(["a", "b"], [{"text_encoder": 0.7, "unet": 0.5}, {"unet": 0.4}])
    pipe.scheduler = make_scheduler(pipe.scheduler.config, "Euler a", None, 7)
    direct = pipe(
        prompt="1girl, cat ears",
        negative_prompt=BASE.negative,
        num_inference_steps=2,
        guidance_scale=6.5,
        width=64,
        height=64,
        generator=[torch.Generator().manual_seed(7)],
    ).images[0]
    assert np.array_equal(np.asarray(ours.images[0]), np.asarray(direct))


def test_fused_equals_unfused_within_tolerance() -> None:
    pipe = build_tiny_sd15()
    pipe.load_lora_weights(lora_path("catgirl_v1"), adapter_name="a")
    pipe.set_adapters(["a"], [0.7])

    def run():
        return pipe(
            "1girl",
            num_inference_steps=2,
            width=64,
            height=64,
            output_type="np",
            generator=torch.Generator().manual_seed(0),
        ).images

    unfused = run()
    pipe.fuse_lora(lora_scale=1.0, adapter_names=["a"])
    fused = run()
    assert np.allclose(fused, unfused, atol=1e-3)
    assert not np.array_equal(fused, np.zeros_like(fused))


# -- failed loads leave the pipeline exactly as before ---------------------------------------------


@pytest.fixture
def broken_files(tmp_path):
    good = load_file(lora_path("catgirl_v1"))
    half = {
        k: (torch.zeros(v.shape[0], 99, dtype=v.dtype) if k.startswith("lora_te_") and "down" in k else v)
        for k, v in good.items()
    }
    save_file(half, tmp_path / "half.safetensors")
    save_file(
        {
            "lora_unet_no_such_block.lora_down.weight": torch.zeros(4, 8),
            "lora_unet_no_such_block.lora_up.weight": torch.zeros(8, 4),
        },
        tmp_path / "nomatch.safetensors",
    )
    save_file({"model.weight": torch.zeros(2, 2)}, tmp_path / "notlora.safetensors")
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00\x01garbage")
    return tmp_path


def test_raw_diffusers_leaves_a_half_adapter_after_a_failed_text_encoder_load(broken_files) -> None:
    pipe = build_tiny_sd15()
    with pytest.raises(RuntimeError):
        pipe.load_lora_weights(str(broken_files / "half.safetensors"), adapter_name="h")
    assert "h" in pipe.get_list_adapters().get("unet", [])  # why the engine must roll back


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        ("watercolor_xl", r"made for SDXL \(from metadata .*\) but the loaded model is SD1\.5; nothing"),
        (
            "half",
            r"layer encoder\.layers\..* has shape \[8, 99\] in the file but \[8, 3\d\] in this model \(and",
        ),
        ("nomatch", r"none of its 1 layer names exist in this model \(e\.g\. 'no\.such\.block'\)"),
        ("notlora", "no LoRA tensors"),
        ("corrupt", "not a readable"),
    ],
)
def test_failed_load_is_rolled_back(clean_engine, baseline, broken_files, file, reason) -> None:
    path = lora_path(file) if file == "watercolor_xl" else str(broken_files / f"{file}.safetensors")
    clean_engine.generate(req(lora("soft_light", 0.5)))  # another adapter already loaded
    with pytest.raises(LoraLoadError, match=reason) as caught:
        clean_engine.generate(req(PlannedLora(file, path, 0.8)))
    assert f"'{file}'" in str(caught.value)
    assert str(caught.value).endswith("."), "the reason is whole, not cut"
    adapters = {a for names in clean_engine.pipeline.get_list_adapters().values() for a in names}
    assert adapters == set(clean_engine.loaded_adapters())
    assert np.array_equal(pixels(clean_engine.generate(BASE)), pixels(baseline))


# -- samplers, seeds, batches ---------------------------------------------------------------------


@pytest.mark.parametrize("sampler", sampler_names())
def test_every_sampler_runs_and_is_reproducible(clean_engine, sampler) -> None:
    a = clean_engine.generate(req(sampler=sampler))
    b = clean_engine.generate(req(sampler=sampler))
    assert np.array_equal(pixels(a), pixels(b))
    parsed = infotext.parse(a.infotexts[0])
    assert parsed.seed == 7


def test_schedule_table_matches_diffusers_signatures() -> None:
    # split_name reads the static table (so --dry-run needs no diffusers); it must say what the
    # scheduler classes really accept.
    import inspect

    import diffusers

    from assistant.engine.schedulers import SAMPLERS, SCHEDULE_TYPES

    for sampler, spec in SAMPLERS.items():
        params = inspect.signature(getattr(diffusers, spec.cls).__init__).parameters
        accepted = tuple(t for t, flag in SCHEDULE_TYPES.items() if flag and flag in params)
        assert spec.schedules == accepted, sampler


@pytest.mark.parametrize(
    ("sampler", "schedule", "resolved"),
    [
        ("DPM++ 2M", None, ("DPM++ 2M", "Karras")),
        ("DPM++ 2M", "Automatic", ("DPM++ 2M", "Karras")),
        ("DPM++ 2M SDE", None, ("DPM++ 2M SDE", "Exponential")),
        ("DPM++ SDE", "", ("DPM++ SDE", "Karras")),
        ("DPM2 a", None, ("DPM2 a", "Karras")),
        ("Euler a", None, ("Euler a", "Automatic")),
        ("Euler", "automatic", ("Euler", "Automatic")),
        ("DPM++ 2M", "Exponential", ("DPM++ 2M", "Exponential")),
    ],
)
def test_automatic_schedule_is_the_samplers_a1111_default(sampler, schedule, resolved) -> None:
    from assistant.engine.schedulers import split_name

    assert split_name(sampler, schedule) == resolved


def test_dpmpp_2m_is_dpmpp_2m_karras_like_a1111(clean_engine) -> None:
    plain = clean_engine.generate(req(sampler="DPM++ 2M", scheduler="Automatic"))
    karras = clean_engine.generate(req(sampler="DPM++ 2M Karras"))
    assert np.array_equal(pixels(plain), pixels(karras))
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in plain.infotexts[0]  # what really ran
    euler = clean_engine.generate(req(sampler="Euler a"))
    assert "Schedule type" not in euler.infotexts[0]


def test_batch_seeds_wrap_past_the_largest_seed(clean_engine) -> None:
    result = clean_engine.generate(req(seed=2**32 - 1, batch_size=2))
    assert result.seeds == (2**32 - 1, 0)
    assert "Seed: 0," in result.infotexts[1]


def test_split_sampler_form_equals_combined(clean_engine) -> None:
    combined = clean_engine.generate(req(sampler="DPM++ 2M Karras"))
    split = clean_engine.generate(req(sampler="DPM++ 2M", scheduler="Karras"))
    assert np.array_equal(pixels(combined), pixels(split))
    assert "Schedule type: Karras" in combined.infotexts[0]


def test_random_seed_is_reported_and_reproducible(clean_engine) -> None:
    first = clean_engine.generate(req(seed=-1))
    (seed,) = first.seeds
    assert 0 <= seed < 2**32
    again = clean_engine.generate(req(seed=seed))
    assert np.array_equal(pixels(first), pixels(again))


def test_batch_image_i_uses_seed_plus_i(clean_engine) -> None:
    batch = clean_engine.generate(req(seed=100, batch_size=2))
    assert batch.seeds == (100, 101)
    single = clean_engine.generate(req(seed=101))
    diff = np.abs(pixels(batch)[1] - pixels(single)[0])
    assert diff.max() <= 2  # same noise; a batch of 2 may round differently in the last bit
    assert [infotext.parse(t).seed for t in batch.infotexts] == [100, 101]


# -- progress, cancel, NaN ---------------------------------------------------------------------------


def test_progress_per_step_and_cancel(clean_engine) -> None:
    seen: list[tuple[int, int]] = []
    clean_engine.generate(req(steps=3), progress=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    cancel = threading.Event()

    def stop_after_first(i: int, _n: int) -> None:
        if i == 1:
            cancel.set()

    with pytest.raises(Cancelled, match="after step 1 of 3"):
        clean_engine.generate(req(steps=3), progress=stop_after_first, cancel=cancel)


def test_nan_output_is_an_error_not_a_black_image(clean_engine, tmp_path) -> None:
    state = load_file(lora_path("add_detail"))
    huge = {k: (v.float() * 1e36 if k.endswith("lora_up.weight") else v.float()) for k, v in state.items()}
    save_file(huge, tmp_path / "huge.safetensors")
    with pytest.raises(GenerationError, match=r"NaN.*A LoRA weight is probably too high"):
        clean_engine.generate(req(PlannedLora("huge", str(tmp_path / "huge.safetensors"), 2.0)))


def test_nan_from_extreme_attention_blames_the_brackets(clean_engine) -> None:
    with pytest.raises(GenerationError, match=r"NaN.*attention weights reach 2\.\d+e\+41.*remove brackets"):
        clean_engine.generate(req(prompt="(" * 1000 + "1girl"))  # 1.1**1000: beyond float32


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"width": 100}, "width 100"),
        ({"height": 4096}, "height 4096"),
        ({"steps": 0}, "steps 0"),
        ({"steps": 151}, "steps 151"),
        ({"cfg": float("nan")}, "CFG scale nan"),
        ({"cfg": 31.0}, "CFG scale 31.0"),
        ({"batch_size": 9}, "batch size 9"),
        ({"seed": -5}, "seed -5"),
        ({"seed": 2**32}, "seed 4294967296"),
        ({"sampler": "Eular a"}, "Unknown sampler 'Eular a'"),
        ({"loras": (PlannedLora("x", "/nope.safetensors", float("inf")),)}, "LoRA weight for 'x'"),
    ],
)
def test_bad_inputs_are_named(clean_engine, changes, needle) -> None:
    with pytest.raises(GenerationError) as caught:
        clean_engine.generate(dataclasses.replace(BASE, **changes))
    assert needle in str(caught.value)


def test_missing_file_is_a_load_error(clean_engine) -> None:
    with pytest.raises(LoraLoadError, match="file not found"):
        clean_engine.generate(req(PlannedLora("ghost", "/no/such/ghost.safetensors", 0.5)))


# -- adapter cache -----------------------------------------------------------------------------------


def test_lru_eviction_really_deletes_adapters(tiny_pipe) -> None:
    engine = Engine(Settings(adapter_cache_size=2), pipeline=tiny_pipe)
    try:
        for name in ("catgirl_v1", "cyberpunk_style", "jk_uniform"):
            engine.generate(req(lora(name, 0.5)))
        loaded = engine.loaded_adapters()
        assert len(loaded) == 2
        assert loaded[0].startswith("cyberpunk_style")
        assert loaded[1].startswith("jk_uniform")
        present = {a for names in tiny_pipe.get_list_adapters().values() for a in names}
        assert present == set(loaded)
        assert engine._adapters.evictions == 1
    finally:
        engine.unload_all()


def test_changed_file_is_reloaded(clean_engine, tmp_path) -> None:
    path = tmp_path / "mine.safetensors"
    path.write_bytes(Path(lora_path("catgirl_v1")).read_bytes())
    first = clean_engine.generate(req(PlannedLora("mine", str(path), 0.8)))
    path.write_bytes(Path(lora_path("cyberpunk_style")).read_bytes())
    second = clean_engine.generate(req(PlannedLora("mine", str(path), 0.8)))
    assert differs(first, second)
    assert len(clean_engine.loaded_adapters()) == 1


# -- prompts and infotext ----------------------------------------------------------------------------


def test_long_prompts_are_not_truncated(clean_engine) -> None:
    long_text = ", ".join(["masterpiece"] * 60 + ["cat ears"])
    embeds, info = clean_engine._encoder.encode_pair(long_text, "lowres")
    assert embeds["prompt_embeds"].shape[1] == 2 * 77
    assert embeds["prompt_embeds"].shape == embeds["negative_prompt_embeds"].shape
    assert info.padded
    short = clean_engine.generate(req(prompt=", ".join(["masterpiece"] * 60)))
    longer = clean_engine.generate(req(prompt=long_text))
    assert differs(short, longer, at_least=0.0)


def test_attention_weights_change_the_image(clean_engine) -> None:
    plain = clean_engine.generate(req(prompt="1girl, cat ears"))
    weighted = clean_engine.generate(req(prompt="1girl, (cat ears:1.5)"))
    assert differs(plain, weighted, at_least=0.0)


def test_infotext_round_trip(clean_engine) -> None:
    result = clean_engine.generate(req(lora("catgirl_v1", 0.6), sampler="DPM++ 2M Karras", cfg=6.5))
    parsed = infotext.parse(result.infotexts[0])
    assert (parsed.prompt, parsed.negative) == (BASE.prompt, BASE.negative)
    assert (parsed.steps, parsed.cfg, parsed.seed, parsed.size) == (2, 6.5, 7, (64, 64))
    assert (parsed.sampler, parsed.schedule_type) == ("DPM++ 2M", "Karras")
    assert parsed.lora_hashes == {"catgirl_v1": "hcatgir"}
    assert parsed.model == "tiny-sd15-demo"
    assert clean_engine.info.is_tiny
    assert clean_engine.info.banner


# -- negative-branch weights and batched cells ---------------------------------------------------------


def test_negative_branch_weights_run_the_uncond_pass_with_their_own_weights(clean_engine, baseline) -> None:
    pytest.importorskip("assistant.engine.rows")
    same = clean_engine.generate(req(lora("catgirl_v1", 0.6)))
    explicit_same = clean_engine.generate(req(lora("catgirl_v1", 0.6, negative_weight=0.6)))
    split = clean_engine.generate(req(lora("catgirl_v1", 0.6, negative_weight=-0.2)))
    assert np.array_equal(pixels(same), pixels(explicit_same))
    assert differs(split, same)
    negative_only = clean_engine.generate(req(lora("catgirl_v1", 0.0, negative_weight=-0.3)))
    assert differs(negative_only, baseline)
    assert "Negative LoRA weights" in negative_only.infotexts[0]
    # CFG 1 has no uncond pass: the negative-branch weight cannot matter there
    no_cfg = clean_engine.generate(req(lora("catgirl_v1", 0.6, negative_weight=-0.2), cfg=1.0))
    no_cfg_same = clean_engine.generate(req(lora("catgirl_v1", 0.6), cfg=1.0))
    assert np.array_equal(pixels(no_cfg), pixels(no_cfg_same))


def test_batched_cells_equal_sequential_within_tolerance(clean_engine) -> None:
    pytest.importorskip("assistant.engine.rows")
    cells = [
        req(
            lora("catgirl_v1", w1),
            lora("cyberpunk_style", round(1.0 - w1, 2)),
            prompt=f"1girl, <lora:catgirl_v1:{w1}>, city",  # tags differ, encoded text does not
            label=f"{w1}",
        )
        for w1 in (0.4, 0.55, 0.7)
    ] + [
        req(
            lora("catgirl_v1", 0.5, negative_weight=-0.2),
            lora("cyberpunk_style", 0.0),
            prompt="1girl, <lora:catgirl_v1:0.5>, city",
        )
    ]
    sequential = clean_engine.generate_many(cells, batched=False)
    loads = clean_engine._adapters.loads
    batched = clean_engine.generate_many(cells, batched=True)
    assert clean_engine._adapters.loads == loads  # nothing reloaded between cells
    for s, b in zip(sequential, batched, strict=True):
        assert b.seeds == s.seeds
        assert b.infotexts == s.infotexts
        assert np.abs(pixels(s) - pixels(b)).max() <= 2  # batching rounds differently, < 1%
        assert b.timings.get("batched_cells") == 4.0
    assert differs(batched[0], batched[1])


# -- out of memory (fault injection: no GPU here, so the UNet raises what CUDA would) -------------


class _OutOfMemoryAbove:
    """A UNet pre-hook raising torch.OutOfMemoryError when a call carries more than ``rows`` rows."""

    def __init__(self, unet, rows: int) -> None:
        self.rows, self.raised = rows, 0
        self.handle = unet.register_forward_pre_hook(self.hook)

    def hook(self, _module, args):
        if args[0].shape[0] > self.rows:
            self.raised += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def __enter__(self):
        return self

    def __exit__(self, *_exc) -> None:
        self.handle.remove()


def test_out_of_memory_is_a_clear_error_and_the_engine_recovers(clean_engine) -> None:
    baseline = clean_engine.generate(req(lora("catgirl_v1", 0.7)))
    with (
        _OutOfMemoryAbove(clean_engine.pipeline.unet, rows=0) as oom,
        pytest.raises(
            GenerationError, match=r"Out of GPU memory rendering 1 image\(s\) at 64x64.*--low-vram"
        ),
    ):
        clean_engine.generate(req(lora("catgirl_v1", 0.7)))
    assert oom.raised == 1
    again = clean_engine.generate(req(lora("catgirl_v1", 0.7)))
    assert np.array_equal(pixels(again), pixels(baseline))  # nothing of the failed call stays behind


def test_a_batched_pass_out_of_memory_falls_back_to_single_cells(clean_engine) -> None:
    pytest.importorskip("assistant.engine.rows")
    cells = [req(lora("catgirl_v1", w), prompt=f"1girl, <lora:catgirl_v1:{w}>") for w in (0.3, 0.5, 0.7)]
    single = [clean_engine.generate(cell) for cell in cells]
    steps: list[tuple[int, int]] = []
    with _OutOfMemoryAbove(clean_engine.pipeline.unet, rows=2) as oom:  # one cell = 2 rows with CFG
        batched = clean_engine.generate_many(cells, batched=True, progress=lambda s, t: steps.append((s, t)))
    assert oom.raised == 1  # the shared 6-row pass, once; then three 2-row passes
    for a, b in zip(single, batched, strict=True):
        assert np.array_equal(pixels(a), pixels(b))
        assert "batched_cells" not in b.timings
    assert steps[-1] == (3 * BASE.steps, 3 * BASE.steps)


# -- SDXL ------------------------------------------------------------------------------------------


def test_sdxl_engine_with_te1_te2_lora(tiny_xl_pipe) -> None:
    engine = Engine(Settings(), pipeline=tiny_xl_pipe)
    try:
        assert engine.info.base == "sdxl"
        assert engine.info.model_name == "tiny-sdxl-demo"
        base = engine.generate(BASE)
        styled = engine.generate(req(lora("watercolor_xl", 0.8)))
        assert differs(base, styled, at_least=0.1)
        with pytest.raises(LoraLoadError, match="catgirl_v1"):
            engine.generate(req(lora("catgirl_v1", 0.8)))
        assert np.array_equal(pixels(engine.generate(BASE)), pixels(base))
    finally:
        engine.unload_all()


def test_fast_activation_equals_diffusers_set_adapters(clean_engine) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    plan = (lora("catgirl_v1", 0.7, unet=0.3), lora("soft_light", -0.4))
    clean_engine.generate(req(*plan))
    pipe = clean_engine.pipeline

    def state():
        out = {}
        for component in ("unet", "text_encoder"):
            for name, module in getattr(pipe, component).named_modules():
                if isinstance(module, BaseTunerLayer):
                    out[(component, name)] = (list(module.active_adapters), dict(module.scaling))
        return out

    ours = state()
    names = clean_engine.loaded_adapters()
    pipe.set_adapters(names, [{"text_encoder": 0.7, "unet": 0.3}, {"unet": -0.4}])
    assert state() == ours


def test_plain_prompt_equals_diffusers_encode_prompt(clean_engine) -> None:
    """A prompt without weights in one chunk is what diffusers' own encode_prompt gives, bit for
    bit, also with a text-encoder LoRA active (A1111 and diffusers agree there)."""
    encoder = clean_engine._encoder
    clean_engine.generate(req(lora("catgirl_v1", 0.7)))  # a text-encoder LoRA active
    ours, _info = encoder.encode_pair("1girl, cat ears, city", "lowres, blurry")
    pipe = clean_engine.pipeline
    cond, uncond = pipe.encode_prompt(
        "1girl, cat ears, city", "cpu", 1, True, negative_prompt="lowres, blurry"
    )
    assert torch.equal(ours["prompt_embeds"], cond)
    assert torch.equal(ours["negative_prompt_embeds"], uncond)


def test_sdxl_negative_branch_and_batched_cells(tiny_xl_pipe) -> None:
    pytest.importorskip("assistant.engine.rows")
    engine = Engine(Settings(), pipeline=tiny_xl_pipe)
    try:
        plain = engine.generate(req(lora("watercolor_xl", 0.6)))
        split = engine.generate(req(lora("watercolor_xl", 0.6, negative_weight=-0.4)))
        assert differs(plain, split, at_least=0.05)
        cells = [req(lora("watercolor_xl", w)) for w in (0.3, 0.6, 0.9)]
        sequential = engine.generate_many(cells, batched=False)
        batched = engine.generate_many(cells, batched=True)
        for s, b in zip(sequential, batched, strict=True):
            assert np.abs(pixels(s) - pixels(b)).max() <= 2
        assert batched[0].timings.get("batched_cells") == 3.0
    finally:
        engine.unload_all()
