"""Identity events through the outbox (design.md §4): written in the caller's transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from chorus_contracts.catalog import EventData
from chorus_runtime.outbox import emit

SOURCE = "/chorus/gateway"


async def workspace_event(session: AsyncSession, data: EventData, workspace_id: str) -> None:
    await emit(
        session,
        data,
        topic="identity.workspaces",
        key=workspace_id,
        source=SOURCE,
        tenant_id=workspace_id,
    )


async def member_event(
    session: AsyncSession, data: EventData, workspace_id: str, user_id: str
) -> None:
    # Keyed by workspace so one workspace's membership history stays ordered.
    await emit(
        session,
        data,
        topic="identity.members",
        key=workspace_id,
        source=SOURCE,
        tenant_id=workspace_id,
        subject=user_id,
    )
