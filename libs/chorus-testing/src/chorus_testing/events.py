"""Ready-made events for tests that need traffic (publish commands for the connector)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from chorus_contracts.catalog import build_event
from chorus_contracts.envelope import CloudEvent
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import PublishContent, PublishRequested
from chorus_runtime.db.database import Database
from chorus_runtime.outbox import emit


def publish_command(workspace: str, target: uuid.UUID | None = None) -> PublishRequested:
    now = datetime.now(UTC)
    return PublishRequested(
        command_id=uuid.uuid4(),
        workspace_id=uuid.UUID(workspace),
        post_id=uuid.uuid4(),
        target_id=target or uuid.uuid4(),
        platform=Platform.X,
        account_id=uuid.uuid4(),
        attempt=1,
        idempotency_key=str(target or uuid.uuid4()),
        deadline=now + timedelta(minutes=5),
        content=PublishContent(text="hi"),
        requested_at=now,
    )


def publish_command_event(workspace: str, target: uuid.UUID | None = None) -> CloudEvent:
    data = publish_command(workspace, target)
    return build_event(data, source="/tests", tenant_id=workspace, subject=str(data.target_id))


async def stage_publish_commands(database_url: str, workspace: str, n: int) -> None:
    """Commit `n` publish commands into a service's outbox in one transaction."""
    db = Database(database_url)
    try:
        async with db.unit_of_work(tenant_id=workspace) as uow:
            for _ in range(n):
                data = publish_command(workspace)
                await emit(
                    uow.session,
                    data,
                    topic="connector.commands",
                    key=str(data.account_id),
                    source="/chorus/publishing",
                    tenant_id=workspace,
                )
            await uow.commit()
    finally:
        await db.dispose()
