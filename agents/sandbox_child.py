"""The child side of the sandboxed executor (agents/sandbox.py): run by path, inside bubblewrap, as
`python -I sandbox_child.py`. It runs agents' code with smolagents' own interpreter (LocalPythonExecutor's
`evaluate_python_code`) and knows the tools only by name: calling one sends the arguments to the host, which
runs the real tool and sends back the result. Nothing of the host (no Tool, agent, recorder, pool or Path) is
here to reach.

Protocol: one JSON object per line; the host writes to our stdin, we answer on the stdout we were started
with (the code's own prints are captured by the interpreter; `sys.stdout` is pointed at stderr).
  host -> child: {"op": "tools", "names": [...]}, {"op": "vars", "vars": {...}}, {"op": "reset"},
                 {"op": "run", "code": "...", "cpu_s": N}, {"op": "result", "value": ...} | {"op": "result",
                 "error": {"type": "...", "message": "..."}}
  child -> host: {"op": "ready"}, {"op": "call", "name": ..., "args": [...], "kwargs": {...}},
                 {"op": "done", "output": ..., "logs": "...", "final": bool},
                 {"op": "failed", "type": "...", "message": "...", "logs": "..."}

Only the standard library and smolagents' interpreter are imported: `smolagents/__init__` pulls in the Hub
client, models and tools (1.2 s here); the interpreter itself needs none of it (`Tool` is only a type hint in
it), so the package is entered without its `__init__` (0.2 s).
"""

from __future__ import annotations

import importlib.util
import json
import resource
import sys
import types
from typing import Any

_PROTOCOL_OUT = sys.stdout
"""The host's pipe; `main` points `sys.stdout` elsewhere so that nothing but the protocol reaches it."""


def _interpreter() -> Any:
    spec = importlib.util.find_spec("smolagents")
    if spec is None or spec.submodule_search_locations is None:
        raise SystemExit("smolagents is not importable in the sandbox")
    package = types.ModuleType("smolagents")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["smolagents"] = package
    tools = types.ModuleType("smolagents.tools")
    tools.Tool = type("Tool", (), {})  # type: ignore[attr-defined]
    sys.modules["smolagents.tools"] = tools
    from smolagents import local_python_executor

    return local_python_executor


def _send(message: dict[str, Any]) -> None:
    _PROTOCOL_OUT.write(json.dumps(message, default=_plain) + "\n")
    _PROTOCOL_OUT.flush()


def _receive() -> dict[str, Any]:
    line = sys.stdin.readline()
    if not line:
        raise SystemExit(0)  # the host went away
    message: dict[str, Any] = json.loads(line)
    return message


def _plain(value: Any) -> Any:
    """What JSON cannot carry is sent as text (the host only shows it to the model)."""
    for name in ("tolist", "item"):
        method = getattr(value, name, None)
        if callable(method):
            try:
                return method()
            except (TypeError, ValueError):
                pass
    return str(value)


_ERRORS: dict[str, type[Exception]] = {}


def _error(name: str) -> type[Exception]:
    """An exception class named like the host's (ToolInputError...): the model reads the same message."""
    if not name.isidentifier():
        name = "ToolError"
    if name not in _ERRORS:
        _ERRORS[name] = type(name, (Exception,), {})
    return _ERRORS[name]


def _proxy(name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        _send({"op": "call", "name": name, "args": list(args), "kwargs": kwargs})
        reply = _receive()
        if "error" in reply:
            raise _error(str(reply["error"].get("type")))(str(reply["error"].get("message")))
        return reply.get("value")

    call.__name__ = name
    return call


def _limit_cpu(seconds: float) -> None:
    """At most `seconds` more CPU time for this step: past it the kernel stops the process (SIGXCPU/SIGKILL),
    even inside a builtin that holds the GIL."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    soft = int(spent + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def main() -> None:
    sys.stdout = sys.stderr
    interpreter = _interpreter()
    authorized = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
    max_print = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    tools: dict[str, Any] = {}
    state: dict[str, Any] = {"__name__": "__main__"}
    custom: dict[str, Any] = {}
    _send({"op": "ready"})
    while True:
        message = _receive()
        op = message.get("op")
        if op == "tools":
            tools = {name: _proxy(name) for name in message["names"]}
        elif op == "vars":
            state.update(message["vars"])
        elif op == "reset":
            state.clear()
            state["__name__"] = "__main__"
            custom.clear()
        elif op == "run":
            _limit_cpu(float(message.get("cpu_s", 30)))
            try:
                output, final = interpreter.evaluate_python_code(
                    message["code"],
                    static_tools={**tools, **interpreter.BASE_PYTHON_TOOLS.copy()},
                    custom_tools=custom,
                    state=state,
                    authorized_imports=list(set(interpreter.BASE_BUILTIN_MODULES) | set(authorized)),
                    max_print_outputs_length=max_print,
                    timeout_seconds=None,  # the host keeps the wall clock; the kernel the CPU time
                )
            except Exception as exc:  # the code failed: the model reads why
                logs = str(state.get("_print_outputs", ""))
                _send({"op": "failed", "type": type(exc).__name__, "message": str(exc), "logs": logs})
            else:
                _send({"op": "done", "output": output, "logs": str(state.get("_print_outputs", "")), "final": final})


if __name__ == "__main__":
    main()
