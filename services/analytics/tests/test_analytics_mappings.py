"""Mappings and batch preparation, without I/O."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from analytics_testkit import FakeRecord, Offsets, record_for

from chorus_analytics.ingest import batch_token, offset_ranges, prepare
from chorus_analytics.main import consumed_topics
from chorus_analytics.mappings import NIL_UUID, TABLES, mapped_types, tenant_of
from chorus_contracts.catalog import catalog
from chorus_contracts.envelope import CloudEvent, encode
from chorus_contracts.examples import example_to_kafka, load_examples
from chorus_contracts.registry import load_registry

pytestmark = pytest.mark.unit

EXAMPLES = load_examples()

# Every event type → the typed tables it lands in, besides `events`. A new event type must
# come with its line here (and, for a new domain, a migration and a mapping).
EXPECTED_TABLES: dict[str, tuple[str, ...]] = {
    "chorus.identity.workspace.created.v1": ("workspace_changes",),
    "chorus.identity.workspace.plan_changed.v1": ("workspace_changes",),
    "chorus.identity.workspace.settings_changed.v1": ("workspace_changes",),
    "chorus.identity.workspace.deleted.v1": ("workspace_changes",),
    "chorus.identity.member.joined.v1": (),
    "chorus.identity.member.role_changed.v1": (),
    "chorus.identity.member.removed.v1": (),
    "chorus.publishing.post.created.v1": ("post_changes",),
    "chorus.publishing.post.updated.v1": ("post_changes",),
    "chorus.publishing.post.deleted.v1": ("post_changes",),
    "chorus.publishing.post.status_changed.v1": ("post_changes",),
    "chorus.publishing.target.status_changed.v1": (),
    "chorus.connector.post.publish_requested.v1": (),
    "chorus.connector.post.delete_requested.v1": (),
    "chorus.connector.delivery.succeeded.v1": ("post_deliveries",),
    "chorus.connector.delivery.failed.v1": ("post_deliveries",),
    "chorus.connector.delivery.deleted.v1": ("post_deliveries",),
    "chorus.connector.post_metrics.collected.v1": ("post_metric_snapshots",),
    "chorus.connector.account_metrics.collected.v1": ("account_metric_snapshots",),
    "chorus.connector.account.connected.v1": ("account_changes",),
    "chorus.connector.account.status_changed.v1": ("account_changes",),
    "chorus.connector.account.disconnected.v1": ("account_changes",),
    "chorus.connector.comment.received.v1": (),
    "chorus.connector.mention.received.v1": (),
    "chorus.connector.message.received.v1": (),
    "chorus.gateway.request.audited.v1": ("audit_log",),
}


def test_every_registered_event_type_has_an_expected_destination() -> None:
    registry_types = {ev.type for _, ev in load_registry().event_types()}
    assert set(EXPECTED_TABLES) == registry_types == set(catalog())
    mapped = mapped_types()
    for event_type, tables in EXPECTED_TABLES.items():
        assert mapped.get(event_type, ()) == tables, event_type


def test_analytics_consumes_every_registry_topic() -> None:
    assert set(consumed_topics()) == set(load_registry().topics)


def test_every_mapped_table_is_known() -> None:
    for tables in mapped_types().values():
        assert set(tables) <= set(TABLES)


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=[f"{p.parent.name}/{p.stem}" for p, _ in EXAMPLES]
)
def test_every_example_becomes_complete_rows(example: tuple[Path, CloudEvent]) -> None:
    _, event = example
    msg = example_to_kafka(event)
    record = FakeRecord(msg.topic, 3, 41, msg.key, msg.value, msg.headers)
    batch = prepare([record])
    assert batch.dead == []
    expected = ("events", *EXPECTED_TABLES[event.type])
    assert sorted(batch.rows) == sorted(expected)
    for table, rows in batch.rows.items():
        assert len(rows) == 1
        assert len(rows[0]) == len(TABLES[table].columns)
    raw = dict(zip(TABLES["events"].columns, batch.rows["events"][0], strict=True))
    assert raw["event_id"] == event.id
    assert raw["kafka_topic"] == msg.topic
    assert (raw["kafka_partition"], raw["kafka_offset"]) == (3, 41)
    assert raw["data"] == msg.value.decode()
    expected_ws = event.tenantid or event.data.get("workspaceId") or str(NIL_UUID)
    assert str(raw["workspace_id"]) == expected_ws
    for table in expected[1:]:
        row = dict(zip(TABLES[table].columns, batch.rows[table][0], strict=True))
        assert row["workspace_id"] == raw["workspace_id"], "typed rows belong to the same tenant"
        assert row["event_id"] == raw["event_id"]


def test_undecodable_messages_and_tenant_mismatches_are_dead_letters() -> None:
    good = EXAMPLES[0][1]
    headers, value = encode(good)
    other = str(uuid.uuid4())
    mismatch = [(k, other.encode() if k == "ce_tenantid" else v) for k, v in headers]
    if not any(k == "ce_tenantid" for k, _ in headers):
        mismatch.append(("ce_tenantid", other.encode()))
    records = [
        FakeRecord("t", 0, 0, None, b"not json", [("ce_type", b"nonsense")]),
        FakeRecord("t", 0, 1, None, b'{"workspaceId": "nope"}', headers),  # breaks the contract
        FakeRecord("t", 0, 2, None, value, mismatch),
        FakeRecord("t", 0, 3, None, value, headers),
    ]
    batch = prepare(records)
    assert [d.record.offset for d in batch.dead] == [0, 1, 2]
    assert [type(d.error).__name__ for d in batch.dead] == [
        "EnvelopeError",
        "DataValidationError",
        "TenantMismatch",
    ]
    assert len(batch.rows["events"]) == 1


def test_tenant_of_prefers_agreement_and_falls_back_to_nil() -> None:
    ws = uuid.uuid4()
    event = CloudEvent(type="chorus.gateway.request.audited.v1", source="/t", data={})
    assert tenant_of(event) == NIL_UUID
    event = CloudEvent(
        type="chorus.gateway.request.audited.v1", source="/t", tenantid=str(ws), data={}
    )
    assert tenant_of(event) == ws


def test_the_batch_token_names_the_offset_ranges() -> None:
    offsets = Offsets()
    events = [e for _, e in EXAMPLES[:6]]
    records = [record_for(e, offsets) for e in events]
    assert batch_token(records) == batch_token(list(reversed(records))), "order-independent"
    assert batch_token(records) != batch_token(records[:-1])
    ranges = offset_ranges(records)
    assert all(lo <= hi for lo, hi in ranges.values())
    assert sum(hi - lo + 1 for lo, hi in ranges.values()) == len(records)
