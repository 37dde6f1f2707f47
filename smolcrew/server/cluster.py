"""Runs on a Ray cluster (`[cluster] engine = "ray"`): `RayRunner` hands each turn to a run worker, a Ray actor that
keeps a warm Crew and runs one turn at a time.

Why actors and not tasks: a Crew takes seconds to build (models, router, stores), so each worker builds one and
keeps it; throughput grows with the number of workers (`cluster.workers`), placed by Ray (`cluster.runs`).

- Workers are named, detached actors (`smolcrew-runs-<i>` in `cluster.namespace`): every API instance of the
  namespace finds the same workers, and they stay warm across server restarts. The API instances of a namespace
  share one config: a server whose settings differ from the workers' replaces them.
- A conversation sticks to one worker (the least loaded one when its first turn came, recorded in Redis); a worker
  runs the turns it gets one after another, so a conversation's turns run in order whichever API instance took
  them.
- A worker that dies with its node is restarted by Ray on another node (`max_restarts=-1`) and its unfinished
  calls are retried there (`max_task_retries=-1`). A retried turn finds its run `running` in the shared run log
  (server/board.py) and its records in the shared journal, and continues from them (`Crew.resume`): recorded steps
  are kept, not redone, and every store is idempotent on (run, seq).
- Run state and events live in Redis; the journal, audit log, uploads and run outputs in the home folder, which
  every node mounts at the same path (README, Scale out).

This module imports Ray: the service loads it only in cluster mode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from smolcrew.errors import ConfigError, ServiceError
from smolcrew.server.board import SharedRun, SharedRunLog
from smolcrew.server.runs import error_result

if TYPE_CHECKING:
    from smolcrew.config import Settings
    from smolcrew.conversation import ChatSession
    from smolcrew.crew import Crew
    from smolcrew.memory.records import StepRecord
    from smolcrew.result import RunResult
    from smolcrew.server.crews import Roots
    from smolcrew.server.runs import Conversation

__all__ = [
    "RayRunner",
    "RunWorker",
    "cluster_status",
    "connect",
    "refuse_local_stores",
    "settings_digest",
    "stop_workers",
    "worker_names",
]

CrewFactory = Callable[["Settings"], "Crew"]


def refuse_local_stores(settings: Settings) -> None:
    """Raises ConfigError naming every store cluster mode cannot use, with its fix."""
    from smolcrew.memory.stores import local_only_stores

    problems = local_only_stores(settings)
    if problems:
        raise ConfigError(
            "cluster.engine = 'ray' needs stores every node shares:\n  " + "\n  ".join(problems),
            field="cluster.engine",
        )


def connect(settings: Settings) -> None:
    """Join the Ray cluster at `cluster.address` (once per process). Raises ServiceError with the fix."""
    if ray.is_initialized():
        return
    cluster = settings.cluster
    try:
        ray.init(address=cluster.address, namespace=cluster.namespace, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ServiceError(
            f"cannot join the Ray cluster at {cluster.address!r} ({exc}); start one (`ray start --head`) or set "
            "cluster.address (`smolcrew serve --cluster HOST:PORT`)"
        ) from exc


def worker_names(settings: Settings) -> list[str]:
    """The run workers' actor names (in `cluster.namespace`)."""
    return [f"smolcrew-runs-{index}" for index in range(settings.cluster.workers)]


def settings_digest(settings: Settings) -> str:
    """What a worker's Crew is built from, as a short hash (the API instance's own `server` section aside)."""
    return hashlib.sha256(settings.model_dump_json(exclude={"server"}).encode()).hexdigest()[:12]


def stop_workers(settings: Settings) -> int:
    """Kill the run workers of `settings` (detached, they outlive the servers that made them); returns how many.
    A run still on a worker never ends: let the runs finish (or cancel them) first."""
    connect(settings)
    stopped = 0
    for name in worker_names(settings):
        try:
            actor = ray.get_actor(name, namespace=settings.cluster.namespace)
        except ValueError:  # never started, or stopped already
            continue
        ray.kill(actor, no_restart=True)
        stopped += 1
    return stopped


def cluster_status(settings: Settings, timeout_s: float = 5.0) -> dict[str, Any]:
    """Nodes, run workers, deployments and queue depth of the cluster `settings` point at (joins it)."""
    connect(settings)
    nodes = [
        {
            "node_id": node["NodeID"],
            "address": node.get("NodeManagerAddress"),
            "alive": bool(node.get("Alive")),
            "resources": {k: v for k, v in node.get("Resources", {}).items() if not k.startswith("node:")},
        }
        for node in ray.nodes()
    ]
    workers: list[dict[str, Any]] = []
    for name in worker_names(settings):
        try:
            actor = ray.get_actor(name, namespace=settings.cluster.namespace)
            where: dict[str, Any] = ray.get(actor.where.remote(), timeout=timeout_s)  # type: ignore[assignment]
            same = where.get("settings") == settings_digest(settings)
            workers.append({"name": name, "state": "alive" if same else "alive (other settings)", **where})
        except ValueError:
            workers.append({"name": name, "state": "not started (the first server in cluster mode starts it)"})
        except ray.exceptions.GetTimeoutError:
            workers.append({"name": name, "state": f"no answer in {timeout_s:.0f} s (restarting?)"})
    deployments: dict[str, str] = {}
    if settings.cluster.deployments:
        from ray import serve

        apps = serve.status().applications
        for role in settings.cluster.deployments:
            app = apps.get(f"{settings.cluster.namespace}-{role}")
            deployments[role] = str(app.status) if app is not None else "not deployed"
    log = SharedRunLog(settings)
    try:
        queued = log.queued()
    finally:
        log.close()
    return {
        "address": settings.cluster.address,
        "nodes": nodes,
        "workers": workers,
        "deployments": deployments,
        "queued_runs": queued,
    }


class RunWorker:
    """One run worker (a Ray actor): a warm Crew and the conversations' sessions it has served. `where` answers
    from a concurrency group of its own, so a busy worker still says where it is and what it runs."""

    def __init__(self, settings: Settings, crew_factory: CrewFactory | None = None) -> None:
        self.digest = settings_digest(settings)  # of the settings as given: the servers compare theirs with it
        if settings.pool.threads is None:  # torch computes on the CPUs the worker reserved, not on the whole node's
            threads = max(1, round(settings.cluster.runs.num_cpus))
            settings = settings.model_copy(update={"pool": settings.pool.model_copy(update={"threads": threads})})
        self.settings = settings
        self.current: str | None = None
        self.served = 0
        self._factory = crew_factory
        self._crew: Crew | None = None
        self._log = SharedRunLog(settings)
        self._sessions: dict[str, ChatSession] = {}

    @property
    def crew(self) -> Crew:
        if self._crew is None:
            from smolcrew.crew import Crew

            self._crew = self._factory(self.settings) if self._factory else Crew(self.settings)
        return self._crew

    @ray.method(concurrency_group="status")
    def where(self) -> dict[str, Any]:
        """Which node and process this worker runs in, the run it is on, how many turns it took."""
        import os

        node = ray.get_runtime_context().get_node_id()
        return {
            "node_id": node,
            "pid": os.getpid(),
            "current": self.current,
            "served": self.served,
            "settings": self.digest,
        }

    def turn(self, run_id: str, task: str, images: Sequence[Any], roots: tuple[Path, ...], slot: int) -> None:
        run = self._log.get(run_id)
        self.current, self.served = run_id, self.served + 1
        try:
            run.taken_by(ray.get_runtime_context().get_node_id())
            if run.start():
                result = self._session(run.conversation_id).send(task, images=list(images), **self._hooks(run, roots))
            elif run.status == "running" and not run.ended():  # retried: the first attempt died with its node
                result = self._continue(run, task, list(images), roots)
            else:
                return  # cancelled while it waited
            _finished(run, result)
        except Exception as exc:  # any failure must end the stream, not hang its subscribers
            run.end(error_result(run, f"{type(exc).__name__}: {exc}"))
        finally:
            self.current = None
            self._log.handed(slot, -1)

    def resume(self, run_id: str, roots: tuple[Path, ...]) -> None:
        """Finish a run after its approval was decided."""
        run = self._log.get(run_id)
        try:
            result = self.crew.resume(run_id, **self._hooks(run, roots, run_id=False))
            if run.conversation_id in self._sessions:
                self._sessions[run.conversation_id].settle(result)  # later turns see the settled answer
            _finished(run, result)
        except Exception as exc:  # as in `turn`
            run.end(error_result(run, f"{type(exc).__name__}: {exc}"))

    def _hooks(self, run: SharedRun, roots: tuple[Path, ...], *, run_id: bool = True) -> dict[str, Any]:
        def on_step(record: StepRecord) -> None:
            run.append("step", record.to_dict())

        hooks: dict[str, Any] = {"on_step": on_step, "file_roots": roots, "cancelled": lambda: run.cancel_requested}
        return {**hooks, "run_id": run.run_id} if run_id else hooks

    def _session(self, conversation_id: str) -> ChatSession:
        if conversation_id not in self._sessions:  # rebuilt from the shared journal on a worker's first turn
            self._sessions[conversation_id] = self.crew.chat(conversation_id)
        session = self._sessions[conversation_id]
        session.crew = self.crew
        return session

    def _continue(self, run: SharedRun, task: str, images: list[Any], roots: tuple[Path, ...]) -> RunResult:
        journal = self.crew.mirror.journal if self.crew.mirror is not None else None
        started = journal is not None and any(r.kind == "run_start" for r in journal.read(run.run_id))
        if not started:  # it died before its first record: run it from the start
            return self._session(run.conversation_id).send(task, images=images, **self._hooks(run, roots))
        result = self.crew.resume(run.run_id, **self._hooks(run, roots, run_id=False))
        self._session(run.conversation_id).settle(result, task)
        return result


def _finished(run: SharedRun, result: RunResult) -> None:
    if result.state == "pending_approval":
        run.pending(result.to_dict())
    else:
        run.end(result.to_dict())


class RayRunner:
    """Turns and resumptions on the cluster's run workers (see the module docstring).

    Args:
        settings: `cluster.address`, `namespace`, `workers` and `runs` place the workers; each builds its Crew
            from these settings.
        crew_factory: builds each worker's Crew instead (tests: a scripted model); Ray pickles it to the workers.
    """

    def __init__(self, settings: Settings, crew_factory: CrewFactory | None = None) -> None:
        if settings.cluster.engine != "ray":
            raise ConfigError("RayRunner needs cluster.engine = 'ray'", field="cluster.engine")
        refuse_local_stores(settings)
        connect(settings)
        if settings.cluster.deployments:
            from smolcrew.deployments import deploy

            deploy(settings)
        self.settings = settings
        placement = settings.cluster.runs
        options: dict[str, Any] = {
            "lifetime": "detached",
            "namespace": settings.cluster.namespace,  # not the process's: it joined the cluster once, maybe for others
            "get_if_exists": True,
            "max_restarts": -1,
            "max_task_retries": -1,
            "num_cpus": placement.num_cpus,
            "num_gpus": placement.num_gpus,
            "resources": dict(placement.resources) or None,
            "scheduling_strategy": "SPREAD",
        }
        worker = ray.remote(concurrency_groups={"status": 1})(RunWorker)  # type: ignore[call-overload]
        self._log = SharedRunLog(settings)
        self._actors = [
            worker.options(name=name, **options).remote(settings, crew_factory) for name in worker_names(settings)
        ]
        digest = settings_digest(settings)
        for index, actor in enumerate(self._actors):  # a worker of other settings gives way: one namespace, one config
            if ray.get(actor.where.remote(), timeout=120)["settings"] != digest:
                ray.kill(actor, no_restart=True)
                self._actors[index] = worker.options(name=worker_names(settings)[index], **options).remote(
                    settings, crew_factory
                )

    def __repr__(self) -> str:
        return f"RayRunner({self.settings.cluster.address!r}, workers={len(self._actors)})"

    @property
    def workers(self) -> int:
        return len(self._actors)

    def turn(self, conversation: Conversation, run: Any, task: str, images: list[Any], roots: Roots) -> None:
        slot = self._log.worker_for(conversation.id, len(self._actors))
        self._log.handed(slot, +1)
        self._actors[slot].turn.remote(run.run_id, task, images, roots(conversation.id), slot)

    def resume(self, run_id: str, run: Any, conversation: Conversation | None, roots: Roots) -> None:
        if conversation is None:  # a run this cluster's log has forgotten: any worker finishes it from the journal
            self._actors[0].resume.remote(run_id, ())
            return
        slot = self._log.worker_for(conversation.id, len(self._actors))
        self._actors[slot].resume.remote(run_id, roots(conversation.id))

    def model_check(self) -> tuple[bool, str]:
        """Whether the cluster answers, and how many of its nodes are alive."""
        try:
            alive = [node for node in ray.nodes() if node.get("Alive")]
        except Exception as exc:  # any failure to reach the cluster means not ready
            return False, f"Ray cluster unreachable: {exc}"
        return bool(alive), f"Ray: {len(alive)} nodes alive, {len(self._actors)} run workers"

    def shutdown(self) -> None:
        """Nothing to stop: the runs carry on on the cluster (any API instance streams and ends them)."""

    def close(self) -> None:
        """The workers stay warm for the next server (`smolcrew cluster stop-workers` lets them go)."""
        self._log.close()
