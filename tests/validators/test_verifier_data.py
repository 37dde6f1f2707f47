"""The verifier's training data: the hand-written passages load and are rich enough, sentences split as pysbd does,
and `synthetic_pairs` is deterministic, makes every kind, never labels a claim the evidence states verbatim as
unsupported, and keeps positives between 35% and 60%. No model is involved."""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from smolcrew.validators.verifier_data import (
    KINDS,
    PASSAGES,
    Pair,
    load_passages,
    sentences,
    split_passages,
    synthetic_pairs,
)

MIN_PASSAGES = 120
NUMBER_TOKEN = re.compile(r"\d|\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b", re.IGNORECASE)
split = cache(sentences)  # the pairs share few evidence texts


@pytest.fixture(scope="module")
def passages() -> list[dict[str, str]]:
    return load_passages()


@pytest.fixture(scope="module")
def pairs(passages: list[dict[str, str]]) -> list[Pair]:
    return synthetic_pairs(passages, seed=0)


def words(text: str) -> list[str]:
    return re.findall(r"[\w,.%'’-]+", text)


# --- passages ----------------------------------------------------------------------------------------------


def test_passages_load_with_their_fields(passages: list[dict[str, str]]) -> None:
    assert len(passages) >= MIN_PASSAGES
    assert all(set(passage) == {"id", "topic", "text"} for passage in passages)
    assert len({passage["id"] for passage in passages}) == len(passages)
    assert all(passage["topic"] and passage["text"] for passage in passages)


def test_passages_are_60_to_140_words_of_4_to_8_sentences(passages: list[dict[str, str]]) -> None:
    for passage in passages:
        assert 60 <= len(passage["text"].split()) <= 140, passage["id"]
        assert 4 <= len(sentences(passage["text"])) <= 8, passage["id"]


def test_passages_are_dense_with_numbers_and_names(passages: list[dict[str, str]]) -> None:
    for passage in passages:
        assert len(re.findall(r"\d+", passage["text"])) >= 3, passage["id"]
        assert len(re.findall(r"(?<![.!?:] )(?<!^)\b[A-Z][a-z]+", passage["text"])) >= 3, passage["id"]


def test_load_passages_rejects_a_record_without_text(tmp_path: Path) -> None:
    path = tmp_path / "passages.jsonl"
    path.write_text(json.dumps({"id": "x1", "topic": "t"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="text"):
        load_passages(path)


def test_the_default_file_is_beside_the_module() -> None:
    assert PASSAGES.name == "verifier_passages.jsonl" and PASSAGES.parent.name == "data"


# --- sentences ---------------------------------------------------------------------------------------------


def test_sentences_split_a_plain_text() -> None:
    assert sentences("The dam opened in 1936. It holds 35 cubic kilometres.  Tours run daily!") == [
        "The dam opened in 1936.",
        "It holds 35 cubic kilometres.",
        "Tours run daily!",
    ]


def test_sentences_keep_abbreviations_and_decimals() -> None:
    text = "Dr. Smith went to Washington D.C. on Monday. He paid 12.50 dollars. He left."
    assert sentences(text) == ["Dr. Smith went to Washington D.C. on Monday.", "He paid 12.50 dollars.", "He left."]


def test_sentences_of_empty_text() -> None:
    assert sentences("   ") == []


# --- pairs -------------------------------------------------------------------------------------------------


def test_pairs_are_deterministic_for_a_seed(passages: list[dict[str, str]], pairs: list[Pair]) -> None:
    assert synthetic_pairs(passages, seed=0) == pairs
    assert synthetic_pairs(passages, seed=1) != pairs


def test_every_kind_appears_with_its_label(pairs: list[Pair]) -> None:
    counts = Counter((pair.kind, pair.label) for pair in pairs)
    for kind in KINDS:
        label = 1 if kind in ("copy", "paraphrase", "window") else 0
        assert counts[kind, label] > 0, kind
        assert counts[kind, 1 - label] == 0, kind


def test_no_negative_claim_occurs_verbatim_in_its_evidence(pairs: list[Pair]) -> None:
    assert all(pair.claim not in pair.evidence for pair in pairs if pair.label == 0)


def test_copy_and_window_claims_are_inside_their_evidence(passages: list[dict[str, str]], pairs: list[Pair]) -> None:
    texts = {passage["text"] for passage in passages}
    for pair in pairs:
        if pair.kind in ("copy", "window"):
            assert pair.claim in pair.evidence
        if pair.kind == "window":
            assert 2 <= len(split(pair.evidence)) <= 4 and any(pair.evidence in text for text in texts)


def test_paraphrases_differ_from_every_sentence(pairs: list[Pair]) -> None:
    for pair in pairs:
        if pair.kind == "paraphrase":
            assert pair.claim not in split(pair.evidence)


def test_a_number_swap_changes_numbers_only(pairs: list[Pair]) -> None:
    swaps = [pair for pair in pairs if pair.kind == "number_swap"]
    assert swaps
    for pair in swaps:
        claim = words(pair.claim)
        sources = [s for s in map(words, split(pair.evidence)) if len(s) == len(claim)]
        changed = [[(a, b) for a, b in zip(source, claim, strict=True) if a != b] for source in sources]
        assert any(diff and all(NUMBER_TOKEN.search(a) and NUMBER_TOKEN.search(b) for a, b in diff) for diff in changed)


def test_a_date_swap_keeps_the_sentence_around_the_date(pairs: list[Pair]) -> None:
    for pair in (pair for pair in pairs if pair.kind == "date_swap"):
        claim = words(pair.claim)
        assert any(len(source) == len(claim) and sum(a != b for a, b in zip(source, claim, strict=True)) == 1
                   for source in map(words, split(pair.evidence)))  # fmt: skip


def test_unrelated_claims_come_from_other_passages(passages: list[dict[str, str]], pairs: list[Pair]) -> None:
    elsewhere = {s for passage in passages for s in split(passage["text"])}
    assert all(pair.claim in elsewhere for pair in pairs if pair.kind == "unrelated")


def test_positives_are_35_to_60_percent(pairs: list[Pair]) -> None:
    share = sum(pair.label for pair in pairs) / len(pairs)
    assert 0.35 <= share <= 0.6


def test_pairs_are_shuffled(pairs: list[Pair]) -> None:
    assert len({pair.kind for pair in pairs[:50]}) > 3


def test_no_pairs_from_no_passages() -> None:
    assert synthetic_pairs([]) == []


# --- split -------------------------------------------------------------------------------------------------


def test_split_is_by_passage_and_deterministic(passages: list[dict[str, str]]) -> None:
    train, held = split_passages(passages, held_out=0.15, seed=0)
    assert (train, held) == split_passages(passages, held_out=0.15, seed=0)
    assert len(held) == round(len(passages) * 0.15) and len(train) + len(held) == len(passages)
    assert not {p["id"] for p in train} & {p["id"] for p in held}
    assert split_passages(passages, seed=1)[1] != held
