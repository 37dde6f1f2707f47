"""A real Ray cluster on this machine's loopback, for tests and bench/cluster.py: a head (`ray start --head`) and
worker nodes (`ray start --address`), each with its own temp dir and a resource label of its own; a node is killed
like a machine that dies (its raylet and every process under it, SIGKILL), the cluster stopped by killing its
processes (never `ray stop`, which would stop every Ray on the machine).

The nodes' workers import `tests.*` (PYTHONPATH is the repository), so a Crew factory defined here reaches them
by reference: `scripted_crew` and `slow_scripted_crew` (the model: scripted; the tool: `count_words`, real).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from smolcrew.backends import ScriptedModel
from smolcrew.config import Settings
from smolcrew.crew import Crew
from tests.conftest import code
from tests.smolcrew.test_service import NoRouterCrew

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
NOTE = "alpha beta gamma delta epsilon"
"""What the language specialist counts: 5 words."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalRayCluster:
    """Nodes started with `ray start`, named `head`, `b`, `c`, ...; each node `X` but the head has resource `node_X`."""

    def __init__(self, *, health_period_ms: int = 500) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_health_check_period_ms": str(health_period_ms),  # a dead node is noticed in ~2 s, not ~30 s
            "RAY_health_check_timeout_ms": str(health_period_ms),
            "RAY_health_check_failure_threshold": "4",
        }
        self.nodes: list[str] = []

    def __repr__(self) -> str:
        return f"LocalRayCluster({self.address}, nodes={self.nodes})"

    def start_node(self, name: str, *, cpus: float = 1, resources: dict[str, float] | None = None) -> None:
        """Start node `name` (`head` first) with `cpus` CPUs and, besides `node_<name>`, `resources`."""
        common = ["--temp-dir", str(self.root / name), "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
        common += ["--num-cpus", str(cpus), "--object-store-memory", str(80 * 1024 * 1024)]
        if name == "head":
            args = ["--head", "--port", str(self.port), "--include-dashboard", "false"]
            args += ["--ray-client-server-port", str(_free_port()), "--dashboard-agent-listen-port", str(_free_port())]
        else:
            labels = json.dumps({f"node_{name}": 1, **(resources or {})})
            args = ["--address", self.address, "--resources", labels]
            args += ["--dashboard-agent-listen-port", str(_free_port())]
        done = subprocess.run([RAY, "start", *args, *common], env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"ray start {name} failed: {done.stderr[-2000:]}")
        self.nodes.append(name)

    def _processes(self, name: str | None = None) -> list[Any]:
        import psutil

        folder = str(self.root / name) if name else str(self.root)
        found = []
        for process in psutil.process_iter(["cmdline"]):
            if any(folder + "/" in part or part.endswith(folder) for part in process.info["cmdline"] or []):
                found.append(process)
                found.extend(process.children(recursive=True))
        return found

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's raylet and everything under it, as if its machine died."""
        for process in self._processes(name):
            try:
                process.send_signal(signal.SIGKILL)
            except Exception:  # gone already
                continue
        self.nodes.remove(name)

    def stop(self) -> None:
        import ray

        ray.shutdown()
        for process in self._processes():
            try:
                process.send_signal(signal.SIGKILL)
            except Exception:  # gone already
                continue
        time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)


def reply(messages: list[dict[str, Any]], *, pause_s: float = 0.0) -> str:
    """The manager delegates a count to the language specialist, which calls `count_words` and answers."""
    system = str(messages[0]["content"])
    if "count_words" in system:  # the language specialist lists its tools; the manager lists its team
        time.sleep(pause_s)
        return code(f'counted = count_words(text="{NOTE}")\nfinal_answer(str(counted["words"]) + " words")')
    return code('r = language(task="Count the words of the note.")\nfinal_answer(r)')


PASSAGE = " ".join(
    f"Sentence {n} of the field report notes that the {('north', 'east', 'south', 'west')[n % 4]} gate "
    f"stayed closed while {n * 3} crates were counted twice."
    for n in range(30)
)
"""What the language specialist summarises in `summarizing_crew`: 400 sentences."""


def summarize_reply(messages: list[dict[str, Any]]) -> str:
    """As `reply`, but the language specialist summarises `PASSAGE` (`summarize_text`, extractive: MiniLM on the
    CPU), a tool call that keeps one core busy for a while."""
    if "summarize_text" in str(messages[0]["content"]):
        return code(f'summary = summarize_text(text="{PASSAGE}", max_sentences=1)\nfinal_answer(summary["summary"])')
    return code('r = language(task="Summarise the field report.")\nfinal_answer(r)')


def summarizing_crew(settings: Settings) -> Crew:
    return NoRouterCrew(settings, model=ScriptedModel(summarize_reply))


def answering_crew(settings: Settings) -> Crew:
    """The manager answers at once: a run with no tool, to time what the engine itself adds."""
    return NoRouterCrew(settings, model=ScriptedModel(lambda messages: code('final_answer("ok")')))


def scripted_crew(settings: Settings) -> Crew:
    return NoRouterCrew(settings, model=ScriptedModel(reply))


def slow_scripted_crew(settings: Settings) -> Crew:
    """As `scripted_crew`, with a specialist step that takes 1.5 s (time to kill its node in the middle)."""
    return NoRouterCrew(settings, model=ScriptedModel(lambda messages: reply(messages, pause_s=1.5)))
