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


def test_the_team_embedder_embeds_each_text_once() -> None:
    import numpy as np

    from smolcrew.agents.team import _embedder

    encoded: list[list[str]] = []

    class Encoder:
        def encode(self, texts: list[str], normalize_embeddings: bool) -> np.ndarray:
            encoded.append(list(texts))
            return np.array([[float(len(text)), 1.0] for text in texts])

    class Pool:
        def get(self, role: str) -> Encoder:
            return Encoder()

    embed = _embedder(Pool(), keep=3)  # type: ignore[arg-type]
    first = embed(["a tool", "an example", "a step"])
    again = embed(["a tool", "another step", "a tool"])
    assert encoded == [["a tool", "an example", "a step"], ["another step"]]  # the tool's text is not encoded again
    assert np.array_equal(again, np.array([[6.0, 1.0], [12.0, 1.0], [6.0, 1.0]])) and first.shape == (3, 2)
    embed(["another step"])
    assert encoded[-1] == ["another step"]  # past `keep` texts nothing more is kept
