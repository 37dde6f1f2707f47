"""A graph of runs, agents, steps and tools in Neo4j (or any Bolt server speaking the portable Cypher subset).

```
(Run)-[:HAS_STEP]->(Step)<-[:EMITTED]-(Agent)
(Step)-[:CALLED]->(Tool)          a name in payload["calls"] that is not an agent
(Step)-[:DELEGATED_TO]->(Agent)   a `delegation` record, to payload["to"]
(Step)-[:NEXT]->(Step)            consecutive seqs of one run
```

Every node carries `ns` (the namespace) and an `id` that starts with it, so several namespaces share one
database. Only the Cypher subset of DESIGN.md section 4 is used (it runs on Neo4j 5 and on ArcadeDB's Bolt
plugin): one uniqueness constraint per label, made before any data; batched `UNWIND ... MERGE`; relationships
merged from their low-degree end; maps stored as JSON strings. The whole record rides along as `record_json`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import unquote, urlsplit, urlunsplit

from smolcrew.errors import SinkError, SinkUnavailableError
from smolcrew.memory.records import StepRecord, record_from_json
from smolcrew.memory.sinks.base import Capability, MemorySink, SinkHealth
from smolcrew.memory.sinks.graph_rows import (
    DROP_AGENT_TOOLS,
    LINK_DELEGATE,
    LINK_NEXT,
    LINK_TOOL,
    MERGE,
    MERGE_STEP,
    UNLINK_CHANGED,
    clean_text,
    record_rows,
)

__all__ = ["GraphSink"]

T = TypeVar("T")

BATCH_ROWS = 500
"""Records per transaction: big enough to amortise round trips, small enough to stay all-or-nothing."""
BATCH_BYTES = 8_000_000
"""A transaction also closes once its records' payload strings pass this many characters (huge observations)."""
LABELS = ("Run", "Agent", "Step", "Tool")
_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FIX = "start the graph database (see DESIGN.md section 4) or set SMOLCREW_SERVICES__NEO4J_URI to a reachable server"


class GraphSink(MemorySink):
    """Step records as a graph over the official `neo4j` driver.

    Args:
        driver: a ready `neo4j.Driver`; the sink closes it only when `from_url` made it.
        database: the database to use (`memory` on the ArcadeDB test server; `neo4j` on Neo4j Community).
        namespace: letters, digits, `_`, `.`, `-`; every node of this sink carries it, `drop()` removes them.
        deadline_s: longest wait for one call (a write of up to ~500 records, a read); past it the call raises
            SinkUnavailableError (health gives up after at most 5 s).
    """

    name: ClassVar[str] = "graph"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.GRAPH})

    def __init__(
        self, driver: Any, *, database: str = "memory", namespace: str = "default", deadline_s: float = 30.0
    ) -> None:
        if not _NAMESPACE.fullmatch(namespace):
            raise ValueError(f"namespace {namespace!r} must be 1-64 letters, digits, '_', '.' or '-'")
        self.driver = driver
        self.database = database
        self.namespace = namespace
        self.deadline_s = deadline_s
        self._ready = False
        self._owned = False

    def __repr__(self) -> str:
        return f"GraphSink(database={self.database!r}, namespace={self.namespace!r})"

    @classmethod
    @contextmanager
    def from_url(
        cls,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        database: str = "memory",
        namespace: str = "default",
        timeout_s: float = 3.0,
        retry_s: float = 0.5,
        deadline_s: float = 30.0,
    ) -> Iterator[GraphSink]:
        """A sink owning a driver for `url` (`bolt://user:password@host:7687` or separate `user`/`password`).

        `timeout_s` bounds connecting and taking a connection from the pool; `retry_s` bounds the driver's
        retries of a failed transaction (the memory mirror retries later on its own, from the journal);
        `deadline_s` bounds each call as a whole.
        """
        from neo4j import GraphDatabase

        parts = urlsplit(url)
        if parts.username is not None:
            user = user if user is not None else unquote(parts.username)
            password = password if password is not None else unquote(parts.password or "")
            host = parts.hostname or ""
            netloc = f"[{host}]" if ":" in host else host
            url = urlunsplit(parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc))
        auth = (user, password or "") if user is not None else None
        driver = GraphDatabase.driver(
            url,
            auth=auth,
            connection_timeout=timeout_s,
            connection_acquisition_timeout=timeout_s,
            max_transaction_retry_time=retry_s,
            liveness_check_timeout=30.0,
        )
        sink = cls(driver, database=database, namespace=namespace, deadline_s=deadline_s)
        sink._owned = True
        try:
            yield sink
        finally:
            sink.close()

    # -- plumbing -----------------------------------------------------------------------------------------

    def _id(self, *parts: str) -> str:
        return clean_text(f"{self.namespace}/{':'.join(parts)}")

    def _call(self, what: str, work: Callable[[], T], *, deadline_s: float | None = None) -> T:
        """Run `work` within the deadline, turning the driver's failures into SinkUnavailableError.

        The driver has no client-side read timeout: a server that accepts TCP but never answers (stopped,
        swapping) would hang the caller forever. So `work` runs on a daemon thread that is abandoned when
        the deadline passes (it ends when the connection does).
        """
        from neo4j.exceptions import DriverError, Neo4jError, ServiceUnavailable, SessionExpired, TransientError

        deadline = self.deadline_s if deadline_s is None else deadline_s
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["value"] = work()
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=target, name=f"graph-sink-{what}", daemon=True).start()
        if not done.wait(deadline):
            raise SinkUnavailableError(
                f"graph database did not answer {what} within {deadline:g} s (stopped or overloaded?); {_FIX}",
                sink=self.name,
            )
        if "error" not in box:
            return cast(T, box["value"])
        exc = box["error"]
        if isinstance(exc, ServiceUnavailable | SessionExpired | TransientError | TimeoutError | OSError):
            raise SinkUnavailableError(
                f"graph database did not answer ({what}): {type(exc).__name__}: {exc}; {_FIX}", sink=self.name
            ) from exc
        if isinstance(exc, DriverError):  # pool acquisition timeouts, closed drivers
            raise SinkUnavailableError(
                f"graph database unreachable ({what}): {type(exc).__name__}: {exc}; {_FIX}", sink=self.name
            ) from exc
        if isinstance(exc, Neo4jError):
            raise SinkError(f"graph database refused {what}: {exc}", sink=self.name) from exc
        raise exc

    def _query(self, cypher: str, **params: Any) -> list[Any]:
        """One auto-commit query: no driver retries, so a dead server is reported at once."""
        with self.driver.session(database=self.database) as session:
            return list(session.run(cypher, params))

    def setup(self) -> None:
        """Create the id constraints (before any data, as ArcadeDB needs) and the Step.run_id index. Idempotent."""
        if self._ready:
            return

        def work() -> None:
            for label in LABELS:
                self._query(
                    f"CREATE CONSTRAINT {label.lower()}_id IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE"
                )
            self._query("CREATE INDEX step_run IF NOT EXISTS FOR (s:Step) ON (s.run_id)")

        self._call("setup", work)
        self._ready = True

    # -- writing ------------------------------------------------------------------------------------------

    def _write_chunk(self, chunk: Sequence[StepRecord]) -> None:
        rows = record_rows(chunk, self.namespace, self._id)
        # Within one chunk, a later copy of the same (run_id, seq) wins, as a replay would leave it.
        steps = list({row["id"]: row for row in rows["steps"]}.values())
        # NEXT to the previous and from the next seq, whichever exist; pairs inside the chunk come up twice.
        pairs = list(
            {
                (a, b): {"a": a, "b": b}
                for row in steps
                for a, b in ((row["prev"], row["id"]), (row["id"], row["next"]))
            }.values()
        )

        def transaction(tx: Any) -> None:
            tx.run(
                UNLINK_CHANGED, rows=[{"id": row["id"], "digest": row["props"]["digest"]} for row in steps]
            ).consume()
            tx.run(MERGE.format(label="Run"), rows=rows["runs"]).consume()
            tx.run(MERGE.format(label="Agent"), rows=rows["agents"]).consume()
            tx.run(MERGE_STEP, rows=steps).consume()
            if rows["delegations"]:
                tx.run(LINK_DELEGATE, rows=rows["delegations"]).consume()
            # A name once taken for a tool but now known as an agent was a delegation all along.
            tx.run(DROP_AGENT_TOOLS, ids=[row["id"] for row in rows["agents"]]).consume()
            if rows["calls"]:
                tx.run(LINK_TOOL, calls=rows["calls"]).consume()
            tx.run(LINK_NEXT, pairs=pairs).consume()

        def work() -> None:
            with self.driver.session(database=self.database) as session:
                session.execute_write(transaction)

        self._call("write", work)

    def write(self, batch: Sequence[StepRecord]) -> None:
        """Merge `batch` into the graph, one transaction per ~500 records (fewer when records are huge)."""
        if not batch:
            return
        self.setup()
        chunk: list[StepRecord] = []
        size = 0
        for record in batch:
            weight = sum(len(v) for v in record.payload.values() if isinstance(v, str))
            if chunk and (len(chunk) >= BATCH_ROWS or size + weight > BATCH_BYTES):
                self._write_chunk(chunk)
                chunk, size = [], 0
            chunk.append(record)
            size += weight
        self._write_chunk(chunk)

    # -- reading ------------------------------------------------------------------------------------------

    def read(self, run_id: str) -> list[StepRecord]:
        """Every stored record of `run_id`, ordered by seq."""
        self.setup()
        rows = self._call(
            "read",
            lambda: self._query(
                "MATCH (s:Step) WHERE s.run_id = $run_id AND s.ns = $ns RETURN s.record_json AS j ORDER BY s.seq",
                run_id=clean_text(str(run_id)),
                ns=self.namespace,
            ),
        )
        return [record_from_json(row["j"]) for row in rows]

    def search(self, query: str, *, run_id: str | None = None, k: int = 5) -> list[StepRecord]:
        """Records whose text contains the most words of `query` (case-insensitive), whole phrase first."""
        self.setup()
        phrase = clean_text(query).strip().lower()
        words = list(dict.fromkeys(w for w in re.split(r"\W+", phrase) if len(w) > 1))
        if not phrase or k <= 0:
            return []
        where = "s.ns = $ns" + (" AND s.run_id = $run_id" if run_id is not None else "")
        cypher = (
            f"MATCH (s:Step) WHERE {where} WITH s, toLower(s.text) AS t "
            "WITH s, size([w IN $words WHERE t CONTAINS w]) + CASE WHEN t CONTAINS $phrase THEN 1 ELSE 0 END AS score "
            "WHERE score > 0 RETURN s.record_json AS j ORDER BY score DESC, s.ts, s.run_id, s.seq LIMIT $k"
        )
        params = {"ns": self.namespace, "words": words, "phrase": phrase, "k": int(k)}
        if run_id is not None:
            params["run_id"] = clean_text(str(run_id))
        rows = self._call("search", lambda: self._query(cypher, **params))
        return [record_from_json(row["j"]) for row in rows]

    def delegation_tree(self, run_id: str) -> list[tuple[str, str, str]]:
        """(parent agent, child agent, task) for every delegation of `run_id`, in order."""
        self.setup()
        rows = self._call(
            "delegation_tree",
            lambda: self._query(
                "MATCH (:Run {id: $run})-[:HAS_STEP]->(s:Step)-[:DELEGATED_TO]->(child:Agent) "
                "MATCH (s)<-[:EMITTED]-(parent:Agent) "
                "RETURN parent.name AS parent, child.name AS child, s.record_json AS j ORDER BY s.seq",
                run=self._id(str(run_id)),
            ),
        )
        return [(row["parent"], row["child"], str(json.loads(row["j"])["payload"].get("task", ""))) for row in rows]

    def tools_for_answer(self, run_id: str) -> list[str]:
        """Names of the tools the steps of `run_id` called, in order of first call."""
        self.setup()
        rows = self._call(
            "tools_for_answer",
            lambda: self._query(
                "MATCH (:Run {id: $run})-[:HAS_STEP]->(s:Step)-[:CALLED]->(t:Tool) "
                "RETURN t.name AS name, min(s.seq) AS first ORDER BY first, name",
                run=self._id(str(run_id)),
            ),
        )
        return [row["name"] for row in rows]

    # -- housekeeping -------------------------------------------------------------------------------------

    def health(self) -> SinkHealth:
        """Whether the database answers a query now; never raises."""
        start = time.perf_counter()
        try:
            self._call("health", partial(self._query, "RETURN 1 AS ok"), deadline_s=min(5.0, self.deadline_s))
        except Exception as exc:  # health reports, it never raises
            return SinkHealth(False, f"graph database unreachable: {type(exc).__name__}: {exc}"[:300])
        latency = (time.perf_counter() - start) * 1000
        return SinkHealth(True, f"{self.database} answers", latency)

    def drop(self) -> None:
        """Delete every node (and its relationships) of this namespace, a thousand per transaction."""
        for label in LABELS:
            while True:
                cypher = f"MATCH (n:{label}) WHERE n.ns = $ns WITH n LIMIT 1000 DETACH DELETE n RETURN count(*) AS n"
                rows = self._call("drop", partial(self._query, cypher, ns=self.namespace))
                if not rows or not rows[0]["n"]:
                    break

    def close(self) -> None:
        """Close the driver if this sink made it (`from_url`). Best effort: a connection a deadline gave up on may
        still be held by the abandoned call, and the driver's goodbye on it raises (BufferError): the server is
        gone or stopped, and nothing is left to send."""
        if self._owned:
            self._owned = False
            try:
                self.driver.close()
            except (BufferError, OSError) as exc:
                logging.getLogger(__name__).warning("graph driver did not close cleanly: %s", exc)
