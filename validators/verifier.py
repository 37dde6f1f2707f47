"""The claim verifier: does this evidence support this claim? A small cross-encoder, trained here, offline, on CPU.

No general NLI model ships offline, so we build one: the packaged MiniLM (all-MiniLM-L6-v2) becomes a
sentence-transformers `CrossEncoder` with one output, trained on synthetic (evidence, claim) pairs that
validators/verifier_data.py makes from the passages in validators/data (FactCC-style: sentences copied or
paraphrased are supported; entities, numbers and dates swapped, negations, invented additions and sentences from
other passages are not). Training takes a few minutes on two cores; the weights are cached under
`<home>/cache/claim-verifier/<digest>`, where the digest covers the passages, the generator and the training plan,
so a change to any of them trains anew (`smolcrew validate train`; CI trains once per clean machine).

At check time, for each claim the two evidence windows that share the most words with it are scored, and the
best score is the claim's support (one batch for the whole answer).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ModelUnavailableError
from smolcrew.manifest import staged, trained_folder

if TYPE_CHECKING:
    from sentence_transformers.cross_encoder import CrossEncoder

    from smolcrew.validators.verifier_data import Pair

__all__ = ["ClaimVerifier", "TrainingPlan", "train_verifier", "verifier_folder"]

log = logging.getLogger(__name__)

BASE_MODEL = "packaged:all-MiniLM-L6-v2"


@dataclass(frozen=True, slots=True)
class TrainingPlan:
    """How the verifier is trained; part of the cache key."""

    pairs: int = 3000
    """Synthetic pairs trained on (drawn from all the generator makes, balanced by label)."""
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_length: int = 128
    """Tokens of evidence + claim the model reads (a window of three sentences fits)."""
    seed: int = 0


def verifier_folder(cache_dir: Path, plan: TrainingPlan | None = None) -> Path:
    """Where the verifier trained with `plan` lives (or will)."""
    from smolcrew.validators import verifier_data

    generator = Path(verifier_data.__file__)
    passages = generator.parent / "data" / "verifier_passages.jsonl"
    inputs = (BASE_MODEL.encode(), generator.read_bytes(), passages.read_bytes())
    return trained_folder(cache_dir, "claim-verifier", plan or TrainingPlan(), *inputs)


def train_verifier(
    cache_dir: Path, plan: TrainingPlan | None = None, *, progress: Callable[[str], None] = log.info
) -> Path:
    """Train the verifier (unless it is cached) and return its folder; `metrics.json` in it holds the accuracy
    on synthetic pairs from passages kept out of training."""
    plan = plan or TrainingPlan()
    folder = verifier_folder(cache_dir, plan)
    if (folder / "metrics.json").is_file():
        return folder
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from smolcrew.manifest import resolve_source
    from smolcrew.validators.verifier_data import load_passages, split_passages, synthetic_pairs

    train_passages, held_passages = split_passages(load_passages(), seed=plan.seed)
    pairs = [_windowed(p) for p in _balanced(synthetic_pairs(train_passages, seed=plan.seed), plan.pairs, plan.seed)]
    held = [_windowed(p) for p in synthetic_pairs(held_passages, seed=plan.seed + 1)]
    progress(f"training the claim verifier on {len(pairs):,} synthetic pairs (a few minutes, once)")
    started = time.monotonic()
    model = CrossEncoder(resolve_source(BASE_MODEL), num_labels=1, max_length=plan.max_length, device="cpu")
    data = Dataset.from_dict(
        {
            "evidence": [p.evidence for p in pairs],
            "claim": [p.claim for p in pairs],
            "label": [float(p.label) for p in pairs],
        }
    )
    with tempfile.TemporaryDirectory() as scratch:
        arguments = CrossEncoderTrainingArguments(
            output_dir=scratch,
            num_train_epochs=plan.epochs,
            per_device_train_batch_size=plan.batch_size,
            learning_rate=plan.learning_rate,
            warmup_steps=0.1,  # a ratio when below 1 (transformers 5)
            seed=plan.seed,
            save_strategy="no",
            report_to="none",
            logging_steps=50,
            disable_tqdm=True,
            use_cpu=True,
        )
        CrossEncoderTrainer(model=model, args=arguments, train_dataset=data, loss=BinaryCrossEntropyLoss(model)).train()
    verifier = ClaimVerifier(model)
    scores = verifier.scores([(p.evidence, p.claim) for p in held])
    accuracy = sum((score >= 0.5) == bool(p.label) for score, p in zip(scores, held, strict=True)) / max(1, len(held))
    metrics: dict[str, Any] = {"held_out_pairs": len(held), "held_out_accuracy": round(accuracy, 4)}
    metrics["train_pairs"] = len(pairs)
    metrics |= {"train_s": round(time.monotonic() - started, 1), "plan": asdict(plan)}
    with staged(folder) as staging:
        model.save(str(staging))
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
    progress(f"claim verifier trained in {metrics['train_s']:.0f} s; held-out synthetic accuracy {accuracy:.1%}")
    return folder


def _windowed(pair: Pair) -> Pair:
    """The pair as the verifier meets it in a run: the claim against the evidence window closest to it."""
    from smolcrew.validators.claim_check import closest_passages, windows

    found = windows(pair.evidence)
    if len(found) <= 1:
        return pair
    return replace(pair, evidence=found[closest_passages(pair.claim, found, 1)[0]])


def _balanced(pairs: Sequence[Any], limit: int, seed: int) -> list[Any]:
    import random

    ordered = sorted(pairs, key=lambda p: (p.label, p.kind, p.claim))
    random.Random(seed).shuffle(ordered)
    positives = [p for p in ordered if p.label][: limit // 2]
    negatives = [p for p in ordered if not p.label][: limit - len(positives)]
    mixed = positives + negatives
    random.Random(seed + 1).shuffle(mixed)
    return mixed


class ClaimVerifier:
    """Scores claims against evidence with the trained cross-encoder (see the module docstring)."""

    def __init__(self, model: CrossEncoder, windows_per_claim: int = 2) -> None:
        self.model = model
        self.windows_per_claim = windows_per_claim

    def __repr__(self) -> str:
        return f"ClaimVerifier(cross-encoder, windows_per_claim={self.windows_per_claim})"

    @classmethod
    def load(cls, cache_dir: Path, plan: TrainingPlan | None = None) -> ClaimVerifier:
        """The trained verifier. Raises ModelUnavailableError when it has not been trained under `cache_dir`."""
        folder = verifier_folder(cache_dir, plan)
        if not (folder / "metrics.json").is_file():
            raise ModelUnavailableError(
                f"the claim verifier is not trained yet (expected in {folder})",
                backend="claim-verifier",
                fix='run `smolcrew validate train` (a few minutes, once), or set validation.claims = "terms"',
            )
        from sentence_transformers.cross_encoder import CrossEncoder

        return cls(CrossEncoder(str(folder), device="cpu"))

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """P(supported) for each (evidence, claim) pair."""
        if not pairs:
            return []
        import torch

        found = self.model.predict(
            list(pairs), batch_size=32, activation_fn=torch.nn.Sigmoid(), show_progress_bar=False
        )
        return [float(value) for value in found]

    def support(self, claims: Sequence[str], evidence: Sequence[str]) -> list[float]:
        from smolcrew.validators.claim_check import closest_passages

        if not evidence:
            return [0.0 for _ in claims]
        pairs: list[tuple[str, str]] = []
        owners: list[int] = []
        for index, claim in enumerate(claims):
            closest = closest_passages(claim, evidence, self.windows_per_claim)
            pairs += [(evidence[i], claim) for i in closest]
            owners += [index] * len(closest)
        best = [0.0 for _ in claims]
        for owner, score in zip(owners, self.scores(pairs), strict=True):
            best[owner] = max(best[owner], score)
        return best
