"""`POST /api/v1/posts/bulk`: one action over up to 100 posts, each in its own transaction so
one failure does not undo the others. Another workspace's post is `NOT_FOUND`, like a
missing one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, model_validator

from chorus_publishing import domain, events
from chorus_publishing.api import (
    _actor,
    _locked,
    _plan_schedule,
    _posts,
    _transition,
    delete_one,
)
from chorus_publishing.permissions import Reader
from chorus_publishing.schemas import ApiModel, ScheduleIn
from chorus_runtime.auth import Principal
from chorus_runtime.errors import ChorusError, Conflict, Forbidden

router = APIRouter(prefix="/api/v1/posts", tags=["posts"])

MAX_IDS = 100
NEEDS = {
    "schedule": "post:update",
    "unschedule": "post:update",
    "update": "post:update",
    "delete": "post:delete",
}


class LabelsIn(ApiModel):
    """What `update` changes on every post: its campaign and/or tags."""

    campaign: str | None = Field(default=None, max_length=120)
    tags: list[str] | None = Field(default=None, max_length=50)


class DeleteIn(ApiModel):
    from_platforms: bool = False


class BulkIn(ApiModel):
    action: Literal["schedule", "unschedule", "delete", "update"]
    post_ids: list[UUID] = Field(min_length=1, max_length=MAX_IDS)
    data: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _data(self) -> BulkIn:
        # Fail the whole request early (422) rather than once per post.
        self.typed()
        return self

    def typed(self) -> BaseModel | None:
        if self.action == "schedule":
            if self.data is None:
                raise ValueError("schedule needs data.scheduledAt")
            return ScheduleIn.model_validate(self.data)
        if self.action == "update":
            labels = LabelsIn.model_validate(self.data or {})
            if not labels.model_fields_set:
                raise ValueError("update needs data.campaign and/or data.tags")
            return labels
        if self.action == "delete":
            return DeleteIn.model_validate(self.data or {})
        if self.data:
            raise ValueError("unschedule takes no data")
        return None


class BulkError(ApiModel):
    code: str
    message: str
    details: Any = None


class BulkFailure(ApiModel):
    post_id: UUID
    error: BulkError


class BulkOut(ApiModel):
    success: list[UUID]
    failed: list[UUID]
    errors: list[BulkFailure]


async def _update_labels(
    request: Request, principal: Principal, post_id: UUID, labels: LabelsIn
) -> None:
    now = datetime.now(UTC)
    async with _posts(request, principal) as repo:
        before = await _locked(repo, post_id)
        if before.status not in domain.lifecycle.EDITABLE:
            raise Conflict(
                f"a {before.status.value} post cannot be edited",
                details={"status": before.status.value},
            )
        changes: dict[str, Any] = {}
        if "campaign" in labels.model_fields_set:
            changes["campaign"] = labels.campaign
        if "tags" in labels.model_fields_set:
            changes["tags"] = tuple(labels.tags or ())
        after = replace(before, **changes)
        await repo.save(after)
        await repo.record(after, "updated", previous=before.status, actor_id=_actor(principal))
        await events.updated(repo.session, after, now)
        await repo.uow.commit()


def _action(
    body: BulkIn, request: Request, principal: Principal
) -> Callable[[UUID], Awaitable[object]]:
    data = body.typed()
    if isinstance(data, ScheduleIn):
        at, tz = data.scheduled_at, data.timezone

        async def schedule(repo, post, now):  # type: ignore[no-untyped-def]
            return await _plan_schedule(repo, post, principal, at, tz, now), []

        return lambda pid: _transition(request, principal, pid, "scheduled", schedule)
    if isinstance(data, LabelsIn):
        return lambda pid: _update_labels(request, principal, pid, data)
    if isinstance(data, DeleteIn):
        return lambda pid: delete_one(request, principal, pid, from_platforms=data.from_platforms)

    async def unschedule(repo, post, now):  # type: ignore[no-untyped-def]
        return domain.unschedule(post), []

    return lambda pid: _transition(request, principal, pid, "unscheduled", unschedule)


@router.post(
    "/bulk",
    response_model=BulkOut,
    response_model_by_alias=True,
    summary="Schedule, unschedule, delete or relabel many posts; each succeeds or fails alone",
)
async def bulk(body: BulkIn, request: Request, principal: Reader) -> BulkOut:
    needed = NEEDS[body.action]
    if not principal.can(needed):
        raise Forbidden(f"missing permission {needed}", details={"required": [needed]})
    run = _action(body, request, principal)
    success: list[UUID] = []
    failures: list[BulkFailure] = []
    for post_id in dict.fromkeys(body.post_ids):  # a repeated id is processed once
        try:
            await run(post_id)
        except ChorusError as exc:
            failures.append(
                BulkFailure(
                    post_id=post_id,
                    error=BulkError(code=exc.code, message=exc.message, details=exc.details),
                )
            )
        else:
            success.append(post_id)
    return BulkOut(success=success, failed=[f.post_id for f in failures], errors=failures)
