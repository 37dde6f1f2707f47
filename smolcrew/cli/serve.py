"""`smolcrew serve`: the HTTP API (smolcrew/api.py) under uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from smolcrew.cli.options import ConfigOption

if TYPE_CHECKING:
    import uvicorn

__all__ = ["serve", "uvicorn_config"]

KEEP_ALIVE_S = 75
"""Keep idle connections longer than clients do (httpx and browsers drop theirs after 5-60 s): with uvicorn's
default of 5 s, a client reusing a connection as the server closes it gets a ReadError (seen in bench/load.py)."""
MAX_HEAD_BYTES = 64 * 1024
"""Largest request line and headers together: uvicorn's default parser (httptools) takes a header of any size,
so a client could send megabytes of it; h11 refuses past this (with 400), and its speed does not matter next to
a model's."""


def uvicorn_config(app: Any, host: str = "127.0.0.1", port: int = 8765, **extra: Any) -> uvicorn.Config:
    """uvicorn's settings for `smolcrew serve` (the tests' real servers use them too): h11 with `MAX_HEAD_BYTES`,
    keep-alive `KEEP_ALIVE_S`."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http="h11",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S,
        **{"log_level": "warning", **extra},
    )


def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Interface to bind (default: server.host).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: server.port, 8765).")] = None,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Mount the web UI when it is installed.")] = True,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", help="Run on the Ray cluster at ADDRESS (HOST:PORT, ray://HOST:10001 or auto)."),
    ] = None,
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
    from smolcrew.errors import ConfigError, ServiceError

    err = Console(stderr=True)
    overrides: dict[str, object] = {}
    server: dict[str, object] = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    if server:
        overrides["server"] = server
    if cluster:
        overrides["cluster"] = {"engine": "ray", "address": cluster}
    try:
        import uvicorn

        from smolcrew.server.api import create_app

        settings = load_settings(config, **overrides)
        app = create_app(settings, mount_ui=ui)
    except ImportError as exc:
        err.print(f"[bold red]error:[/] {exc.name} is missing: pip install fastapi uvicorn python-multipart")
        raise typer.Exit(2) from exc
    except (ConfigError, ServiceError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    err.print(f"smolcrew API on http://{settings.server.host}:{settings.server.port} (OpenAPI: /openapi.json)")
    uvicorn.Server(uvicorn_config(app, settings.server.host, settings.server.port)).run()
