"""Uploads → kohya folders (zips read defensively), and training runs started like the app does."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from assistant.errors import DatasetError, TrainingError
from assistant.train.dataset import read_dataset
from assistant.train.jobs import dataset_from_uploads, safe_name


def _png_bytes(colour=(10, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_loose_images_and_captions_become_one_kohya_folder(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(_png_bytes())
    (tmp_path / "a.txt").write_text("mascot, red", encoding="utf-8")
    (tmp_path / "b.png").write_bytes(_png_bytes((200, 10, 10)))
    root = dataset_from_uploads(
        [tmp_path / "a.png", tmp_path / "a.txt", tmp_path / "b.png"], tmp_path / "job", name="mascot",
        repeats=5, caption="mascot, blue",
    )  # fmt: skip
    dataset = read_dataset(root)
    assert [(s.name, s.repeats) for s in dataset.subsets] == [("5_mascot", 5)]
    assert {Path(i.path).name: i.caption for i in dataset.subsets[0].images} == {
        "a.png": "mascot, red",  # its own caption file wins
        "b.png": "mascot, blue",  # the caption given for images without one
    }


def test_zip_keeps_kohya_folders_and_refuses_escapes(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "data.zip",
        {
            "img/10_cat/x.png": _png_bytes(),
            "img/10_cat/x.txt": b"cat, ears",
            "flat.png": _png_bytes(),  # no kohya folder: goes to the default folder
            "../../escape.png": _png_bytes(),  # zip slip: skipped
            "__MACOSX/._x.png": b"junk",
            "notes.exe": b"MZ",
        },
    )
    root = dataset_from_uploads([archive], tmp_path / "job", name="thing", repeats=2)
    assert not (tmp_path / "escape.png").exists()
    assert not list(tmp_path.glob("**/escape.png"))
    dataset = read_dataset(root)
    assert sorted((s.name, len(s.images)) for s in dataset.subsets) == [("10_cat", 1), ("2_thing", 1)]
    assert dataset.subsets[0].images[0].caption == "cat, ears"


def test_a_zip_member_larger_than_its_header_says_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"10_x/a.png": _png_bytes()})
    with zipfile.ZipFile(archive) as z:
        real = z.infolist()[0].file_size
    raw = archive.read_bytes().replace(real.to_bytes(4, "little"), (10).to_bytes(4, "little"))
    archive.write_bytes(raw)  # local header and central directory now claim 10 bytes
    with pytest.raises(DatasetError, match=r"larger than its zip entry says|is damaged"):
        dataset_from_uploads([archive], tmp_path / "job", name="x")


def test_unusable_uploads_are_explained(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no files were uploaded"):
        dataset_from_uploads([], tmp_path / "job", name="x")
    (tmp_path / "virus.exe").write_bytes(b"MZ")
    with pytest.raises(DatasetError, match="none of the uploads is an image"):
        dataset_from_uploads([tmp_path / "virus.exe"], tmp_path / "job", name="x")
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable zip"):
        dataset_from_uploads([tmp_path / "fake.zip"], tmp_path / "job", name="x")
    with pytest.raises(DatasetError, match="repeats 0"):
        dataset_from_uploads([tmp_path / "virus.exe"], tmp_path / "job", name="x", repeats=0)


@pytest.mark.parametrize("name", ["", "../up", "a/b", "<lora:x>", "x:y", ".hidden", "x" * 101])
def test_names_that_cannot_be_files_or_tags_are_refused(name: str) -> None:
    with pytest.raises(TrainingError):
        safe_name(name)


def test_good_names_pass() -> None:
    assert safe_name("  my_mascot v2.1 ") == "my_mascot v2.1"


def test_training_is_off_on_a_shared_space_unless_allowed(tmp_path: Path, monkeypatch) -> None:
    from assistant.config import Settings, load_settings
    from assistant.service import Service
    from assistant.train.jobs import TrainRequest

    monkeypatch.setenv("SPACE_ID", "someone/lora-mixer")
    service = Service(Settings(lora_dirs=(str(tmp_path),), cache_dir=str(tmp_path / "cache")))
    with pytest.raises(TrainingError, match="LORA_MIXER_ALLOW_TRAINING=1"):
        service.prepare_training([], TrainRequest(name="x"))
    monkeypatch.setenv("LORA_MIXER_ALLOW_TRAINING", "1")
    assert load_settings("/nonexistent.yaml").training_allowed is True
