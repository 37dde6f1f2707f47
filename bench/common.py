"""Helpers shared by the benchmark scripts: where smolcrew keeps its files, how busy the CPU was, tables."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["cpu_snapshot", "markdown_table", "other_cores", "smolcrew_home"]


def smolcrew_home() -> Path:
    return Path(os.environ.get("SMOLCREW_HOME") or Path.home() / ".local" / "share" / "smolcrew").expanduser()


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(machine busy CPU s, this process and its waited children's CPU s, perf_counter) for `other_cores`."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    own = os.times()
    return busy, own.user + own.system + own.children_user + own.children_system, time.perf_counter()


def other_cores(start: tuple[float, float, float] | None, end: tuple[float, float, float] | None) -> float | None:
    """Average CPU cores that other processes kept busy between two snapshots: timings are only comparable
    when this is near zero."""
    if start is None or end is None or end[2] <= start[2]:
        return None
    return max(0.0, ((end[0] - start[0]) - (end[1] - start[1])) / (end[2] - start[2]))


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
