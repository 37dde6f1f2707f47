"""torch's intra-op threads vs query latency: one MiniLM query embedding (what the router and rank_passages do per
request), idle and with the cores busy (as when another run, or llama.cpp, computes at the same time).

    python bench/threads.py [--repeats 40]

Prints the median and p90 milliseconds per query for torch's default threads, the pool's sizing for one run
(`cpu_threads(1)`), for two concurrent runs (`cpu_threads(2)`) and one thread. Set it with `[pool] threads`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def _spin() -> None:
    while True:
        pass


@contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """`count` processes spinning on the CPU for the duration."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(count)]
    for spinner in spinners:
        spinner.start()
    try:
        time.sleep(0.5)
        yield
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.join()


def latencies(encode: Callable[..., Any], repeats: int) -> list[float]:
    timings = []
    for i in range(repeats):
        started = time.perf_counter()
        encode([f"how many people answered the survey in report {i}.pdf?"], normalize_embeddings=True)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from smolcrew.manifest import resolve_source
    from smolcrew.pool import cpu_threads

    model = SentenceTransformer(resolve_source("packaged:all-MiniLM-L6-v2"), device="cpu")
    default = torch.get_num_threads()
    settings = {
        f"torch default ({default})": default,
        f"pool, 1 run ({cpu_threads(1)})": cpu_threads(1),
        f"pool, 2 runs ({cpu_threads(2)})": cpu_threads(2),
        "1 thread": 1,
    }
    cores = cpu_threads(1)
    print(f"MiniLM query embedding, ms per query ({args.repeats} queries; {cores} usable cores)\n")
    print("| torch threads | idle: median | idle: p90 | cores busy: median | cores busy: p90 |")
    print("|---|---|---|---|---|")
    for label, threads in settings.items():
        torch.set_num_threads(threads)
        latencies(model.encode, 5)  # warm up
        idle = sorted(latencies(model.encode, args.repeats))
        with busy_cores(cores):
            busy = sorted(latencies(model.encode, args.repeats))
        p90 = int(0.9 * (args.repeats - 1))
        print(
            f"| {label} | {statistics.median(idle):.1f} | {idle[p90]:.1f} | "
            f"{statistics.median(busy):.1f} | {busy[p90]:.1f} |"
        )


if __name__ == "__main__":
    main()
