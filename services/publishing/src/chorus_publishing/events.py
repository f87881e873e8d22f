"""Every change of a post becomes an event on `publishing.posts` (key = post id), written in
the same transaction as the change (outbox). The `*_emissions` builders are pure, so the
scheduler can stage a whole batch's events with one `emit_many`."""

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
from chorus_runtime.outbox import Emission, emit, emit_many

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


def _post_emission(post: Post, data: EventData) -> Emission:
    return Emission(
        data, topic="publishing.posts", key=post.id, source=SOURCE, tenant_id=post.workspace_id
    )


def change_emissions(
    before: Post, after: Post, *, actor: str | None, now: datetime
) -> list[Emission]:
    """A status event for the post and for each target whose status moved."""
    out: list[Emission] = []
    if before.status is not after.status:
        out.append(
            _post_emission(
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
        )
    old = {t.id: t for t in before.targets}
    for t in after.targets:
        prev = old.get(t.id)
        if prev is None or prev.status is t.status:
            continue
        out.append(
            _post_emission(
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
        )
    return out


def command_emission(post: Post, command: PublishRequested | DeleteRequested) -> Emission:
    # Keyed by account: one account's calls stay ordered and share its rate budget.
    return Emission(
        command,
        topic="connector.commands",
        key=str(command.account_id),
        subject=str(command.target_id),
        source=SOURCE,
        tenant_id=post.workspace_id,
    )


async def changes(
    session: AsyncSession, before: Post, after: Post, *, actor: str | None, now: datetime
) -> None:
    """A status event for the post and for each target whose status moved."""
    await emit_many(session, change_emissions(before, after, actor=actor, now=now))


async def commands(session: AsyncSession, post: Post, items: list[PublishRequested]) -> None:
    await emit_many(session, [command_emission(post, c) for c in items])


async def emit_command(
    session: AsyncSession, post: Post, command: PublishRequested | DeleteRequested
) -> None:
    e = command_emission(post, command)
    await emit(
        session,
        e.data,
        topic=e.topic,
        key=e.key,
        subject=e.subject,
        source=e.source,
        tenant_id=e.tenant_id,
    )


def _uuid(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None  # API-key principals have no user id
