"""A store's client in a child process, so its CPU work never runs in the agent's process.

Embedded Chroma does its work in the caller's process: MiniLM embeddings (torch), the client's validation of every
record and the Rust index. In the agent's process that work competes with the agent's thread for the GIL and the
cores, and the mirror's listener, which must return quickly, waits behind it. `WorkerProcess` runs one object (made
by a factory, e.g. a `ChromaSink`) in a long-lived child Python process and calls its methods over a socket; the
parent's share of a call is pickling the arguments and the result.

Contract:
- Lazy: nothing is spawned until the first `call`; importing this module imports nothing heavy.
- `call` returns the method's result, or raises: `SinkWorkerError` when the child died, hung past the timeout or
  could not start (it is killed; the next call starts a new one, so a lane catching up from the journal gets
  its steps written); the method's own `SinkError` (and subclasses) or `ModelUnavailableError` as raised there;
  any other exception of the method as `SinkError` naming its type. A child found dead before a call (killed
  while idle) is replaced within that call: nothing was sent, nothing is lost.
- The child runs with `threads` torch/BLAS threads at `niceness` lower CPU priority, so a busy machine schedules
  the agent first. It exits when the parent closes it, dies, or exits.
- Thread-safe: one call at a time. `close()` stops the child; a closed worker raises `SinkWorkerError`.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ModelUnavailableError, SinkError, SinkUnavailableError, SinkWorkerError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["WorkerProcess", "serve"]

_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); import smolcrew.memory.worker as w; "
    "w.serve(int(sys.argv[2]), sys.argv[3])"
)
"""The child's command line. Not multiprocessing's spawn: that re-runs the parent's main script in the child,
which breaks (or repeats the work of) any script without an `if __name__ == "__main__":` guard."""
_ROOT = str(Path(__file__).parents[__name__.count(".")])
"""The folder holding the `smolcrew` package: the child imports this very code, whatever its working folder (and
only through `smolcrew.`, never as a bare `memory` package)."""


def _failure(exc: BaseException) -> tuple[str, str, str, str, str]:
    return ("error", type(exc).__name__, str(exc), str(getattr(exc, "fix", "")), str(getattr(exc, "sink", "")))


def serve(fd: int, config: str) -> None:
    """The child's main: build the target, say ready, then run each `(method, args, kwargs)` request until None
    or EOF (the parent closed or died). `config` is JSON: factory ("module:function"), kwargs, threads, niceness."""
    options = json.loads(config)
    threads = str(int(options["threads"]))
    # Before torch is imported: its thread pools and the tokenizers' pool size themselves from these.
    os.environ.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, TOKENIZERS_PARALLELISM="false")
    if options["niceness"] > 0:
        os.nice(int(options["niceness"]))  # the agent's process keeps its priority; this one yields the cores
    conn = Connection(fd)
    try:
        module, name = str(options["factory"]).split(":")
        target = getattr(importlib.import_module(module), name)(**options["kwargs"])
    except BaseException as exc:  # reported to the parent, which raises it there
        conn.send(_failure(exc))
        return
    conn.send(("ready",))
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            if request is None:
                return
            method, args, kwargs = request
            try:
                conn.send(("ok", getattr(target, method)(*args, **kwargs)))
            except Exception as exc:  # the method failed; the child serves on
                conn.send(_failure(exc))
    finally:
        with suppress(Exception):
            target.close()


class WorkerProcess:
    """One object, made by `factory(**kwargs)` in a child Python process, whose methods `call` runs there.

    Args:
        factory: "module:function" importable in the child; `kwargs` must be JSON-serialisable.
        sink: the store's name, for errors (`.sink`) and messages.
        threads: torch and BLAS threads in the child; 1 leaves the other cores to the agent.
        niceness: how much lower the child's CPU priority is (0 keeps it; Linux and macOS).
        timeout_s: most seconds one call may take before the child counts as hung and is killed.
        start_timeout_s: most seconds a fresh child may take to import and build its object.
    """

    def __init__(
        self,
        factory: str,
        kwargs: dict[str, Any] | None = None,
        *,
        sink: str,
        threads: int = 1,
        niceness: int = 10,
        timeout_s: float = 120.0,
        start_timeout_s: float = 120.0,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.factory = factory
        self.kwargs = dict(kwargs or {})
        self.sink = sink
        self.threads = threads
        self.niceness = niceness
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.starts = 0
        """Children started so far (1 after the first call; each restart adds one)."""
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"pid {self.pid}" if self.pid else "not started"
        return f"WorkerProcess({self.factory!r}, {state}, starts={self.starts})"

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The running child's process id; None before the first call and after a death or close."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """`method(*args, **kwargs)` on the child's object; arguments and result travel pickled."""
        with self._lock:
            conn = self._ready_connection()
            try:
                conn.send((method, args, kwargs))
                reply = self._receive(conn, self.timeout_s, method)
            except (OSError, EOFError) as exc:
                raise self._died(method, exc) from exc
        if reply[0] == "ok":
            return reply[1]
        raise self._error(reply)

    def close(self) -> None:
        """Stop the child (it finishes the call it is on). Idempotent; later calls raise `SinkWorkerError`."""
        with self._lock:
            self._closed = True
            self._stop(graceful=True)

    # -- internals

    def _ready_connection(self) -> Connection:
        """The connection to a live child, starting one if there is none (caller holds the lock)."""
        if self._closed:
            raise SinkWorkerError(f"the {self.sink} worker process was closed; open a new sink", sink=self.sink)
        if self._process is not None and self._conn is not None and self._process.poll() is None:
            return self._conn
        self._stop(graceful=False)  # a child that died while idle: reap it, start another
        ours, theirs = socket.socketpair()
        config = {"factory": self.factory, "kwargs": self.kwargs, "threads": self.threads}
        config["niceness"] = self.niceness
        try:
            process = subprocess.Popen(
                [sys.executable, "-P", "-c", _CHILD, _ROOT, str(theirs.fileno()), json.dumps(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # stderr stays: a crash's traceback goes where the agent's logs go
                pass_fds=(theirs.fileno(),),
            )
        except OSError as exc:
            ours.close()
            raise SinkWorkerError(f"the {self.sink} worker process could not start: {exc}", sink=self.sink) from exc
        finally:
            theirs.close()  # the child holds its end: EOF here when it dies
        self._process, self._conn = process, Connection(ours.detach())
        self.starts += 1
        try:
            reply = self._receive(self._conn, self.start_timeout_s, "start")
        except (OSError, EOFError) as exc:
            raise self._died("start", exc) from exc
        if reply[0] != "ready":
            self._stop(graceful=False)
            error = self._error(reply)
            if type(error) is SinkError:  # not one of ours: the child could not build its object
                raise SinkWorkerError(
                    f"the {self.sink} worker process could not start: {reply[1]}: {reply[2]}", sink=self.sink
                )
            raise error
        return self._conn

    def _receive(self, conn: Connection, timeout_s: float, doing: str) -> tuple[Any, ...]:
        """The child's next reply; a child silent for `timeout_s` is killed and reported as hung."""
        deadline = time.monotonic() + timeout_s
        while not conn.poll(min(1.0, max(0.0, deadline - time.monotonic()))):
            process = self._process
            if process is not None and process.poll() is not None:
                raise EOFError(f"the child exited with code {process.returncode}")
            if time.monotonic() >= deadline:
                pid = process.pid if process is not None else None
                self._stop(graceful=False)
                raise SinkWorkerError(
                    f"the {self.sink} worker process (pid {pid}) gave no answer to {doing} within {timeout_s:g} s "
                    "and was stopped; the next call starts a new one (the journal keeps the steps)",
                    sink=self.sink,
                )
        reply: tuple[Any, ...] = conn.recv()
        return reply

    def _died(self, doing: str, exc: BaseException) -> SinkWorkerError:
        process, code = self._process, None
        if process is not None:
            with suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=1.0)
        self._stop(graceful=False)
        return SinkWorkerError(
            f"the {self.sink} worker process (pid {process.pid if process else None}) exited with code {code} "
            f"during {doing} ({type(exc).__name__}); the next call starts a new one and the mirror catches up "
            "from the journal",
            sink=self.sink,
        )

    def _error(self, reply: tuple[Any, ...]) -> Exception:
        """The child's exception, rebuilt here (our errors take keyword context that pickling would drop)."""
        _, kind, message, fix, sink = reply
        if kind == "ModelUnavailableError":
            return ModelUnavailableError(message.split("\n  fix: ")[0], backend=f"{self.sink} worker", fix=fix)
        if kind in ("SinkUnavailableError", "SinkWorkerError"):
            return SinkUnavailableError(message, sink=sink or self.sink)
        if kind == "SinkError":
            return SinkError(message, sink=sink or self.sink)
        return SinkError(f"the {self.sink} worker process failed: {kind}: {message}", sink=self.sink)

    def _stop(self, *, graceful: bool) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            if graceful and process is not None and process.poll() is None:
                with suppress(OSError):
                    conn.send(None)
            conn.close()
        if process is None:
            return
        try:
            process.wait(timeout=5.0 if graceful else 0.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5.0)
