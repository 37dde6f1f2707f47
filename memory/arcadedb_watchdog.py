"""The watchdog beside each managed ArcadeDB: it stops the server when nothing uses it (memory/arcadedb.py).

    python -m smolcrew.memory.arcadedb_watchdog FOLDER --pid PID --ports BOLT,HTTP --stop-after-s SECONDS

`ManagedArcadeDB` launches one per server, in a session of its own (it outlives the crew that started it). Every
`POLL_S` it looks at the server and:

- kills it at once when FOLDER is gone (the home was deleted: nobody can use the data any more);
- stops it (under the folder's lock, so a crew taking a lease meanwhile waits and starts a new one) once it has
  been held by nobody for SECONDS: no live lease file under `FOLDER/leases/` and no established connection to
  its Bolt or HTTP port (another program with a driver open holds it too). SECONDS is 0 for a temporary
  folder and `inf` when `memory.graph_idle_s` is 0;
- exits when the server has exited or another server took over the folder.

It writes what it sees to `FOLDER/watchdog.json` for `smolcrew doctor` and its decisions to `FOLDER/server.log`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from pathlib import Path

from smolcrew.memory.arcadedb import ManagedArcadeDB
from smolcrew.memory.arcadedb_host import WATCHDOG_STATUS, running, terminate

__all__ = ["POLL_S", "holders", "watch"]

POLL_S = 1.0
"""Seconds between looks: a deleted home's server is gone within a few of them."""


def holders(server: ManagedArcadeDB, pid: int, ports: set[int]) -> int:
    """Live leases on the server plus established connections to its `ports`."""
    import psutil

    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        connections = []
    established = sum(
        1 for c in connections if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port in ports
    )
    return len(server.live_leases()) + established


def _report(folder: Path, pid: int, idle_since: float | None) -> None:
    temp = folder / f".{WATCHDOG_STATUS}.tmp"
    with contextlib.suppress(OSError):  # the folder is being deleted: the next look kills the server
        temp.write_text(json.dumps({"server_pid": pid, "watchdog_pid": os.getpid(), "idle_since": idle_since}))
        os.replace(temp, folder / WATCHDOG_STATUS)


def watch(folder: Path, pid: int, ports: set[int], stop_after_s: float, poll_s: float = POLL_S) -> str:
    """Watch the server `pid` over `folder` (listening on `ports`) until it ends; why it ended."""
    server = ManagedArcadeDB(folder)
    unheld_since: float | None = None  # monotonic, for the decision; the report says it in wall-clock time
    while True:
        if not folder.is_dir():
            terminate(pid)
            return f"its folder {folder} is gone: killed"
        if not running(pid):
            return "it exited"
        held = holders(server, pid, ports)
        if held and unheld_since is not None:
            unheld_since = None
            _report(folder, pid, None)
        elif not held and unheld_since is None:
            unheld_since = time.monotonic()
            _report(folder, pid, time.time())
        if unheld_since is not None and time.monotonic() - unheld_since >= stop_after_s:
            try:
                with server._locked(create=False):
                    current = server._read()
                    if current is None or current.pid != pid:
                        return "another server took over its folder"
                    if not holders(server, pid, ports):
                        server._stop_locked(current, timeout_s=15.0)
                        return f"held by nobody for {stop_after_s:g} s: stopped"
            except FileNotFoundError:
                continue  # the folder went while we looked: killed at the top of the loop
            unheld_since = None  # a holder came in the meantime
            _report(folder, pid, None)
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--ports", required=True, help="the server's Bolt and HTTP ports, comma-separated")
    parser.add_argument("--stop-after-s", type=float, required=True, help="seconds held by nobody; inf: never")
    args = parser.parse_args(argv)
    if math.isnan(args.stop_after_s) or args.stop_after_s < 0:
        parser.error("--stop-after-s must be 0 or more (inf: never)")
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{started} watchdog {os.getpid()}: watching ArcadeDB pid {args.pid}", flush=True)
    ports = {int(port) for port in args.ports.split(",") if port.strip().isdigit()}
    reason = watch(args.folder.absolute(), args.pid, ports, args.stop_after_s)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} watchdog {os.getpid()}: ArcadeDB pid {args.pid} {reason}", flush=True)


if __name__ == "__main__":
    main()
