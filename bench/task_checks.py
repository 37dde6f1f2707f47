"""How the task suite judges a run: checks written with each task (no model judges), and why a run failed.

A task's `check` is a list of checks that must all pass. Kinds (text comparisons ignore case and runs of white
space):

- `contains_all` {terms}: every term appears in the answer.
- `contains_any` {terms}: at least one term appears in the answer.
- `contains_none` {terms}: no term appears in the answer (a wrong reading, a hedge).
- `number` {value, tolerance=0.01}: a number in the answer is within `tolerance` of `value` ("1,200", "$12.70",
  "1.2 million" are read as numbers; so is a number followed by "thousand"/"million" scaled).
- `language_code` {code}: the answer names the language, by its ISO 639-1 code as a word ("fr") or its
  English or native name ("French", "français").
- `artifact_audio` {min_seconds=0.5}: the run wrote an audio file at least that long.
- `artifact_image` {min_width=1, min_height=1}: the run wrote an image at least that large.
- `no_tool`: the run called no tool (chit-chat, a fact the user stated earlier: answered from the conversation).
- `trace_contains` {terms}: every term appears somewhere in the run: the answer, the code the agents ran, the
  tool outputs they saw, the tasks handed from one specialist to the next (for answers given as a file, e.g.
  a total read aloud: the total must have been read on the way).

Failure causes, first that applies (`classify`): `routing` (the specialists that handled the request differ
from the expected ones), `tool` (a tool raised, other than for bad arguments: a missing model, a crash),
`answer` (the run succeeded but the check failed), `rejected` (the validation cascade or a person refused the
answer), `call` (the run failed, and a step's code did not parse or run: InterpreterError, unknown name, bad
arguments to a tool, an exception in the agent's own code), `model` (the model backend failed), `steps` (the
agents ran out of steps without such errors), `error` (any other failed run, a crash of the crew). All but
`routing` and `answer` are what the run records of itself (smolcrew.failures, `RunResult.cause`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smolcrew.failures import failure_cause, symptoms

__all__ = [
    "CAUSES",
    "CHECK_KINDS",
    "CheckError",
    "Outcome",
    "classify",
    "numbers_in",
    "run_check",
    "run_checks",
    "validate_check",
]

CAUSES = ("routing", "tool", "answer", "rejected", "call", "model", "steps", "error")

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}

LANGUAGE_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("english",),
    "fr": ("french", "français", "francais"),
    "de": ("german", "deutsch"),
    "es": ("spanish", "español", "espanol", "castilian"),
    "it": ("italian", "italiano"),
    "pt": ("portuguese", "português", "portugues"),
    "nl": ("dutch", "nederlands", "flemish"),
    "sv": ("swedish", "svenska"),
    "pl": ("polish", "polski"),
    "tr": ("turkish", "türkçe"),
}


class CheckError(ValueError):
    """A check in the task data is malformed (unknown kind, missing or wrong parameter)."""


@dataclass(frozen=True)
class Outcome:
    """What a run gave the user, as the checks see it."""

    answer: str
    artifacts: tuple[Path, ...] = ()
    trace: str = ""
    notes: list[str] = field(default_factory=list, compare=False)
    tools: tuple[str, ...] = ()
    """The tools the run called (a reply from the conversation calls only `recall_conversation`)."""


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def _terms(check: Mapping[str, Any]) -> list[str]:
    return [_norm(term) for term in check["terms"]]


_NUMBER = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?(?:\s*(thousand|million|billion|k)\b)?", re.IGNORECASE)
_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "billion": 1e9}


def numbers_in(text: str) -> list[float]:
    """Every number in `text` ("1,234.5", "-3", "12.70"); a number with a scale word also counts scaled."""
    found: list[float] = []
    for match in _NUMBER.finditer(text):
        digits = match.group(0)
        scale = match.group(1)
        if scale:
            digits = digits[: match.start(1) - match.start(0)]
        digits = digits.strip().replace("−", "-")
        if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", digits):
            digits = digits.replace(",", "")
        elif "," in digits:
            digits = digits.split(",")[0]  # "4,5" or "1,2,3": take the first
        try:
            value = float(digits)
        except ValueError:
            continue
        found.append(value)
        if scale:
            found.append(value * _SCALE[scale.lower()])
    return found


def _contains_all(check: Mapping[str, Any], outcome: Outcome) -> tuple[bool, str]:
    answer = _norm(outcome.answer)
    missing = [term for term in _terms(check) if term not in answer]
    return not missing, f"missing {missing}" if missing else "all terms present"


def _contains_any(check: Mapping[str, Any], outcome: Outcome) -> tuple[bool, str]:
    answer = _norm(outcome.answer)
    hits = [term for term in _terms(check) if term in answer]
    return bool(hits), f"found {hits}" if hits else f"none of {_terms(check)}"


def _contains_none(check: Mapping[str, Any], outcome: Outcome) -> tuple[bool, str]:
    answer = _norm(outcome.answer)
    hits = [term for term in _terms(check) if term in answer]
    return not hits, f"must not say {hits}" if hits else "no banned term"


def _number(check: Mapping[str, Any], outcome: Outcome) -> tuple[bool, str]:
    value, tolerance = float(check["value"]), float(check.get("tolerance", 0.01))
    found = numbers_in(outcome.answer)
    ok = any(abs(number - value) <= tolerance for number in found)
    return ok, f"{value} found" if ok else f"{value} not among {found[:8]}"


def _language_code(check: Mapping[str, Any], outcome: Outcome) -> tuple[bool, str]:
    code = str(check["code"]).lower()
    answer = _norm(outcome.answer)
    names = LANGUAGE_NAMES.get(code, ())
    ok = bool(re.search(rf"(?<![a-z]){re.escape(code)}(?![a-z])", answer)) or any(name in answer for name in names)
    return ok, f"names {code}" if ok else f"does not name {code} ({', '.join(names)})"


def _audio_seconds(path: Path) -> float | None:
    try:
        import soundfile

        return float(soundfile.info(str(path)).duration)
    except Exception:  # soundfile raises its own error types for undecodable files
        return None


def _artifact_audio(check: Mapping[str, Any], outcome: Outcome) -> tuple[bool, str]:
    least = float(check.get("min_seconds", 0.5))
    lengths = [(path.name, _audio_seconds(path)) for path in outcome.artifacts if path.suffix.lower() in AUDIO_SUFFIXES]
    ok = any(seconds is not None and seconds >= least for _, seconds in lengths)
    return ok, f"audio {lengths}" if lengths else "no audio file written"


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(path) as picture:
            return picture.size
    except Exception:  # PIL raises several types for unreadable files
        return None


def _artifact_image(check: Mapping[str, Any], outcome: Outcome) -> tuple[bool, str]:
    width, height = int(check.get("min_width", 1)), int(check.get("min_height", 1))
    sizes = [(p.name, _image_size(p)) for p in outcome.artifacts if p.suffix.lower() in IMAGE_SUFFIXES]
    ok = any(size is not None and size[0] >= width and size[1] >= height for _, size in sizes)
    return ok, f"images {sizes}, need {width}x{height}" if sizes else "no image file written"


def _trace_contains(check: Mapping[str, Any], outcome: Outcome) -> tuple[bool, str]:
    trace = _norm(outcome.answer + "\n" + outcome.trace)
    missing = [term for term in _terms(check) if term not in trace]
    return not missing, f"run never mentions {missing}" if missing else "all terms in the run"


def _no_tool(check: Mapping[str, Any], outcome: Outcome) -> tuple[bool, str]:
    used = [tool for tool in outcome.tools if tool != "recall_conversation"]
    return not used, f"called {used}" if used else "answered without a tool"


CheckFn = Callable[[Mapping[str, Any], Outcome], tuple[bool, str]]
CHECK_KINDS: dict[str, tuple[CheckFn, dict[str, type | tuple[type, ...]], dict[str, type | tuple[type, ...]]]] = {
    "contains_all": (_contains_all, {"terms": list}, {}),
    "contains_any": (_contains_any, {"terms": list}, {}),
    "contains_none": (_contains_none, {"terms": list}, {}),
    "number": (_number, {"value": (int, float)}, {"tolerance": (int, float)}),
    "language_code": (_language_code, {"code": str}, {}),
    "artifact_audio": (_artifact_audio, {}, {"min_seconds": (int, float)}),
    "artifact_image": (_artifact_image, {}, {"min_width": int, "min_height": int}),
    "trace_contains": (_trace_contains, {"terms": list}, {}),
    "no_tool": (_no_tool, {}, {}),
}
"""kind -> (function, required parameters, optional parameters)."""


def validate_check(check: Mapping[str, Any]) -> None:
    """Raise CheckError unless `check` is a known kind with the right parameters."""
    kind = check.get("kind")
    if kind not in CHECK_KINDS:
        raise CheckError(f"unknown check kind {kind!r}; use one of {sorted(CHECK_KINDS)}")
    _, required, optional = CHECK_KINDS[str(kind)]
    for key, value in check.items():
        if key == "kind":
            continue
        wanted = required.get(key) or optional.get(key)
        if wanted is None:
            raise CheckError(f"check {kind}: unknown parameter {key!r}")
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise CheckError(f"check {kind}: {key!r} has the wrong type ({type(value).__name__})")
    for key in required:
        if key not in check:
            raise CheckError(f"check {kind}: {key!r} is required")
    if "terms" in check and (not check["terms"] or not all(isinstance(t, str) and t.strip() for t in check["terms"])):
        raise CheckError(f"check {kind}: 'terms' must be a non-empty list of non-empty strings")


def run_check(check: Mapping[str, Any], outcome: Outcome) -> tuple[bool, str]:
    """(passed, why) for one check."""
    validate_check(check)
    return CHECK_KINDS[str(check["kind"])][0](check, outcome)


def run_checks(checks: Sequence[Mapping[str, Any]], outcome: Outcome) -> tuple[bool, list[str]]:
    """(all passed, one line per check)."""
    results = [(check["kind"], *run_check(check, outcome)) for check in checks]
    return all(ok for _, ok, _ in results), [f"{kind}: {'ok' if ok else 'FAIL'} ({why})" for kind, ok, why in results]


# ---- why a run failed -------------------------------------------------------------------------------------


def classify(
    *,
    passed: bool,
    state: str | None,
    handled_by: Sequence[str] | None,
    accepted: Sequence[Sequence[str]],
    steps: Sequence[Any] = (),
    specialists: Iterable[str] = (),
) -> tuple[str | None, dict[str, int]]:
    """(cause or None when the task passed, error symptoms counted over the run's steps).

    `state` is the RunResult's state (None when `Crew.run` raised); `handled_by` the specialists that handled
    the request, in order; `accepted` the expected sequences of specialists. Beyond what the run can tell of
    itself (smolcrew.failures), the task's expectations add `routing` and `answer`.
    """
    counted = symptoms(steps, specialists)
    if passed:
        return None, counted
    if state is None:
        return "error", counted
    if handled_by is not None and list(handled_by) not in [list(route) for route in accepted]:
        return "routing", counted
    if counted.get("tool"):
        return "tool", counted
    if state == "success":
        return "answer", counted
    return failure_cause(state, counted) or "error", counted
