"""The queue's SQL on both databases, with a manual clock: nothing here waits for time."""

from __future__ import annotations

import pytest

from conveyor.core.clock import ManualClock
from conveyor.core.db import Database
from conveyor.queue import LostTask, NewTask, QueueRepository

STALE = 30.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def repo(db: Database, clock: ManualClock) -> QueueRepository:
    return QueueRepository(db.dialect, clock, default_max_attempts=3)


async def _register(db: Database, repo: QueueRepository, *workers: str) -> None:
    async with db.write() as conn:
        for worker in workers:
            await repo.register_worker(conn, worker, name=worker, concurrency=10)


async def test_claims_by_priority_then_age_and_respects_limit(
    db: Database, repo: QueueRepository
) -> None:
    await _register(db, repo, "w1")
    async with db.write() as conn:
        await repo.enqueue(
            conn,
            [
                NewTask("h", {"n": 1}),
                NewTask("h", {"n": 2}, priority=5),
                NewTask("h", {"n": 3}),
                NewTask("h", {"n": 4}, priority=5),
            ],
        )
    async with db.write() as conn:
        first = await repo.claim(conn, "w1", 3, stale_after=STALE)
    assert [t.payload["n"] for t in first] == [2, 4, 1]
    assert all(t.claims == 1 and t.worker_id == "w1" for t in first)
    async with db.write() as conn:
        rest = await repo.claim(conn, "w1", 10, stale_after=STALE)
    assert [t.payload["n"] for t in rest] == [3]


async def test_delayed_task_is_not_due_until_its_time(
    db: Database, repo: QueueRepository, clock: ManualClock
) -> None:
    await _register(db, repo, "w1")
    async with db.write() as conn:
        await repo.enqueue(conn, [NewTask("h", {}, delay=10)])
    async with db.write() as conn:
        assert await repo.claim(conn, "w1", 5, stale_after=STALE) == []
    clock.advance(10.5)
    async with db.write() as conn:
        assert len(await repo.claim(conn, "w1", 5, stale_after=STALE)) == 1


async def test_rolled_back_enqueue_leaves_nothing(db: Database, repo: QueueRepository) -> None:
    await _register(db, repo, "w1")
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await repo.enqueue(conn, [NewTask("h", {})])
            raise RuntimeError("the request failed after enqueueing")
    async with db.read() as conn:
        assert (await repo.counts(conn))["queued"] == 0


async def test_task_of_a_silent_worker_is_reclaimed_and_the_old_owner_is_fenced_off(
    db: Database, repo: QueueRepository, clock: ManualClock
) -> None:
    await _register(db, repo, "dead")
    async with db.write() as conn:
        await repo.enqueue(conn, [NewTask("h", {"x": 1})])
    async with db.write() as conn:
        [held] = await repo.claim(conn, "dead", 1, stale_after=STALE)

    clock.advance(STALE + 1)
    await _register(db, repo, "alive")
    async with db.write() as conn:
        [taken] = await repo.claim(conn, "alive", 1, stale_after=STALE)
    assert taken.id == held.id
    assert taken.claims == 2
    assert taken.attempts == 1  # dying mid-task counts as an attempt

    with pytest.raises(LostTask):
        async with db.write() as conn:
            await repo.complete(conn, held)
    async with db.write() as conn:
        await repo.complete(conn, taken)
    async with db.read() as conn:
        assert sum((await repo.counts(conn)).values()) == 0


async def test_heartbeat_keeps_tasks_owned(
    db: Database, repo: QueueRepository, clock: ManualClock
) -> None:
    await _register(db, repo, "w1", "w2")
    async with db.write() as conn:
        await repo.enqueue(conn, [NewTask("h", {})])
    async with db.write() as conn:
        await repo.claim(conn, "w1", 1, stale_after=STALE)
    clock.advance(STALE - 1)
    async with db.write() as conn:
        assert await repo.heartbeat(conn, "w1", in_flight=1)
        assert await repo.heartbeat(conn, "w2", in_flight=0)
    clock.advance(STALE - 1)
    async with db.write() as conn:
        assert await repo.claim(conn, "w2", 1, stale_after=STALE) == []


async def test_retry_backs_off_and_bury_keeps_the_error(
    db: Database, repo: QueueRepository, clock: ManualClock
) -> None:
    await _register(db, repo, "w1")
    async with db.write() as conn:
        await repo.enqueue(conn, [NewTask("h", {})])
    async with db.write() as conn:
        [task] = await repo.claim(conn, "w1", 1, stale_after=STALE)
        await repo.retry(conn, task, delay=20, error="provider timed out")
    clock.advance(10)
    async with db.write() as conn:
        assert await repo.claim(conn, "w1", 1, stale_after=STALE) == []
    clock.advance(11)
    async with db.write() as conn:
        [again] = await repo.claim(conn, "w1", 1, stale_after=STALE)
        assert again.attempts == 1
        assert again.last_error == "provider timed out"
        await repo.bury(conn, again, error="gave up")
    async with db.read() as conn:
        [dead] = await repo.list_tasks(conn, status="dead")
    assert dead.attempts == 2
    assert dead.last_error == "gave up"

    async with db.write() as conn:
        assert await repo.requeue(conn, dead.id)
        assert not await repo.requeue(conn, dead.id)  # only dead tasks can be requeued
    async with db.write() as conn:
        [rerun] = await repo.claim(conn, "w1", 1, stale_after=STALE)
    assert rerun.attempts == 0


async def test_release_does_not_count_an_attempt(db: Database, repo: QueueRepository) -> None:
    await _register(db, repo, "w1")
    async with db.write() as conn:
        await repo.enqueue(conn, [NewTask("h", {})])
    async with db.write() as conn:
        [task] = await repo.claim(conn, "w1", 1, stale_after=STALE)
        await repo.release(conn, task)
    async with db.write() as conn:
        [again] = await repo.claim(conn, "w1", 1, stale_after=STALE)
    assert again.attempts == 0
    assert again.claims == 2


async def test_sweep_requeues_work_of_silent_workers_and_forgets_them(
    db: Database, repo: QueueRepository, clock: ManualClock
) -> None:
    await _register(db, repo, "gone")
    async with db.write() as conn:
        await repo.enqueue(conn, [NewTask("h", {}), NewTask("h", {})])
    async with db.write() as conn:
        await repo.claim(conn, "gone", 2, stale_after=STALE)
    clock.advance(STALE + 1)
    await _register(db, repo, "sweeper")
    async with db.write() as conn:
        assert await repo.sweep(conn, stale_after=STALE, sweeper="sweeper") == 2
        assert await repo.live_workers(conn, stale_after=STALE) == 1
    async with db.read() as conn:
        assert (await repo.counts(conn))["queued"] == 2


async def test_lease_is_exclusive_until_it_expires(
    db: Database, repo: QueueRepository, clock: ManualClock
) -> None:
    async with db.write() as conn:
        assert await repo.try_lease(conn, "sweeper", "a", ttl=30)
        assert not await repo.try_lease(conn, "sweeper", "b", ttl=30)
        assert await repo.try_lease(conn, "sweeper", "a", ttl=30)  # holder extends
    clock.advance(31)
    async with db.write() as conn:
        assert await repo.try_lease(conn, "sweeper", "b", ttl=30)
        assert not await repo.try_lease(conn, "sweeper", "a", ttl=30)


async def test_cancel_group_drops_only_queued_tasks_of_that_group(
    db: Database, repo: QueueRepository
) -> None:
    await _register(db, repo, "w1")
    async with db.write() as conn:
        await repo.enqueue(
            conn,
            [
                NewTask("h", {"n": 1}, group_key="job-1", priority=1),
                NewTask("h", {"n": 2}, group_key="job-1"),
            ],
        )
        await repo.enqueue(conn, [NewTask("h", {"n": 3}, group_key="job-2")])
    async with db.write() as conn:
        [running] = await repo.claim(conn, "w1", 1, stale_after=STALE)
        assert running.payload["n"] == 1
        assert await repo.cancel_group(conn, "job-1") == 1
    async with db.read() as conn:
        counts = await repo.counts(conn)
    assert counts["queued"] == 1
    assert counts["running"] == 1
