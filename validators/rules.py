"""Rule checks on final answers: the cheapest stage of the validation cascade.

`RuleCheck` (stage "rules") runs the configured rules and returns one `Verdict` listing every broken rule as a
reason the agent can act on. Rules look only at the evidence, never at labels or expected answers.

- non_empty: an answer that is None or blank (or an empty container) fails.
- length: `str(answer)` must have between `min_length` and `max_length` characters.
- schema: the answer (or the answer parsed from a JSON string) must satisfy `answer_schema` (skipped without one).
- banned: the answer must match none of the case-insensitive regular expressions.
- well_formed: not a placeholder ("None", "null", "N/A"), not an error or traceback passed off as an answer, not
  code instead of a result, and valid JSON when it looks like JSON or the task asks for JSON.
- citations, evidence, injection: checks against the evidence, in validators/grounding.py; numbers in
  validators/numbers.py.
`require_answer` is the plain smolagents final-answer check that predates the cascade (agents/team.py uses it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ConfigError
from smolcrew.sections import RuleName
from smolcrew.validators.grounding import (
    INJECTION_CONFIDENCE,
    RuleResult,
    check_citations,
    check_evidence,
    check_injection,
    short_text,
)
from smolcrew.validators.numbers import check_numbers
from smolcrew.validators.verdict import Evidence, Verdict

if TYPE_CHECKING:
    from smolcrew.config import ValidationSettings

__all__ = ["DEFAULT_RULES", "INJECTION_CONFIDENCE", "RULES", "RuleCheck", "RuleName", "RuleResult", "answer_text"]
__all__ += ["require_answer"]

RULES: tuple[RuleName, ...] = (
    "non_empty",
    "length",
    "well_formed",
    "schema",
    "banned",
    "citations",
    "numbers",
    "evidence",
    "injection",
)
"""Every rule, cheapest first (the order `RuleCheck` runs them in)."""
DEFAULT_RULES: tuple[RuleName, ...] = (
    "non_empty",
    "length",
    "well_formed",
    "banned",
    "citations",
    "numbers",
    "evidence",
    "injection",
)


def require_answer(answer: Any, memory: Any = None, agent: Any = None) -> bool:
    """smolagents final-answer check: reject an empty answer, telling the agent what to do instead.

    Raises:
        ValueError: the answer is None or blank (smolagents shows the message to the model, which retries).
    """
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise ValueError("the final answer is empty: call final_answer() with the actual result")
    return True


def answer_text(answer: Any) -> str:
    """The answer as text, whatever it is: bytes are decoded (bad bytes become U+FFFD), None is ""."""
    if answer is None:
        return ""
    if isinstance(answer, str):
        return answer
    if isinstance(answer, bytes | bytearray):
        return bytes(answer).decode("utf-8", "replace")
    try:
        return str(answer)
    except Exception:  # an object whose __str__ breaks must not break validation
        return object.__repr__(answer)


def _non_empty(evidence: Evidence, text: str) -> RuleResult:
    answer = evidence.answer
    empty_container = isinstance(answer, dict | list | tuple | set | bytes | bytearray) and len(answer) == 0
    if answer is None or empty_container or not text.strip():
        return RuleResult.broken("non_empty: the final answer is empty; give the actual result")
    return RuleResult("non_empty", True)


_PLACEHOLDER = re.compile(r"^\W*(none|null|nil|n/?a|undefined|nan|tbd|todo|unknown|\.\.\.|\[\]|\{\})\W*$", re.I)
_ERROR = re.compile(r"^\s*(?:\w*(?:error|exception)\s*:|traceback \(most recent call last\))", re.IGNORECASE)
_CODE = re.compile(r"```|</?code>|^\s*(?:final_answer\(|def |import |from \w+ import |print\()", re.MULTILINE)
_JSON_START = re.compile(r'^(?:\{\s*"|\[\s*[\[{"]|\{\s*\}|\[\s*\])')
_ASKS_JSON = re.compile(r"\bjson\b", re.IGNORECASE)


def _well_formed(evidence: Evidence, text: str) -> RuleResult:
    stripped = text.strip()
    if not stripped:
        return RuleResult("well_formed", True)  # non_empty reports it
    if _PLACEHOLDER.match(stripped):
        return RuleResult.broken(
            f"well_formed: {short_text(stripped)!r} is a placeholder, not an answer; give the result"
        )
    if _ERROR.match(stripped):
        return RuleResult.broken(
            f"well_formed: the answer is an error message ({short_text(stripped)!r}); fix the cause and answer, "
            "or say in a sentence that the task cannot be done and why"
        )
    if _CODE.search(stripped):
        return RuleResult.broken("well_formed: the answer is code; run it and give its result instead")
    looks_json = bool(_JSON_START.match(stripped))  # JSON's double quotes: a Python repr is not flagged
    asks_json = bool(_ASKS_JSON.search(evidence.task))
    if isinstance(evidence.answer, str) and (looks_json or asks_json):
        try:
            json.loads(stripped)
        except ValueError as exc:
            if looks_json:
                return RuleResult.broken(f"well_formed: the answer is not valid JSON ({exc}); return complete JSON")
            return RuleResult.broken("well_formed: the task asks for JSON but the answer is not JSON; return JSON")
    return RuleResult("well_formed", True)


# --- the stage -----------------------------------------------------------------------------------------------


class RuleCheck:
    """The "rules" stage: runs `rules` (in `RULES` order) and fails listing every broken rule.

    Args:
        rules: which rules to run (default `DEFAULT_RULES`).
        min_length, max_length: bounds on the characters of `str(answer)` (rule `length`).
        banned: case-insensitive regular expressions the answer must not match (rule `banned`).
        answer_schema: a JSON schema the answer must satisfy (rule `schema`; skipped when None).

    Raises:
        ConfigError: an unknown rule, a banned pattern that is not a valid regex, or an invalid schema.
    """

    name = "rules"

    def __init__(
        self,
        rules: Iterable[str] = DEFAULT_RULES,
        *,
        min_length: int = 1,
        max_length: int = 20_000,
        banned: Iterable[str] = (),
        answer_schema: dict[str, Any] | None = None,
    ) -> None:
        chosen = set(rules)
        unknown = chosen - set(RULES)
        if unknown:
            raise ConfigError(f"unknown rules {sorted(unknown)}: use some of {list(RULES)}", field="validation.rules")
        self.rules: tuple[RuleName, ...] = tuple(rule for rule in RULES if rule in chosen)
        self.min_length, self.max_length = min_length, max_length
        self.banned: list[re.Pattern[str]] = []
        for pattern in banned:
            try:
                self.banned.append(re.compile(pattern, re.IGNORECASE))
            except re.error as exc:
                raise ConfigError(
                    f"banned pattern {pattern!r} is not a valid regular expression ({exc}); fix validation.banned",
                    field="validation.banned",
                ) from exc
        self.answer_schema = answer_schema
        self._validator: Any = None
        if answer_schema is not None and "schema" in self.rules:
            self._validator = _schema_validator(answer_schema)

    @classmethod
    def from_settings(cls, validation: ValidationSettings) -> RuleCheck:
        return cls(
            validation.rules,
            min_length=validation.min_length,
            max_length=validation.max_length,
            banned=validation.banned,
            answer_schema=validation.answer_schema,
        )

    def __repr__(self) -> str:
        return f"RuleCheck({', '.join(self.rules)})"

    def results(self, evidence: Evidence) -> list[RuleResult]:
        """Every configured rule's finding, in order."""
        text = answer_text(evidence.answer)
        checks: dict[str, Callable[[Evidence, str], RuleResult]] = {
            "non_empty": _non_empty,
            "length": self._length,
            "well_formed": _well_formed,
            "schema": self._schema,
            "banned": self._banned,
            "citations": check_citations,
            "numbers": check_numbers,
            "evidence": check_evidence,
            "injection": check_injection,
        }
        results = [checks[rule](evidence, text) for rule in self.rules]
        if any(result.rule == "non_empty" and not result.ok for result in results):
            # an empty answer also breaks a minimum length: one reason is enough
            results = [result for result in results if result.rule != "length" or text.strip()]
        return results

    def check(self, evidence: Evidence) -> Verdict:
        started = time.perf_counter()
        results = self.results(evidence)
        elapsed = (time.perf_counter() - started) * 1000
        broken = tuple(result.reason or f"{result.rule}: broken" for result in results if not result.ok)
        if broken:
            return Verdict(self.name, "fail", 0.0, broken, elapsed)
        notes = tuple(result.reason for result in results if result.reason)
        confidence = min((result.confidence for result in results), default=1.0)
        return Verdict(self.name, "pass", confidence, notes, elapsed)

    def _length(self, evidence: Evidence, text: str) -> RuleResult:
        size = f"length: the answer has {len(text):,} characters"
        if len(text) < self.min_length:
            return RuleResult.broken(f"{size}, under the minimum of {self.min_length:,}; give the complete answer")
        if len(text) > self.max_length:
            why = f"{size}, over the maximum of {self.max_length:,}; shorten it (summarise, no raw tool output)"
            return RuleResult.broken(why)
        return RuleResult("length", True)

    def _schema(self, evidence: Evidence, text: str) -> RuleResult:
        if self._validator is None:
            return RuleResult("schema", True)
        value = evidence.answer
        if isinstance(value, str | bytes | bytearray):
            try:
                value = json.loads(text)
            except ValueError:
                return RuleResult.broken("schema: the answer is not JSON; return JSON matching the answer schema")
        try:
            errors = [
                f"{'at ' + '/'.join(map(str, error.path)) + ': ' if error.path else ''}{short_text(error.message, 120)}"
                for error in sorted(self._validator.iter_errors(value), key=lambda error: list(error.path))[:3]
            ]
        except Exception as exc:  # an answer jsonschema cannot walk (odd types) does not satisfy the schema
            errors = [f"it cannot be checked ({type(exc).__name__})"]
        if not errors:
            return RuleResult("schema", True)
        return RuleResult.broken(f"schema: the answer does not match the answer schema: {'; '.join(errors)}")

    def _banned(self, evidence: Evidence, text: str) -> RuleResult:
        for pattern in self.banned:
            match = pattern.search(text)
            if match:
                found = short_text(match.group(0), 40)
                return RuleResult.broken(
                    f"banned: the answer contains {found!r} (banned by {pattern.pattern!r}); rephrase"
                )
        return RuleResult("banned", True)


def _schema_validator(schema: dict[str, Any]) -> Any:
    try:
        import jsonschema
    except ImportError as exc:
        raise ConfigError(
            "the schema rule needs the jsonschema package: pip install 'jsonschema>=4.20,<5'",
            field="validation.answer_schema",
        ) from exc
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(
            f"validation.answer_schema is not a valid JSON schema: {exc.message}", field="validation.answer_schema"
        ) from exc
    return validator_class(schema)
