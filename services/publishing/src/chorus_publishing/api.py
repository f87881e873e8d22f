"""`/api/v1/posts`: thin handlers — decode, call the domain, persist + outbox in one
tenant-scoped transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from chorus_contracts.events.publishing import PostStatus
from chorus_publishing import domain, events, post_media, workflows
from chorus_publishing import scheduling as sched
from chorus_publishing.accounts import AccountDirectory
from chorus_publishing.approval_store import ApprovalStore
from chorus_publishing.permissions import Creator, Deleter, Publisher, Reader, Updater
from chorus_publishing.repository import PostRepository
from chorus_publishing.schemas import (
    CommentIn,
    PostEnvelope,
    PostIn,
    PostOut,
    PostPage,
    RejectIn,
    ScheduleIn,
)
from chorus_runtime.auth import Principal
from chorus_runtime.errors import Conflict, Forbidden, NotFound
from chorus_runtime.service import ServiceRuntime

router = APIRouter(prefix="/api/v1/posts", tags=["posts"])


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _deadline(request: Request) -> timedelta:
    return timedelta(seconds=getattr(_runtime(request).settings, "dispatch_deadline_seconds", 900))


def _actor(p: Principal) -> str | None:
    return p.subject if p.token_type == "user" else None


@asynccontextmanager
async def _posts(request: Request, principal: Principal) -> AsyncIterator[PostRepository]:
    db = _runtime(request).db
    assert db is not None
    async with db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        yield PostRepository(uow)


async def _locked(repo: PostRepository, post_id: UUID) -> domain.Post:
    post = await repo.get(str(post_id), for_update=True)
    if post is None:
        raise NotFound("post not found")
    return post


async def _plan_schedule(
    repo: PostRepository,
    post: domain.Post,
    principal: Principal,
    scheduled_at: str,
    timezone: str | None,
    now: datetime,
) -> domain.Post:
    at = sched.resolve(scheduled_at, timezone, now=now)
    approvals = ApprovalStore(repo.uow)
    approval = (await approvals.policy()).needs_approval(principal.role)
    if not approval and not principal.can("post:publish"):
        raise Forbidden("scheduling needs post:publish", details={"required": ["post:publish"]})
    domain.check_publishable(post, media=await post_media.infos(repo.uow, post))
    planned = domain.schedule(post, at=at, timezone=timezone, approval_needed=approval)
    if approval:
        await approvals.reset(post.id)  # a new approval round: earlier approvals do not count
    return planned


@router.post(
    "",
    status_code=201,
    response_model=PostEnvelope,
    response_model_by_alias=True,
    summary="Create a post (a draft, or scheduled when scheduledAt is given)",
)
async def create_post(body: PostIn, request: Request, principal: Creator) -> PostEnvelope:
    async with _posts(request, principal) as repo:
        stored = await create_in(repo, principal, body, datetime.now(UTC))
        await repo.uow.commit()
    return PostEnvelope(post=PostOut.of(stored))


async def create_in(
    repo: PostRepository, principal: Principal, body: PostIn, now: datetime
) -> domain.Post:
    """Validate and store a new post in the caller's transaction (POST /posts and import)."""
    post = domain.new_post(
        workspace_id=principal.workspace_id,
        author_id=_actor(principal),
        author_role=principal.role,
        content=body.content.domain(),
        targets=body.targets(),
        campaign=body.campaign,
        tags=body.tags,
    )
    if body.timezone is not None:
        sched.zone(body.timezone)
    await AccountDirectory(repo.uow).check(post)
    await post_media.check_known(repo.uow, post)
    draft = post
    if body.scheduled_at is not None:
        post = await _plan_schedule(repo, post, principal, body.scheduled_at, body.timezone, now)
    await repo.add(post)
    await repo.record(post, "created", previous=None, actor_id=_actor(principal))
    await events.created(repo.session, draft, now)
    await events.changes(repo.session, draft, post, actor=_actor(principal), now=now)
    stored = await repo.get(post.id)
    assert stored is not None
    return stored


def post_filters(
    status: PostStatus | None = None,
    platform: str | None = None,
    start_date: Annotated[datetime | None, Query(alias="startDate")] = None,
    end_date: Annotated[datetime | None, Query(alias="endDate")] = None,
    campaign: str | None = None,
    tag: str | None = None,
) -> dict[str, Any]:
    """The calendar's filters (the list and the export): dates aware and in order, text
    filters free of NUL (which Postgres cannot compare against); the repository's kwargs."""
    for name, value in (("campaign", campaign), ("tag", tag), ("platform", platform)):
        if value is not None and "\x00" in value:
            raise sched._invalid(name, "must not contain NUL characters", "invalid_text")
    for name, value in (("startDate", start_date), ("endDate", end_date)):
        if value is not None and value.tzinfo is None:
            raise sched._invalid(name, "must include an offset", "naive_datetime")
    if start_date and end_date and end_date <= start_date:
        raise sched._invalid("endDate", "must be after startDate", "invalid_range")
    return {
        "status": status.value if status else None,
        "platform": platform,
        "start": start_date,
        "end": end_date,
        "campaign": campaign,
        "tag": tag,
    }


PostFilters = Annotated[dict[str, Any], Depends(post_filters)]


@router.get(
    "",
    response_model=PostPage,
    response_model_by_alias=True,
    summary="The calendar: filter by status, platform, dates, campaign or tag",
)
async def list_posts(
    request: Request,
    principal: Reader,
    filters: PostFilters,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> PostPage:
    async with _posts(request, principal) as repo:
        try:
            page = await repo.page(**filters, cursor=cursor, limit=limit)
        except (ValueError, TypeError):
            raise sched._invalid("cursor", "malformed cursor", "invalid_cursor") from None
    return PostPage(posts=[PostOut.of(p) for p in page.items], next_cursor=page.next_cursor)


@router.get("/{post_id}", response_model=PostEnvelope, response_model_by_alias=True)
async def get_post(post_id: UUID, request: Request, principal: Reader) -> PostEnvelope:
    async with _posts(request, principal) as repo:
        post = await repo.get(str(post_id))
        if post is None:
            raise NotFound("post not found")
        history = await repo.history(post.id)
    return PostEnvelope(
        post=PostOut.of(
            post,
            [
                {
                    k: h[k]
                    for k in (
                        "action",
                        "from_status",
                        "to_status",
                        "actor_id",
                        "comment",
                        "step",
                        "at",
                    )
                }
                for h in history
            ],
        )
    )


@router.put(
    "/{post_id}",
    response_model=PostEnvelope,
    response_model_by_alias=True,
    summary="Replace content, targets and schedule (draft, pending or scheduled only)",
)
async def update_post(
    post_id: UUID, body: PostIn, request: Request, principal: Updater
) -> PostEnvelope:
    now = datetime.now(UTC)
    async with _posts(request, principal) as repo:
        before = await _locked(repo, post_id)
        if before.status not in domain.lifecycle.EDITABLE:
            raise Conflict(
                f"a {before.status.value} post cannot be edited",
                details={"status": before.status.value},
            )
        fresh = domain.new_post(
            workspace_id=before.workspace_id,
            author_id=before.author_id,
            author_role=before.author_role,
            content=body.content.domain(),
            targets=body.targets(),
            campaign=body.campaign,
            tags=body.tags,
        )
        kept = {(t.platform, t.account_id): t.id for t in before.targets}
        targets = tuple(
            domain.Target(
                id=kept.get((t.platform, t.account_id), t.id),
                platform=t.platform,
                account_id=t.account_id,
                custom=t.custom,
            )
            for t in fresh.targets
        )
        after = domain.Post(
            id=before.id,
            workspace_id=before.workspace_id,
            author_id=before.author_id,
            author_role=before.author_role,
            status=PostStatus.DRAFT,
            content=fresh.content,
            targets=targets,
            campaign=body.campaign,
            tags=tuple(body.tags),
        )
        await AccountDirectory(repo.uow).check(after)
        await post_media.check_known(repo.uow, after)
        if body.scheduled_at is not None:
            after = await _plan_schedule(
                repo, after, principal, body.scheduled_at, body.timezone, now
            )
        await repo.save(after)
        await repo.replace_targets(after)
        await repo.record(after, "updated", previous=before.status, actor_id=_actor(principal))
        await events.updated(repo.session, after, now)
        await events.changes(repo.session, before, after, actor=_actor(principal), now=now)
        stored = await repo.get(after.id)
        await repo.uow.commit()
    assert stored is not None
    return PostEnvelope(post=PostOut.of(stored))


@router.delete(
    "/{post_id}",
    status_code=204,
    summary="Delete a post; with fromPlatforms=true also remove published copies",
)
async def delete_post(
    post_id: UUID,
    request: Request,
    principal: Deleter,
    from_platforms: Annotated[bool, Query(alias="fromPlatforms")] = False,
) -> Response:
    await delete_one(request, principal, post_id, from_platforms=from_platforms)
    return Response(status_code=204)


async def delete_one(
    request: Request, principal: Principal, post_id: UUID, *, from_platforms: bool
) -> None:
    """Delete one post in its own transaction (DELETE /posts/{id} and bulk delete)."""
    now = datetime.now(UTC)
    async with _posts(request, principal) as repo:
        post = await _locked(repo, post_id)
        if post.status is PostStatus.PUBLISHING:
            raise Conflict(
                "a post that is being published cannot be deleted yet",
                details={"status": post.status.value},
            )
        commands = domain.delete_commands(post, now=now) if from_platforms else []
        await events.deleted(
            repo.session, post, actor=_actor(principal), from_platforms=from_platforms, now=now
        )
        for command in commands:
            await events.emit_command(repo.session, post, command)
        await repo.remove(post.id)
        await repo.uow.commit()


async def _transition(
    request: Request,
    principal: Principal,
    post_id: UUID,
    action: str,
    change: object,
    comment: str | None = None,
) -> PostEnvelope:
    now = datetime.now(UTC)
    async with _posts(request, principal) as repo:
        before = await _locked(repo, post_id)
        after, commands = await change(repo, before, now)  # type: ignore[operator]
        await repo.save(after)
        await repo.record(
            after, action, previous=before.status, actor_id=_actor(principal), comment=comment
        )
        await events.changes(repo.session, before, after, actor=_actor(principal), now=now)
        await events.commands(repo.session, after, commands)
        stored = await repo.get(after.id)
        await repo.uow.commit()
    assert stored is not None
    return PostEnvelope(post=PostOut.of(stored))


@router.post("/{post_id}/schedule", response_model=PostEnvelope, response_model_by_alias=True)
async def schedule_post(
    post_id: UUID, body: ScheduleIn, request: Request, principal: Updater
) -> PostEnvelope:
    async def change(repo, post, now):  # type: ignore[no-untyped-def]
        return await _plan_schedule(
            repo, post, principal, body.scheduled_at, body.timezone, now
        ), []

    return await _transition(request, principal, post_id, "scheduled", change)


@router.post("/{post_id}/unschedule", response_model=PostEnvelope, response_model_by_alias=True)
async def unschedule_post(post_id: UUID, request: Request, principal: Updater) -> PostEnvelope:
    async def change(repo, post, now):  # type: ignore[no-untyped-def]
        return domain.unschedule(post), []

    return await _transition(request, principal, post_id, "unscheduled", change)


@router.post(
    "/{post_id}/publish",
    status_code=202,
    response_model=PostEnvelope,
    response_model_by_alias=True,
    summary="Publish now: one command per target",
)
async def publish_now(post_id: UUID, request: Request, principal: Publisher) -> PostEnvelope:
    deadline = _deadline(request)

    async def change(repo, post, now):  # type: ignore[no-untyped-def]
        if post.status not in (PostStatus.DRAFT, PostStatus.SCHEDULED):
            raise Conflict(
                f"a {post.status.value} post cannot be published now",
                details={"status": post.status.value},
            )
        policy = await ApprovalStore(repo.uow).policy()
        if post.status is PostStatus.DRAFT and policy.needs_approval(principal.role):
            # An unapproved post never goes out: it has to pass the workflow first.
            raise Conflict(
                "this post needs approval before it is published; submit it",
                details={"status": post.status.value, "reason": "approval_required"},
            )
        domain.check_publishable(post, media=await post_media.infos(repo.uow, post))
        media = await post_media.links(request).refs(repo.session, post)
        return domain.dispatch(post, now=now, deadline=deadline, media=media)

    return await _transition(request, principal, post_id, "published_now", change)


@router.post(
    "/{post_id}/submit",
    response_model=PostEnvelope,
    response_model_by_alias=True,
    summary="Ask for approval",
)
async def submit_post(post_id: UUID, request: Request, principal: Updater) -> PostEnvelope:
    async def change(repo, post, now):  # type: ignore[no-untyped-def]
        domain.lifecycle.check_transition(post.status, PostStatus.PENDING_APPROVAL)
        domain.check_publishable(post, media=await post_media.infos(repo.uow, post))
        await ApprovalStore(repo.uow).reset(post.id)
        return domain.dataclasses_replace(post, status=PostStatus.PENDING_APPROVAL), []

    return await _transition(request, principal, post_id, "submitted", change)


@router.post(
    "/{post_id}/approve",
    response_model=PostEnvelope,
    response_model_by_alias=True,
    summary="Approve the current step; the last step schedules the post",
)
async def approve_post(
    post_id: UUID, request: Request, principal: Reader, body: CommentIn | None = None
) -> PostEnvelope:
    # Who may approve depends on the workflow step (roles) or, without a workflow, on
    # post:approve: checked in `workflows.approve`, not by a fixed permission here.
    comment = body.comment if body else None
    now = datetime.now(UTC)
    async with _posts(request, principal) as repo:
        store = ApprovalStore(repo.uow)
        before = await _locked(repo, post_id)
        done = workflows.approve(
            before,
            await store.policy(),
            await store.approvals(before.id),
            approver_id=principal.subject,
            role=principal.role,
            permissions=principal.permissions,
        )
        if done.new_step:
            await store.add_approval(
                before.id, done.step, done.step_name, principal.subject, comment
            )
        # Approved after its time: the scheduler finds it due at once and sends it now.
        await repo.save(done.post)
        await repo.record(
            done.post,
            "approved",
            previous=before.status,
            actor_id=_actor(principal),
            comment=comment,
            step=done.step_name,
        )
        await events.changes(repo.session, before, done.post, actor=_actor(principal), now=now)
        stored = await repo.get(before.id)
        await repo.uow.commit()
    assert stored is not None
    return PostEnvelope(post=PostOut.of(stored))


@router.post("/{post_id}/reject", response_model=PostEnvelope, response_model_by_alias=True)
async def reject_post(
    post_id: UUID, body: RejectIn, request: Request, principal: Reader
) -> PostEnvelope:
    now = datetime.now(UTC)
    async with _posts(request, principal) as repo:
        store = ApprovalStore(repo.uow)
        before = await _locked(repo, post_id)
        after, step = workflows.reject(
            before,
            await store.policy(),
            await store.approvals(before.id),
            role=principal.role,
            permissions=principal.permissions,
        )
        await repo.save(after)
        await repo.record(
            after,
            "rejected",
            previous=before.status,
            actor_id=_actor(principal),
            comment=body.comment,
            step=step,
        )
        await events.changes(repo.session, before, after, actor=_actor(principal), now=now)
        stored = await repo.get(after.id)
        await repo.uow.commit()
    assert stored is not None
    return PostEnvelope(post=PostOut.of(stored))
