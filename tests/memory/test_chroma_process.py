"""ChromaProcessSink: Chroma and MiniLM in a worker process; lazy, contract-abiding, and losing no step when the
worker dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from smolcrew.config import load_settings
from smolcrew.errors import ModelUnavailableError, SinkError, SinkWorkerError
from smolcrew.memory.mirror import Mirror
from smolcrew.memory.records import StepRecord
from smolcrew.memory.sinks.base import MemorySink
from smolcrew.memory.sinks.chroma_process import ChromaProcessSink
from smolcrew.memory.sinks.journal import JournalSink
from smolcrew.memory.worker import WorkerProcess
from tests.memory.sink_contract import CONTRACT

ROOT = Path(__file__).resolve().parents[2]


def wait_for_pid(worker: WorkerProcess, seconds: float = 30.0) -> int:
    """The worker's pid as soon as its process exists (it may still be importing)."""
    deadline = time.monotonic() + seconds
    while (pid := worker.pid) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"no worker process within {seconds} s")
        time.sleep(0.01)
    return pid


def steps(run_id: str, count: int) -> list[StepRecord]:
    return [
        StepRecord(run_id, seq, "coder", "action", {"code": f"x = {seq}", "observations": f"step {seq} done"})
        for seq in range(count)
    ]


def test_opening_starts_nothing_and_imports_stay_light(tmp_path: Path) -> None:
    settings = load_settings(home=str(tmp_path / "home"), memory={"sinks": ["chroma"]})
    with ExitStack() as stack:
        from smolcrew.memory.stores import open_sinks

        [sink] = open_sinks(settings, stack)
        assert isinstance(sink, ChromaProcessSink) and sink.worker.pid is None and sink.worker.starts == 0
        sink.write([])
        assert sink.search("  ") == [] and sink.worker.starts == 0
    with pytest.raises(ValueError, match="exactly one"):
        ChromaProcessSink(path=tmp_path, url="http://127.0.0.1:8000")
    probe = "import sys, smolcrew.memory.worker, smolcrew.memory.sinks.chroma_process, smolcrew.memory.stores; "
    probe += "print(sorted({'torch', 'chromadb', 'sentence_transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_worker_rebuilds_errors_and_replaces_a_dead_or_hung_child() -> None:
    with WorkerProcess("fractions:Fraction", {"numerator": 3, "denominator": 4}, sink="test") as worker:
        assert worker.call("__add__", 1) == 7 / 4 and worker.starts == 1
        with pytest.raises(SinkError, match="worker process failed: AttributeError") as caught:
            worker.call("no_such_method")
        assert isinstance(caught.value, SinkError) and caught.value.sink == "test"

        pid = worker.pid
        assert pid is not None and pid != os.getpid()
        os.kill(pid, signal.SIGKILL)  # dies while idle: the next call starts another, losing nothing
        time.sleep(0.1)
        assert worker.call("__str__") == "3/4"
        assert worker.starts == 2 and worker.pid not in (None, pid)

        os.kill(worker.pid or 0, signal.SIGSTOP)  # hangs: the call gives up after timeout_s and stops it
        worker.timeout_s = 0.5
        start = time.perf_counter()
        with pytest.raises(SinkWorkerError, match=r"no answer to __str__ within 0\.5 s"):
            worker.call("__str__")
        assert time.perf_counter() - start < 4.0 and worker.pid is None
        worker.timeout_s = 30.0
        assert worker.call("__str__") == "3/4" and worker.starts == 3
    assert worker.pid is None
    with pytest.raises(SinkWorkerError, match="closed"):
        worker.call("__str__")


def test_a_child_that_dies_mid_call_fails_that_call_only() -> None:
    with WorkerProcess("time:sleep", {}, sink="test") as worker:  # a factory that cannot build: reported
        with pytest.raises(SinkWorkerError, match="could not start: TypeError"):
            worker.call("x")
        assert worker.pid is None
    with WorkerProcess("threading:Event", {}, sink="test") as worker:
        worker.call("is_set")
        errors: list[BaseException] = []

        def call() -> None:
            try:
                worker.call("wait", 30)
            except BaseException as exc:
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.3)
        os.kill(wait_for_pid(worker), signal.SIGKILL)
        caller.join(10)
        [error] = errors
        assert isinstance(error, SinkWorkerError) and error.sink == "test" and "exited with code -9" in str(error)
        assert worker.call("is_set") is False and worker.starts == 2


@pytest.mark.slow
def test_a_missing_model_says_how_to_get_it(tmp_path: Path, minilm_available: None) -> None:
    empty = tmp_path / "no-model"
    empty.mkdir()
    with ChromaProcessSink(path=tmp_path / "chroma", namespace="nomodel", models={"embeddings": str(empty)}) as sink:
        with pytest.raises(ModelUnavailableError, match="fix:"):
            sink.write(steps("run-m", 2))
        assert sink.health().ok and sink.count() == 0  # the store itself is fine


@pytest.fixture
def process_sink(tmp_path: Path, minilm_available: None) -> Iterator[ChromaProcessSink]:
    with ChromaProcessSink(path=tmp_path / "chroma", namespace=f"contract_{uuid.uuid4().hex[:8]}") as sink:
        sink.setup()
        yield sink
        sink.drop()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_sink_contract_holds_across_the_process(process_sink: ChromaProcessSink) -> None:
    rules: list[Callable[[MemorySink, str], None]] = list(CONTRACT)
    for rule in rules:
        rule(process_sink, f"run-{uuid.uuid4().hex[:12]}")
    assert process_sink.worker.starts == 1
    found = process_sink.search("step 7 done", k=50, agent="nobody")
    assert found == []


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_mirror_loses_no_step_when_the_worker_dies(tmp_path: Path, minilm_available: None) -> None:
    """The lane's first write starts the worker; killing it fails that batch. The lane marks the run pending,
    catches up from the journal with a new worker, and the store ends with every step once."""
    run_id = f"proc-{uuid.uuid4().hex[:8]}"
    journal = JournalSink(tmp_path / "journal")
    records = steps(run_id, 60)
    with ChromaProcessSink(path=tmp_path / "chroma", namespace="killed") as sink:
        mirror = Mirror(journal, [sink], state_dir=tmp_path / "state", retry_s=0.1, max_retry_s=0.5)
        try:
            for record in records[:30]:
                mirror(record)
            os.kill(wait_for_pid(sink.worker), signal.SIGKILL)
            for record in records[30:]:
                mirror(record)
            assert mirror.flush(timeout_s=120)
        finally:
            mirror.close(timeout_s=5)
        [lane] = mirror.status()
        assert lane.failures >= 1 and "SinkWorkerError" in (lane.last_error or "")
        assert lane.pending_runs == [] and not lane.behind and sink.worker.starts >= 2
        assert sink.read(run_id) == records == journal.read(run_id)
        assert sink.count() == 60
        assert sink.search("step 42 done", run_id=run_id, k=1)[0].seq == 42
    assert sink.worker.pid is None
