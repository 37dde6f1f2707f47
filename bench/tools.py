"""Tool overhead, per-call loading, batching and cold loads: what the PipelinePool buys a tool call.

    python bench/tools.py [--quick] [--threads N]

1. Warm tool call vs the raw call it wraps, same input, same loaded object: ClassifySentiment on a tiny random
   text classifier (raw: the pool's transformers pipeline called as the tool calls it) and CompareSentences on
   the packaged MiniLM (raw: `encode([a, b], normalize_embeddings=True)` and the dot product). 200 calls each
   after 20 warm-up calls (50 with --quick), taking turns; ClassifySentiment also as ToolCallingAgent calls it
   (`sanitize_inputs_outputs=True`). Goal: median ratio tool / raw ≤ 1.05. The median of the per-round
   differences (tool − raw) is shown too: it is steadier than the ratio when other load comes and goes.
2. Warm tool call vs the tutorial pattern, which builds the model on every call (`pipeline(task, model=folder)`
   then call; `SentenceTransformer(folder)` then encode): 20 rounds (8 for MiniLM; 5 and 3 with --quick) of one
   load-and-call and 10 warm calls. Goal: speed-up (median per-call ÷ median warm call) ≥ 20×.
3. 64 texts in one call of a list-accepting tool (CheckGrammar, ClassifyTextZeroShot, ExtractEntities on tiny
   random models) vs 64 calls of one text; the raw tiny pipeline with batch_size=64 vs 64 single calls; MiniLM
   `encode(texts)` vs 64 single encodes; 5 rounds (2 with --quick). Goal: throughput ratio ≥ 3×.
4. Load time of each tool role through a fresh PipelinePool (`stats.load_seconds`) and what the pool counts as
   resident (`stats.resident_bytes`), for every role with a tiny builder in tests/tools/tiny_*.py plus the
   packaged MiniLM, Whisper base and Whisper tiny.en. Libraries (transformers, diffusers, sentence-transformers,
   faster-whisper) are imported first, so "first load" is the model's own cost in a warm process (it still
   includes transformers' lazy import of that model's code); "reload" is a second fresh pool (files cached).
   "params here" counts torch parameters and buffers by walking the loaded object, to check the pool's count.

Tiny models are random (built from configs, as the tests build them): their times show overhead, not real
model cost; the MiniLM rows are a real model. Everything runs on CPU, with torch's default thread count unless
--threads says otherwise: on a small machine that other processes keep busy, torch's threads wait on each other
and a tiny model's call can take 100x longer (the script reports the other load; use --threads 1 there).
Writes bench/results/tools.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import cpu_snapshot, markdown_table, other_cores

ROOT = Path(__file__).resolve().parent.parent
# This file is bench/tools.py: with bench/ on sys.path, `import tools` would find it instead of the tools package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here is local; never wait on the Hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BATCH = 64
SENTIMENT_TEXT = "the movie is great and the acting is good"
PAIR = ("The cat sleeps on the red car.", "A cat is asleep on top of a red car.")
ZERO_SHOT_LABELS = ["sports", "politics", "travel"]
WARM_PER_LOAD = 10
"""Section 2: warm tool calls per round, next to one load-and-call."""
RESIDENT_TOLERANCE = 0.05
"""Section 4: the pool's count may miss this share of the parameters counted here (e.g. a scheduler's tensors)."""


# --- measurement helpers (as in bench/startup.py) -------------------------------------------------------------


def interleaved(calls: dict[str, Callable[[], Any]], reps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each callable, taking turns (order flipped every round) so passing load hits all alike."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(reps):
        for name in names if i % 2 == 0 else reversed(names):
            started = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - started)
    return times


def summary(values: list[float]) -> dict[str, Any]:
    p90 = statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) >= 2 else values[0]
    return {
        "n": len(values),
        "median_s": statistics.median(values),
        "p90_s": p90,
        "min_s": min(values),
        "samples_s": [round(v, 7) for v in values],
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}" if seconds < 0.1 else f"{seconds * 1000:.0f}"


def verdict(ok: bool) -> str:
    return "✅" if ok else "❌"


def folder_mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def counted_param_bytes(obj: Any, depth: int = 4) -> int:
    """Torch parameter and buffer bytes reachable from `obj` through attributes, slots, tuples, lists and dicts."""
    import torch

    tensors: dict[int, int] = {}
    visited: set[int] = set()

    def visit(node: Any, level: int) -> None:
        if level < 0 or id(node) in visited or isinstance(node, (str, bytes, int, float, bool, type(None), type)):
            return
        visited.add(id(node))
        if isinstance(node, torch.nn.Module):
            for tensor in (*node.parameters(), *node.buffers()):
                tensors[id(tensor)] = tensor.numel() * tensor.element_size()
            return
        if isinstance(node, torch.Tensor):
            tensors[id(node)] = node.numel() * node.element_size()
            return
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, (list, tuple, set, frozenset)):
            children = list(node)
        else:
            children = list(vars(node).values()) if hasattr(node, "__dict__") else []
            for cls in type(node).__mro__:
                for slot in getattr(cls, "__slots__", ()):
                    if isinstance(slot, str) and hasattr(node, slot):
                        children.append(getattr(node, slot))
        if len(children) > 2000:  # a vocabulary, not a container of models
            return
        for child in children:
            visit(child, level - 1)

    visit(obj, depth)
    return sum(tensors.values())


# --- models ---------------------------------------------------------------------------------------------------


TINY_ROLES: list[tuple[str, str, str, tuple[Any, ...]]] = [
    # (role, module in tests/tools, builder, extra arguments after the folder)
    ("sentiment", "tiny_models", "tiny_text_classifier", ()),
    ("grammar", "tiny_language", "tiny_sequence_classifier", ()),
    ("nli", "tiny_language", "tiny_cross_encoder", ()),
    ("zero_shot", "tiny_language", "tiny_sequence_classifier", (["entailment", "neutral", "contradiction"],)),
    ("extractive_qa", "tiny_language", "tiny_question_answerer", ()),
    ("ner", "tiny_language", "tiny_token_classifier", (["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],)),
    ("pos", "tiny_language", "tiny_token_classifier", (["NOUN", "VERB", "DET", "ADP", "PROPN"],)),
    ("summarizer", "tiny_language", "tiny_bart_summarizer", ()),
    ("translator_opus", "tiny_language", "tiny_marian_translator", ()),
    ("translator", "tiny_language", "tiny_m2m100_translator", ()),
    ("text_generator", "tiny_language", "tiny_text_generator", ()),
    ("image_classifier", "tiny_vision", "tiny_image_classifier", ()),
    ("object_detector", "tiny_vision", "tiny_object_detector", ()),
    ("image_segmenter", "tiny_vision", "tiny_segmenter", ()),
    ("image_captioner", "tiny_vision", "tiny_captioner", ()),
    ("image_text_matcher", "tiny_vision", "tiny_clip", ()),
    ("image_question_answerer", "tiny_vision", "tiny_vqa", ()),
    ("depth_estimator", "tiny_vision", "tiny_depth_estimator", ()),
    ("video_text_matcher", "tiny_vision", "tiny_xclip", ()),
    ("video_sound_matcher", "tiny_vision", "tiny_clap", ()),
    ("audio_classification", "tiny_audio", "tiny_audio_classifier", ()),
    ("text_to_speech", "tiny_audio", "tiny_speecht5", ()),
    ("image_generator", "tiny_generation", "tiny_stable_diffusion", ()),
    ("image_editor", "tiny_generation", "tiny_stable_diffusion", ()),
    ("controlnet_canny", "tiny_generation", "tiny_controlnet", ()),
    ("video_generator", "tiny_generation", "tiny_text_to_video", ()),
    ("pdf_qa", "tiny_documents", "tiny_extractive_qa", ()),
    ("document_qa", "tiny_documents", "tiny_layoutlm_qa", ()),
]


def manifest_role(role: str) -> str:
    """The manifest's spelling of `role` (roles have been spelt both `zero-shot` and `zero_shot`)."""
    from smolcrew.manifest import manifest

    names = {name.replace("-", "_"): name for name in manifest()}
    return names.get(role.replace("-", "_"), role)


def build_tiny(root: Path, role: str, module_name: str, builder: str, extra: tuple[Any, ...]) -> Path:
    """Build the role's tiny model under root/role, as the tests do; returns what the role's override names."""
    import importlib

    import numpy as np

    build = getattr(importlib.import_module(f"tests.tools.{module_name}"), builder)
    if role == "translator_opus":  # OpusPairs takes a prefix and finds `{prefix}-en-de` next to it
        build(root / "opus-mt-en-de")
        return root / "opus-mt"
    folder = build(root / role, *extra)
    if role == "text_to_speech":  # the speaker x-vector the SpeechT5 engine reads, as tests/tools/test_audio.py
        np.save(folder / "speaker_embedding.npy", np.random.default_rng(0).normal(size=16).astype(np.float32))
    return folder


PACKAGED_ROLES = {
    "embeddings": "packaged:all-MiniLM-L6-v2",
    "speech_to_text": "packaged:whisper-base",
    "speech_to_text_english": "packaged:whisper-tiny.en",
}


def sentences(count: int, seed: int = 0) -> list[str]:
    """`count` sentences of 5-20 words from the tiny language models' vocabulary (real English words)."""
    from tests.tools.tiny_language import WORDS

    words = [w for w in WORDS if w.isalpha()]
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(5, 20))) + " ." for _ in range(count)]


# --- sections -------------------------------------------------------------------------------------------------


def bound(tool: Any, pool: Any) -> Any:
    """`tool` bound to `pool`, as the team binds the tools it builds (see smolcrew.tools.context)."""
    from smolcrew.tools.context import ToolContext

    tool.context = ToolContext(pool=pool)
    return tool


def section_overhead(pool: Any, reps: int, warmup: int) -> dict[str, Any]:
    from smolcrew.tools.text import ClassifySentiment, CompareSentences

    sentiment, compare = bound(ClassifySentiment(), pool), bound(CompareSentences(), pool)
    pipe, encoder = pool.get(manifest_role("sentiment")), pool.get(manifest_role("embeddings"))

    def raw_compare() -> float:
        vectors = encoder.encode(list(PAIR), normalize_embeddings=True)
        return float(vectors[0] @ vectors[1])

    raw_codes = {
        "ClassifySentiment (tiny random BERT)": "pipe(text, truncation=True)[0]",
        "CompareSentences (packaged MiniLM-L6)": "encoder.encode([a, b], normalize_embeddings=True); v[0] @ v[1]",
    }
    cases: dict[str, dict[str, Callable[[], Any]]] = {
        "ClassifySentiment (tiny random BERT)": {
            "raw": lambda: pipe(SENTIMENT_TEXT, truncation=True)[0],
            "tool": lambda: sentiment(text=SENTIMENT_TEXT),
            "tool, as ToolCallingAgent calls it": lambda: sentiment(text=SENTIMENT_TEXT, sanitize_inputs_outputs=True),
        },
        "CompareSentences (packaged MiniLM-L6)": {
            "raw": raw_compare,
            "tool": lambda: compare(text_a=PAIR[0], text_b=PAIR[1]),
        },
    }
    results: dict[str, Any] = {}
    for name, case in cases.items():
        raw_code = raw_codes[name]
        times = interleaved(case, reps, warmup)
        raw_median = statistics.median(times["raw"])
        results[name] = {"raw_code": raw_code} | {
            variant: summary(values)
            | {
                "ratio_to_raw": statistics.median(values) / raw_median,
                # each call against the raw call of the same round: robust to load that drifts between rounds
                "paired_difference_median_s": statistics.median(
                    tool - raw for tool, raw in zip(values, times["raw"], strict=True)
                ),
            }
            for variant, values in times.items()
        }
    return results


def section_per_call_load(pool: Any, folders: dict[str, str], reps_tiny: int, reps_minilm: int) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer
    from transformers import pipeline

    from smolcrew.manifest import resolve_source
    from smolcrew.tools.text import ClassifySentiment, CompareSentences

    sentiment, compare = bound(ClassifySentiment(), pool), bound(CompareSentences(), pool)
    sentiment(text=SENTIMENT_TEXT), compare(text_a=PAIR[0], text_b=PAIR[1])  # both loaded: warm
    tiny_folder = folders[manifest_role("sentiment")]
    minilm_folder = resolve_source(PACKAGED_ROLES["embeddings"])

    def tutorial_tiny() -> Any:
        return pipeline("text-classification", model=tiny_folder)(SENTIMENT_TEXT, truncation=True)[0]

    def tutorial_minilm() -> float:
        vectors = SentenceTransformer(minilm_folder).encode(list(PAIR), normalize_embeddings=True)
        return float(vectors[0] @ vectors[1])

    cases = {
        "ClassifySentiment (tiny random BERT)": (
            tutorial_tiny,
            lambda: sentiment(text=SENTIMENT_TEXT),
            reps_tiny,
            'pipeline("text-classification", model=folder)(text, truncation=True)',
        ),
        "CompareSentences (packaged MiniLM-L6)": (
            tutorial_minilm,
            lambda: compare(text_a=PAIR[0], text_b=PAIR[1]),
            reps_minilm,
            "SentenceTransformer(folder).encode([a, b], normalize_embeddings=True)",
        ),
    }
    results: dict[str, Any] = {}
    for name, (per_call, warm, reps, code) in cases.items():
        per_call()  # warm-up: the first build also imports the model's code
        loads: list[float] = []
        warms: list[float] = []
        for i in range(reps):  # each round: one load-and-call and WARM_PER_LOAD warm calls, order flipped
            for step in ("load", "warm") if i % 2 == 0 else ("warm", "load"):
                if step == "load":
                    started = time.perf_counter()
                    per_call()
                    loads.append(time.perf_counter() - started)
                    continue
                for _ in range(WARM_PER_LOAD):
                    started = time.perf_counter()
                    warm()
                    warms.append(time.perf_counter() - started)
        results[name] = {
            "per_call_code": code,
            "per_call": summary(loads),
            "warm_tool": summary(warms),
            "speedup": statistics.median(loads) / statistics.median(warms),
        }
    return results


def section_batching(pool: Any, reps: int) -> dict[str, Any]:
    from smolcrew.tools.language import CheckGrammar, ClassifyTextZeroShot, ExtractEntities

    texts = sentences(BATCH)
    grammar, zero_shot, entities = (
        bound(tool, pool) for tool in (CheckGrammar(), ClassifyTextZeroShot(), ExtractEntities())
    )
    pipe, encoder = pool.get(manifest_role("sentiment")), pool.get(manifest_role("embeddings"))
    cases: dict[str, tuple[Callable[[], Any], Callable[[], Any], str]] = {
        "CheckGrammar tool (tiny BERT)": (
            lambda: grammar(text=texts),
            lambda: [grammar(text=t) for t in texts],
            "tool(text=list) → pipeline batch_size=32",
        ),
        "ClassifyTextZeroShot tool (tiny BERT, 3 labels)": (
            lambda: zero_shot(text=texts, candidate_labels=ZERO_SHOT_LABELS),
            lambda: [zero_shot(text=t, candidate_labels=ZERO_SHOT_LABELS) for t in texts],
            "tool(text=list) → pipeline batch_size=32",
        ),
        "ExtractEntities tool (tiny BERT)": (
            lambda: entities(text=texts),
            lambda: [entities(text=t) for t in texts],
            "tool(text=list) → pipeline batch_size=32",
        ),
        "raw text-classification pipeline (tiny BERT)": (
            lambda: pipe(texts, truncation=True, batch_size=BATCH),
            lambda: [pipe(t, truncation=True) for t in texts],
            "pipe(list, batch_size=64)",
        ),
        "MiniLM-L6 encode (packaged)": (
            lambda: encoder.encode(texts, normalize_embeddings=True, batch_size=BATCH),
            lambda: [encoder.encode([t], normalize_embeddings=True) for t in texts],
            "encode(list, batch_size=64)",
        ),
    }
    results: dict[str, Any] = {}
    for name, (batched, single, how) in cases.items():
        times = interleaved({"batched": batched, "single": single}, reps, warmup=1)
        batched_s, single_s = statistics.median(times["batched"]), statistics.median(times["single"])
        results[name] = {
            "how": how,
            "texts": BATCH,
            "batched": summary(times["batched"]),
            "single": summary(times["single"]),
            "batched_texts_per_s": BATCH / batched_s,
            "single_texts_per_s": BATCH / single_s,
            "ratio": single_s / batched_s,
        }
    return results


def import_libraries() -> dict[str, float]:
    """Import what the loaders import, timed, so that load times are the models' own."""
    seconds: dict[str, float] = {}
    for name, code in {
        "transformers pipeline": "from transformers import pipeline",
        "sentence_transformers": "import sentence_transformers",
        "diffusers": "import diffusers; from diffusers import DiffusionPipeline, AutoPipelineForText2Image",
        "faster_whisper": "import faster_whisper",
    }.items():
        started = time.perf_counter()
        try:
            exec(code, {})
        except ImportError:
            seconds[name] = float("nan")
            continue
        seconds[name] = time.perf_counter() - started
    return seconds


def section_cold_loads(roles: list[tuple[str, str, str, str]], reload: bool) -> list[dict[str, Any]]:
    """roles: (role, kind, builder or source, override or ''). One fresh pool per role and per load."""
    from smolcrew.manifest import resolve_source
    from smolcrew.pool import PipelinePool

    rows = []
    for role, kind, builder, override in roles:
        row: dict[str, Any] = {"role": role, "kind": kind, "builder": builder}
        loads: list[float] = []
        for attempt in range(2 if reload else 1):
            pool = PipelinePool(device="cpu", overrides={role: override} if override else None)
            try:
                loaded = pool.get(role)
            except Exception as exc:  # report, keep going: one broken role must not sink the table
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                break
            (key,) = pool.stats.load_seconds
            loads.append(pool.stats.load_seconds[key])
            if attempt == 0:
                row["model"] = key.model
                row["resident_bytes"] = pool.stats.resident_bytes.get(key, 0)
                row["counted_param_bytes"] = counted_param_bytes(loaded)
                source = Path(resolve_source(key.model))
                row["disk_mib"] = folder_mib(source) if source.exists() else None
                if role.replace("-", "_") == "translator_opus":  # OpusPairs loads each pair on first use
                    started = time.perf_counter()
                    bundle = loaded.get("en", "de")
                    row["lazy_pair_load_s"] = time.perf_counter() - started
                    row["lazy_pair_param_bytes"] = counted_param_bytes(bundle)
                    row["disk_mib"] = folder_mib(Path(loaded.name("en", "de")))
            del loaded, pool
            gc.collect()
        row["load_s"] = loads[0] if loads else None
        row["reload_s"] = loads[1] if len(loads) > 1 else None
        rows.append(row)
    return rows


# --- main -----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (50 warm calls, 5 per-call loads)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    reps, warmup = (50, 10) if args.quick else (200, 20)
    reps_tiny, reps_minilm, reps_batch = (5, 3, 2) if args.quick else (20, 8, 5)

    warnings.filterwarnings("ignore")
    import torch
    import transformers

    from smolcrew.pool import PipelinePool

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        import diffusers

        diffusers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.disable_progress_bar()
    except ImportError:
        pass
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu: dict[str, float | None] = {}
    section_s: dict[str, float] = {}

    snap, t0 = cpu_snapshot(), time.perf_counter()
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="smolcrew-bench-tools-"))
    folders: dict[str, str] = {}
    build_errors: dict[str, str] = {}
    for role, module_name, builder, extra in TINY_ROLES:
        try:
            folders[manifest_role(role)] = str(build_tiny(root, role, module_name, builder, extra))
        except Exception as exc:  # a builder needing a missing package: skip that role, say so
            build_errors[manifest_role(role)] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    build_s = time.perf_counter() - started
    cpu["build"] = other_cores(snap, cpu_snapshot())

    used = [manifest_role(r) for r in ("sentiment", "grammar", "zero_shot", "ner")]
    pool = PipelinePool(device="cpu", overrides={role: folders[role] for role in used})

    snap, t0 = cpu_snapshot(), time.perf_counter()
    overhead = section_overhead(pool, reps, warmup)
    cpu["overhead"] = other_cores(snap, cpu_snapshot())
    section_s["overhead"] = time.perf_counter() - t0

    snap, t0 = cpu_snapshot(), time.perf_counter()
    per_call = section_per_call_load(pool, folders, reps_tiny, reps_minilm)
    cpu["per_call_load"] = other_cores(snap, cpu_snapshot())
    section_s["per_call_load"] = time.perf_counter() - t0

    snap, t0 = cpu_snapshot(), time.perf_counter()
    batching = section_batching(pool, reps_batch)
    cpu["batching"] = other_cores(snap, cpu_snapshot())
    section_s["batching"] = time.perf_counter() - t0
    del pool
    gc.collect()

    snap, t0 = cpu_snapshot(), time.perf_counter()
    imports = import_libraries()
    roles = [
        (manifest_role(role), "tiny", f"{module}.{builder}", folders[manifest_role(role)])
        for role, module, builder, _ in TINY_ROLES
        if manifest_role(role) in folders
    ]
    roles += [(manifest_role(role), "packaged", source, "") for role, source in PACKAGED_ROLES.items()]
    loads = section_cold_loads(roles, reload=True)
    cpu["cold_loads"] = other_cores(snap, cpu_snapshot())
    section_s["cold_loads"] = time.perf_counter() - t0

    # --- tables ---
    threads = torch.get_num_threads()
    print(
        f"## Tool overhead: warm tool call vs the raw call ({reps} calls each after {warmup} warm-up, taking turns)\n"
    )
    rows = []
    for name, result in overhead.items():
        raw = result["raw"]
        for variant in [v for v in ("tool", "tool, as ToolCallingAgent calls it") if v in result]:
            tool = result[variant]
            ratio = tool["ratio_to_raw"]
            rows.append(
                [
                    name if variant == "tool" else f"{name}, `sanitize_inputs_outputs=True`",
                    f"{ms(raw['median_s'])} / {ms(raw['p90_s'])}",
                    f"{ms(tool['median_s'])} / {ms(tool['p90_s'])}",
                    f"{tool['paired_difference_median_s'] * 1e6:+.0f}",
                    f"{ratio:.3f}",
                    f"≤ 1.05 {verdict(ratio <= 1.05)}",
                ]
            )
    print(
        markdown_table(
            [
                "tool",
                "raw ms (median / p90)",
                "tool ms (median / p90)",
                "tool − raw µs (median of pairs)",
                "tool ÷ raw (medians)",
                "goal",
            ],
            rows,
        )
    )
    raw_codes = "; ".join(f"`{result['raw_code']}`" for result in overhead.values())
    print(f"\nraw = the pool's own object with the tool's arguments: {raw_codes}")

    print(
        f"\n## Warm tool call vs loading the model on every call (the tutorial pattern; {reps_tiny} / {reps_minilm} "
        f"rounds of one load-and-call and {WARM_PER_LOAD} warm calls)\n"
    )
    rows = []
    for name, result in per_call.items():
        speedup = result["speedup"]
        rows.append(
            [
                name,
                f"`{result['per_call_code']}`",
                f"{ms(result['per_call']['median_s'])} / {ms(result['per_call']['p90_s'])}",
                f"{ms(result['warm_tool']['median_s'])} / {ms(result['warm_tool']['p90_s'])}",
                f"{speedup:,.0f}×",
                f"≥ 20× {verdict(speedup >= 20)}",
            ]
        )
    print(
        markdown_table(
            ["tool", "per call", "per call ms (median / p90)", "warm tool ms (median / p90)", "speed-up", "goal"], rows
        )
    )

    print(f"\n## Batching: {BATCH} texts in one call vs {BATCH} calls of one text ({reps_batch} rounds, medians)\n")
    rows = []
    for name, result in batching.items():
        ratio = result["ratio"]
        rows.append(
            [
                name,
                result["how"],
                f"{result['batched']['median_s'] * 1000:.0f}",
                f"{result['single']['median_s'] * 1000:.0f}",
                f"{result['batched_texts_per_s']:,.0f}",
                f"{result['single_texts_per_s']:,.0f}",
                f"{ratio:.1f}×",
                f"≥ 3× {verdict(ratio >= 3)}",
            ]
        )
    print(
        markdown_table(
            [
                "what",
                "batched call",
                "batched ms",
                "64 single ms",
                "batched texts/s",
                "single texts/s",
                "ratio",
                "goal",
            ],
            rows,
        )
    )

    print("\n## Cold load per role through a fresh PipelinePool (CPU)\n")
    rows = []
    for row in loads:
        if "error" in row:
            rows.append([f"`{row['role']}`", row["kind"], "—", "—", "—", "—", "—", f"failed: {row['error']}"])
            continue
        pool_mib, counted_mib = row["resident_bytes"] / 2**20, row["counted_param_bytes"] / 2**20
        notes = []
        if row["role"].replace("-", "_") == "translator_opus":
            notes.append(
                f"lazy: en→de pair loads on first use, {row['lazy_pair_load_s']:.2f} s, "
                f"{row['lazy_pair_param_bytes'] / 2**20:.2f} MiB"
            )
        elif abs(pool_mib - counted_mib) > 0.005 + RESIDENT_TOLERANCE * counted_mib:
            notes.append("❌ pool under-counts" if pool_mib < counted_mib else "pool over-counts")
        if row["role"].startswith("speech_to_text"):
            notes.append("CTranslate2 int8, not torch: neither count sees it")
        model = row["builder"] if row["kind"] == "tiny" else f"`{row['builder']}`"
        rows.append(
            [
                f"`{row['role']}`",
                f"{row['kind']}: {model}",
                f"{row['load_s']:.3f}",
                f"{row['reload_s']:.3f}" if row["reload_s"] is not None else "—",
                f"{pool_mib:.2f}",
                f"{counted_mib:.2f}",
                f"{row['disk_mib']:.2f}" if row["disk_mib"] is not None else "—",
                "; ".join(notes),
            ]
        )
    print(
        markdown_table(
            [
                "role",
                "model",
                "first load s",
                "reload s",
                "resident MiB (pool)",
                "params MiB (counted here)",
                "on disk MiB",
                "note",
            ],
            rows,
        )
    )
    from smolcrew.manifest import manifest

    covered = {row["role"] for row in loads}
    missing = sorted(set(manifest()) - covered)
    print(
        "\ntransformers, sentence-transformers, diffusers and faster-whisper were imported before the first load "
        f"(by the builders and the sections above); tiny models built in {build_s:.1f} s. A pool that reports 0 MiB "
        "for a torch model cannot evict it under `budget_mb`."
    )
    if missing:
        print("roles not measured (no tiny builder, not packaged): " + ", ".join(f"`{r}`" for r in missing))
    if build_errors:
        print("builders that failed: " + "; ".join(f"{r}: {e}" for r, e in build_errors.items()))
    overall = [v for v in cpu.values() if v is not None]
    busy = max(overall) if overall else None
    print(
        f"\n{os.cpu_count()} CPUs, torch threads {threads}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}. CPU cores busy with other processes (avg): "
        + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items() if v is not None)
    )
    if busy is not None and busy > 0.5:
        print(
            f"⚠ other processes kept {busy:.2f} cores busy in one section: its times are inflated and torch's "
            f"{threads} threads contend with them (tails of 10-100x); rerun when idle, or with --threads 1"
        )

    shutil.rmtree(root, ignore_errors=True)
    out = Path(__file__).resolve().parent / "results" / "tools.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "tools",
        "quick": args.quick,
        "python": sys.executable,
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "other_processes_cores": cpu,
        "section_s": section_s,
        "tiny_build_s": build_s,
        "build_errors": build_errors,
        "inputs": {"sentiment_text": SENTIMENT_TEXT, "pair": PAIR, "batch_texts": sentences(BATCH)},
        "overhead": {"goal_ratio_max": 1.05, "reps": reps, "warmup": warmup, "cases": overhead},
        "per_call_load": {"goal_speedup_min": 20, "cases": per_call},
        "batching": {"goal_ratio_min": 3, "rounds": reps_batch, "cases": batching},
        "cold_loads": {"library_import_s": imports, "roles": loads, "not_measured": missing},
    }
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
