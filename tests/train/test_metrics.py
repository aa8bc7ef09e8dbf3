"""The image measurements behind the meaning tests and the demo LoRA figures, on drawn pictures
(where the right answer is known), and the demo datasets they measure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from assistant.train import metrics, synthetic


def _scenes(count: int, **fixed: object) -> list[synthetic.Scene]:
    rng = np.random.Generator(np.random.PCG64(3))
    return [synthetic.random_scene(rng, **fixed) for _ in range(count)]


def test_ear_score_finds_the_mascots_ears_and_not_a_plain_shape() -> None:
    mascots = [image for image, _caption in synthetic.LORA_DATASETS["catgirl_v1"].samples(0)][:8]
    scores = {
        "mascot": [metrics.ear_score(image.resize((64, 64))) for image in mascots],
        **{
            shape: [metrics.ear_score(synthetic.draw(scene, 64)) for scene in _scenes(8, shape=shape)]
            for shape in synthetic.SHAPES
        },
    }
    assert min(scores["mascot"]) > 0.15, scores["mascot"]
    for shape in ("circle", "square"):  # symmetric top and bottom
        assert max(abs(v) for v in scores[shape]) < 0.05, (shape, scores[shape])
    for shape in ("triangle", "star"):  # a point on top, points below
        assert max(scores[shape]) < -0.05, (shape, scores[shape])


def test_navy_share_sees_the_collar_and_not_a_blue_background() -> None:
    scene = _scenes(1, shape="circle", colour="green", background="white", texture="plain")[0]
    plain = synthetic.draw(scene, 64)
    collar = synthetic.draw(dataclasses.replace(scene, collar=True), 64)
    blue = synthetic.draw(dataclasses.replace(scene, background="blue"), 64)
    assert metrics.navy_share(plain) == 0.0
    assert metrics.navy_share(collar) > 0.015
    assert metrics.navy_share(blue) < 0.005  # a bright blue is not navy


def test_coarse_detail_counts_outlines_and_hatching_not_a_flat_picture() -> None:
    detailed = synthetic.LORA_DATASETS["add_detail"]
    rng = np.random.Generator(np.random.PCG64(0))
    for scene in _scenes(4):
        flat = synthetic.draw(scene).resize((64, 64))
        busy = synthetic._RENDERERS[detailed.render](scene, rng).resize((64, 64))
        assert metrics.coarse_detail(busy) > metrics.coarse_detail(flat) + 0.05


def test_the_vivid_set_is_more_saturated_than_the_plain_pictures() -> None:
    for scene in _scenes(6):
        plain = synthetic.draw(scene)
        assert metrics.saturation(synthetic._vivid(plain)) > metrics.saturation(plain) + 0.05


@pytest.mark.parametrize("name", ["catgirl_v1", "catgirl_v2"])
def test_the_character_sets_show_one_mascot_and_do_not_caption_its_look(name: str) -> None:
    orange = np.asarray(synthetic.COLOURS[synthetic.MASCOT_COLOUR], dtype=np.float32)
    for image, caption in synthetic.LORA_DATASETS[name].samples(0):
        pixels = np.asarray(image, dtype=np.float32).reshape(-1, 3)
        assert (np.abs(pixels - orange).max(axis=1) < 20).mean() > 0.1  # the orange mascot is there
        assert caption.startswith("catgirl, cat ears, 1girl")
        assert synthetic.MASCOT_COLOUR not in caption
        assert "circle" not in caption
