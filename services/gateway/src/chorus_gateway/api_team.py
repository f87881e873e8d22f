"""`/api/v1/team/*`, `/api/v1/settings`, `/api/v1/workspace/plan`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Response

from chorus_contracts.events.common import Role
from chorus_contracts.events.identity import (
    MemberJoined,
    MemberRemoved,
    MemberRoleChanged,
    WorkspacePlanChanged,
    WorkspaceSettingsChanged,
)
from chorus_gateway import domain
from chorus_gateway.api_auth import _session_out
from chorus_gateway.events import member_event, workspace_event
from chorus_gateway.repository import IdentityRepository, TeamRepository, User
from chorus_gateway.schemas import (
    AcceptIn,
    InvitationCreatedOut,
    InvitationOut,
    InviteIn,
    MemberOut,
    MembersOut,
    PlanIn,
    RoleIn,
    SessionOut,
    SettingsIn,
    SettingsOut,
    WorkspaceOut,
)
from chorus_gateway.security import (
    hash_password_async,
    new_secret,
    normalize_email,
    password_problems,
    token_hash,
    verify_password_async,
)
from chorus_gateway.state import Gateway, gateway
from chorus_runtime.auth import CurrentPrincipal, Principal, require_permission
from chorus_runtime.errors import (
    ChorusError,
    Conflict,
    Forbidden,
    NotFound,
    QuotaExceeded,
    Unauthorized,
    ValidationFailed,
)

router = APIRouter(tags=["team"])
GatewayDep = Annotated[Gateway, Depends(gateway)]


def _actor_role(principal: Principal) -> Role:
    try:
        return Role(principal.role)
    except ValueError:
        raise Forbidden("API keys cannot manage the team") from None


@router.get("/api/v1/team/members", response_model=MembersOut, response_model_by_alias=True)
async def list_members(principal: CurrentPrincipal, gw: GatewayDep) -> MembersOut:
    async with gw.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        rows = await TeamRepository(uow).members()
    return MembersOut(
        members=[
            MemberOut(
                user_id=UUID(r["id"]),
                email=r["email"],
                name=r["name"],
                role=Role(r["role"]),
                joined_at=r["created_at"],
            )
            for r in rows
        ]
    )


@router.post(
    "/api/v1/team/invitations",
    status_code=201,
    response_model=InvitationCreatedOut,
    response_model_by_alias=True,
)
async def invite(
    body: InviteIn,
    principal: Annotated[Principal, Depends(require_permission("team:invite"))],
    gw: GatewayDep,
) -> InvitationCreatedOut:
    domain.check_can_grant(_actor_role(principal), body.role)
    now = datetime.now(UTC)
    token = new_secret()
    invitation_id = str(uuid.uuid4())
    expires_at = now + timedelta(seconds=gw.settings.invitation_ttl_seconds)
    async with gw.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        team = TeamRepository(uow)
        ws = await team.workspace()
        seats = gw.plans[ws.plan].quotas.seats
        used = await team.member_count() + await team.pending_invitations(now)
        if seats is not None and used >= seats:
            raise QuotaExceeded(
                f"the {ws.plan.value} plan includes {seats} seats",
                details={"quota": "seats", "limit": seats, "used": used},
            )
        await team.insert_invitation(
            id=invitation_id,
            email=normalize_email(body.email),
            role=body.role.value,
            token_hash=token_hash(token),
            invited_by=principal.subject,
            expires_at=expires_at,
        )
        await uow.commit()
    return InvitationCreatedOut(
        invitation=InvitationOut(
            id=UUID(invitation_id),
            email=normalize_email(body.email),
            role=body.role,
            expires_at=expires_at,
        ),
        token=token,
    )


@router.post(
    "/api/v1/team/invitations/{token}/accept",
    response_model=SessionOut,
    response_model_by_alias=True,
)
async def accept(token: str, body: AcceptIn, gw: GatewayDep) -> SessionOut:
    now = datetime.now(UTC)
    async with gw.db.unit_of_work(system=True) as uow:
        repo = IdentityRepository(uow)
        inv = await repo.invitation_for_update(token_hash(token))
        if inv is None:
            raise NotFound("invitation not found")
        if inv["accepted_at"] is not None:
            raise Conflict("invitation already used")
        if inv["expires_at"] <= now:
            raise ChorusError("invitation expired", status_code=410, code="INVITATION_EXPIRED")
        user = await repo.user_by_email(inv["email"])
        if user is None:
            problems = password_problems(body.password, email=inv["email"])
            if problems:
                raise ValidationFailed(
                    "password is too weak",
                    details=[
                        {"field": "password", "message": f"password {p}", "type": "weak_password"}
                        for p in problems
                    ],
                )
            user = User(
                str(uuid.uuid4()),
                inv["email"],
                body.name.strip(),
                await hash_password_async(body.password),
            )
            await repo.insert_user(user)
        elif not await verify_password_async(user.password_hash, body.password):
            # An existing account joins with its own password: proof the invitee owns it.
            raise Unauthorized("invalid email or password")
        role = Role(inv["role"])
        await repo.add_member(inv["workspace_id"], user.id, role)
        await repo.accept_invitation(inv["id"], now)
        await member_event(
            uow.session,
            MemberJoined(
                workspace_id=UUID(inv["workspace_id"]),
                user_id=UUID(user.id),
                role=role,
                invited_by=UUID(inv["invited_by"]),
                joined_at=now,
            ),
            inv["workspace_id"],
            user.id,
        )
        ws = await repo.workspace(inv["workspace_id"])
        assert ws is not None
        tokens = await gw.sessions.start(repo, user, ws, role)
        await uow.commit()
    return _session_out(user, ws, tokens)


@router.put(
    "/api/v1/team/members/{user_id}", response_model=MemberOut, response_model_by_alias=True
)
async def change_role(
    user_id: UUID,
    body: RoleIn,
    principal: Annotated[Principal, Depends(require_permission("team:manage"))],
    gw: GatewayDep,
) -> MemberOut:
    actor = _actor_role(principal)
    now = datetime.now(UTC)
    async with gw.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        team = TeamRepository(uow)
        current = await team.member_role(str(user_id), for_update=True)
        if current is None:
            raise NotFound("member not found")
        domain.check_can_manage(actor, current)
        domain.check_can_grant(actor, body.role)
        domain.check_owner_remains(current, body.role, await team.owner_count())
        if current is not body.role:
            await team.set_role(str(user_id), body.role)
            await member_event(
                uow.session,
                MemberRoleChanged(
                    workspace_id=UUID(principal.workspace_id),
                    user_id=user_id,
                    previous_role=current,
                    role=body.role,
                    changed_by=UUID(principal.subject),
                    changed_at=now,
                ),
                principal.workspace_id,
                str(user_id),
            )
        member = next(m for m in await team.members() if m["id"] == str(user_id))
        await uow.commit()
    return MemberOut(
        user_id=user_id,
        email=member["email"],
        name=member["name"],
        role=body.role,
        joined_at=member["created_at"],
    )


@router.delete("/api/v1/team/members/{user_id}", status_code=204)
async def remove_member(
    user_id: UUID,
    principal: Annotated[Principal, Depends(require_permission("team:manage"))],
    gw: GatewayDep,
) -> Response:
    actor = _actor_role(principal)
    now = datetime.now(UTC)
    async with gw.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        team = TeamRepository(uow)
        current = await team.member_role(str(user_id), for_update=True)
        if current is None:
            raise NotFound("member not found")
        domain.check_can_manage(actor, current)
        domain.check_owner_remains(current, None, await team.owner_count())
        await team.remove_member(str(user_id))
        await member_event(
            uow.session,
            MemberRemoved(
                workspace_id=UUID(principal.workspace_id),
                user_id=user_id,
                removed_by=UUID(principal.subject),
                removed_at=now,
            ),
            principal.workspace_id,
            str(user_id),
        )
        await uow.commit()
    async with gw.db.unit_of_work(system=True) as uow:
        await IdentityRepository(uow).revoke_user_sessions(
            str(user_id), principal.workspace_id, now
        )
        await uow.commit()
    return Response(status_code=204)


@router.get("/api/v1/settings", response_model=SettingsOut, response_model_by_alias=True)
async def get_settings(
    principal: Annotated[Principal, Depends(require_permission("settings:view"))],
    gw: GatewayDep,
) -> SettingsOut:
    async with gw.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        ws = await TeamRepository(uow).workspace()
    return SettingsOut.model_validate({**domain.DEFAULT_SETTINGS, **ws.settings})


@router.put("/api/v1/settings", response_model=SettingsOut, response_model_by_alias=True)
async def put_settings(
    body: SettingsIn,
    principal: Annotated[Principal, Depends(require_permission("settings:update"))],
    gw: GatewayDep,
) -> SettingsOut:
    now = datetime.now(UTC)
    settings = body.model_dump(mode="json", by_alias=True)
    async with gw.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        team = TeamRepository(uow)
        await team.update_settings(settings)
        await workspace_event(
            uow.session,
            WorkspaceSettingsChanged(
                workspace_id=UUID(principal.workspace_id),
                timezone=body.timezone,
                default_locale=body.default_locale,
                approval_required_for=body.approval_required_for,
                changed_by=UUID(principal.subject),
                changed_at=now,
            ),
            principal.workspace_id,
        )
        await uow.commit()
    return SettingsOut.model_validate(settings)


@router.put("/api/v1/workspace/plan", response_model=WorkspaceOut, response_model_by_alias=True)
async def change_plan(
    body: PlanIn,
    principal: Annotated[Principal, Depends(require_permission("billing:manage"))],
    gw: GatewayDep,
) -> WorkspaceOut:
    now = datetime.now(UTC)
    async with gw.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        team = TeamRepository(uow)
        ws = await team.workspace()
        if ws.plan is not body.plan:
            await team.set_plan(body.plan)
            await workspace_event(
                uow.session,
                WorkspacePlanChanged(
                    workspace_id=UUID(ws.id),
                    previous_plan=ws.plan,
                    plan=body.plan,
                    changed_by=UUID(principal.subject),
                    changed_at=now,
                ),
                ws.id,
            )
        await uow.commit()
    gw.plan_cache.pop(ws.id, None)  # this replica applies the new limits at once
    return WorkspaceOut(id=UUID(ws.id), name=ws.name, slug=ws.slug, plan=body.plan)
