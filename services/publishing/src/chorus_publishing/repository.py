"""Post persistence. Request code uses `PostRepository` (tenant-scoped, RLS behind it); the
scheduler uses `DueQueue` (cross-tenant claims with FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from chorus_contracts.events.common import Platform
from chorus_contracts.events.publishing import PostStatus, TargetStatus
from chorus_publishing.domain import Content, Post, Target
from chorus_publishing.tables import accounts, post_history, post_targets, posts, workspace_settings
from chorus_runtime.db.database import UnitOfWork
from chorus_runtime.db.repository import TenantRepository


def _post_values(post: Post) -> dict[str, Any]:
    c = post.content
    return {
        "status": post.status.value,
        "status_reason": post.status_reason,
        "text": c.text,
        "title": c.title,
        "link": c.link,
        "first_comment": c.first_comment,
        "hashtags": list(c.hashtags),
        "mentions": list(c.mentions),
        "media_ids": list(c.media_ids),
        "options": dict(c.options),
        "campaign": post.campaign,
        "tags": list(post.tags),
        "scheduled_at": post.scheduled_at,
        "timezone": post.timezone,
    }


def _target_values(t: Target) -> dict[str, Any]:
    return {
        "status": t.status.value,
        "attempts": t.attempts,
        "custom_content": t.custom,
        "platform_post_id": t.platform_post_id,
        "url": t.url,
        "last_error": t.last_error,
        "last_error_code": t.last_error_code,
        "next_attempt_at": t.next_attempt_at,
        "deadline_at": t.deadline_at,
        "published_at": t.published_at,
    }


def _to_post(row: Any, trows: Sequence[Any]) -> Post:
    return Post(
        id=row["id"],
        workspace_id=row["workspace_id"],
        author_id=row["author_id"],
        author_role=row["author_role"],
        status=PostStatus(row["status"]),
        status_reason=row["status_reason"],
        content=Content(
            text=row["text"],
            title=row["title"],
            link=row["link"],
            first_comment=row["first_comment"],
            hashtags=tuple(row["hashtags"]),
            mentions=tuple(row["mentions"]),
            media_ids=tuple(str(m) for m in row["media_ids"]),
            options=dict(row["options"] or {}),
        ),
        scheduled_at=row["scheduled_at"],
        timezone=row["timezone"],
        campaign=row["campaign"],
        tags=tuple(row["tags"]),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        targets=tuple(
            Target(
                id=t["id"],
                platform=Platform(t["platform"]),
                account_id=t["account_id"],
                status=TargetStatus(t["status"]),
                attempts=t["attempts"],
                custom=t["custom_content"],
                platform_post_id=t["platform_post_id"],
                url=t["url"],
                last_error=t["last_error"],
                last_error_code=t["last_error_code"],
                next_attempt_at=t["next_attempt_at"],
                deadline_at=t["deadline_at"],
                published_at=t["published_at"],
            )
            for t in trows
        ),
    )


async def _load(session: AsyncSession, where: Any, *, for_update: bool = False) -> list[Post]:
    q = select(posts).where(where)
    if for_update:
        q = q.with_for_update(of=posts)
    rows = (await session.execute(q)).mappings().all()
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    trows = (
        (
            await session.execute(
                select(post_targets)
                .where(post_targets.c.post_id.in_(ids))
                .order_by(
                    post_targets.c.post_id, post_targets.c.platform, post_targets.c.account_id
                )
            )
        )
        .mappings()
        .all()
    )
    by_post: dict[str, list[Any]] = {}
    for t in trows:
        by_post.setdefault(t["post_id"], []).append(t)
    order = {pid: i for i, pid in enumerate(ids)}
    return sorted((_to_post(r, by_post.get(r["id"], [])) for r in rows), key=lambda p: order[p.id])


async def save(session: AsyncSession, post: Post) -> None:
    """Write a post's status, content and targets (bumps the version)."""
    await session.execute(
        update(posts)
        .where(posts.c.id == post.id, posts.c.workspace_id == post.workspace_id)
        .values(**_post_values(post), version=posts.c.version + 1, updated_at=func.now())
    )
    for t in post.targets:
        await session.execute(
            update(post_targets)
            .where(post_targets.c.id == t.id, post_targets.c.workspace_id == post.workspace_id)
            .values(**_target_values(t))
        )


async def record(
    session: AsyncSession,
    post: Post,
    action: str,
    *,
    previous: PostStatus | None,
    actor_id: str | None,
    comment: str | None = None,
    step: str | None = None,
) -> None:
    await session.execute(
        insert(post_history).values(
            post_id=post.id,
            workspace_id=post.workspace_id,
            action=action,
            from_status=previous.value if previous else None,
            to_status=post.status.value,
            actor_id=actor_id,
            comment=comment,
            step=step,
        )
    )


@dataclass(frozen=True)
class Page:
    items: list[Post]
    next_cursor: str | None


def encode_cursor(post: Post) -> str:
    key = [
        post.scheduled_at.isoformat() if post.scheduled_at else None,
        post.created_at.isoformat() if post.created_at else None,
        post.id,
    ]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, datetime, str]:
    """The keyset a cursor names; ValueError/TypeError when it is not one of ours."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    sched, created, post_id = json.loads(raw)
    at = datetime.fromisoformat(sched) if sched else None
    created_at = datetime.fromisoformat(created)
    if created_at.tzinfo is None or (at is not None and at.tzinfo is None):
        raise ValueError("cursor times must carry an offset")
    # A non-UUID id would reach the database and fail there (a 500, not a 422).
    return at, created_at, str(uuid.UUID(str(post_id)))


class PostRepository(TenantRepository):
    async def add(self, post: Post) -> None:
        await self.session.execute(
            insert(posts).values(
                id=post.id,
                workspace_id=self.workspace_id,
                author_id=post.author_id,
                author_role=post.author_role,
                **_post_values(post),
            )
        )
        if post.targets:
            await self.session.execute(
                insert(post_targets),
                [
                    {
                        "id": t.id,
                        "post_id": post.id,
                        "workspace_id": self.workspace_id,
                        "platform": t.platform.value,
                        "account_id": t.account_id,
                        **_target_values(t),
                    }
                    for t in post.targets
                ],
            )

    async def save(self, post: Post) -> None:
        await save(self.session, post)

    async def record(
        self,
        post: Post,
        action: str,
        *,
        previous: PostStatus | None,
        actor_id: str | None,
        comment: str | None = None,
        step: str | None = None,
    ) -> None:
        await record(
            self.session,
            post,
            action,
            previous=previous,
            actor_id=actor_id,
            comment=comment,
            step=step,
        )

    async def get(self, post_id: str, *, for_update: bool = False) -> Post | None:
        found = await _load(
            self.session,
            and_(posts.c.id == post_id, posts.c.workspace_id == self.workspace_id),
            for_update=for_update,
        )
        return found[0] if found else None

    async def replace_targets(self, post: Post) -> None:
        await self.session.execute(
            self.delete(post_targets).where(post_targets.c.post_id == post.id)
        )
        if post.targets:
            await self.session.execute(
                insert(post_targets),
                [
                    {
                        "id": t.id,
                        "post_id": post.id,
                        "workspace_id": self.workspace_id,
                        "platform": t.platform.value,
                        "account_id": t.account_id,
                        **_target_values(t),
                    }
                    for t in post.targets
                ],
            )

    async def remove(self, post_id: str) -> None:
        await self.session.execute(self.delete(posts).where(posts.c.id == post_id))

    async def page(
        self,
        *,
        status: str | None = None,
        platform: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        campaign: str | None = None,
        tag: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        """The calendar: ordered by scheduled time (drafts last), then creation, then id."""
        conds = [posts.c.workspace_id == self.workspace_id]
        if status:
            conds.append(posts.c.status == status)
        if campaign:
            conds.append(posts.c.campaign == campaign)
        if tag:
            conds.append(posts.c.tags.contains([tag]))  # tags @> ARRAY[tag]
        if start:
            conds.append(posts.c.scheduled_at >= start)
        if end:
            conds.append(posts.c.scheduled_at < end)
        if platform:
            conds.append(
                posts.c.id.in_(
                    select(post_targets.c.post_id).where(
                        post_targets.c.workspace_id == self.workspace_id,
                        post_targets.c.platform == platform,
                    )
                )
            )
        sched = func.coalesce(posts.c.scheduled_at, func.to_timestamp(253402300799))
        if cursor:
            c_sched, c_created, c_id = decode_cursor(cursor)
            # The drafts' key as an aware UTC instant: a naive local conversion overflows
            # into year 10000 on servers east of UTC.
            c_s = c_sched or datetime.fromtimestamp(253402300799, tz=UTC)
            conds.append(
                or_(
                    sched > c_s,
                    and_(sched == c_s, posts.c.created_at > c_created),
                    and_(sched == c_s, posts.c.created_at == c_created, posts.c.id > c_id),
                )
            )
        ids = (
            (
                await self.session.execute(
                    select(posts.c.id)
                    .where(and_(*conds))
                    .order_by(sched, posts.c.created_at, posts.c.id)
                    .limit(limit + 1)
                )
            )
            .scalars()
            .all()
        )
        items = await _load(self.session, posts.c.id.in_(ids[:limit])) if ids else []
        order = {pid: i for i, pid in enumerate(ids)}
        items.sort(key=lambda p: order[p.id])
        more = len(ids) > limit
        return Page(items, encode_cursor(items[-1]) if more and items else None)

    async def history(self, post_id: str) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            self.select(post_history)
            .where(post_history.c.post_id == post_id)
            .order_by(post_history.c.id)
        )
        return [dict(r) for r in rows.mappings()]

    async def settings(self) -> dict[str, Any]:
        row = (await self.session.execute(self.select(workspace_settings))).mappings().first()
        return dict(row) if row else {"timezone": "UTC", "approval_required_for": []}


class DueQueue:
    """The scheduler's view across tenants (explicit system unit of work)."""

    def __init__(self, uow: UnitOfWork) -> None:
        if not uow.system:
            raise ValueError("the due queue is read in a system unit of work")
        self.session = uow.session

    async def claim_due_posts(self, now: datetime, limit: int) -> list[Post]:
        ids = (
            (
                await self.session.execute(
                    select(posts.c.id)
                    .where(
                        posts.c.status == PostStatus.SCHEDULED.value, posts.c.scheduled_at <= now
                    )
                    .order_by(posts.c.scheduled_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        return await _load(self.session, posts.c.id.in_(ids)) if ids else []

    async def claim_posts_with_targets(self, where: Any, now: datetime, limit: int) -> list[Post]:
        post_ids = (
            (
                await self.session.execute(
                    select(posts.c.id)
                    .where(
                        posts.c.status == PostStatus.PUBLISHING.value,
                        posts.c.id.in_(select(post_targets.c.post_id).where(where)),
                    )
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        return await _load(self.session, posts.c.id.in_(post_ids)) if post_ids else []

    async def claim_retries(self, now: datetime, limit: int) -> list[Post]:
        return await self.claim_posts_with_targets(
            and_(
                post_targets.c.status == TargetStatus.RETRYING.value,
                post_targets.c.next_attempt_at <= now,
            ),
            now,
            limit,
        )

    async def claim_overdue(self, now: datetime, limit: int) -> list[Post]:
        return await self.claim_posts_with_targets(
            and_(
                post_targets.c.status == TargetStatus.DISPATCHED.value,
                post_targets.c.deadline_at <= now,
            ),
            now,
            limit,
        )


async def lock_post(session: AsyncSession, post_id: str) -> Post | None:
    """A post under its row lock (RLS still applies to the session's tenant)."""
    found = await _load(session, posts.c.id == post_id, for_update=True)
    return found[0] if found else None


async def set_account_status(session: AsyncSession, account_id: str, status: str) -> None:
    await session.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(status=status, updated_at=func.now())
    )


async def upsert_account(session: AsyncSession, **values: Any) -> None:
    stmt = pg_insert(accounts).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[accounts.c.id],
            set_={k: stmt.excluded[k] for k in values if k != "id"} | {"updated_at": func.now()},
        )
    )


async def upsert_settings(session: AsyncSession, **values: Any) -> None:
    stmt = pg_insert(workspace_settings).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[workspace_settings.c.workspace_id],
            set_={k: stmt.excluded[k] for k in values if k != "workspace_id"}
            | {"updated_at": func.now()},
        )
    )
