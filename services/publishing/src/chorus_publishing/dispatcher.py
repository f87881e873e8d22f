"""The scheduler role: a Postgres due-queue (design.md §4) — no in-memory timers.

Each tick claims, with FOR UPDATE SKIP LOCKED (safe with many replicas), a batch of:
1. scheduled posts whose time has come → one publish command per target;
2. targets whose retry is due → the next attempt;
3. targets dispatched without a result by their deadline → send again (the connector's
   ledger and read-back make that safe) or fail loudly once attempts are spent.
A batch is one transaction: the pure domain functions decide each post, then the whole
batch is written with one statement per table (posts, targets, history, outbox) and
commands go out through the outbox when it commits — a crash before that leaves every
post of the batch due, for this or another replica to claim again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from chorus_contracts.events.connector import MediaRef, PublishRequested
from chorus_contracts.events.publishing import PostStatus, TargetStatus
from chorus_publishing import domain, events
from chorus_publishing.batch_writes import HistoryEntry, record_many, save_states
from chorus_publishing.post_media import MediaLinks
from chorus_publishing.repository import DueQueue
from chorus_runtime import metrics
from chorus_runtime.db.database import Database
from chorus_runtime.failpoints import failpoint
from chorus_runtime.outbox import Emission, emit_many

log = logging.getLogger("chorus.publishing.dispatcher")

Media = dict[str, MediaRef]


@dataclass(frozen=True)
class Step:
    """What the scheduler does to one claimed post, decided before anything is written."""

    before: domain.Post
    after: domain.Post
    commands: list[PublishRequested] = field(default_factory=list)
    history: str | None = None  # the post_history action, when the post's status moved
    emissions: list[Emission] = field(default_factory=list)  # its events, in order


@dataclass(frozen=True)
class Pass:
    claimed: int
    moved: int


class Dispatcher:
    def __init__(
        self,
        db: Database,
        *,
        deadline: timedelta,
        batch_size: int = 200,
        interval: float = 0.25,
        media: MediaLinks | None = None,
    ) -> None:
        self.db = db
        self.media = media  # media refs (fresh signed URLs) for every command sent
        self.deadline = deadline
        self.batch_size = batch_size
        self.interval = interval

    async def run(self) -> None:
        while True:
            passes = await self._passes(None)
            # A full batch means more is probably due already: go again at once. Otherwise
            # the idle tick is the due-time resolution.
            if not any(p.claimed >= self.batch_size for p in passes):
                await asyncio.sleep(self.interval)

    async def tick(self, now: datetime | None = None) -> int:
        """One pass; returns how many posts it moved (0 = idle)."""
        return sum(p.moved for p in await self._passes(now))

    async def _passes(self, now: datetime | None) -> list[Pass]:
        return [
            await self._due_posts(now),
            await self._retries(now),
            await self._overdue(now),
        ]

    async def _media(self, session: AsyncSession, posts: Sequence[domain.Post]) -> dict[str, Media]:
        if self.media is None or not posts:
            return {}
        return await self.media.refs_many(session, posts)

    async def _due_posts(self, now: datetime | None) -> Pass:
        async with self.db.unit_of_work(system=True) as uow:
            claimed_at = now or datetime.now(UTC)
            posts = await DueQueue(uow).claim_due_posts(claimed_at, self.batch_size)
            lag = metrics.SCHEDULER_LAG.labels("publishing")
            for post in posts:
                assert post.scheduled_at is not None
                lag.observe(max(0.0, (claimed_at - post.scheduled_at).total_seconds()))
            media = await self._media(uow.session, posts)

            def step(post: domain.Post) -> Step:
                after, commands = domain.dispatch(
                    post, now=claimed_at, deadline=self.deadline, media=media.get(post.id)
                )
                return Step(post, after, commands, history="dispatched")

            steps = decide(posts, step, now=claimed_at)
            await _write(uow.session, steps)
            if posts:
                # Crash-safety tests die here: claimed and staged, nothing committed.
                failpoint("publishing.dispatch.after_claim")
            await uow.commit()
        return Pass(len(posts), len(steps))

    async def _retries(self, now: datetime | None) -> Pass:
        async with self.db.unit_of_work(system=True) as uow:
            at = now or datetime.now(UTC)
            posts = await DueQueue(uow).claim_retries(at, self.batch_size)
            media = await self._media(uow.session, posts)

            def step(post: domain.Post) -> Step:
                due = [
                    t.id
                    for t in post.targets
                    if t.status is TargetStatus.RETRYING
                    and t.next_attempt_at
                    and t.next_attempt_at <= at
                ]
                after, commands = domain.dispatch(
                    post, now=at, deadline=self.deadline, targets=due, media=media.get(post.id)
                )
                return Step(post, after, commands)

            steps = decide(posts, step, now=at)
            await _write(uow.session, steps)
            await uow.commit()
        return Pass(len(posts), len(steps))

    async def _overdue(self, now: datetime | None) -> Pass:
        async with self.db.unit_of_work(system=True) as uow:
            at = now or datetime.now(UTC)
            posts = await DueQueue(uow).claim_overdue(at, self.batch_size)
            media = await self._media(uow.session, posts)

            def step(post: domain.Post) -> Step:
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
                            after,
                            after.target(t.id),
                            now=at,
                            deadline=self.deadline,
                            media=media.get(post.id),
                        )
                        commands += more
                finished = "finished" if after.status is not post.status else None
                return Step(post, after, commands, history=finished)

            steps = decide(posts, step, now=at)
            await _write(uow.session, steps)
            await uow.commit()
        return Pass(len(posts), len(steps))


# A post the scheduler cannot send is failed only from these; a finished one is left alone.
_FAILABLE = frozenset({PostStatus.SCHEDULED, PostStatus.PUBLISHING})


def decide(
    posts: Sequence[domain.Post], step: Callable[[domain.Post], Step], *, now: datetime
) -> list[Step]:
    """Each claimed post's step and events. A post the rules refuse fails with the reason
    (it would otherwise be claimed again on every tick, and enough of them would starve the
    queue), and never holds up the rest of its batch."""
    steps: list[Step] = []
    for post in posts:
        try:
            s = step(post)
            emissions = events.change_emissions(s.before, s.after, actor=None, now=now)
            emissions += [events.command_emission(s.after, c) for c in s.commands]
            steps.append(replace(s, emissions=emissions))
        except Exception as exc:
            log.exception(
                "claimed post not dispatched: failing it",
                extra={"fields": {"postId": post.id, "status": post.status.value}},
            )
            if post.status not in _FAILABLE:
                continue  # already finished: nothing to fail, nothing to send
            reason = f"not dispatchable: {getattr(exc, 'message', None) or type(exc).__name__}"
            failed = domain.refuse(post, reason=reason[:500])
            emissions = events.change_emissions(post, failed, actor=None, now=now)
            steps.append(Step(post, failed, history="failed", emissions=emissions))
    return steps


async def _write(session: AsyncSession, steps: Sequence[Step]) -> None:
    """The batch's writes, one statement per table. Events stay in per-post order (status
    changes, then commands), as the relay publishes them in outbox order."""
    await save_states(session, [s.after for s in steps])
    await record_many(
        session,
        [HistoryEntry(s.after, s.history, s.before.status) for s in steps if s.history],
    )
    await emit_many(session, [e for s in steps for e in s.emissions])
