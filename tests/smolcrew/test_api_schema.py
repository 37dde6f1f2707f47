"""Schemathesis against the API's OpenAPI schema: generated requests (a bounded number per operation) never get a
5xx, and every reply matches the schema (status codes, content types, bodies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("schemathesis", reason="pip install schemathesis")

import schemathesis
from hypothesis import HealthCheck, given, settings

from smolcrew.server.api import create_app
from smolcrew.server.service import ChatService
from tests.smolcrew.test_service import factory, service_settings

EXAMPLES = 15
"""Generated requests per operation: enough to hit each error path, fast enough for every test run."""


def test_no_generated_request_breaks_the_server(tmp_path: Path) -> None:
    # schemathesis.pytest.from_fixture fails to collect under this pytest (no `_nodeid`), so each operation's
    # strategy is driven here with hypothesis directly
    with ChatService(service_settings(tmp_path / "home"), crew_factory=factory()) as service:
        schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(service=service))
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case: Any) -> None:
                case.call_and_validate()

            check()
