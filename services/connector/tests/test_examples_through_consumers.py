"""Every schema example of every topic the connector consumes goes through the connector's
consumer (design.md §9): no dead letter, the expected effect, and a replay changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from connector_testkit import Harness

from chorus_contracts.envelope import CloudEvent
from chorus_contracts.examples import example_to_kafka, examples_for_topic
from chorus_contracts.registry import load_registry

pytestmark = pytest.mark.component

CONSUMED = load_registry().consumed_by("connector")
# The registry lists the connector as a consumer of these, but the foundation slice has no
# subscriber for them yet. Strict xfail: adding the subscriber turns these cases into
# failures that point here, so the set (and EXPECTED) get updated with it.
NOT_YET_SUBSCRIBED = {"identity.workspaces"}
GAP = "registry lists connector as a consumer, but the connector does not subscribe yet"
EXAMPLES: list[tuple[Path, CloudEvent]] = [
    example for topic in CONSUMED for example in examples_for_topic(topic.name)
]
CASES = [
    pytest.param(
        example,
        id=f"{example[0].parent.name}/{example[0].stem}",
        marks=[pytest.mark.xfail(reason=GAP, strict=True)]
        if topic.name in NOT_YET_SUBSCRIBED
        else [],
    )
    for topic in CONSUMED
    for example in examples_for_topic(topic.name)
]


async def recorded_in_ledger(h: Harness, event: CloudEvent) -> None:
    row = await h.scalar(
        "SELECT workspace_id::text || ' ' || post_id::text || ' ' || account_id::text "
        "|| ' ' || platform || ' ' || last_command_id::text || ' ' || commands_received "
        "FROM publish_ledger WHERE target_id = :t",
        t=event.data["targetId"],
    )
    d = event.data
    assert row == " ".join(
        [d["workspaceId"], d["postId"], d["accountId"], d["platform"], d["commandId"], "1"]
    )
    assert await h.ledger_count() == 1
    assert await h.processed_count() == 1
    assert h.sub.processed == 1


async def delete_without_account_is_skipped(h: Harness, event: CloudEvent) -> None:
    """The example's account is not connected here: consumed, recorded, no platform call."""
    assert await h.ledger_count() == 0
    assert await h.processed_count() == 1
    assert h.sub.processed == 1


async def not_acted_on_yet(h: Harness, event: CloudEvent) -> None:
    """Consumed and acknowledged, but no behaviour exists for it in this slice."""
    assert await h.ledger_count() == 0
    assert await h.processed_count() == 0
    assert h.sub.processed == 0


EXPECTED: dict[str, Callable[[Harness, CloudEvent], Awaitable[None]]] = {
    "chorus.connector.post.publish_requested.v1": recorded_in_ledger,
    "chorus.connector.post.delete_requested.v1": delete_without_account_is_skipped,
}
UNSUBSCRIBED_TYPES = {
    t for topic in CONSUMED if topic.name in NOT_YET_SUBSCRIBED for t in topic.event_types
}


def test_the_connector_consumes_topics_with_examples() -> None:
    assert CONSUMED, "the registry names topics the connector consumes"
    assert EXAMPLES, "schemas/examples has examples for them"


def test_every_consumed_event_type_has_an_expected_outcome() -> None:
    """A new event type on a consumed topic must come with its expectation here."""
    types = {t for topic in CONSUMED for t in topic.event_types}
    assert types - UNSUBSCRIBED_TYPES == set(EXPECTED)
    assert {e.type for _, e in EXAMPLES} == types, "every consumed type has an example"


async def test_the_runtime_subscribes_to_every_consumed_topic(connector: Harness) -> None:
    subscribed = {s.topic for s in connector.runtime.consumers.subscriptions}
    assert subscribed == {t.name for t in CONSUMED} - NOT_YET_SUBSCRIBED
    assert subscribed.isdisjoint(NOT_YET_SUBSCRIBED), "a gap was closed: update this test"


@pytest.mark.parametrize("example", CASES)
async def test_example_through_the_consumer(
    connector: Harness, example: tuple[Path, CloudEvent]
) -> None:
    _, event = example
    message = example_to_kafka(event)
    topic = connector.prefix + message.topic

    for _ in range(2):  # the replay must change nothing
        await connector.send_raw(message.headers, message.value, key=message.key, topic=topic)

    assert connector.dead_letters == [], connector.dlq_headers() if connector.dead_letters else ""
    acked = [ce_id for t, ce_id in connector.acks if t == topic]
    assert acked == [event.id, event.id]
    await EXPECTED[event.type](connector, event)
