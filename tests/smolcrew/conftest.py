"""Fixtures shared by the smolcrew tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from smolcrew.validators.human import ApprovalQueue


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[ApprovalQueue]:
    """An approval queue on the test Redis in a fresh namespace (deleted afterwards), which crews and the CLI
    built in the test see through the settings' env vars."""
    from tests.memory.backends.redis import REDIS_URL  # skips (fails in CI) without the redis client
    from tests.validators.test_human import approval_queue

    with approval_queue() as made:
        monkeypatch.setenv("SMOLCREW_SERVICES__REDIS_URL", REDIS_URL)
        monkeypatch.setenv("SMOLCREW_MEMORY__NAMESPACE", made.namespace)
        yield made
