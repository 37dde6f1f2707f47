"""`smolcrew runs ...` and `smolcrew memory ...` on the journal of a real (scripted) run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smolcrew.backends import ScriptedModel
from smolcrew.cli.app import app
from smolcrew.config import load_settings
from smolcrew.crew import Crew
from tests.conftest import code

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("minilm_available")


@pytest.fixture
def finished_run(isolated_env: Path) -> str:
    crew = Crew(
        load_settings(routing={"mode": "manager"}),
        model=ScriptedModel(
            [
                code('r = language(task="Say hi to the lighthouse keeper.")\nfinal_answer(r)'),
                code('final_answer("hi keeper")'),
            ]
        ),
    )
    with crew:
        result = crew.run("Greet the lighthouse keeper")
    assert result.ok
    return result.run_id


def test_runs_list_show_export(finished_run: str, tmp_path: Path) -> None:
    listed = runner.invoke(app, ["runs", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["run_id"] == finished_run and row["answer"] == "hi keeper" and row["agents"] == ["language", "manager"]
    shown = runner.invoke(app, ["runs", "show", finished_run])
    assert shown.exit_code == 0 and "manager → language" in shown.output
    out = tmp_path / "run.json"
    exported = runner.invoke(app, ["runs", "export", finished_run, "--out", str(out)])
    assert exported.exit_code == 0
    data = json.loads(out.read_text())
    assert [r["seq"] for r in data["records"]] == list(range(len(data["records"])))
    missing = runner.invoke(app, ["runs", "show", "nope"])
    assert missing.exit_code == 1 and "no run 'nope'" in missing.output


def test_memory_search_graph_and_sync(finished_run: str) -> None:
    found = runner.invoke(app, ["memory", "search", "--json", "lighthouse keeper"])
    assert found.exit_code == 0, found.output
    assert {hit["run_id"] for hit in json.loads(found.stdout)} == {finished_run}
    tree = runner.invoke(app, ["memory", "graph", finished_run])
    assert tree.exit_code == 0 and "manager → language" in tree.output and "answers" in tree.output
    synced = runner.invoke(app, ["memory", "sync"])  # no stores configured in tests: nothing owed
    assert synced.exit_code == 0


def test_memory_sync_replays_the_journal_into_redis(
    finished_run: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uuid

    from smolcrew.memory.sinks.redis import RedisSink
    from tests.memory.backends.redis import REDIS_URL, require_redis

    require_redis()

    namespace = f"sync{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SMOLCREW_MEMORY__SINKS", '["redis"]')
    monkeypatch.setenv("SMOLCREW_MEMORY__NAMESPACE", namespace)
    monkeypatch.setenv("SMOLCREW_SERVICES__REDIS_URL", REDIS_URL)
    synced = runner.invoke(app, ["memory", "sync"])
    assert synced.exit_code == 0, synced.output
    with RedisSink.from_url(REDIS_URL, namespace=namespace) as sink:
        try:
            assert len(sink.read(finished_run)) >= 5
        finally:
            sink.drop()


def test_ingest_then_search_documents(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keeper.md").write_text("# Lighthouse\n\nThe lighthouse keeper logs the weather every four hours.\n")
    (docs / "notes.xyz").write_text("unsupported")
    store = tmp_path / "store"
    first = runner.invoke(app, ["ingest", str(docs), "--store", str(store), "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["files"] == 1 and report["chunks"] >= 1 and len(report["skipped"]) == 1
    again = runner.invoke(app, ["ingest", str(docs), "--store", str(store), "--json"])
    assert json.loads(again.stdout)["chunks"] == 0 and json.loads(again.stdout)["unchanged"] == 1
    from smolcrew.tools.rag import SearchDocuments

    [hit, *_] = SearchDocuments(path=store)(query="how often is the weather logged?")
    assert hit["source"].endswith("keeper.md") and "four hours" in hit["text"]
