"""Stage "claims": every claim of an answer must rest on the evidence (validators/claims.py splits and reads the
claims). First its names, dates and numbers must be in the tool outputs or the task; then, with a verifier (the
trained cross-encoder, validators/verifier.py), the claim itself must be supported by the evidence window closest
to it. One unsupported claim fails the answer, and the reason quotes it, so the agent knows exactly what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from smolcrew.memory.sentences import sentences
from smolcrew.validators.claims import Claim, split_claims, support_of, unescape, unsupported_terms
from smolcrew.validators.grounding import listed, short_text

if TYPE_CHECKING:
    from smolcrew.validators.verdict import Evidence, Verdict

__all__ = ["ClaimCheck", "Verifier", "closest_passages", "evidence_passages", "windows"]


class Verifier(Protocol):
    """Scores how well each evidence passage supports each claim (validators/verifier.py)."""

    def support(self, claims: Sequence[str], evidence: Sequence[str]) -> list[float]:
        """For each claim, the probability (0-1) that some passage of `evidence` supports it."""
        ...


class ClaimCheck:
    """Stage "claims": every claim of the answer must rest on the evidence (its names, dates and numbers in it,
    and with a verifier, its statement supported with probability `threshold` or more). One unsupported claim
    fails the answer, and the reason quotes it. Answers with no tool output behind them are left to the rules."""

    name = "claims"

    def __init__(self, verifier: Verifier | None = None, threshold: float = 0.5, *, terms: bool = True) -> None:
        self.verifier = verifier
        self.threshold = threshold
        self.terms = terms
        """Check each claim's names, dates and numbers (off: only the verifier, for measuring it alone)."""

    def __repr__(self) -> str:
        return f"ClaimCheck(verifier={self.verifier!r}, threshold={self.threshold}, terms={self.terms})"

    def check(self, evidence: Evidence) -> Verdict:
        from smolcrew.validators.verdict import Verdict

        claims = split_claims(evidence.answer_text) if evidence.tool_outputs else []
        if not claims:
            return Verdict(self.name, "pass", 1.0)
        support = support_of(evidence)
        reasons: list[str] = []
        to_verify: list[Claim] = []
        for claim in claims:
            missing = unsupported_terms(claim, support, evidence.task) if self.terms else []
            if missing:
                reasons.append(
                    f"claims: {_quoted(claim)} states {listed(repr(m) for m in missing)}, found in no tool output "
                    "and not in the task; correct it from the tool outputs or leave it out"
                )
            else:
                to_verify.append(claim)
        confidence = 1.0
        if self.verifier is not None and to_verify:
            passages = evidence_passages(evidence)
            scores = self.verifier.support([claim.text for claim in to_verify], passages)
            confidence = min(scores)
            for claim, score in zip(to_verify, scores, strict=True):
                if score < self.threshold:
                    reasons.append(
                        f"claims: {_quoted(claim)} is not what the tool outputs say (support {score:.2f} < "
                        f"{self.threshold:.2f}); state only what they say"
                    )
        if reasons:
            return Verdict(self.name, "fail", 0.0 if len(to_verify) < len(claims) else confidence, tuple(reasons))
        return Verdict(self.name, "pass", confidence)


def _quoted(claim: Claim) -> str:
    return repr(short_text(claim.text, 90))


def evidence_passages(evidence: Evidence) -> list[str]:
    """The evidence as passages a verifier reads: the `windows` of every tool output."""
    return list(dict.fromkeys(window for output in evidence.tool_outputs for window in windows(output)))


_KEYS = re.compile(r"['\"]?\b\w+['\"]?\s*:\s*['\"]?|[{}\[\]]|Execution logs:|Last output from code snippet:")
"""A tool output's dict keys and the executor's labels: structure, not evidence."""


def windows(text: str) -> list[str]:
    """A text (a tool output, unescaped, without its keys) in windows of three sentences that overlap by one,
    so that every sentence is read with its neighbours."""
    parts = sentences(_KEYS.sub(" ", unescape(text)))
    return [window for i in range(0, max(1, len(parts) - 1), 2) if (window := " ".join(parts[i : i + 3])).strip()]


_WORD = re.compile(r"[\w']{3,}")


def closest_passages(claim: str, passages: Sequence[str], k: int = 2) -> list[int]:
    """The indexes of the `k` passages that share the most words with `claim` (the ones worth a model's time)."""
    wanted = set(_WORD.findall(claim.lower()))
    return sorted(range(len(passages)), key=lambda i: -len(wanted & set(_WORD.findall(passages[i].lower()))))[:k]
