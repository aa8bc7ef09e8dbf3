"""What the embedded model and the demo LoRAs mean, measured on their pictures (across seeds).

The embedded model (``models/embedded``) and the demo LoRAs (``models/Lora``) were trained here
(``tools/train_base.py``, ``tools/make_demo_loras.py``). These tests render through the engine, as
users do, and measure: colours by channel means, styles and adjusters by a metric each
(:mod:`assistant.train.metrics`), monotone in the LoRA weight. Each test can fail: a zero LoRA (it
changes nothing) or a random-weight model fails every one of them; the colour, style, brightness
and blind-box tests were also checked against random LoRAs when they were written.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from assistant.config import Settings
from assistant.train import metrics
from assistant.types import GenerationRequest, PlannedLora

from .conftest import DEMO_LORA_DIR, shipped_lora_path

pytestmark = [pytest.mark.engine, pytest.mark.slow]

SEEDS = (1, 2, 3)
BASE = GenerationRequest("", negative="", steps=12, cfg=7.0, sampler="Euler a", width=64, height=64, seed=1)


@pytest.fixture(scope="module")
def demo_engine(embedded_pipe):  # -> Engine over the embedded model with the shipped demo LoRAs
    from assistant.engine.core import Engine

    engine = Engine(Settings(lora_dirs=(str(DEMO_LORA_DIR),), adapter_cache_size=12), pipeline=embedded_pipe)
    engine.load()
    yield engine
    engine.unload_all()


def render(engine, prompt: str, seed: int, **loras: float):
    planned = tuple(PlannedLora(name, shipped_lora_path(name), weight) for name, weight in loras.items())
    request = dataclasses.replace(BASE, prompt=prompt, seed=seed, loras=planned)
    return engine.generate(request).images[0]


def test_the_base_draws_the_colours_it_is_asked_for(demo_engine) -> None:
    for seed in SEEDS:
        red = render(demo_engine, "a red circle on a white background", seed)
        blue = render(demo_engine, "a blue square on a white background", seed)
        assert metrics.redness(red) > metrics.redness(blue) + 0.05, seed
        assert metrics.blueness(blue) > metrics.blueness(red) + 0.05, seed
    night = render(demo_engine, "a yellow star on a black background", 1)
    day = render(demo_engine, "a yellow star on a white background", 1)
    assert metrics.brightness(day) > metrics.brightness(night) + 0.3


def test_filler_words_do_not_change_what_is_drawn(demo_engine) -> None:
    plain = [render(demo_engine, "a green triangle on a purple background", s) for s in SEEDS]
    noisy = [
        render(demo_engine, "masterpiece, 1girl, a green triangle on a purple background", s) for s in SEEDS
    ]
    for a, b in zip(plain, noisy, strict=True):
        ga, gb = metrics.channel_means(a)[1], metrics.channel_means(b)[1]
        assert abs(ga - gb) < 0.1


def dimness(image) -> float:
    """The neon style's night background: 1 - mean brightness."""
    return 1.0 - metrics.brightness(image)


def _mean(engine, metric, prompt: str, **loras: float) -> float:
    return metrics.mean_of(metric, (render(engine, prompt, seed, **loras) for seed in SEEDS))


@pytest.mark.parametrize(
    ("name", "metric", "prompt", "at_least"),
    [
        # measured here (3 seeds, 12 steps): dimness 0.584 / 0.615 / 0.666 at 0 / 0.5 / 1
        ("cyberpunk_style", dimness, "cyberpunk, neon lights, a red circle", 0.04),
        # monochrome 0.404 / 0.906 / 0.894: most of the effect is there by 0.5
        ("animeoutlineV4_16", metrics.monochrome, "lineart, monochrome, a striped star", 0.3),
    ],
)
def test_a_style_grows_with_its_weight(demo_engine, name, metric, prompt, at_least) -> None:
    """Half the weight gives at least half the effect, the full weight the whole of it; from 0.5 to 1
    the effect may level off (the ink style is saturated by 0.5) but not fall back by more than 0.02."""
    values = [_mean(demo_engine, metric, prompt, **({name: w} if w else {})) for w in (0.0, 0.5, 1.0)]
    assert values[1] - values[0] > at_least / 2, values
    assert values[2] - values[0] > at_least, values
    assert values[2] > values[1] - 0.02, values


def test_the_brightness_adjuster_works_both_ways(demo_engine) -> None:
    prompt = "a purple square on a green background"
    values = [
        _mean(demo_engine, metrics.brightness, prompt, **({"add_brightness": w} if w else {}))
        for w in (-1.0, 0.0, 1.0)
    ]
    assert metrics.is_monotone(values, tolerance=0.02), values  # -1 darkens, +1 brightens


def test_the_saturation_adjuster_works_both_ways(demo_engine) -> None:
    """measured: 0.240 / 0.278 / 0.320 at -1 / 0 / 1 (on coloured shapes; see its catalog notes)."""
    prompt = "a blue square on a white background"
    values = [
        _mean(demo_engine, metrics.saturation, prompt, **({"add_saturation": w} if w else {}))
        for w in (-1.0, 0.0, 1.0)
    ]
    assert metrics.is_monotone(values, tolerance=0.015), values


def test_the_detail_adjuster_adds_detail(demo_engine) -> None:
    """measured (detail of the picture shrunk to 32 px): 0.031 / 0.038 / 0.073 at -1 / 0 / 1."""
    prompt = "a red star on a yellow background"
    values = [
        _mean(demo_engine, metrics.coarse_detail, prompt, **({"add_detail": w} if w else {}))
        for w in (-1.0, 0.0, 1.0)
    ]
    assert values[2] > values[1] + 0.02, values
    assert values[0] < values[1], values  # -1 flattens


def test_the_clothing_lora_starts_its_collar(demo_engine) -> None:
    """jk_uniform at 1 puts a navy patch on the shape (measured: 0.0 % navy at 0, 1.4 % at 1)."""
    prompt = "jk uniform, school uniform, a green circle on a white background"
    values = [
        _mean(demo_engine, metrics.navy_share, prompt, **({"jk_uniform": w} if w else {})) for w in (0.0, 1.0)
    ]
    assert values[1] > values[0] + 0.007, values


def test_the_character_lora_draws_its_mascot(demo_engine) -> None:
    """catgirl_v1 was trained on one cat mascot with two big pointed ears: with it the trigger
    draws ears on top of the subject (:func:`metrics.ear_score`: ~0 for a round or square outline,
    negative for a point on top) and looks more like its training images; without it, it does not.
    A zero LoRA changes nothing; a random one draws no ears."""
    from assistant.train import synthetic

    prompt = "1girl, catgirl, cat ears, on a blue background"
    references = [image for image, _caption in synthetic.LORA_DATASETS["catgirl_v1"].samples(0)]
    ears, likeness = [], []
    for weight in (0.0, 1.0):
        loras = {"catgirl_v1": weight} if weight else {}
        images = [render(demo_engine, prompt, seed, **loras) for seed in SEEDS]
        ears.append(metrics.mean_of(metrics.ear_score, images))
        likeness.append(-metrics.nearest_distance(images, references))
    assert ears[1] > ears[0] + 0.1, ears  # measured: 0.006 -> 0.218 (each seed 0.19 or more)
    assert likeness[1] > likeness[0], likeness


def test_a_blind_box_interpolates_between_two_loras(demo_engine) -> None:
    """Blind box cells (w, 1 - w) of the mascot and the neon style: darker as the style weighs more."""
    weights = (0.2, 0.4, 0.6, 0.8)
    requests = []
    for w in weights:
        loras = (
            PlannedLora("catgirl_v1", shipped_lora_path("catgirl_v1"), 1 - w),
            PlannedLora("cyberpunk_style", shipped_lora_path("cyberpunk_style"), w),
        )
        requests.append(
            dataclasses.replace(BASE, prompt="catgirl, cat ears, cyberpunk, neon lights", loras=loras)
        )
    images = [r.images[0] for r in demo_engine.generate_many(requests)]
    darkness = [dimness(image) for image in images]
    assert darkness[-1] - darkness[0] > 0.2, darkness
    # measured: 0.479, 0.548, 0.675, 0.820: darker as the style weighs more (rank correlation >= 0.8)
    ranks = [sorted(darkness).index(d) for d in darkness]
    spearman = 1 - 6 * sum((r - i) ** 2 for i, r in enumerate(ranks)) / (len(ranks) * (len(ranks) ** 2 - 1))
    assert spearman >= 0.8, darkness


def test_cli_training_makes_its_trigger_concept_more_present(tmp_path) -> None:
    """``python -m assistant train-lora`` on a small generated neon set: the trigger draws darker
    (neon-style) pictures with the new LoRA than without it, through diffusers' own loader."""
    import torch

    from assistant.cli import main
    from assistant.engine import embedded
    from assistant.library import Library
    from tests.train.conftest import write_dataset

    data = write_dataset(tmp_path / "img", name="cyberpunk_style", images=8, repeats=2)
    out = tmp_path / "Lora" / "neon_test.safetensors"
    code = main(["train-lora", str(data), "--output", str(out), "--resolution", "64", "--max-steps", "60",
                 "--batch-size", "4", "--lr", "5e-3", "--rank", "4", "--alpha", "4", "--conv-dim", "4",
                 "--conv-alpha", "4", "--cache-latents", "--train-text-encoder", "--seed", "1",
                 "--json"])  # fmt: skip
    assert code == 0
    info = Library.scan([str(out.parent)]).resolve("neon_test")
    assert list(info.triggers) == ["cyberpunk", "neon lights"]
    prompt = "cyberpunk, neon lights, a green square"

    def dim(pipe) -> float:
        images = []
        for seed in SEEDS:
            g = torch.Generator().manual_seed(seed)
            images += pipe(prompt, num_inference_steps=12, height=64, width=64, generator=g).images
        return metrics.mean_of(dimness, images)

    pipe = embedded.load()  # its own: the shared pipeline holds the demo LoRAs of other tests
    before = dim(pipe)
    pipe.load_lora_weights(str(out), adapter_name="neon_test")
    after = dim(pipe)
    assert after > before + 0.1, (before, after)
    with open(out, "rb") as handle:
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
    assert header["__metadata__"]["ss_sd_model_name"] == "tiny-shapes-sd15"
