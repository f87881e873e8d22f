"""Issuing and rotating sessions: access JWTs and refresh-token families.

Refresh tokens are `<id>.<secret>`; only the hash is stored. Presenting a token that was
already rotated means it leaked (or a client raced): the whole family is revoked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chorus_contracts.events.common import Role
from chorus_gateway import domain
from chorus_gateway.keys import KeyStore
from chorus_gateway.repository import IdentityRepository, User, Workspace
from chorus_gateway.security import new_secret, same, token_hash
from chorus_gateway.settings import GatewaySettings
from chorus_runtime.errors import Unauthorized


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


class Sessions:
    def __init__(self, keys: KeyStore, settings: GatewaySettings) -> None:
        self.keys = keys
        self.settings = settings

    def access_token(self, user: User, workspace: Workspace, role: Role) -> str:
        return self.keys.signer.issue(
            domain.access_claims(
                user_id=user.id,
                workspace_id=workspace.id,
                role=role,
                plan=workspace.plan,
                email=user.email,
            ),
            ttl_seconds=self.settings.access_token_ttl_seconds,
        )

    async def start(
        self,
        repo: IdentityRepository,
        user: User,
        workspace: Workspace,
        role: Role,
        *,
        family_id: str | None = None,
    ) -> Tokens:
        token_id = str(uuid.uuid4())
        refresh = f"{token_id}.{new_secret()}"
        await repo.insert_refresh(
            id=token_id,
            family_id=family_id or str(uuid.uuid4()),
            user_id=user.id,
            workspace_id=workspace.id,
            token_hash=token_hash(refresh),
            expires_at=datetime.now(UTC)
            + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
        )
        return Tokens(
            self.access_token(user, workspace, role),
            refresh,
            self.settings.access_token_ttl_seconds,
        )

    async def rotate(self, repo: IdentityRepository, refresh: str) -> Tokens | str:
        """New tokens, or the family id to revoke (reuse detected), or raise Unauthorized."""
        row = await self._row(repo, refresh)
        now = datetime.now(UTC)
        if row["revoked_at"] is not None or row["expires_at"] <= now:
            raise Unauthorized("refresh token expired or revoked")
        if row["rotated_at"] is not None:
            return str(row["family_id"])  # reuse: the caller revokes and commits, then 401
        user = await repo.user_by_id(row["user_id"])
        membership = await repo.membership(row["user_id"], row["workspace_id"]) if user else None
        if user is None or membership is None:
            return str(row["family_id"])  # removed from the workspace: end the session
        await repo.mark_rotated(row["id"], now)
        return await self.start(
            repo, user, membership.workspace, membership.role, family_id=str(row["family_id"])
        )

    async def family_of(self, repo: IdentityRepository, refresh: str) -> str | None:
        try:
            row = await self._row(repo, refresh)
        except Unauthorized:
            return None
        return str(row["family_id"])

    @staticmethod
    async def _row(repo: IdentityRepository, refresh: str):  # type: ignore[no-untyped-def]
        token_id, _, secret = refresh.partition(".")
        try:
            uuid.UUID(token_id)
        except ValueError:
            raise Unauthorized("invalid refresh token") from None
        row = await repo.refresh_for_update(token_id)
        if not secret or row is None or not same(row["token_hash"], token_hash(refresh)):
            raise Unauthorized("invalid refresh token")
        return row
