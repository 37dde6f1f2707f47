"""PipelinePool: every model a tool uses is loaded here, once, on first use.

Keyed by (task, model, device, dtype). Two threads asking for the same pipeline load it once. Loads are
timed and counted. `fp16` is used on CUDA. Tools never load models themselves.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from smolcrew.errors import ModelUnavailableError
from tools.manifest import manifest, resolve_source

__all__ = ["PipelineKey", "PipelinePool", "PoolStats"]


class PipelineKey(NamedTuple):
    task: str
    model: str
    device: str
    dtype: str


@dataclass
class PoolStats:
    hits: int = 0
    misses: int = 0
    load_seconds: dict[PipelineKey, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"PoolStats(hits={self.hits}, misses={self.misses}, loaded={len(self.load_seconds)})"


def _transformers_pipeline(task: str) -> Callable[[str, str, str], Any]:
    def load(source: str, device: str, dtype: str) -> Any:
        from transformers import pipeline

        build: Any = pipeline  # its overloads want a literal task name; ours comes from the manifest
        return build(task, model=source, device=device, dtype=None if dtype == "auto" else dtype)

    return load


def _quiet_progress_bars() -> None:
    """transformers draws a weight-loading progress bar per model; it garbles the CLI's live output."""
    try:
        from transformers.utils import logging
    except ImportError:
        return
    logging.disable_progress_bar()


class PipelinePool:
    """Lazily loaded, shared pipelines.

    Args:
        device: `auto`, `cpu`, `cuda` or `mps` (auto picks the best one torch sees, when torch is first needed).
        overrides: role -> model id or local folder, replacing the manifest's default (config `models`).
    """

    def __init__(self, *, device: str = "auto", overrides: dict[str, str] | None = None) -> None:
        self._device_preference = device
        self._device: str | None = None
        self._overrides = dict(overrides or {})
        self._pipelines: OrderedDict[PipelineKey, Any] = OrderedDict()
        self._key_locks: dict[PipelineKey, threading.Lock] = {}
        self._lock = threading.Lock()
        self.stats = PoolStats()

    def __repr__(self) -> str:
        return f"PipelinePool(device={self._device or self._device_preference!r}, loaded={len(self._pipelines)})"

    @property
    def device(self) -> str:
        if self._device is None:
            from smolcrew.backends import resolve_device

            self._device = resolve_device(self._device_preference)
        return self._device

    def model_for(self, role: str) -> str:
        """The model id or folder that `role` uses: the config override, else the manifest's default."""
        roles = manifest()
        if role not in roles:
            raise ModelUnavailableError(
                f"unknown model role {role!r}", backend="pool", fix=f"use one of {sorted(roles)}"
            )
        return self._overrides.get(role, roles[role].default)

    def loaded(self) -> list[PipelineKey]:
        with self._lock:
            return list(self._pipelines)

    def get(self, role: str) -> Any:
        """The pipeline for `role` (see tools.manifest), loading it on first use.

        Raises:
            ModelUnavailableError: the model cannot be found or loaded; the message says how to get it.
        """
        model = self.model_for(role)
        task = manifest()[role].task
        device = self.device
        dtype = "float16" if device == "cuda" else "auto"
        key = PipelineKey(task, model, device, dtype)
        with self._lock:
            if key in self._pipelines:
                self._pipelines.move_to_end(key)
                self.stats.hits += 1
                return self._pipelines[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._pipelines:
                    self.stats.hits += 1
                    return self._pipelines[key]
            pipeline = self._load(key, role)
            with self._lock:
                self._pipelines[key] = pipeline
                self.stats.misses += 1
            return pipeline

    def _load(self, key: PipelineKey, role: str) -> Any:
        source = resolve_source(key.model)
        loader = manifest()[role].loader or _transformers_pipeline(key.task)
        _quiet_progress_bars()
        started = time.perf_counter()
        try:
            pipeline = loader(source, key.device, key.dtype)
        except ImportError as exc:
            raise ModelUnavailableError(
                f"the {role!r} model needs a package that is not installed: {exc}",
                backend="pool",
                fix="pip install torch==2.13.0 'smolcrew[ml]'",
            ) from exc
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(
                f"model {key.model!r} for role {role!r} could not be loaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]})",
                backend="pool",
                fix=f"download it while online, or set `models.{role}` in smolcrew.toml to a local folder",
            ) from exc
        self.stats.load_seconds[key] = time.perf_counter() - started
        return pipeline

    def clear(self) -> None:
        """Drop every loaded pipeline (they are garbage-collected when no tool holds them)."""
        with self._lock:
            self._pipelines.clear()
