"""Document ingestion and retrieval on the real packaged MiniLM and a real embedded Chroma, in temp folders.

The corpus is made here: a 3-page PDF (fpdf2), a markdown note and an HTML page, each holding distinct facts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

from smolcrew.backends import ScriptedModel
from smolcrew.errors import ToolInputError
from smolcrew.memory.ingest import IngestReport, ingest
from smolcrew.memory.rag import DocumentStore
from smolcrew.tools.rag import POOR_SCORE, WEAK_SCORE, AnswerWithCitations, SearchDocuments, rewrite_query

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("minilm_available")]

PAGES = [
    "Annual report of the Halvorsen cooperative. The cooperative was founded in 1987 by eleven dairy farmers. "
    "It now counts 340 members across four valleys and sells cheese to regional markets.",
    "Energy. The Zephyr wind turbine on the north ridge produced 4.2 gigawatt hours of electricity in 2025. "
    "Its blades were replaced in March after a lightning strike damaged one of them.",
    "Finance. Revenue grew by nine percent to 18 million euros. The board approved a new cold-storage "
    "warehouse in Lindvik, to be finished in autumn 2027.",
]
MARKDOWN = """# Garden notes

## Tomatoes
The greenhouse tomatoes are the Moneymaker variety, watered every morning at six.

## Bees
Our three beehives produced 27 kilograms of honey this summer, mostly from clover and lime trees.
"""
HTML = """<html><head><title>Lab safety</title></head><body>
<h1>Laboratory safety rules</h1>
<p>The emergency eye-wash station is located next to the north exit of room B214.</p>
<p>Solvents must be stored in the yellow flammables cabinet, never on open shelves.</p>
</body></html>"""


def write_pdf(path: Path, pages: list[str]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    (folder / "notes").mkdir(parents=True)
    write_pdf(folder / "report.pdf", PAGES)
    (folder / "notes" / "garden.md").write_text(MARKDOWN, encoding="utf-8")
    (folder / "safety.html").write_text(HTML, encoding="utf-8")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff not really a photo")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "secret.md").write_text("hidden folders are left out", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def embeddings(minilm_available: None) -> Embeddings:
    """One MiniLM for the module (DocumentStore loads it lazily; sharing keeps the tests fast)."""
    return DocumentStore("unused").embeddings


@pytest.fixture
def store(tmp_path: Path, embeddings: Embeddings) -> Iterator[DocumentStore]:
    with DocumentStore(tmp_path / "chroma", embeddings=embeddings) as opened:
        yield opened
        opened.drop()


@pytest.fixture
def ingested(corpus: Path, store: DocumentStore) -> IngestReport:
    return ingest(corpus, store=store)


def test_ingest_reports_files_chunks_and_skips(corpus: Path, store: DocumentStore) -> None:
    calls: list[tuple[int, int, str]] = []
    report = ingest(corpus, store=store, progress=lambda done, total, path: calls.append((done, total, path)))
    assert report.files == 3 and report.chunks == store.count() >= 5
    assert [(s.path.endswith("photo.jpg"), "unsupported" in s.reason) for s in report.skipped] == [(True, True)]
    assert [done for done, _, _ in calls] == [1, 2, 3] and {total for _, total, _ in calls} == {3}
    assert report.seconds > 0
    sources = {Path(s).name for s in store.sources()}
    assert sources == {"report.pdf", "garden.md", "safety.html"}


def test_fact_on_pdf_page_two_comes_first_with_source_and_page(ingested: IngestReport, store: DocumentStore) -> None:
    hits = store.search("How much electricity did the wind turbine produce?", k=3)
    assert hits[0].name == "report.pdf" and hits[0].page == 2
    assert "4.2 gigawatt hours" in hits[0].text
    assert hits[0].score > hits[1].score and 0 < hits[0].score <= 1


def test_markdown_and_html_facts_are_found(ingested: IngestReport, store: DocumentStore) -> None:
    honey = store.search("how much honey did the bees make", k=1)[0]
    assert honey.name == "garden.md" and honey.page is None and "27 kilograms" in honey.text
    eyewash = store.search("where is the eye wash station", k=1)[0]
    assert eyewash.name == "safety.html" and "B214" in eyewash.text and "<p>" not in eyewash.text


def test_reingesting_unchanged_files_adds_nothing(corpus: Path, ingested: IngestReport, store: DocumentStore) -> None:
    before = store.count()
    again = ingest(corpus, store=store)
    assert (again.files, again.chunks, again.unchanged) == (0, 0, 3)
    assert store.count() == before


def test_changed_file_replaces_its_chunks(corpus: Path, ingested: IngestReport, store: DocumentStore) -> None:
    note = corpus / "notes" / "garden.md"
    note.write_text(MARKDOWN.replace("27 kilograms", "31 kilograms"), encoding="utf-8")
    report = ingest(corpus, store=store)
    assert (report.files, report.replaced, report.unchanged) == (1, 1, 2)
    texts = [chunk.text for chunk in store.search("honey from the beehives", k=10) if chunk.name == "garden.md"]
    assert any("31 kilograms" in t for t in texts) and not any("27 kilograms" in t for t in texts)
    assert store.count() == ingested.chunks  # same number of chunks, old ones gone


def test_missing_empty_and_damaged_files_are_skipped_with_a_reason(tmp_path: Path, store: DocumentStore) -> None:
    (tmp_path / "empty.txt").write_text("   \n", encoding="utf-8")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    report = ingest([tmp_path / "empty.txt", tmp_path / "broken.pdf", tmp_path / "nowhere.md"], store=store)
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert reasons["nowhere.md"] == "not found"
    assert reasons["empty.txt"] == "no text"
    assert "broken.pdf" in reasons and store.count() == 0


def test_search_documents_tool(ingested: IngestReport, store: DocumentStore) -> None:
    tool = SearchDocuments(store=store)
    rows = tool(query="cold storage warehouse location", k=2)
    assert len(rows) == 2 and rows[0]["page"] == 3 and rows[0]["cite"] == "report.pdf p.3"
    assert set(rows[0]) == {"source", "page", "score", "text", "cite"}
    assert len(tool(query="cheese")) == 5  # default k
    for bad in ({"query": "   "}, {"query": "x", "k": 0}, {"query": "x", "k": 500}, {"query": 5}):
        with pytest.raises(ToolInputError):
            tool(**bad)


def test_answer_with_citations_cites_page(ingested: IngestReport, store: DocumentStore) -> None:
    result = AnswerWithCitations(store=store)(question="When was the cooperative founded?")
    assert result["rounds"] == 1 and not result["weak"]
    assert "1987" in result["answer"].split("Sources:")[0]
    assert re.search(r"^\[1\] report\.pdf p\.1$", result["answer"], re.MULTILINE)
    first = result["citations"][0]
    assert (Path(first["source"]).name, first["page"]) == ("report.pdf", 1) and "1987" in first["text"]


def test_weak_query_is_rewritten_and_finds_the_fact(ingested: IngestReport, store: DocumentStore) -> None:
    question = "I keep forgetting things, lab safety rules bore me, tomatoes too, but the Zephyr output?"
    tool = AnswerWithCitations(store=store)
    first = store.search(question, k=1)[0]
    assert first.score < tool.threshold and first.name != "report.pdf"  # badly phrased: round 1 misses
    result = tool(question=question)
    assert result["rounds"] == 2 and len(result["queries"]) > 1
    assert result["queries"][1] == rewrite_query(question)[0]
    top = result["citations"][0]
    assert (Path(top["source"]).name, top["page"]) == ("report.pdf", 2)
    assert "4.2 gigawatt hours" in result["answer"] and "[1] report.pdf p.2" in result["answer"]


def test_llm_rewrite_is_tried_first_when_a_model_is_given(ingested: IngestReport, store: DocumentStore) -> None:
    model = ScriptedModel(["Lindvik warehouse completion date"])
    tool = AnswerWithCitations(store=store, model=model, threshold=1.01)  # force the rewrite round
    result = tool(question="erm the thing they are building, when is it done?")
    assert result["queries"][1] == "Lindvik warehouse completion date" and len(model.calls) == 1
    assert result["citations"][0]["page"] == 3 and "autumn 2027" in result["answer"]


def test_answer_with_citations_defaults_are_the_documented_scores() -> None:
    tool = AnswerWithCitations()
    assert (tool.threshold, tool.poor, tool.k, tool.cite) == (WEAK_SCORE, POOR_SCORE, 4, 3)


def test_rewrite_query_strips_question_words_and_splits_clauses() -> None:
    rewrites = rewrite_query("What is the warranty of the pump, and who installed it?")
    assert rewrites[0] == "warranty pump installed"
    assert rewrites[1:] == ["installed", "warranty pump"]  # the asking clause first, then the others


def test_empty_store_answers_without_guessing(store: DocumentStore) -> None:
    result = AnswerWithCitations(store=store)(question="anything at all?")
    assert result["citations"] == [] and result["weak"] and "smolcrew ingest" in result["answer"]
    assert SearchDocuments(store=store)(query="anything") == []


def test_store_persists_across_reopen(tmp_path: Path, corpus: Path, embeddings: Embeddings) -> None:
    with DocumentStore(tmp_path / "persist", embeddings=embeddings) as first:
        added = ingest(corpus / "report.pdf", store=first).chunks
    with DocumentStore(tmp_path / "persist", embeddings=embeddings) as second:
        assert second.count() == added
        assert second.search("lightning strike blades", k=1)[0].page == 2
        second.drop()
        assert second.count() == 0


def test_tools_built_like_specialists_load_the_pool_embeddings_role(
    tmp_path: Path, corpus: Path, embeddings: Embeddings
) -> None:
    """Built as `factory()`: the store opens at <home>/documents with the `embeddings` model of the pool in the
    tool context, loaded on the first search; an empty store answers without loading it; a missing model is
    ModelUnavailableError."""
    from smolcrew.errors import ModelUnavailableError
    from smolcrew.manifest import manifest
    from smolcrew.pool import PipelinePool
    from smolcrew.tools.context import use_tools

    nowhere = PipelinePool(device="cpu", overrides=dict.fromkeys(manifest(), str(tmp_path / "absent-model")))
    tool = SearchDocuments()
    with use_tools(pool=nowhere):
        assert tool(query="anything") == [] and tool.store.path.name == "documents"
    with DocumentStore(tool.store.path, embeddings=embeddings) as filled:
        ingest(corpus / "safety.html", store=filled)
    with use_tools(pool=nowhere), pytest.raises(ModelUnavailableError, match="absent-model"):
        SearchDocuments()(query="eye wash")
    with use_tools(pool=PipelinePool(device="cpu")):
        assert SearchDocuments()(query="eye wash", k=1)[0]["cite"] == "safety.html"


def test_an_answer_picks_sentences_even_where_the_text_lost_its_spaces(tmp_path: Path, store: DocumentStore) -> None:
    """OCR and PDF text often drop the space after a full stop; the answer must still be a sentence or two, not
    the whole document."""
    text = (
        "Chrysanthemums are flowering plants of the genus Chrysanthemum in the family Asteraceae.They are native "
        "to East Asia and northeastern Europe.Chrysanthemums were first cultivated in China as a flowering herb "
        "as far back as the 15th century BC.Most species originate from East Asia and the centre of diversity is "
        "in China.There are countless horticultural varieties and cultivars."
    )
    (tmp_path / "flowers.txt").write_text(text, encoding="utf-8")
    ingest(tmp_path / "flowers.txt", store=store)
    answer = AnswerWithCitations(store=store)(question="When were chrysanthemums first cultivated?")["answer"]
    body = answer.split("Sources:")[0]
    assert "15th century BC" in body and "countless horticultural varieties" not in body
    assert len(body) < len(text) / 2
