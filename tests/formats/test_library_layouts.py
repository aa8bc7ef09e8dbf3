"""The library names every file's algorithm and rank from its keys, and flags at scan time what
the engine cannot apply (issue 12, item 2): ``loras --json``, the cards and the API read it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from assistant.library import Library, info_to_dict
from assistant.ui.cards import card_html
from tests.library.lora_layouts import EXPECTED_ALGORITHM, LAYOUTS, LayoutSpec, write_lora

from .conftest import Structured

ROOT = Path(__file__).resolve().parents[2]
SPEC = LayoutSpec(rank=8, alpha=4.0, conv_rank=4, conv_alpha=2.0)
#: the rank the library must show (None: no layer has one — full, LoKr with both factors whole).
#: LoKr keeps a factor whole where the rank would not be smaller (most layers at these widths), so
#: without metadata its rank is that of the layers that have one (here the 3x3 convs).
RANK = {"lokr-full": None, "full": None, "lokr": 4, "lokr-tucker": 4, "lokr-both": 4}


@pytest.fixture(scope="module")
def library(sd15: Structured, tmp_path_factory: pytest.TempPathFactory) -> Library:
    folder = tmp_path_factory.mktemp("layouts")
    for layout in LAYOUTS:
        for selection in ("locon", "kohya"):
            write_lora(
                folder / f"{layout}-{selection}.safetensors",
                sd15.targets,
                selection,
                layout=layout,
                spec=SPEC,
                seed=1,
            )
    stem = "lora_unet_down_blocks_0_attentions_0_proj_in"
    save_file({f"{stem}.oft_blocks": np.zeros((4, 8, 8), np.float32)}, str(folder / "oft.safetensors"))
    save_file({f"{stem}.on_input": np.zeros((8,), np.float32)}, str(folder / "ia3.safetensors"))
    return Library.scan([str(folder)], cache_dir=str(folder / "cache"))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_has_its_algorithm_and_rank(library: Library, layout: str) -> None:
    with_convs, without = EXPECTED_ALGORITHM[layout]
    for selection, algorithm in (("locon", with_convs), ("kohya", without)):
        info = library.resolve(f"{layout}-{selection}")
        assert (info.status, info.problem) == ("ok", ""), (layout, selection)
        assert info.algorithm == algorithm, (layout, selection)
        if not (layout.startswith("lokr") and selection == "kohya"):  # no 3x3 convs: any rank left
            assert info.rank == RANK.get(layout, SPEC.rank), (layout, selection)
        assert info_to_dict(info)["algorithm"] == algorithm
        assert algorithm in card_html(info)


def test_layouts_the_engine_cannot_apply_are_refused_at_scan(library: Library) -> None:
    oft, ia3 = library.resolve("oft"), library.resolve("ia3")
    assert (oft.status, oft.loadable) == ("refused", False)
    assert oft.problem == (
        "OFT file: it uses LyCORIS OFT/BOFT (orthogonal fine-tuning, 'oft_blocks'), which LoRA Mixer "
        "cannot apply"
    )
    assert oft.algorithm == "oft"
    assert ia3.status == "refused"
    assert "(IA)^3" in ia3.problem
    assert "refused: OFT file" in card_html(oft)


def test_loras_json_names_the_algorithm(library: Library) -> None:
    folder = library.roots[0]
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "loras", "--lora-dir", folder, "--filter", "loha", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    by_name = {item["name"]: item for item in json.loads(done.stdout)}
    assert by_name["loha-locon"]["algorithm"] == "loha"
    assert by_name["loha-dora-locon"]["algorithm"] == "loha+dora"
    assert by_name["loha-locon"]["rank"] == SPEC.rank
