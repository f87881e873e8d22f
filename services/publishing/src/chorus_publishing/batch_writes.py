"""Set-based writes for the scheduler's batches: one statement per table however many posts
the batch holds (a statement per post and target made the scheduler CPU-bound).

Only the delivery state is written (post status; target status, attempts, results and
timers): the scheduler never changes a post's content, so `repository.save` stays the one
writer of the rest. Every statement matches on id *and* workspace, like `save`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chorus_contracts.events.publishing import PostStatus
from chorus_publishing.domain import Post

# Fixed statement texts (prepared once per connection); unnest turns the arrays into rows.
_POSTS = text(
    "UPDATE posts AS p SET status = u.status, status_reason = u.status_reason, "
    "version = p.version + 1, updated_at = now() "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:workspaces AS uuid[]), "
    "CAST(:statuses AS text[]), CAST(:reasons AS text[])) "
    "AS u(id, workspace_id, status, status_reason) "
    "WHERE p.id = u.id AND p.workspace_id = u.workspace_id"
)

_TARGETS = text(
    "UPDATE post_targets AS t SET status = u.status, attempts = u.attempts, "
    "platform_post_id = u.platform_post_id, url = u.url, last_error = u.last_error, "
    "last_error_code = u.last_error_code, next_attempt_at = u.next_attempt_at, "
    "deadline_at = u.deadline_at, published_at = u.published_at "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:workspaces AS uuid[]), "
    "CAST(:statuses AS text[]), CAST(:attempts AS integer[]), "
    "CAST(:platform_post_ids AS text[]), CAST(:urls AS text[]), CAST(:errors AS text[]), "
    "CAST(:error_codes AS text[]), CAST(:next_attempts AS timestamptz[]), "
    "CAST(:deadlines AS timestamptz[]), CAST(:published AS timestamptz[])) "
    "AS u(id, workspace_id, status, attempts, platform_post_id, url, last_error, "
    "last_error_code, next_attempt_at, deadline_at, published_at) "
    "WHERE t.id = u.id AND t.workspace_id = u.workspace_id"
)

# WITH ORDINALITY: history ids follow the batch's order, as one insert per post did.
_HISTORY = text(
    "INSERT INTO post_history (post_id, workspace_id, action, from_status, to_status) "
    "SELECT u.post_id, u.workspace_id, u.action, u.from_status, u.to_status "
    "FROM unnest(CAST(:post_ids AS uuid[]), CAST(:workspaces AS uuid[]), "
    "CAST(:actions AS text[]), CAST(:froms AS text[]), CAST(:tos AS text[])) "
    "WITH ORDINALITY AS u(post_id, workspace_id, action, from_status, to_status, n) "
    "ORDER BY u.n"
)


async def save_states(session: AsyncSession, posts: Sequence[Post]) -> None:
    """`repository.save` for many posts, delivery state only (bumps each version)."""
    if not posts:
        return
    await session.execute(
        _POSTS,
        {
            "ids": [p.id for p in posts],
            "workspaces": [p.workspace_id for p in posts],
            "statuses": [p.status.value for p in posts],
            "reasons": [p.status_reason for p in posts],
        },
    )
    targets = [(p.workspace_id, t) for p in posts for t in p.targets]
    if not targets:
        return
    await session.execute(
        _TARGETS,
        {
            "ids": [t.id for _, t in targets],
            "workspaces": [w for w, _ in targets],
            "statuses": [t.status.value for _, t in targets],
            "attempts": [t.attempts for _, t in targets],
            "platform_post_ids": [t.platform_post_id for _, t in targets],
            "urls": [t.url for _, t in targets],
            "errors": [t.last_error for _, t in targets],
            "error_codes": [t.last_error_code for _, t in targets],
            "next_attempts": [t.next_attempt_at for _, t in targets],
            "deadlines": [t.deadline_at for _, t in targets],
            "published": [t.published_at for _, t in targets],
        },
    )


@dataclass(frozen=True)
class HistoryEntry:
    """A system actor's history row (the scheduler has no user id)."""

    post: Post
    action: str
    previous: PostStatus | None


async def record_many(session: AsyncSession, entries: Sequence[HistoryEntry]) -> None:
    """`repository.record` for many posts, in order, with one INSERT."""
    if not entries:
        return
    await session.execute(
        _HISTORY,
        {
            "post_ids": [e.post.id for e in entries],
            "workspaces": [e.post.workspace_id for e in entries],
            "actions": [e.action for e in entries],
            "froms": [e.previous.value if e.previous else None for e in entries],
            "tos": [e.post.status.value for e in entries],
        },
    )
