from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from smolcrew.errors import ToolInputError
from smolcrew.pool import PipelinePool
from smolcrew.tools import documents
from smolcrew.tools.context import use_tools
from smolcrew.tools.documents import AnswerFromPdf, AnswerFromScannedPage, ReadTextInImage, best_span
from smolcrew.tools.files import Workspace
from smolcrew.tools.tables import DescribeTable, QueryTable, ReadTableInImage
from tests.tools.tiny_documents import (
    render_table,
    render_text,
    scanned_pdf,
    text_pdf,
    tiny_extractive_qa,
    tiny_layoutlm_qa,
)


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real documents, made once: a 4-page text PDF, a rendered invoice, its scanned-PDF twin, a table image."""
    folder = tmp_path_factory.mktemp("docs")
    text_pdf(folder / "report.pdf")
    render_text(folder / "invoice.png", ["INVOICE", "TOTAL 42.50", "DUE 2026-12-01"])
    scanned_pdf(folder / "scan.pdf", folder / "invoice.png")
    render_table(folder / "table.png", [["item", "qty", "price"], ["apple", "3", "1.25"], ["banana", "12", "0.50"]])
    render_text(folder / "one_line.png", ["HELLO WORLD"])
    (folder / "fake.pdf").write_text("this is plain text, not a PDF")
    (folder / "broken.png").write_bytes(b"not an image")
    from pypdf import PdfWriter

    locked = PdfWriter(clone_from=folder / "report.pdf")
    locked.encrypt("secret", algorithm="RC4-128")
    locked.write(folder / "locked.pdf")
    return folder


@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory: pytest.TempPathFactory) -> PipelinePool:
    models = tmp_path_factory.mktemp("models")
    return PipelinePool(
        device="cpu",
        overrides={
            "pdf_qa": str(tiny_extractive_qa(models / "tiny-squad")),
            "document_qa": str(tiny_layoutlm_qa(models / "tiny-layoutlm")),
        },
    )


@pytest.fixture
def pool(tiny_pool: PipelinePool) -> Iterator[PipelinePool]:
    """The tiny QA models' pool, as the tools' context for the test."""
    with use_tools(pool=tiny_pool):
        yield tiny_pool


def test_best_span_stays_in_context_and_in_order() -> None:
    import numpy as np

    start = np.array([9.0, 0.0, 1.0, 5.0, 0.0])
    end = np.array([9.0, 4.0, 0.0, 0.0, 3.0])
    s, e, score = best_span(start, end, np.array([False, True, True, True, True]))
    assert (s, e) == (3, 4) and 0.0 < score <= 1.0


@pytest.mark.usefixtures("minilm_available")
def test_answer_from_pdf_retrieves_the_right_page(pool: PipelinePool, docs: Path) -> None:
    tool = AnswerFromPdf()
    result = tool(pdf_path=str(docs / "report.pdf"), question="When did the Halvorsen bridge open to traffic?")
    assert result["sources"][0]["page"] == 3  # real MiniLM retrieval
    assert "Halvorsen bridge" in result["sources"][0]["chunk"]
    assert [s["score"] for s in result["sources"]] == sorted((s["score"] for s in result["sources"]), reverse=True)
    assert len(result["sources"]) == 3 and result["page"] in {s["page"] for s in result["sources"]}
    assert result["chunk"][result["start"] : result["end"]] == result["answer"]  # random model: offsets only
    assert 0 <= result["start"] <= result["end"] <= len(result["chunk"]) and 0.0 <= result["score"] <= 1.0
    assert result["file"] == str(docs / "report.pdf")
    assert result["model"] == pool.model_for("pdf_qa") and result["retriever"] == "packaged:all-MiniLM-L6-v2"
    again = tool(pdf_path=str(docs / "report.pdf"), question="Which fruit grows in the orchard?", top_k=1)
    assert again["sources"][0]["page"] == 2 and len(again["sources"]) == 1
    report = str((docs / "report.pdf").resolve())
    assert [key[1] for key in documents._INDEX].count(report) == 1  # the PDF was chunked and embedded once


@pytest.mark.usefixtures("minilm_available")
def test_answer_from_pdf_without_a_reader_model_returns_the_passages(
    docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    no_reader = PipelinePool(device="cpu", overrides={"pdf_qa": str(tmp_path / "no-such-model")})
    with use_tools(pool=no_reader):
        result = AnswerFromPdf()(pdf_path=str(docs / "report.pdf"), question="When did the Halvorsen bridge open?")
    assert result["answer"] is None and result["model"] is None and result["score"] is None
    assert result["page"] == result["sources"][0]["page"] == 3 and "Halvorsen bridge" in result["sources"][0]["chunk"]
    assert result["retriever"] == "packaged:all-MiniLM-L6-v2" and no_reader.loaded()[0].task == "sentence-embeddings"
    assert len(no_reader.loaded()) == 1  # the reader was never tried


@pytest.mark.usefixtures("minilm_available")
def test_answer_from_pdf_bad_inputs(pool: PipelinePool, docs: Path) -> None:
    tool = AnswerFromPdf()
    with pytest.raises(ToolInputError, match="no file at"):
        tool(pdf_path=str(docs / "missing.pdf"), question="q?")
    with pytest.raises(ToolInputError, match="not a readable PDF"):
        tool(pdf_path=str(docs / "fake.pdf"), question="q?")
    with pytest.raises(ToolInputError, match="is not supported"):
        tool(pdf_path=str(docs / "invoice.png"), question="q?")
    with pytest.raises(ToolInputError, match=r"no text layer.*answer_from_scanned_page"):
        tool(pdf_path=str(docs / "scan.pdf"), question="What is the total?")
    with pytest.raises(ToolInputError, match="non-empty string"):
        tool(pdf_path=str(docs / "report.pdf"), question=" ")
    with pytest.raises(ToolInputError, match="password-protected"):
        tool(pdf_path=str(docs / "locked.pdf"), question="q?")
    with pytest.raises(ToolInputError, match="too long"):
        tool(pdf_path=str(docs / "report.pdf"), question="why " * 200)
    with pytest.raises(ToolInputError, match="too long for 64-token windows"):
        tool(pdf_path=str(docs / "report.pdf"), question="why " * 40)
    with pytest.raises(ToolInputError, match="between 1 and 10"):
        tool(pdf_path=str(docs / "report.pdf"), question="q?", top_k=0)


@pytest.mark.usefixtures("tesseract")
def test_read_text_in_image_is_real_ocr(pool: PipelinePool, docs: Path) -> None:
    result = ReadTextInImage()(image=str(docs / "invoice.png"))
    assert "TOTAL" in [word["text"] for word in result["words"]]
    assert "42.50" in result["text"] and result["text"].splitlines()[0] == "INVOICE"
    assert 60 <= result["mean_confidence"] <= 100
    for word in result["words"]:
        left, top, right, bottom = word["box"]
        assert 0 <= left < right <= result["width"] and 0 <= top < bottom <= result["height"]
    assert result["model"].startswith("tesseract-")
    from_pdf = ReadTextInImage()(image=str(docs / "scan.pdf"), page=1)
    assert "TOTAL" in from_pdf["text"]
    with pytest.raises(ToolInputError, match="between 1 and 1"):
        ReadTextInImage()(image=str(docs / "scan.pdf"), page=2)
    with pytest.raises(ToolInputError, match="not a readable image"):
        ReadTextInImage()(image=str(docs / "broken.png"))
    with pytest.raises(ToolInputError, match="check `language`"):
        ReadTextInImage()(image=str(docs / "invoice.png"), language="klingon")
    with pytest.raises(ToolInputError, match="not a Tesseract language code"):
        ReadTextInImage()(image=str(docs / "invoice.png"), language="eng --psm 0")
    with pytest.raises(ToolInputError, match=r"whole number|must be integer"):
        ReadTextInImage()(image=str(docs / "scan.pdf"), page="1")


@pytest.mark.usefixtures("tesseract")
def test_answer_from_scanned_page(pool: PipelinePool, docs: Path) -> None:
    tool = AnswerFromScannedPage()
    result = tool(image=str(docs / "invoice.png"), question="What is the total?")
    texts = [word["text"] for word in result["words"]]
    assert "TOTAL" in texts  # real OCR
    assert 0 <= result["word_start"] <= result["word_end"] < len(texts)
    assert result["answer"] == " ".join(texts[result["word_start"] : result["word_end"] + 1])
    assert 0.0 <= result["score"] <= 1.0 and len(result["box"]) == 4
    assert result["model"] == pool.model_for("document_qa")
    from_pdf = tool(image=str(docs / "scan.pdf"), question="What is the total?", page=1)
    assert "TOTAL" in [word["text"] for word in from_pdf["words"]]
    with pytest.raises(ToolInputError, match="holds no scanned image"):
        tool(image=str(docs / "report.pdf"), question="What is the total?")
    with pytest.raises(ToolInputError, match="leave `page` out for an image"):
        tool(image=str(docs / "invoice.png"), question="What is the total?", page=2)


@pytest.fixture
def sales(tmp_path: Path) -> Path:
    path = tmp_path / "sales.csv"
    path.write_text(
        "region,product,units,price\n"
        "north,apple,10,1.5\nnorth,pear,4,2.0\nsouth,apple,7,1.5\nsouth,plum,,3.0\neast,apple,3,1.25\n"
    )
    return path


def test_describe_table(sales: Path) -> None:
    result = DescribeTable()(path=str(sales))
    assert result["rows"] == 5 and [c["name"] for c in result["columns"]] == ["region", "product", "units", "price"]
    units = result["columns"][2]
    assert (units["non_null"], units["min"], units["max"], units["mean"]) == (4, 3.0, 10.0, 6.0)
    assert result["columns"][1]["top"]["apple"] == 3
    assert result["preview"][3]["units"] is None  # NaN becomes null
    json.dumps(result)
    pytest.importorskip("openpyxl")
    import pandas as pd

    pd.read_csv(sales).to_excel(sales.with_suffix(".xlsx"), index=False)
    assert DescribeTable()(path=str(sales.with_suffix(".xlsx")))["columns"] == result["columns"]


def test_query_table_operations(sales: Path) -> None:
    query = QueryTable()
    where = [{"column": "product", "op": "==", "value": "apple"}]
    assert query(path=str(sales), operation="count", where=where)["value"] == 3
    assert query(path=str(sales), operation="sum", column="units", where=where)["value"] == 20
    assert query(path=str(sales), operation="mean", column="price")["value"] == 1.85
    assert (
        query(path=str(sales), operation="max", column="units", where={"column": "units", "op": "<", "value": "8"})[
            "value"
        ]
        == 7
    )
    groups = query(path=str(sales), operation="group_count", column="region")["groups"]
    assert groups == {"north": 2, "south": 2, "east": 1}
    rows = query(
        path=str(sales),
        operation="filter",
        where=json.dumps(
            [{"column": "region", "op": "contains", "value": "OR"}, {"column": "units", "op": ">=", "value": 5}]
        ),
    )
    assert rows["rows"] == [{"region": "north", "product": "apple", "units": 10.0, "price": 1.5}]
    assert query(path=str(sales), operation="filter", limit=2)["matched_rows"] == 5
    json.dumps(rows)


def test_query_table_bad_inputs(sales: Path, tmp_path: Path) -> None:
    query = QueryTable()
    with pytest.raises(ToolInputError, match="unknown operation 'median'"):
        query(path=str(sales), operation="median", column="units")
    with pytest.raises(ToolInputError, match=r"unknown column 'cost'.*'units'"):
        query(path=str(sales), operation="sum", column="cost")
    with pytest.raises(ToolInputError, match="unknown column 'colour'"):
        query(path=str(sales), operation="count", where=[{"column": "colour", "op": "==", "value": "red"}])
    with pytest.raises(ToolInputError, match="unknown comparison '=~'"):
        query(path=str(sales), operation="count", where=[{"column": "units", "op": "=~", "value": 1}])
    with pytest.raises(ToolInputError, match="compare it with a number"):
        query(path=str(sales), operation="count", where=[{"column": "units", "op": ">", "value": "many"}])
    with pytest.raises(ToolInputError, match="not numeric"):
        query(path=str(sales), operation="mean", column="region")
    with pytest.raises(ToolInputError, match="`column` is required"):
        query(path=str(sales), operation="group_count")
    with pytest.raises(ToolInputError, match="no file at"):
        query(path=str(tmp_path / "nope.csv"), operation="count")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ToolInputError, match="not a readable table"):
        query(path=str(tmp_path / "empty.csv"), operation="count")


@pytest.mark.usefixtures("tesseract")
def test_read_table_in_image_feeds_query_table(docs: Path, tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    with use_tools(workspace=workspace):
        table = ReadTableInImage()(image=str(docs / "table.png"))
    assert table["columns"] == ["item", "qty", "price"]
    assert table["rows"] == [{"item": "apple", "qty": 3, "price": 1.25}, {"item": "banana", "qty": 12, "price": 0.5}]
    assert Path(table["csv_path"]) in workspace.written and Path(table["csv_path"]).is_file()
    assert QueryTable()(path=table["csv_path"], operation="sum", column="qty")["value"] == 15
    with use_tools(workspace=workspace), pytest.raises(ToolInputError, match="no table was found"):
        ReadTableInImage()(image=str(docs / "one_line.png"))
