"""Gateway persistence. Auth flows (login, refresh, invitations) are cross-tenant by nature
and run in explicit system units of work; team and key management run tenant-scoped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chorus_contracts.events.common import Plan, Role
from chorus_gateway.tables import (
    api_keys,
    invitations,
    memberships,
    refresh_tokens,
    users,
    workspaces,
)
from chorus_runtime.db.database import UnitOfWork
from chorus_runtime.db.repository import TenantRepository
from chorus_runtime.errors import AlreadyExists


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    password_hash: str


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    slug: str
    plan: Plan
    settings: dict[str, Any]


@dataclass(frozen=True)
class Membership:
    workspace: Workspace
    role: Role
    joined_at: datetime


def _user(row: Any) -> User:
    return User(row["id"], row["email"], row["name"], row["password_hash"])


def _workspace(row: Any) -> Workspace:
    return Workspace(row["id"], row["name"], row["slug"], Plan(row["plan"]), dict(row["settings"]))


class IdentityRepository:
    """Cross-tenant identity reads/writes (system unit of work only)."""

    def __init__(self, uow: UnitOfWork) -> None:
        if not uow.system:
            raise ValueError("identity flows use a system unit of work")
        self.session: AsyncSession = uow.session

    async def user_by_email(self, email: str) -> User | None:
        row = (await self.session.execute(select(users).where(users.c.email == email))).mappings()
        first = row.first()
        return _user(first) if first else None

    async def user_by_id(self, user_id: str) -> User | None:
        row = (await self.session.execute(select(users).where(users.c.id == user_id))).mappings()
        first = row.first()
        return _user(first) if first else None

    async def insert_user(self, user: User) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    insert(users).values(
                        id=user.id,
                        email=user.email,
                        name=user.name,
                        password_hash=user.password_hash,
                    )
                )
        except IntegrityError:
            raise AlreadyExists("an account with this email already exists") from None

    async def insert_workspace(self, ws: Workspace) -> None:
        await self.session.execute(
            insert(workspaces).values(
                id=ws.id, name=ws.name, slug=ws.slug, plan=ws.plan.value, settings=ws.settings
            )
        )

    async def workspace(self, workspace_id: str) -> Workspace | None:
        row = (
            (await self.session.execute(select(workspaces).where(workspaces.c.id == workspace_id)))
            .mappings()
            .first()
        )
        return _workspace(row) if row else None

    async def add_member(self, workspace_id: str, user_id: str, role: Role) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    insert(memberships).values(
                        workspace_id=workspace_id, user_id=user_id, role=role.value
                    )
                )
        except IntegrityError:
            raise AlreadyExists("already a member of this workspace") from None

    async def memberships_of(self, user_id: str) -> list[Membership]:
        rows = (
            await self.session.execute(
                select(workspaces, memberships.c.role, memberships.c.created_at.label("joined"))
                .join(memberships, memberships.c.workspace_id == workspaces.c.id)
                .where(memberships.c.user_id == user_id)
                .order_by(memberships.c.created_at, workspaces.c.id)
            )
        ).mappings()
        return [Membership(_workspace(r), Role(r["role"]), r["joined"]) for r in rows]

    async def membership(self, user_id: str, workspace_id: str) -> Membership | None:
        for m in await self.memberships_of(user_id):
            if m.workspace.id == workspace_id:
                return m
        return None

    # -- refresh tokens ----------------------------------------------------------------------

    async def insert_refresh(
        self,
        *,
        id: str,
        family_id: str,
        user_id: str,
        workspace_id: str,
        token_hash: str,
        expires_at: datetime,
    ) -> None:
        await self.session.execute(
            insert(refresh_tokens).values(
                id=id,
                family_id=family_id,
                user_id=user_id,
                workspace_id=workspace_id,
                token_hash=token_hash,
                expires_at=expires_at,
            )
        )

    async def refresh_for_update(self, token_id: str) -> Any:
        return (
            (
                await self.session.execute(
                    select(refresh_tokens).where(refresh_tokens.c.id == token_id).with_for_update()
                )
            )
            .mappings()
            .first()
        )

    async def mark_rotated(self, token_id: str, now: datetime) -> None:
        await self.session.execute(
            update(refresh_tokens).where(refresh_tokens.c.id == token_id).values(rotated_at=now)
        )

    async def revoke_family(self, family_id: str, now: datetime) -> None:
        await self.session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def revoke_user_sessions(self, user_id: str, workspace_id: str, now: datetime) -> None:
        await self.session.execute(
            update(refresh_tokens)
            .where(
                refresh_tokens.c.user_id == user_id,
                refresh_tokens.c.workspace_id == workspace_id,
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )

    # -- invitations and API keys (lookups by secret) ----------------------------------------

    async def invitation_for_update(self, token_hash: str) -> Any:
        return (
            (
                await self.session.execute(
                    select(invitations)
                    .where(invitations.c.token_hash == token_hash)
                    .with_for_update()
                )
            )
            .mappings()
            .first()
        )

    async def accept_invitation(self, invitation_id: str, now: datetime) -> None:
        await self.session.execute(
            update(invitations).where(invitations.c.id == invitation_id).values(accepted_at=now)
        )

    async def api_key_by_prefix(self, prefix: str) -> Any:
        return (
            (await self.session.execute(select(api_keys).where(api_keys.c.prefix == prefix)))
            .mappings()
            .first()
        )

    async def touch_api_key(self, key_id: str, now: datetime) -> None:
        await self.session.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now)
        )

    async def plan_of(self, workspace_id: str) -> Plan | None:
        value = (
            await self.session.execute(
                select(workspaces.c.plan).where(workspaces.c.id == workspace_id)
            )
        ).scalar()
        return Plan(value) if value else None


class TeamRepository(TenantRepository):
    """Everything inside one workspace (tenant unit of work; RLS applies)."""

    async def workspace(self) -> Workspace:
        row = (
            (
                await self.session.execute(
                    select(workspaces).where(workspaces.c.id == self.workspace_id)
                )
            )
            .mappings()
            .one()
        )
        return _workspace(row)

    async def members(self) -> list[dict[str, Any]]:
        rows = (
            await self.session.execute(
                select(
                    users.c.id,
                    users.c.email,
                    users.c.name,
                    memberships.c.role,
                    memberships.c.created_at,
                )
                .join(memberships, memberships.c.user_id == users.c.id)
                .where(memberships.c.workspace_id == self.workspace_id)
                .order_by(memberships.c.created_at, users.c.email)
            )
        ).mappings()
        return [dict(r) for r in rows]

    async def member_role(self, user_id: str, *, for_update: bool = False) -> Role | None:
        q = self.select(memberships, memberships.c.role).where(memberships.c.user_id == user_id)
        if for_update:
            q = q.with_for_update()
        value = (await self.session.execute(q)).scalar()
        return Role(value) if value else None

    async def owner_count(self) -> int:
        q = self.select(memberships, func.count()).where(memberships.c.role == Role.OWNER.value)
        return int((await self.session.execute(q)).scalar() or 0)

    async def member_count(self) -> int:
        q = self.select(memberships, func.count())
        return int((await self.session.execute(q)).scalar() or 0)

    async def pending_invitations(self, now: datetime) -> int:
        q = self.select(invitations, func.count()).where(
            invitations.c.accepted_at.is_(None), invitations.c.expires_at > now
        )
        return int((await self.session.execute(q)).scalar() or 0)

    async def set_role(self, user_id: str, role: Role) -> None:
        await self.session.execute(
            self.update(memberships).where(memberships.c.user_id == user_id).values(role=role.value)
        )

    async def remove_member(self, user_id: str) -> None:
        await self.session.execute(self.delete(memberships).where(memberships.c.user_id == user_id))

    async def insert_invitation(self, **values: Any) -> None:
        await self.session.execute(insert(invitations).values(**self.values(**values)))

    async def update_settings(self, settings: dict[str, Any]) -> None:
        await self.session.execute(
            update(workspaces).where(workspaces.c.id == self.workspace_id).values(settings=settings)
        )

    async def set_plan(self, plan: Plan) -> None:
        await self.session.execute(
            update(workspaces).where(workspaces.c.id == self.workspace_id).values(plan=plan.value)
        )

    async def insert_api_key(self, **values: Any) -> None:
        await self.session.execute(insert(api_keys).values(**self.values(**values)))

    async def api_keys(self) -> list[dict[str, Any]]:
        rows = (
            await self.session.execute(
                self.select(api_keys)
                .where(api_keys.c.revoked_at.is_(None))
                .order_by(api_keys.c.created_at)
            )
        ).mappings()
        return [dict(r) for r in rows]

    async def revoke_api_key(self, key_id: str, now: datetime) -> bool:
        result = await self.session.execute(
            self.update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
