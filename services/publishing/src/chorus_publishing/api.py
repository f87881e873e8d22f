"""HTTP handlers: decode → domain → repository + outbox, in one tenant-scoped transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request

from chorus_contracts.events.publishing import PostCreated, PostStatusChanged, TargetRef
from chorus_publishing import domain, repository
from chorus_publishing.schemas import CreatePostIn, PostEnvelope, PostOut
from chorus_runtime.auth import Principal, require_permission
from chorus_runtime.errors import NotFound
from chorus_runtime.outbox import emit
from chorus_runtime.service import ServiceRuntime

SOURCE = "/chorus/publishing"
router = APIRouter(prefix="/api/v1/posts", tags=["posts"])


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


@router.post("", status_code=201, response_model=PostEnvelope, response_model_by_alias=True)
async def create_post(
    body: CreatePostIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_permission("post:create"))],
) -> PostEnvelope:
    rt = _runtime(request)
    assert rt.db is not None
    post = domain.new_post(
        workspace_id=principal.workspace_id,
        author_id=principal.subject if principal.token_type == "user" else None,
        text=body.content.text,
        hashtags=body.content.hashtags,
        targets=[(t.platform, str(t.account_id)) for t in body.platforms],
    )
    now = datetime.now(UTC)
    async with rt.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        await repository.insert_post(uow.session, post)
        await emit(
            uow.session,
            PostCreated(
                post_id=UUID(post.id),
                workspace_id=UUID(post.workspace_id),
                author_id=UUID(post.author_id) if post.author_id else None,
                status=post.status,
                text=post.text,
                hashtags=list(post.hashtags),
                targets=[
                    TargetRef(
                        target_id=UUID(t.id), platform=t.platform, account_id=UUID(t.account_id)
                    )
                    for t in post.targets
                ],
                created_at=now,
            ),
            topic="publishing.posts",
            key=post.id,
            source=SOURCE,
            tenant_id=post.workspace_id,
        )
        await uow.commit()
    return PostEnvelope(post=PostOut.of(post))


@router.get("/{post_id}", response_model=PostEnvelope, response_model_by_alias=True)
async def get_post(
    post_id: UUID,
    request: Request,
    principal: Annotated[Principal, Depends(require_permission("post:read"))],
) -> PostEnvelope:
    rt = _runtime(request)
    assert rt.db is not None
    async with rt.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        post = await repository.get_post(uow.session, principal.workspace_id, str(post_id))
    if post is None:
        raise NotFound("post not found")
    return PostEnvelope(post=PostOut.of(post))


@router.post(
    "/{post_id}/publish", status_code=202, response_model=PostEnvelope, response_model_by_alias=True
)
async def publish_now(
    post_id: UUID,
    request: Request,
    principal: Annotated[Principal, Depends(require_permission("post:publish"))],
) -> PostEnvelope:
    """Publish now: one command per target goes to the connector through the outbox."""
    rt = _runtime(request)
    assert rt.db is not None
    settings = rt.settings
    now = datetime.now(UTC)
    async with rt.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        post = await repository.get_post(
            uow.session, principal.workspace_id, str(post_id), for_update=True
        )
        if post is None:
            raise NotFound("post not found")
        previous = post.status
        post, commands = domain.start_publishing(
            post,
            now=now,
            deadline=timedelta(seconds=getattr(settings, "dispatch_deadline_seconds", 900)),
        )
        await repository.save_status(uow.session, post)
        await emit(
            uow.session,
            PostStatusChanged(
                post_id=UUID(post.id),
                workspace_id=UUID(post.workspace_id),
                previous_status=previous,
                status=post.status,
                actor_id=UUID(principal.subject) if principal.token_type == "user" else None,
                changed_at=now,
            ),
            topic="publishing.posts",
            key=post.id,
            source=SOURCE,
            tenant_id=post.workspace_id,
        )
        for command in commands:
            await emit(
                uow.session,
                command,
                topic="connector.commands",
                key=str(command.account_id),
                subject=str(command.target_id),
                source=SOURCE,
                tenant_id=post.workspace_id,
            )
        await uow.commit()
    return PostEnvelope(post=PostOut.of(post))


__all__ = ["PostOut", "router"]
