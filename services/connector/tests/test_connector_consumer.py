"""The consumer runtime's guarantees (design.md §4), through the connector's real handler:
dedup, DLQ for poison, retries with backoff for transient errors, offsets acked only after
the outcome is durable."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from connector_testkit import (
    COMMANDS,
    Harness,
    as_event,
    publish_command,
)
from sqlalchemy import text

from chorus_contracts.catalog import build_event
from chorus_contracts.envelope import encode
from chorus_contracts.events.publishing import PostDeleted
from chorus_runtime.consumer import Delivery, PoisonMessage, RetryPolicy, TransientError

pytestmark = pytest.mark.component

Handler = Callable[[Delivery], Awaitable[None]]
_REAL: list[Handler] = []


@pytest.fixture(autouse=True)
def _real_handler(connector: Harness) -> None:
    """The connector's real command handler (the publisher), whatever a test swaps in."""
    _REAL[:] = [connector.sub.handler]


async def on_command(delivery: Delivery) -> None:
    await _REAL[0](delivery)


def failing(
    times: int | None, exc: Callable[[int], BaseException], *, effect_first: bool = True
) -> tuple[Handler, list[int]]:
    """The real handler, made to fail on its first `times` calls (None: always) *after*
    writing its effect, so a failure that leaked a partial write would show."""
    calls: list[int] = []

    async def handler(delivery: Delivery) -> None:
        calls.append(delivery.offset)
        if effect_first:
            await on_command(delivery)
        if times is None or len(calls) <= times:
            raise exc(len(calls))
        if not effect_first:
            await on_command(delivery)

    return handler, calls


async def results(h: Harness) -> int:
    """Delivery results staged by the connector (the ledger claim is committed on purpose
    before a platform call; the result is the effect that must not leak)."""
    return int(await h.scalar("SELECT count(*) FROM outbox WHERE topic = 'connector.deliveries'"))


def commands_acked(h: Harness) -> list[str | None]:
    return [ce_id for topic, ce_id in h.acks if topic == h.topic]


async def test_wiring_subscribes_one_group_to_the_commands_topic(connector: Harness) -> None:
    sub = connector.sub
    assert sub.topic == COMMANDS
    assert sub.group_id == "connector.commands"
    assert sub.dedupe is True
    assert sub.event_types == {
        "chorus.connector.post.publish_requested.v1",
        "chorus.connector.post.delete_requested.v1",
    }


async def test_publish_command_is_recorded_in_the_ledger(connector: Harness) -> None:
    workspace = str(uuid.uuid4())
    command = publish_command(workspace)
    event = as_event(command)
    processed_before = connector.metric("processed")

    await connector.send(event)

    row = await connector.scalar(
        "SELECT row_to_json(l)::text FROM publish_ledger l WHERE target_id = :t",
        t=str(command.target_id),
    )
    assert row is not None, "the command left no ledger row"
    ledger = json.loads(row)
    assert ledger["workspace_id"] == workspace
    assert ledger["post_id"] == str(command.post_id)
    assert ledger["account_id"] == str(command.account_id)
    assert ledger["platform"] == "linkedin"
    assert ledger["status"] == "received"
    assert ledger["last_command_id"] == str(command.command_id)
    assert ledger["commands_received"] == 1
    assert (
        await connector.scalar(
            "SELECT count(*) FROM processed_events WHERE consumer_group = :g AND event_id = :e",
            g="connector.commands",
            e=event.id,
        )
        == 1
    ), "the event id is recorded in the effect's transaction"
    assert connector.sub.processed == 1
    assert commands_acked(connector) == [event.id]
    assert connector.dead_letters == []
    assert connector.metric("processed") == processed_before + 1


async def test_same_event_twice_has_one_effect(connector: Harness) -> None:
    event = as_event(publish_command())
    duplicates_before = connector.metric("duplicate")

    await connector.send(event)
    await connector.send(event)

    assert await connector.ledger_count() == 1
    assert await connector.scalar("SELECT commands_received FROM publish_ledger") == 1
    assert await connector.processed_count() == 1
    assert connector.sub.processed == 1
    assert connector.sub.duplicates == 1
    assert commands_acked(connector) == [event.id, event.id], "the duplicate is acked too"
    assert connector.metric("duplicate") == duplicates_before + 1


async def test_a_new_command_for_the_same_target_is_counted(connector: Harness) -> None:
    """A retry of a publish (new command, same target) updates the one ledger row."""
    workspace = str(uuid.uuid4())
    target = uuid.uuid4()
    first = publish_command(workspace, target=target)
    retry = publish_command(workspace, target=target, attempt=2, post_id=first.post_id)

    await connector.send(as_event(first))
    await connector.send(as_event(retry))

    assert await connector.ledger_count() == 1
    assert await connector.scalar("SELECT commands_received FROM publish_ledger") == 2
    assert await connector.scalar("SELECT last_command_id::text FROM publish_ledger") == str(
        retry.command_id
    )
    assert connector.sub.processed == 2


async def test_ledger_rows_are_tenant_scoped(connector: Harness) -> None:
    """The consumer's transaction carries the event's tenant, so RLS sees the right rows."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await connector.send(as_event(publish_command(a)))
    await connector.send(as_event(publish_command(b)))
    await connector.send(as_event(publish_command(b)))
    db = connector.runtime.db
    assert db is not None
    for tenant, expected in ((a, 1), (b, 2)):
        async with db.unit_of_work(tenant_id=tenant) as uow:
            seen = (await uow.session.execute(text("SELECT count(*) FROM publish_ledger"))).scalar()
        assert seen == expected, tenant


def _bad_messages() -> dict[str, tuple[dict[str, str], bytes, str]]:
    good_headers, good_value = encode(as_event(publish_command()))
    h = {k: v.decode() for k, v in good_headers}
    unknown = {**h, "ce_type": "chorus.connector.post.teleport_requested.v1"}
    return {
        "no envelope at all": ({}, b"not json at all", "EnvelopeError"),
        "ce_id not a UUIDv7": ({**h, "ce_id": str(uuid.uuid4())}, good_value, "EnvelopeError"),
        "malformed ce_type": ({**h, "ce_type": "publish"}, good_value, "EnvelopeError"),
        "unknown ce_type": (unknown, good_value, "UnknownEventType"),
        "wrong specversion": ({**h, "ce_specversion": "0.3"}, good_value, "EnvelopeError"),
        "bad ce_time": ({**h, "ce_time": "yesterday"}, good_value, "EnvelopeError"),
        "value not JSON": (h, b"\xff\xfe not json", "EnvelopeError"),
        "value a JSON list": (h, b"[1, 2, 3]", "EnvelopeError"),
        "xml content type": ({**h, "content-type": "application/xml"}, good_value, "EnvelopeError"),
        "data breaks the contract": (h, b'{"postId": "not-a-uuid"}', "DataValidationError"),
    }


BAD = _bad_messages()


@pytest.mark.parametrize("case", list(BAD))
async def test_an_invalid_message_is_dead_lettered_and_acked(connector: Harness, case: str) -> None:
    headers, value, error_type = BAD[case]
    dlq_before = connector.dlq_metric()

    await connector.send_raw(headers, value, key=b"acct-7")

    assert len(connector.dead_letters) == 1
    dead = connector.dead_letters[0]
    assert dead.value == value, "the original value is kept byte for byte"
    assert dead.key == b"acct-7", "the original key is kept"
    dlq = connector.dlq_headers()
    assert dlq["dlq_error_type"] == error_type
    assert dlq["dlq_error"].startswith(error_type)
    assert dlq["dlq_original_topic"] == connector.topic
    assert dlq["dlq_consumer_group"] == "connector.commands"
    assert dlq["dlq_original_partition"] == "0"
    assert dlq["dlq_failed_at"]
    for name, original in headers.items():
        if name == "traceparent" and dlq[name] != original and len(original) == 55:
            # The DLQ write continues the message's trace: same trace id, the consumer's span.
            assert dlq[name].split("-")[1] == original.split("-")[1]
            continue
        assert dlq[name] == original, f"original header {name} is kept"
    assert len(commands_acked(connector)) == 1, "the partition moves on"
    assert connector.sub.dead_lettered == 1
    assert connector.sub.processed == 0
    assert await connector.ledger_count() == 0
    assert await connector.processed_count() == 0
    assert connector.dlq_metric() == dlq_before + 1


async def test_the_next_message_is_processed_after_a_dead_letter(connector: Harness) -> None:
    good = as_event(publish_command())
    await connector.send_raw({}, b"garbage")
    await connector.send(good)
    assert len(connector.dead_letters) == 1
    assert await connector.ledger_count() == 1
    assert commands_acked(connector) == [None, good.id]


async def test_tenant_mismatch_is_poison_and_dead_lettered_at_once(connector: Harness) -> None:
    handler, calls = failing(0, lambda _: AssertionError("unused"), effect_first=False)
    connector.sub.handler = handler
    command = publish_command()
    event = as_event(command, tenant=str(uuid.uuid4()))  # ce_tenantid ≠ workspaceId

    await connector.send(event)

    assert len(calls) == 1, "poison is not retried"
    assert connector.dlq_headers()["dlq_error_type"] == "PoisonMessage"
    assert "ce_tenantid" in connector.dlq_headers()["dlq_error"]
    assert connector.dlq_headers()["ce_id"] == event.id
    assert await connector.ledger_count() == 0
    assert commands_acked(connector) == [event.id]


async def test_transient_errors_retry_until_success_with_exactly_one_effect(
    connector: Harness,
) -> None:
    failures = 5  # more than poison_attempts: transient errors never dead-letter
    assert failures > connector.runtime.consumers.retry.poison_attempts
    handler, calls = failing(failures, lambda n: TransientError(f"dependency down #{n}"))
    connector.sub.handler = handler
    retried_before = connector.metric("retried")
    event = as_event(publish_command())

    await connector.send(event)

    assert len(calls) == failures + 1
    assert connector.metric("retried") == retried_before + failures
    assert connector.dead_letters == []
    assert connector.sub.processed == 1
    assert await connector.ledger_count() == 1
    assert await connector.scalar("SELECT commands_received FROM publish_ledger") == 1, (
        "the failed attempts' writes were rolled back"
    )
    assert await connector.processed_count() == 1
    assert commands_acked(connector) == [event.id], "acked once, after the effect"


@pytest.mark.parametrize(
    "exc",
    [ConnectionResetError, TimeoutError, lambda n: OSError(f"network unreachable {n}")],
    ids=["ConnectionResetError", "TimeoutError", "OSError"],
)
async def test_builtin_transient_errors_are_retried(
    connector: Harness, exc: Callable[[int], BaseException]
) -> None:
    connector.runtime.consumers.retry = RetryPolicy(initial=0.001, maximum=0.002, poison_attempts=1)
    handler, calls = failing(2, exc)
    connector.sub.handler = handler
    await connector.send(as_event(publish_command()))
    assert len(calls) == 3
    assert connector.dead_letters == []
    assert await connector.ledger_count() == 1


async def test_database_serialization_failure_is_retried(connector: Harness) -> None:
    """A real Postgres 40001 from the handler's own transaction is transient, as SQLAlchemy's
    asyncpg dialect reports it (the driver error is wrapped twice)."""
    connector.runtime.consumers.retry = RetryPolicy(initial=0.001, maximum=0.002, poison_attempts=1)
    calls: list[int] = []

    async def handler(delivery: Delivery) -> None:
        calls.append(1)
        await on_command(delivery)
        if len(calls) == 1:
            assert delivery.uow is not None
            await delivery.uow.session.execute(
                text(
                    "DO $$ BEGIN RAISE EXCEPTION 'could not serialize access' "
                    "USING ERRCODE = '40001'; END $$"
                )
            )

    connector.sub.handler = handler
    await connector.send(as_event(publish_command()))
    assert len(calls) == 2, "retried instead of dead-lettered"
    assert connector.dead_letters == []
    assert await connector.scalar("SELECT commands_received FROM publish_ledger") == 1


async def test_database_constraint_error_is_not_transient(connector: Harness) -> None:
    connector.runtime.consumers.retry = RetryPolicy(initial=0.001, maximum=0.002, poison_attempts=1)
    calls: list[int] = []

    async def handler(delivery: Delivery) -> None:
        calls.append(1)
        await on_command(delivery)
        assert delivery.uow is not None
        await delivery.uow.session.execute(
            text("DO $$ BEGIN RAISE EXCEPTION 'duplicate key' USING ERRCODE = '23505'; END $$")
        )

    connector.sub.handler = handler
    await connector.send(as_event(publish_command()))
    assert calls == [1]
    assert connector.dlq_headers()["dlq_error_type"] == "IntegrityError"
    assert await results(connector) == 0


async def test_non_transient_error_is_dead_lettered_after_poison_attempts(
    connector: Harness,
) -> None:
    attempts = connector.runtime.consumers.retry.poison_attempts
    handler, calls = failing(None, lambda n: ValueError(f"cannot handle this, try {n}"))
    connector.sub.handler = handler
    retried_before = connector.metric("retried")
    dlq_outcome_before = connector.metric("dlq")
    event = as_event(publish_command())

    await connector.send(event)

    assert len(calls) == attempts == 3
    assert connector.metric("retried") == retried_before + attempts - 1
    assert connector.metric("dlq") == dlq_outcome_before + 1
    assert len(connector.dead_letters) == 1
    dlq = connector.dlq_headers()
    assert dlq["dlq_error_type"] == "ValueError"
    assert dlq["dlq_error"] == "ValueError: cannot handle this, try 3"
    assert dlq["ce_id"] == event.id
    assert await results(connector) == 0, "no partial effect survives"
    assert await connector.processed_count() == 0
    assert connector.sub.processed == 0
    assert connector.sub.dead_lettered == 1
    assert commands_acked(connector) == [event.id]


async def test_non_transient_error_that_clears_within_the_attempts_is_processed(
    connector: Harness,
) -> None:
    handler, calls = failing(2, KeyError)
    connector.sub.handler = handler
    await connector.send(as_event(publish_command()))
    assert len(calls) == 3
    assert connector.dead_letters == []
    assert await connector.ledger_count() == 1
    assert await connector.scalar("SELECT commands_received FROM publish_ledger") == 1


async def test_poison_message_goes_to_the_dlq_immediately(connector: Harness) -> None:
    handler, calls = failing(None, lambda _: PoisonMessage("this can never work"))
    connector.sub.handler = handler
    retried_before = connector.metric("retried")
    event = as_event(publish_command())

    await connector.send(event)

    assert len(calls) == 1
    assert connector.metric("retried") == retried_before
    assert connector.dlq_headers()["dlq_error"] == "PoisonMessage: this can never work"
    assert await results(connector) == 0
    assert commands_acked(connector) == [event.id]


async def test_an_event_type_the_subscriber_does_not_handle_is_skipped(
    connector: Harness,
) -> None:
    handler, calls = failing(0, lambda _: AssertionError("unused"))
    connector.sub.handler = handler
    # A known event type that does not belong on this topic's subscription.
    event = build_event(
        PostDeleted(post_id=uuid.uuid4(), workspace_id=uuid.uuid4(), deleted_at=datetime.now(UTC)),
        source="/chorus/publishing",
        tenant_id=str(uuid.uuid4()),
    )

    await connector.send(event)

    assert calls == [], "the handler never sees it"
    assert connector.dead_letters == []
    assert await connector.ledger_count() == 0
    assert await connector.processed_count() == 0
    assert connector.sub.processed == 0
    assert commands_acked(connector) == [event.id], "acked, so the partition moves on"


async def test_messages_on_other_topics_are_not_consumed(connector: Harness) -> None:
    headers, value = encode(as_event(publish_command()))
    await connector.send_raw(headers, value, topic="connector.commands")  # no prefix
    await connector.send_raw(headers, value, topic=connector.prefix + "connector.deliveries")
    assert await connector.ledger_count() == 0
    assert commands_acked(connector) == []
