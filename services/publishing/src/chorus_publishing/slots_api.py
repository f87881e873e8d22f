"""`/api/v1/publishing/slots` (posting slots per account) and `POST /api/v1/posts/{id}/queue`
(the post goes out at the next free slot of its accounts)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import Field, model_validator

from chorus_publishing import scheduling as sched
from chorus_publishing import slots
from chorus_publishing.accounts import AccountDirectory
from chorus_publishing.api import _plan_schedule, _transition
from chorus_publishing.permissions import Publisher, Reader, Updater
from chorus_publishing.repository import PostRepository
from chorus_publishing.schemas import ApiModel, PostEnvelope
from chorus_publishing.slot_store import SlotStore
from chorus_runtime.errors import Conflict, ValidationFailed
from chorus_runtime.service import ServiceRuntime

router = APIRouter(tags=["posting slots"])

TIME = r"^([01]\d|2[0-3]):[0-5]\d$"


class SlotIn(ApiModel):
    account_id: UUID
    weekday: int = Field(ge=0, le=6, description="0 = Monday … 6 = Sunday")
    time: str = Field(pattern=TIME, description="local wall time HH:MM, workspace time zone")

    def domain(self) -> slots.Slot:
        return slots.Slot(str(self.account_id), self.weekday, slots.parse_time(self.time))


class SlotsIn(ApiModel):
    slots: list[SlotIn] = Field(max_length=1000)

    @model_validator(mode="after")
    def _unique(self) -> SlotsIn:
        keys = [(s.account_id, s.weekday, s.time) for s in self.slots]
        if len(set(keys)) != len(keys):
            raise ValueError("each account/weekday/time slot may appear once")
        return self


class SlotOut(ApiModel):
    account_id: UUID
    weekday: int
    time: str


class SlotsOut(ApiModel):
    slots: list[SlotOut]
    timezone: str = Field(description="the workspace time zone the times are in")


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


async def _listing(repo: PostRepository) -> SlotsOut:
    found = await SlotStore(repo.uow).all()
    return SlotsOut(
        slots=[
            SlotOut(account_id=UUID(s.account_id), weekday=s.weekday, time=s.time.strftime("%H:%M"))
            for s in found
        ],
        timezone=(await repo.settings())["timezone"],
    )


@router.get("/api/v1/publishing/slots", response_model=SlotsOut, response_model_by_alias=True)
async def get_slots(request: Request, principal: Reader) -> SlotsOut:
    db = _runtime(request).db
    assert db is not None
    async with db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        return await _listing(PostRepository(uow))


@router.put(
    "/api/v1/publishing/slots",
    response_model=SlotsOut,
    response_model_by_alias=True,
    summary="Replace the posting slots (per account, weekday and local time)",
)
async def put_slots(body: SlotsIn, request: Request, principal: Publisher) -> SlotsOut:
    db = _runtime(request).db
    assert db is not None
    async with db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        wanted = [s.domain() for s in body.slots]
        known = await AccountDirectory(uow).find(sorted({s.account_id for s in wanted}))
        unknown = [
            {
                "field": f"slots[{i}].accountId",
                "rule": "account_not_connected",
                "message": f"account {s.account_id} is not a connected account of this workspace",
            }
            for i, s in enumerate(wanted)
            if s.account_id not in known
        ]
        if unknown:
            raise ValidationFailed(
                "slots name accounts this workspace has not connected", details=unknown
            )
        await SlotStore(uow).replace(wanted)
        out = await _listing(PostRepository(uow))
        await uow.commit()
    return out


@router.post(
    "/api/v1/posts/{post_id}/queue",
    response_model=PostEnvelope,
    response_model_by_alias=True,
    summary="Schedule the post at the next free posting slot of its accounts",
)
async def queue_post(post_id: UUID, request: Request, principal: Updater) -> PostEnvelope:
    async def change(repo, post, now):  # type: ignore[no-untyped-def]
        store = SlotStore(repo.uow)
        await store.lock_queue()
        accounts = sorted({t.account_id for t in post.targets})
        configured = [s for s in await store.all() if s.account_id in accounts]
        if not configured:
            raise Conflict(
                "no posting slots are configured for this post's accounts; "
                "add some with PUT /api/v1/publishing/slots",
                details={"reason": "no_slots", "accountIds": accounts},
            )
        tz_name = (await repo.settings())["timezone"]
        taken = await store.taken(
            accounts,
            after=now,
            until=now + timedelta(days=slots.HORIZON_DAYS + 2),
            exclude=post.id,
        )
        at = slots.next_free(configured, accounts, sched.zone(tz_name), now=now, taken=taken)
        if at is None:
            raise Conflict(
                f"every posting slot of this post's accounts is taken for the next "
                f"{slots.HORIZON_DAYS} days",
                details={"reason": "no_free_slot", "accountIds": accounts},
            )
        return await _plan_schedule(repo, post, principal, at.isoformat(), tz_name, now), []

    return await _transition(request, principal, post_id, "queued", change)
