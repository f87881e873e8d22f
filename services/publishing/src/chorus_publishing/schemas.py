"""HTTP request/response models (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from chorus_contracts.events.common import Platform
from chorus_contracts.events.publishing import PostStatus, TargetStatus
from chorus_publishing.domain import Post


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class PostContentIn(ApiModel):
    text: str = Field(min_length=1, max_length=63_206)
    hashtags: list[str] = Field(default_factory=list, max_length=100)


class TargetIn(ApiModel):
    platform: Platform
    account_id: UUID


class CreatePostIn(ApiModel):
    content: PostContentIn
    platforms: list[TargetIn] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _unique_targets(self) -> CreatePostIn:
        keys = [(t.platform, t.account_id) for t in self.platforms]
        if len(set(keys)) != len(keys):
            raise ValueError("each platform/account pair may appear once")
        return self


class TargetOut(ApiModel):
    id: UUID
    platform: Platform
    account_id: UUID
    status: TargetStatus
    attempts: int


class PostOut(ApiModel):
    id: UUID
    workspace_id: UUID
    status: PostStatus
    text: str
    hashtags: list[str]
    scheduled_at: datetime | None
    timezone: str | None
    targets: list[TargetOut]

    @classmethod
    def of(cls, post: Post) -> PostOut:
        return cls(
            id=UUID(post.id),
            workspace_id=UUID(post.workspace_id),
            status=post.status,
            text=post.text,
            hashtags=list(post.hashtags),
            scheduled_at=post.scheduled_at,
            timezone=post.timezone,
            targets=[
                TargetOut(
                    id=UUID(t.id),
                    platform=t.platform,
                    account_id=UUID(t.account_id),
                    status=t.status,
                    attempts=t.attempts,
                )
                for t in post.targets
            ],
        )


class PostEnvelope(ApiModel):
    post: PostOut
