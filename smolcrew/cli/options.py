"""Options and helpers that every command group shares, and the one place that turns a user's error into CLI output.

A user error (a named smolcrew error in `USER_ERRORS`, or a bad option or argument) prints one line on stderr,
`error: <what>; <fix>`, and exits 2. Any other exception keeps its traceback (exit 1): it is a bug to report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from smolcrew.errors import ConfigError, RequestError, RunNotFoundError

if TYPE_CHECKING:
    from smolcrew.config import Settings

__all__ = [
    "USER_ERRORS",
    "ConfigOption",
    "CrewGroup",
    "JsonOption",
    "at_least_one",
    "ensure_home",
    "fail",
    "one_line",
    "read_request",
    "settings_or_exit",
]

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of text.")]
console = Console()
err = Console(stderr=True, soft_wrap=True)

USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, RequestError, RunNotFoundError)
"""Errors the user fixes (a setting, the request, a run id): one line and exit 2, never a traceback."""
STDIN = "-"


def one_line(message: str) -> str:
    """`message` on one line: its lines joined by "; " (by a space after a line that ends in ":")."""
    parts = [part.strip() for part in message.splitlines() if part.strip()]
    text = parts[0] if parts else "unknown error"
    for part in parts[1:]:
        text += (" " if text.endswith(":") else "; ") + part
    return text


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: <message>` as one line on stderr; return the Exit (with `code`) for the caller to raise."""
    err.print(f"[bold red]error:[/] {escape(one_line(message))}")
    return typer.Exit(code)


class CrewGroup(TyperGroup):
    """The `smolcrew` command group: every command and subcommand runs inside `invoke`, so a user error raised
    anywhere below (while parsing an option, or in a command) is answered here, in one line, with exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:  # an option's or argument's value (also: a missing one)
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            raise fail(f"{exc.format_message().rstrip('.')} (see `{where} --help`)") from exc
        except USER_ERRORS as exc:
            raise fail(str(exc)) from exc


def at_least_one(value: int | None) -> int | None:
    """Option callback: a count (a step budget) must be 1 or more."""
    if value is not None and value < 1:
        raise typer.BadParameter(f"{value} is not a step budget; give a whole number of 1 or more")
    return value


def read_request(request: str | None, file: Path | None) -> str:
    """The request: the argument itself, stdin when it is `-`, or the text of `file` (UTF-8).

    Raises:
        RequestError: none or both given, the file or stdin unreadable or not UTF-8, or the request empty.
    """
    how = 'give it once: as an argument (smolcrew run "..."), as - to read stdin, or with --file PATH'
    if request is not None and file is not None:
        raise RequestError(f"both a request argument and --file {file} were given; {how}")
    if file is not None:
        source = f"--file {file}"
        try:
            text = file.read_bytes().decode("utf-8-sig")
        except OSError as exc:
            raise RequestError(f"cannot read {source}: {exc.strerror or exc}; give a readable text file") from exc
        except UnicodeDecodeError as exc:
            raise RequestError(f"{source} is not UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    elif request == STDIN:
        source = "stdin"
        try:
            text = typer.get_binary_stream("stdin").read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RequestError(f"stdin is not UTF-8 text ({exc.reason}); pipe in UTF-8 text") from exc
    elif request is None:
        raise RequestError(f"no request given; {how}")
    else:
        source, text = "the request", request
    if not text.strip():
        raise RequestError(f"{source} is empty; say what the crew should do: {how}")
    return text


def ensure_home(settings: Settings) -> None:
    """Make the smolcrew home (`home`, env SMOLCREW_HOME) if it is missing.

    Raises:
        ConfigError: it cannot be made, or is not a folder this process can write.
    """
    home = settings.home
    fix = "set SMOLCREW_HOME (or `home` in smolcrew.toml) to a folder you can write"
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"the home folder {home} cannot be made ({exc.strerror or exc}); {fix}", field="home"
        ) from exc
    if not home.is_dir() or not os.access(home, os.W_OK | os.X_OK):
        raise ConfigError(f"the home folder {home} is not a folder this user can write; {fix}", field="home")


def settings_or_exit(config: Path | None) -> Settings:
    """The settings, or exit 2 printing what is wrong with them (one line, on stderr)."""
    from smolcrew.config import load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
