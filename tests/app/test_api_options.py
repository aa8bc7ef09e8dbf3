"""A1111's model settings over the API: clip skip, RNG, emphasis, VAE, textual inversions.

The server of tests/app/conftest.py runs the embedded model with two embeddings written by
tests/server.py (``tinyneg`` fits it, ``sd15neg`` is SD1.5's width). Clients are A1111's:
plain HTTP as A1111 documents it and ``webuiapi``.
"""

from __future__ import annotations

import json

import httpx
import webuiapi

from assistant.infotext import parse as parse_infotext

from .conftest import TINY, AppServer


def _infotext(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return json.loads(response.json()["info"])["infotexts"][0]


def test_override_settings_clip_skip_rng_and_emphasis(app_server: AppServer) -> None:
    api = webuiapi.WebUIApi(host="127.0.0.1", port=app_server.port)
    result = api.txt2img(
        prompt="1girl, (cat ears:1.2)",
        negative_prompt="tinyneg, lowres",
        override_settings={"CLIP_stop_at_last_layers": 2, "randn_source": "CPU", "emphasis": "No norm"},
        **{k: v for k, v in TINY.items() if k != "sampler_name"},
        sampler_name=TINY["sampler_name"],
    )
    parsed = parse_infotext(result.info["infotexts"][0])
    assert (parsed.clip_skip, parsed.rng, parsed.emphasis) == (2, "CPU", "No norm")
    assert set(parsed.ti_hashes) == {"tinyneg"}
    assert "override_settings" not in result.info.get("ignored_fields", {})


def test_options_set_clip_skip_for_later_renders(http: httpx.Client) -> None:
    options = http.get("/sdapi/v1/options").json()
    assert options["CLIP_stop_at_last_layers"] == 1
    assert (options["randn_source"], options["sd_vae"]) == ("GPU", "Automatic")
    try:
        answer = http.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2, "randn_source": "nv"})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["CLIP_stop_at_last_layers"], answer.json()["randn_source"]) == (2, "NV")
        text = _infotext(http.post("/sdapi/v1/txt2img", json={**TINY, "prompt": "1girl"}))
        assert "Clip skip: 2" in text
        assert "RNG: NV" in text
        bad = http.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 40})
        assert bad.status_code == 422
        assert "clip skip 40 is out of range; use a value from 1 to 12" in bad.json()["detail"]
    finally:
        http.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 1, "randn_source": "GPU"})
    assert "Clip skip" not in _infotext(http.post("/sdapi/v1/txt2img", json={**TINY, "prompt": "1girl"}))


def test_embeddings_and_vae_lists_in_a1111_shape(http: httpx.Client) -> None:
    embeddings = http.get("/sdapi/v1/embeddings").json()
    assert embeddings == {
        "loaded": {
            "tinyneg": {
                "step": None,
                "sd_checkpoint": None,
                "sd_checkpoint_name": None,
                "shape": 64,
                "vectors": 2,
            }
        },
        "skipped": {
            "sd15neg": {
                "step": None,
                "sd_checkpoint": None,
                "sd_checkpoint_name": None,
                "shape": 768,
                "vectors": 1,
            }
        },
    }
    assert http.post("/sdapi/v1/refresh-embeddings").json() == embeddings
    assert http.get("/sdapi/v1/sd-vae").json() == []
    missing = http.post("/sdapi/v1/options", json={"sd_vae": "nope.safetensors"})
    assert missing.status_code in (404, 422), missing.text
    assert "VAE 'nope.safetensors' was not found; choose one of: Automatic, None" in missing.json()["detail"]
