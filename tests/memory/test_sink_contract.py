"""The sink contract (sink_contract.py) against every backend: one namespace per test, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from smolcrew.memory.sinks.base import MemorySink
from smolcrew.memory.sinks.journal import JournalSink
from smolcrew.memory.sinks.memory import InMemorySink
from tests.memory.sink_contract import CONTRACT

SinkFactory = Callable[[str], AbstractContextManager[MemorySink]]


@contextmanager
def _journal(tmp_root: Path, namespace: str) -> Iterator[MemorySink]:
    sink = JournalSink(tmp_root / namespace)
    sink.setup()
    yield sink
    sink.drop()


@contextmanager
def _memory(namespace: str) -> Iterator[MemorySink]:
    yield InMemorySink()


BACKENDS = ["journal", "memory", "chroma", "graph", "redis"]


@pytest.fixture(params=BACKENDS)
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemorySink]:
    namespace = f"contract_{uuid.uuid4().hex[:10]}"
    if request.param == "journal":
        factory: SinkFactory | None = lambda ns: _journal(tmp_path, ns)  # noqa: E731
    elif request.param == "memory":
        factory = _memory
    else:
        factory = request.getfixturevalue(f"make_{request.param}_sink")  # from tests/memory/backends/
    with factory(namespace) as made:
        yield made


@pytest.mark.timeout(180)
@pytest.mark.parametrize("rule", CONTRACT, ids=lambda rule: rule.__name__)
def test_contract(rule: Callable[[MemorySink, str], None], sink: MemorySink) -> None:
    rule(sink, f"run-{uuid.uuid4().hex[:12]}")
