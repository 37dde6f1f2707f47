"""What mirroring costs the agent, and how fast a store catches up from the journal.

    python bench/memory.py [--quick] [--chroma process|in-process]

1. Mirroring cost on the agent's thread: a scripted smolagents CodeAgent runs 1,000 steps (300 with --quick)
   whose step callbacks feed a RunRecorder; its listener is a `Mirror(journal, [redis, chroma, graph])`. Timed:
   each call of the listener (the journal append with fsync, then handing the record to the three lanes), while
   the lanes write in their threads. Shown as p50/p99 in ms and as a share of an embedded-model step (1.0 s and
   5.0 s, the measured range). Goal: p99 ≤ 1% of a 1.0 s step. For reference: the listener of a journal-only
   mirror (no lanes: the fsync alone), and the same run without a mirror: the time from one step callback to
   the next (a bare smolagents step with a scripted model; it grows with the run, as ScriptedModel converts
   every message of the growing history on each call).
2. Catch-up from the journal: 2,000 records (500 with --quick) journaled, then `Mirror(journal, [sink]).sync()`
   timed per sink, in a fresh namespace; records/s. Goal for the graph: ≥ 1,000/s.

Stores: a redis-server started for the bench on a free port, ArcadeDB with Bolt (tests/memory/arcadedb.py),
embedded Chroma with the packaged MiniLM. `--chroma process` (the default deployment, as memory/stores.py opens
it) runs Chroma and MiniLM in a worker process (`ChromaProcessSink`); `--chroma in-process` runs a `ChromaSink`
in the bench's own process, as before, for comparison (run the two back to back: the machine's load moves the
tail). Writes bench/results/memory.json (`memory-in-process.json` for the comparison).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STEP_SECONDS = (1.0, 5.0)
GOAL_SHARE = 0.01
GOAL_GRAPH_RPS = 1_000.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms),
        "max_ms": max(ms),
    }


def agent_run(steps: int, listener: Callable[[Any], None] | None) -> tuple[float, list[float], Any]:
    """A scripted `steps`-step run; returns wall seconds, callback-to-callback intervals, the recorder."""
    from smolcrew.memory.recorder import RunRecorder
    from tests.memory.test_faults import run_scripted_agent

    stamps: list[float] = []

    def stamp(record: Any) -> None:
        stamps.append(time.perf_counter())

    listeners: list[Callable[[Any], None]] = [stamp] + ([listener] if listener else [])
    recorder = RunRecorder(f"bench-{uuid.uuid4().hex[:8]}", known=set(), listeners=listeners)
    start = time.perf_counter()
    run_scripted_agent(recorder, steps)
    wall = time.perf_counter() - start
    assert len(recorder.records) == steps and not recorder.listener_errors, recorder.listener_errors
    return wall, [b - a for a, b in itertools.pairwise(stamps)], recorder


def mirroring_cost(steps: int, sinks: list[Any], folder: Path) -> dict[str, Any]:
    from smolcrew.memory.mirror import Mirror
    from smolcrew.memory.sinks.journal import JournalSink

    bare_wall, bare_steps, _ = agent_run(steps, None)
    journal_only = Mirror(JournalSink(folder / "journal-only"), [], state_dir=folder / "state-only")
    alone: list[float] = []

    def timed_alone(record: Any) -> None:
        start = time.perf_counter()
        journal_only(record)
        alone.append(time.perf_counter() - start)

    agent_run(steps, timed_alone)
    journal_only.close()
    journal = JournalSink(folder / "journal-a")
    mirror = Mirror(journal, sinks, state_dir=folder / "state-a")
    inside: list[float] = []

    def timed(record: Any) -> None:
        start = time.perf_counter()
        mirror(record)
        inside.append(time.perf_counter() - start)

    wall, mirrored_steps, recorder = agent_run(steps, timed)
    start = time.perf_counter()
    flushed = mirror.close(timeout_s=300)
    drain = time.perf_counter() - start
    complete = {sink.name: len(sink.read(recorder.run_id)) for sink in sinks}
    cost = summary_ms(inside)
    return {
        "steps": steps,
        "listener": cost,
        "share_of_step": {
            f"{s:g}s": {"p50": cost["p50_ms"] / (s * 1000), "p99": cost["p99_ms"] / (s * 1000)} for s in STEP_SECONDS
        },
        "journal_only_listener": summary_ms(alone),
        "bare_step": summary_ms(bare_steps),
        "bare_run_s": bare_wall,
        "mirrored_step": summary_ms(mirrored_steps),
        "mirrored_run_s": wall,
        "drain_after_run_s": drain,
        "flushed": flushed,
        "stored": complete,
        "lanes": [vars(lane) for lane in mirror.status()],
    }


def catch_up(count: int, sinks: list[Any], folder: Path) -> dict[str, Any]:
    from smolcrew.memory.mirror import Mirror
    from smolcrew.memory.sinks.journal import JournalSink
    from tests.memory.sink_contract import make_records

    journal = JournalSink(folder / "journal-b")
    run_id = f"catchup-{uuid.uuid4().hex[:8]}"
    records = make_records(run_id, count)
    start = time.perf_counter()
    for first in range(0, count, 100):
        journal.write(records[first : first + 100])
    journal_s = time.perf_counter() - start
    results: dict[str, Any] = {"records": count, "journal_write_s": journal_s}
    for sink in sinks:
        mirror = Mirror(journal, [sink], state_dir=folder / f"state-b-{sink.name}")
        start = time.perf_counter()
        written = mirror.sync(timeout_s=600)
        seconds = time.perf_counter() - start
        mirror.close()
        stored = len(sink.read(run_id))
        results[sink.name] = {
            "written": written[sink.name],
            "stored": stored,
            "seconds": seconds,
            "records_per_s": count / seconds,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 steps and 500 records")
    parser.add_argument(
        "--chroma", choices=("process", "in-process"), default="process", help="where Chroma and MiniLM run"
    )
    args = parser.parse_args()
    steps, count = (300, 500) if args.quick else (1_000, 2_000)

    from smolcrew.memory.sinks.chroma import ChromaSink, minilm_embedder
    from smolcrew.memory.sinks.chroma_process import ChromaProcessSink
    from smolcrew.memory.sinks.graph import GraphSink
    from smolcrew.memory.sinks.redis import RedisSink
    from smolcrew.pool import PipelinePool
    from tests.memory.arcadedb import graph_server
    from tests.memory.test_faults import RedisServer

    folder = Path(tempfile.mkdtemp(prefix="smolcrew-bench-memory-"))
    started = time.perf_counter()
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, folder, True)
        program = shutil.which("redis-server")
        if program is None:
            sys.exit("redis-server is not installed: apt-get install -y redis-server")
        redis_server = RedisServer(folder / "redis", program)
        redis_server.start()
        stack.callback(redis_server.kill)
        graph = stack.enter_context(graph_server())
        embed = minilm_embedder(PipelinePool(device="cpu")) if args.chroma == "in-process" else None
        if embed is not None:
            embed(["warm up"])  # load the model before the run, not inside the lane's first batch

        def chroma(ns: str) -> Any:
            if embed is not None:
                return stack.enter_context(ChromaSink.embedded(folder / "chroma", namespace=ns, embed=embed))
            sink = stack.enter_context(ChromaProcessSink(path=folder / "chroma", namespace=ns))
            sink.search("warm up")  # start the worker and load its model before the run
            return sink

        def open_sinks(tag: str) -> list[Any]:
            ns = f"bench{tag}{uuid.uuid4().hex[:6]}"
            sinks: list[Any] = [
                stack.enter_context(RedisSink.from_url(redis_server.url, namespace=ns)),
                chroma(ns),
                stack.enter_context(
                    GraphSink.from_url(
                        graph.uri, user=graph.user, password=graph.password, database=graph.database, namespace=ns
                    )
                ),
            ]
            for sink in sinks:
                sink.setup()
            return sinks

        cost = mirroring_cost(steps, open_sinks("a"), folder)
        catch = catch_up(count, open_sinks("b"), folder)
    total = time.perf_counter() - started

    print(
        f"\n## Mirroring cost on the agent's thread ({steps}-step scripted CodeAgent run, 3 lanes attached, "
        f"Chroma and MiniLM {'in a worker process' if args.chroma == 'process' else 'in process'})\n"
    )
    print("| measure | p50 ms | p99 ms | mean ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for label, key in (
        ("inside the listener (journal fsync + 3 lanes)", "listener"),
        ("inside the listener, journal only (no lanes)", "journal_only_listener"),
        ("step, mirrored (callback to callback)", "mirrored_step"),
        ("step, bare smolagents, no mirror", "bare_step"),
    ):
        row = cost[key]
        print(f"| {label} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {row['mean_ms']:.3f} | {row['max_ms']:.3f} |")
    print("\n| share of an embedded-model step | p50 | p99 | goal |")
    print("|---|---:|---:|---|")
    for seconds in STEP_SECONDS:
        share = cost["share_of_step"][f"{seconds:g}s"]
        ok = "met" if share["p99"] <= GOAL_SHARE else "MISSED"
        print(f"| {seconds:g} s step | {share['p50']:.4%} | {share['p99']:.4%} | ≤ 1% ({ok}) |")
    print(
        f"\nrun: {cost['mirrored_run_s']:.1f} s mirrored vs {cost['bare_run_s']:.1f} s bare; lanes drained "
        f"{cost['drain_after_run_s']:.2f} s after the last step; stored per sink: {cost['stored']}"
    )
    print(f"\n## Catch-up from the journal ({count:,} records, `mirror.sync()` per sink)\n")
    print("| sink | records/s | seconds | stored | goal |")
    print("|---|---:|---:|---:|---|")
    for name in ("graph", "redis", "chroma"):
        row = catch[name]
        goal = "≥ 1,000/s (" + ("met" if row["records_per_s"] >= GOAL_GRAPH_RPS else "MISSED") + ")"
        print(
            f"| {name} | {row['records_per_s']:,.0f} | {row['seconds']:.2f} | {row['stored']:,} | "
            f"{goal if name == 'graph' else 'report'} |"
        )
    print(f"\ntotal {total:.0f} s on {os.cpu_count()} CPUs")

    payload = {
        "benchmark": "memory",
        "quick": args.quick,
        "python": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "total_s": total,
        "chroma": "embedded (PersistentClient), packaged MiniLM on CPU",
        "chroma_runs": "in a worker process" if args.chroma == "process" else "in the bench's process",
        "graph": "ArcadeDB with Bolt (tests/memory/arcadedb.py)",
        "redis": "redis-server started for the bench",
        "mirroring": cost,
        "catch_up": catch,
    }
    out = ROOT / "bench" / "results" / ("memory.json" if args.chroma == "process" else "memory-in-process.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
