"""`/api/v1/api-keys`: machine clients. The key is shown once and stored hashed."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Response

from chorus_gateway import domain
from chorus_gateway.repository import TeamRepository
from chorus_gateway.schemas import ApiKeyCreatedOut, ApiKeyIn, ApiKeyOut, ApiKeysOut
from chorus_gateway.security import token_hash
from chorus_gateway.state import Gateway, gateway
from chorus_runtime.auth import Principal, require_permission
from chorus_runtime.errors import Forbidden, NotFound, ValidationFailed

router = APIRouter(tags=["api-keys"])
GatewayDep = Annotated[Gateway, Depends(gateway)]
KEY_PREFIX = "chk_"
Manager = Annotated[Principal, Depends(require_permission("apikeys:manage"))]


def _out(row: dict) -> ApiKeyOut:  # type: ignore[type-arg]
    return ApiKeyOut(
        id=UUID(row["id"]),
        name=row["name"],
        scopes=list(row["scopes"]),
        prefix=row["prefix"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row.get("last_used_at"),
    )


@router.post(
    "/api/v1/api-keys",
    status_code=201,
    response_model=ApiKeyCreatedOut,
    response_model_by_alias=True,
)
async def create_key(body: ApiKeyIn, principal: Manager, gw: GatewayDep) -> ApiKeyCreatedOut:
    if principal.token_type != "user":
        raise Forbidden("API keys cannot create API keys")
    domain.check_scopes(body.scopes, principal.permissions)
    now = datetime.now(UTC)
    if body.expires_at is not None and body.expires_at <= now:
        raise ValidationFailed(
            "expiresAt must be in the future",
            details=[{"field": "expiresAt", "message": "must be in the future", "type": "past"}],
        )
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = f"{KEY_PREFIX}{prefix}_{secret}"
    row = {
        "id": str(uuid.uuid4()),
        "name": body.name,
        "prefix": prefix,
        "key_hash": token_hash(key),
        "scopes": body.scopes,
        "created_by": principal.subject,
        "created_at": now,
        "expires_at": body.expires_at,
    }
    async with gw.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        await TeamRepository(uow).insert_api_key(**row)
        await uow.commit()
    return ApiKeyCreatedOut(api_key=_out(row), key=key)


@router.get("/api/v1/api-keys", response_model=ApiKeysOut, response_model_by_alias=True)
async def list_keys(principal: Manager, gw: GatewayDep) -> ApiKeysOut:
    async with gw.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        rows = await TeamRepository(uow).api_keys()
    return ApiKeysOut(api_keys=[_out(r) for r in rows])


@router.delete("/api/v1/api-keys/{key_id}", status_code=204)
async def revoke_key(key_id: UUID, principal: Manager, gw: GatewayDep) -> Response:
    async with gw.db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        revoked = await TeamRepository(uow).revoke_api_key(str(key_id), datetime.now(UTC))
        await uow.commit()
    if not revoked:
        raise NotFound("API key not found")
    gw.api_key_cache.clear()  # revocation applies at once on this replica
    return Response(status_code=204)
