"""`smolcrew cluster ...`: the Ray cluster that runs the server's runs in cluster mode (`[cluster] engine = "ray"`).

Exit codes: 0 done; 2 not in cluster mode, a bad config, Ray missing, or the cluster or Redis unreachable (the
message says what to start or set).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smolcrew.cli.options import ConfigOption, JsonOption

__all__ = ["cluster_app"]

cluster_app = typer.Typer(help="The Ray cluster of cluster mode: status, stop its run workers.", no_args_is_help=True)
console = Console()
err = Console(stderr=True, soft_wrap=True)
AddressOption = Annotated[
    str | None, typer.Option("--address", help="The Ray cluster (default: cluster.address); implies engine ray.")
]


def _settings(config: Any, address: str | None) -> Any:
    from smolcrew.config import load_settings
    from smolcrew.errors import ConfigError

    cluster: dict[str, str] = {"engine": "ray", "address": address} if address else {}
    try:
        settings = load_settings(config, **({"cluster": cluster} if cluster else {}))
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if settings.cluster.engine != "ray":
        err.print("[bold red]error:[/] cluster.engine is 'local': set it to 'ray' (or pass --address HOST:PORT)")
        raise typer.Exit(2)
    return settings


def _cluster() -> Any:
    try:
        from smolcrew.server import cluster
    except ImportError as exc:
        err.print(f"[bold red]error:[/] {exc.name} is missing: pip install 'smolcrew[cluster]'")
        raise typer.Exit(2) from exc
    return cluster


@cluster_app.command("status")
def status(config: ConfigOption = None, address: AddressOption = None, as_json: JsonOption = False) -> None:
    """Nodes (alive, resources), run workers (node, current run, turns served), deployments, queued runs."""
    from smolcrew.errors import ServiceError

    settings = _settings(config, address)
    try:
        found = _cluster().cluster_status(settings)
    except ServiceError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(found, indent=2, default=str))
        return
    alive = sum(node["alive"] for node in found["nodes"])
    console.print(f"Ray cluster {found['address']}: {alive} of {len(found['nodes'])} nodes alive")
    nodes = Table("node", "address", "alive", "resources")
    for node in found["nodes"]:
        resources = ", ".join(f"{key} {value:g}" for key, value in sorted(node["resources"].items()))
        nodes.add_row(node["node_id"][:12], str(node["address"]), "yes" if node["alive"] else "no", resources)
    console.print(nodes)
    workers = Table("run worker", "state", "node", "running", "turns served")
    for worker in found["workers"]:
        node = str(worker.get("node_id") or "")[:12]
        workers.add_row(
            worker["name"], worker["state"], node, str(worker.get("current") or "-"), str(worker.get("served", "-"))
        )
    console.print(workers)
    for role, state in found["deployments"].items():
        console.print(f"deployment {role}: {state}")
    console.print(f"queued runs: {found['queued_runs']}")


@cluster_app.command("stop-workers")
def stop_workers(config: ConfigOption = None, address: AddressOption = None) -> None:
    """Kill this config's run workers (they outlive servers to stay warm); the next server starts new ones."""
    settings = _settings(config, address)
    stopped = _cluster().stop_workers(settings)
    console.print(f"stopped {stopped} run workers")
