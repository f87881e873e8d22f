"""Connector commands and results.

`connector.commands` (producer: publishing) asks the connector to act on a platform;
`connector.deliveries` reports the outcome; `connector.accounts` tracks connected
accounts; `connector.metrics` carries metric snapshots pulled from the platforms;
`connector.inbound` carries comments, direct messages and mentions the platforms push.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from chorus_contracts.catalog import EventData, event_type
from chorus_contracts.events.common import Platform


class MediaRef(EventData):
    media_id: UUID
    url: str
    mime_type: str
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None


class PublishContent(EventData):
    text: str = ""
    title: str | None = None
    link: str | None = None
    first_comment: str | None = None
    hashtags: list[str] = []
    mentions: list[str] = []
    media: list[MediaRef] = []
    options: dict[str, str] = Field(
        default_factory=dict, description="platform-specific options, e.g. subreddit"
    )


@event_type("chorus.connector.post.publish_requested.v1")
class PublishRequested(EventData):
    """Publish one post on one target. `idempotency_key` is the target id: one post, ever."""

    command_id: UUID
    workspace_id: UUID
    post_id: UUID
    target_id: UUID
    platform: Platform
    account_id: UUID
    attempt: int = Field(ge=1)
    idempotency_key: str
    deadline: datetime
    content: PublishContent
    requested_at: datetime


@event_type("chorus.connector.post.delete_requested.v1")
class DeleteRequested(EventData):
    command_id: UUID
    workspace_id: UUID
    post_id: UUID
    target_id: UUID
    platform: Platform
    account_id: UUID
    platform_post_id: str
    requested_at: datetime


class FailureKind(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    AUTH = "auth"


@event_type("chorus.connector.delivery.succeeded.v1")
class DeliverySucceeded(EventData):
    command_id: UUID
    workspace_id: UUID
    post_id: UUID
    target_id: UUID
    platform: Platform
    account_id: UUID
    attempt: int = Field(ge=1)
    platform_post_id: str
    url: str | None = None
    recovered_by_readback: bool = False
    published_at: datetime


@event_type("chorus.connector.delivery.failed.v1")
class DeliveryFailed(EventData):
    command_id: UUID
    workspace_id: UUID
    post_id: UUID
    target_id: UUID
    platform: Platform
    account_id: UUID
    attempt: int = Field(ge=1)
    kind: FailureKind
    error_code: str
    error_message: str
    retry_after_seconds: float | None = None
    failed_at: datetime


@event_type("chorus.connector.delivery.deleted.v1")
class DeliveryDeleted(EventData):
    command_id: UUID
    workspace_id: UUID
    post_id: UUID
    target_id: UUID
    platform: Platform
    platform_post_id: str
    deleted_at: datetime


class AccountStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    REVOKED = "revoked"


@event_type("chorus.connector.account.connected.v1")
class AccountConnected(EventData):
    account_id: UUID
    workspace_id: UUID
    platform: Platform
    platform_account_id: str
    username: str
    display_name: str | None = None
    scopes: list[str] = []
    connected_by: UUID | None = None
    connected_at: datetime


@event_type("chorus.connector.account.status_changed.v1")
class AccountStatusChanged(EventData):
    account_id: UUID
    workspace_id: UUID
    platform: Platform
    previous_status: AccountStatus
    status: AccountStatus
    reason: str | None = None
    changed_at: datetime


@event_type("chorus.connector.account.disconnected.v1")
class AccountDisconnected(EventData):
    account_id: UUID
    workspace_id: UUID
    platform: Platform
    disconnected_by: UUID | None = None
    disconnected_at: datetime


@event_type("chorus.connector.post_metrics.collected.v1")
class PostMetricsCollected(EventData):
    workspace_id: UUID
    account_id: UUID
    platform: Platform
    post_id: UUID | None = None
    target_id: UUID | None = None
    platform_post_id: str
    likes: int = Field(default=0, ge=0)
    comments: int = Field(default=0, ge=0)
    shares: int = Field(default=0, ge=0)
    saves: int = Field(default=0, ge=0)
    impressions: int = Field(default=0, ge=0)
    reach: int = Field(default=0, ge=0)
    clicks: int = Field(default=0, ge=0)
    video_views: int = Field(default=0, ge=0)
    collected_at: datetime


@event_type("chorus.connector.account_metrics.collected.v1")
class AccountMetricsCollected(EventData):
    workspace_id: UUID
    account_id: UUID
    platform: Platform
    followers: int = Field(ge=0)
    following: int = Field(default=0, ge=0)
    posts: int = Field(default=0, ge=0)
    collected_at: datetime


# -- inbound (`connector.inbound`): what people say to and about a connected account ----------


class InboundAuthor(EventData):
    """Who wrote it, as the platform names them (ids are the platform's own)."""

    id: str
    username: str | None = None
    display_name: str | None = None


class InboundReceived(EventData):
    """Fields every inbound event carries; `platformEventId` is unique per platform (the
    connector emits one event per platform event and connected account, however often the
    platform delivers it)."""

    workspace_id: UUID
    account_id: UUID
    platform: Platform
    platform_event_id: str
    platform_post_id: str | None = Field(
        default=None, description="the post the event is about, when there is one"
    )
    author: InboundAuthor
    text: str = Field(default="", description="empty when the platform sends no text")
    occurred_at: datetime
    received_at: datetime


@event_type("chorus.connector.comment.received.v1")
class CommentReceived(InboundReceived):
    """A comment or reply on one of the account's posts."""

    platform_parent_id: str | None = Field(
        default=None, description="the comment this one answers, if it is a reply"
    )


@event_type("chorus.connector.message.received.v1")
class MessageReceived(InboundReceived):
    """A direct message to the account."""

    platform_conversation_id: str = Field(
        description="the platform's thread, or the other party's id where it has no threads"
    )


@event_type("chorus.connector.mention.received.v1")
class MentionReceived(InboundReceived):
    """A post or comment elsewhere that names the account."""

    url: str | None = None
