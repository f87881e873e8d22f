"""`/api/v1/auth/*`, `/api/v1/workspaces` and the JWKS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from chorus_contracts.events.common import Plan, Role
from chorus_contracts.events.identity import MemberJoined, WorkspaceCreated
from chorus_gateway import domain
from chorus_gateway.events import member_event, workspace_event
from chorus_gateway.repository import IdentityRepository, User, Workspace
from chorus_gateway.schemas import (
    LoginIn,
    MembershipOut,
    MeOut,
    RefreshIn,
    RegisterIn,
    SessionOut,
    SwitchIn,
    TokensOut,
    UserOut,
    WorkspaceOut,
    WorkspacesOut,
)
from chorus_gateway.security import (
    hash_password_async,
    normalize_email,
    password_problems,
    verify_password_async,
)
from chorus_gateway.sessions import Tokens
from chorus_gateway.state import Gateway, client_ip, gateway
from chorus_runtime.auth import CurrentPrincipal
from chorus_runtime.errors import Forbidden, NotFound, Unauthorized, ValidationFailed

router = APIRouter(tags=["auth"])
GatewayDep = Annotated[Gateway, Depends(gateway)]
BAD_CREDENTIALS = "invalid email or password"


def _session_out(user: User, ws: Workspace, tokens: Tokens) -> SessionOut:
    return SessionOut(
        user=UserOut(id=UUID(user.id), email=user.email, name=user.name),
        workspace=_ws_out(ws),
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


def _ws_out(ws: Workspace) -> WorkspaceOut:
    return WorkspaceOut(id=UUID(ws.id), name=ws.name, slug=ws.slug, plan=ws.plan)


@router.get(
    "/.well-known/jwks.json", tags=["keys"], summary="Public keys that verify access tokens"
)
async def jwks(gw: GatewayDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return gw.keys.jwks()


@router.post(
    "/api/v1/auth/register",
    status_code=201,
    response_model=SessionOut,
    response_model_by_alias=True,
)
async def register(body: RegisterIn, gw: GatewayDep) -> SessionOut:
    email = normalize_email(body.email)
    problems = password_problems(body.password, email=email, name=body.name)
    if problems:
        raise ValidationFailed(
            "password is too weak",
            details=[
                {"field": "password", "message": f"password {p}", "type": "weak_password"}
                for p in problems
            ],
        )
    now = datetime.now(UTC)
    user = User(
        str(uuid.uuid4()), email, body.name.strip(), await hash_password_async(body.password)
    )
    ws = Workspace(
        str(uuid.uuid4()),
        body.workspace_name.strip(),
        domain.slugify(body.workspace_name),
        Plan.FREE,
        dict(domain.DEFAULT_SETTINGS),
    )
    async with gw.db.unit_of_work(system=True) as uow:
        repo = IdentityRepository(uow)
        await repo.insert_user(user)
        await repo.insert_workspace(ws)
        await repo.add_member(ws.id, user.id, Role.OWNER)
        await workspace_event(
            uow.session,
            WorkspaceCreated(
                workspace_id=UUID(ws.id),
                name=ws.name,
                slug=ws.slug,
                plan=ws.plan,
                owner_user_id=UUID(user.id),
                timezone=ws.settings["timezone"],
                created_at=now,
            ),
            ws.id,
        )
        await member_event(
            uow.session,
            MemberJoined(
                workspace_id=UUID(ws.id),
                user_id=UUID(user.id),
                role=Role.OWNER,
                joined_at=now,
            ),
            ws.id,
            user.id,
        )
        tokens = await gw.sessions.start(repo, user, ws, Role.OWNER)
        await uow.commit()
    return _session_out(user, ws, tokens)


@router.post("/api/v1/auth/login", response_model=SessionOut, response_model_by_alias=True)
async def login(body: LoginIn, request: Request, gw: GatewayDep) -> SessionOut:
    email = normalize_email(body.email)
    ip = client_ip(request)
    await gw.login_guard.check(email, ip)
    async with gw.db.unit_of_work(system=True) as uow:
        repo = IdentityRepository(uow)
        user = await repo.user_by_email(email)
        # Always verify (a dummy hash when the email is unknown): same timing either way.
        if (
            not await verify_password_async(user.password_hash if user else None, body.password)
            or not user
        ):
            await gw.login_guard.record_failure(email, ip)
            raise Unauthorized(BAD_CREDENTIALS)
        memberships = await repo.memberships_of(user.id)
        if body.workspace_id is not None:
            chosen = next(
                (m for m in memberships if m.workspace.id == str(body.workspace_id)), None
            )
            if chosen is None:
                # As in /auth/switch: another workspace's id is indistinguishable from none.
                raise NotFound("workspace not found")
        elif memberships:
            chosen = memberships[0]
        else:
            raise Forbidden("this account belongs to no workspace")
        tokens = await gw.sessions.start(repo, user, chosen.workspace, chosen.role)
        await uow.commit()
    await gw.login_guard.record_success(email, ip)
    return _session_out(user, chosen.workspace, tokens)


@router.post("/api/v1/auth/refresh", response_model=TokensOut, response_model_by_alias=True)
async def refresh(body: RefreshIn, gw: GatewayDep) -> TokensOut:
    async with gw.db.unit_of_work(system=True) as uow:
        repo = IdentityRepository(uow)
        outcome = await gw.sessions.rotate(repo, body.refresh_token)
        if isinstance(outcome, str):
            await repo.revoke_family(outcome, datetime.now(UTC))
            await uow.commit()
            raise Unauthorized("refresh token reuse detected; the session was revoked")
        await uow.commit()
    return TokensOut(
        access_token=outcome.access_token,
        refresh_token=outcome.refresh_token,
        expires_in=outcome.expires_in,
    )


@router.post("/api/v1/auth/logout", status_code=204)
async def logout(body: RefreshIn, gw: GatewayDep) -> Response:
    async with gw.db.unit_of_work(system=True) as uow:
        repo = IdentityRepository(uow)
        family = await gw.sessions.family_of(repo, body.refresh_token)
        if family is not None:
            await repo.revoke_family(family, datetime.now(UTC))
            await uow.commit()
    # 204 either way: logout must not reveal whether a token was valid.
    return Response(status_code=204)


async def _user_membership(gw: Gateway, user_id: str, workspace_id: str):  # type: ignore[no-untyped-def]
    async with gw.db.unit_of_work(system=True) as uow:
        repo = IdentityRepository(uow)
        user = await repo.user_by_id(user_id)
        membership = await repo.membership(user_id, workspace_id) if user else None
    return user, membership


@router.get("/api/v1/auth/me", response_model=MeOut, response_model_by_alias=True)
async def me(principal: CurrentPrincipal, gw: GatewayDep) -> MeOut:
    if principal.token_type != "user":
        raise Forbidden("this endpoint is for users, not API keys")
    user, membership = await _user_membership(gw, principal.subject, principal.workspace_id)
    if user is None or membership is None:
        raise Unauthorized("the session's membership no longer exists")
    return MeOut(
        user=UserOut(id=UUID(user.id), email=user.email, name=user.name),
        workspace=_ws_out(membership.workspace),
        role=membership.role,
        permissions=sorted(principal.permissions),
    )


@router.get("/api/v1/workspaces", response_model=WorkspacesOut, response_model_by_alias=True)
async def my_workspaces(principal: CurrentPrincipal, gw: GatewayDep) -> WorkspacesOut:
    if principal.token_type != "user":
        raise Forbidden("this endpoint is for users, not API keys")
    async with gw.db.unit_of_work(system=True) as uow:
        memberships = await IdentityRepository(uow).memberships_of(principal.subject)
    return WorkspacesOut(
        workspaces=[
            MembershipOut(workspace=_ws_out(m.workspace), role=m.role, joined_at=m.joined_at)
            for m in memberships
        ]
    )


@router.post("/api/v1/auth/switch", response_model=SessionOut, response_model_by_alias=True)
async def switch(body: SwitchIn, principal: CurrentPrincipal, gw: GatewayDep) -> SessionOut:
    if principal.token_type != "user":
        raise Forbidden("this endpoint is for users, not API keys")
    async with gw.db.unit_of_work(system=True) as uow:
        repo = IdentityRepository(uow)
        user = await repo.user_by_id(principal.subject)
        membership = (
            await repo.membership(principal.subject, str(body.workspace_id)) if user else None
        )
        if user is None or membership is None:
            # Another workspace's id is indistinguishable from one that does not exist.
            raise NotFound("workspace not found")
        tokens = await gw.sessions.start(repo, user, membership.workspace, membership.role)
        await uow.commit()
    return _session_out(user, membership.workspace, tokens)
