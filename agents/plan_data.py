"""Training data for a learned router: `generate(n, seed)` gives `n` distinct (request, plan) examples.

Templates (`data/plan_templates.json`) cover every tool of `SPECIALISTS`: single-tool requests and plans of 2-5
steps (chains, fan-out, fan-in, independent steps, nested "read aloud the translation of ..."). A step that uses
an earlier output names it ("it", "the transcript") and lists it in `depends_on`; a producer feeds a consumer only
when one of its "out" types is a type the consumer's "ref" templates take. `validate` re-checks every plan.

    python -m smolcrew.agents.plan_data --n 3000 --out plans.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from smolcrew.agents.specialists import SPECIALISTS

__all__ = ["PlanExample", "PlanStep", "generate", "normalize", "templates", "validate", "write_jsonl"]

TEMPLATES_PATH = Path(__file__).parent / "data" / "plan_templates.json"
_PARTS = ("ref", "ref2", "np", "out")
_SLOT = re.compile(r"\{(\w+)\}")
_PLAIN_WORD = re.compile(r"(?<![\w./\\{-])[a-z]{5,}(?![\w./\\}-])")
_FILE_KINDS = {"image", "scan", "audio", "video", "pdf", "table"}
_SHAPES = {"single": 28, "chain": 26, "nested": 10, "fanout": 10, "fanin": 8, "indep": 10, "mixed": 8}


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One step of a plan: who runs it, with which tool, and which earlier steps' outputs it uses."""

    specialist: str
    tool: str
    task: str  # the tool's Hugging Face task tag
    depends_on: tuple[int, ...] = ()
    text: str = ""  # the part of the request this step serves


@dataclass(frozen=True, slots=True)
class PlanExample:
    request: str
    steps: tuple[PlanStep, ...]

    def dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Tool:
    name: str
    task: str
    specialists: tuple[str, ...]
    single: list[str]
    ref: dict[str, list[str]]  # input type -> templates with {ref}
    ref2: dict[str, list[str]]  # "type of {ref}+type of {ref2}" -> templates
    np: list[str]  # noun phrases for its output, for nested requests
    out: dict[str, list[str]]  # output type -> how a later step refers to it


@cache
def templates() -> dict[str, Any]:  # the template file, parsed
    return dict(json.loads(TEMPLATES_PATH.read_text(encoding="utf-8")))


@cache
def _tools() -> dict[str, _Tool]:
    offered: dict[str, list[str]] = {}
    tasks: dict[str, str] = {}
    for spec in SPECIALISTS.values():
        for factory in spec.tool_factories:
            offered.setdefault(factory.name, []).append(spec.name)
            tasks[factory.name] = str(getattr(factory, "task", ""))
    raw = templates()["tools"]
    missing = sorted(set(offered) - set(raw))
    unknown = sorted(set(raw) - set(offered))
    if missing or unknown:
        raise ValueError(f"{TEMPLATES_PATH.name}: no templates for {missing}; templates for unknown tools {unknown}")
    return {
        name: _Tool(name, tasks[name], tuple(offered[name]), entry["single"], *(entry.get(k, {}) for k in _PARTS))
        for name, entry in raw.items()
    }


def normalize(request: str) -> str:
    """The de-duplication key: lower case, runs of white space as one space."""
    return " ".join(request.lower().split())


def specialist_for(tool: str, producers: Sequence[str] = ()) -> str:
    """The specialist that runs `tool` after steps run by `producers`: the tool's only specialist, or for a tool
    several offer (`calculate`) the first producer's specialist when it offers the tool, else `language`."""
    owners = _tools()[tool].specialists
    if len(owners) == 1:
        return owners[0]
    for producer in producers:
        if producer in owners:
            return producer
    return "language" if "language" in owners else owners[0]


def _consumers(kinds: Iterable[str], *, exclude: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(tool, input type) pairs of the tools that can take an output of one of `kinds`."""
    banned = set(exclude)
    return [
        (name, kind) for kind in kinds for name, tool in _tools().items() if kind in tool.ref and name not in banned
    ]


def compatible(producer: str, consumer: str) -> bool:
    return any(kind in _tools()[consumer].ref for kind in _tools()[producer].out)


def compatible_pair(first: str, second: str, consumer: str) -> bool:
    outs_a, outs_b = _tools()[first].out, _tools()[second].out
    return any(a in outs_a and b in outs_b for a, b in (key.split("+") for key in _tools()[consumer].ref2))


def validate(example: PlanExample) -> None:
    """Raise ValueError if a step names an unknown tool or a specialist without it, a wrong task, a dependency
    that does not point backwards, or an earlier output its tool cannot take."""
    tools = _tools()
    if not example.steps:
        raise ValueError(f"no steps: {example.request!r}")
    for index, step in enumerate(example.steps):
        tool = tools.get(step.tool)
        if tool is None or step.specialist not in tool.specialists or step.task != tool.task:
            raise ValueError(f"step {index} ({step.specialist}/{step.tool}/{step.task}) is not offered")
        deps = step.depends_on
        if len(set(deps)) != len(deps) or any(not 0 <= dep < index for dep in deps):
            raise ValueError(f"step {index} depends on {deps}: dependencies must be distinct earlier steps")
        producers = [example.steps[dep].tool for dep in deps]
        if step.specialist != specialist_for(step.tool, [example.steps[dep].specialist for dep in deps]):
            raise ValueError(f"step {index}: {step.tool} should run under another specialist")
        if len(deps) == 1 and not compatible(producers[0], step.tool):
            raise ValueError(f"step {index}: {step.tool} cannot take the output of {producers[0]}")
        if len(deps) == 2 and not compatible_pair(producers[0], producers[1], step.tool):
            raise ValueError(f"step {index}: {step.tool} cannot take the outputs of {producers}")
        if len(deps) > 2:
            raise ValueError(f"step {index} depends on more than two steps")


class _Writer:
    """Fills templates with slot values and phrasing variants, from one seeded random source."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.slots: dict[str, list[str]] = templates()["slots"]

    def pick(self, items: Sequence[str]) -> str:
        return items[self.rng.randrange(len(items))]

    def file(self, kind: str) -> str:
        if self.rng.random() < 0.15:
            return self.pick(self.slots[f"{kind}_bare"])
        name = self.pick(self.slots[f"{kind}_name"])
        ext = "pdf" if kind == "pdf" else self.pick(self.slots[f"{kind}_ext"])
        path = f"{self.pick(self.slots['dir'])}{name}" + ("" if self.rng.random() < 0.05 else f".{ext}")
        noun = {"image": "the photo ", "scan": "the scan ", "audio": "the recording ", "video": "the video "}
        return f"{noun.get(kind, 'the file ')}{path}" if self.rng.random() < 0.15 else path

    def fill(self, template: str, **given: str) -> str:
        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            if key in given:
                return given[key]
            return self.file(key) if key in _FILE_KINDS else self.pick(self.slots[key])

        return _SLOT.sub(one, template)

    def typo(self, clause: str) -> str:
        """One small slip in a plain word of a template before any quote (swap, drop or double a letter)."""
        words = list(_PLAIN_WORD.finditer(re.split(r"['\"]", clause, maxsplit=1)[0]))  # not in quotes or names
        if not words:
            return clause
        found, i = words[self.rng.randrange(len(words))], self.rng.randrange(1, 3)
        word = found.group(0)
        slips = [word[:i] + word[i + 1] + word[i] + word[i + 2 :], word[:i] + word[i + 1 :], word[: i + 1] + word[i:]]
        return clause[: found.start()] + self.pick(slips) + clause[found.end() :]

    def clause(self, template: str, **given: str) -> str:
        return self.fill(self.typo(template) if self.rng.random() < 0.06 else template, **given)

    def ref(self, producer: str, kind: str) -> str:
        if self.rng.random() < 0.35:
            return self.pick(templates()["pronouns"])
        return self.fill(self.pick(_tools()[producer].out[kind]))

    def join(self, kind: str, **parts: str) -> str:
        template = self.pick(templates()["joins"][kind])
        if "{out}" in template and "out" not in parts:
            template = self.pick([t for t in templates()["joins"][kind] if "{out}" not in t])
        return _tidy(template.format(**parts))


def _tidy(text: str) -> str:  # no punctuation right after a question mark ("?." "?,")
    return re.sub(r"\?[.,;]", "?", text)


# A draft step: (tool, depends_on, clause text); the request is built alongside.
_Draft = tuple[str, tuple[int, ...], str]


def _single(w: _Writer, tool: str) -> str:
    return w.clause(w.pick(_tools()[tool].single))


def _next(w: _Writer, producer: str, used: Iterable[str]) -> tuple[str, str] | None:
    options = _consumers(_tools()[producer].out, exclude=[*used, producer])
    return w.rng.choice(options) if options else None


def _link(w: _Writer, producer: str, consumer: str, kind: str) -> tuple[str, str]:
    """A consumer clause that refers to the producer's output, and the join's {out} phrase."""
    out = w.ref(producer, kind)
    pronoun = out in templates()["pronouns"]
    ref = out if pronoun or w.rng.random() < 0.5 else w.pick(templates()["pronouns"])
    text = w.clause(w.pick(_tools()[consumer].ref[kind]), ref=ref)
    return text, ("" if pronoun else out)


def _chain(w: _Writer, first: str, length: int) -> tuple[list[_Draft], str] | None:
    drafts: list[_Draft] = [(first, (), _single(w, first))]
    request = drafts[0][2]
    for index in range(1, length):
        producer = drafts[-1][0]
        found = _next(w, producer, [d[0] for d in drafts])
        if found is None:
            return None
        consumer, kind = found
        text, out = _link(w, producer, consumer, kind)
        drafts.append((consumer, (index - 1,), text))
        request = w.join("chain", a=request, b=text, **({"out": out} if out else {}))
    return drafts, request


def _nested(w: _Writer, first: str) -> tuple[list[_Draft], str] | None:
    """'read aloud the translation of X': the consumer's clause holds the producer's noun phrase."""
    tool = _tools()[first]
    options = [(c, k) for c, k in _consumers(tool.out, exclude=[first]) if tool.np]
    options = [(c, k) for c, k in options if any("{ref}" in t for t in _tools()[c].ref[k])]
    if not options:
        return None
    consumer, kind = w.rng.choice(options)
    inner = w.fill(w.pick(tool.np))
    outer = w.clause(w.pick([t for t in _tools()[consumer].ref[kind] if "{ref}" in t]), ref=inner)
    drafts: list[_Draft] = [(first, (), inner), (consumer, (0,), outer)]
    if w.rng.random() < 0.3 and (found := _next(w, consumer, [first])) is not None:
        text, out = _link(w, consumer, found[0], found[1])
        drafts.append((found[0], (1,), text))
        return drafts, w.join("chain", a=outer, b=text, **({"out": out} if out else {}))
    return drafts, outer


def _fanout(w: _Writer, first: str) -> tuple[list[_Draft], str] | None:
    options = _consumers(_tools()[first].out, exclude=[first])
    if len({c for c, _ in options}) < 2:
        return None
    (b, kind_b), (c, kind_c) = w.rng.sample(options, 2)
    if b == c:
        return None
    out = w.ref(first, kind_b)
    text_b = w.clause(w.pick(_tools()[b].ref[kind_b]), ref=w.pick(templates()["pronouns"]))
    text_c = w.clause(w.pick(_tools()[c].ref[kind_c]), ref=w.ref(first, kind_c))
    head = _single(w, first)
    request = w.join("fanout", a=head, b=text_b, c=text_c, out=out)
    return [(first, (), head), (b, (0,), text_b), (c, (0,), text_c)], request


def _fanin(w: _Writer) -> tuple[list[_Draft], str] | None:
    tools = _tools()
    consumer = w.pick(sorted(name for name, tool in tools.items() if tool.ref2))
    key = w.pick(sorted(tools[consumer].ref2))
    kind_a, kind_b = key.split("+")
    firsts = [n for n, t in tools.items() if kind_a in t.out and n != consumer]
    seconds = [n for n, t in tools.items() if kind_b in t.out and n != consumer]
    a, b = w.pick(firsts), w.pick(seconds)
    if a == b:
        return None
    ref_a = w.fill(w.pick(tools[a].out[kind_a]))
    ref_b = w.fill(w.pick(tools[b].out[kind_b]))
    if ref_a == ref_b:
        ref_a, ref_b = "the first result", "the second result"
    text_a, text_b = _single(w, a), _single(w, b)
    text_c = w.clause(w.pick(tools[consumer].ref2[key]), ref=ref_a, ref2=ref_b)
    request = w.join("fanin", a=text_a, b=text_b, c=text_c)
    return [(a, (), text_a), (b, (), text_b), (consumer, (0, 1), text_c)], request


def _independent(w: _Writer, first: str, count: int) -> tuple[list[_Draft], str]:
    names = [first, *w.rng.sample([n for n in _tools() if n != first], count - 1)]
    drafts: list[_Draft] = [(name, (), _single(w, name)) for name in names]
    request = drafts[0][2]
    for draft in drafts[1:]:
        request = w.join("indep", a=request, b=draft[2])
    return drafts, request


def _mixed(w: _Writer, first: str) -> tuple[list[_Draft], str] | None:
    """A chain or fan-out, then one or two unrelated steps."""
    built = _chain(w, first, w.rng.choice((2, 3))) if w.rng.random() < 0.6 else _fanout(w, first)
    if built is None:
        return None
    drafts, request = built
    for _ in range(w.rng.choice((1, 1, 2)) if len(drafts) < 4 else 1):
        used = {d[0] for d in drafts}
        other = w.pick([n for n in _tools() if n not in used])
        text = _single(w, other)
        drafts.append((other, (), text))
        request = w.join("indep", a=request, b=text)
    return drafts, request


def _finish(w: _Writer, drafts: list[_Draft], request: str) -> PlanExample:
    """Add a polite or terse frame, fix capitals, and turn drafts into steps with their spans."""
    frame = templates()["frame"]
    prefix, suffix = w.pick(frame["prefix"] + frame["polite"]), w.pick(frame["suffix"])
    first = request.split(maxsplit=1)[0].lower()
    if prefix in frame["polite"] and (first in frame["not_imperative"] or not first[:1].isalpha()):
        prefix = ""  # "could you what is ..." is not English
    if prefix.endswith("you ") and w.rng.random() < 0.5:
        suffix = "?"
    if request[-1:] in "?.!" and suffix:
        suffix = " " + suffix.lstrip(" .,") if suffix.strip(" .,") else ""
    request = _tidy(f"{prefix}{request}{suffix}")
    if w.rng.random() < 0.15:  # a sentence of context around the ask is no step of its own
        after, stop = w.pick(frame["context_after"]), "" if request[-1] in "?.!" else "."
        request = w.pick(frame["context_before"]) + request + (stop + after if after else "")
    if (roll := w.rng.random()) < 0.55:
        request = request[:1].upper() + request[1:]
    elif roll < 0.6:
        request = request.lower()
    steps: list[PlanStep] = []
    for tool, deps, text in drafts:
        span = next((s for s in (text, text[:1].upper() + text[1:], text.lower()) if s in request), text)
        specialist = specialist_for(tool, [steps[d].specialist for d in deps])
        steps.append(PlanStep(specialist, tool, _tools()[tool].task, deps, span))
    return PlanExample(request=request, steps=tuple(steps))


_BUILDERS: dict[str, Callable[[_Writer, str], tuple[list[_Draft], str] | None]] = {
    "single": lambda w, first: ([(first, (), text := _single(w, first))], text),
    "chain": lambda w, first: _chain(w, first, w.rng.choices((2, 3, 4, 5), weights=(50, 28, 14, 8))[0]),
    "nested": _nested,
    "fanout": _fanout,
    "fanin": lambda w, _: _fanin(w),
    "indep": lambda w, first: _independent(w, first, w.rng.choice((2, 2, 3))),
    "mixed": _mixed,
}


def generate(n: int, seed: int = 0) -> list[PlanExample]:
    """`n` distinct, validated examples (fewer only if the templates run dry), the same for the same seed."""
    writer = _Writer(random.Random(seed))
    names = sorted(_tools())
    shapes, weights = zip(*_SHAPES.items(), strict=True)
    seen: set[str] = set()
    examples: list[PlanExample] = []
    for _ in range(n * 40):
        if len(examples) >= n:
            break
        shape = writer.rng.choices(shapes, weights=weights)[0]
        built = _BUILDERS[shape](writer, writer.pick(names))
        if built is None:
            continue
        example = _finish(writer, *built)
        key = normalize(example.request)
        if key in seen:
            continue
        validate(example)
        seen.add(key)
        examples.append(example)
    return examples


def write_jsonl(path: str | Path, examples: Iterable[PlanExample]) -> int:
    """Write one JSON object per line; returns how many."""
    lines = [json.dumps(example.dict(), ensure_ascii=False) + "\n" for example in examples]
    Path(path).write_text("".join(lines), encoding="utf-8")
    return len(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate router training plans as JSON lines.")
    parser.add_argument("--n", type=int, default=3000, help="how many distinct examples")
    parser.add_argument("--seed", type=int, default=0, help="the random seed")
    parser.add_argument("--out", required=True, help="the .jsonl file to write")
    args = parser.parse_args(argv)
    print(f"wrote {write_jsonl(args.out, generate(args.n, seed=args.seed))} examples to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
