"""The `smolcrew` command: a thin layer over `Crew`. Heavy imports happen inside commands, so `--help`
stays fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smolcrew.cli.options import USER_ERRORS, CrewGroup, at_least_one, ensure_home, fail, read_request

if TYPE_CHECKING:
    from smolcrew.crew import Crew, RunResult
    from smolcrew.memory.records import StepRecord

app = typer.Typer(
    name="smolcrew",
    cls=CrewGroup,
    help="A manager agent delegating to specialists that run local Hugging Face pipelines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True, soft_wrap=True)


def _add_memory_commands() -> None:
    from smolcrew.cli.memory import ingest, memory_app, runs_app

    app.add_typer(runs_app, name="runs")
    app.add_typer(memory_app, name="memory")
    app.command()(ingest)

    from smolcrew.cli.approvals import approvals_app

    app.add_typer(approvals_app, name="approvals")

    from smolcrew.cli.audit import audit_app

    app.add_typer(audit_app, name="audit")

    from smolcrew.cli.validate import validate_app

    app.add_typer(validate_app, name="validate")

    from smolcrew.cli.serve import serve

    app.command()(serve)

    from smolcrew.cli.cluster import cluster_app

    app.add_typer(cluster_app, name="cluster")


_add_memory_commands()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (default: ./smolcrew.toml).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of text.")]
ModeOption = Annotated[
    str | None, typer.Option("--mode", help="Routing mode: router, auto or manager (overrides config).")
]


def _crew(config: Path | None, mode: str | None = None, **overrides: Any) -> Crew:
    """The configured crew, its home made; a ConfigError goes up to `CrewGroup`: one line, exit 2."""
    from smolcrew.config import load_settings
    from smolcrew.crew import Crew

    if mode is not None:
        overrides["routing"] = {"mode": mode}
    settings = load_settings(config, **overrides)
    ensure_home(settings)
    return Crew(settings)


def _progress(record: StepRecord) -> None:
    payload = record.payload
    if record.kind == "delegation":
        console.print(f"[cyan]→ {record.agent} delegates to [bold]{payload['to']}[/]:[/] {payload['task'][:120]}")
    elif record.kind == "action":
        calls = ", ".join(payload.get("calls") or []) or "no tool"
        took = payload.get("duration_s")
        timing = f" {took:.1f}s" if took is not None else ""
        status = f"[red]error: {str(payload['error'])[:160]}[/]" if payload.get("error") else f"calls {calls}"
        console.print(f"  [dim]{record.agent} step {payload.get('step_number')}{timing}:[/] {status}")
    elif record.kind == "planning":
        console.print(f"  [dim]{record.agent} plans[/]")


def _print_result(result: RunResult) -> None:
    if result.ok:
        console.print(f"\n[bold green]Answer:[/] {result.answer}")
    elif result.state == "pending_approval":
        console.print(
            f"\n[bold yellow]Waiting for a person:[/] approval {result.approval_id} "
            f"(`smolcrew approvals show {result.approval_id}`, then `smolcrew runs resume {result.run_id}`)"
        )
    else:
        console.print(f"\n[bold red]No answer ({result.state}, cause: {result.cause}):[/] {result.error}")
    for verdict in result.verdicts:
        if verdict.get("outcome") != "pass":
            reasons = "; ".join(verdict.get("reasons") or [])
            console.print(f"[dim]  {verdict.get('stage')}: {verdict.get('outcome')} — {escape(reasons)}[/]")
    agents = " → ".join(result.agents) or "none"
    console.print(
        f"[dim]run {result.run_id} · {result.mode} · agents: {agents} · tools: {', '.join(result.tools) or 'none'} · "
        f"{len(result.steps)} records · {result.input_tokens}+{result.output_tokens} tokens · "
        f"{result.duration_s:.1f}s[/]"
    )


def _run_or_fail(crew: Crew, task: str, **kwargs: Any) -> RunResult:
    """The run's result. A user's error (a setting first read as the run starts) goes up to `CrewGroup` (exit 2);
    any other smolcrew error ends the command with exit 1."""
    from smolcrew.errors import SmolcrewError

    try:
        return crew.run(task, **kwargs)
    except USER_ERRORS:
        raise
    except SmolcrewError as exc:
        raise fail(str(exc), 1) from exc


@app.command()
def run(
    request: Annotated[
        str | None, typer.Argument(help="What the crew should do; - reads it from stdin.", show_default=False)
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the request from this UTF-8 text file.")
    ] = None,
    config: ConfigOption = None,
    mode: ModeOption = None,
    max_steps: Annotated[
        int | None, typer.Option(help="The manager's step budget (1 or more).", callback=at_least_one)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run one request and print the answer, with live progress of steps and delegations.

    A request too long for the command line: `smolcrew run - < request.txt` or `smolcrew run --file request.txt`.
    Exits 0 with an answer, 1 without one, 2 on a user error (the request, an option, the configuration)."""
    task = read_request(request, file)
    with _crew(config, mode) as crew:
        result = _run_or_fail(crew, task, max_steps=max_steps, on_step=None if as_json else _progress)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), default=str) + "\n")
    else:
        _print_result(result)
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def chat(config: ConfigOption = None, mode: ModeOption = None) -> None:
    """Talk to the crew, several turns; it remembers the conversation. /reset forgets, /exit leaves."""
    with _crew(config, mode) as crew:
        session = crew.chat()
        console.print("[dim]smolcrew chat: /reset forgets the conversation, /exit (or Ctrl-D) leaves.[/]")
        while True:
            try:
                message = console.input("[bold]you> [/]").strip()
            except (EOFError, KeyboardInterrupt):
                console.print()
                break
            if message in ("/exit", "/quit"):
                break
            if message == "/reset":
                session.reset()
                console.print("[dim]conversation forgotten[/]")
                continue
            if not message:
                continue
            result = session.send(message, on_step=_progress)
            _print_result(result)


@app.command()
def route(
    request: Annotated[str | None, typer.Argument(help="The request to plan.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    train: Annotated[
        bool, typer.Option("--train", help="Train the tool-level planner (a few minutes, once per home), then exit.")
    ] = False,
) -> None:
    """Show which specialists and tools would handle a request, with scores, without running anything."""
    from smolcrew.errors import ModelUnavailableError

    if train:
        _train_planner(config)
        return
    if not request or not request.strip():
        raise fail("give a request to plan, e.g. smolcrew route 'transcribe call.wav, then translate it'")
    with _crew(config) as crew:
        try:
            plan = crew.route(request)
        except ModelUnavailableError as exc:
            raise fail(str(exc), 1) from exc
        except ValueError as exc:
            raise fail(str(exc)) from exc
    if as_json:
        sys.stdout.write(json.dumps(plan.to_dict()) + "\n")
        return
    table = Table(title=f"Route: {request}", show_lines=False)
    table.add_column("#")
    table.add_column("specialist", style="bold cyan")
    table.add_column("task")
    table.add_column("scores (top 3)")
    table.add_column("by")
    table.add_column("tools")
    table.add_column("uses")
    for number, step in enumerate(plan.steps, start=1):
        scores = ", ".join(f"{name} {score:.3f}" for name, score in list(step.scores.items())[:3])
        sure = "" if step.confident else " (unsure)"
        if step.tools:
            tools = ", ".join(f"{tool} ({tag})" for tool, tag in zip(step.tools, step.tool_tasks, strict=True))
        else:
            tools = ", ".join(plan.tools.get(step.specialist, [])) or "-"
        uses = ", ".join(str(d + 1) for d in step.depends_on) or "-"
        table.add_row(str(number), step.specialist, escape(step.task), scores, step.decided_by + sure, tools, uses)
    console.print(table)


def _train_planner(config: Path | None) -> None:
    from smolcrew.agents.planner_train import train_planner
    from smolcrew.config import load_settings

    settings = load_settings(config)
    ensure_home(settings)
    folder = train_planner(settings.cache_dir, progress=lambda line: err.print(escape(line)))
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    console.print(
        f"tool planner ready in {escape(str(folder))}: on {metrics['held_out_examples']:,} generated plans it never "
        f"saw, tools right {metrics['held_out_tools_exact']:.1%}, specialists in order "
        f'{metrics["held_out_specialists"]:.1%}. Plan with it: routing.planner = "learned" '
        "(SMOLCREW_ROUTING__PLANNER=learned)"
    )


@app.command()
def doctor(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Check the configured backend, model files, packages and services; exit 1 if the setup cannot run, 2 if a
    setting is invalid."""
    from smolcrew.config import load_settings
    from smolcrew.doctor import run_checks

    checks = run_checks(load_settings(config))
    if as_json:
        sys.stdout.write(json.dumps([check.to_dict() for check in checks]) + "\n")
    else:
        table = Table(title="smolcrew doctor")
        for column in ("check", "status", "detail"):
            table.add_column(column)
        style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for check in checks:
            table.add_row(escape(check.name), f"[{style[check.status]}]{check.status}[/]", escape(check.detail))
        console.print(table)
    failed = [check for check in checks if check.status == "fail"]
    if failed and not as_json:
        err.print(f"[bold red]{len(failed)} check(s) failed:[/] the configured setup cannot run.")
    raise typer.Exit(1 if failed else 0)


@app.command()
def models(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List every model role: its model id, where it comes from, and whether it is here."""
    from smolcrew.config import load_settings
    from smolcrew.doctor import model_rows

    rows = model_rows(load_settings(config))
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table(title="smolcrew models")
    for column in ("role", "model", "source", "size", "present"):
        table.add_column(column)
    for row in rows:
        size = f"{row['size_mib']:,.0f} MiB" if row["size_mib"] is not None else "-"
        present = "[green]yes[/]" if row["present"] else "[red]no[/]"
        table.add_row(row["role"], row["model"], row["source"], size, present)
    console.print(table)


@app.command()
def tools(as_json: JsonOption = False) -> None:
    """List every tool by specialist, with its task (a Hugging Face pipeline tag or ours) and inputs. Loads no model."""
    from smolcrew.agents.specialists import SPECIALISTS
    from smolcrew.tools.base import input_types

    rows = [
        {
            "specialist": name,
            "tool": tool.name,
            "task": getattr(tool, "task", ""),
            "inputs": {
                key: " | ".join(input_types(spec)) + ("?" if spec.get("nullable") else "")
                for key, spec in tool.inputs.items()
            },
            "output": tool.output_type,
            "description": tool.description,
        }
        for name, specialist in SPECIALISTS.items()
        for tool in specialist.tool_factories
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table(title=f"smolcrew tools ({len(rows)})")
    for column in ("specialist", "tool", "task", "inputs", "output"):
        table.add_column(column)
    for row in rows:
        inputs = ", ".join(f"{key}: {kind}" for key, kind in row["inputs"].items())
        table.add_row(row["specialist"], row["tool"], row["task"], escape(inputs), row["output"])
    console.print(table)


@app.command()
def replay(
    run_id: Annotated[str, typer.Argument(help="The run to replay (see `smolcrew runs list`).")],
    config: ConfigOption = None,
    from_step: Annotated[
        int | None, typer.Option("--from-step", help="Replay steps before N, then run live from step N (a fork).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-run a recorded run with its recorded model replies and tool results; report any divergence.

    Exits 0 when the replay matches the recording, 1 when it diverges: a recorded run is a regression test."""
    from smolcrew.errors import SmolcrewError
    from smolcrew.replay import replay as replay_run

    with _crew(config) as crew:
        try:
            report = replay_run(crew, run_id, from_step=from_step)
        except SmolcrewError as exc:
            raise fail(str(exc), 2) from exc
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), default=str) + "\n")
    else:
        verdict = "[bold green]same[/]" if report.same else "[bold red]diverged[/]"
        console.print(f"replay of {run_id} → run {report.replay_run_id}: {verdict}")
        console.print(f"  recorded answer: {escape(str(report.recorded_answer))}")
        console.print(f"  replayed answer: {escape(str(report.answer))} ({report.state})")
        console.print(f"  model replies: {report.replayed_replies} replayed, {report.live_replies} live")
        for divergence in report.divergences[:20]:
            console.print(f"  [red]{escape(str(divergence))}[/]")
    raise typer.Exit(0 if report.same or from_step is not None else 1)


def main() -> None:
    app()
