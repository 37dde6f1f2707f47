"""`smolcrew audit ...`: verify a run's hash-chained audit log, export it as a bundle (JSON + Markdown report).

The expected head of a run is the `audit_head` of the last `run_end` record in its journal; a run without one
(still going, or crashed) is verified as a chain alone, and the output says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from smolcrew.cli.options import ConfigOption, JsonOption, settings_or_exit

if TYPE_CHECKING:
    from smolcrew.audit import AuditLog, AuditReport
    from smolcrew.memory.records import StepRecord

__all__ = ["audit_app", "audit_export", "audit_verify"]

audit_app = typer.Typer(help="The hash-chained audit log of each run: verify it, export it.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)  # soft wrap: hashes and messages stay on one line


def _open(config: Path | None, run_id: str) -> tuple[AuditLog, list[StepRecord], str | None]:
    """The audit log, the run's journal records and its recorded head; exits 2 when the run has no audit log."""
    from smolcrew.audit import AuditLog
    from smolcrew.errors import AuditError
    from smolcrew.memory.sinks.journal import JournalSink

    settings = settings_or_exit(config)
    log = AuditLog(settings.home / "audit")
    try:
        known = log.path(run_id).is_file()
    except AuditError:
        known = False
    if not known:
        console.print(
            f"[bold red]error:[/] no audit log for run {escape(repr(run_id))} in {log.folder}; list runs with "
            "`smolcrew runs list`"
        )
        raise typer.Exit(2)
    try:
        records = JournalSink(settings.home / "journal").read(run_id)
    except ValueError:
        records = []
    ends = [r for r in records if r.kind == "run_end" and isinstance(r.payload.get("audit_head"), str)]
    return log, records, ends[-1].payload["audit_head"] if ends else None


def _say(report: AuditReport) -> None:
    if report.ok:
        console.print(f"[green]ok:[/] {report.entries} entries, head {report.head}")
    else:
        console.print(f"[bold red]FAILED:[/] {escape(str(report.problem))}")
    if report.expected_head is None:
        console.print(
            "[yellow]note:[/] the journal records no head for this run (still running, or it crashed): the chain "
            "was verified alone, so entries removed from its end would go unnoticed"
        )


@audit_app.command("verify")
def audit_verify(run_id: str, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Check a run's hash chain against the head in its journal; exit 1 naming the first bad entry, 2 if unknown."""
    log, _, expected = _open(config, run_id)
    report = log.verify(run_id, expected_head=expected)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
    else:
        _say(report)
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("export")
def audit_export(
    run_id: str,
    config: ConfigOption = None,
    out: Annotated[Path | None, typer.Option(help="Bundle folder (default: ./audit-RUN).")] = None,
) -> None:
    """Write audit.json, report.md and report.html of a run; exit 1 if its log fails verification, 2 if unknown."""
    from smolcrew.audit_report import export_bundle
    from smolcrew.errors import AuditError

    log, records, expected = _open(config, run_id)
    try:
        folder = export_bundle(log, run_id, out or Path(f"audit-{run_id}"), records=records, expected_head=expected)
    except AuditError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    console.print(str(folder))
    report = log.verify(run_id, expected_head=expected)  # the bundle holds the same report; this sets the exit code
    if not report.ok:
        _say(report)
        raise typer.Exit(1)
