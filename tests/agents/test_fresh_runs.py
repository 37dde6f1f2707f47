"""A run's code starts with no variables from the run before it (smolagents keeps them by default)."""

from __future__ import annotations

from smolcrew.agents.team import FreshCodeAgent
from smolcrew.backends import ScriptedModel


def _code(body: str) -> str:
    return f"Thought: go.\n<code>\n{body}\n</code>"


def test_a_new_run_cannot_read_the_last_runs_variables() -> None:
    replies = [_code("secret = 'the first user'\nfinal_answer(secret)"), _code("final_answer(secret)"), "out of steps"]
    model = ScriptedModel(replies)
    agent = FreshCodeAgent(tools=[], model=model, max_steps=1, verbosity_level=0)
    assert agent.run("first") == "the first user"
    second = agent.run("second", return_full_result=True)
    assert second.output != "the first user"
    assert "secret" in str(agent.memory.steps[1].error)  # the name is simply not defined
