"""Answers a plain-language question about a table file without a language model.

`table_question_parser.read_question` reads the question against the table (columns, values, numeric filters,
the words of the operation); this module picks the operation (how many units: a sum; how many employees: a count;
which region sold the most: a total per region, then its highest) and computes it with pandas. The answer comes
with how it was computed (`answer_text`, `where`, the matching rows), for a small model to phrase. What cannot
be read is refused with a ToolInputError naming the columns: it never guesses silently.
"""

from __future__ import annotations

import itertools
from typing import Any

from smolcrew.tools.base import CheckedTool
from smolcrew.tools.table_question_parser import (
    KNOWN,
    MAX_WORDS,
    MIN_WORDS,
    STOP,
    WORDS,
    Question,
    core,
    describe,
    is_text,
    listed,
    plain,
    read_question,
)
from smolcrew.tools.tables import is_numeric, records

__all__ = ["LIST_LIMIT", "AnswerTableQuestion", "answer_question"]

LIST_LIMIT = 50
"""Most values a list answer holds (a small model phrases it)."""


def answer_question(frame: Any, question: str) -> dict[str, Any]:
    """The answer to `question` from `frame`, as AnswerTableQuestion returns it (without 'file');
    ToolInputError saying what it understood when it cannot tell how to answer."""
    frame = frame.rename(columns=str)
    q = read_question(frame, question)
    if q.op == "columns":
        names, q.matched = list(frame.columns), len(frame)
        answer = len(names) if q.find({"many", "number"}) is not None else names
        return _result(q, answer, f"{len(names)} columns: {', '.join(names)}", "columns", None, frame.iloc[:0])
    _operation(q)
    rows = frame
    for condition in q.where:
        rows = rows[_mask(rows, condition)]
    q.matched, q.scope = len(rows), f"all {len(rows)} rows"
    if q.where:
        q.scope = f"{len(rows)} row{'s' * (len(rows) != 1)} where {describe(q.where)}"
    target, texts, by, op = q.target, q.texts, q.by, q.op
    if q.superlative is not None:
        return _extreme(q, rows)
    if op == "distinct":
        n = rows[texts[0]].nunique()
        return _result(q, n, f"{n} (different values of {texts[0]} in {q.scope})", "count_distinct", texts[0], rows)
    if op is not None:
        column = None if op == "count" else target or q.measure(f"it does not say which column to take the {op} of")
        if by:
            groups = rows.groupby(by)[column].agg(op) if column else rows.groupby(by).size()
            shown = {str(k): plain(v) for k, v in groups.items()}
            text = (
                "; ".join(f"{k}: {v}" for k, v in shown.items()) + f" ({op} of {column or 'rows'} by {by}; {q.scope})"
            )
            return _result(q, shown, text, op, column, rows, by=by)
        value = len(rows) if column is None else plain(getattr(rows[column], op)())
        return _result(
            q, value, f"{value} ({f'{op} of {column} over' if column else 'count of'} {q.scope})", op, column, rows
        )
    column = target or next(iter(texts), None)
    if column is None and not q.where:
        q.refuse("it names no operation, column or value that could be used")
    if column is None and len(rows) == 1:
        row = records(rows)[0]
        return _result(q, row, ", ".join(f"{k} {plain(v)}" for k, v in row.items()), "lookup", None, rows)
    shown_rows = rows if column is None else rows.dropna(subset=[column])
    if column is not None and not is_numeric(frame, column):  # "list the departments": each once
        shown_rows = shown_rows.drop_duplicates(subset=[column])
    names = _names(q, shown_rows.head(LIST_LIMIT))
    values = names if column is None else [plain(v) for v in shown_rows[column].head(LIST_LIMIT)]
    if column is None or not is_numeric(frame, column) or len(values) == 1:
        values = list(dict.fromkeys(values))
        text = ("; " if any(", " in str(v) for v in values) else ", ").join(map(str, values))
    else:
        text = "; ".join(f"{n}: {v}" for n, v in zip(names, values, strict=True))
    more = f"; the first {LIST_LIMIT} of {len(shown_rows)}" if len(shown_rows) > LIST_LIMIT else ""
    text = f"{text or 'none'} ({column or 'rows'} of {q.scope}{more})"
    return _result(
        q, values[0] if len(values) == 1 else values, text, "lookup" if len(values) == 1 else "list", column, rows
    )


def _operation(q: Question) -> None:
    """What to compute: the numeric column asked about, the text columns named, "by <column>", the operation."""
    frame, toks = q.frame, q.toks
    numeric = [m for m in q.mentions if m.kind != "value" and is_numeric(frame, m.column) and not m.consumed]
    targets = list(dict.fromkeys(m.column for m in [m for m in numeric if m.kind == "column"] or numeric))
    if len(targets) > 1:
        q.refuse(f"it names several numeric columns ({', '.join(targets)}); ask about one at a time")
    q.target = targets[0] if targets else None
    compared = {m.column for m in q.mentions if m.consumed}  # "average age of staff between 25 and 45": age
    q.fallback = compared.pop() if len(compared) == 1 else None
    filtered = {w["column"] for w in q.where}
    q.texts = [m.column for m in q.mentions if m.kind == "column" and is_text(frame, m.column)]
    q.texts = [c for c in q.texts if c not in filtered]
    grouping = [
        m.column
        for m in q.mentions
        if m.column in q.texts and m.start and toks[m.start - 1].raw in {"by", "per", "each"}
    ]
    q.by = next(iter(grouping), None)
    pairs = [(t.raw, u.raw) for t, u in itertools.pairwise(toks)]
    how = next((i for i, p in enumerate(pairs) if p in {("how", "many"), ("how", "much"), ("number", "of")}), None)
    counting = q.find({"count"}) is not None or (how is not None and pairs[how][1] != "much")
    q.op = "mean" if q.find(WORDS["mean"]) is not None else "count" if counting else None
    q.op = q.op or ("sum" if q.find(WORDS["sum"]) is not None or how is not None else None)
    noun = next((i for i in range(how + 2, len(toks)) if toks[i].raw not in STOP), None) if how is not None else None
    named = [m.column for m in q.mentions if m.start == noun and m.column in q.texts]  # "how many cities"
    named = [c for c in named if not frame[c].dropna().is_unique]  # "how many items" (one a row): rows
    if q.op == "count" and (named or q.find({"different", "distinct", "unique"}) is not None):
        q.texts = [*named, *q.texts, *([q.target] if q.target else [])]
        q.op = "distinct" if q.texts else q.op
    if q.op == "count" and noun is not None and q.target:  # "how many units": their sum; "how many employees": rows
        q.op = "count" if toks[noun].norm in WORDS["count"] and not q.covers(noun) else "sum"
        if q.covers(noun, ("synonym",)) and noun + 1 < len(toks) and toks[noun + 1].norm in WORDS["count"]:
            q.refuse(f"'{toks[noun].raw} {toks[noun + 1].raw}' needs a number: e.g. more than how much {q.target}")
    q.understood += [f"operation {q.op}"] if q.op else []
    q.superlative = q.find(MAX_WORDS | MIN_WORDS)


def _names(q: Question, rows: Any, group: str | None = None) -> list[str]:
    """What names each row: the column asked about, a unique text column, else the unfiltered text columns."""
    texts = [c for c in q.frame.columns if is_text(q.frame, c)]
    unique = [c for c in texts if q.frame[c].is_unique and not q.frame[c].astype(str).str.match(r"\d{4}-").any()]
    label = [group] if group else unique[:1] or [c for c in texts if c not in {w["column"] for w in q.where}][:3]
    return [", ".join(str(row[c]) for c in label) if label else f"row {i + 1}" for i, row in rows.iterrows()]


def _mask(frame: Any, condition: dict[str, Any]) -> Any:
    series, op, value = frame[condition["column"]], condition["op"], condition["value"]
    if op == "contains":
        return series.astype(str).str.contains(str(value), case=False, regex=False)
    if not is_numeric(frame, condition["column"]):
        hit = series.astype(str).str.strip().str.lower().isin({str(v).strip().lower() for v in listed(value)})
        return hit if op in ("==", "in") else ~hit
    return {"==": series.eq, "<": series.lt, "<=": series.le, ">": series.gt, ">=": series.ge}[op](value)


_AMOUNT_WORDS = frozenset({"most", "least", "fewest"})
"""Superlatives of an amount ("which item do we have the fewest of"), not of a price or a size."""


def _extreme(q: Question, rows: Any) -> dict[str, Any]:
    """most/highest/cheapest...: the row with the extreme value, or the group with the extreme total/mean/count."""
    toks, frame, d, op, target, top = q.toks, q.frame, q.superlative or 0, q.op, q.target, q.top
    group = q.by or next(iter(q.texts), None)
    word, highest = toks[d].raw, bool({toks[d].raw, toks[d].norm} & MAX_WORDS)
    operation, extreme = ("max", "the highest") if highest else ("min", "the lowest")
    nxt = toks[d + 1] if d + 1 < len(toks) else None
    if nxt and nxt.number is None and not q.covers(d + 1) and not {nxt.raw, nxt.norm} & KNOWN:
        q.refuse(f"'{word} {nxt.raw}': {nxt.raw} is no column of the table")
    counted = op == "count" or (nxt is not None and nxt.norm in WORDS["count"] and not q.covers(d + 1))
    if group and target is None and not counted:  # "which region grew the most": of what?
        target = q.measure(f"'{word}' does not say of which column", amount=word in _AMOUNT_WORDS)
    agg = op if op in ("sum", "mean") else "count" if target is None or op == "count" else None
    if group and agg is None:  # "sold the most" or an additive column: a total per group; "most expensive": not
        quantity = word in _AMOUNT_WORDS and not q.covers(d + 1, ("synonym",))
        agg = "sum" if quantity or (core(str(target))[-1:] or [""])[0].startswith(tuple(WORDS["additive"])) else None
    if group and agg and (agg == "count" or not frame[group].dropna().is_unique):
        groups = (rows.groupby(group).size() if agg == "count" else rows.groupby(group)[target].agg(agg)).dropna()
        picked = _pick(groups, highest, top)
        names, value = [str(k) for k in picked.index], plain(picked.iloc[0]) if len(picked) else None
        what = "rows" if agg == "count" else f"{agg} of {target}"
        text = "; ".join(f"{n} ({what} {plain(v)})" for n, v in picked.items()) if top else ""
        text += f" ({extreme} {top}" if top else f"{' and '.join(names) or 'none'} ({what} {value}, {extreme}"
        text += f" of {len(groups)} {group} values; {q.scope})"
        answer, value = (names, [plain(v) for v in picked]) if top else (" and ".join(names) or None, value)
        return _result(q, answer, text, "top" if top else operation, target, rows, value=value, by=group, aggregate=agg)
    if op is not None:
        q.refuse(f"'{word}' and the {op} together need a text column to group by")
    target = target or q.measure(f"'{word}' does not say of which column", amount=word in _AMOUNT_WORDS)
    ranked = next((m.column for m in q.mentions if m.start == d and m.kind == "synonym"), target)
    picked = _pick(rows[ranked].dropna(), highest, top)
    winners = rows.loc[picked.index]
    names, value = _names(q, winners, group), plain(picked.iloc[0]) if len(picked) else None
    if ranked != target:  # "the salary of the oldest employee": the salary of the row with the highest age
        values = [plain(v) for v in winners[target]]
        text = (
            f"{', '.join(map(str, values))} ({target} of {' and '.join(names)}, {extreme} {ranked} {value}; {q.scope})"
        )
        return _result(q, values[0] if len(values) == 1 else values, text, "lookup", target, winners, ranked_by=ranked)
    if top:
        text = "; ".join(f"{n} ({target} {plain(v)})" for n, v in zip(names, picked, strict=True))
        values = [plain(v) for v in picked]
        return _result(q, names, f"{text} ({extreme} {top}; {q.scope})", "top", target, winners, value=values)
    named = " and ".join(names) or None
    asks_value = not group and q.find({"who", "which", "whose"}) is None and q.find({"what", "how"}) is not None
    if asks_value and not (nxt and nxt.norm in WORDS["count"]):  # "what is the highest salary": 91000
        text = f"{value} ({extreme} {target}: {named}; {q.scope})"
        return _result(q, value, text, operation, target, winners, label=named)
    return _result(
        q, named, f"{named} ({target} {value}, {extreme}; {q.scope})", operation, target, winners, value=value
    )


def _pick(values: Any, highest: bool, top: int | None) -> Any:
    """The `top` highest (or lowest) values, or all those equal to the extreme (ties)."""
    if top:
        return values.nlargest(top) if highest else values.nsmallest(top)
    return values[values == (values.max() if highest else values.min())] if len(values) else values


def _result(q: Question, answer: Any, text: str, operation: str, column: Any, rows: Any, **extra: Any) -> Any:
    keys = ("answer", "answer_text", "operation", "column", "where", "matched_rows", "rows", "columns")
    values = (answer, text, operation, column, q.where, q.matched, records(rows.head(10)), list(q.frame.columns))
    return {**dict(zip(keys, values, strict=True)), **extra}


class AnswerTableQuestion(CheckedTool):
    name = "answer_table_question"
    task = "table-question-answering"
    description = (
        "Answers a plain-language question about a table file (.csv, .tsv or .xlsx) without writing a query: "
        "totals ('how much did we spend on printer paper'), averages, counts ('how many employees earn more than "
        "50000'), the row or group with the highest or lowest value ('who earns the most', 'which region sold the "
        "most units', 'top 3 cheapest items'), lists ('which items have fewer than 5 in stock'), one row's value "
        "('what is Eva's salary'), totals per group ('average salary by department') and the column names. Values "
        "named in the question become filters. Returns a dict {'answer' (number, text, list or dict), "
        "'answer_text': str (the answer and how it was computed), 'operation', 'column', 'where': [conditions], "
        "'matched_rows': int, 'rows': [up to 10 row dicts], 'columns': [str], 'file', and for highest/lowest "
        "'value' (the number)}. When the question cannot be read it raises an error naming the columns: then "
        "use query_table."
    )
    inputs = {
        "path": {"type": "string", "description": "Path to the table file."},
        "question": {"type": "string", "description": "The question in plain words, e.g. the user's request."},
    }
    output_type = "object"

    def forward(self, path: str, question: str) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.table_questions import answer_question
        from smolcrew.tools.tables import load_table

        if not question.strip():
            raise ToolInputError("`question` is empty: ask something about the table, e.g. 'what is the total?'")
        return {**answer_question(load_table(path), question), "file": str(path)}
