"""Cluster mode on a real 2-node Ray cluster (loopback): conversations run on both nodes with every step recorded
once in every store, any API instance cancels any run, and a node that dies mid-run loses nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray", reason="cluster mode needs ray: pip install 'smolcrew[cluster]'")

from smolcrew.config import Settings
from smolcrew.errors import ConfigError
from smolcrew.memory.sinks.journal import JournalSink
from smolcrew.memory.sinks.redis import RedisSink
from smolcrew.server.board import SharedRunLog
from smolcrew.server.cluster import RayRunner, stop_workers
from smolcrew.server.service import ChatService
from tests.cluster import LocalRayCluster, scripted_crew, slow_scripted_crew
from tests.memory.backends.redis import REDIS_URL
from tests.smolcrew.test_service import APPROVAL_REPLIES, factory, service_settings

pytestmark = pytest.mark.slow
QUESTION = "How many words are in the note?"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """Two nodes for the module; the node-death test, last in the file, leaves one."""
    cluster = LocalRayCluster()
    try:
        cluster.start_node("head")
        cluster.start_node("b")
        yield cluster
    finally:
        cluster.stop()


def cluster_settings(home: Path, ray_cluster: LocalRayCluster, **overrides: Any) -> Settings:
    namespace = "t" + uuid.uuid4().hex[:10]  # workers, run log and stores of this test alone
    engine = {"engine": "ray", "address": ray_cluster.address, "namespace": namespace, "workers": 2}
    engine["runs"] = {"num_cpus": 0.5}  # two fit on one node: a dead node's worker restarts on the other
    engine.update(overrides.pop("cluster", {}))
    return service_settings(
        home,
        cluster=engine,
        memory={"sinks": ["redis"], "namespace": namespace},
        services={"redis_url": REDIS_URL},
        **overrides,
    )


@pytest.fixture
def workers_stopped() -> Iterator[list[Settings]]:
    made: list[Settings] = []
    yield made
    for settings in made:
        stop_workers(settings)


def _end(service: ChatService, run_id: str, timeout_s: float = 90) -> dict[str, Any]:
    events = list(service.events(run_id, timeout_s=timeout_s))
    assert events and events[-1].event == "run_end", f"run {run_id} did not end: {events[-1:]}"
    return events[-1].data


def _recorded_once(settings: Settings, run_id: str) -> list[int]:
    """The run's seqs, checked equal in the journal, the Redis store and the event stream: 0..n-1, once each."""
    journal = [r.seq for r in JournalSink(settings.home / "journal").read(run_id)]
    assert journal == list(range(len(journal))) and journal
    with RedisSink.from_url(REDIS_URL, namespace=settings.memory.namespace) as redis:
        deadline = time.monotonic() + 20  # the stores are fed in the background, after the journal
        while [r.seq for r in redis.read(run_id)] != journal and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [r.seq for r in redis.read(run_id)] == journal
    log = SharedRunLog(settings)
    steps = [e.data["seq"] for e in log.get(run_id).after(None) if e.event == "step"]
    log.close()
    assert sorted(steps) == journal and len(set(steps)) == len(steps)
    return journal


def test_twenty_conversations_run_on_both_nodes_each_step_recorded_once(
    ray_cluster: LocalRayCluster, tmp_path: Path, workers_stopped: list[Settings]
) -> None:
    settings = cluster_settings(tmp_path / "home", ray_cluster)
    workers_stopped.append(settings)
    with ChatService(settings, crew_factory=scripted_crew) as service:
        conversations = [service.create_conversation().id for _ in range(20)]
        tickets = [service.send(conversation, QUESTION) for conversation in conversations]
        ends = [_end(service, ticket.run_id) for ticket in tickets]
        assert [end["state"] for end in ends] == ["success"] * 20 and {end["answer"] for end in ends} == {"5 words"}
        log = SharedRunLog(settings)
        nodes = {log.get(ticket.run_id).node for ticket in tickets}
        log.close()
        assert len(nodes) == 2  # both nodes ran conversations
        for ticket in tickets:
            _recorded_once(settings, ticket.run_id)

        again = service.send(conversations[0], "And once more?")  # a second turn sees the first
        assert _end(service, again.run_id)["state"] == "success"
        assert [info.text for info in service.turns(conversations[0])] == [QUESTION, "And once more?"]


def test_a_second_api_instance_streams_and_cancels_a_run_on_the_worker(
    ray_cluster: LocalRayCluster, tmp_path: Path, workers_stopped: list[Settings]
) -> None:
    settings = cluster_settings(tmp_path / "home", ray_cluster)
    workers_stopped.append(settings)
    with (
        ChatService(settings, crew_factory=slow_scripted_crew) as first,
        ChatService(settings, crew_factory=slow_scripted_crew) as second,
    ):
        ticket = first.send(first.create_conversation().id, QUESTION)
        deadline = time.monotonic() + 60
        while second.run_info(ticket.run_id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # inside the slow step
        asked = time.monotonic()
        assert second.cancel(ticket.run_id).cancel_requested
        end = _end(second, ticket.run_id)
        assert time.monotonic() - asked < 2
        assert end["state"] == "cancelled" and first.run_info(ticket.run_id).result == end
        _recorded_once(settings, ticket.run_id)


def test_an_approval_decided_on_another_api_instance_resumes_the_run_on_its_worker(
    ray_cluster: LocalRayCluster, tmp_path: Path, workers_stopped: list[Settings]
) -> None:
    settings = cluster_settings(tmp_path / "home", ray_cluster, validation={"approval_tools": ["language"]})
    workers_stopped.append(settings)
    with (
        ChatService(settings, crew_factory=factory(APPROVAL_REPLIES)) as first,
        ChatService(settings, crew_factory=factory(APPROVAL_REPLIES)) as second,
    ):
        ticket = first.send(first.create_conversation().id, "Say hi, please.")
        deadline = time.monotonic() + 60
        while second.run_info(ticket.run_id).status != "pending_approval" and time.monotonic() < deadline:
            time.sleep(0.05)
        waiting = [a for a in second.list_approvals("pending") if a.run_id == ticket.run_id]
        assert len(waiting) == 1
        second.decide(waiting[0].id, approve=True, by="ana")
        end = _end(first, ticket.run_id)
        assert end["state"] == "success" and end["answer"] == "hi"
        kinds = [event.event for event in second.events(ticket.run_id, timeout_s=5)]
        assert kinds.count("pending_approval") == 1 and kinds[-1] == "run_end"


def test_cluster_status_and_doctor_show_nodes_workers_and_the_queue(
    ray_cluster: LocalRayCluster, tmp_path: Path, workers_stopped: list[Settings]
) -> None:
    import json

    from typer.testing import CliRunner

    from smolcrew.cli import app

    settings = cluster_settings(tmp_path / "home", ray_cluster)
    workers_stopped.append(settings)
    config = tmp_path / "smolcrew.toml"
    cluster, memory = settings.cluster, settings.memory
    config.write_text(
        f'home = "{settings.home}"\n[cluster]\nengine = "ray"\naddress = "{cluster.address}"\n'
        f'namespace = "{cluster.namespace}"\nworkers = 2\n[cluster.runs]\nnum_cpus = 0.5\n'
        f'[memory]\nsinks = ["redis"]\nnamespace = "{memory.namespace}"\n[routing]\nmode = "manager"\n'
        '[validation]\nrules = ["non_empty"]\n[llm]\nbackend = "scripted"\nscript = ["<code>final_answer(1)</code>"]\n',
        encoding="utf-8",
    )
    with ChatService(settings, crew_factory=scripted_crew) as service:
        assert _end(service, service.send(service.create_conversation().id, QUESTION).run_id)["state"] == "success"
        shown = CliRunner().invoke(app, ["cluster", "status", "--config", str(config), "--json"])
        assert shown.exit_code == 0, shown.output
        status = json.loads(shown.output)
        assert sum(node["alive"] for node in status["nodes"]) == 2 and status["queued_runs"] == 0
        # alive, built from the service's settings (the file's differ: the status says so)
        assert [worker["state"] for worker in status["workers"]] == ["alive (other settings)"] * 2
        assert sum(worker["served"] for worker in status["workers"]) == 1
        text = CliRunner().invoke(app, ["cluster", "status", "--config", str(config)])
        assert "2 of 2 nodes alive" in text.output and "queued runs: 0" in text.output

    doctor = CliRunner().invoke(app, ["doctor", "--config", str(config), "--json"])
    checks = {check["name"]: check for check in json.loads(doctor.output)}
    assert checks["cluster stores"]["status"] == "ok" and checks["cluster address"]["status"] == "ok"
    assert checks["cluster redis"]["status"] == "warn"  # 127.0.0.1: fine here, not across machines


TEXTS = [
    f"Report {n}. The river rose {n} metres overnight. Ferries stopped at noon. Schools stay open. "
    f"Volunteers filled {n * 10} sandbags by the bridge."
    for n in range(1, 9)
]


def _summaries(pool: Any, texts: list[str]) -> list[str]:
    """What `summarize_text` (extractive: the pool's `embeddings` role) answers for each text, 8 callers at once."""
    from concurrent.futures import ThreadPoolExecutor

    from smolcrew.tools.context import use_tools
    from smolcrew.tools.language_seq2seq import SummarizeText

    def one(text: str) -> str:
        with use_tools(pool=pool):  # a thread does not inherit the caller's tool context
            return str(SummarizeText()(text=text, max_sentences=1)["summary"])

    with ThreadPoolExecutor(len(texts)) as threads:
        return list(threads.map(one, texts))


def test_a_pipeline_role_served_by_ray_serve_batches_the_tools_calls(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    from ray import serve

    from smolcrew.backends import ScriptedModel
    from smolcrew.crew import Crew
    from smolcrew.deployments import RemotePipeline, app_name, deploy, undeploy
    from smolcrew.pool import PipelinePool
    from smolcrew.server.cluster import connect

    spec = {"replicas": 1, "num_cpus": 0.5, "max_batch_size": 8, "batch_wait_s": 0.2}
    settings = cluster_settings(tmp_path / "home", ray_cluster, cluster={"deployments": {"embeddings": spec}})
    connect(settings)
    assert deploy(settings) == {"embeddings": app_name(settings, "embeddings")}
    try:
        with Crew(settings, model=ScriptedModel([])) as crew:
            assert isinstance(crew.pool.get("embeddings"), RemotePipeline)  # the Crew loads no embedding model
            served = _summaries(crew.pool, TEXTS)
        assert served == _summaries(PipelinePool(device="cpu"), TEXTS)  # the same answers as a local pipeline
        stats = serve.get_app_handle(app_name(settings, "embeddings")).stats.remote().result()
        assert sum(stats["batch_sizes"]) == len(TEXTS) and max(stats["batch_sizes"]) > 1  # calls were joined
    finally:
        undeploy(settings)


def test_local_only_stores_are_refused_with_the_fix(tmp_path: Path) -> None:
    settings = service_settings(tmp_path / "home", cluster={"engine": "ray"}, memory={"sinks": ["chroma", "graph"]})
    with pytest.raises(ConfigError) as refused:
        RayRunner(settings)
    assert "services.chroma_url" in str(refused.value) and "services.neo4j_uri" in str(refused.value)


def test_a_node_that_dies_mid_run_loses_no_step(
    ray_cluster: LocalRayCluster, tmp_path: Path, workers_stopped: list[Settings]
) -> None:
    settings = cluster_settings(tmp_path / "home", ray_cluster)
    workers_stopped.append(settings)
    with ChatService(settings, crew_factory=slow_scripted_crew) as service:
        tickets = [service.send(service.create_conversation().id, QUESTION) for _ in range(6)]
        log = SharedRunLog(settings)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            log.get(t.run_id).status == "running" and log.get(t.run_id).node not in (None, head_id(ray_cluster))
            for t in tickets
        ):
            time.sleep(0.05)
        on_b = {t.run_id for t in tickets if log.get(t.run_id).node not in (None, head_id(ray_cluster))}
        assert on_b, "no run started on node b"
        time.sleep(0.5)  # inside a slow step
        killed = time.monotonic()
        ray_cluster.kill_node("b")
        ends = {t.run_id: _end(service, t.run_id) for t in tickets}
        took = time.monotonic() - killed
        assert all(end["state"] == "success" for end in ends.values()), ends
        for run_id in on_b:
            assert log.get(run_id).node == head_id(ray_cluster)  # finished on the other node
        for t in tickets:
            _recorded_once(settings, t.run_id)
            assert service.audit_export(t.run_id)["verification"]["ok"]
        log.close()
        print(f"runs of the killed node finished elsewhere {took:.1f} s after the kill")


def head_id(cluster: LocalRayCluster) -> str:
    import ray

    return str(next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "node:__internal_head__" in n["Resources"]))
