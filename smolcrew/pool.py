"""PipelinePool: every model a tool uses is loaded here, once, on first use.

Keyed by (task, model, device, dtype). Two threads asking for the same pipeline load it once. fp16 on CUDA.
With a memory budget, the least recently used pipelines are dropped when a new one pushes the total over it.
Loads, hits, misses, evictions and each pipeline's parameter bytes are counted. Tools never load models
themselves.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from smolcrew.errors import ModelUnavailableError
from smolcrew.manifest import is_available_offline, manifest, resolve_source

__all__ = ["PipelineKey", "PipelinePool", "PoolStats", "cpu_threads"]


class PipelineKey(NamedTuple):
    task: str
    model: str
    device: str
    dtype: str


@dataclass
class PoolStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    load_seconds: dict[PipelineKey, float] = field(default_factory=dict)
    resident_bytes: dict[PipelineKey, int] = field(default_factory=dict)
    """Parameter and buffer bytes of each pipeline now loaded."""

    def __repr__(self) -> str:
        mib = sum(self.resident_bytes.values()) / 2**20
        return f"PoolStats(hits={self.hits}, misses={self.misses}, evictions={self.evictions}, resident={mib:.1f} MiB)"


def _members(obj: Any) -> list[Any]:
    """The attribute values of a loaded object: a tuple's items, `vars()`, or its slots."""
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "__dict__"):
        return list(vars(obj).values())
    slots = [name for cls in type(obj).__mro__ for name in getattr(cls, "__slots__", ())]
    return [getattr(obj, name, None) for name in slots]


def resident_bytes(pipeline: Any) -> int:
    """Bytes of torch parameters and buffers held by a pipeline or model bundle (one attribute level deep;
    diffusers components too). Models outside torch (CTranslate2) are not counted."""
    try:
        import torch
    except ImportError:
        return 0
    candidates = [pipeline, *_members(pipeline)]
    components = getattr(pipeline, "components", None)  # diffusers pipelines
    if isinstance(components, dict):
        candidates += list(components.values())
    seen: set[int] = set()
    total = 0
    for module in candidates:
        if not isinstance(module, torch.nn.Module):
            continue
        for tensor in (*module.parameters(), *module.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


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


def cpu_threads(concurrent_runs: int = 1) -> int:
    """The cores each of `concurrent_runs` runs may compute on (at least one)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, usable // max(1, concurrent_runs))


def _size_torch_threads(threads: int | None) -> None:
    """Give torch `threads` intra-op threads (default `cpu_threads()`) if a loader has imported it: loaders
    that run without torch (espeak-ng, CTranslate2) do not pay for importing it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    wanted = threads or cpu_threads()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


class PipelinePool:
    """Lazily loaded, shared pipelines.

    Args:
        device: `auto`, `cpu`, `cuda` or `mps` (auto picks the best one torch sees, when torch is first needed).
        overrides: role -> model id or local folder, replacing the manifest's default (config `models`).
        budget_mb: keep the loaded pipelines' parameters under this many MiB, dropping the least recently
            used; None keeps everything. The pipeline just loaded is never dropped, even if alone over budget.
        threads: torch's intra-op threads, set when the first pipeline loads; None: `cpu_threads()`.
        remote: role -> an object that stands in for the role's pipeline, served elsewhere (Ray Serve in cluster
            mode, smolcrew/deployments.py); `get` returns it and loads nothing.
    """

    def __init__(
        self,
        *,
        device: str = "auto",
        overrides: dict[str, str] | None = None,
        budget_mb: float | None = None,
        threads: int | None = None,
        remote: dict[str, Any] | None = None,
    ) -> None:
        self.remote = dict(remote or {})
        self.budget_bytes = None if budget_mb is None else int(budget_mb * 2**20)
        self.threads = threads
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

    def can_load(self, role: str) -> bool:
        """True when `role`'s model is here (a package, a local folder, the HF cache) or the Hub is reachable:
        a tool whose model cannot load is not offered to the agents (see `Specialist.build_tools`)."""
        from smolcrew.gguf import hub_reachable

        model = self.model_for(role)
        if is_available_offline(model):
            return True
        looks_local = model.startswith(("packaged:", "/", ".", "~")) or Path(model).drive != ""
        return not looks_local and hub_reachable()

    def loaded(self) -> list[PipelineKey]:
        with self._lock:
            return list(self._pipelines)

    def get(self, role: str) -> Any:
        """The pipeline for `role` (see tools.manifest), loading it on first use.

        Raises:
            ModelUnavailableError: the model cannot be found or loaded; the message says how to get it.
        """
        if role in self.remote:
            return self.remote[role]
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
                self.stats.resident_bytes[key] = resident_bytes(pipeline)
                self._evict_over_budget(keep=key)
            return pipeline

    def _evict_over_budget(self, *, keep: PipelineKey) -> None:
        """Drop least recently used pipelines until the total fits the budget (caller holds the lock)."""
        if self.budget_bytes is None:
            return
        dropped = False
        while sum(self.stats.resident_bytes.values()) > self.budget_bytes:
            victim = next((key for key in self._pipelines if key != keep), None)
            if victim is None:
                break
            del self._pipelines[victim]
            self.stats.resident_bytes.pop(victim, None)
            self.stats.evictions += 1
            dropped = True
        if dropped and self._device == "cuda":
            import torch

            torch.cuda.empty_cache()

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
        except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
            if not isinstance(exc, MemoryError) and "out of memory" not in str(exc).lower():
                raise
            raise ModelUnavailableError(
                f"loading {key.model!r} for role {role!r} ran out of memory",
                backend="pool",
                fix="lower `pool.budget_mb`, close other programs, or pick a smaller model in `models`",
            ) from exc
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(
                f"model {key.model!r} for role {role!r} could not be loaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]})",
                backend="pool",
                fix=f"download it while online, or set `models.{role}` in smolcrew.toml to a local folder",
            ) from exc
        _size_torch_threads(self.threads)  # before the first inference, once the loader has imported torch
        self.stats.load_seconds[key] = time.perf_counter() - started
        return pipeline

    def clear(self) -> None:
        """Drop every loaded pipeline (they are garbage-collected when no tool holds them)."""
        with self._lock:
            self._pipelines.clear()
            self.stats.resident_bytes.clear()
