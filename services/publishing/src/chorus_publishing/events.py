"""Every change of a post becomes an event on `publishing.posts` (key = post id), written in
the same transaction as the change (outbox)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from chorus_contracts.catalog import EventData
from chorus_contracts.events.connector import DeleteRequested, PublishRequested
from chorus_contracts.events.publishing import (
    PostCreated,
    PostDeleted,
    PostStatusChanged,
    PostUpdated,
    TargetRef,
    TargetStatusChanged,
)
from chorus_publishing.domain import Post
from chorus_runtime.outbox import emit

SOURCE = "/chorus/publishing"


async def _post_event(session: AsyncSession, post: Post, data: EventData) -> None:
    await emit(
        session,
        data,
        topic="publishing.posts",
        key=post.id,
        source=SOURCE,
        tenant_id=post.workspace_id,
    )


def _snapshot(post: Post) -> dict[str, object]:
    return dict(
        post_id=UUID(post.id),
        workspace_id=UUID(post.workspace_id),
        author_id=UUID(post.author_id) if post.author_id else None,
        status=post.status,
        text=post.content.text,
        hashtags=list(post.content.hashtags),
        media_ids=[UUID(m) for m in post.content.media_ids],
        targets=[
            TargetRef(target_id=UUID(t.id), platform=t.platform, account_id=UUID(t.account_id))
            for t in post.targets
        ],
        scheduled_at=post.scheduled_at,
        timezone=post.timezone,
        campaign=post.campaign,
        tags=list(post.tags),
    )


async def created(session: AsyncSession, post: Post, now: datetime) -> None:
    await _post_event(session, post, PostCreated(**_snapshot(post), created_at=now))


async def updated(session: AsyncSession, post: Post, now: datetime) -> None:
    await _post_event(session, post, PostUpdated(**_snapshot(post), updated_at=now))


async def deleted(
    session: AsyncSession, post: Post, *, actor: str | None, from_platforms: bool, now: datetime
) -> None:
    await _post_event(
        session,
        post,
        PostDeleted(
            post_id=UUID(post.id),
            workspace_id=UUID(post.workspace_id),
            deleted_by=_uuid(actor),
            from_platforms=from_platforms,
            deleted_at=now,
        ),
    )


async def changes(
    session: AsyncSession, before: Post, after: Post, *, actor: str | None, now: datetime
) -> None:
    """A status event for the post and for each target whose status moved."""
    if before.status is not after.status:
        await _post_event(
            session,
            after,
            PostStatusChanged(
                post_id=UUID(after.id),
                workspace_id=UUID(after.workspace_id),
                previous_status=before.status,
                status=after.status,
                reason=after.status_reason,
                actor_id=_uuid(actor),
                scheduled_at=after.scheduled_at,
                changed_at=now,
            ),
        )
    old = {t.id: t for t in before.targets}
    for t in after.targets:
        prev = old.get(t.id)
        if prev is None or prev.status is t.status:
            continue
        await _post_event(
            session,
            after,
            TargetStatusChanged(
                post_id=UUID(after.id),
                workspace_id=UUID(after.workspace_id),
                target_id=UUID(t.id),
                platform=t.platform,
                account_id=UUID(t.account_id),
                previous_status=prev.status,
                status=t.status,
                attempts=t.attempts,
                platform_post_id=t.platform_post_id,
                url=t.url,
                error_code=t.last_error_code,
                error_message=t.last_error,
                changed_at=now,
            ),
        )


async def commands(session: AsyncSession, post: Post, items: list[PublishRequested]) -> None:
    for command in items:
        await emit_command(session, post, command)


async def emit_command(
    session: AsyncSession, post: Post, command: PublishRequested | DeleteRequested
) -> None:
    # Keyed by account: one account's calls stay ordered and share its rate budget.
    await emit(
        session,
        command,
        topic="connector.commands",
        key=str(command.account_id),
        subject=str(command.target_id),
        source=SOURCE,
        tenant_id=post.workspace_id,
    )


def _uuid(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None  # API-key principals have no user id
