"""`smolcrew validate ...`: the claim verifier (validators/verifier.py) and checking one answer by hand.

Exit codes: 0 done (for `check`: the answer passed); 1 the answer did not pass; 2 a bad option or config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from smolcrew.config import Settings

__all__ = ["validate_app"]

validate_app = typer.Typer(
    help="The validation cascade: train the claim verifier, check an answer.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]


def _settings(config: Path | None) -> Settings:
    from smolcrew.config import load_settings
    from smolcrew.errors import ConfigError

    try:
        return load_settings(config)
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc


@validate_app.command()
def train(config: ConfigOption = None) -> None:
    """Train the claim verifier once (a few minutes on a CPU) and cache it under the home."""
    from smolcrew.validators.verifier import train_verifier

    settings = _settings(config)
    folder = train_verifier(settings.cache_dir, progress=lambda line: err.print(escape(line)))
    metrics = json.loads((folder / "metrics.json").read_text())
    console.print(
        f"claim verifier ready in {escape(str(folder))}: held-out synthetic accuracy "
        f"{metrics['held_out_accuracy']:.1%} on {metrics['held_out_pairs']:,} pairs"
    )


@validate_app.command()
def check(
    task: Annotated[str, typer.Argument(help="The request the answer answers.")],
    answer: Annotated[str, typer.Argument(help="The answer to check.")],
    evidence: Annotated[
        list[Path], typer.Option("--evidence", "-e", help="A file holding a tool output (repeatable).")
    ] = [],  # noqa: B006 - typer reads the default
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of text.")] = False,
) -> None:
    """Run the configured cascade on one answer and the tool outputs it rests on."""
    from smolcrew.errors import SmolcrewError
    from smolcrew.validators.cascade import Cascade
    from smolcrew.validators.verdict import Evidence

    settings = _settings(config)
    try:
        outputs = tuple(path.read_text(encoding="utf-8", errors="replace") for path in evidence)
        cascade = Cascade.from_settings(settings.validation, cache_dir=settings.cache_dir)
    except (OSError, SmolcrewError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc
    result = cascade.check(Evidence(task=task, answer=answer, tool_outputs=outputs, tools=("evidence",) * len(outputs)))
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
    else:
        console.print(f"{result.outcome} (confidence {result.confidence:.2f})")
        for reason in result.reasons:
            console.print(f"  - {escape(reason)}", soft_wrap=True)
    raise typer.Exit(0 if result.passed else 1)
