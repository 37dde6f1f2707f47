"""Document tools: questions over PDFs (retrieval + extractive QA) and over scanned pages (Tesseract + LayoutLM).

`answer_from_pdf` reads the PDF's text layer page by page, chunks it, ranks the chunks against the question
with the `embeddings` role and extracts an answer span from the best ones with the `pdf_qa` role.
`answer_from_scanned_page` feeds Tesseract's words and boxes (tools.ocr) to LayoutLM (`document_qa` role).
Plain OCR (`read_text_in_image`) lives in `tools.ocr`, tables in `tools.tables`.
"""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smolcrew.errors import ToolInputError
from smolcrew.manifest import ModelRole
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.ocr import ReadTextInImage, open_pdf
from smolcrew.tools.text import require_text

__all__ = [
    "ROLES",
    "AnswerFromPdf",
    "AnswerFromScannedPage",
    "QaModel",
    "ReadTextInImage",
    "best_span",
    "extract_from_chunk",
    "extract_from_words",
    "indexed_pdf",
    "require_question",
    "span_box",
    "word_boxes",
]
# ReadTextInImage (plain OCR) lives in tools.ocr and is re-exported here with the other document tools.


@dataclass(frozen=True, slots=True)
class QaModel:
    """A tokenizer and a span-extraction model (start/end logits), loaded together by the pool."""

    tokenizer: Any
    model: Any

    def max_length(self) -> int:
        limit = getattr(self.model.config, "max_position_embeddings", 512) or 512
        return int(min(512, limit, getattr(self.tokenizer, "model_max_length", 512) or 512))

    def check_question(self, question: str) -> None:
        """ToolInputError when the question leaves less than half of the model's window for the document."""
        if len(self.tokenizer(question)["input_ids"]) > self.max_length() // 2:
            raise ToolInputError(f"`question` is too long for {self.max_length()}-token windows; shorten it")

    def logits(self, encoding: Any) -> tuple[Any, Any]:
        """Start and end logits (numpy, one row per window) for a batch encoding; extra keys are dropped."""
        import torch

        accepted = inspect.signature(self.model.forward).parameters
        device = self.model.device
        inputs = {k: torch.as_tensor(v).to(device) for k, v in encoding.items() if k in accepted}
        with torch.inference_mode():
            output = self.model(**inputs)
        return output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()


def _qa_loader(model_class: str) -> Any:
    def load(source: str, device: str, dtype: str) -> QaModel:
        import torch
        import transformers

        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"{source} has no fast tokenizer (tokenizer.json); answer offsets need one")
        torch_dtype = None if dtype == "auto" else getattr(torch, dtype)
        model = getattr(transformers, model_class).from_pretrained(source, dtype=torch_dtype)
        return QaModel(tokenizer, model.to(device).eval())

    return load


ROLES = (
    ModelRole(
        "pdf_qa",
        "extractive-question-answering",
        "distilbert/distilbert-base-cased-distilled-squad",
        "distilbert/distilbert-base-cased-distilled-squad",
        loader=_qa_loader("AutoModelForQuestionAnswering"),
    ),
    ModelRole(
        "document_qa",
        "document-question-answering",
        "impira/layoutlm-document-qa",
        "impira/layoutlm-document-qa",
        loader=_qa_loader("LayoutLMForQuestionAnswering"),
    ),
)

MAX_ANSWER_TOKENS = 30
MAX_QUESTION_CHARS = 500


def require_question(value: Any) -> str:
    question = require_text(value, "question")
    if len(question) > MAX_QUESTION_CHARS:
        raise ToolInputError(f"`question` is too long; ask it in under {MAX_QUESTION_CHARS} characters")
    return question


def best_span(start: Any, end: Any, allowed: Any, max_tokens: int = MAX_ANSWER_TOKENS) -> tuple[int, int, float]:
    """The (start, end, probability) of the best span whose tokens are all `allowed` (1-D numpy arrays)."""
    import numpy as np

    def softmax(logits: Any) -> Any:
        masked = np.where(allowed, logits, -1e9)
        exp = np.exp(masked - masked.max())
        return exp / exp.sum()

    scores = np.outer(softmax(start), softmax(end))
    scores = np.triu(np.tril(scores, max_tokens - 1))  # end >= start, at most max_tokens long
    scores *= np.outer(allowed, allowed)
    s, e = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(s), int(e), float(scores[s, e])


# ---- PDFs -----------------------------------------------------------------------------------------


def pdf_chunks(path: Path, chunk_size: int = 800, overlap: int = 100) -> list[tuple[int, str]]:
    """(page number from 1, chunk text) for each chunk of each page's text layer."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=overlap)
    chunks: list[tuple[int, str]] = []
    for number, page in enumerate(open_pdf(path).pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # pypdf raises many kinds on broken content streams
            raise ToolInputError(f"`pdf_path`: page {number} of {path} could not be read ({exc})") from exc
        chunks += [(number, chunk.strip()) for chunk in splitter.split_text(text) if chunk.strip()]
    if not chunks:
        raise ToolInputError(
            f"`pdf_path`: {path} has no text layer (a scanned PDF?); use answer_from_scanned_page with "
            "image=<this PDF> and page=<page number> to OCR a page instead"
        )
    return chunks


_INDEX: OrderedDict[tuple[str, str, int, int], tuple[list[tuple[int, str]], Any]] = OrderedDict()
_INDEX_LOCK = threading.Lock()


def indexed_pdf(path: Path, embedder: Any, model: str) -> tuple[list[tuple[int, str]], Any]:
    """The PDF's chunks and their embeddings, kept for the 8 PDFs (and embedding model) used last."""
    stat = path.stat()
    key = (model, str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _INDEX_LOCK:
        if key in _INDEX:
            _INDEX.move_to_end(key)
            return _INDEX[key]
    chunks = pdf_chunks(path)
    vectors = embedder.encode([text for _, text in chunks], normalize_embeddings=True, batch_size=32)
    with _INDEX_LOCK:
        _INDEX[key] = (chunks, vectors)
        while len(_INDEX) > 8:
            _INDEX.popitem(last=False)
    return chunks, vectors


def extract_from_chunk(qa: QaModel, question: str, context: str) -> dict[str, Any]:
    """The best answer span {'answer', 'start', 'end', 'score'} of `context`, read in overlapping windows."""
    import numpy as np

    qa.check_question(question)
    length = qa.max_length()
    encoding = qa.tokenizer(
        question,
        context,
        truncation="only_second",
        max_length=length,
        stride=min(64, length // 4),
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="longest",
    )
    offsets = encoding.pop("offset_mapping")
    encoding.pop("overflow_to_sample_mapping", None)
    starts, ends = qa.logits(encoding)
    best: dict[str, Any] = {"answer": "", "start": 0, "end": 0, "score": 0.0}
    for window in range(len(offsets)):
        allowed = np.array([sid == 1 for sid in encoding.sequence_ids(window)])
        if not allowed.any():
            continue
        s, e, score = best_span(starts[window], ends[window], allowed)
        if score > best["score"]:
            a, b = int(offsets[window][s][0]), int(offsets[window][e][1])
            best = {"answer": context[a:b], "start": a, "end": b, "score": score}
    return best


class AnswerFromPdf(CheckedTool):
    name = "answer_from_pdf"
    task = "question-answering"
    description = (
        "Answers a question from a PDF's text: finds the most relevant passages with sentence embeddings, then "
        "extracts the answer span from them. Returns a dict {'answer': str, 'score': float 0-1 (model "
        "confidence), 'page': int (from 1), 'chunk': str (the passage the answer came from), 'start'/'end': "
        "character offsets of the answer in that chunk, 'sources': [{'page', 'score', 'chunk'}] (retrieved "
        "passages, best first), 'file': str, 'model': str}. Where no answer-extraction model is installed, "
        "'answer' is None and 'model' None: read the answer from 'sources'. For scanned PDFs use "
        "answer_from_scanned_page."
    )
    inputs = {
        "pdf_path": {"type": "string", "description": "Path to the PDF file."},
        "question": {"type": "string", "description": "The question, in natural language."},
        "top_k": {"type": "integer", "description": "How many passages to read (1-10, default 3).", "nullable": True},
    }
    output_type = "object"
    role = "embeddings"
    reader_role = "pdf_qa"
    """Optional: without it the tool returns the passages and the agent's model reads them."""

    def forward(self, pdf_path: str, question: str, top_k: int | None = None) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.documents import extract_from_chunk, indexed_pdf, require_question
        from smolcrew.tools.files import require_file

        path = require_file(pdf_path, "pdf_path", {".pdf"})
        question = require_question(question)
        k = 3 if top_k is None else top_k
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 10:
            raise ToolInputError("`top_k` must be between 1 and 10")
        pool = current_pool()
        embedder = pool.get("embeddings")
        chunks, vectors = indexed_pdf(path, embedder, pool.model_for("embeddings"))
        similarity = vectors @ embedder.encode([question], normalize_embeddings=True)[0]
        order = sorted(range(len(chunks)), key=lambda i: float(similarity[i]), reverse=True)[:k]
        sources = [
            {"page": chunks[i][0], "score": round(float(similarity[i]), 4), "chunk": chunks[i][1]} for i in order
        ]
        retrieved = {"sources": sources, "file": str(path), "retriever": pool.model_for("embeddings")}
        if not pool.can_load(self.reader_role):
            top = order[0]
            return {"answer": None, "score": None, "page": chunks[top][0], **retrieved, "model": None}
        qa = pool.get(self.reader_role)
        best: dict[str, Any] = {"score": -1.0}
        for rank, i in enumerate(order):
            span = extract_from_chunk(qa, question, chunks[i][1])
            if span["score"] > best["score"]:
                best = {**span, "page": chunks[i][0], "chunk": chunks[i][1], "rank": rank}
        return {**best, "score": round(best["score"], 4), **retrieved, "model": pool.model_for(self.reader_role)}


# ---- Scanned pages --------------------------------------------------------------------------------


def span_box(words: list[dict[str, Any]]) -> list[int]:
    """The box [left, top, right, bottom] around OCR'd words."""
    boxes = [word["box"] for word in words]
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def word_boxes(words: list[dict[str, Any]], width: int, height: int) -> list[list[int]]:
    """Each OCR'd word's box scaled to the 0-1000 grid LayoutLM reads."""
    sizes = (width, height, width, height)
    return [[min(1000, max(0, int(1000 * v / size))) for v, size in zip(w["box"], sizes, strict=True)] for w in words]


def extract_from_words(qa: QaModel, question: str, words: list[str], boxes: list[list[int]]) -> dict[str, Any]:
    """The best answer {'word_start', 'word_end', 'score'} among OCR'd `words` with their 0-1000 `boxes`."""
    import numpy as np

    qa.check_question(question)
    length = qa.max_length()
    encoding = qa.tokenizer(
        question.split(),
        words,
        is_split_into_words=True,
        truncation="only_second",
        max_length=length,
        stride=min(64, length // 4),
        return_overflowing_tokens=True,
        padding="longest",
    )
    encoding.pop("overflow_to_sample_mapping", None)
    sep = qa.tokenizer.sep_token_id
    bbox, masks = [], []
    for window, ids in enumerate(encoding["input_ids"]):
        sequence, word_ids = encoding.sequence_ids(window), encoding.word_ids(window)
        bbox.append(
            [
                boxes[w] if s == 1 and w is not None else [1000] * 4 if token == sep else [0] * 4
                for token, s, w in zip(ids, sequence, word_ids, strict=True)
            ]
        )
        masks.append(np.array([s == 1 and w is not None for s, w in zip(sequence, word_ids, strict=True)]))
    encoding["bbox"] = bbox
    starts, ends = qa.logits(encoding)
    best: dict[str, Any] = {"word_start": 0, "word_end": 0, "score": -1.0}
    for window, allowed in enumerate(masks):
        if not allowed.any():
            continue
        s, e, score = best_span(starts[window], ends[window], allowed)
        if score > best["score"]:
            word_ids = encoding.word_ids(window)
            first, last = word_ids[s], word_ids[e]
            best = {"word_start": first, "word_end": max(first, last), "score": score}
    return best


class AnswerFromScannedPage(CheckedTool):
    name = "answer_from_scanned_page"
    task = "document-question-answering"
    description = (
        "Answers a question about a scanned document page (invoice, form, receipt, letter) by reading it with "
        "OCR and a layout-aware QA model. Returns a dict {'answer': str, 'score': float 0-1, 'box': [left, top, "
        "right, bottom] pixels of the answer on the page, 'word_start'/'word_end': indices into 'words' "
        "(inclusive), 'words': the OCR'd words, 'model': str}."
    )
    inputs: dict[str, Any] = {
        "image": {
            "type": ["string", "image"],
            "description": "A page image (path to a PNG/JPEG file, or a PIL image), or the path of a scanned PDF.",
        },
        "question": {"type": "string", "description": "The question, e.g. 'What is the invoice total?'"},
        "page": {"type": "integer", "description": "For a PDF: which page, from 1 (default 1).", "nullable": True},
    }
    output_type = "object"
    role = "document_qa"

    def forward(self, image: Any, question: str, page: int | None = None) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.documents import extract_from_words, require_question, span_box, word_boxes
        from smolcrew.tools.ocr import load_page_image, ocr_words

        question = require_question(question)
        picture = load_page_image(image, page)
        words = ocr_words(picture)
        if not words:
            raise ToolInputError("no text was found on the page; check it is a readable scan (not blank, upright)")
        texts = [word["text"] for word in words]
        pool = current_pool()
        span = extract_from_words(pool.get(self.role), question, texts, word_boxes(words, *picture.size))
        chosen = words[span["word_start"] : span["word_end"] + 1]
        return {
            "answer": " ".join([word["text"] for word in chosen]),
            "score": round(span["score"], 4),
            "box": span_box(chosen),
            "word_start": span["word_start"],
            "word_end": span["word_end"],
            "words": [{"text": w["text"], "confidence": w["confidence"], "box": w["box"]} for w in words],
            "model": pool.model_for(self.role),
        }
