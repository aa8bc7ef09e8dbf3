"""Reading kohya dataset folders: layout, captions, tag counts and every problem reported at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from assistant.errors import DatasetError
from assistant.train.dataset import parse_folder_name, read_dataset, tag_frequency


def _png(path: Path, size: int = 64, colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def _problems(root: Path) -> list[str]:
    with pytest.raises(DatasetError) as info:
        read_dataset(root)
    assert str(root) in str(info.value)
    return list(info.value.problems)


def test_kohya_folder_names() -> None:
    assert parse_folder_name("10_catgirl") == (10, "catgirl")
    assert parse_folder_name("5_cat_girl smiling") == (5, "cat_girl smiling")
    assert parse_folder_name("catgirl") is None
    assert parse_folder_name("x10_catgirl") is None
    assert parse_folder_name("10catgirl") is None


def test_reads_repeats_captions_and_counts(tmp_path: Path) -> None:
    root = tmp_path / "img"
    _png(root / "10_catgirl" / "a.png")
    (root / "10_catgirl" / "a.txt").write_text(
        "catgirl, cat ears, 1girl\nsecond line ignored\n", encoding="utf-8"
    )
    _png(root / "10_catgirl" / "b.jpg")
    (root / "10_catgirl" / "b.caption").write_text("Catgirl, Cat Ears, smile", encoding="utf-8")
    _png(root / "3_mascot" / "c.webp")  # no caption file: captioned with the folder's class token
    dataset = read_dataset(root)
    assert [(s.name, s.repeats, s.class_token, len(s.images)) for s in dataset.subsets] == [
        ("10_catgirl", 10, "catgirl", 2),
        ("3_mascot", 3, "mascot", 1),
    ]
    assert dataset.num_images == 3
    assert dataset.num_train_images == 2 * 10 + 3
    assert len(dataset.items()) == 23
    assert [i.caption_source for i in dataset.subsets[0].images] == ["file", "file"]
    assert dataset.subsets[1].images[0].caption == "mascot"
    assert any("3_mascot" in n and "'mascot'" in n for n in dataset.notes)
    # sd-scripts' ss_tag_frequency: per folder, lower-cased, counted once per caption
    assert dataset.tag_frequency() == {
        "10_catgirl": {"catgirl": 2, "cat ears": 2, "1girl": 1, "smile": 1},
        "3_mascot": {"mascot": 1},
    }
    assert dataset.dataset_dirs() == {
        "10_catgirl": {"n_repeats": 10, "img_count": 2},
        "3_mascot": {"n_repeats": 3, "img_count": 1},
    }
    json.dumps(dataset.tag_frequency())


def test_txt_wins_over_caption_and_extension_can_be_forced(tmp_path: Path) -> None:
    root = tmp_path / "img"
    _png(root / "2_x" / "a.png")
    (root / "2_x" / "a.txt").write_text("from txt", encoding="utf-8")
    (root / "2_x" / "a.caption").write_text("from caption", encoding="utf-8")
    assert read_dataset(root).subsets[0].images[0].caption == "from txt"
    assert read_dataset(root, caption_extension=".caption").subsets[0].images[0].caption == "from caption"


def test_every_problem_is_listed_before_training(tmp_path: Path) -> None:
    root = tmp_path / "img"
    _png(root / "loose.png")  # an image outside any REPEATS_NAME folder
    _png(root / "catgirl" / "a.png")  # a folder without a repeat count
    (root / "5_empty").mkdir(parents=True)  # no images
    _png(root / "4_ok" / "good.png")
    (root / "4_ok" / "bad.png").write_bytes(b"this is not a png")  # unreadable image
    (root / "4_ok" / "orphan.txt").write_text("a caption without its image", encoding="utf-8")
    _png(root / "4_ok" / "empty.png")
    (root / "4_ok" / "empty.txt").write_text("   \n", encoding="utf-8")
    _png(root / "4_ok" / "latin.png")
    (root / "4_ok" / "latin.txt").write_bytes("café".encode("latin-1"))
    _png(root / "4_ok" / "tiny.png", size=16)
    _png(root / "0_zero" / "z.png")
    problems = _problems(root)
    text = "\n".join(problems)
    assert "1 image(s) directly in" in text
    assert "10_img" in text
    assert "folder 'catgirl' has no repeat count: rename it '10_catgirl'" in text
    assert "folder '5_empty' has no images" in text
    assert "bad.png: not a readable image" in text
    assert "caption file(s) without an image (orphan.txt)" in text
    assert "empty.txt: the caption file is empty" in text
    assert "latin.txt: not UTF-8 text" in text
    assert "tiny.png: 16x16 px is too small" in text
    assert "repeat count 0 must be 1 to" in text
    assert len(problems) == 9


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: None, "no such folder"),
        (lambda root: root.write_text("x"), "is a file"),
        (lambda root: root.mkdir(), "no training folders"),
    ],
)
def test_unusable_roots(tmp_path: Path, make, expected: str) -> None:
    root = tmp_path / "img"
    make(root)
    assert expected in _problems(root)[0]


def test_folder_without_class_token_needs_captions(tmp_path: Path) -> None:
    root = tmp_path / "img"
    _png(root / "10_" / "a.png")
    assert "no class token" in _problems(root)[0]


def test_hidden_and_tool_files_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "img"
    _png(root / "1_x" / "a.png")
    (root / ".ipynb_checkpoints").mkdir()
    _png(root / ".ipynb_checkpoints" / "a.png")
    (root / "1_x" / ".DS_Store").write_bytes(b"\0")
    (root / "notes").mkdir()  # a folder without images and without a repeat count: not data
    assert read_dataset(root).num_images == 1


def test_tag_frequency_strips_and_lowercases() -> None:
    assert tag_frequency(["A, b ,,", " a ,C"]) == {"a": 2, "b": 1, "c": 1}


def test_a_dataset_error_pickles_with_its_problems(tmp_path: Path) -> None:
    """Errors cross processes (a Ray replica, a training worker) as the same type and fields."""
    import pickle

    root = tmp_path / "img"
    _png(root / "catgirl" / "a.png")  # no repeat count
    problems = _problems(root)
    with pytest.raises(DatasetError) as info:
        read_dataset(root)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is DatasetError
    assert (copy.root, list(copy.problems), str(copy)) == (str(root), problems, str(info.value))
