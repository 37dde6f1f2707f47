"""Agents' code out of process, under bubblewrap: the executor a crew's agents run their steps with.

smolagents' LocalPythonExecutor interprets model-written code in the host process, next to the live tools, the
agents, the run's recorder and the pool: code could reach them by attribute (`tool.workspace.root`, an agent's
`slot.current.tool_calls`) and read files, skip an approval or switch off the audit trail. A builtin holding the
GIL (`sum(range(3*10**9))`) was never stopped, and nothing capped memory.

`SandboxedExecutor` runs the same interpreter (agents/sandbox_child.py) in a child process that bubblewrap
confines: no network (every namespace unshared), no new processes (a seccomp filter refuses fork and
clone without CLONE_THREAD, so a fork bomb stops at its first fork, even when running as root, where RLIMIT_NPROC
does not apply), a read-only view of what Python needs (the interpreter's and the
venv's folders, /usr, /lib), the runs folder as the only writable place, and nothing of the crew's home (keys,
journal, audit log). The child knows each tool and each specialist only by name: a call sends its arguments
to the host, which runs the real tool (recording it, as always) and sends back the result as JSON. Limits: CPU
seconds per step (the kernel's RLIMIT_CPU, which stops a builtin too), address space and file size (rlimits),
a wall clock that kills the child's process group (time spent in the host's tools does not count), and a cap on
the tool calls one step may make, so that a loop cannot flood the host.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from smolagents.local_python_executor import CodeOutput, InterpreterError, LocalPythonExecutor, PythonExecutor

from smolcrew.config import SandboxSettings
from smolcrew.errors import ConfigError

__all__ = [
    "OpaqueLocalExecutor",
    "SandboxLimits",
    "SandboxedExecutor",
    "bwrap_command",
    "executors_for",
    "sandbox_problem",
]

_CHILD = Path(__file__).with_name("sandbox_child.py")


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    cpu_s: float = 30.0
    """CPU seconds one step's code may use (its own, not the tools')."""
    wall_s: float = 60.0
    """Wall-clock seconds one step's code may run between tool calls."""
    memory_mb: int = 2048
    """Address space of the child process."""
    file_mb: int = 64
    """Largest file the child may write."""
    tool_calls: int = 200
    """Tool calls one step's code may make."""


@cache
def sandbox_problem() -> str | None:
    """Why bubblewrap cannot confine code here (not installed, no user namespaces...), or None when it can."""
    binary = shutil.which("bwrap")
    if binary is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    try:
        done = subprocess.run(
            [binary, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not start ({exc})"
    if done.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {done.stderr.decode(errors='replace').strip()[:200]}"
    try:
        no_new_processes()
    except (ImportError, OSError, RuntimeError) as exc:
        return f"the seccomp filter cannot be built ({exc}); install libseccomp2 (`make system-deps`)"
    return None


_CLONE_THREAD = 0x00010000


@cache
def no_new_processes() -> bytes:
    """A seccomp program (BPF, for bubblewrap's `--seccomp`) that lets the sandboxed process run threads but
    never start a process: fork, vfork and clone without CLONE_THREAD fail with EPERM; clone3, whose flags a
    filter cannot read, fails with ENOSYS, so the C library falls back to clone."""
    import pyseccomp

    program = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in ("fork", "vfork"):
        program.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
    program.add_rule(pyseccomp.ERRNO(errno.EPERM), "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, _CLONE_THREAD, 0))
    program.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as exported:
        program.export_bpf(exported)
        exported.seek(0)
        return exported.read()


def _seccomp_pipe() -> int:
    """A file descriptor bubblewrap reads the filter from (it is small enough for a pipe's buffer)."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as writer:
        writer.write(no_new_processes())
    return read_end


class OpaqueLocalExecutor(LocalPythonExecutor):
    """smolagents' in-process interpreter (`sandbox.executor = "local"`), handed each tool and agent as a plain
    function that calls it: code can call a tool but not reach its attributes (the workspace, the recorder), and
    the interpreter refuses the dunders (`__closure__`, `__globals__`) that would lead back to it."""

    def send_tools(self, tools: dict[str, Any]) -> None:
        super().send_tools({name: _opaque(name, tool) for name, tool in tools.items()})


def _opaque(name: str, tool: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return tool(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def executors_for(sandbox: SandboxSettings, runs: Path, home: Path) -> Callable[[], PythonExecutor]:
    """What makes each agent's executor under these settings: a sandbox whose one writable folder is `runs` and
    which never sees `home`, or for `executor = "local"` smolagents' in-process interpreter with opaque tools.
    Raises ConfigError when bubblewrap cannot confine code here and the settings did not ask for in-process code."""
    if sandbox.executor == "local":
        return lambda: OpaqueLocalExecutor([])
    problem = sandbox_problem()
    if problem is not None:
        raise ConfigError(
            f"the agents' code cannot be confined: {problem}; install bubblewrap (`make system-deps`), or set "
            '`sandbox.executor = "local"` to run it in this process (only for models you trust)',
            field="sandbox.executor",
        )
    limits = SandboxLimits(sandbox.cpu_s, sandbox.wall_s, sandbox.memory_mb, sandbox.file_mb, sandbox.tool_calls)
    return lambda: SandboxedExecutor([], writable=runs, hidden=[home], limits=limits)


def _readable() -> list[Path]:
    """What Python needs to read: the system's libraries, the interpreter and the venv, the child script."""
    import smolagents

    wanted = [Path("/usr"), Path("/lib"), Path("/lib64"), Path("/bin"), Path("/etc/ld.so.cache")]
    wanted += [Path(sys.base_prefix), Path(sys.prefix), Path(smolagents.__file__).parent.parent, _CHILD]
    return [path for path in dict.fromkeys(wanted) if path.exists()]


def bwrap_command(writable: Path, hidden: Iterable[Path], *, seccomp_fd: int | None = None) -> list[str]:
    """The bubblewrap command line that starts the child with `writable` as its only writable folder and the
    `hidden` folders (the crew's home) out of view even where they lie inside a readable one; with `seccomp_fd`
    (from `_seccomp_pipe`), the child cannot start processes."""
    command = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
    if seccomp_fd is not None:
        command += ["--seccomp", str(seccomp_fd)]
    command += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # first: a venv may live under /tmp
    readable = _readable()
    for path in readable:
        if path.is_symlink():  # /bin -> usr/bin on merged-/usr systems
            command += ["--symlink", os.readlink(path), str(path)]
        else:
            command += ["--ro-bind", str(path), str(path)]
    for path in hidden:
        if path.is_dir() and any(path.is_relative_to(root) for root in readable if root.is_dir()):
            command += ["--tmpfs", str(path)]
    command += ["--bind", str(writable), str(writable), "--chdir", str(writable)]
    command += ["--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8"]
    return command


def _jsonable(value: Any) -> Any:
    """A tool's result as JSON can carry it: Paths and other objects as text, numpy values as numbers."""
    return json.loads(json.dumps(value, default=lambda item: getattr(item, "tolist", lambda: str(item))()))


class SandboxedExecutor(PythonExecutor):
    """A smolagents executor whose code runs in a bubblewrap-confined child (see the module docstring)."""

    def __init__(
        self,
        additional_authorized_imports: Sequence[str],
        *,
        writable: Path,
        hidden: Sequence[Path] = (),
        limits: SandboxLimits | None = None,
        max_print_outputs_length: int = 50_000,
    ) -> None:
        self.authorized_imports = list(additional_authorized_imports)
        self.writable = writable
        self.hidden = tuple(hidden)
        self.limits = limits or SandboxLimits()
        self.max_print_outputs_length = max_print_outputs_length
        self.state: dict[str, Any] = {}
        """Only `_print_outputs` of the last step (smolagents reads it when a step fails)."""
        self._callables: dict[str, Callable[..., Any]] = {}
        self._variables: dict[str, Any] = {}
        self._child: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        running = self._child is not None and self._child.poll() is None
        return f"SandboxedExecutor(writable={str(self.writable)!r}, {self.limits}, running={running})"

    # --- smolagents' executor interface --------------------------------------------------------------------

    def send_tools(self, tools: Mapping[str, Any]) -> None:
        self._callables = dict(tools)
        if self._child is not None:
            self._write({"op": "tools", "names": sorted(self._callables)})

    def send_variables(self, variables: Mapping[str, Any]) -> None:
        plain = {key: _jsonable(value) for key, value in variables.items()}
        self._variables.update(plain)
        if self._child is not None:
            self._write({"op": "vars", "vars": plain})

    def reset(self) -> None:
        """Forget every variable of the previous run."""
        self._variables.clear()
        self.state.clear()
        if self._child is not None and self._child.poll() is None:
            self._write({"op": "reset"})

    def __call__(self, code_action: str) -> CodeOutput:
        self._ensure_child()
        self._write({"op": "run", "code": code_action, "cpu_s": self.limits.cpu_s})
        calls = 0
        while True:
            message = self._read(self.limits.wall_s)
            op = message.get("op")
            if op == "call":
                calls += 1
                if calls > self.limits.tool_calls:
                    self._stop()
                    raise InterpreterError(
                        f"the code made more than {self.limits.tool_calls} tool calls in one step and was stopped; "
                        "the step's variables are lost"
                    )
                self._write(self._call(message))
            elif op == "done":
                self.state["_print_outputs"] = message.get("logs", "")
                return CodeOutput(
                    output=message.get("output"),
                    logs=str(message.get("logs", "")),
                    is_final_answer=bool(message["final"]),
                )
            elif op == "failed":
                self.state["_print_outputs"] = message.get("logs", "")
                raise InterpreterError(str(message.get("message")))
            else:
                self._stop()
                raise InterpreterError(f"the sandboxed code sent an unknown message {op!r}; it was stopped")

    def cleanup(self) -> None:
        self._stop()

    def __del__(self) -> None:
        self._stop()

    # --- the child ---------------------------------------------------------------------------------------

    def _ensure_child(self) -> None:
        if self._child is not None and self._child.poll() is None:
            return
        self.writable.mkdir(parents=True, exist_ok=True)
        limits = self.limits
        seccomp = _seccomp_pipe()
        command = bwrap_command(self.writable, self.hidden, seccomp_fd=seccomp)
        command += [sys.executable, "-I", str(_CHILD), json.dumps(self.authorized_imports)]
        command += [str(self.max_print_outputs_length)]

        def confine() -> None:  # in the child, before bubblewrap starts: inherited by the interpreter
            memory = limits.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * 1024 * 1024,) * 2)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        try:
            self._child = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=(seccomp,),
                preexec_fn=confine,  # only setrlimit: safe between fork and exec
                start_new_session=True,
            )
        finally:
            os.close(seccomp)
        ready = self._read(30.0)
        if ready.get("op") != "ready":
            self._stop()
            raise InterpreterError(f"the code sandbox did not start (it said {ready!r})")
        self._write({"op": "tools", "names": sorted(self._callables)})
        if self._variables:
            self._write({"op": "vars", "vars": self._variables})

    def _call(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Run the tool the child asked for, here in the host; its result (or error) goes back as JSON."""
        name = str(message.get("name"))
        function = self._callables.get(name)
        if function is None:
            return {"op": "result", "error": {"type": "NameError", "message": f"no tool named {name!r}"}}
        try:
            value = function(*message.get("args", []), **message.get("kwargs", {}))
        except Exception as exc:  # the tool refused or failed: the code (and the model) see why
            return {"op": "result", "error": {"type": type(exc).__name__, "message": str(exc)}}
        return {"op": "result", "value": _jsonable(value)}

    def _write(self, message: Mapping[str, Any]) -> None:
        child = self._child
        if child is None or child.stdin is None:
            raise InterpreterError("the code sandbox is not running")
        try:
            child.stdin.write(json.dumps(message).encode() + b"\n")
            child.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self._stop()
            raise InterpreterError(f"the code sandbox stopped ({exc})") from exc

    def _read(self, timeout: float) -> dict[str, Any]:
        child = self._child
        if child is None or child.stdout is None:
            raise InterpreterError("the code sandbox is not running")
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            if not selector.select(max(0.0, deadline - time.monotonic())):
                self._stop()
                raise InterpreterError(
                    f"the code exceeded the maximum execution time of {timeout:g} s and was stopped; "
                    "do less in one step"
                )
        line = child.stdout.readline()
        if not line:
            code = child.wait(timeout=5)
            self._child = None
            raise InterpreterError(_death(code, self.limits))
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            self._stop()
            raise InterpreterError(
                f"the code sandbox sent something that is not a message ({line[:80]!r}); it was stopped and the "
                "step's variables are lost"
            )
        return message

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is None or child.poll() is not None:
            return
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            child.kill()
        child.wait(timeout=5)


def _death(code: int, limits: SandboxLimits) -> str:
    if code in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return (
            f"the code used more than its {limits.cpu_s:g} CPU seconds and was stopped; the step's variables are "
            "lost; do less in one step"
        )
    return f"the code sandbox stopped (exit code {code}); the step's variables are lost"
