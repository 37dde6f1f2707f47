"""Conversations as a user has them: multi-turn chats through `crew.chat()` with the embedded model, every turn
checked on its own.

    python bench/conversations.py [--split dev|blind|all] [--subset ci] [--category C] [--ids a,b] [--limit N]
                                  [--model 0.5b|1.5b] [--growth] [--keep]

Conversations: bench/data/conversations.jsonl, one per line: `id`, `split` (dev, or blind: written from the
issue's description by another session, never looked at while building), `category` (facts, references,
corrections, chitchat, restart, long), `files` (made fresh, as in bench/task_files.py), `turns` (each `say`,
with `{name}` for a file, and `check`: bench/task_checks.py's kinds plus `no_tool`), and for `restart` the turns
before which the process restarts (`restart_before`): the crew is closed and a new one picks the conversation up
by its id from the journal, as `crew.chat(conversation_id)` does after a restart.

The crew is bench/tasks.py's (the embedded model, a fresh home whose cache is the configured one, memory sinks
off: the journal only). Prints turn success per category and split, seconds per turn; with `--growth`, the
prompt tokens of a reply at turns 2, 10 and 30 of one long conversation (a fact, then unrelated turns).
Writes bench/results/conversations-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import markdown_table  # noqa: E402
from bench.task_checks import run_checks, validate_check  # noqa: E402
from bench.task_files import make_files  # noqa: E402
from bench.task_suite import _PLACEHOLDER, outcome_of  # noqa: E402
from bench.tasks import RESULTS, build_crew, model_missing, model_name, warm_up  # noqa: E402

CONVERSATIONS = ROOT / "bench" / "data" / "conversations.jsonl"
CATEGORIES = ("facts", "references", "corrections", "chitchat", "restart", "long")
CI_EXTRA = ("references", "corrections")
"""The CI subset (`ci_subset`): the first dev conversation of each category, and the second of these."""


def ci_subset(conversations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fixed conversations CI runs with the embedded model (tests/bench/test_conversation_suite.py): by their
    place in the file, never by how they fare."""
    chosen = []
    for category in CATEGORIES:
        dev = [c for c in conversations if c["split"] == "dev" and c["category"] == category]
        chosen += dev[: 2 if category in CI_EXTRA else 1]
    return chosen


def load_conversations(path: Path = CONVERSATIONS) -> list[dict[str, Any]]:
    """Every conversation of `path`, checked: known category, 2-5 turns, valid checks, every file named exists."""
    conversations = []
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        row = json.loads(text)
        where = f"{path.name}:{line} ({row.get('id')})"
        if row.get("category") not in CATEGORIES or row.get("split") not in ("dev", "blind"):
            raise ValueError(f"{where}: category must be one of {CATEGORIES}, split dev or blind")
        if not 2 <= len(row.get("turns", [])) <= 5:
            raise ValueError(f"{where}: a conversation has 2 to 5 turns")
        for turn in row["turns"]:
            if not turn.get("check"):
                raise ValueError(f"{where}: every turn needs a check")
            for check in turn["check"]:
                validate_check(check)
            for name in _PLACEHOLDER.findall(turn["say"]):
                if name not in row.get("files", {}):
                    raise ValueError(f"{where}: {{{name}}} is not among its files")
        conversations.append(row)
    return conversations


def run_conversation(
    conversation: dict[str, Any], make_crew: Any, crew: Any, workdir: Path
) -> tuple[list[dict[str, Any]], Any]:
    """Run every turn of `conversation`; one record per turn, and the crew to go on with (a new one after a
    restart)."""
    folder = workdir / conversation["id"]
    paths = make_files(conversation.get("files", {}), folder)
    chat = crew.chat()
    records = []
    for number, turn in enumerate(conversation["turns"]):
        if number in conversation.get("restart_before", []):
            crew.close()
            crew = make_crew()
            chat = crew.chat(chat.conversation_id)
        message = _PLACEHOLDER.sub(lambda m: str(paths[m.group(1)]), turn["say"])
        started = time.perf_counter()
        try:
            result = chat.send(message)
        except Exception as exc:  # the suite goes on: a turn that raises fails
            records.append({"turn": number, "say": turn["say"], "passed": False, "error": repr(exc)[:300]})
            continue
        seconds = time.perf_counter() - started
        passed, lines = run_checks(turn["check"], outcome_of(result, folder))
        if result.state != "success":  # a rejected or failed turn gave the user nothing, whatever its checks say
            passed, lines = False, [*lines, f"state: FAIL ({result.state})"]
        records.append(
            {
                "turn": number,
                "say": turn["say"],
                "passed": passed,
                "checks": lines,
                "mode": result.mode,
                "state": result.state,
                "agents": list(result.agents),
                "tools": list(result.tools),
                "answer": str(result.answer)[:400],
                "seconds": round(seconds, 2),
                "input_tokens": result.input_tokens,
            }
        )
    return records, crew


def growth(crew: Any) -> dict[int, int]:
    """Prompt tokens of the reply at turns 2, 10 and 30 of one conversation: a fact, then unrelated turns."""
    chat = crew.chat()
    chat.send("My name is Ada and I live in Lisbon.")
    tokens: dict[int, int] = {}
    for number in range(2, 31):
        if number in (2, 10, 30):
            tokens[number] = chat.send("What is my name, and where do I live?").input_tokens
        else:
            chat.send(f"What is {number} times {number + 1}?")
    return tokens


def _share(passed: int, total: int) -> str:
    return f"{passed}/{total} ({100 * passed / total:.0f}%)" if total else "n/a"


def report(results: list[dict[str, Any]]) -> str:
    blocks: dict[str, list[bool]] = defaultdict(list)
    for conversation in results:
        for turn in conversation["turns"]:
            for key in ("all", conversation["category"], f"split: {conversation['split']}"):
                blocks[key].append(turn["passed"])
    order = ["all", *CATEGORIES, "split: dev", "split: blind"]
    rows = [[key, _share(sum(blocks[key]), len(blocks[key]))] for key in order if blocks.get(key)]
    seconds = [t["seconds"] for c in results for t in c["turns"] if "seconds" in t]
    replies = [t["seconds"] for c in results for t in c["turns"] if t.get("mode") == "reply"]
    timing = [
        ["all turns", f"{statistics.median(seconds):.1f}" if seconds else "n/a", f"{max(seconds, default=0):.1f}"],
        ["replies", f"{statistics.median(replies):.1f}" if replies else "n/a", f"{max(replies, default=0):.1f}"],
    ]
    return "\n\n".join(
        [
            markdown_table(["turns right", "success"], rows),
            markdown_table(["seconds per turn", "median", "max"], timing),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--split", default="all", choices=["dev", "blind", "all"])
    parser.add_argument("--subset", default=None, choices=["ci"], help="the conversations CI runs")
    parser.add_argument("--category", default=None, choices=CATEGORIES)
    parser.add_argument("--ids", default="", help="comma-separated conversation ids")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--model", default="0.5b")
    parser.add_argument("--config", default=None)
    parser.add_argument("--growth", action="store_true", help="also measure prompt tokens at turns 2, 10, 30")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    chosen = [
        c
        for c in (ci_subset(load_conversations()) if args.subset else load_conversations())
        if (args.split == "all" or c["split"] == args.split)
        and (args.category is None or c["category"] == args.category)
        and (not args.ids or c["id"] in args.ids.split(","))
    ][: args.limit]
    from smolcrew.config import load_settings

    model = model_name(args.model)
    why = model_missing(model, load_settings(args.config).cache_dir)
    if why:
        print(f"skipped: {why}")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="smolcrew-conversations-"))

    def make_crew() -> Any:
        return build_crew(model, workdir / "home", config=args.config, sinks=False, files=workdir)

    print(f"{len(chosen)} conversations, model {model}, files in {workdir}", flush=True)
    crew = make_crew()
    results: list[dict[str, Any]] = []
    tokens: dict[int, int] = {}
    try:
        print(f"warm-up: {warm_up(crew):.1f} s", flush=True)
        for number, conversation in enumerate(chosen, start=1):
            turns, crew = run_conversation(conversation, make_crew, crew, workdir / "files")
            results.append({key: conversation[key] for key in ("id", "split", "category")} | {"turns": turns})
            marks = " ".join("ok" if t["passed"] else "FAIL" for t in turns)
            print(f"[{number}/{len(chosen)}] {conversation['id']}: {marks}", flush=True)
            for turn in turns:
                if not turn["passed"]:
                    print(f"    turn {turn['turn']} {turn['say']!r} -> {turn.get('answer', turn.get('error'))!r}")
                    print(f"      {turn.get('mode')} {turn.get('tools')} {turn.get('checks')}", flush=True)
        if args.growth:
            tokens = growth(crew)
            print(f"reply prompt tokens at turns 2/10/30: {tokens}", flush=True)
    finally:
        crew.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(report(results))
    out = args.out or RESULTS / f"conversations-{model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {"model": model, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "growth_tokens": tokens}
    out.write_text(json.dumps(document | {"conversations": results}, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
