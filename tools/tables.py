"""Table tools: describe a CSV/Excel table, answer structured questions about it, read a table from an image.

`query_table` speaks a small operation language (count, mean, sum, min, max, group_count, filter, with `where`
conditions); nothing the agent sends is evaluated as code. `read_table_in_image` OCRs a rendered or scanned
table into rows (words grouped into lines by position, cells split at wide gaps) and writes a CSV that
`query_table` can read. No models: these tools need no pool role.
"""

from __future__ import annotations

import itertools
import json
import statistics
from typing import Any

from smolcrew.errors import ToolInputError
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.files import require_file

__all__ = [
    "DescribeTable",
    "QueryTable",
    "ReadTableInImage",
    "apply_where",
    "column_info",
    "is_numeric",
    "load_table",
    "query",
    "records",
    "scalar",
    "table_frame",
    "table_rows",
]

TABLE_SUFFIXES = {".csv", ".tsv", ".xlsx"}
OPERATIONS = ("count", "mean", "sum", "min", "max", "group_count", "filter")
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=", "contains")
MAX_ROWS_OUT = 200


def load_table(value: Any, name: str = "path") -> Any:
    """A pandas DataFrame from a .csv, .tsv or .xlsx path; ToolInputError when it cannot be read."""
    import pandas as pd

    path = require_file(value, name, TABLE_SUFFIXES)
    try:
        if path.suffix.lower() == ".xlsx":
            return pd.read_excel(path)
        return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except ImportError as exc:
        raise ToolInputError(f"`{name}`: reading Excel needs openpyxl (pip install openpyxl); or pass a CSV") from exc
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ToolInputError(f"`{name}`: {path} is not a readable table ({type(exc).__name__}: {exc})") from exc


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (NaN becomes None, numpy scalars become Python numbers)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def scalar(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return round(value, 6) if isinstance(value, float) else value


def _column(frame: Any, column: Any, role: str = "column") -> str:
    if not isinstance(column, str) or column not in frame.columns:
        raise ToolInputError(f"`{role}`: unknown column {column!r}; the columns are {list(map(str, frame.columns))}")
    return column


def is_numeric(frame: Any, column: str) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return bool(is_numeric_dtype(frame[column]) and not is_bool_dtype(frame[column]))


def _condition_mask(frame: Any, condition: Any) -> Any:
    if not isinstance(condition, dict) or not {"column", "op", "value"} <= condition.keys():
        raise ToolInputError(
            f"each `where` condition must be a dict {{'column': str, 'op': one of {list(COMPARISONS)}, 'value': ...}}"
        )
    column, op, value = _column(frame, condition["column"], "where.column"), condition["op"], condition["value"]
    if op not in COMPARISONS:
        raise ToolInputError(f"`where.op`: unknown comparison {op!r}; use one of {list(COMPARISONS)}")
    series = frame[column]
    if op == "contains":
        return series.astype(str).str.contains(str(value), case=False, regex=False, na=False)
    if is_numeric(frame, column):
        try:
            value = float(value)
        except (TypeError, ValueError) as exc:
            raise ToolInputError(f"`where.value`: column {column!r} is numeric; compare it with a number") from exc
    else:
        series, value = series.astype(str), str(value)  # text compares as text (ISO dates order correctly)
    return {
        "==": series.__eq__,
        "!=": series.__ne__,
        "<": series.__lt__,
        "<=": series.__le__,
        ">": series.__gt__,
        ">=": series.__ge__,
    }[op](value)


def apply_where(frame: Any, where: Any) -> Any:
    """The rows matching every condition (a list of dicts, one dict, or a JSON string of either)."""
    if where is None or where == [] or where == "":
        return frame
    if isinstance(where, str):
        try:
            where = json.loads(where)
        except json.JSONDecodeError as exc:
            raise ToolInputError(f"`where` is not valid JSON ({exc}); pass a list of condition dicts") from exc
    conditions = [where] if isinstance(where, dict) else where
    if not isinstance(conditions, list):
        raise ToolInputError("`where` must be a list of condition dicts")
    mask = None
    for condition in conditions:
        current = _condition_mask(frame, condition)
        mask = current if mask is None else mask & current
    return frame[mask]


def column_info(frame: Any, name: Any) -> dict[str, Any]:
    """A column's dtype, counts, and statistics (numbers) or most common values (text)."""
    series = frame[name]
    info: dict[str, Any] = {
        "name": str(name),
        "dtype": str(series.dtype),
        "non_null": int(series.notna().sum()),
        "unique": int(series.nunique()),
    }
    if is_numeric(frame, name):
        info.update({stat: scalar(getattr(series, stat)()) for stat in ("min", "max", "mean", "std")})
    else:
        info["top"] = {str(k): int(v) for k, v in series.astype(str).value_counts().head(5).items()}
    return info


def query(frame: Any, operation: str, column: str | None, where: Any, limit: Any) -> dict[str, Any]:
    """What `query_table` returns (without 'file'), for a frame and an operation already checked."""
    if column is not None or operation in ("mean", "sum", "min", "max", "group_count"):
        if column is None:
            raise ToolInputError(f"`column` is required for {operation}; the columns are {list(frame.columns)}")
        column = _column(frame, column)
    rows = apply_where(frame, where)
    result: dict[str, Any] = {"operation": operation, "column": column, "matched_rows": len(rows)}
    if operation == "count":
        result["value"] = int(rows[column].notna().sum()) if column else len(rows)
    elif operation in ("mean", "sum", "min", "max"):
        assert column is not None  # required above for these operations
        if not is_numeric(frame, column):
            numeric = [str(c) for c in frame.columns if is_numeric(frame, c)]
            raise ToolInputError(f"`column`: {column!r} is not numeric; {operation} needs one of {numeric}")
        result["value"] = scalar(getattr(rows[column], operation)()) if len(rows) else None
    elif operation == "group_count":
        counts = rows[column].astype(str).value_counts()
        result["groups"] = {str(k): int(v) for k, v in counts.head(MAX_ROWS_OUT).items()}
    else:
        n = 20 if limit is None else limit
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ROWS_OUT:
            raise ToolInputError(f"`limit` must be between 1 and {MAX_ROWS_OUT}")
        result["rows"] = records(rows.head(n))
    return result


def table_rows(words: list[dict[str, Any]]) -> list[list[tuple[int, str]]]:
    """OCR words -> rows of (x-centre, cell text): lines by vertical overlap, cells split at wide gaps."""
    if not words:
        return []
    height = statistics.median(w["box"][3] - w["box"][1] for w in words)
    lines: list[list[dict[str, Any]]] = []
    for word in sorted(words, key=lambda w: (w["box"][1] + w["box"][3]) / 2):
        centre = (word["box"][1] + word["box"][3]) / 2
        if lines and abs(centre - statistics.mean((w["box"][1] + w["box"][3]) / 2 for w in lines[-1])) < height / 2:
            lines[-1].append(word)
        else:
            lines.append([word])
    rows = []
    for line in lines:
        line.sort(key=lambda w: w["box"][0])
        cells: list[list[dict[str, Any]]] = [[line[0]]]
        for previous, word in itertools.pairwise(line):
            if word["box"][0] - previous["box"][2] > 1.2 * height:
                cells.append([word])
            else:
                cells[-1].append(word)
        rows.append([((c[0]["box"][0] + c[-1]["box"][2]) // 2, " ".join(w["text"] for w in c)) for c in cells])
    return rows


def table_frame(rows: list[list[tuple[int, str]]]) -> Any:
    """A DataFrame from OCR'd rows: the first is the header; each cell goes to the header column nearest its
    centre; columns that read as numbers become numbers."""
    import pandas as pd

    header = rows[0]
    names: list[str] = []
    for _, text in header:
        names.append(text if text not in names else f"{text}_{len(names) + 1}")
    table = []
    for row in rows[1:]:
        record: dict[str, Any] = dict.fromkeys(names, "")
        for x, text in row:
            nearest = min(range(len(header)), key=lambda i: abs(header[i][0] - x))
            record[names[nearest]] = f"{record[names[nearest]]} {text}".strip()
        table.append(record)
    frame = pd.DataFrame(table, columns=names)
    for name in names:  # numbers OCR'd as text become numbers
        converted = pd.to_numeric(frame[name].str.replace(",", ""), errors="coerce")
        if converted.notna().all():
            frame[name] = converted
    return frame


class DescribeTable(CheckedTool):
    name = "describe_table"
    task = "table-description"
    description = (
        "Summarises a table file (.csv, .tsv or .xlsx): its size, each column's type and statistics, and the "
        "first rows. Returns a dict {'rows': int, 'columns': [{'name', 'dtype', 'non_null', 'unique', and for "
        "numbers 'min', 'max', 'mean', 'std'; for text 'top' (most common values with counts)}], 'preview': "
        "[row dicts], 'file': str}. Call it before query_table to learn the column names."
    )
    inputs = {"path": {"type": "string", "description": "Path to the table file."}}
    output_type = "object"

    def forward(self, path: str) -> dict[str, Any]:
        from smolcrew.tools.tables import column_info, load_table, records

        frame = load_table(path)
        columns = [column_info(frame, name) for name in frame.columns]
        return {"rows": len(frame), "columns": columns, "preview": records(frame.head(5)), "file": str(path)}


class QueryTable(CheckedTool):
    name = "query_table"
    task = "table-query"
    description = (
        "Answers a structured question about a table file (.csv, .tsv, .xlsx) without code. `operation` is one "
        "of: count (rows matching `where`), mean/sum/min/max (of numeric `column`), group_count (rows per value "
        "of `column`), filter (the matching rows, at most `limit`). `where` is a list of conditions "
        "[{'column': str, 'op': '==', '!=', '<', '<=', '>', '>=' or 'contains', 'value': ...}], all must hold. "
        "Returns a dict {'operation', 'column', 'matched_rows': int, and 'value' (number), 'groups' ({value: "
        "count}) or 'rows' ([row dicts]), 'file'}."
    )
    inputs: dict[str, Any] = {
        "path": {"type": "string", "description": "Path to the table file."},
        "operation": {"type": "string", "description": "One of count, mean, sum, min, max, group_count, filter."},
        "column": {"type": "string", "description": "The column to aggregate or group by.", "nullable": True},
        "where": {
            "type": ["array", "object", "string"],
            "description": "Conditions that rows must meet (default: all rows): a list of condition dicts, one "
            "dict, or the same as a JSON string.",
            "nullable": True,
        },
        "limit": {"type": "integer", "description": "Most rows returned by filter (default 20).", "nullable": True},
    }
    output_type = "object"

    def forward(
        self,
        path: str,
        operation: str,
        column: str | None = None,
        where: list[dict[str, Any]] | dict[str, Any] | str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.tables import OPERATIONS, load_table, query

        if operation not in OPERATIONS:
            raise ToolInputError(f"`operation`: unknown operation {operation!r}; use one of {list(OPERATIONS)}")
        return {**query(load_table(path), operation, column, where, limit), "file": str(path)}


class ReadTableInImage(CheckedTool):
    name = "read_table_in_image"
    task = "image-to-text"
    description = (
        "Reads a table from an image or scanned page with OCR and saves it as a CSV file. The first line is "
        "taken as the header. Returns a dict {'csv_path': str (pass it to query_table or describe_table), "
        "'columns': [str], 'rows': [row dicts], 'mean_confidence': float 0-100, 'model': str}. Works best on "
        "clean, printed tables with clear gaps between columns."
    )
    inputs: dict[str, Any] = {
        "image": {
            "type": ["string", "image"],
            "description": "Path to a PNG/JPEG (or a PIL image), or a scanned PDF.",
        },
        "page": {"type": "integer", "description": "For a PDF: which page, from 1 (default 1).", "nullable": True},
    }
    output_type = "object"

    def forward(self, image: Any, page: int | None = None) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.context import current_workspace
        from smolcrew.tools.ocr import load_page_image, ocr_words
        from smolcrew.tools.tables import records, table_frame, table_rows

        words = ocr_words(load_page_image(image, page), psm=6)
        rows = table_rows(words)
        if len(rows) < 2:
            raise ToolInputError("no table was found (fewer than two lines of text); pass a clearer or larger image")
        frame = table_frame(rows)
        csv_path = current_workspace().new_path("table", ".csv")
        frame.to_csv(csv_path, index=False)
        return {
            "csv_path": str(csv_path),
            "columns": [str(name) for name in frame.columns],
            "rows": records(frame),
            "mean_confidence": round(sum([word["confidence"] for word in words]) / len(words), 1),
            "model": "tesseract",
        }
