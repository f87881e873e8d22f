"""Post lifecycle events on `publishing.posts` (owner: publishing).

Every status transition is one event; the post id is the Kafka key so a post's events
stay ordered.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from chorus_contracts.catalog import EventData, event_type
from chorus_contracts.events.common import Platform


class PostStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    PARTIALLY_PUBLISHED = "partially_published"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TargetRef(EventData):
    target_id: UUID
    platform: Platform
    account_id: UUID


class PostSnapshot(EventData):
    """What a post is at the time of the event (text, targets, schedule, labels)."""

    post_id: UUID
    workspace_id: UUID
    author_id: UUID | None = None
    status: PostStatus
    text: str = ""
    hashtags: list[str] = []
    media_ids: list[UUID] = []
    targets: list[TargetRef] = []
    scheduled_at: datetime | None = None
    timezone: str | None = None
    campaign: str | None = None
    tags: list[str] = []


@event_type("chorus.publishing.post.created.v1")
class PostCreated(PostSnapshot):
    created_at: datetime


@event_type("chorus.publishing.post.updated.v1")
class PostUpdated(PostSnapshot):
    updated_at: datetime


@event_type("chorus.publishing.post.deleted.v1")
class PostDeleted(EventData):
    post_id: UUID
    workspace_id: UUID
    deleted_by: UUID | None = None
    from_platforms: bool = False
    deleted_at: datetime


@event_type("chorus.publishing.post.status_changed.v1")
class PostStatusChanged(EventData):
    """Any transition of the status machine, with the reason where there is one."""

    post_id: UUID
    workspace_id: UUID
    previous_status: PostStatus
    status: PostStatus
    reason: str | None = None
    actor_id: UUID | None = None
    scheduled_at: datetime | None = None
    changed_at: datetime


class TargetStatus(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    RETRYING = "retrying"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELETED = "deleted"


@event_type("chorus.publishing.target.status_changed.v1")
class TargetStatusChanged(EventData):
    post_id: UUID
    workspace_id: UUID
    target_id: UUID
    platform: Platform
    account_id: UUID
    previous_status: TargetStatus
    status: TargetStatus
    attempts: int = 0
    platform_post_id: str | None = None
    url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    changed_at: datetime
