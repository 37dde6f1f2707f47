"""Cluster mode on a real Ray cluster on this machine (tests/cluster.py starts the nodes): runs per second with 1 vs
2 worker nodes, what the cluster path adds to a run against the local engine, and how long the runs of a node that
dies take to finish on the other node.

Runs use the scripted model (manager mode, no router) and a CPU-bound real tool: the language specialist calls
`summarize_text` (extractive: MiniLM embeddings, one torch thread per worker) on a 400-sentence report. The head
node hosts no run worker (`--num-cpus 0`); each worker node has one CPU and one `runs` slot, so N nodes run N
workers. Writes bench/results/cluster.json and prints a table.

    python bench/cluster.py --runs 40 --overhead-runs 40
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import markdown_table

RESULTS = Path(__file__).parent / "results" / "cluster.json"
QUESTION = "Summarise the field report in one sentence."


def _settings(home: Path, address: str | None, workers: int, **cluster: Any) -> Any:
    from tests.conftest import loop_settings

    namespace = "b" + uuid.uuid4().hex[:10]
    engine: dict[str, Any] = {"engine": "ray", "address": address, "namespace": namespace, "workers": workers}
    if address is None:
        engine = {}
    engine.update(cluster)
    return loop_settings(
        home=str(home),
        routing={"mode": "manager"},
        memory={"sinks": ["redis"], "namespace": namespace},
        server={"workers": workers},
        **({"cluster": engine} if engine else {}),
    )


def _end(service: Any, run_id: str) -> dict[str, Any]:
    events = list(service.events(run_id, timeout_s=300))
    if not events or events[-1].event != "run_end":
        raise RuntimeError(f"run {run_id} did not end")
    data: dict[str, Any] = events[-1].data
    return data


def _warm(service: Any, workers: int) -> None:
    """One run on every worker (each loads its Crew and MiniLM), so the timed runs find them warm."""
    from smolcrew.server.cluster import cluster_status

    for _ in range(60):
        tickets = [service.send(service.create_conversation().id, QUESTION) for _ in range(workers)]
        for ticket in tickets:
            _end(service, ticket.run_id)
        served = [w.get("served", 0) for w in cluster_status(service.settings)["workers"]]
        if all(count > 0 for count in served):
            return
    raise RuntimeError("a worker never got a run")


def throughput(nodes: int, runs: int) -> dict[str, Any]:
    from smolcrew.server.cluster import stop_workers
    from smolcrew.server.service import ChatService
    from tests.cluster import LocalRayCluster, summarizing_crew

    cluster = LocalRayCluster()
    try:
        cluster.start_node("head", cpus=0)
        for index in range(nodes):
            cluster.start_node(chr(ord("b") + index), cpus=1, resources={"runs": 1})
        home = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
        placement = {"num_cpus": 1, "resources": {"runs": 1}}
        settings = _settings(home, cluster.address, nodes, runs=placement)
        with ChatService(settings, crew_factory=summarizing_crew) as service:
            _warm(service, nodes)
            started = time.perf_counter()
            tickets = [service.send(service.create_conversation().id, QUESTION) for _ in range(runs)]
            ends = [_end(service, ticket.run_id) for ticket in tickets]
            took = time.perf_counter() - started
            stop_workers(settings)
        ok = sum(end["state"] == "success" for end in ends)
        return {"nodes": nodes, "runs": runs, "ok": ok, "seconds": round(took, 2), "runs_per_s": round(runs / took, 3)}
    finally:
        cluster.stop()


def _latencies(service: Any, runs: int) -> list[float]:
    conversation = service.create_conversation().id
    _end(service, service.send(conversation, "Warm up.").run_id)
    taken = []
    for _ in range(runs):
        started = time.perf_counter()
        _end(service, service.send(service.create_conversation().id, "Say ok.").run_id)
        taken.append((time.perf_counter() - started) * 1000)
    return taken


def overhead(runs: int) -> dict[str, Any]:
    """p50 of send -> run_end for a run with no tool, one at a time: local engine vs cluster (one worker node)."""
    from smolcrew.server.cluster import stop_workers
    from smolcrew.server.service import ChatService
    from tests.cluster import LocalRayCluster, answering_crew

    home = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    with ChatService(_settings(home / "local", None, 1), crew_factory=answering_crew) as service:
        local = _latencies(service, runs)
    cluster = LocalRayCluster()
    try:
        cluster.start_node("head", cpus=0)
        cluster.start_node("b", cpus=1, resources={"runs": 1})
        settings = _settings(home / "ray", cluster.address, 1, runs={"num_cpus": 1, "resources": {"runs": 1}})
        with ChatService(settings, crew_factory=answering_crew) as service:
            remote = _latencies(service, runs)
            stop_workers(settings)
    finally:
        cluster.stop()
    p50_local, p50_ray = statistics.median(local), statistics.median(remote)
    return {
        "runs": runs,
        "local_p50_ms": round(p50_local, 1),
        "cluster_p50_ms": round(p50_ray, 1),
        "overhead_p50_ms": round(p50_ray - p50_local, 1),
    }


def node_death(runs: int) -> dict[str, Any]:
    """Runs on 2 worker nodes; one node is killed while a run is on it; seconds until every run has ended."""
    from smolcrew.server.board import SharedRunLog
    from smolcrew.server.cluster import stop_workers
    from smolcrew.server.service import ChatService
    from tests.cluster import LocalRayCluster, slow_scripted_crew

    cluster = LocalRayCluster()
    try:
        cluster.start_node("head", cpus=0)
        cluster.start_node("b", cpus=1, resources={"runs": 1})
        cluster.start_node("c", cpus=1, resources={"runs": 1})
        home = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
        settings = _settings(home, cluster.address, 2, runs={"num_cpus": 0.5, "resources": {"runs": 0.5}})
        with ChatService(settings, crew_factory=slow_scripted_crew) as service:
            log = SharedRunLog(settings)
            tickets = [service.send(service.create_conversation().id, "How many words?") for _ in range(runs)]
            import ray

            node_b = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "node_b" in n["Resources"])
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any(
                log.get(t.run_id).status == "running" and log.get(t.run_id).node == node_b for t in tickets
            ):
                time.sleep(0.05)
            time.sleep(0.5)
            on_b = [
                t.run_id for t in tickets if log.get(t.run_id).status == "running" and log.get(t.run_id).node == node_b
            ]
            killed = time.perf_counter()
            cluster.kill_node("b")
            ends = [_end(service, t.run_id) for t in tickets]
            took = time.perf_counter() - killed
            moved = sum(log.get(run_id).node not in (None, node_b) for run_id in on_b)
            log.close()
            stop_workers(settings)
        ok = sum(end["state"] == "success" for end in ends)
        return {
            "runs": runs,
            "ok": ok,
            "running_on_the_killed_node": len(on_b),
            "of_those_finished_on_the_other_node": moved,
            "all_ended_after_kill_s": round(took, 1),
        }
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per throughput measurement")
    parser.add_argument("--overhead-runs", type=int, default=40)
    parser.add_argument("--death-runs", type=int, default=8)
    args = parser.parse_args()
    one, two = throughput(1, args.runs), throughput(2, args.runs)
    result = {
        "throughput": [one, two],
        "speedup_2_nodes": round(two["runs_per_s"] / one["runs_per_s"], 2),
        "overhead": overhead(args.overhead_runs),
        "node_death": node_death(args.death_runs),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    rows = [[str(r["nodes"]), f"{r['ok']}/{r['runs']}", f"{r['runs_per_s']:.2f}"] for r in result["throughput"]]
    print(markdown_table(["worker nodes", "ok", "runs/s"], rows))
    print(f"speed-up with 2 nodes: {result['speedup_2_nodes']}x")
    print(json.dumps({"overhead": result["overhead"], "node_death": result["node_death"]}, indent=2))


if __name__ == "__main__":
    main()
