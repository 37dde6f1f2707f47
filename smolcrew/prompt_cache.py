"""llama.cpp's prompt cache on disk: the KV state of the slot after an agent's system prompt, so that a fresh
process restores it in milliseconds instead of re-reading ~2,000 prompt tokens (~150 tokens/s on 2 cores).

How it works (one `PromptCache` per `LlamaCppModel`, called under the model's lock):

- Key: a request's *prefix key* hashes what decides the prompt's leading tokens and their KV values: the model
  (`model_fingerprint`: size plus the first and last MiB of the GGUF, so copies of one file share a cache), the
  engine (xllamacpp's version: the file format and the KV layout follow llama.cpp), `n_ctx`, and the leading
  system messages, the `tools` and the `chat_template_kwargs` of the request, exactly as sent. The user messages
  are not in the key: the saved state holds the whole first request (system prompt, task, reply) and llama.cpp
  reuses the longest common *token* prefix with the new request, which covers the system prompt and the
  chat template's boundary up to the task's first differing token. So a key only picks which file to load; a
  wrong file costs speed, never correctness (llama.cpp compares tokens before it reuses any KV).
- Before a request: if the slot holds another prefix (or nothing known) and a verified file exists for the
  key, restore it (`POST /slots/0?action=restore` on the in-process server). After a request whose key has no
  file yet: save the slot (`?action=save`) under a temporary name of this process, check it, rename it into
  place. One slot serves every agent, so switching agents in one process restores again (a few ms); what the
  slot held beyond the file (the left agent's later steps) is re-read when it comes back.
- Files: `<folder>/<key>.<sha256 prefix>.bin`. The name carries the content's hash: a restore first checks it
  (once per file and process), because llama.cpp aborts the whole process on a truncated state file. A file that
  fails the check, or that llama.cpp refuses, is deleted and the request runs cold; nothing here ever fails a
  request. Writes are temp file + rename, so a crash or a concurrent process never leaves a half file under a
  final name. The folder is kept under `max_bytes`, least recently used (restored or saved) first.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["PromptCache", "PromptCacheStats", "SlotEvent", "model_fingerprint", "prefix_key"]

log = logging.getLogger(__name__)

FORMAT = "smolcrew-prompt-cache/1"
_SUFFIX = ".bin"
_TEMP_PREFIX = "tmp-"
_STALE_TEMP_S = 3600.0
_MIB = 1 << 20

SlotEvent = Literal["none", "kept", "restored", "cold", "rejected"]
"""What the cache did before the latest request: no key (no system message, or caching off for it); `kept` the
slot already held the prefix; `restored` it from a file; `cold` no file; `rejected` a bad file (deleted)."""


def model_fingerprint(path: Path) -> str:
    """A cheap identity of a GGUF file's content: sha256 of its size, first MiB and last MiB (the header with
    the architecture, quantization and tokenizer, and the last tensors' bytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(str(size).encode())
        digest.update(handle.read(_MIB))
        handle.seek(max(0, size - _MIB))
        digest.update(handle.read(_MIB))
    return digest.hexdigest()


def _leading_system(messages: Any) -> list[Any]:
    prefix = []
    for message in messages if isinstance(messages, list) else ():
        role = message.get("role") if isinstance(message, Mapping) else None
        role = str(getattr(role, "value", role))  # smolagents sends MessageRole members
        if role not in ("system", "developer"):
            break
        prefix.append({"role": role, "content": message.get("content")})
    return prefix


def prefix_key(request: Mapping[str, Any], *, model: str, engine: str, n_ctx: int) -> str | None:
    """The request's prefix key (see the module docstring), or None when it starts with no system message."""
    system = _leading_system(request.get("messages"))
    if not system:
        return None
    material = [FORMAT, model, engine, n_ctx, system, request.get("tools"), request.get("chat_template_kwargs")]
    encoded = json.dumps(material, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * _MIB):
            digest.update(block)
    return digest.hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


@dataclass
class PromptCacheStats:
    """Counters over the cache's life in this process."""

    restores: int = 0
    restore_ms: float = 0.0
    """Total wall time of the restores, as seen from Python (HTTP hop and checks included)."""
    saves: int = 0
    save_ms: float = 0.0
    rejected: int = 0
    """Files deleted because their hash did not match or llama.cpp refused them."""
    evicted: int = 0
    errors: list[str] = field(default_factory=list)
    """The latest few problems (save failed, folder unwritable, ...), newest last."""

    def note(self, problem: str) -> None:
        log.warning("prompt cache: %s", problem)
        self.errors = [*self.errors[-9:], problem]


class PromptCache:
    """The slot's KV state on disk, per prefix key, for one in-process llama.cpp server.

    `address` is the server's `listening_address` (`http://127.0.0.1:PORT`); `folder` must be the server's
    `slot_save_path` (llama.cpp joins it to the file name). Not thread-safe: call `before`/`after` under the
    model's lock, around each chat completion.
    """

    def __init__(self, folder: Path, address: str, *, model: str, engine: str, n_ctx: int, max_bytes: int) -> None:
        self.folder = folder
        self.address = address.rstrip("/")
        self.model = model
        self.engine = engine
        self.n_ctx = n_ctx
        self.max_bytes = max_bytes
        self.stats = PromptCacheStats()
        self.last_event: SlotEvent = "none"
        self.last_key: str | None = None
        """The prefix key of the latest request (None: it had no system message)."""
        self.last_restore: dict[str, Any] = {}
        """llama.cpp's answer to the latest restore (`n_restored` tokens, `timings.restore_ms`)."""
        self._slot_key: str | None = None
        self._verified: set[tuple[str, int, int]] = set()
        self._unsaveable: set[str] = set()
        # the in-process server is on loopback: never send these calls through a configured HTTP proxy
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        folder.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"PromptCache({str(self.folder)!r}, max_bytes={self.max_bytes:,})"

    def key_for(self, request: Mapping[str, Any]) -> str | None:
        return prefix_key(request, model=self.model, engine=self.engine, n_ctx=self.n_ctx)

    # --- around one request ---------------------------------------------------------------------------------

    def before(self, request: Mapping[str, Any]) -> str | None:
        """Restore the slot for `request`'s prefix when it holds another and a file exists; return the key."""
        key = self.last_key = self.key_for(request)
        self.last_restore = {}
        if key is None or request.get("cache_prompt") is False:
            self.last_event = "none"
            return key
        if key == self._slot_key:
            self.last_event = "kept"
            return key
        name = self.lookup(key)
        if name is None:
            self.last_event = "cold"
            return key
        started = time.perf_counter()
        answer = self._slot_action("restore", name)
        if answer is None:
            self._slot_key = None  # a refused restore may have cleared the slot
            self._delete(name)
            self.stats.rejected += 1
            self.last_event = "rejected"
            return key
        self._touch(name)
        self._slot_key = key
        self.stats.restores += 1
        self.stats.restore_ms += (time.perf_counter() - started) * 1000
        self.last_restore = answer
        self.last_event = "restored"
        return key

    def after(self, key: str | None, *, ok: bool) -> None:
        """Record what the slot holds after a request; save it when its prefix has no file yet."""
        self._slot_key = key if ok else None
        if key is None or not ok or key in self._unsaveable or self.lookup(key, verify=False) is not None:
            return
        self.save(key)

    # --- files ----------------------------------------------------------------------------------------------

    def lookup(self, key: str, *, verify: bool = True) -> str | None:
        """The name of a usable file for `key`, or None; files that fail the hash check are deleted."""
        try:
            names = [n for n in os.listdir(self.folder) if n.startswith(key + ".") and n.endswith(_SUFFIX)]
        except OSError:
            return None
        for name in sorted(names, key=self._mtime, reverse=True):
            if not verify or self._check(name):
                return name
        return None

    def save(self, key: str) -> str | None:
        """Save the slot under `key` (temp file, size and hash checks, rename); return the final name."""
        temp = f"{_TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}{_SUFFIX}"
        started = time.perf_counter()
        answer = self._slot_action("save", temp)
        path = self.folder / temp
        try:
            if answer is None:
                self._unsaveable.add(key)
                return None
            size = path.stat().st_size
            if size == 0 or size != int(answer.get("n_written", -1)):
                self.stats.note(f"llama.cpp wrote {size:,} of {answer.get('n_written')} bytes for {key}")
                self._unsaveable.add(key)
                return None
            name = f"{key}.{_file_digest(path)}{_SUFFIX}"
            os.replace(path, self.folder / name)
            self._remember(name)
        except OSError as exc:
            self.stats.note(f"could not save the prompt cache for {key}: {exc}")
            self._unsaveable.add(key)
            return None
        finally:
            path.unlink(missing_ok=True)
        self.stats.saves += 1
        self.stats.save_ms += (time.perf_counter() - started) * 1000
        self.evict()
        return name

    def evict(self) -> list[str]:
        """Delete the least recently used files beyond `max_bytes`, and temp files left by dead processes."""
        entries: list[tuple[float, int, str]] = []
        now = time.time()
        try:
            names = os.listdir(self.folder)
        except OSError:
            return []
        for name in names:
            try:
                stat = (self.folder / name).stat()
            except OSError:
                continue
            if name.startswith(_TEMP_PREFIX):
                pid = name[len(_TEMP_PREFIX) :].split("-", 1)[0]
                stale = now - stat.st_mtime > _STALE_TEMP_S or (pid.isdigit() and not _pid_alive(int(pid)))
                if stale:
                    self._delete(name)
            elif name.endswith(_SUFFIX):
                entries.append((stat.st_mtime, stat.st_size, name))
        total = sum(size for _, size, _ in entries)
        removed = []
        for _, size, name in sorted(entries):
            if total <= self.max_bytes:
                break
            self._delete(name)
            total -= size
            removed.append(name)
        self.stats.evicted += len(removed)
        return removed

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob(f"*{_SUFFIX}") if not p.name.startswith(_TEMP_PREFIX))

    # --- helpers --------------------------------------------------------------------------------------------

    def _mtime(self, name: str) -> float:
        try:
            return (self.folder / name).stat().st_mtime
        except OSError:
            return 0.0

    def _identity(self, name: str) -> tuple[str, int, int] | None:
        try:
            stat = (self.folder / name).stat()
        except OSError:
            return None
        return (name, stat.st_ino, stat.st_size)

    def _remember(self, name: str) -> None:
        identity = self._identity(name)
        if identity is not None:
            self._verified.add(identity)

    def _check(self, name: str) -> bool:
        identity = self._identity(name)
        if identity is None:
            return False
        if identity in self._verified:
            return True
        expected = name.removesuffix(_SUFFIX).rsplit(".", 1)[-1]
        try:
            good = identity[2] > 0 and _file_digest(self.folder / name) == expected
        except OSError:
            return False
        if not good:
            self.stats.note(f"{name} does not match its hash; deleted")
            self.stats.rejected += 1
            self._delete(name)
            return False
        self._verified.add(identity)
        return True

    def _touch(self, name: str) -> None:
        with contextlib.suppress(OSError):  # evicted meanwhile by another process: it was read already
            os.utime(self.folder / name)

    def _delete(self, name: str) -> None:
        try:
            (self.folder / name).unlink(missing_ok=True)
        except OSError as exc:
            self.stats.note(f"could not delete {name}: {exc}")

    def _slot_action(self, action: str, name: str) -> dict[str, Any] | None:
        """POST /slots/0?action=... with the file name; llama.cpp's answer, or None (the reason is noted)."""
        request = urllib.request.Request(
            f"{self.address}/slots/0?action={action}",
            data=json.dumps({"filename": name}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._http.open(request, timeout=60) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:200]
            self.stats.note(f"llama.cpp refused to {action} {name} (HTTP {exc.code}: {detail})")
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self.stats.note(f"could not {action} {name}: {exc}")
        return None
