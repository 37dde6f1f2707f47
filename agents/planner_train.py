"""Train the tool planner's token tagger on generated plans, offline, on CPU, once per data and plan.

The packaged all-MiniLM-L6-v2 gets a token-classification head (`O`, then `B-<tool>` and `I-<tool>` for every
tool) and is fine-tuned with transformers' Trainer on `agents/plan_data.generate(plan.examples)` and on the
router's example bank as one-step plans (`bank_examples`): each token of a request is labelled with the innermost
step whose words it is part of. About 15 minutes on two cores; the result is cached under
`<cache>/tool-planner/<digest>`, where the digest covers the generator, its templates, the example bank, the
tools and the plan, so a change to any of them trains anew. `metrics.json` in the folder holds the accuracy on
generated plans from another seed (never the blind set of bench/data, which no training or tuning sees).

    smolcrew route --train
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smolcrew.agents import plan_data
from smolcrew.agents.plan_data import PlanExample, PlanStep
from smolcrew.agents.planner import ToolPlanner, tool_tasks
from smolcrew.manifest import staged, trained_folder

__all__ = ["PlannerTraining", "labels_for", "load_planner", "planner_folder", "tag_tokens", "train_planner"]

log = logging.getLogger(__name__)

BASE_MODEL = "packaged:all-MiniLM-L6-v2"


@dataclass(frozen=True, slots=True)
class PlannerTraining:
    """How the tagger is trained; part of the cache key."""

    examples: int = 5000
    epochs: float = 3.0
    batch_size: int = 16
    learning_rate: float = 2e-4
    max_length: int = 128
    seed: int = 0
    held_out: int = 300
    """Generated examples from another seed the metrics are taken on."""
    bank_copies: int = 2
    """How many times the router's example bank (one-step requests in other words) joins the generated plans."""


def planner_folder(cache_dir: Path, training: PlannerTraining | None = None) -> Path:
    """Where the planner trained with `training` lives (or will)."""
    data = Path(plan_data.__file__).parent / "data"
    inputs = [BASE_MODEL.encode(), Path(plan_data.__file__).read_bytes(), plan_data.TEMPLATES_PATH.read_bytes()]
    inputs.append(json.dumps(sorted(tool_tasks())).encode())  # the tagger's labels
    inputs += [(data / bank).read_bytes() for bank in ("routing_examples.jsonl", "tool_examples.jsonl")]
    return trained_folder(cache_dir, "tool-planner", training or PlannerTraining(), *inputs)


def load_planner(cache_dir: Path, training: PlannerTraining | None = None) -> ToolPlanner | None:
    """The planner trained for today's data and plan, when it has been built (`smolcrew route --train`)."""
    folder = planner_folder(cache_dir, training)
    if (folder / "metrics.json").is_file():
        return ToolPlanner(folder)
    log.warning("the tool planner is not trained for this home: run `smolcrew route --train` (the router plans alone)")
    return None


def bank_examples(generated: Sequence[PlanExample], base: str) -> list[PlanExample]:
    """The router's example bank (requests labelled with a specialist, written apart from the templates) and the
    tool examples as one-step plans. A bank request's tool is the one of its specialist's tools whose three
    nearest one-step generated requests are nearest on average (MiniLM cosine)."""
    from sentence_transformers import SentenceTransformer

    from smolcrew.agents.dispatch import tool_examples
    from smolcrew.agents.specialists import SPECIALISTS, load_examples

    singles = [example for example in generated if len(example.steps) == 1]
    encoder = SentenceTransformer(base, device="cpu")
    vectors = encoder.encode([e.request for e in singles], batch_size=64, normalize_embeddings=True)
    bank = load_examples()
    queries = encoder.encode([text for _, text in bank], batch_size=64, normalize_embeddings=True)
    tasks = tool_tasks()
    labelled = [(tool, text) for tool, texts in tool_examples().items() for text in texts]
    tools = np.array([e.steps[0].tool for e in singles])
    for (specialist, text), similarity in zip(bank, queries @ vectors.T, strict=True):
        offered = [f.name for f in SPECIALISTS[specialist].tool_factories if (tools == f.name).any()]
        if offered:  # the tool whose three nearest requests are nearest on average, as the router scores
            labelled.append((max(offered, key=lambda tool: np.sort(similarity[tools == tool])[-3:].mean()), text))
    return [
        PlanExample(text, (PlanStep(plan_data.specialist_for(tool), tool, tasks[tool], (), text),))
        for tool, text in labelled
    ]


def labels_for(tools: Sequence[str]) -> list[str]:
    """The tagger's labels: `O`, then `B-` and `I-` for each tool, in this order."""
    return ["O", *(f"{prefix}-{tool}" for tool in tools for prefix in "BI")]


def _spans(example: PlanExample) -> list[tuple[int, int, int]]:
    """(start, end, step index) of each step's words in the request; steps whose words are not found are left out."""
    found = []
    lowered = example.request.lower()
    for index, step in enumerate(example.steps):
        start = lowered.find(step.text.lower()) if step.text else -1
        if start >= 0:
            found.append((start, start + len(step.text), index))
    return found


def tag_tokens(example: PlanExample, offsets: Sequence[tuple[int, int]], label_ids: dict[str, int]) -> list[int]:
    """One label id per token (-100 for special tokens): the innermost step covering the token's first character,
    `B-` where that step's run of tokens starts."""
    spans = _spans(example)
    labels: list[int] = []
    previous: int | None = None
    for start, end in offsets:
        if start == end:
            labels.append(-100)
            continue
        covering = [span for span in spans if span[0] <= start < span[1]]
        if not covering:
            labels.append(label_ids["O"])
            previous = None
            continue
        _, _, step = min(covering, key=lambda span: span[1] - span[0])
        prefix = "I" if previous == step else "B"
        labels.append(label_ids[f"{prefix}-{example.steps[step].tool}"])
        previous = step
    return labels


def _encode(tokenizer: Any, examples: Sequence[PlanExample], label_ids: dict[str, int], max_length: int) -> Any:
    from datasets import Dataset

    rows = []
    for example in examples:
        encoded = tokenizer(example.request, truncation=True, max_length=max_length, return_offsets_mapping=True)
        offsets = encoded.pop("offset_mapping")
        rows.append({**encoded, "labels": tag_tokens(example, offsets, label_ids)})
    return Dataset.from_list(rows)


def train_planner(
    cache_dir: Path, training: PlannerTraining | None = None, *, progress: Callable[[str], None] = log.info
) -> Path:
    """Train the tagger (unless it is cached) and return its folder."""
    training = training or PlannerTraining()
    folder = planner_folder(cache_dir, training)
    if (folder / "metrics.json").is_file():
        return folder
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    from smolcrew.manifest import resolve_source

    tools = sorted(tool_tasks())
    labels = labels_for(tools)
    label_ids = {label: index for index, label in enumerate(labels)}
    base = resolve_source(BASE_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(base)
    started = time.monotonic()
    examples = plan_data.generate(training.examples, seed=training.seed)
    bank = bank_examples(examples, base) * training.bank_copies if training.bank_copies else []
    progress(
        f"training the tool planner on {len(examples):,} generated plans and {len(bank):,} requests of the router's "
        "example bank (a few minutes, once)"
    )
    examples = examples + bank
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a new head on a sentence encoder: its load report is expected, not news
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    with tempfile.TemporaryDirectory() as scratch:
        arguments = TrainingArguments(
            output_dir=scratch,
            num_train_epochs=training.epochs,
            per_device_train_batch_size=training.batch_size,
            learning_rate=training.learning_rate,
            warmup_steps=0.1,  # a ratio when below 1 (transformers 5)
            weight_decay=0.01,
            seed=training.seed,
            save_strategy="no",
            report_to="none",
            logging_steps=100,
            disable_tqdm=True,
            use_cpu=True,
        )
        Trainer(
            model=model,
            args=arguments,
            train_dataset=_encode(tokenizer, examples, label_ids, training.max_length),
            data_collator=DataCollatorForTokenClassification(tokenizer),
        ).train()
    with staged(folder) as staging:
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        (staging / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
        metrics = {"train_examples": len(examples), "train_s": round(time.monotonic() - started, 1)}
        metrics |= _held_out(staging, training) | {"training": asdict(training)}
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    progress(
        f"tool planner trained in {metrics['train_s']:.0f} s; on generated plans it never saw: "
        f"tools right {metrics['held_out_tools_exact']:.1%}, specialists right {metrics['held_out_specialists']:.1%}"
    )
    return folder


def _held_out(folder: Path, training: PlannerTraining) -> dict[str, Any]:
    """The share of generated plans (another seed) whose tools, and whose specialists, come out exactly."""
    planner = ToolPlanner(folder)
    examples = plan_data.generate(training.held_out, seed=training.seed + 1_000_003)
    tools_right = specialists_right = 0
    for example in examples:
        steps = planner.plan(example.request)
        tools_right += sorted(s.tool for s in steps) == sorted(s.tool for s in example.steps)
        specialists_right += [s.specialist for s in steps] == [s.specialist for s in example.steps]
    count = max(len(examples), 1)
    return {
        "held_out_examples": len(examples),
        "held_out_tools_exact": round(tools_right / count, 4),
        "held_out_specialists": round(specialists_right / count, 4),
    }
