"""Options and helpers that every command group shares."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from smolcrew.config import Settings

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of text.")]
console = Console()


def settings_or_exit(config: Path | None) -> Settings:
    """The settings, or exit 2 printing what is wrong with them."""
    from smolcrew.config import load_settings
    from smolcrew.errors import ConfigError

    try:
        return load_settings(config)
    except ConfigError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
