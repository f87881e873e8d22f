"""`emit_many` (component, real Postgres): a batch of events staged with one statement is
what the same events staged one by one with `emit` would be — ids, order, keys, subjects,
tenants and payloads — and the relay is woken when the transaction commits."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from publishing_testkit import Publishing

from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import PublishContent, PublishRequested
from chorus_runtime.db.database import to_asyncpg_dsn
from chorus_runtime.outbox import NOTIFY_CHANNEL, Emission, emit, emit_many

pytestmark = pytest.mark.component


def command(workspace: str) -> PublishRequested:
    now = datetime.now(UTC)
    target = uuid.uuid4()
    return PublishRequested(
        command_id=uuid.uuid4(),
        workspace_id=uuid.UUID(workspace),
        post_id=uuid.uuid4(),
        target_id=target,
        platform=Platform.X,
        account_id=uuid.uuid4(),
        attempt=1,
        idempotency_key=str(target),
        deadline=now + timedelta(minutes=15),
        content=PublishContent(text="hi"),
        requested_at=now,
    )


async def test_emit_many_stages_the_batch_in_order_like_emit_does(
    publishing: Publishing,
) -> None:
    assert publishing.runtime is not None and publishing.runtime.db is not None
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    batch = [
        Emission(command(a), topic="connector.commands", key="k1", source="/t", tenant_id=a),
        Emission(
            command(b), topic="connector.commands", key="k2", source="/t", tenant_id=b, subject="s"
        ),
        Emission(command(a), topic="publishing.posts", key="k1", source="/t", tenant_id=a),
    ]
    listener = await asyncpg.connect(to_asyncpg_dsn(publishing.db.owner_url))
    woken = asyncio.Event()
    await listener.add_listener(NOTIFY_CHANNEL, lambda *_: woken.set())
    try:
        async with publishing.runtime.db.unit_of_work(system=True) as uow:
            single = await emit(
                uow.session, command(b), topic="connector.commands", key="k0", source="/t",
                tenant_id=b,
            )  # fmt: skip
            staged = await emit_many(uow.session, batch)
            assert await emit_many(uow.session, []) == []
            await uow.commit()
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await listener.close()

    rows = await publishing.outbox()
    assert [r.headers["ce_id"] for r in rows] == [str(e.id) for e in [single, *staged]]
    assert [r.topic for r in rows] == ["connector.commands"] + [e.topic for e in batch]
    assert [r.key for r in rows] == ["k0", "k1", "k2", "k1"]
    assert [r.headers["ce_subject"] for r in rows] == ["k0", "k1", "s", "k1"]
    assert [r.headers["ce_tenantid"] for r in rows] == [b, a, b, a]
    assert [r.data for r in rows[1:]] == [e.data for e in batch]
    assert rows[0].headers.keys() == rows[1].headers.keys(), "the same envelope either way"
