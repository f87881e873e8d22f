"""Pure publishing rules: no I/O here (design.md §9).

Foundation slice: drafts with targets, and "publish now", which turns every pending target
into one publish command. Scheduling, approvals and per-platform validation follow.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import PublishContent, PublishRequested
from chorus_contracts.events.publishing import PostStatus, TargetStatus
from chorus_runtime.errors import Conflict


@dataclass(frozen=True)
class Target:
    id: str
    platform: Platform
    account_id: str
    status: TargetStatus = TargetStatus.PENDING
    attempts: int = 0


@dataclass(frozen=True)
class Post:
    id: str
    workspace_id: str
    author_id: str | None
    status: PostStatus
    text: str
    hashtags: tuple[str, ...] = ()
    targets: tuple[Target, ...] = field(default_factory=tuple)
    scheduled_at: datetime | None = None
    timezone: str | None = None


def new_post(
    *,
    workspace_id: str,
    author_id: str | None,
    text: str,
    hashtags: list[str],
    targets: list[tuple[Platform, str]],
) -> Post:
    return Post(
        id=str(uuid.uuid4()),
        workspace_id=workspace_id,
        author_id=author_id,
        status=PostStatus.DRAFT,
        text=text,
        hashtags=tuple(hashtags),
        targets=tuple(Target(id=str(uuid.uuid4()), platform=p, account_id=a) for p, a in targets),
    )


PUBLISHABLE = {PostStatus.DRAFT, PostStatus.SCHEDULED}


def start_publishing(
    post: Post, *, now: datetime, deadline: timedelta
) -> tuple[Post, list[PublishRequested]]:
    """Move a post to `publishing` and build one command per pending target."""
    if post.status not in PUBLISHABLE:
        raise Conflict(
            f"a {post.status.value} post cannot be published", details={"status": post.status}
        )
    commands: list[PublishRequested] = []
    targets = []
    for t in post.targets:
        if t.status is not TargetStatus.PENDING:
            targets.append(t)
            continue
        attempt = t.attempts + 1
        commands.append(
            PublishRequested(
                command_id=uuid.uuid4(),
                workspace_id=uuid.UUID(post.workspace_id),
                post_id=uuid.UUID(post.id),
                target_id=uuid.UUID(t.id),
                platform=t.platform,
                account_id=uuid.UUID(t.account_id),
                attempt=attempt,
                idempotency_key=t.id,  # one platform post per target, ever
                deadline=now + deadline,
                content=PublishContent(text=post.text, hashtags=list(post.hashtags)),
                requested_at=now,
            )
        )
        targets.append(replace(t, status=TargetStatus.DISPATCHED, attempts=attempt))
    return replace(post, status=PostStatus.PUBLISHING, targets=tuple(targets)), commands
