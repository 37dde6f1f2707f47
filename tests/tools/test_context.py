"""The tool context: tools find the pool, workspace, memory and blackboard at call time, never in `__init__`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from smolcrew.agents.specialists import SPECIALISTS
from smolcrew.errors import ToolInputError
from smolcrew.pool import PipelinePool
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.context import (
    ToolContext,
    current_blackboard,
    current_memory,
    current_pool,
    current_workspace,
    use_tools,
)
from smolcrew.tools.files import Workspace


class WhereAmI(CheckedTool):
    name = "where_am_i"
    description = "Says which pool and workspace it sees (a test tool)."
    inputs = {"label": {"type": "string", "description": "Anything."}}
    output_type = "object"

    def forward(self, label: str) -> dict[str, Any]:
        return {"pool": current_pool(), "workspace": current_workspace(), "memory": current_memory()}


def test_blocks_nest_and_restore(tmp_path: Path) -> None:
    outer, inner = PipelinePool(device="cpu"), PipelinePool(device="cpu")
    workspace = Workspace(tmp_path)
    default_pool = current_pool()
    assert current_pool() is default_pool and current_blackboard() is None and current_memory() is None
    with use_tools(pool=outer, workspace=workspace) as context:
        assert context == ToolContext(pool=outer, workspace=workspace)
        with use_tools(pool=inner):
            assert current_pool() is inner and current_workspace() is workspace  # the rest is kept
        assert current_pool() is outer
        with use_tools(ToolContext(pool=inner)):
            assert current_pool() is inner and current_workspace() is not workspace  # a whole context replaces
    assert current_pool() is default_pool and current_workspace() is not workspace


def test_defaults_outside_any_block_are_one_pool_and_a_temp_workspace() -> None:
    assert current_pool() is current_pool() and isinstance(current_pool(), PipelinePool)
    assert current_workspace().root.name == "smolcrew"


def test_a_bound_tool_uses_its_context_in_any_thread(tmp_path: Path) -> None:
    """smolagents runs agent code in a worker thread, where a caller's block does not reach: the binding does."""
    bound, ambient = PipelinePool(device="cpu"), PipelinePool(device="cpu")
    tool, loose = WhereAmI(), WhereAmI()
    tool.context = ToolContext(pool=bound, workspace=Workspace(tmp_path))
    with use_tools(pool=ambient), ThreadPoolExecutor(1) as worker:
        assert tool(label="x")["pool"] is bound and loose(label="x")["pool"] is ambient
        assert worker.submit(tool, label="x").result()["pool"] is bound
        in_worker = worker.submit(loose, label="x").result()["pool"]
    assert in_worker is not ambient  # a block does not reach smolagents' worker thread: why the team binds tools
    assert tool(label="x")["workspace"].root == tmp_path


def test_specialists_bind_every_tool_to_the_run(tmp_path: Path) -> None:
    pool, workspace = PipelinePool(device="cpu"), Workspace(tmp_path)
    for spec in SPECIALISTS.values():
        for tool in spec.build_tools(pool, workspace, memory=None):
            assert isinstance(tool, CheckedTool)
            assert tool.context == ToolContext(pool=pool, workspace=workspace, memory=None), tool.name


def test_tools_take_no_objects_in_init() -> None:
    for spec in SPECIALISTS.values():
        for factory in spec.tool_factories:
            factory()  # every tool builds with no arguments
    with pytest.raises(TypeError):
        SPECIALISTS["language"].tool_factories[0](PipelinePool(device="cpu"))


def test_memory_tools_without_memory_say_so() -> None:
    from smolcrew.tools.recall import RecallMemory, TraceRun

    with pytest.raises(ToolInputError, match="memory is switched off"):
        RecallMemory()(query="anything")
    with pytest.raises(ToolInputError, match="memory is switched off"):
        TraceRun()(run_id="r1")
