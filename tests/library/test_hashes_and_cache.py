"""Hashes exactly as A1111/Civitai compute them (lazy, cached on disk) and the scan index cache."""

from __future__ import annotations

import hashlib
import marshal
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.errors import LibraryError, LoraNotFound
from assistant.library import Hashes, Library
from assistant.library import cache as cache_module
from assistant.library import hashing as hashing_module
from assistant.library import scan as scan_module

from . import lorafiles as lf

ScanFn = Callable[..., Library]


def _expected(path: Path) -> Hashes:
    """A1111's modules/hashes.py addnet_hash_safetensors: sha256 of the bytes after 8 + n."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    addnet = hashlib.sha256(data[8 + n :]).hexdigest()
    whole = hashlib.sha256(data).hexdigest()
    return Hashes(a1111=addnet[:12], autov2=whole[:10], sha256=whole, addnet=addnet)


def test_hashes_match_a1111_and_civitai(lora_dir: Path, scan: ScanFn) -> None:
    path = lf.write_kohya(lora_dir, "hashme", tags={"x": {"a": 1}})
    hashes = scan(lora_dir).hashes("hashme")
    assert hashes == _expected(path)
    assert len(hashes.a1111) == 12
    assert len(hashes.autov2) == 10
    assert len(hashes.sha256) == 64


def test_a1111_hash_ignores_metadata_but_autov2_does_not(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "one", metadata={"ss_training_comment": "first"})
    lf.write_kohya(lora_dir, "two", metadata={"ss_training_comment": "second, edited"})
    lib = scan(lora_dir)
    one, two = lib.hashes("one"), lib.hashes("two")
    assert one.a1111 == two.a1111  # same tensors (same seed)
    assert one.autov2 != two.autov2


def test_hashes_are_never_computed_by_a_scan(
    lora_dir: Path, scan: ScanFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    lf.write_kohya(lora_dir, "lazy")
    calls: list[str] = []
    real = hashing_module._file_hashes
    monkeypatch.setattr(hashing_module, "_file_hashes", lambda info: calls.append(info.name) or real(info))
    lib = scan(lora_dir)
    lib.refresh()
    assert calls == []
    lib.hashes("lazy")
    lib.hashes("lazy")
    assert calls == ["lazy"]


def test_hash_cache_on_disk_is_reused_and_invalidated(
    lora_dir: Path, scan: ScanFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = lf.write_kohya(lora_dir, "cached")
    first = scan(lora_dir).hashes("cached")
    assert (tmp_path / "cache" / "lora-hashes.json").is_file()

    def boom(info: object) -> tuple[str, str]:
        raise AssertionError("hash recomputed despite a valid cache entry")

    monkeypatch.setattr(hashing_module, "_file_hashes", boom)
    assert scan(lora_dir).hashes("cached") == first  # a new Library instance, same disk cache
    monkeypatch.undo()

    lf.write_kohya(lora_dir, "cached", seed=7)  # new content, new size/mtime
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    second = scan(lora_dir).hashes("cached")
    assert second == _expected(path)
    assert second != first


def test_hashes_of_unknown_or_broken_entries(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_html(lora_dir, "page")
    lib = scan(lora_dir)
    with pytest.raises(LibraryError, match="cannot hash 'page': it is broken"):
        lib.hashes("page")
    with pytest.raises(LoraNotFound):
        lib.hashes("nope")


def test_hashes_by_info_and_foreign_info(lora_dir: Path, tmp_path: Path, scan: ScanFn) -> None:
    path = lf.write_kohya(lora_dir, "mine")
    lib = scan(lora_dir)
    assert lib.hashes(lib.resolve("mine")) == _expected(path)
    foreign = lf.write_kohya(tmp_path / "elsewhere", "theirs")
    other = Library.scan([str(tmp_path / "elsewhere")], catalog=None).resolve("theirs")
    with pytest.raises(LibraryError, match="not part of this library"):
        lib.hashes(other)
    assert foreign.exists()


def test_hashes_without_cache_dir_write_nothing(lora_dir: Path, tmp_path: Path, scan: ScanFn) -> None:
    path = lf.write_kohya(lora_dir, "nocache")
    lib = scan(lora_dir, cache=False)
    assert lib.hashes("nocache") == _expected(path)
    assert not (tmp_path / "cache").exists()


def test_hashes_of_from_infos_entries(tmp_path: Path) -> None:
    path = lf.write_kohya(tmp_path, "free")
    info = Library.scan([str(tmp_path)], catalog=None).resolve("free")
    assert Library.from_infos([info]).hashes("free") == _expected(path)


# -- scan index -------------------------------------------------------------------------------


def test_warm_scan_reads_no_headers(
    lora_dir: Path, scan: ScanFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        lf.write_kohya(lora_dir, f"lora_{i}", tags={"x": {f"tag{i}": 3}})
    lf.write_a1111_sidecar(lora_dir, "lora_0", activation_text="card")
    lf.write_html(lora_dir, "broken")
    cold = scan(lora_dir)
    index_files = list((tmp_path / "cache").glob("lora-index-*.marshal"))
    assert len(index_files) == 1

    def boom(*_args: object) -> dict[str, object]:
        raise AssertionError("a warm scan re-read a header or sidecar")

    monkeypatch.setattr(scan_module, "_header_facts", boom)
    monkeypatch.setattr(cache_module, "_header_facts", boom)
    monkeypatch.setattr(scan_module, "_a1111_sidecar_facts", boom)
    monkeypatch.setattr(scan_module, "_merge", boom)
    monkeypatch.setattr(cache_module, "_load_marshal", _only_hot(cache_module._load_marshal))
    warm = scan(lora_dir)
    assert [i.name for i in warm.all()] == [i.name for i in cold.all()]
    assert warm.all() == cold.all()  # metadata is read lazily, from the facts file


def _only_hot(load):  # type: ignore[no-untyped-def]
    """A _load_marshal that refuses the facts file while the scan runs (a warm scan reads only the
    hot index); afterwards lazy metadata may read it."""
    import inspect

    def wrapped(file):  # type: ignore[no-untyped-def]
        if file is not None and file.name.startswith("lora-facts-"):
            callers = {frame.function for frame in inspect.stack()[1:6]}
            assert "scan" not in callers, "a warm scan loaded the facts file"
        return load(file)

    return wrapped


def test_changed_file_is_re_read(lora_dir: Path, scan: ScanFn) -> None:
    path = lf.write_kohya(lora_dir, "changing")
    assert scan(lora_dir).resolve("changing").status == "ok"
    path.write_bytes(b"<html>oops</html>")
    assert scan(lora_dir).resolve("changing").status == "broken"


def test_changed_sidecar_is_re_read(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "card")
    sidecar = lf.write_a1111_sidecar(lora_dir, "card", activation_text="first")
    assert scan(lora_dir).resolve("card").triggers == ("first",)
    lf.write_a1111_sidecar(lora_dir, "card", activation_text="second, edited")
    os.utime(sidecar, ns=(2_000_000_000, 2_000_000_000))
    assert scan(lora_dir).resolve("card").triggers == ("second", "edited")


def test_corrupt_index_is_ignored(lora_dir: Path, scan: ScanFn, tmp_path: Path) -> None:
    lf.write_kohya(lora_dir, "fine")
    scan(lora_dir)
    (index,) = (tmp_path / "cache").glob("lora-index-*.marshal")
    index.write_bytes(b"{garbage")
    assert scan(lora_dir).resolve("fine").status == "ok"
    assert marshal.loads(index.read_bytes())["entries"]


def test_removed_file_leaves_the_index(lora_dir: Path, scan: ScanFn, tmp_path: Path) -> None:
    path = lf.write_kohya(lora_dir, "temp")
    lf.write_kohya(lora_dir, "stays")
    scan(lora_dir)
    path.unlink()
    lib = scan(lora_dir)
    assert [i.name for i in lib.all()] == ["stays"]
    (index,) = (tmp_path / "cache").glob("lora-index-*.marshal")
    assert str(path) not in marshal.loads(index.read_bytes())["entries"]


def test_refresh_returns_a_new_library(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "first")
    lib = scan(lora_dir)
    lf.write_kohya(lora_dir, "second")
    fresh = lib.refresh()
    assert fresh is not lib
    assert [i.name for i in lib.all()] == ["first"]
    assert [i.name for i in fresh.all()] == ["first", "second"]
    assert fresh.cache_dir == lib.cache_dir


def test_catalog_edit_invalidates_cached_entries(lora_dir: Path, scan: ScanFn, tmp_path: Path) -> None:
    lf.write_kohya(lora_dir, "styled")
    catalog = tmp_path / "loras.yaml"
    catalog.write_text("loras:\n  styled:\n    preferred_weight: 0.4\n", encoding="utf-8")
    assert scan(lora_dir, catalog=catalog).resolve("styled").preferred_weight == 0.4
    catalog.write_text("loras:\n  styled:\n    preferred_weight: 0.9\n    base: sd15\n", encoding="utf-8")
    info = scan(lora_dir, catalog=catalog).resolve("styled")
    assert info.preferred_weight == 0.9
    assert info.base_source == "catalog (agrees with metadata ss_base_model_version 'sd_v1')"
    assert scan(lora_dir).resolve("styled").preferred_weight is None


def test_preview_added_later_is_found_on_a_warm_scan(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "pic")
    assert scan(lora_dir).resolve("pic").preview is None
    (lora_dir / "pic.preview.jpeg").write_bytes(b"jpg")
    (lora_dir / "pic.webp").write_bytes(b"webp")
    # A1111's order: by extension (png, jpg, jpeg, webp, gif), <stem>.<ext> before <stem>.preview.<ext>
    assert scan(lora_dir).resolve("pic").preview == str(lora_dir / "pic.preview.jpeg")


def test_unchanged_warm_scan_does_not_rewrite_the_index(lora_dir: Path, scan: ScanFn, tmp_path: Path) -> None:
    lf.write_kohya(lora_dir, "steady")
    lf.write_a1111_sidecar(lora_dir, "steady", activation_text="x")
    lf.write_civitai_info(lora_dir, "steady", trained_words=["y"])
    scan(lora_dir)
    (index,) = (tmp_path / "cache").glob("lora-index-*.marshal")
    os.utime(index, ns=(5, 5))
    lib = scan(lora_dir)
    assert index.stat().st_mtime_ns == 5
    assert lib.resolve("steady").triggers == ("y",)
    assert lib.resolve("steady").metadata["ss_output_name"] == "steady"


def test_refresh_reuses_unchanged_entries(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "same")
    changing = lf.write_kohya(lora_dir, "changing")
    lf.write_kohya(lora_dir, "card")
    lib = scan(lora_dir)
    before = {i.name: i for i in lib.all()}
    changing.write_bytes(b"<html>replaced</html>")
    lf.write_a1111_sidecar(lora_dir, "card", activation_text="new trigger")
    fresh = lib.refresh()
    assert fresh.resolve("same") is before["same"]
    assert fresh.resolve("changing").status == "broken"
    assert fresh.resolve("card") is not before["card"]
    assert fresh.resolve("card").triggers == ("new trigger",)


def test_refresh_keeps_the_hash_cache(lora_dir: Path, scan: ScanFn, monkeypatch: pytest.MonkeyPatch) -> None:
    lf.write_kohya(lora_dir, "h")
    lib = scan(lora_dir, cache=False)
    first = lib.hashes("h")
    monkeypatch.setattr(hashing_module, "_file_hashes", lambda info: (_ for _ in ()).throw(AssertionError))
    assert lib.refresh().hashes("h") == first


def test_warm_metadata_survives_a_lost_facts_file(lora_dir: Path, scan: ScanFn, tmp_path: Path) -> None:
    lf.write_kohya(lora_dir, "meta")
    scan(lora_dir)
    for facts in (tmp_path / "cache").glob("lora-facts-*.marshal"):
        facts.unlink()
    info = scan(lora_dir).resolve("meta")
    assert dict(info.metadata)["ss_base_model_version"] == "sd_v1"
    assert info == scan(lora_dir, cache=False).resolve("meta")


def test_warm_entries_copy_pickle_and_serialise(lora_dir: Path, scan: ScanFn) -> None:
    import copy
    import pickle

    from assistant.library import info_to_dict

    lf.write_kohya(lora_dir, "warm")
    scan(lora_dir)
    info = scan(lora_dir).resolve("warm")
    assert info_to_dict(info)["metadata"]["ss_output_name"] == "warm"
    assert copy.deepcopy(info) == info
    assert pickle.loads(pickle.dumps(info)).metadata == {**info.metadata}


def test_embedded_kohya_hash_is_what_a1111_writes(lora_dir: Path, scan: ScanFn) -> None:
    embedded = "ab" * 32
    path = lf.write_kohya(lora_dir, "kohya_hashed", metadata={"sshs_model_hash": embedded.upper()})
    hashes = scan(lora_dir).hashes("kohya_hashed")
    assert hashes.a1111 == _expected(path).a1111
    assert hashes.embedded == embedded
    assert hashes.infotext == "abababababab"
    lf.write_kohya(lora_dir, "plain")
    plain = scan(lora_dir).hashes("plain")
    assert plain.infotext == plain.a1111


def test_a_catalog_base_that_contradicts_the_file_wins_but_says_so(
    lora_dir: Path, scan: ScanFn, tmp_path: Path
) -> None:
    lf.write_sdxl(lora_dir, "xl_style")  # lora_te2_ keys, 2048-wide cross-attention
    catalog = tmp_path / "loras.yaml"
    catalog.write_text("loras:\n  xl_style:\n    base: sd15\n", encoding="utf-8")
    info = scan(lora_dir, catalog=catalog).resolve("xl_style")
    assert info.base == "sd15"  # the catalog is the user's word
    assert info.base_source.startswith("catalog (overrides ")
    assert info.base_source.endswith(", which says sdxl)")
    assert "the catalog says base sd15 but the file's" in info.problem


def test_one_file_has_one_lora_hash_in_generate_ab_and_sweep(lora_dir: Path, scan: ScanFn) -> None:
    """A/B and sweep cells wrote the file hash (``a1111``) where Generate wrote A1111's infotext
    hash (the embedded ``sshs_model_hash`` when there is one); all now go through with_hashes."""
    from assistant import blend
    from assistant.library import with_hashes
    from assistant.types import GenerationRequest, PlannedLora

    lf.write_kohya(lora_dir, "plain")
    lf.write_kohya(lora_dir, "kohya_hashed", metadata={"sshs_model_hash": "ab" * 32})
    library = scan(lora_dir)
    plain = library.resolve("plain")
    base = GenerationRequest(
        prompt="1girl, <lora:plain:0.6>", loras=(PlannedLora("plain", plain.path, 0.6),), seed=1
    )

    def hashed(plan: blend.Plan) -> set[str]:
        plan = plan.map_loras(lambda loras: with_hashes(loras, library))
        cells = plan.cells
        return {lora.hash for cell in cells for lora in cell.request.loras if lora.name == "kohya_hashed"}

    swapped = blend.ab(base, "plain", "kohya_hashed", variants=("a", "b"), library=library)
    assert {lora.hash for cell in swapped.cells for lora in cell.request.loras} == {""}  # plans stay pure
    swept = blend.sweep(base, blend.parse_axis("kohya_hashed=0.2,0.4"), library=library)
    as_generated = with_hashes((PlannedLora("kohya_hashed", plain.path, 0.5),), library)[0].hash
    assert as_generated == library.hashes("kohya_hashed").infotext == "abababababab"
    assert hashed(swapped) == hashed(swept) == {as_generated}
    assert with_hashes(base.loras, library)[0].hash == library.hashes("plain").a1111
    assert with_hashes((PlannedLora("gone", "/nowhere.safetensors", 1.0),), library)[0].hash == ""
