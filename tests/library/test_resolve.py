"""Name resolution: exact → case-insensitive → alias → relative path → did-you-mean; search."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.errors import AmbiguousLoraName, LibraryError, LoraNotFound
from assistant.library import Library
from assistant.types import LoraInfo

from . import lorafiles as lf

ScanFn = Callable[..., Library]


def _info(name: str, **fields: object) -> LoraInfo:
    return LoraInfo(name=name, path=f"/loras/{name}.safetensors", **fields)  # type: ignore[arg-type]


@pytest.fixture
def demo() -> Library:
    return Library.from_infos(
        [
            _info("catgirl_v1", aliases=("catgirl",), kind="character", triggers=("catgirl", "cat ears")),
            _info("catgirl_v2", kind="character", triggers=("catgirl",)),
            _info("Cyberpunk_Style", kind="style", base="sd15", notes="neon city look"),
            _info("watercolor_xl", kind="style", base="sdxl"),
            _info("add_detail", kind="concept", aliases=("detail_tweaker",)),
            _info("broken_one", status="broken", problem="truncated"),
            _info("猫娘_v1", kind="character"),
            _info("🐱cat", kind="other"),
        ]
    )


def test_exact_case_insensitive_and_alias(demo: Library) -> None:
    assert demo.resolve("catgirl_v1").name == "catgirl_v1"
    assert demo.resolve("cyberpunk_style").name == "Cyberpunk_Style"
    assert demo.resolve("CATGIRL_V2").name == "catgirl_v2"
    assert demo.resolve("catgirl").name == "catgirl_v1"
    assert demo.resolve("Detail_Tweaker").name == "add_detail"
    assert demo.resolve(" catgirl_v1 ").name == "catgirl_v1"


def test_cjk_and_emoji_names(demo: Library) -> None:
    assert demo.resolve("猫娘_v1").kind == "character"
    assert demo.resolve("🐱cat").name == "🐱cat"
    with pytest.raises(LoraNotFound):
        demo.resolve("猫娘_v2x")


def test_resolve_returns_unloadable_entries_with_their_reason(demo: Library) -> None:
    info = demo.resolve("broken_one")
    assert not info.loadable
    assert info.problem == "truncated"


def test_not_found_carries_suggestions(demo: Library) -> None:
    with pytest.raises(LoraNotFound) as err:
        demo.resolve("catgrl_v1")
    assert err.value.suggestions[0] == "catgirl_v1"
    assert "Did you mean: 'catgirl_v1'" in str(err.value)
    assert err.value.name == "catgrl_v1"


def test_suggest_prefers_prefix_matches(demo: Library) -> None:
    assert demo.suggest("catgirl_v", n=2) == ["catgirl_v1", "catgirl_v2"]
    assert demo.suggest("watercolor") == ["watercolor_xl"]
    assert demo.suggest("zzzzzz") == []
    assert demo.suggest("cat", n=1) == ["catgirl"]


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "..\\..\\x",
        "a\x00b",
        "a" * 10_000,
        "",
        "   ",
        "<lora:x:1>",
        "%2e%2e",
    ],
)
def test_hostile_names_are_not_found_without_touching_the_filesystem(
    demo: Library, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins
    import os

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("resolve touched the filesystem")

    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(os, "stat", forbidden)
    monkeypatch.setattr(os, "scandir", forbidden)
    with pytest.raises(LoraNotFound) as err:
        demo.resolve(name)
    assert len(str(err.value)) < 300
    assert "\x00" not in str(err.value)
    assert demo.get(name) is None


def test_non_string_name_is_not_found(demo: Library) -> None:
    with pytest.raises(LoraNotFound):
        demo.resolve(None)  # type: ignore[arg-type]
    assert demo.get(42) is None  # type: ignore[arg-type]


def test_duplicate_aliases_are_ambiguous(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "girl_a-000010", metadata={"ss_output_name": "girl"})
    lf.write_kohya(lora_dir, "girl_b-000010", metadata={"ss_output_name": "girl"})
    lib = scan(lora_dir)
    with pytest.raises(AmbiguousLoraName) as err:
        lib.resolve("girl")
    assert err.value.candidates == ("girl_a-000010", "girl_b-000010")
    assert isinstance(err.value, LibraryError)
    assert lib.get("girl") is None
    assert lib.resolve("girl_a-000010").aliases == ("girl",)


def test_stem_beats_another_files_alias(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir, "style")
    lf.write_kohya(lora_dir, "style_v2", metadata={"ss_output_name": "style"})
    assert scan(lora_dir).resolve("style").name == "style"


def test_same_stem_in_two_folders_is_ambiguous_and_resolvable_by_path(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir / "old", "twin")
    lf.write_kohya(lora_dir / "new", "twin")
    lib = scan(lora_dir)
    with pytest.raises(AmbiguousLoraName) as err:
        lib.resolve("twin")
    assert err.value.candidates == ("new/twin", "old/twin")
    assert lib.resolve("old/twin").path == str(lora_dir / "old" / "twin.safetensors")
    assert lib.resolve("NEW\\twin").path == str(lora_dir / "new" / "twin.safetensors")


def test_same_stem_twice_in_one_folder_names_the_files(lora_dir: Path, scan: ScanFn) -> None:
    (lora_dir / "evil.ckpt").write_bytes(b"pickle")
    (lora_dir / "evil.pt").write_bytes(b"pickle")
    with pytest.raises(AmbiguousLoraName) as err:
        scan(lora_dir).resolve("evil")
    assert err.value.candidates == ("evil.ckpt (refused)", "evil.pt (refused)")


def test_one_loadable_among_duplicates_wins(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir / "a", "dup")
    (lora_dir / "b").mkdir()
    lf.write_html(lora_dir / "b", "dup")
    assert scan(lora_dir).resolve("dup").status == "ok"


def test_cjk_file_names_on_disk(lora_dir: Path, scan: ScanFn) -> None:
    lf.write_kohya(lora_dir / "角色", "猫娘_v1")
    lf.write_kohya(lora_dir, "Ärger_Stil")
    lib = scan(lora_dir)
    assert lib.resolve("猫娘_v1").status == "ok"
    assert lib.resolve("角色/猫娘_v1").name == "猫娘_v1"
    assert lib.resolve("ärger_stil").name == "Ärger_Stil"


def test_search_filters(demo: Library) -> None:
    assert [i.name for i in demo.search("cat")] == ["catgirl_v1", "catgirl_v2", "🐱cat"]
    assert [i.name for i in demo.search("NEON")] == ["Cyberpunk_Style"]
    assert [i.name for i in demo.search(kind="style")] == ["Cyberpunk_Style", "watercolor_xl"]
    assert [i.name for i in demo.search(kind="style", base="sdxl")] == ["watercolor_xl"]
    assert len(demo.search()) == len(demo)
    with pytest.raises(LibraryError, match="unknown kind 'styles'; use one of: character"):
        demo.search(kind="styles")
    with pytest.raises(LibraryError, match="unknown base"):
        demo.search(base="sd3")


def test_all_and_loadable_are_sorted(demo: Library) -> None:
    names = [i.name for i in demo.all()]
    assert names == sorted(names, key=str.casefold)
    assert "broken_one" in names
    assert "broken_one" not in [i.name for i in demo.loadable()]
    assert len(demo) == 8


def test_from_infos_refresh_returns_itself_and_is_truthy_when_empty() -> None:
    empty = Library.from_infos([])
    assert empty.refresh() is empty
    assert bool(empty)
    assert len(empty) == 0


def test_did_you_mean_in_a_large_library() -> None:
    infos = [_info(f"style_{i:05d}") for i in range(3000)] + [_info("catgirl_v1"), _info("cyberpunk_style")]
    lib = Library.from_infos(infos)
    assert lib.suggest("catgrl_v1") == ["catgirl_v1"]
    assert lib.suggest("cyberpunk_stlye")[0] == "cyberpunk_style"
    assert lib.suggest("style_0001", n=2) == ["style_00010", "style_00011"]


def test_full_width_and_decomposed_names_resolve() -> None:
    import unicodedata

    lib = Library.from_infos([_info("catgirl_v1"), _info("Ärger_Stil"), _info("猫娘_v1")])
    assert lib.resolve("ｃａｔｇｉｒｌ＿ｖ１").name == "catgirl_v1"  # typed with a full-width IME
    assert lib.resolve(unicodedata.normalize("NFD", "ärger_stil")).name == "Ärger_Stil"
    assert lib.resolve("猫娘＿Ｖ１").name == "猫娘_v1"
    assert [i.name for i in lib.search("ＣＡＴ")] == ["catgirl_v1"]
