"""How a step record is kept in Chroma (memory/sinks/chroma.py): its searchable document, its metadata (the indexed
fields plus the whole record as ASCII-escaped JSON within a size limit), the collection name of a namespace and the
`where` filters of a query.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from smolcrew.memory.records import StepRecord

__all__ = [
    "DOCUMENT_LIMIT",
    "RECORD_LIMIT",
    "clean_text",
    "collection_name",
    "record_document",
    "record_json",
    "record_metadata",
    "where",
]

DOCUMENT_LIMIT = 2_000
"""Characters of searchable text per record; the rest is cut with a note."""
RECORD_LIMIT = 65_536
"""Bytes of record JSON kept in metadata. Local and server Chroma take more; Chroma Cloud caps a value at 4,096."""
_TEXT_FIELDS = ("task", "plan", "code", "observations", "output", "error")


def collection_name(namespace: str) -> str:
    """A valid Chroma collection name (3-63 of `[A-Za-z0-9._-]`, alphanumeric ends) for `namespace`.
    A name that had to change gets a hash suffix, so two namespaces never share a collection."""
    cleaned = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "_", namespace)).strip("._-")
    if cleaned == namespace and 3 <= len(cleaned) <= 63:
        return cleaned
    digest = hashlib.sha1(namespace.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[:50].rstrip('._-') or 'ns'}-{digest}"


def clean_text(text: str) -> str:
    """Text Chroma can store: lone surrogates (not UTF-8 encodable) become '?'."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f" ... [{len(text) - limit:,} more characters; full text in the journal]"


def record_document(record: StepRecord, limit: int = DOCUMENT_LIMIT) -> str:
    """The searchable text of a record: who, what kind, then its text fields."""
    parts = [f"{record.agent} {record.kind}"]
    for key in _TEXT_FIELDS:
        value = record.payload.get(key)
        if value not in (None, "", [], {}):
            parts.append(f"{key}: {value if isinstance(value, str) else json.dumps(value, default=str)}")
    return clean_text(_cut("\n".join(parts), limit))


def _dumps(data: Any) -> str:
    # ASCII-escaped: lone surrogates and every other character survive, and len() is the size in bytes.
    return json.dumps(data, ensure_ascii=True, default=str, separators=(",", ":"))


def _shrink(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return _cut(value, limit)
    if isinstance(value, dict):
        return {str(key): _shrink(item, limit) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_shrink(item, limit) for item in value]
    return value


def record_json(record: StepRecord, max_bytes: int = RECORD_LIMIT) -> tuple[str, bool]:
    """The record as JSON within `max_bytes`, and whether strings in its payload had to be shortened."""
    data = record.to_dict()
    text = _dumps(data)
    if len(text) <= max_bytes:
        return text, False
    for limit in (4_000, 1_000, 200, 40):
        text = _dumps(data | {"payload": _shrink(record.payload, limit)})
        if len(text) <= max_bytes:
            return text, True
    note = f"payload of {len(_dumps(record.payload)):,} bytes left out; full record in the journal"
    return _dumps(data | {"payload": {"truncated": note}}), True


def record_metadata(record: StepRecord, max_bytes: int) -> dict[str, str | int | float | bool]:
    text, truncated = record_json(record, max_bytes)
    meta: dict[str, str | int | float | bool] = {
        "run_id": clean_text(record.run_id),
        "seq": int(record.seq),
        "agent": clean_text(record.agent),
        "kind": clean_text(record.kind),
        "ts": float(record.ts),
        "schema": int(record.schema),
        "record": text,
        "truncated": truncated,
    }
    conversation = record.payload.get("conversation_id")
    if conversation is not None:
        meta["conversation_id"] = clean_text(str(conversation))
    return meta


def where(**equals: str | None) -> dict[str, Any] | None:
    clauses = [{key: clean_text(value)} for key, value in equals.items() if value is not None]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
