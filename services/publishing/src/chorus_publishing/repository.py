"""Post persistence. Every query names the workspace; RLS is the second wall."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chorus_contracts.events.common import Platform
from chorus_contracts.events.publishing import PostStatus, TargetStatus
from chorus_publishing.domain import Post, Target
from chorus_publishing.tables import post_targets, posts


async def insert_post(session: AsyncSession, post: Post) -> None:
    await session.execute(
        posts.insert().values(
            id=post.id,
            workspace_id=post.workspace_id,
            author_id=post.author_id,
            status=post.status.value,
            text=post.text,
            hashtags=list(post.hashtags),
            scheduled_at=post.scheduled_at,
            timezone=post.timezone,
        )
    )
    if post.targets:
        await session.execute(
            post_targets.insert(),
            [
                {
                    "id": t.id,
                    "post_id": post.id,
                    "workspace_id": post.workspace_id,
                    "platform": t.platform.value,
                    "account_id": t.account_id,
                    "status": t.status.value,
                    "attempts": t.attempts,
                }
                for t in post.targets
            ],
        )


async def get_post(
    session: AsyncSession, workspace_id: str, post_id: str, *, for_update: bool = False
) -> Post | None:
    q = select(posts).where(posts.c.workspace_id == workspace_id, posts.c.id == post_id)
    if for_update:
        q = q.with_for_update()
    row = (await session.execute(q)).mappings().first()
    if row is None:
        return None
    trows = (
        await session.execute(
            select(post_targets)
            .where(post_targets.c.post_id == post_id, post_targets.c.workspace_id == workspace_id)
            .order_by(post_targets.c.platform, post_targets.c.account_id)
        )
    ).mappings()
    return Post(
        id=row["id"],
        workspace_id=row["workspace_id"],
        author_id=row["author_id"],
        status=PostStatus(row["status"]),
        text=row["text"],
        hashtags=tuple(row["hashtags"]),
        scheduled_at=row["scheduled_at"],
        timezone=row["timezone"],
        targets=tuple(
            Target(
                id=t["id"],
                platform=Platform(t["platform"]),
                account_id=t["account_id"],
                status=TargetStatus(t["status"]),
                attempts=t["attempts"],
            )
            for t in trows
        ),
    )


async def save_status(session: AsyncSession, post: Post) -> None:
    await session.execute(
        update(posts)
        .where(posts.c.id == post.id, posts.c.workspace_id == post.workspace_id)
        .values(status=post.status.value, updated_at=func.now())
    )
    for t in post.targets:
        await session.execute(
            update(post_targets)
            .where(post_targets.c.id == t.id, post_targets.c.workspace_id == post.workspace_id)
            .values(status=t.status.value, attempts=t.attempts)
        )
