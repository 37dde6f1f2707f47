"""`smolcrew audit ...`: verify a run's hash-chained audit log and its signed receipt, export it as a bundle (JSON +
Markdown report), print the home's public key.

The expected head of a run is the `audit_head` of the last `run_end` record in its journal (or `--expected-head`,
a head kept elsewhere); a run without one (still going, or crashed) is verified as a chain alone, and the output
says so. The `run_end` record also carries the head's ed25519 signature (smolcrew/receipts.py), checked against the
home's key or `--public-key`: a log and journal rewritten together have another head, which no signature covers.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer
from rich.console import Console
from rich.markup import escape

from smolcrew.cli.options import ConfigOption, JsonOption, settings_or_exit

if TYPE_CHECKING:
    from smolcrew.audit import AuditLog, AuditReport
    from smolcrew.memory.records import StepRecord

__all__ = ["audit_app", "audit_export", "audit_key", "audit_verify"]

audit_app = typer.Typer(
    help="The hash-chained audit log of each run: verify it and its signed receipt, export it.", no_args_is_help=True
)
console = Console(highlight=False, soft_wrap=True)  # soft wrap: hashes and messages stay on one line
_HASH = re.compile(r"^[0-9a-f]{64}$")


class _Run(NamedTuple):
    """What the audit commands read of a run: its log, journal records and last sealing `run_end` payload."""

    log: AuditLog
    records: list[StepRecord]
    end: dict[str, Any] | None
    home: Path

    @property
    def head(self) -> str | None:
        return self.end["audit_head"] if self.end else None


def _open(config: Path | None, run_id: str) -> _Run:
    """The run's audit log, journal records and sealing record; exits 2 when the run has no audit log."""
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
    return _Run(log, records, dict(ends[-1].payload) if ends else None, settings.home)


def _say(report: AuditReport, signed_by: str | None = None) -> None:
    if report.ok:
        console.print(f"[green]ok:[/] {report.entries} entries, head {report.head}")
    else:
        console.print(f"[bold red]FAILED:[/] {escape(str(report.problem))}")
    if report.ok and signed_by is not None:
        console.print(f"[green]signed:[/] the head carries a valid signature of key {signed_by}")
    if report.expected_head is None:
        console.print(
            "[yellow]note:[/] the journal records no head for this run (still running, or it crashed): the chain "
            "was verified alone, so entries removed from its end would go unnoticed"
        )


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(2)


def _receipt(run: _Run, run_id: str, public_key: Path | None) -> tuple[str | None, str | None]:
    """(signer's key id, problem) of the run's receipt; (None, None) when there is none to ask for: no sealing
    record and no `--public-key`. Exits 2 when the key cannot be read."""
    from smolcrew.errors import AuditError
    from smolcrew.receipts import Receipts, check, key_id, load_public_key

    if run.end is None and public_key is None:
        return None, None
    home = Receipts(run.home / "keys")
    try:
        if public_key is not None:
            key = load_public_key(public_key)
        elif home.exists():
            key = home.public_key()
        else:
            raise AuditError(f"this home has no audit key ({home.private_path}); verify with --public-key FILE")
    except AuditError as exc:
        raise _fail(str(exc)) from exc
    problem = check(key, run_id, run.end)
    return (None, problem) if problem else (key_id(key), None)


@audit_app.command("verify")
def audit_verify(
    run_id: str,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    expected_head: Annotated[
        str | None, typer.Option(help="The run's head as kept elsewhere: the log and journal must both end there.")
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="Check the signed head with this PEM public key (`smolcrew audit key`), not the home's."),
    ] = None,
) -> None:
    """Check a run's hash chain against its recorded head and the head's signature; exit 1 naming what is wrong
    (the first bad entry, a missing or wrong signature, another head), 2 if the run or key is unknown."""
    if expected_head is not None and not _HASH.match(expected_head):
        raise _fail(f"--expected-head {expected_head!r} is not a SHA-256 hex digest (64 of 0-9 a-f)")
    run = _open(config, run_id)
    report = run.log.verify(run_id, expected_head=expected_head or run.head)
    signed_by, problem = None, None
    if report.ok and expected_head is not None and run.head not in (None, expected_head):
        why = "the journal's run_end record was changed, or the head kept elsewhere belongs to another run"
        problem = f"the journal records head {run.head}, but the expected head is {expected_head} — {why}"
    if report.ok and problem is None:
        signed_by, problem = _receipt(run, run_id, public_key)
    if problem is not None:
        report = dataclasses.replace(report, ok=False, problem=problem)
    if as_json:
        sys.stdout.write(json.dumps({**report.to_dict(), "signed_by": signed_by}) + "\n")
    else:
        _say(report, signed_by)
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("key")
def audit_key(config: ConfigOption = None) -> None:
    """Print the home's public audit key (PEM; made on first use) to keep elsewhere: `smolcrew audit verify RUN
    --public-key FILE` checks a run's signed head with it."""
    from smolcrew.errors import AuditError
    from smolcrew.receipts import Receipts

    settings = settings_or_exit(config)
    try:
        sys.stdout.write(Receipts(settings.home / "keys").public_pem())
    except AuditError as exc:
        raise _fail(str(exc)) from exc


@audit_app.command("export")
def audit_export(
    run_id: str,
    config: ConfigOption = None,
    out: Annotated[Path | None, typer.Option(help="Bundle folder (default: ./audit-RUN).")] = None,
) -> None:
    """Write audit.json, report.md and report.html of a run; exit 1 if its log fails verification, 2 if unknown."""
    from smolcrew.audit_report import export_bundle
    from smolcrew.errors import AuditError

    run = _open(config, run_id)
    log, records, expected = run.log, run.records, run.head
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
