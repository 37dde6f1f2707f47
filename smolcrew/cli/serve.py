"""`smolcrew serve`: the HTTP API (smolcrew/api.py) under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from smolcrew.cli.options import ConfigOption

__all__ = ["serve"]

KEEP_ALIVE_S = 75
"""Keep idle connections longer than clients do (httpx and browsers drop theirs after 5-60 s): with uvicorn's
default of 5 s, a client reusing a connection as the server closes it gets a ReadError (seen in bench/load.py)."""


def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Interface to bind (default: server.host).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: server.port, 8765).")] = None,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Mount the web UI when it is installed.")] = True,
    generate_token: Annotated[
        bool,
        typer.Option("--generate-token", help="Print a new random server token (for SMOLCREW_SERVER__TOKEN); exit."),
    ] = False,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json). Binds 127.0.0.1 unless told otherwise; any other host
    needs server.token (SMOLCREW_SERVER__TOKEN, at least 32 characters: `smolcrew serve --generate-token`)."""
    if generate_token:
        import secrets

        typer.echo(secrets.token_urlsafe(32))  # stdout alone, so `export SMOLCREW_SERVER__TOKEN=$(...)` works
        return
    from rich.console import Console

    from smolcrew.config import load_settings
    from smolcrew.errors import ConfigError

    err = Console(stderr=True)
    overrides: dict[str, object] = {}
    server: dict[str, object] = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    if server:
        overrides["server"] = server
    try:
        import uvicorn

        from smolcrew.server.api import create_app

        settings = load_settings(config, **overrides)
        app = create_app(settings, mount_ui=ui)
    except ImportError as exc:
        err.print(f"[bold red]error:[/] {exc.name} is missing: pip install fastapi uvicorn python-multipart")
        raise typer.Exit(2) from exc
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    err.print(f"smolcrew API on http://{settings.server.host}:{settings.server.port} (OpenAPI: /openapi.json)")
    uvicorn.run(
        app, host=settings.server.host, port=settings.server.port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S
    )
