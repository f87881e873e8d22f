"""Proof that the runtime keeps its promises (foundation issue, tests a–e).

HTTP write → outbox row → relay → Kafka (embedded broker, real protocol) → consumer effect,
against real Postgres databases.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pytest
from opentelemetry.trace import SpanKind

from chorus_contracts.envelope import decode, encode, is_uuid7
from chorus_publishing.repository import upsert_account
from chorus_runtime.outbox import OutboxRelay, RelayConfig
from chorus_runtime.service import Role
from chorus_testing.apps import running
from chorus_testing.events import publish_command_event, stage_publish_commands
from chorus_testing.kafka_io import produce_records, read_records
from chorus_testing.postgres import scalar
from chorus_testing.waiting import eventually_equals, wait_for

pytestmark = pytest.mark.integration

LEDGER_ROWS = "SELECT count(*) FROM publish_ledger"
LEDGER_TOTAL = "SELECT coalesce(sum(commands_received), 0) FROM publish_ledger"


async def connected_account(runtime, workspace: str, platform: str) -> str:  # type: ignore[no-untyped-def]
    """An account in publishing's projection of `connector.accounts` (written with the
    consumer's own repository function), so posts may target it."""
    account_id = str(uuid.uuid4())
    async with runtime.db.unit_of_work(tenant_id=workspace) as uow:
        await upsert_account(
            uow.session,
            id=account_id,
            workspace_id=workspace,
            platform=platform,
            username=f"acme_{platform}",
            status="active",
        )
        await uow.commit()
    return account_id


async def create_and_publish(pub, tokens, workspace: str, n_targets: int = 2) -> dict:  # type: ignore[no-untyped-def]
    headers = tokens.headers(workspace)
    body = {
        "content": {"text": "Hello from Chorus", "hashtags": ["launch"]},
        "platforms": [
            {"platform": p, "accountId": await connected_account(pub.runtime, workspace, p)}
            for p in ["x", "linkedin", "instagram", "threads"][:n_targets]
        ],
    }
    client = pub.client
    created = await client.post("/api/v1/posts", json=body, headers=headers)
    assert created.status_code == 201, created.text
    post = created.json()["post"]
    published = await client.post(f"/api/v1/posts/{post['id']}/publish", headers=headers)
    assert published.status_code == 202, published.text
    return published.json()["post"]


async def test_a_event_arrives_once_with_headers_and_trace(stack, tokens, spans) -> None:  # type: ignore[no-untyped-def]
    workspace = str(uuid.uuid4())
    async with (
        running(stack.connector(), Role.WORKER),
        running(stack.publishing(), Role.ALL, verifier=tokens.verifier()) as pub,
    ):
        post = await create_and_publish(pub, tokens, workspace, n_targets=2)
        url = stack.connector_db.owner_url
        await eventually_equals(lambda: scalar(url, LEDGER_ROWS), 2)

    records = await read_records(
        stack.bootstrap, stack.prefix + "connector.commands", expect=2, settle=0.7
    )
    assert len(records) == 2, "each command published exactly once"
    for rec in records:
        headers = {k: v.decode() for k, v in rec.headers}
        for name in (
            "ce_specversion",
            "ce_id",
            "ce_type",
            "ce_source",
            "ce_time",
            "ce_subject",
            "ce_tenantid",
            "traceparent",
            "content-type",
        ):
            assert headers.get(name), f"missing header {name}"
        assert is_uuid7(headers["ce_id"])
        assert headers["ce_type"] == "chorus.connector.post.publish_requested.v1"
        assert headers["ce_tenantid"] == workspace
        assert rec.key.decode() in {t["accountId"] for t in post["targets"]}
        event = decode(rec.headers, rec.value)
        assert event.data["postId"] == post["id"]
    assert await scalar(stack.connector_db.owner_url, LEDGER_TOTAL) == 2

    finished = spans.get_finished_spans()
    http = [s for s in finished if s.kind is SpanKind.SERVER and "/publish" in s.name]
    assert http, [s.name for s in finished]
    trace_id = http[0].context.trace_id
    consumer_spans = [
        s for s in finished if s.kind is SpanKind.CONSUMER and "connector.commands" in s.name
    ]
    assert consumer_spans, [s.name for s in finished]
    by_id = {s.context.span_id: s for s in finished}
    for span in consumer_spans:
        assert span.context.trace_id == trace_id, "consumer span continues the HTTP trace"
        parent = span.parent
        assert parent is not None
        # Walk up to the HTTP request span.
        chain = []
        node = by_id.get(parent.span_id)
        while node is not None:
            chain.append(node)
            node = by_id.get(node.parent.span_id) if node.parent else None
        assert http[0] in chain or parent.span_id in {
            s.context.span_id for s in finished if s.context.trace_id == trace_id
        }


async def test_b_same_event_twice_has_one_effect(stack) -> None:
    workspace = str(uuid.uuid4())
    dup = publish_command_event(workspace)
    sentinel = publish_command_event(workspace)
    h, v = encode(dup)
    hs, vs = encode(sentinel)
    connector = stack.connector()
    async with running(connector, Role.WORKER):
        await produce_records(
            stack.bootstrap, stack.prefix + "connector.commands", [(h, v), (h, v), (hs, vs)]
        )
        url = stack.connector_db.owner_url
        await eventually_equals(lambda: scalar(url, LEDGER_ROWS), 2)
        sub = connector.consumers.subscriptions[0]
        await wait_for(lambda: sub.duplicates == 1)
    assert await scalar(url, LEDGER_TOTAL) == 2, "the duplicate changed nothing"
    assert sub.processed == 2
    assert (
        await scalar(
            url,
            "SELECT commands_received FROM publish_ledger WHERE target_id = :t",
            t=dup.data["targetId"],
        )
        == 1
    )


async def test_c_malformed_message_goes_to_dlq_and_next_is_processed(stack) -> None:
    workspace = str(uuid.uuid4())
    good = publish_command_event(workspace)
    bad_data = publish_command_event(workspace)
    hb, _ = encode(bad_data)
    hg, vg = encode(good)
    topic = stack.prefix + "connector.commands"
    connector = stack.connector()
    async with running(connector, Role.WORKER):
        await produce_records(
            stack.bootstrap,
            topic,
            [
                ([("ce_type", b"nonsense")], b"not json at all"),  # missing headers
                (hb, b'{"postId": "not-a-uuid"}'),  # valid envelope, data breaks the contract
                (hg, vg),
            ],
        )
        url = stack.connector_db.owner_url
        await eventually_equals(lambda: scalar(url, LEDGER_ROWS), 1)
        sub = connector.consumers.subscriptions[0]
        await wait_for(lambda: sub.dead_lettered == 2)
    dlq = await read_records(stack.bootstrap, topic + ".dlq", expect=2, settle=0.7)
    assert len(dlq) == 2
    errors = [{k: v.decode() for k, v in r.headers} for r in dlq]
    assert errors[0]["dlq_error_type"] == "EnvelopeError"
    assert "ce_specversion" in errors[0]["dlq_error"]
    assert errors[0]["dlq_original_topic"] == topic
    assert errors[0]["dlq_consumer_group"] == "connector.commands"
    assert dlq[0].value == b"not json at all", "the original value is kept"
    assert errors[1]["dlq_error_type"] == "DataValidationError"
    assert errors[1]["ce_id"] == bad_data.id, "original headers are kept"
    assert await scalar(url, "SELECT target_id::text FROM publish_ledger") == good.data["targetId"]


def _relay_process(stack, batch: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CHORUS_PUBLISHING_DATABASE_URL": stack.publishing_db.app_url,
        "CHORUS_PUBLISHING_MIGRATIONS_DATABASE_URL": stack.publishing_db.owner_url,
        "CHORUS_PUBLISHING_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
        "CHORUS_PUBLISHING_TOPIC_PREFIX": stack.prefix,
        "CHORUS_PUBLISHING_OUTBOX_BATCH_SIZE": str(batch),
        "CHORUS_PUBLISHING_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chorus_publishing.main",
            "serve",
            "--role",
            "worker",
            "--port",
            "0",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_d_relay_killed_mid_batch_loses_nothing(stack) -> None:
    total = 1200
    workspace = str(uuid.uuid4())
    await stage_publish_commands(stack.publishing_db.app_url, workspace, total)
    pub_url = stack.publishing_db.owner_url
    unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL"

    relay = _relay_process(stack, batch=50)
    try:
        await wait_for(lambda: _lt(scalar(pub_url, unpublished), total), timeout=60, interval=0.02)
        relay.send_signal(signal.SIGKILL)
        relay.wait(10)
    finally:
        if relay.poll() is None:
            relay.kill()
    left = await scalar(pub_url, unpublished)
    assert 0 < left < total, f"killed mid-stream ({left} of {total} unpublished)"

    relay = _relay_process(stack, batch=50)
    try:
        await eventually_equals(lambda: scalar(pub_url, unpublished), 0, timeout=90)
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(20)

    connector = stack.connector()
    async with running(connector, Role.WORKER):
        url = stack.connector_db.owner_url
        await eventually_equals(lambda: scalar(url, LEDGER_ROWS), total, timeout=120)
        await asyncio.sleep(1)
    assert await scalar(url, LEDGER_TOTAL) == total, "republished duplicates were absorbed"
    sub = connector.consumers.subscriptions[0]
    assert sub.processed == total


async def _lt(coro, bound) -> bool:  # type: ignore[no-untyped-def]
    return (await coro) < bound


async def test_e_broker_down_for_10s_relay_backs_off_and_catches_up(
    stack,
    kafka_broker,
    tokens,  # type: ignore[no-untyped-def]
) -> None:
    workspace = str(uuid.uuid4())
    pub_url = stack.publishing_db.owner_url
    unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    async with (
        running(stack.connector(), Role.WORKER),
        running(stack.publishing(), Role.API, verifier=tokens.verifier()) as pub,
    ):
        assert pub.runtime.db is not None
        relay = OutboxRelay(
            pub.runtime.db,
            RelayConfig(
                service="publishing",
                bootstrap_servers=stack.bootstrap,
                topic_prefix=stack.prefix,
                poll_interval=0.1,
                send_timeout=2.0,
                backoff_max=1.0,
            ),
        )
        task = asyncio.create_task(relay.run())
        try:
            await create_and_publish(pub, tokens, workspace, n_targets=1)
            url = stack.connector_db.owner_url
            await eventually_equals(lambda: scalar(url, LEDGER_ROWS), 1)

            kafka_broker.pause()
            try:
                for _ in range(5):
                    await create_and_publish(pub, tokens, workspace, n_targets=2)
                await asyncio.sleep(10)
                assert await scalar(pub_url, unpublished) > 0, "nothing can be published while down"
            finally:
                kafka_broker.resume()
            await eventually_equals(lambda: scalar(pub_url, unpublished), 0, timeout=60)
            await eventually_equals(lambda: scalar(url, LEDGER_ROWS), 11, timeout=60)
        finally:
            relay.stop()
            await asyncio.wait_for(task, 15)
    assert await scalar(url, LEDGER_TOTAL) == 11, "nothing lost, nothing duplicated"
