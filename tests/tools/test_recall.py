"""Agents recall past runs through the crew's memory (journal here; Chroma's vector search is in the sink tests)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smolcrew.crew import Crew
from smolcrew.errors import ToolInputError
from smolcrew.tools.context import use_tools
from smolcrew.tools.recall import RecallMemory, TraceRun
from tests.conftest import code

pytestmark = pytest.mark.usefixtures("minilm_available")


def test_a_later_run_recalls_an_earlier_one_and_traces_it(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew(
        [
            code('r = compare_sentences(text_a="a lighthouse keeper", text_b="a lamp warden")\nfinal_answer(r)'),
            code('hits = recall_memory(query="lamp warden similarity")\nfinal_answer([h["run_id"] for h in hits])'),
        ]
    )
    first = crew.run("How similar are 'a lighthouse keeper' and 'a lamp warden'?")
    assert first.ok
    second = crew.run("Search our past runs for what we concluded about the lighthouse keeper")
    assert second.ok and second.agents == ("research",) and second.tools == ("recall_memory",)
    assert first.run_id in second.answer
    with use_tools(memory=crew.mirror):
        trace = TraceRun()(run_id=first.run_id)
    assert trace["tools"] == ["compare_sentences"]
    assert trace["delegations"][0]["from"] == "router" and trace["delegations"][0]["to"] == "language"
    assert trace["answer"] is not None and "similarity" in trace["answer"]


def test_bad_input_and_no_memory(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([code("final_answer(1)")])
    with use_tools(memory=crew.mirror):
        with pytest.raises(ToolInputError, match="between 1 and 20"):
            RecallMemory()(query="x", k=0)
        with pytest.raises(ToolInputError, match="no run 'nope'"):
            TraceRun()(run_id="nope")
    with pytest.raises(ToolInputError, match="memory is switched off"):
        RecallMemory()(query="anything")
