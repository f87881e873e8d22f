"""`/api/v1/accounts`: connect social accounts (OAuth with signed single-use state and
PKCE), list them, remove them, check their health. Tokens never leave the connector."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from chorus_connector.accounts import Account, AccountService
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import AccountStatus
from chorus_runtime.auth import Principal, require_permission

router = APIRouter(prefix="/api/v1/accounts", tags=["accounts"])
Manager = Annotated[Principal, Depends(require_permission("accounts:manage"))]
Viewer = Annotated[Principal, Depends(require_permission("accounts:view"))]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ConnectIn(ApiModel):
    redirect_uri: str = Field(min_length=8, max_length=2048, pattern=r"^https?://")


class ConnectOut(ApiModel):
    authorize_url: str
    state: str


class AccountOut(ApiModel):
    id: UUID
    platform: Platform
    username: str
    display_name: str | None
    status: AccountStatus
    token_expires_at: datetime | None
    scopes: list[str]

    @classmethod
    def of(cls, a: Account) -> AccountOut:
        return cls(
            id=UUID(a.id),
            platform=a.platform,
            username=a.profile.username,
            display_name=a.profile.display_name,
            status=a.status,
            token_expires_at=a.token_expires_at,
            scopes=list(a.scopes),
        )


class AccountEnvelope(ApiModel):
    account: AccountOut


class AccountsOut(ApiModel):
    accounts: list[AccountOut]


class HealthOut(ApiModel):
    account_id: UUID
    status: AccountStatus
    healthy: bool
    token_expires_at: datetime | None
    token_expires_in_seconds: int | None
    reason: str | None


def _service(request: Request) -> AccountService:
    return request.app.state.accounts  # type: ignore[no-any-return]


@router.post("/connect/{platform}", response_model=ConnectOut, response_model_by_alias=True)
async def connect(
    platform: Platform, body: ConnectIn, request: Request, principal: Manager
) -> ConnectOut:
    url, state = await _service(request).start_connect(
        workspace_id=principal.workspace_id,
        user_id=principal.subject,
        platform=platform,
        redirect_uri=body.redirect_uri,
    )
    return ConnectOut(authorize_url=url, state=state)


@router.get(
    "/callback/{platform}",
    status_code=201,
    response_model=AccountEnvelope,
    response_model_by_alias=True,
)
async def callback(
    platform: Platform,
    request: Request,
    principal: Manager,
    code: Annotated[str, Query(min_length=1, max_length=2048)],
    state: Annotated[str, Query(min_length=1, max_length=512)],
) -> AccountEnvelope:
    account = await _service(request).complete_connect(
        workspace_id=principal.workspace_id,
        user_id=principal.subject,
        platform=platform,
        code=code,
        state=state,
    )
    return AccountEnvelope(account=AccountOut.of(account))


@router.get("", response_model=AccountsOut, response_model_by_alias=True)
async def list_accounts(request: Request, principal: Viewer) -> AccountsOut:
    items = await _service(request).list(principal.workspace_id)
    return AccountsOut(accounts=[AccountOut.of(a) for a in items])


@router.delete("/{account_id}", status_code=204)
async def delete_account(account_id: UUID, request: Request, principal: Manager) -> Response:
    await _service(request).disconnect(principal.workspace_id, str(account_id), principal.subject)
    return Response(status_code=204)


@router.get("/{account_id}/health", response_model=HealthOut, response_model_by_alias=True)
async def account_health(account_id: UUID, request: Request, principal: Viewer) -> HealthOut:
    a = await _service(request).get(principal.workspace_id, str(account_id))
    expires_in = (
        int((a.token_expires_at - datetime.now(UTC)).total_seconds())
        if a.token_expires_at
        else None
    )
    return HealthOut(
        account_id=account_id,
        status=a.status,
        healthy=a.status is AccountStatus.ACTIVE,
        token_expires_at=a.token_expires_at,
        token_expires_in_seconds=expires_in,
        reason=a.status_reason,
    )


_ = Any
