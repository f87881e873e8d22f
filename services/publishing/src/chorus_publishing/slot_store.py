"""Persistence of posting slots, and the instants the queue must not reuse (tenant-scoped)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, insert, select

from chorus_contracts.events.publishing import PostStatus
from chorus_publishing.slots import Slot
from chorus_publishing.tables import post_targets, posting_slots, posts
from chorus_runtime.db.repository import TenantRepository

OCCUPYING = (PostStatus.SCHEDULED.value, PostStatus.PENDING_APPROVAL.value)


class SlotStore(TenantRepository):
    async def all(self) -> list[Slot]:
        rows = await self.session.execute(
            self.select(
                posting_slots,
                posting_slots.c.account_id,
                posting_slots.c.weekday,
                posting_slots.c.local_time,
            )
        )
        return sorted(Slot(r.account_id, r.weekday, r.local_time) for r in rows)

    async def replace(self, slots: Sequence[Slot]) -> None:
        await self.session.execute(self.delete(posting_slots))
        if slots:
            await self.session.execute(
                insert(posting_slots),
                [
                    self.values(account_id=s.account_id, weekday=s.weekday, local_time=s.time)
                    for s in slots
                ],
            )

    async def lock_queue(self) -> None:
        """Serialise queueing within a workspace so two posts never take the same slot."""
        await self.session.execute(
            select(
                func.pg_advisory_xact_lock(func.hashtext("publishing.queue:" + self.workspace_id))
            )
        )

    async def taken(
        self, account_ids: Sequence[str], *, after: datetime, until: datetime, exclude: str
    ) -> set[datetime]:
        """Instants at which a scheduled or pending post of these accounts goes out."""
        rows = await self.session.execute(
            select(posts.c.scheduled_at)
            .distinct()
            .join(post_targets, post_targets.c.post_id == posts.c.id)
            .where(
                posts.c.workspace_id == self.workspace_id,
                post_targets.c.workspace_id == self.workspace_id,
                post_targets.c.account_id.in_(list(account_ids)),
                posts.c.status.in_(OCCUPYING),
                posts.c.scheduled_at > after,
                posts.c.scheduled_at <= until,
                posts.c.id != exclude,
            )
        )
        return {r.scheduled_at for r in rows}
