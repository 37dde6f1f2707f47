"""How much memory the managed local ArcadeDB needs for a big provenance graph, by Java heap size.

    python bench/graph_server.py [--runs 10000] [--heaps 128,256,1024]

For each heap (`memory.graph_heap_mb`, the JVM's -Xmx), in a fresh temporary folder:

1. start the server as a crew does (`ManagedArcadeDB.acquire()`), time until it answers, its RSS then;
2. write RUNS runs of 5 steps each (a manager delegating to a specialist that calls a tool, then answering:
   50,000 step records for 10,000 runs) through `GraphSink.write`, 100 runs per call, as the memory lane does;
   records/s and the JVM's peak RSS;
3. read 300 random runs back (`read`, `delegation_tree`), checking each: p50/p95 ms;
4. stop it and start it again over the same data (a restart after idle shutdown): time until it answers and
   RSS after the same reads;
5. let go of the lease: seconds until the watchdog has stopped it (a temporary folder: at once).

A heap too small shows as failed writes (the JVM's OutOfMemoryError) or a JVM that exits. Writes
bench/results/graph_server.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import markdown_table  # noqa: E402

STEPS_PER_RUN = 5
RUNS_PER_WRITE = 100
READS = 300


def run_records(run_id: str, number: int) -> list[Any]:
    """The five records of one run: delegation, the specialist's tool call, its answer, the manager's answer."""
    from smolcrew.memory.records import StepRecord

    image = f"photos/holiday_{number:05d}.jpg"
    steps = [
        ("manager", "delegation", {"to": "vision", "task": f"Describe {image} in one sentence."}),
        ("vision", "action", {
            "code": f"caption = caption_image(image={image!r})",
            "calls": ["caption_image"],
            "observations": f"A red bicycle leaning on a stone wall beside a blue door, photo {number}.",
        }),
        ("vision", "final_answer", {"answer": f"A red bicycle leans on a stone wall (photo {number})."}),
        ("manager", "action", {"code": "final_answer(answer)", "calls": ["final_answer"], "observations": ""}),
        ("manager", "final_answer", {"answer": f"The photo shows a red bicycle by a blue door ({number})."}),
    ]  # fmt: skip
    return [
        StepRecord(run_id=run_id, seq=seq, agent=agent, kind=kind, payload=payload, ts=1_790_000_000.0 + number)
        for seq, (agent, kind, payload) in enumerate(steps)
    ]


def rss_mb(pid: int | None) -> float:
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except (psutil.NoSuchProcess, TypeError):
        return 0.0


def read_back(sink: Any, runs: int, rng: random.Random) -> list[float]:
    """Read READS random runs and their delegation trees; seconds each. Raises if one comes back wrong."""
    seconds = []
    for number in rng.sample(range(runs), min(READS, runs)):
        run_id = f"run-{number:05d}"
        start = time.perf_counter()
        records = sink.read(run_id)
        tree = sink.delegation_tree(run_id)
        seconds.append(time.perf_counter() - start)
        if [record.seq for record in records] != list(range(STEPS_PER_RUN)) or not tree:
            raise RuntimeError(f"{run_id} read back wrong: {len(records)} records, tree {tree}")
    return seconds


def one_heap(heap_mb: int, runs: int) -> dict[str, Any]:
    from smolcrew.memory.arcadedb import ManagedArcadeDB
    from smolcrew.memory.sinks.graph import GraphSink

    folder = Path(tempfile.mkdtemp(prefix=f"smolcrew-bench-graph-{heap_mb}-")) / "graph"
    server = ManagedArcadeDB(folder, heap_mb=heap_mb, ready_timeout_s=120)
    result: dict[str, Any] = {"heap_mb": heap_mb, "runs": runs, "records": runs * STEPS_PER_RUN}
    try:
        start = time.perf_counter()
        lease = server.acquire()
        state = server.wait_ready(120)
        result["start_s"] = time.perf_counter() - start
        result["rss_started_mb"] = rss_mb(state.pid)
        peak, failures = 0.0, 0
        with GraphSink.from_url(state.uri, user=state.user, password=state.password, namespace="bench") as sink:
            start = time.perf_counter()
            for first in range(0, runs, RUNS_PER_WRITE):
                batch = [
                    record
                    for number in range(first, min(runs, first + RUNS_PER_WRITE))
                    for record in run_records(f"run-{number:05d}", number)
                ]
                try:
                    sink.write(batch)
                except Exception as exc:  # an OutOfMemoryError comes back as any driver error
                    failures += 1
                    result["write_error"] = f"{type(exc).__name__}: {exc}"[:300]
                    if not server.status():
                        break  # the JVM died
                peak = max(peak, rss_mb(state.pid))
            result["write_s"] = time.perf_counter() - start
            result["records_per_s"] = result["records"] / result["write_s"]
            result["failed_writes"] = failures
            result["rss_peak_write_mb"] = peak
            if failures:
                return result
            reads = read_back(sink, runs, random.Random(heap_mb))
            result["read_p50_ms"] = statistics.median(reads) * 1000
            result["read_p95_ms"] = statistics.quantiles(reads, n=20)[-1] * 1000
            result["rss_after_reads_mb"] = rss_mb(state.pid)
        result["disk_mb"] = sum(f.stat().st_size for f in (folder / "databases").rglob("*") if f.is_file()) / 2**20

        server.stop()  # as after idle shutdown: the next crew starts it over the same data
        start = time.perf_counter()
        lease.release()
        lease = server.acquire()
        state = server.wait_ready(120)
        result["restart_s"] = time.perf_counter() - start
        with GraphSink.from_url(state.uri, user=state.user, password=state.password, namespace="bench") as sink:
            reads = read_back(sink, runs, random.Random(heap_mb + 1))
        result["restart_read_p50_ms"] = statistics.median(reads) * 1000
        result["rss_restarted_mb"] = rss_mb(state.pid)

        start = time.perf_counter()
        lease.release()  # a temporary folder: the watchdog stops it as soon as nothing holds it
        while server.status() is not None and time.perf_counter() - start < 60:
            time.sleep(0.1)
        result["stopped_after_release_s"] = time.perf_counter() - start
        return result
    finally:
        server.stop()
        shutil.rmtree(folder.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--heaps", default="128,256,1024", help="Java heap sizes (MB) to try, comma-separated")
    args = parser.parse_args()
    results = []
    for heap in (int(value) for value in args.heaps.split(",")):
        print(f"heap {heap} MB: {args.runs} runs ...", flush=True)
        results.append(one_heap(heap, args.runs))
        print(json.dumps(results[-1], indent=1), flush=True)
    rows = [
        [
            str(r["heap_mb"]),
            f"{r.get('start_s', 0):.1f}",
            f"{r.get('rss_started_mb', 0):.0f}",
            f"{r.get('records_per_s', 0):,.0f}" + (f" ({r['failed_writes']} failed)" if r.get("failed_writes") else ""),
            f"{r.get('rss_peak_write_mb', 0):.0f}",
            f"{r.get('read_p50_ms', float('nan')):.1f} / {r.get('read_p95_ms', float('nan')):.1f}",
            f"{r.get('restart_s', float('nan')):.1f}",
            f"{r.get('rss_restarted_mb', float('nan')):.0f}",
            f"{r.get('disk_mb', float('nan')):.0f}",
            f"{r.get('stopped_after_release_s', float('nan')):.1f}",
        ]
        for r in results
    ]
    header = [
        "heap MB", "start s", "RSS started", "writes rec/s", "RSS peak (write)", "read p50/p95 ms",
        "restart s", "RSS restarted", "disk MB", "stop after release s",
    ]  # fmt: skip
    print(markdown_table(header, rows))
    out = ROOT / "bench" / "results" / "graph_server.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "results": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
