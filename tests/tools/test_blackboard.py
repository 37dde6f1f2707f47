"""The blackboard and its two tools against a real Redis: one fresh namespace per test, dropped afterwards."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("redis", reason="the Redis client is not installed: pip install redis")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smolcrew.errors import SinkUnavailableError, ToolInputError
from smolcrew.memory.sinks.redis import RedisSink
from smolcrew.tools.blackboard import MAX_VALUE_CHARS, Blackboard, ReadNote, WriteNote
from smolcrew.tools.context import use_tools
from tests.memory.backends import redis as backend
from tests.memory.backends.redis import closed_port_url, fresh_namespace, redis

redis_client = backend.redis_client


@pytest.fixture
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    ns = fresh_namespace()
    yield ns
    RedisSink(redis_client, namespace=ns).drop()


@pytest.fixture
def board(redis_client: redis.Redis, namespace: str) -> Iterator[Blackboard]:
    """The run's blackboard, as the tools' context for the test."""
    with use_tools(blackboard=Blackboard(redis_client, namespace, "run-1", ttl_s=120)) as context:
        assert context.blackboard is not None
        yield context.blackboard


def test_notes_round_trip_through_the_tools(board: Blackboard) -> None:
    write, read = WriteNote(), ReadNote()
    values: dict[str, Any] = {
        "text": "Paris, 1889 — «Tour Eiffel» 🗼",
        "number": 3.25,
        "list": [1, "two", None, {"three": [3]}],
        "dict": {"nested": {"deep": True}},
        "nothing_but_false": False,
        "lone": "half a surrogate \ud800 here",
    }
    for key, value in values.items():
        assert key in write(key=key, value=value)
    for key, value in values.items():
        assert read(key=key) == value
    assert read() == dict(sorted(values.items()))
    assert read(key=None) == read("  ") == read()
    write("text", "replaced")
    assert read("text") == "replaced"


def test_a_missing_note_names_the_keys_there_are(board: Blackboard) -> None:
    read = ReadNote()
    with pytest.raises(ToolInputError, match="none yet"):
        read("sources")
    WriteNote()("draft", "x")
    with pytest.raises(ToolInputError, match="'draft'"):
        read("sources")
    assert read() == {"draft": "x"}


@pytest.mark.parametrize("key", ["", "   ", "a\nb", "tab\there", "nul\x00", "k" * 101, "bad \udc80"])
def test_bad_keys_are_tool_input_errors(board: Blackboard, key: str) -> None:
    with pytest.raises(ToolInputError, match="`key`"):
        WriteNote()(key=key, value="v")
    if key.strip():  # a blank key reads every note
        with pytest.raises(ToolInputError):
            ReadNote()(key=key)


@pytest.mark.parametrize(
    "value", [{1, 2}, object(), math.nan, math.inf, {"x": b"bytes"}, "v" * (MAX_VALUE_CHARS + 1)], ids=repr
)
def test_bad_values_are_tool_input_errors(board: Blackboard, value: Any) -> None:
    with pytest.raises(ToolInputError, match="`value`"):
        WriteNote()("key", value)
    assert board.items() == {}


def test_the_checked_signature_is_enforced(board: Blackboard) -> None:
    with pytest.raises(ToolInputError, match=r"write_note\(key: string, value: string \| number \| boolean \| array"):
        WriteNote()(5, "v")
    with pytest.raises(ToolInputError, match="required"):
        WriteNote()(key="k")
    with pytest.raises(ToolInputError, match="unknown"):
        ReadNote()(name="k")
    with pytest.raises(ToolInputError, match="required"):
        WriteNote()(key="k", value=None)


def test_without_a_blackboard_the_tools_say_so() -> None:
    for call in (lambda: WriteNote()("k", "v"), lambda: ReadNote()("k"), lambda: ReadNote()()):
        with pytest.raises(ToolInputError, match="no shared blackboard"):
            call()


def test_runs_are_isolated_and_notes_expire(redis_client: redis.Redis, namespace: str, board: Blackboard) -> None:
    other = Blackboard(redis_client, namespace, "run-2", ttl_s=120)
    board.write("shared", 1)
    other.write("shared", 2)
    assert board.read("shared") == 1 and other.read("shared") == 2
    assert 0 < redis_client.ttl(board.key) <= 120
    assert board.key == RedisSink(redis_client, namespace=namespace).state_key("run-1")
    assert board.delete("shared") and not board.delete("shared")
    other.clear()
    assert other.items() == {}


def test_the_sink_drop_removes_the_notes(redis_client: redis.Redis, namespace: str, board: Blackboard) -> None:
    board.write("k", "v")
    RedisSink(redis_client, namespace=namespace).drop()
    assert board.items() == {}


def test_a_down_redis_raises_sink_unavailable_with_the_fix() -> None:
    with (
        Blackboard.from_url(closed_port_url(), namespace=fresh_namespace(), run_id="r") as down,
        use_tools(blackboard=down),
    ):
        for call in (lambda: WriteNote()("k", "v"), lambda: ReadNote()("k"), lambda: ReadNote()()):
            with pytest.raises(SinkUnavailableError) as caught:
                call()
            assert "redis-server" in str(caught.value) and "SMOLCREW_SERVICES__REDIS_URL" in str(caught.value)


def test_from_url_gives_a_working_board(namespace: str) -> None:
    with Blackboard.from_url(backend.REDIS_URL, namespace=namespace, run_id="r") as made:
        made.write("k", [1])
        assert made.read("k") == [1]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(max_size=30), value=json_values | st.sets(st.integers(), max_size=2))
def test_whatever_the_agent_passes_is_stored_exactly_or_refused(board: Blackboard, key: str, value: Any) -> None:
    try:
        WriteNote()(key=key, value=value)
    except ToolInputError as exc:
        assert str(exc).strip()
        return
    assert ReadNote()(key=key) == value
