"""The approval queue against a real Redis: one fresh namespace per test, every key deleted afterwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("redis", reason="the Redis client is not installed: pip install redis")

from smolcrew.errors import ApprovalAlreadyDecided, ApprovalNotFound, ApprovalQueueUnavailable
from smolcrew.validators.human import NO_REASON, Approval, ApprovalQueue
from tests.memory.backends.redis import REDIS_URL, closed_port_url, fresh_namespace, redis, require_redis


@contextmanager
def approval_queue(namespace: str | None = None) -> Iterator[ApprovalQueue]:
    """A queue on the test server in `namespace` (fresh when None); every key of the namespace is deleted on exit."""
    require_redis()
    ns = namespace or fresh_namespace()
    with ApprovalQueue.from_url(REDIS_URL, namespace=ns) as made:
        try:
            yield made
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
            if keys:
                client.unlink(*keys)
            client.close()


@pytest.fixture
def queue() -> Iterator[ApprovalQueue]:
    with approval_queue() as made:
        yield made


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    require_redis()
    made = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield made
    made.close()


def ask(queue: ApprovalQueue, run_id: str = "run-1", **overrides: object) -> Approval:
    fields: dict[str, object] = {
        "task": "Summarise the Q3 report",
        "answer": "Revenue grew 12%.",
        "reasons": ["judge confidence 0.41 < 0.6", "tool send_email needs approval"],
        "evidence": {"tool_outputs": ["revenue +12%"], "sources": ["q3.pdf p.2"]},
    }
    fields.update(overrides)
    return queue.request(run_id, **fields)  # type: ignore[arg-type]


def test_request_get_list_decide_round_trip(queue: ApprovalQueue, client: redis.Redis) -> None:
    big = "x" * 2_000_000 + " end"
    evidence = {"path": Path("/tmp/q3.pdf"), "tags": {"b", "a"}, 3: (1, 2), "nested": {"ok": True, "n": None}}
    made = ask(queue, answer=big, evidence=evidence)
    assert made.status == "pending" and made.decided is None and len(made.id) == 12
    assert made.evidence == {"path": "/tmp/q3.pdf", "tags": ["a", "b"], "3": [1, 2], "nested": {"ok": True, "n": None}}
    assert queue.get(made.id) == made  # the big answer is stored in full
    assert queue.list() == [made] and queue.list("approved") == [] and queue.for_run("run-1") == made
    assert client.ttl(queue.approval_key(made.id)) == -1  # a pending approval never expires

    decided = queue.decide(made.id, approve=True, by="ada", note="checked the PDF")
    assert (decided.status, decided.decided_by, decided.note) == ("approved", "ada", "checked the PDF")
    assert decided.decided is not None and decided.decided >= made.created
    assert queue.get(made.id) == decided and queue.for_run("run-1") == decided
    assert queue.list() == [] and queue.list("approved") == [decided] and queue.list(None) == [decided]
    assert 29 * 86400 < client.ttl(queue.approval_key(made.id)) <= 30 * 86400
    events = [fields for _, fields in client.xrange(queue.events_key)]
    assert [(e["event"], e["id"], e["status"]) for e in events] == [
        ("requested", made.id, "pending"),
        ("decided", made.id, "approved"),
    ]
    assert events[1]["by"] == "ada" and events[0]["run_id"] == "run-1"
    assert repr(decided).startswith(f"Approval({made.id} run=run-1 approved by ada: judge confidence")
    assert decided.to_dict()["reasons"] == list(made.reasons)


def test_list_is_oldest_first_and_bounded(queue: ApprovalQueue) -> None:
    made = [ask(queue, f"run-{n}") for n in range(5)]
    assert [a.id for a in queue.list()] == [a.id for a in made]
    assert [a.id for a in queue.list(limit=2)] == [a.id for a in made[:2]]
    queue.decide(made[1].id, approve=False, by="ada", note="wrong figure")
    assert [a.id for a in queue.list(None, limit=3)] == [a.id for a in made[:3]]
    with pytest.raises(ValueError, match="status must be one of"):
        queue.list("maybe")  # type: ignore[arg-type]


def test_request_is_idempotent_per_run_while_pending(queue: ApprovalQueue) -> None:
    first = ask(queue)
    again = ask(queue, answer="a different answer", reasons=["other"])
    assert again == first and [a.id for a in queue.list()] == [first.id]
    other_run = ask(queue, "run-2")
    assert other_run.id != first.id
    queue.decide(first.id, approve=False, by="ada", note="redo")
    newer = ask(queue, answer="second try")
    assert newer.id != first.id and newer.pending and queue.for_run("run-1") == newer
    assert queue.get(first.id).status == "rejected"


def test_deciding_twice_raises_and_a_bare_reject_gets_a_note(queue: ApprovalQueue) -> None:
    made = ask(queue)
    rejected = queue.decide(made.id, approve=False, by="ada")
    assert rejected.note == NO_REASON and queue.get(made.id).note == NO_REASON
    with pytest.raises(ApprovalAlreadyDecided, match="already rejected by ada") as caught:
        queue.decide(made.id, approve=True, by="bob")
    assert (caught.value.status, caught.value.decided_by, caught.value.approval_id) == ("rejected", "ada", made.id)
    assert queue.get(made.id) == rejected
    with pytest.raises(ValueError, match="who decides"):
        queue.decide(ask(queue, "run-2").id, approve=True, by=" ")


def test_unknown_or_expired_ids_raise_not_found(queue: ApprovalQueue, client: redis.Redis) -> None:
    for call in (queue.get, lambda i: queue.decide(i, approve=True, by="ada"), lambda i: queue.wait(i, 0.1)):
        with pytest.raises(ApprovalNotFound, match="no approval 'feedc0ffee00'"):
            call("feedc0ffee00")
    assert queue.for_run("no-such-run") is None
    made = ask(queue)
    queue.decide(made.id, approve=True, by="ada")
    client.delete(queue.approval_key(made.id))  # what the 30-day TTL does
    assert queue.list("approved") == [] and queue.for_run("run-1") is None
    assert client.zcard(queue.status_key("approved")) == 0  # the dangling id was dropped from the set


def race(queue: ApprovalQueue, approval_id: str) -> dict[str, Approval | ApprovalAlreadyDecided]:
    """ada approves and bob rejects `approval_id` at the same moment, each in its own thread."""
    barrier = threading.Barrier(2)
    outcomes: dict[str, Approval | ApprovalAlreadyDecided] = {}

    def decide(name: str) -> None:
        barrier.wait()
        try:
            outcomes[name] = queue.decide(approval_id, approve=name == "ada", by=name, note=name)
        except ApprovalAlreadyDecided as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=decide, args=(name,)) for name in ("ada", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    return outcomes


def test_concurrent_decisions_exactly_one_wins(queue: ApprovalQueue) -> None:
    for n in range(10):
        made = ask(queue, f"run-{n}")
        outcomes = race(queue, made.id)
        winners = [o for o in outcomes.values() if isinstance(o, Approval)]
        losers = [o for o in outcomes.values() if isinstance(o, ApprovalAlreadyDecided)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert queue.get(made.id) == winners[0] and losers[0].decided_by == winners[0].decided_by


def test_wait_returns_promptly_when_another_thread_decides(queue: ApprovalQueue) -> None:
    made = ask(queue)
    seen: list[tuple[Approval, float]] = []
    # no socket timeout, so wait() blocks in one 10 s slice: only the decision's wake-up can end it early
    raw = redis.Redis.from_url(REDIS_URL)
    blocking = ApprovalQueue(raw, namespace=queue.namespace)

    def waiter() -> None:
        started = time.monotonic()
        seen.append((blocking.wait(made.id, timeout_s=10), time.monotonic() - started))

    waiters = [threading.Thread(target=waiter) for _ in range(2)]  # every waiter wakes, not just one
    for thread in waiters:
        thread.start()
    time.sleep(0.3)
    decided_at = time.monotonic()
    queue.decide(made.id, approve=True, by="ada")
    for thread in waiters:
        thread.join(5)
    woke = time.monotonic() - decided_at
    assert [approval.status for approval, _ in seen] == ["approved", "approved"]
    assert woke < 1.0 and all(took < 1.5 for _, took in seen), (woke, seen)
    assert queue.wait(made.id, timeout_s=10).status == "approved"  # a late waiter returns at once
    raw.close()


def test_wait_times_out_pending_without_hammering_redis(queue: ApprovalQueue, client: redis.Redis) -> None:
    made = ask(queue)
    before = int(client.info("commandstats").get("cmdstat_blmove", {}).get("calls", 0))
    started = time.monotonic()
    waited = queue.wait(made.id, timeout_s=0.8)
    took = time.monotonic() - started
    after = int(client.info("commandstats").get("cmdstat_blmove", {}).get("calls", 0))
    assert waited.pending and waited == made
    assert 0.8 <= took < 1.5
    assert after - before <= 4  # slices of half the 1 s socket timeout, not a tight loop
    assert queue.wait(made.id, timeout_s=0).pending


def test_a_restarted_process_sees_and_decides_the_pending_approval(queue: ApprovalQueue) -> None:
    made = ask(queue, "run-restart")
    with ApprovalQueue.from_url(REDIS_URL, namespace=queue.namespace) as restarted:
        assert restarted.list() == [made] and restarted.for_run("run-restart") == made
        restarted.decide(made.id, approve=True, by="ops")
    assert queue.get(made.id).status == "approved" and queue.get(made.id).decided_by == "ops"


def test_redis_down_raises_unavailable_with_the_fix(queue: ApprovalQueue) -> None:
    assert queue.health().ok
    with ApprovalQueue.from_url(closed_port_url(), namespace="down-test") as down:
        health = down.health()
        assert not health.ok and "redis-server" in health.detail
        for call in (down.list, lambda: down.get("abc"), lambda: ask(down)):
            with pytest.raises(ApprovalQueueUnavailable, match="SMOLCREW_SERVICES__REDIS_URL") as caught:
                call()
            assert "redis-server" in str(caught.value) and "services.redis_url" in str(caught.value)


def test_bad_arguments_fail_fast() -> None:
    client = redis.Redis.from_url(closed_port_url())
    with pytest.raises(ValueError, match="namespace"):
        ApprovalQueue(client, namespace="has space")
    with pytest.raises(ValueError, match="run_id"):
        ApprovalQueue(client).request("", task="t", answer="a", reasons=[], evidence={})
    client.close()


def test_index_puts_an_approval_as_given_and_never_back_to_pending(queue: ApprovalQueue, client: redis.Redis) -> None:
    """`index` is how the journal's approvals reach Redis (a rebuild, a decision taken while Redis was down)."""
    made = Approval.new("run-ix", task="t", answer="a", reasons=["r"], evidence={"k": 1})
    assert queue.index(made) and queue.get(made.id) == made and queue.for_run("run-ix") == made
    assert not queue.index(made)  # already there: unchanged
    decided = made.decide(approve=False, by="ada", note=None)
    assert queue.index(decided) and queue.get(made.id) == decided and decided.note == NO_REASON
    assert queue.list() == [] and queue.list("rejected") == [decided]
    assert 29 * 86400 < client.ttl(queue.approval_key(made.id)) <= 30 * 86400
    assert not queue.index(made) and queue.get(made.id).status == "rejected"  # never resurrected
    assert queue.wait(made.id, timeout_s=5).status == "rejected"
    assert [fields["event"] for _, fields in client.xrange(queue.events_key)] == ["requested", "decided"]
    old = Approval.new("run-old", task="t", answer="a", reasons=[], evidence={}).decide(
        approve=True, by="bo", note=None, decided=time.time() - 31 * 86400
    )
    assert not queue.index(old) and queue.list("approved") == []  # past the TTL: left out of the index
