"""`smolcrew approvals ...`: list, read and decide the answers waiting for a person (validators/journaled.py).

Approvals live in the home's journal, indexed in Redis: after Redis lost its data the first command rebuilds the
index; while Redis is down, `show`, `approve` and `reject` work from the journal (the index catches up later) and
`list` exits 2.

Exit codes: 0 done; 1 the approval was already decided; 2 an unknown id, a bad option or config, or Redis down
where it is needed (the message says how to start it or which setting points at it).
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from smolcrew.validators.approval import Approval
    from smolcrew.validators.journaled import JournaledApprovalQueue

__all__ = ["approvals_app"]

approvals_app = typer.Typer(
    help="Answers waiting for a person: list, show, approve, reject (a decided run resumes with "
    "`smolcrew runs resume RUN`).",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of text.")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who decides (default: the OS user).")]
StatusChoice = Literal["pending", "approved", "rejected", "all"]
PREVIEW_CHARS = 80


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # commands in messages stay copyable
    return typer.Exit(code)


@contextmanager
def _queue(config: Path | None) -> Iterator[JournaledApprovalQueue]:
    """The configured queue (the home's journal; Redis `services.redis_url`, `memory.namespace`); smolcrew's
    errors become exit codes with the message (2: unknown id, config, Redis down; 1: decided before)."""
    from smolcrew.config import load_settings
    from smolcrew.errors import ApprovalAlreadyDecided, ApprovalError, ConfigError
    from smolcrew.validators.journaled import JournaledApprovalQueue

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    try:
        with JournaledApprovalQueue.from_settings(settings) as queue:
            yield queue
    except ApprovalAlreadyDecided as exc:
        raise _fail(str(exc), 1) from exc
    except ApprovalError as exc:  # not found, unavailable, refused
        raise _fail(str(exc)) from exc


def _age(created: float) -> str:
    seconds = max(0, int(time.time() - created))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _preview(value: Any, chars: int = PREVIEW_CHARS) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= chars else text[:chars] + f"... ({len(text):,} chars)"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "unknown"


@approvals_app.command("list")
def approvals_list(
    config: ConfigOption = None,
    status: Annotated[StatusChoice, typer.Option(help="Which approvals to list.")] = "pending",
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Approvals of a status (pending by default), oldest first: id, run, age, reasons."""
    with _queue(config) as queue:
        approvals = queue.list(None if status == "all" else status, limit=limit)
    if as_json:
        sys.stdout.write(json.dumps([approval.to_dict() for approval in approvals]) + "\n")
        return
    table = Table(title=f"{len(approvals)} {'' if status == 'all' else status + ' '}approvals in {queue.namespace}")
    for column in ("id", "run", "status", "age", "reasons"):
        table.add_column(column, no_wrap=column in ("id", "run"))
    for approval in approvals:
        reasons = escape(_preview("; ".join(approval.reasons) or "-"))
        table.add_row(approval.id, escape(approval.run_id), approval.status, _age(approval.created), reasons)
    console.print(table)


@approvals_app.command("show")
def approvals_show(approval_id: str, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """One approval in full: task, answer, reasons, a summary of the evidence, and the decision once made."""
    with _queue(config) as queue:
        approval = queue.get(approval_id)
    if as_json:
        sys.stdout.write(json.dumps(approval.to_dict()) + "\n")
        return
    console.print(f"[bold]approval {approval.id}[/] · run {escape(approval.run_id)} · {approval.status}")
    console.print(f"[dim]requested {_age(approval.created)} ago[/]")
    if approval.decided is not None:
        console.print(f"{approval.status} by {escape(str(approval.decided_by))}: {escape(str(approval.note or '-'))}")
    console.print(f"\n[bold]task[/]\n{escape(approval.task)}")
    console.print(f"\n[bold]answer[/]\n{escape(approval.answer)}")
    console.print("\n[bold]reasons[/]")
    for reason in approval.reasons or ("-",):
        console.print(f"  - {escape(reason)}")
    console.print("\n[bold]evidence[/]")
    for key, value in approval.evidence.items() or [("-", "")]:
        size = f" [dim]({len(value)} items)[/]" if isinstance(value, list | dict) else ""
        console.print(f"  {escape(key)}{size}: {escape(_preview(value))}")


def _decide(approval_id: str, *, approve: bool, by: str | None, note: str | None, config: Path | None) -> Approval:
    with _queue(config) as queue:
        approval = queue.decide(approval_id, approve=approve, by=by or _os_user(), note=note)
        if approval.id in queue.journal.owed():
            err.print(
                f"[yellow]note:[/] Redis did not take the decision ({escape(queue.health().detail)}); it is in the "
                "journal, and the queue catches up when Redis answers again (or run `smolcrew memory sync`)",
                soft_wrap=True,
            )
    return approval


def _print_decision(approval: Approval, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(approval.to_dict()) + "\n")
        return
    run, by = escape(approval.run_id), escape(str(approval.decided_by))
    note = f": {escape(approval.note)}" if approval.note else ""
    console.print(f"{approval.status} {approval.id} (run {run}) by {by}{note}", soft_wrap=True)
    # one unwrapped line, so the command can be copied as is
    console.print(f"run {run} can now be resumed: smolcrew runs resume {run}", soft_wrap=True)


@approvals_app.command("approve")
def approvals_approve(
    approval_id: str,
    by: ByOption = None,
    note: Annotated[str | None, typer.Option("--note", help="Why, for the record.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a pending answer; its run can then be resumed."""
    _print_decision(_decide(approval_id, approve=True, by=by, note=note, config=config), as_json)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: str,
    note: Annotated[str, typer.Option("--note", help="Why: the run records it as the reason.")],
    by: ByOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a pending answer, saying why; its run can then be resumed."""
    if not note.strip():
        raise _fail("--note must say why the answer is rejected")
    _print_decision(_decide(approval_id, approve=False, by=by, note=note, config=config), as_json)
