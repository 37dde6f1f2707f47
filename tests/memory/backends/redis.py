"""The Redis backend for sink tests: a real server, a fresh namespace per test, dropped afterwards.

Use the fixtures in a test module by importing them (`from tests.memory.backends.redis import make_redis_sink
# noqa: F401`) or by binding them (`make_redis_sink = backend.make_redis_sink`). The server is
`SMOLCREW_TEST_REDIS_URL` (read at import, since tests run without SMOLCREW_* variables), by default
redis://127.0.0.1:6379/0. Outside CI a missing server skips with the command that starts it; in CI it fails.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

pytest.importorskip("redis", reason="the Redis client is not installed: pip install redis")

import redis

from smolcrew.memory.sinks.redis import START_REDIS, RedisSink

__all__ = [
    "REDIS_URL",
    "closed_port_url",
    "fresh_namespace",
    "make_redis_sink",
    "redis_client",
    "redis_sink",
    "require_redis",
]

REDIS_URL = os.environ.get("SMOLCREW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    """Skip (fail in CI) unless the test server answers PING."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} is not reachable ({exc}); {START_REDIS}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()


def fresh_namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def closed_port_url() -> str:
    """A redis:// URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@contextmanager
def redis_sink(namespace: str | None = None, **options: object) -> Iterator[RedisSink]:
    """A set-up sink on the test server in `namespace` (fresh when None), whose keys are all deleted on exit.
    Keyword options go to `RedisSink.from_url`."""
    require_redis()
    ns = namespace or fresh_namespace()
    with RedisSink.from_url(REDIS_URL, namespace=ns, **options) as sink:  # type: ignore[arg-type]
        sink.drop()
        sink.setup()
        try:
            yield sink
        finally:
            sink.drop()


@pytest.fixture
def make_redis_sink() -> Callable[..., AbstractContextManager[RedisSink]]:
    """`with make_redis_sink(namespace) as sink:` a set-up RedisSink in `namespace`, dropped and closed on exit."""
    return redis_sink


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client of the test server with 1 s timeouts (skips or fails when the server is down)."""
    require_redis()
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    yield client
    client.close()
