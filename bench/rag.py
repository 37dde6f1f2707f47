"""Document RAG: ingestion throughput and retrieval latency on a generated corpus of more than 1,000 chunks.

    python bench/rag.py [--files N] [--queries N]

The corpus (made in a temp folder, seeded): N markdown notes (default 110) of about 8 chunks each, 10 PDFs of 6
pages (fpdf2) and 10 HTML pages; every file holds facts like "The access code of project Amber-17 is 4821."
among filler paragraphs. Measured on the packaged MiniLM (loaded before timing) and an embedded Chroma:
1. ingestion: load + split + embed + write, chunks/s; then re-ingesting the unchanged corpus (adds nothing);
2. `DocumentStore.search` latency (k=5) over `--queries` fact questions: p50/p95 ms and hit@1 (the chunk that
   holds the fact comes first, right file and page);
3. `answer_with_citations` latency (retrieval, possible rewrite round, sentence extraction) on 30 questions.
Prints a markdown table and writes bench/results/rag.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/tools.py would shadow the tools package if bench/ stayed on sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from smolcrew.memory.ingest import ingest  # noqa: E402
from smolcrew.memory.rag import DocumentStore  # noqa: E402
from smolcrew.tools.rag import AnswerWithCitations, SearchDocuments  # noqa: E402

_VOCABULARY = (
    "river harbour ledger budget valve sensor meadow quarry archive turbine schedule audit pipeline lantern "
    "harvest orchard council bridge tunnel compressor warehouse freight signal beacon glacier canyon festival "
    "library museum clinic school ferry railway station market bakery tannery mill forge furnace reactor"
)
WORDS = _VOCABULARY.split()
_PROJECTS = "Amber Birch Cobalt Delta Ember Falcon Garnet Harbor Indigo Juniper Kestrel Lumen Marble Nimbus"
NAMES = _PROJECTS.split()
THINGS = ["access code", "budget in euros", "room number", "launch year", "crew size", "serial number"]


def filler(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = rng.sample(WORDS, 9)
        out.append(
            f"The {words[0]} near the {words[1]} {rng.choice(['shows', 'needs', 'feeds', 'joins'])} "
            f"the {words[2]} and the {words[3]}, while the {words[4]} of the {words[5]} stays "
            f"{rng.choice(['quiet', 'busy', 'closed', 'open'])} for the {words[6]} {words[7]} {words[8]}."
        )
    return " ".join(out)


def make_corpus(folder: Path, files: int, rng: random.Random) -> list[tuple[str, str, str, int | None]]:
    """Writes the corpus; returns (question, expected value, file name, page) per fact."""
    from fpdf import FPDF

    facts: list[tuple[str, str, str, int | None]] = []
    counter = iter(range(1_000_000))

    def fact(name: str, page: int | None) -> str:
        project, thing = f"{rng.choice(NAMES)}-{next(counter)}", rng.choice(THINGS)
        value = str(rng.randint(1000, 9999))
        facts.append((f"What is the {thing} of project {project}?", value, name, page))
        return f"The {thing} of project {project} is {value}."

    (folder / "notes").mkdir(parents=True)
    for i in range(files):
        name = f"note_{i:03d}.md"
        sections = [f"## Section {s}\n\n{filler(rng, 3)} {fact(name, None)} {filler(rng, 2)}" for s in range(6)]
        (folder / "notes" / name).write_text(f"# Note {i}\n\n" + "\n\n".join(sections), encoding="utf-8")
    for i in range(10):
        name = f"report_{i:02d}.pdf"
        pdf = FPDF()
        pdf.set_font("helvetica", size=11)
        for page in range(1, 7):
            pdf.add_page()
            pdf.multi_cell(0, 6, f"{filler(rng, 4)} {fact(name, page)} {filler(rng, 3)}")
        pdf.output(str(folder / name))
    for i in range(10):
        name = f"page_{i:02d}.html"
        body = "".join(
            f"<h2>Part {p}</h2><p>{filler(rng, 3)} {fact(name, None)} {filler(rng, 2)}</p>" for p in range(5)
        )
        (folder / name).write_text(f"<html><head><title>Page {i}</title></head><body>{body}</body></html>")
    return facts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=140, help="markdown notes (about 8 chunks each)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        folder = Path(tmp) / "corpus"
        facts = make_corpus(folder, args.files, rng)
        store = DocumentStore(Path(tmp) / "chroma")
        started = time.perf_counter()
        store.embeddings.embed_query("warm up")  # load MiniLM outside the timings
        load_s = time.perf_counter() - started

        report = ingest(folder, store=store)
        again = ingest(folder, store=store)
        assert again.chunks == 0 and store.count() == report.chunks, (again, store.count())

        questions = rng.sample(facts, min(args.queries, len(facts)))
        for question, *_ in questions[:5]:
            store.search(question, 5)  # warm-up
        latencies, hits = [], 0
        for question, value, name, page in questions:
            t0 = time.perf_counter()
            found = store.search(question, 5)
            latencies.append((time.perf_counter() - t0) * 1000)
            top = found[0]
            hits += value in top.text and top.name == name and top.page == page

        search_tool = SearchDocuments(store=store)
        hybrid_ms, hybrid_hits = [], 0
        for question, value, name, page in questions:
            t0 = time.perf_counter()
            rows = search_tool(query=question, k=5)
            hybrid_ms.append((time.perf_counter() - t0) * 1000)
            hybrid_hits += value in rows[0]["text"] and Path(rows[0]["source"]).name == name and rows[0]["page"] == page

        tool = AnswerWithCitations(store=store)
        answer_ms, answer_hits, rewrites = [], 0, 0
        for question, value, _name, _page in questions[:30]:
            t0 = time.perf_counter()
            result = tool(question=question)
            answer_ms.append((time.perf_counter() - t0) * 1000)
            answer_hits += value in result["answer"].split("Sources:")[0]
            rewrites += result["rounds"] == 2

    results = {
        "corpus": {"files": report.files, "chunks": report.chunks, "facts": len(facts)},
        "model_load_s": round(load_s, 2),
        "ingest": {
            "seconds": report.seconds,
            "chunks_per_s": round(report.chunks / report.seconds, 1),
            "files_per_s": round(report.files / report.seconds, 1),
            "reingest_seconds": again.seconds,
            "reingest_added": again.chunks,
        },
        "search": {
            "queries": len(latencies),
            "k": 5,
            "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(percentile(latencies, 0.95), 1),
            "hit_at_1": round(hits / len(latencies), 3),
        },
        "search_documents_tool": {
            "queries": len(hybrid_ms),
            "k": 5,
            "candidates_reranked": 20,
            "p50_ms": round(statistics.median(hybrid_ms), 1),
            "p95_ms": round(percentile(hybrid_ms, 0.95), 1),
            "hit_at_1": round(hybrid_hits / len(hybrid_ms), 3),
        },
        "answer_with_citations": {
            "questions": len(answer_ms),
            "p50_ms": round(statistics.median(answer_ms), 1),
            "p95_ms": round(percentile(answer_ms, 0.95), 1),
            "answer_contains_fact": round(answer_hits / len(answer_ms), 3),
            "rewrite_rounds": rewrites,
        },
        "machine": {
            "torch_threads": args.threads,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "measured": time.strftime("%Y-%m-%d"),
    }
    ing, srch, ans = results["ingest"], results["search"], results["answer_with_citations"]
    hyb = results["search_documents_tool"]
    print(f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"corpus: {report.files} files, {report.chunks} chunks; MiniLM load {load_s:.1f} s\n")
    print("| measure | value |\n|---|---|")
    print(f"| ingest | {ing['seconds']:.1f} s, {ing['chunks_per_s']} chunks/s, {ing['files_per_s']} files/s |")
    print(f"| re-ingest unchanged | {ing['reingest_seconds']:.2f} s, {ing['reingest_added']} chunks added |")
    print(f"| dense search k=5 ({srch['queries']}) | p50 {srch['p50_ms']} ms, p95 {srch['p95_ms']} ms |")
    print(f"| dense hit@1 (file, page, fact) | {srch['hit_at_1']:.1%} |")
    print(f"| search_documents tool (dense 20 + word rerank) | p50 {hyb['p50_ms']} ms, p95 {hyb['p95_ms']} ms |")
    print(f"| search_documents hit@1 | {hyb['hit_at_1']:.1%} |")
    print(f"| answer_with_citations ({ans['questions']}) | p50 {ans['p50_ms']} ms, p95 {ans['p95_ms']} ms |")
    print(f"| answer contains the fact | {ans['answer_contains_fact']:.1%} ({ans['rewrite_rounds']} rewrites) |")
    out = ROOT / "bench" / "results" / "rag.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
