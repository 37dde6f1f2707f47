"""The LLM as a claim judge, by token probabilities: stage "llm_claims" (`validation.judge = "llm_claims"`).

A generated 0-10 grade from a small model is nearly blind (the 0.5B gave 10/10 to most hallucinated answers and
its scores cannot be thresholded). Here the model reads one claim and the evidence window closest to it, and we
read, from one forward pass, the probability it gives to "Yes" against "No" as its first token
(`logprobs`/`top_logprobs` of llama.cpp's OpenAI-style completion; no text is generated beyond that token). That
number can be thresholded and calibrated like any classifier's (bench/claims.py chooses the threshold on the
tuning split). It needs a model whose completions report log probabilities: the embedded llama.cpp backend.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ConfigError, StageError
from smolcrew.validators.claim_check import closest_passages, evidence_passages
from smolcrew.validators.claims import split_claims
from smolcrew.validators.grounding import short_text

if TYPE_CHECKING:
    from smolagents.models import Model

    from smolcrew.validators.verdict import Evidence, Verdict

__all__ = ["LLMClaimJudge", "yes_probability"]

SYSTEM = "You check whether a claim is supported by the evidence. Reply with Yes or No only."
QUESTION = (
    "Evidence:\n{evidence}\n\nClaim: {claim}\n\nDoes the evidence state the claim (every name, number and date in "
    "it, and the relation between them)? Reply Yes or No."
)


def yes_probability(response: dict[str, Any]) -> float:
    """P(yes) / (P(yes) + P(no)) over the first token's top log probabilities of an OpenAI-style response.

    Raises:
        StageError: the response holds no log probabilities, or neither answer among them.
    """
    try:
        top = response["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError) as exc:
        raise StageError("llm_claims: the model's reply carries no log probabilities", stage="llm_claims") from exc
    yes = no = 0.0
    for entry in top:
        word = str(entry.get("token", "")).strip().lower()
        if word in ("yes", "no"):
            probability = math.exp(float(entry["logprob"]))
            yes, no = (yes + probability, no) if word == "yes" else (yes, no + probability)
    if yes + no == 0.0:
        raise StageError("llm_claims: neither Yes nor No is among the model's likely first tokens", stage="llm_claims")
    return yes / (yes + no)


class LLMClaimJudge:
    """Each claim of the answer, judged by the LLM's P(yes) against the closest evidence window; a claim under
    `threshold` fails the answer, named in the reasons. Answers with no tool output behind them pass untouched
    (the `evidence` rule handles them)."""

    name = "llm_claims"

    def __init__(self, model: Model, threshold: float = 0.5) -> None:
        complete = getattr(model, "complete", None)
        if not callable(complete):
            raise ConfigError(
                "validation.judge 'llm_claims' needs a model that reports token probabilities (the embedded "
                'llama.cpp backend); use validation.judge = "llm" with this one',
                field="validation.judge",
            )
        self.model = model
        self.threshold = threshold
        self._complete: Any = complete  # llama.cpp's raw completion, which reports log probabilities

    def __repr__(self) -> str:
        return f"LLMClaimJudge({self.model!r}, threshold={self.threshold})"

    def probability(self, claim: str, evidence: str) -> float:
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": QUESTION.format(evidence=evidence, claim=claim)},
        ]
        request = {"messages": messages, "max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": 10}
        return yes_probability(self._complete(request))

    def check(self, evidence: Evidence) -> Verdict:
        from smolcrew.validators.verdict import Verdict

        claims = split_claims(evidence.answer_text) if evidence.tool_outputs else []
        passages = evidence_passages(evidence)
        if not claims or not passages:
            return Verdict(self.name, "pass", 1.0)
        scores = [
            self.probability(claim.text, passages[closest_passages(claim.text, passages, 1)[0]]) for claim in claims
        ]
        failing = [
            f"llm_claims: {short_text(claim.text, 90)!r} is not what the tool outputs say (P(yes) {score:.2f} < "
            f"{self.threshold:.2f}); state only what they say"
            for claim, score in zip(claims, scores, strict=True)
            if score < self.threshold
        ]
        if failing:
            return Verdict(self.name, "fail", min(scores), tuple(failing))
        return Verdict(self.name, "pass", min(scores))
