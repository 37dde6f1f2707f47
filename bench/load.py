"""Load bench of the HTTP API: N concurrent conversations against a real uvicorn server on localhost.

The server (a child process: `python bench/load.py --serve PORT HOME`) runs `smolcrew.server.api` over Crews with a
scripted model (manager mode, no router), so the figures measure the service, not an LLM. Each conversation sends
a message, reads its SSE stream to `run_end`, and repeats until `--seconds` pass. Reported: error rate, p50/p95
time to first event and to the final answer, server RSS growth, and events lost or duplicated (each stream's step
events compared with the run's journal). Writes bench/results/load.json and prints a table.

    python bench/load.py --seconds 60 --conversations 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import markdown_table

RESULTS = Path(__file__).parent / "results" / "load.json"


def _serve(port: int, home: str, workers: int) -> None:
    import uvicorn

    from smolcrew.backends import ScriptedModel
    from smolcrew.cli.serve import uvicorn_config
    from smolcrew.config import Settings, load_settings
    from smolcrew.crew import Crew
    from smolcrew.errors import ModelUnavailableError
    from smolcrew.server.api import create_app
    from smolcrew.server.service import ChatService

    class NoRouterCrew(Crew):
        def route(self, request: str) -> Any:
            raise ModelUnavailableError("no router in the load bench", backend="embeddings", fix="none")

    reply = "Thought: scripted.\n<code>\nx = 6 * 7\nprint(x)\n</code>"
    final = 'Thought: scripted.\n<code>\nfinal_answer("42")\n</code>'

    def respond(messages: list[dict[str, Any]]) -> str:  # two steps per run: one action, then the answer
        return final if any("42" in str(m.get("content")) for m in messages[-2:]) else reply

    def build(settings: Settings) -> Crew:
        return NoRouterCrew(settings, model=ScriptedModel(respond))

    settings = load_settings(
        home=home, routing={"mode": "manager"}, memory={"sinks": []}, server={"workers": workers, "port": port}
    )
    service = ChatService(settings, crew_factory=build)
    uvicorn.Server(uvicorn_config(create_app(service=service), "127.0.0.1", port)).run()  # as `smolcrew serve`


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


async def _conversation(client: Any, until: float, out: dict[str, list[Any]]) -> None:
    conversation = (await client.post("/v1/conversations")).json()["id"]
    turn = 0
    while time.monotonic() < until:
        turn += 1
        started = time.perf_counter()
        try:
            reply = await client.post(f"/v1/conversations/{conversation}/messages", json={"text": f"turn {turn}"})
            if reply.status_code != 202:
                out["errors"].append(f"POST {reply.status_code}")
                continue
            first, events = None, []
            async with client.stream("GET", reply.json()["events_url"]) as stream:
                data, event = None, None
                async for line in stream.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                    elif not line and event is not None:
                        first = first or time.perf_counter() - started
                        events.append((event, data))
                        event = None
            if not events or events[-1][0] != "run_end" or events[-1][1].get("state") != "success":
                out["errors"].append(f"stream ended with {events[-1][0] if events else 'nothing'}")
                continue
            out["first"].append(first)
            out["final"].append(time.perf_counter() - started)
            out["streams"].append([d for e, d in events if e == "step"])
        except Exception as exc:  # any failure counts as an error of this request
            out["errors"].append(f"{type(exc).__name__}: {exc}")


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


async def _load(port: int, seconds: float, conversations: int) -> dict[str, list[Any]]:
    import httpx

    out: dict[str, list[Any]] = {"errors": [], "first": [], "final": [], "streams": []}
    limits = httpx.Limits(max_connections=conversations * 2)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits) as client:
        until = time.monotonic() + seconds
        await asyncio.gather(*(_conversation(client, until, out) for _ in range(conversations)))
    return out


def _lost(home: Path, streams: list[list[dict[str, Any]]]) -> tuple[int, int]:
    """(events missing from the streams, events streamed twice), against each run's journal."""
    from smolcrew.memory.sinks.journal import JournalSink

    journal, lost, duplicated = JournalSink(home / "journal"), 0, 0
    for steps in streams:
        seqs = [step["seq"] for step in steps]
        duplicated += len(seqs) - len(set(seqs))
        lost += len({r.seq for r in journal.read(steps[0]["run_id"])} - set(seqs)) if steps else 1
    return lost, duplicated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="Crews in the server's pool (server.workers).")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(int(args.serve[0]), args.serve[1], args.workers)
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="smolcrew-load-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMOLCREW_")}
    command = [sys.executable, __file__, "--serve", str(port), str(home), "--workers", str(args.workers)]
    server = subprocess.Popen(command, env=env)
    try:
        import httpx

        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        asyncio.run(_load(port, 3.0, 4))  # warm-up: every Crew of the pool built once
        rss_before = _rss(server.pid)
        out = asyncio.run(_load(port, args.seconds, args.conversations))
        rss_after = _rss(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    lost, duplicated = _lost(home, out["streams"])
    runs = len(out["final"]) + len(out["errors"])
    result = {
        "seconds": args.seconds,
        "conversations": args.conversations,
        "workers": args.workers,
        "runs": runs,
        "runs_per_s": round(len(out["final"]) / args.seconds, 2),
        "error_rate": round(len(out["errors"]) / runs, 4) if runs else None,
        "errors": sorted(set(out["errors"]))[:10],
        "first_event_s": {"p50": _pct(out["first"], 0.5), "p95": _pct(out["first"], 0.95)},
        "final_answer_s": {"p50": _pct(out["final"], 0.5), "p95": _pct(out["final"], 0.95)},
        "server_rss_mb": {"before": round(rss_before / 2**20, 1), "after": round(rss_after / 2**20, 1)},
        "events_lost": lost,
        "events_duplicated": duplicated,
        "mean_events_per_run": round(statistics.mean(len(s) for s in out["streams"]), 1) if out["streams"] else 0,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ["runs (ok / errors)", f"{len(out['final'])} / {len(out['errors'])} ({result['error_rate']})"],
        ["first event p50 / p95 s", f"{result['first_event_s']['p50']} / {result['first_event_s']['p95']}"],
        ["final answer p50 / p95 s", f"{result['final_answer_s']['p50']} / {result['final_answer_s']['p95']}"],
        ["server RSS MiB before / after", f"{result['server_rss_mb']['before']} / {result['server_rss_mb']['after']}"],
        ["events lost / duplicated", f"{lost} / {duplicated}"],
    ]
    print(markdown_table(["metric", "value"], rows))


if __name__ == "__main__":
    main()
