"""Agents' code in a bubblewrap-confined child: tools are names that call the host, and the known ways out of
smolagents' interpreter (host objects by attribute, CPU-bound builtins, memory bombs, files, the network) end in
a clear error while the host's tools keep working."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smolagents.local_python_executor import InterpreterError

from smolcrew.agents.sandbox import (
    SandboxedExecutor,
    SandboxLimits,
    _seccomp_pipe,
    bwrap_command,
    sandbox_problem,
)

pytestmark = pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}")


class Secrets:
    """A host object that must stay out of reach: what a tool instance or an agent looks like to the code."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.tool_calls = ["needs approval"]

    def __call__(self, x: int) -> dict[str, Any]:
        return {"value": x * 2, "where": self.home}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    (folder / "keys").mkdir(parents=True)
    (folder / "keys" / "audit-ed25519.pem").write_text("PRIVATE KEY")
    return folder


@pytest.fixture
def executor(tmp_path: Path, home: Path) -> Iterator[SandboxedExecutor]:
    running = SandboxedExecutor(
        ["json"],
        writable=tmp_path / "runs",
        hidden=[home],
        limits=SandboxLimits(cpu_s=2, wall_s=4, memory_mb=1024, file_mb=1),
    )
    running.send_tools({"double": Secrets(home), "final_answer": lambda answer: answer})
    yield running
    running.cleanup()


def test_tools_run_in_the_host_and_their_results_come_back_as_plain_values(executor: SandboxedExecutor) -> None:
    first = executor("r = double(x=21)\nprint('working')\nr")
    assert first.output["value"] == 42 and isinstance(first.output["where"], str)  # a Path arrives as text
    assert first.logs == "working\n" and not first.is_final_answer
    assert executor("r['value'] + 1").output == 43  # variables live on between steps
    final = executor("final_answer(r['value'])")
    assert final.is_final_answer and final.output == 42
    executor.reset()
    with pytest.raises(InterpreterError, match="r"):
        executor("r")  # a new run starts with no variables


@pytest.mark.parametrize(
    "code",
    [
        "double.home",  # the attribute that read any file through a tool instance
        "double.tool_calls.clear()",  # the approval bypass
        "double.__self__",
        "double.__closure__",
        "double.__globals__",
        "import os",
        "open('/etc/passwd').read()",
        "__import__('subprocess')",
        "getattr(double, '__globals__')",  # CVE-2025-5120: getattr past the dunder check
        "().__class__.__base__.__subclasses__()",  # CVE-2025-9959: the class hierarchy to subprocess.Popen
        "import ctypes",  # smolagents issue 2094: ctypes missing from the blocklist
        "import multiprocessing",  # a fork bomb's ways in
        "import pty",
        "import posix",
        "[x for x in (1,)].__class__.__mro__",
    ],
)
def test_host_objects_and_escapes_are_out_of_reach(executor: SandboxedExecutor, code: str) -> None:
    with pytest.raises(InterpreterError):
        executor(code)
    assert executor("double(x=1)['value']").output == 2  # the sandbox still works afterwards


def test_a_cpu_bound_builtin_is_stopped_by_the_kernel(tmp_path: Path, home: Path) -> None:
    busy = SandboxedExecutor([], writable=tmp_path / "runs", hidden=[home], limits=SandboxLimits(cpu_s=1, wall_s=120))
    busy.send_tools({})
    try:
        started = time.monotonic()
        with pytest.raises(InterpreterError, match="CPU seconds"):
            busy("sum(range(3 * 10**9))")  # holds the GIL: no thread-based timeout can stop it
        assert time.monotonic() - started < 60
        assert busy("1 + 1").output == 2  # a fresh child takes over
    finally:
        busy.cleanup()


def test_a_memory_bomb_fails_in_the_child(executor: SandboxedExecutor) -> None:
    with pytest.raises(InterpreterError, match="MemoryError"):
        executor("x = 'a' * (1500 * 1024**2)")


def test_the_wall_clock_stops_code_that_sleeps_in_a_builtin(tmp_path: Path, home: Path) -> None:
    slow = SandboxedExecutor(["time"], writable=tmp_path / "runs", hidden=[home], limits=SandboxLimits(wall_s=1))
    slow.send_tools({})
    try:
        with pytest.raises(InterpreterError, match="maximum execution time"):
            slow("import time\ntime.sleep(30)")
    finally:
        slow.cleanup()


def test_a_slow_tool_does_not_count_against_the_wall_clock(tmp_path: Path, home: Path) -> None:
    def wait(seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    patient = SandboxedExecutor([], writable=tmp_path / "runs", hidden=[home], limits=SandboxLimits(wall_s=1))
    patient.send_tools({"wait": wait})
    try:
        assert patient("wait(seconds=1.5)").output == "done"
    finally:
        patient.cleanup()


def test_tool_errors_keep_their_name_for_the_model(tmp_path: Path, home: Path) -> None:
    from smolcrew.errors import ToolInputError

    def refuse(path: str) -> str:
        raise ToolInputError(f"no file at {path}")

    strict = SandboxedExecutor([], writable=tmp_path / "runs", hidden=[home])
    strict.send_tools({"refuse": refuse})
    try:
        with pytest.raises(InterpreterError, match=r"ToolInputError: no file at x\.csv"):
            strict("refuse(path='x.csv')")
    finally:
        strict.cleanup()


def test_the_view_has_no_home_no_network_and_one_writable_folder(tmp_path: Path, home: Path) -> None:
    """bubblewrap's own confinement, checked with a plain shell in the same view (the interpreter would refuse
    these before the kernel does)."""
    import subprocess

    runs = tmp_path / "runs"
    runs.mkdir()
    command = bwrap_command(runs, [home])

    def shell(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, "/bin/sh", "-c", script], capture_output=True, text=True, timeout=20)

    assert shell(f"cat {home}/keys/audit-ed25519.pem").returncode != 0
    assert shell(f"touch {runs}/ok && echo written").stdout.strip() == "written"
    shell(f"mkdir -p {tmp_path} && touch {tmp_path}/outside")  # /tmp in there is the sandbox's own
    assert not (tmp_path / "outside").exists()
    assert shell("touch /usr/evil").returncode != 0
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"
        import sys

        assert shell(f'{sys.executable} -I -c "{probe}"').returncode != 0  # no network in the sandbox


def test_a_fork_bomb_stops_at_its_first_fork(tmp_path: Path, home: Path) -> None:
    """Behind the interpreter's import block, the kernel: the sandboxed process may run threads but never start a
    process (RLIMIT_NPROC does not bind root, so a seccomp filter does it)."""
    import subprocess
    import sys

    runs = tmp_path / "runs"
    runs.mkdir()
    probe = (
        "import os, subprocess, threading\n"
        "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
        "spawn = lambda: os.posix_spawn('/bin/true', ['true'], {})\n"
        "for start in (os.fork, lambda: subprocess.run(['/bin/true']), spawn):\n"
        "    try:\n"
        "        start()\n"
        "        print('started')\n"
        "    except OSError as exc:\n"
        "        print('refused', exc.errno)\n"
    )
    seccomp = _seccomp_pipe()
    try:
        command = [*bwrap_command(runs, [home], seccomp_fd=seccomp), sys.executable, "-I", "-c", probe]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, pass_fds=(seccomp,))
    finally:
        os.close(seccomp)
    assert done.stdout.split("\n")[0] == "thread"
    assert "started" not in done.stdout and done.stdout.count("refused") == 3, done.stdout + done.stderr


def test_a_loop_of_tool_calls_cannot_flood_the_host(tmp_path: Path, home: Path) -> None:
    calls: list[int] = []
    bounded = SandboxedExecutor([], writable=tmp_path / "runs", hidden=[home], limits=SandboxLimits(tool_calls=5))
    bounded.send_tools({"note": calls.append})
    try:
        assert bounded("for i in range(5):\n    note(i)\nlen('ok')").output == 2
        with pytest.raises(InterpreterError, match="more than 5 tool calls"):
            bounded("while True:\n    note(0)")
        assert len(calls) == 10
        assert bounded("note(1)") is not None  # the next step starts a fresh child
    finally:
        bounded.cleanup()


def test_a_child_that_garbles_the_protocol_is_stopped_with_a_clear_error(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    impostor = tmp_path / "child.py"
    impostor.write_text("print('Traceback (most recent call last):')\n")
    monkeypatch.setattr("smolcrew.agents.sandbox._CHILD", impostor)
    garbled = SandboxedExecutor([], writable=tmp_path / "runs", hidden=[home])
    try:
        with pytest.raises(InterpreterError, match=r"not a message .*Traceback"):
            garbled("1")
        assert garbled._child is None
    finally:
        garbled.cleanup()
