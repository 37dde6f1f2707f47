"""`smolcrew runs ...` and `smolcrew memory ...`: past runs from the journal, search, delegation trees, catch-up."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smolcrew.audit_report import delegation_tree
from smolcrew.cli.options import ConfigOption, JsonOption, settings_or_exit

if TYPE_CHECKING:
    from smolcrew.config import Settings
    from smolcrew.memory.records import StepRecord
    from smolcrew.memory.sinks.journal import JournalSink

runs_app = typer.Typer(help="Past runs, read from the journal.", no_args_is_help=True)
memory_app = typer.Typer(
    help="The shared memory: search, delegation trees, catch-up of the stores.", no_args_is_help=True
)
graph_server_app = typer.Typer(
    help="The managed local ArcadeDB: the graph store when no services.neo4j_uri is set. It starts with the first "
    "crew, is shared by later processes, and stops after memory.graph_idle_s unused (or when stopped here).",
    no_args_is_help=True,
)
memory_app.add_typer(graph_server_app, name="graph-server")
console = Console()


def _journal(settings: Settings) -> JournalSink:
    from smolcrew.memory.sinks.journal import JournalSink

    return JournalSink(settings.home / "journal")


def _records(journal: JournalSink, run_id: str) -> list[StepRecord]:
    try:
        records = journal.read(run_id)
    except ValueError:
        records = []
    if not records:
        console.print(f"[bold red]error:[/] no run {run_id!r} in {journal.folder}; see `smolcrew runs list`")
        raise typer.Exit(1)
    for problem in journal.problems:
        console.print(f"[yellow]skipped a corrupt line:[/] {problem.file}:{problem.line} ({problem.error})")
    return records


def _summary(run_id: str, records: list[StepRecord]) -> dict[str, object]:
    start = next((r.payload for r in records if r.kind == "run_start"), None)
    end = next((r.payload for r in reversed(records) if r.kind == "run_end"), None)
    if end is not None:
        state, answer = end.get("state"), end.get("answer")
    else:  # still going, stopped half-way, or an older run without run_start/run_end records
        finals = [r for r in records if r.kind == "final_answer"]
        top_level = [r for r in finals if not r.payload.get("parent")]
        chosen = top_level or finals
        state, answer = "unfinished", chosen[-1].payload.get("output") if chosen else None
    request = (
        start.get("task") if start else next((r.payload.get("task") for r in records if r.kind == "delegation"), None)
    )
    return {
        "run_id": run_id,
        "started": datetime.fromtimestamp(records[0].ts, UTC).isoformat(timespec="seconds"),
        "steps": len(records),
        "agents": sorted({r.agent for r in records if r.agent != "crew"}),
        "first_task": request,
        "state": state,
        "answer": answer,
    }


@runs_app.command("list")
def runs_list(config: ConfigOption = None, limit: int = 20, as_json: JsonOption = False) -> None:
    """The latest runs: id, start, steps, agents, answer."""
    journal = _journal(settings_or_exit(config))
    rows = [_summary(run_id, journal.read(run_id)) for run_id in reversed(journal.runs()[-limit:])]
    rows = [row for row in rows if row["steps"]]
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table(title=f"runs in {journal.folder}")
    for column in ("run", "started (UTC)", "steps", "agents", "state", "answer"):
        table.add_column(column)
    for row in rows:
        answer = str(row["answer"])[:60] if row["answer"] is not None else "-"
        agents = ", ".join(str(agent) for agent in row["agents"])  # type: ignore[attr-defined]
        cells = (row["run_id"], row["started"], row["steps"], agents, row["state"])
        table.add_row(*(str(cell) for cell in cells), escape(answer))
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: str, config: ConfigOption = None) -> None:
    """Every step of a run: agent, kind, tool calls, errors, timing."""
    records = _records(_journal(settings_or_exit(config)), run_id)
    table = Table(title=f"run {run_id}")
    for column in ("#", "agent", "kind", "calls / task", "error", "s"):
        table.add_column(column)
    for r in records:
        what = r.payload.get("task") if r.kind == "delegation" else ", ".join(r.payload.get("calls") or [])
        duration = r.payload.get("duration_s")
        table.add_row(
            str(r.seq),
            r.agent if r.kind != "delegation" else f"{r.agent} → {r.payload.get('to')}",
            r.kind,
            escape(str(what or r.payload.get("output") or ""))[:80],
            escape(str(r.payload.get("error") or ""))[:60],
            f"{duration:.2f}" if isinstance(duration, float) else "",
        )
    console.print(table)


@runs_app.command("resume")
def runs_resume(run_id: str, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Finish a run: settle its approval once a person answered, or continue it from its journal."""
    from smolcrew.crew import Crew
    from smolcrew.errors import SmolcrewError

    with Crew(settings_or_exit(config)) as crew:
        try:
            result = crew.resume(run_id)
        except SmolcrewError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from exc
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), default=str) + "\n")
    elif result.ok:
        console.print(f"[bold green]Answer:[/] {escape(str(result.answer))}")
    else:
        console.print(f"[bold red]No answer ({result.state}, cause: {result.cause}):[/] {escape(str(result.error))}")
    raise typer.Exit(0 if result.ok else 1)


@runs_app.command("export")
def runs_export(
    run_id: str,
    config: ConfigOption = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
) -> None:
    """A run as JSON: its summary and every step record."""
    records = _records(_journal(settings_or_exit(config)), run_id)
    data = {**_summary(run_id, records), "records": [r.to_dict() for r in records]}
    text = json.dumps(data, ensure_ascii=True, default=str, indent=2)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        out.write_text(text + "\n")
        console.print(f"wrote {out}")


@memory_app.command("search")
def memory_search(
    query: str,
    config: ConfigOption = None,
    run: Annotated[str | None, typer.Option(help="Only this run.")] = None,
    k: int = 5,
    as_json: JsonOption = False,
) -> None:
    """Find past steps by meaning (Chroma, when configured) or by words (the journal)."""
    from contextlib import ExitStack

    from smolcrew.errors import SinkError
    from smolcrew.memory.sinks.base import Capability
    from smolcrew.memory.stores import open_sinks

    settings = settings_or_exit(config)
    with ExitStack() as stack:
        sinks = [s for s in open_sinks(settings, stack) if Capability.VECTOR_SEARCH in s.capabilities]
        source = sinks[0] if sinks else _journal(settings)
        try:
            hits = source.search(query, run_id=run, k=k)
        except SinkError as exc:
            console.print(f"[yellow]{source.name} unavailable ({exc}); searching the journal[/]")
            source = _journal(settings)
            hits = source.search(query, run_id=run, k=k)
    if as_json:
        sys.stdout.write(json.dumps([h.to_dict() for h in hits], default=str) + "\n")
        return
    table = Table(title=f"{len(hits)} matches in {source.name}")
    for column in ("run", "#", "agent", "kind", "text"):
        table.add_column(column)
    for hit in hits:
        text = hit.payload.get("observations") or hit.payload.get("output") or hit.payload.get("task") or ""
        table.add_row(hit.run_id, str(hit.seq), hit.agent, hit.kind, escape(str(text))[:80])
    console.print(table)


@memory_app.command("graph")
def memory_graph(run_id: str, config: ConfigOption = None) -> None:
    """The delegation tree of a run, as text."""
    records = _records(_journal(settings_or_exit(config)), run_id)
    console.print(delegation_tree(run_id, records))


@memory_app.command("sync")
def memory_sync(
    config: ConfigOption = None, run: Annotated[list[str] | None, typer.Option(help="Only these runs.")] = None
) -> None:
    """Replay journaled runs into every configured store (catch-up after an outage), and rebuild the approval
    queue's Redis index from the approval journal; idempotent."""
    from contextlib import ExitStack

    from smolcrew.memory.stores import open_mirror

    settings = settings_or_exit(config)
    with ExitStack() as stack:
        mirror = open_mirror(settings, stack)
        counts = mirror.sync(run)
        status = {lane.sink: lane for lane in mirror.status()}
    for sink, count in counts.items():
        lane = status[sink]
        owed = f", still owes {len(lane.pending_runs)} runs ({lane.last_error})" if lane.pending_runs else ""
        console.print(f"{sink}: {count} records written{owed}")
    approvals_ok = _sync_approvals(settings)
    if any(lane.pending_runs for lane in status.values()) or not approvals_ok:
        raise typer.Exit(1)


def _sync_approvals(settings: Settings) -> bool:
    """Rebuild the approval queue's Redis index from the approval journal (what a flush or a restart of a Redis
    without persistence lost); False when Redis could not take it. Redis is not contacted when nothing is
    journaled."""
    from smolcrew.errors import ApprovalError
    from smolcrew.validators.journaled import JournaledApprovalQueue

    with JournaledApprovalQueue.from_settings(settings) as queue:
        journaled = len(queue.journal.all())
        if not journaled:
            console.print("approvals: none journaled")
            return True
        try:
            changed = queue.rebuild()
        except ApprovalError as exc:
            console.print(f"approvals: {journaled} journaled; the Redis index was not rebuilt: {escape(str(exc))}")
            return False
    console.print(f"approvals: {journaled} journaled, {changed} put back into the Redis index")
    return True


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders: PDF, text, markdown, HTML.")],
    config: ConfigOption = None,
    store: Annotated[Path | None, typer.Option(help="Document store folder (default: <home>/documents).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add documents to the research specialist's store (chunked, embedded with the local MiniLM); re-ingesting
    an unchanged file adds nothing, a changed file replaces its chunks."""
    from smolcrew.memory.ingest import ingest as ingest_paths
    from smolcrew.memory.rag import DocumentStore
    from smolcrew.pool import PipelinePool

    settings = settings_or_exit(config)
    folder = store or settings.home / "documents"
    model = PipelinePool(device="cpu", overrides=settings.models).model_for("embeddings")

    def progress(done: int, total: int, path: str) -> None:
        if not as_json:
            console.print(f"[dim]{done}/{total}[/] {escape(str(path))}")

    with DocumentStore(folder, model=model) as documents:
        report = ingest_paths(paths, store=documents, progress=progress)
    if as_json:
        sys.stdout.write(json.dumps(dataclasses.asdict(report), default=str) + "\n")
    else:
        console.print(
            f"{report.files} files, {report.chunks} chunks added, {report.unchanged} unchanged, "
            f"{report.replaced} replaced, {len(report.skipped)} skipped, {report.seconds:.1f}s → {folder}"
        )
        for skipped in report.skipped:
            console.print(f"[yellow]skipped[/] {escape(str(skipped.path))}: {escape(skipped.reason)}")
    if report.chunks == 0 and report.unchanged == 0 and report.skipped:
        raise typer.Exit(1)


@graph_server_app.command("status")
def graph_server_status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Whether this home's local ArcadeDB runs: pid, Bolt URI, holders, data folder, log (never the password)."""
    from smolcrew.memory.stores import local_graph_server

    settings = settings_or_exit(config)
    server = local_graph_server(settings)
    state = server.status()
    info = {
        "running": state is not None,
        "pid": state.pid if state else None,
        "uri": state.uri if state else None,
        "http": state.http_url if state else None,
        "leases": len(server.live_leases()) if state else 0,
        "idle_s": settings.memory.graph_idle_s,
        "folder": str(server.folder),
        "log": str(server.log_file),
    }
    if as_json:
        sys.stdout.write(json.dumps(info) + "\n")
    elif state is None:
        console.print(f"not running (data: {escape(str(server.folder))}); it starts with the next crew")
    else:
        console.print(
            f"running: pid {state.pid}, {state.uri} (http {state.http_url}), {info['leases']} crew(s) holding it, "
            f"data {escape(str(server.folder))}"
        )


@graph_server_app.command("stop")
def graph_server_stop(
    config: ConfigOption = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every managed ArcadeDB on this machine, whatever its home.")
    ] = False,
) -> None:
    """Stop the local ArcadeDB now (it also stops by itself after `memory.graph_idle_s` unused). Crews still open
    keep journaling and catch the graph up when it runs again."""
    if every:
        from smolcrew.memory.arcadedb import stop_all

        stopped = stop_all()
        for found in stopped:
            note = " (its home was deleted)" if found.orphaned else ""
            console.print(f"stopped pid {found.pid}: {escape(str(found.folder))}{note}")
        console.print(f"{len(stopped)} stopped" if stopped else "no managed ArcadeDB runs on this machine")
        return
    from smolcrew.memory.stores import local_graph_server

    state = local_graph_server(settings_or_exit(config)).stop()
    console.print(f"stopped (pid {state.pid})" if state else "not running")
