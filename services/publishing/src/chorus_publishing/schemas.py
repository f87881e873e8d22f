"""HTTP request/response models (camelCase on the wire, unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from chorus_contracts.events.common import Platform
from chorus_contracts.events.publishing import PostStatus, TargetStatus
from chorus_publishing.domain import Content, Post, Target


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(isinstance(v, str) and "\x00" in v for v in value)
    if isinstance(value, dict):
        return any(isinstance(v, str) and "\x00" in v for v in value.values())
    return False


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        # Postgres text cannot hold U+0000: refuse it here (422) rather than fail at the
        # insert. One level is enough: nested models run this check on their own fields.
        if isinstance(data, dict) and any(_has_nul(v) for v in data.values()):
            raise ValueError("text must not contain NUL (U+0000) characters")
        return data


class ContentIn(ApiModel):
    text: str = Field(default="", max_length=63_206)
    title: str | None = Field(default=None, max_length=300)
    media: list[UUID] = Field(default_factory=list, max_length=20, description="media asset ids")
    hashtags: list[str] = Field(default_factory=list, max_length=100)
    mentions: list[str] = Field(default_factory=list, max_length=100)
    link: str | None = Field(default=None, max_length=2048)
    first_comment: str | None = Field(default=None, max_length=8000)
    options: dict[str, str] = Field(default_factory=dict, description="e.g. {subreddit: …}")

    @model_validator(mode="after")
    def _something(self) -> ContentIn:
        if not self.text.strip() and not self.media:
            raise ValueError("a post needs text or media")
        return self

    def domain(self) -> Content:
        return Content(
            text=self.text,
            title=self.title,
            link=self.link,
            first_comment=self.first_comment,
            hashtags=tuple(h.lstrip("#") for h in self.hashtags),
            mentions=tuple(self.mentions),
            media_ids=tuple(str(m) for m in self.media),
            options=dict(self.options),
        )


class CustomContentIn(ApiModel):
    text: str | None = Field(default=None, max_length=63_206)
    title: str | None = Field(default=None, max_length=300)
    media: list[UUID] | None = Field(default=None, max_length=20)
    hashtags: list[str] | None = None
    mentions: list[str] | None = None
    link: str | None = None
    first_comment: str | None = None
    options: dict[str, str] | None = None

    def overrides(self) -> dict[str, Any]:
        out = self.model_dump(exclude_none=True)
        if "media" in out:
            out["media_ids"] = [str(m) for m in out.pop("media")]
        return out


class TargetIn(ApiModel):
    platform: Platform
    account_id: UUID
    custom_content: CustomContentIn | None = None


class PostIn(ApiModel):
    content: ContentIn
    platforms: list[TargetIn] = Field(min_length=1, max_length=50)
    scheduled_at: str | None = Field(
        default=None,
        description="ISO 8601 with an offset, or a local time plus `timezone`",
        max_length=64,
    )
    timezone: str | None = Field(default=None, max_length=64, description="IANA time zone")
    campaign: str | None = Field(default=None, max_length=120)
    tags: list[str] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _unique_targets(self) -> PostIn:
        keys = [(t.platform, t.account_id) for t in self.platforms]
        if len(set(keys)) != len(keys):
            raise ValueError("each platform/account pair may appear once")
        return self

    def targets(self) -> list[tuple[Platform, str, dict[str, Any] | None]]:
        return [
            (
                t.platform,
                str(t.account_id),
                t.custom_content.overrides() if t.custom_content else None,
            )
            for t in self.platforms
        ]


class ScheduleIn(ApiModel):
    scheduled_at: str = Field(max_length=64)
    timezone: str | None = Field(default=None, max_length=64)


class CommentIn(ApiModel):
    comment: str | None = Field(default=None, max_length=2000)


class RejectIn(ApiModel):
    comment: str = Field(min_length=1, max_length=2000)


class ContentOut(ApiModel):
    text: str
    title: str | None
    media: list[UUID]
    hashtags: list[str]
    mentions: list[str]
    link: str | None
    first_comment: str | None
    options: dict[str, str]

    @classmethod
    def of(cls, c: Content) -> ContentOut:
        return cls(
            text=c.text,
            title=c.title,
            media=[UUID(m) for m in c.media_ids],
            hashtags=list(c.hashtags),
            mentions=list(c.mentions),
            link=c.link,
            first_comment=c.first_comment,
            options=dict(c.options),
        )


class TargetOut(ApiModel):
    id: UUID
    platform: Platform
    account_id: UUID
    status: TargetStatus
    platform_post_id: str | None
    url: str | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    published_at: datetime | None
    custom_content: dict[str, Any] | None

    @classmethod
    def of(cls, t: Target) -> TargetOut:
        return cls(
            id=UUID(t.id),
            platform=t.platform,
            account_id=UUID(t.account_id),
            status=t.status,
            platform_post_id=t.platform_post_id,
            url=t.url,
            attempts=t.attempts,
            last_error=t.last_error,
            next_attempt_at=t.next_attempt_at,
            published_at=t.published_at,
            custom_content=t.custom,
        )


class HistoryOut(ApiModel):
    action: str
    from_status: str | None
    to_status: str | None
    actor_id: str | None
    comment: str | None
    step: str | None = None  # the approval step an approval or rejection concerns
    at: datetime


class PostOut(ApiModel):
    id: UUID
    workspace_id: UUID
    author_id: UUID | None
    status: PostStatus
    status_reason: str | None
    content: ContentOut
    scheduled_at: datetime | None
    timezone: str | None
    campaign: str | None
    tags: list[str]
    targets: list[TargetOut]
    created_at: datetime | None
    updated_at: datetime | None
    history: list[HistoryOut] | None = None

    @classmethod
    def of(cls, post: Post, history: list[dict[str, Any]] | None = None) -> PostOut:
        return cls(
            id=UUID(post.id),
            workspace_id=UUID(post.workspace_id),
            author_id=UUID(post.author_id) if post.author_id else None,
            status=post.status,
            status_reason=post.status_reason,
            content=ContentOut.of(post.content),
            scheduled_at=post.scheduled_at,
            timezone=post.timezone,
            campaign=post.campaign,
            tags=list(post.tags),
            targets=[TargetOut.of(t) for t in post.targets],
            created_at=post.created_at,
            updated_at=post.updated_at,
            history=[HistoryOut(**h) for h in history] if history is not None else None,
        )


class PostEnvelope(ApiModel):
    post: PostOut


class PostPage(ApiModel):
    posts: list[PostOut]
    next_cursor: str | None
