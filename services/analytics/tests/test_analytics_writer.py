"""The ClickHouse side of ingest on real chdb: tables, dedup, outages, rejected rows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from analytics_testkit import (
    FakeRecord,
    Offsets,
    account_metrics,
    counts,
    post_metrics,
    record_for,
)
from test_analytics_mappings import EXPECTED_TABLES

from chorus_analytics.ingest import Backoff, ClickHouseWriter, prepare
from chorus_analytics.store import MIGRATIONS, SESSION_SETTINGS
from chorus_contracts.examples import example_to_kafka, load_examples
from chorus_runtime.clickhouse import (
    ClickHouseClient,
    ClickHouseError,
    ClickHouseUnavailable,
    EmbeddedClickHouseClient,
    ServerClickHouseClient,
    migrate_up,
)
from chorus_runtime.clickhouse.base import Params, Rows

pytestmark = pytest.mark.integration


def example_records() -> list[FakeRecord]:
    out = []
    for i, (_, event) in enumerate(load_examples()):
        msg = example_to_kafka(event)
        out.append(FakeRecord(msg.topic, 0, i, msg.key, msg.value, msg.headers))
    return out


def expected_counts(records: Sequence[FakeRecord]) -> dict[str, int]:
    from chorus_contracts.envelope import decode

    out = dict.fromkeys(
        [
            "events",
            "post_deliveries",
            "post_metric_snapshots",
            "account_metric_snapshots",
            "audit_log",
            "workspace_changes",
            "post_changes",
            "account_changes",
        ],
        0,
    )
    for r in records:
        out["events"] += 1
        for table in EXPECTED_TABLES[decode(r.headers, r.value).type]:
            out[table] += 1
    return out


@pytest.fixture(params=["embedded", "server-inprocess"])
async def any_backend(
    request: pytest.FixtureRequest, chdb_path: Path, database: str
) -> AsyncIterator[ClickHouseClient]:
    """The test's migrated database through either client (the server one over chdb)."""
    if request.param == "embedded":
        client: ClickHouseClient = EmbeddedClickHouseClient(
            chdb_path, database=database, settings=SESSION_SETTINGS
        )
    else:
        import clickhouse_connect

        inner = clickhouse_connect.get_client(
            interface="chdb",
            path=str(chdb_path),
            database=database,
            tz_mode="aware",
            settings={"session_timezone": "UTC", **SESSION_SETTINGS},
        )
        client = ServerClickHouseClient(client=inner, database=database)
    yield client
    await client.close()


async def test_every_example_lands_in_its_tables(any_backend: ClickHouseClient) -> None:
    records = example_records()
    batch = prepare(records)
    assert batch.dead == []
    assert await ClickHouseWriter(any_backend).write(batch) == []
    assert await counts(any_backend) == expected_counts(records)
    assert await counts(any_backend, final=False) == expected_counts(records)


async def test_the_same_batch_twice_adds_nothing(ch: EmbeddedClickHouseClient) -> None:
    ws, account = uuid.uuid4(), uuid.uuid4()
    offsets = Offsets()
    events = [
        post_metrics(ws, account, "p1", "2025-03-01T10:00:00", likes=5, impressions=100),
        post_metrics(ws, account, "p1", "2025-03-01T18:00:00", likes=9, impressions=150),
        account_metrics(ws, account, "2025-03-01T12:00:00", 1000),
    ]
    records = [record_for(e, offsets) for e in events] + example_records()
    writer = ClickHouseWriter(ch)
    await writer.write(prepare(records))
    once = await counts(ch, final=False)
    rollup = await ch.query(
        "SELECT argMaxMerge(likes) AS likes FROM post_metrics_daily GROUP BY platform_post_id "
        "ORDER BY platform_post_id"
    )
    rollup_rows = await ch.query("SELECT count() AS n FROM post_metrics_daily")
    for _ in range(2):
        await writer.write(prepare(records))  # redelivered: same offsets, same token
    assert await counts(ch, final=False) == once, "the insert dedup token dropped the resends"
    assert (
        await ch.query(
            "SELECT argMaxMerge(likes) AS likes FROM post_metrics_daily GROUP BY platform_post_id "
            "ORDER BY platform_post_id"
        )
        == rollup
    )
    assert await ch.query("SELECT count() AS n FROM post_metrics_daily") == rollup_rows, (
        "the view's block was deduplicated in the rollup table too"
    )


async def test_a_batch_cut_differently_is_folded_by_event_id(ch: EmbeddedClickHouseClient) -> None:
    """After a crash between insert and commit the redelivered batch may have other
    boundaries (another token): raw copies fold by event id, rollups don't change."""
    ws, account = uuid.uuid4(), uuid.uuid4()
    offsets = Offsets()
    events = [
        post_metrics(ws, account, "p1", f"2025-03-0{d}T10:00:00", likes=10 * d, impressions=100 * d)
        for d in range(1, 6)
    ] + [account_metrics(ws, account, f"2025-03-0{d}T12:00:00", 1000 + d) for d in range(1, 6)]
    records = [record_for(e, offsets) for e in events]
    writer = ClickHouseWriter(ch)
    await writer.write(prepare(records[:4]))
    await writer.write(prepare(records[2:]))  # overlaps the first batch
    await writer.write(prepare(records))

    assert (await counts(ch))["events"] == 10
    assert (await counts(ch))["post_metric_snapshots"] == 5
    assert (await counts(ch, final=False))["events"] > 10, "copies exist until merges"
    daily = await ch.query(
        "SELECT day, argMaxMerge(likes) AS likes FROM post_metrics_daily GROUP BY day ORDER BY day"
    )
    assert [r["likes"] for r in daily] == [10, 20, 30, 40, 50]
    followers = await ch.query(
        "SELECT day, argMaxMerge(followers) AS f FROM account_metrics_daily "
        "GROUP BY day ORDER BY day"
    )
    assert [r["f"] for r in followers] == [1001, 1002, 1003, 1004, 1005]


class FlakyClient(ClickHouseClient):
    """Delegates to a real client; fails inserts while told to (or for chosen events)."""

    def __init__(self, inner: ClickHouseClient) -> None:
        self.inner = inner
        self.unavailable_for = 0  # the next N inserts raise ClickHouseUnavailable
        self.down = False
        self.reject_marker: str | None = None
        self.insert_calls = 0

    async def connect(self) -> None:
        await self.inner.connect()

    async def command(self, sql: str, params: Params | None = None) -> None:
        if self.down:
            raise ClickHouseUnavailable("store down (test)")
        await self.inner.command(sql, params)

    async def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        if self.down:
            raise ClickHouseUnavailable("store down (test)")
        return await self.inner.query(sql, params)

    async def insert(
        self,
        table: str,
        rows: Rows,
        column_names: Sequence[str],
        *,
        dedup_token: str | None = None,
    ) -> None:
        self.insert_calls += 1
        if self.down:
            raise ClickHouseUnavailable("store down (test)")
        if self.unavailable_for > 0:
            self.unavailable_for -= 1
            raise ClickHouseUnavailable("Code: 210. NETWORK_ERROR (test)", code=210)
        if self.reject_marker is not None and any(self.reject_marker in str(r) for r in rows):
            raise ClickHouseError("Code: 27. CANNOT_PARSE_INPUT (test)", code=27)
        await self.inner.insert(table, rows, column_names, dedup_token=dedup_token)

    async def ping(self) -> bool:
        return not self.down and await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


async def test_an_unavailable_store_is_retried_until_it_takes_the_batch(
    ch: EmbeddedClickHouseClient,
) -> None:
    flaky = FlakyClient(ch)
    flaky.unavailable_for = 5
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    writer = ClickHouseWriter(flaky, backoff=Backoff(0.1, 1.0), sleep=sleep)
    records = example_records()
    assert await writer.write(prepare(records)) == []
    assert writer.unavailable_retries == 5
    assert len(slept) == 5 and max(slept) <= 1.0
    assert await counts(ch) == expected_counts(records)


async def test_rejected_events_are_isolated_and_the_rest_is_written(
    ch: EmbeddedClickHouseClient,
) -> None:
    flaky = FlakyClient(ch)
    records = example_records()
    poison = records[5]
    from chorus_contracts.envelope import decode

    flaky.reject_marker = decode(poison.headers, poison.value).id

    async def sleep(_: float) -> None:
        return None

    writer = ClickHouseWriter(flaky, rejected_attempts=2, sleep=sleep)
    dead = await writer.write(prepare(records))
    assert [d.record for d in dead] == [poison]
    expected = expected_counts([r for r in records if r is not poison])
    assert await counts(ch) == expected


async def test_migrating_twice_is_harmless(ch: EmbeddedClickHouseClient) -> None:
    assert await migrate_up(ch, MIGRATIONS) == []
