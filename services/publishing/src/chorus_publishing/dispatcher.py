"""The scheduler role: a Postgres due-queue (design.md §4) — no in-memory timers.

Each tick claims, with FOR UPDATE SKIP LOCKED (safe with many replicas):
1. scheduled posts whose time has come → one publish command per target;
2. targets whose retry is due → the next attempt;
3. targets dispatched without a result by their deadline → send again (the connector's
   ledger and read-back make that safe) or fail loudly once attempts are spent.
Commands go out through the outbox in the same transaction that marks the claim.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from chorus_contracts.events.publishing import TargetStatus
from chorus_publishing import domain, events
from chorus_publishing.repository import DueQueue, record, save
from chorus_runtime import metrics
from chorus_runtime.db.database import Database

log = logging.getLogger("chorus.publishing.dispatcher")


class Dispatcher:
    def __init__(
        self, db: Database, *, deadline: timedelta, batch_size: int = 200, interval: float = 0.25
    ) -> None:
        self.db = db
        self.deadline = deadline
        self.batch_size = batch_size
        self.interval = interval

    async def run(self) -> None:
        while True:
            busy = await self.tick()
            if not busy:
                await asyncio.sleep(self.interval)

    async def tick(self, now: datetime | None = None) -> int:
        """One pass; returns how many posts it moved (0 = idle)."""
        moved = 0
        moved += await self._due_posts(now)
        moved += await self._retries(now)
        moved += await self._overdue(now)
        return moved

    async def _due_posts(self, now: datetime | None) -> int:
        async with self.db.unit_of_work(system=True) as uow:
            claimed_at = now or datetime.now(UTC)
            posts = await DueQueue(uow).claim_due_posts(claimed_at, self.batch_size)
            for post in posts:
                assert post.scheduled_at is not None
                metrics.SCHEDULER_LAG.labels("publishing").observe(
                    max(0.0, (claimed_at - post.scheduled_at).total_seconds())
                )
                after, commands = domain.dispatch(post, now=claimed_at, deadline=self.deadline)
                await save(uow.session, after)
                await record(uow.session, after, "dispatched", previous=post.status, actor_id=None)
                await events.changes(uow.session, post, after, actor=None, now=claimed_at)
                await events.commands(uow.session, after, commands)
            await uow.commit()
        return len(posts)

    async def _retries(self, now: datetime | None) -> int:
        async with self.db.unit_of_work(system=True) as uow:
            at = now or datetime.now(UTC)
            posts = await DueQueue(uow).claim_retries(at, self.batch_size)
            for post in posts:
                due = [
                    t.id
                    for t in post.targets
                    if t.status is TargetStatus.RETRYING
                    and t.next_attempt_at
                    and t.next_attempt_at <= at
                ]
                after, commands = domain.dispatch(post, now=at, deadline=self.deadline, targets=due)
                await save(uow.session, after)
                await events.changes(uow.session, post, after, actor=None, now=at)
                await events.commands(uow.session, after, commands)
            await uow.commit()
        return len(posts)

    async def _overdue(self, now: datetime | None) -> int:
        async with self.db.unit_of_work(system=True) as uow:
            at = now or datetime.now(UTC)
            posts = await DueQueue(uow).claim_overdue(at, self.batch_size)
            for post in posts:
                after, commands = post, []
                for t in post.targets:
                    if (
                        t.status is TargetStatus.DISPATCHED
                        and t.deadline_at
                        and t.deadline_at <= at
                    ):
                        log.warning(
                            "no result by the deadline",
                            extra={
                                "fields": {
                                    "postId": post.id,
                                    "targetId": t.id,
                                    "attempts": t.attempts,
                                }
                            },
                        )
                        after, more = domain.redispatch_overdue(
                            after, after.target(t.id), now=at, deadline=self.deadline
                        )
                        commands += more
                await save(uow.session, after)
                if after.status is not post.status:
                    await record(
                        uow.session, after, "finished", previous=post.status, actor_id=None
                    )
                await events.changes(uow.session, post, after, actor=None, now=at)
                await events.commands(uow.session, after, commands)
            await uow.commit()
        return len(posts)
