"""One behaviour, every backend: the same test bodies run on chdb and on the server path."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chorus_runtime.clickhouse import ClickHouseClient, ClickHouseError, ClickHouseUnavailable

EVENTS_DDL = """
CREATE TABLE events
(
    event_id UUID,
    workspace_id UUID,
    kind LowCardinality(String),
    occurred_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 100
"""
EVENT_COLUMNS = ["event_id", "workspace_id", "kind", "occurred_at"]


def event_batch(size: int, workspace: uuid.UUID) -> list[list[Any]]:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    return [
        [uuid.uuid4(), workspace, "post.published", start + timedelta(seconds=i)]
        for i in range(size)
    ]


async def count(ch: ClickHouseClient, sql: str) -> int:
    rows = await ch.query(sql)
    return int(rows[0]["c"])


async def test_ping_and_simple_query(ch: ClickHouseClient) -> None:
    assert await ch.ping() is True
    assert await ch.query("SELECT 1 AS one, 'x' AS s") == [{"one": 1, "s": "x"}]
    assert await ch.query("SELECT 1 AS one WHERE 0") == []


async def test_resent_batch_with_same_dedup_token_adds_nothing(ch: ClickHouseClient) -> None:
    await ch.command(EVENTS_DDL)
    batch = event_batch(50, uuid.uuid4())

    await ch.insert("events", batch, EVENT_COLUMNS, dedup_token="orders-p0-o100-o149")
    await ch.insert("events", batch, EVENT_COLUMNS, dedup_token="orders-p0-o100-o149")

    assert await count(ch, "SELECT count() AS c FROM events FINAL") == 50
    # Without FINAL too: the second insert was dropped whole, not merged away later.
    assert await count(ch, "SELECT count() AS c FROM events") == 50


async def test_dedup_token_identifies_the_batch_not_its_rows(ch: ClickHouseClient) -> None:
    await ch.command(EVENTS_DDL)
    workspace = uuid.uuid4()
    first, other = event_batch(10, workspace), event_batch(10, workspace)

    await ch.insert("events", first, EVENT_COLUMNS, dedup_token="batch-1")
    await ch.insert("events", other, EVENT_COLUMNS, dedup_token="batch-1")
    assert await count(ch, "SELECT count() AS c FROM events") == 10

    # Same rows under a new token are written, and ReplacingMergeTree collapses them by key.
    await ch.insert("events", first, EVENT_COLUMNS, dedup_token="batch-2")
    assert await count(ch, "SELECT count() AS c FROM events") == 20
    assert await count(ch, "SELECT count() AS c FROM events FINAL") == 10


HOSTILE = [
    "Robert'); DROP TABLE people;--",
    "it\\'s",
    "back\\slash\\",
    'double "quotes"',
    "tab\there",
    "new\nline\r\n",
    "{name:String}",
    "%s %(name)s %%",
    "nul\x00byte",
    "ünïcødé 😀",
    "",
    " ",
]


async def test_parameterized_query_with_hostile_strings(ch: ClickHouseClient) -> None:
    await ch.command("CREATE TABLE people (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
    await ch.insert("people", [[i, name] for i, name in enumerate(HOSTILE)], ["id", "name"])

    for i, name in enumerate(HOSTILE):
        rows = await ch.query(
            "SELECT id, name FROM people WHERE name = {name:String} ORDER BY id", {"name": name}
        )
        assert rows == [{"id": i, "name": name}], repr(name)

    # Literal % in the SQL text next to a bound value: never %-formatted client-side.
    rows = await ch.query(
        "SELECT count() AS c FROM people WHERE name LIKE '%DROP%' AND id >= {min:UInt32}",
        {"min": 0},
    )
    assert rows == [{"c": 1}]
    assert await count(ch, "SELECT count() AS c FROM people") == len(HOSTILE)


async def test_typed_parameters(ch: ClickHouseClient) -> None:
    when = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    tenant = uuid.UUID("0b4c5a3e-6c59-4c1f-9a47-7d2d8f0e9a11")
    rows = await ch.query(
        "SELECT {ts:DateTime64(6)} AS ts, {ts:DateTime64(6)} = toDateTime64('2024-02-29 "
        "23:59:58.123456', 6, 'UTC') AS same_instant, {sec:DateTime} AS sec, "
        "{day:Date} AS day, {tenant:UUID} AS tenant, {amount:Decimal(18, 4)} AS amount, "
        "{tags:Array(String)} AS tags, {maybe:Nullable(String)} AS maybe, "
        "{flag:Bool} AS flag, {big:UInt64} AS big, {ratio:Float64} AS ratio",
        {
            "ts": when,
            "sec": datetime(2024, 1, 1, 8, 0, 0),  # naive: taken as UTC
            "day": date(2024, 2, 29),
            "tenant": tenant,
            "amount": Decimal("12.3456"),
            "tags": ["it's", "a\nb", "c\\d"],
            "maybe": None,
            "flag": True,
            "big": 2**64 - 1,
            "ratio": 0.25,
        },
    )
    assert rows == [
        {
            "ts": when,
            "same_instant": 1,
            "sec": datetime(2024, 1, 1, 8, 0, 0, tzinfo=UTC),
            "day": date(2024, 2, 29),
            "tenant": tenant,
            "amount": Decimal("12.3456"),
            "tags": ["it's", "a\nb", "c\\d"],
            "maybe": None,
            "flag": True,
            "big": 2**64 - 1,
            "ratio": 0.25,
        }
    ]


TRICKY_DDL = """
CREATE TABLE tricky
(
    id UInt32,
    s String,
    maybe Nullable(String),
    ts DateTime64(6, 'UTC'),
    ts_ny DateTime64(3, 'America/New_York'),
    ts_sec DateTime,
    day Date,
    tags Array(String),
    scores Array(Nullable(Int32)),
    attrs Map(String, UInt64),
    doc JSON,
    doc_text String,
    amount Decimal(18, 6),
    uid UUID,
    big UInt64,
    small Int64,
    ratio Float64,
    flag Bool,
    kind LowCardinality(String),
    status Enum8('draft' = 1, 'published' = 2),
    ip IPv4
)
ENGINE = MergeTree
ORDER BY id
"""

TRICKY_COLUMNS = [
    "id",
    "s",
    "maybe",
    "ts",
    "ts_ny",
    "ts_sec",
    "day",
    "tags",
    "scores",
    "attrs",
    "doc",
    "doc_text",
    "amount",
    "uid",
    "big",
    "small",
    "ratio",
    "flag",
    "kind",
    "status",
    "ip",
]


def tricky_rows() -> list[dict[str, Any]]:
    ny = ZoneInfo("America/New_York")
    return [
        {
            "id": 1,
            "s": 'it\'s "quoted"\nnew\tline \\ back ü 😀 \x00 end',
            "maybe": None,
            "ts": datetime(2024, 3, 10, 6, 59, 59, 999999, tzinfo=UTC),
            "ts_ny": datetime(2024, 3, 10, 1, 30, 0, 125000, tzinfo=ny),
            "ts_sec": datetime(2024, 3, 10, 7, 0, 1),  # naive: UTC
            "day": date(1999, 12, 31),
            "tags": ["a'b", "c\nd", "", "ü"],
            "scores": [1, None, -3],
            "attrs": {"views": 2**63, "it's": 0},
            "doc": {"platform": "x", "metrics": {"likes": 3, "ratio": 0.5}, "tags": ["a", "b"]},
            "doc_text": '{"raw": "json \\"text\\"", "n": [1, 2]}',
            "amount": Decimal("-1234567.000001"),
            "uid": uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
            "big": 2**64 - 1,
            "small": -(2**63),
            "ratio": float("inf"),
            "flag": True,
            "kind": "post.published",
            "status": "published",
            "ip": ipaddress.IPv4Address("10.1.2.3"),
        },
        {
            "id": 2,
            "s": "",
            "maybe": "",
            "ts": datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC),
            "ts_ny": datetime(2024, 11, 3, 1, 30, tzinfo=ny),  # ambiguous local hour, fold=0
            "ts_sec": datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
            "day": date(2024, 2, 29),
            "tags": [],
            "scores": [],
            "attrs": {},
            "doc": {"from_dict": True, "nested": {"k": None}},
            "doc_text": "not json at all",
            "amount": Decimal("0"),
            "uid": uuid.UUID(int=0),
            "big": 0,
            "small": 0,
            "ratio": float("nan"),
            "flag": False,
            "kind": "",
            "status": "draft",
            "ip": ipaddress.IPv4Address("0.0.0.0"),
        },
    ]


async def test_round_trip_of_tricky_values(ch: ClickHouseClient) -> None:
    await ch.command(TRICKY_DDL)
    rows = tricky_rows()
    await ch.insert("tricky", rows, TRICKY_COLUMNS)

    got = await ch.query("SELECT * FROM tricky ORDER BY id")

    assert [r["id"] for r in got] == [1, 2]
    first, second = got
    want_first, want_second = rows
    for column in ("s", "maybe", "ts", "ts_ny", "day", "tags", "scores", "attrs", "doc_text"):
        assert first[column] == want_first[column], column
        assert second[column] == want_second[column], column
    for row in got:  # every DateTime comes back tz-aware
        assert all(row[c].tzinfo is not None for c in ("ts", "ts_ny", "ts_sec"))
    assert first["ts_sec"] == datetime(2024, 3, 10, 7, 0, 1, tzinfo=UTC)
    assert second["ts_sec"] == want_second["ts_sec"]
    assert first["doc"]["platform"] == "x"
    assert first["doc"]["tags"] == ["a", "b"]
    assert int(first["doc"]["metrics"]["likes"]) == 3
    assert second["doc"]["from_dict"] is True
    assert first["amount"] == want_first["amount"] and isinstance(first["amount"], Decimal)
    assert first["uid"] == want_first["uid"] and second["uid"] == want_second["uid"]
    assert (first["big"], first["small"]) == (2**64 - 1, -(2**63))
    assert first["ratio"] == math.inf and math.isnan(second["ratio"])
    assert (first["flag"], second["flag"]) == (True, False)
    assert (first["kind"], first["status"], second["status"]) == (
        "post.published",
        "published",
        "draft",
    )
    assert first["ip"] == ipaddress.IPv4Address("10.1.2.3")

    # A JSON column also takes JSON text (a batch of strings; don't mix with dicts in a batch).
    await ch.insert(
        "tricky", [{**want_second, "id": 3, "doc": '{"a": {"b": [1, 2]}}'}], TRICKY_COLUMNS
    )
    third = await ch.query("SELECT doc FROM tricky WHERE id = 3")
    assert third[0]["doc"]["a"]["b"] == [1, 2]

    # Values bound as parameters find the rows they were stored as.
    found = await ch.query(
        "SELECT id FROM tricky WHERE s = {s:String} AND ts = {ts:DateTime64(6, 'UTC')} "
        "AND has(tags, {tag:String}) AND uid = {uid:UUID}",
        {"s": want_first["s"], "ts": want_first["ts"], "tag": "c\nd", "uid": want_first["uid"]},
    )
    assert found == [{"id": 1}]


async def test_round_trip_of_nested_types(ch: ClickHouseClient) -> None:
    await ch.command(
        "CREATE TABLE nested (id UInt8, nt Tuple(n UInt8, day Date), ut Tuple(UInt8, String), "
        "m Map(UInt8, Array(String)), times Array(DateTime64(3, 'Asia/Tokyo')), "
        "maybe_at Nullable(DateTime)) ENGINE = MergeTree ORDER BY id"
    )
    columns = ["id", "nt", "ut", "m", "times", "maybe_at"]
    new_year = datetime(2024, 1, 1, tzinfo=UTC)
    await ch.insert(
        "nested",
        [
            [1, {"n": 1, "day": date(2024, 1, 2)}, (2, "x"), {2: ["x", "y'z"]}, [new_year], None],
            [2, {"n": 3, "day": date(2024, 1, 3)}, [4, "y"], {}, [], datetime(2024, 1, 1, 1, 2, 3)],
        ],
        columns,
    )
    # A named tuple may also come positionally, one form per batch (clickhouse-connect picks
    # the form from the batch's first value).
    await ch.insert("nested", [[3, (5, date(2024, 1, 5)), (6, ""), {}, [], None]], columns)
    assert await ch.query("SELECT * FROM nested ORDER BY id") == [
        {
            "id": 1,
            "nt": {"n": 1, "day": date(2024, 1, 2)},
            "ut": (2, "x"),
            "m": {2: ["x", "y'z"]},
            "times": [new_year],
            "maybe_at": None,
        },
        {
            "id": 2,
            "nt": {"n": 3, "day": date(2024, 1, 3)},
            "ut": (4, "y"),
            "m": {},
            "times": [],
            "maybe_at": datetime(2024, 1, 1, 1, 2, 3, tzinfo=UTC),
        },
        {
            "id": 3,
            "nt": {"n": 5, "day": date(2024, 1, 5)},
            "ut": (6, ""),
            "m": {},
            "times": [],
            "maybe_at": None,
        },
    ]


async def test_insert_accepts_mappings_and_skips_empty_batches(ch: ClickHouseClient) -> None:
    await ch.command("CREATE TABLE kv (k String, v Nullable(Int64)) ENGINE = MergeTree ORDER BY k")
    await ch.insert("kv", [], ["k", "v"])
    await ch.insert("kv", [{"v": 1, "k": "a"}, {"k": "b", "v": None}], ["k", "v"])
    await ch.insert("kv", [("c", 3)], ["k", "v"])
    assert await ch.query("SELECT k, v FROM kv ORDER BY k") == [
        {"k": "a", "v": 1},
        {"k": "b", "v": None},
        {"k": "c", "v": 3},
    ]
    with pytest.raises(ValueError, match="no value for columns"):
        await ch.insert("kv", [{"k": "d"}], ["k", "v"])
    with pytest.raises(ValueError, match="values for 2 columns"):
        await ch.insert("kv", [("d",)], ["k", "v"])


async def test_errors_are_typed(ch: ClickHouseClient) -> None:
    with pytest.raises(ClickHouseError) as syntax:
        await ch.query("SELEC 1")
    assert syntax.value.code == 62
    assert not isinstance(syntax.value, ClickHouseUnavailable)

    with pytest.raises(ClickHouseError) as missing:
        await ch.query("SELECT * FROM no_such_table")
    assert missing.value.code == 60
    assert missing.value.name == "UNKNOWN_TABLE"

    with pytest.raises(ClickHouseError) as bad_param:
        await ch.query("SELECT {n:UInt8} AS n", {"n": "not a number"})
    assert bad_param.value.code is not None

    with pytest.raises(ClickHouseError, match="Multi-statements"):
        await ch.command("CREATE TABLE a (x UInt8) ENGINE = Memory; DROP TABLE a")

    with pytest.raises(ValueError, match="placeholder"):
        await ch.query("SELECT 1 AS x WHERE 1 = %(p)s", {"p": 1})

    # The client is still usable after errors.
    assert await ch.query("SELECT 2 AS two") == [{"two": 2}]


async def test_concurrent_calls_on_one_client(ch: ClickHouseClient) -> None:
    await ch.command("CREATE TABLE n (x UInt32) ENGINE = MergeTree ORDER BY x")
    inserts = [ch.insert("n", [[i]], ["x"], dedup_token=f"n-{i}") for i in range(20)]
    queries = [ch.query("SELECT {i:UInt32} AS i", {"i": i}) for i in range(20)]
    results = await asyncio.gather(*inserts, *queries)
    assert [r[0]["i"] for r in results[20:]] == list(range(20))
    assert await count(ch, "SELECT count() AS c FROM n") == 20


async def test_closed_client_raises_unavailable(ch: ClickHouseClient) -> None:
    await ch.command("CREATE TABLE c (x UInt8) ENGINE = MergeTree ORDER BY x")
    await ch.command("DROP TABLE c SYNC")
    await ch.close()
    await ch.close()  # idempotent

    assert await ch.ping() is False
    with pytest.raises(ClickHouseUnavailable):
        await ch.query("SELECT 1")
    with pytest.raises(ClickHouseUnavailable):
        await ch.command("SELECT 1")
    with pytest.raises(ClickHouseUnavailable):
        await ch.insert("c", [[1]], ["x"])
    # Retry loops catch the base class too.
    assert issubclass(ClickHouseUnavailable, ClickHouseError)


async def test_datetimes_and_uuids_round_trip_at_the_edges_of_the_column_encoding(
    ch: ClickHouseClient,
) -> None:
    # Batches are encoded a column at a time (chdb): datetimes as epoch numbers inside the
    # range where that is exact, as text outside it; UUIDs as hex. Either way, same values.
    await ch.command(
        "CREATE TABLE edge_times (id UInt8, t3 DateTime64(3, 'UTC'), "
        "t6 DateTime64(6, 'Asia/Kolkata'), s DateTime('UTC'), u UUID, n Nullable(UUID)) "
        "ENGINE = MergeTree ORDER BY id"
    )
    u1, u2 = uuid.uuid4(), uuid.uuid4()
    ny = ZoneInfo("America/New_York")
    rows: list[list[Any]] = [
        [
            1,
            # (Before 1970 the text form is used too, but ClickHouse can't print such a
            # DateTime64 as a unix timestamp, which the embedded reader relies on.)
            datetime(2038, 1, 19, 3, 14, 8, 999500, tzinfo=UTC),  # just after 2**31 s
            datetime(2040, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
            datetime(2024, 3, 10, 7, 0, 1, 999999, tzinfo=UTC),
            u1,
            None,
        ],
        [
            2,
            datetime(2025, 1, 1, 0, 0, 0, 123999),  # naive: UTC
            datetime(2025, 6, 30, 12, 0, 0, 1, tzinfo=ny),
            datetime(2030, 1, 1, 0, 0, 0, 500000, tzinfo=ny),
            u2,
            u1,
        ],
    ]
    await ch.insert("edge_times", rows, ["id", "t3", "t6", "s", "u", "n"])
    first, second = await ch.query("SELECT * FROM edge_times ORDER BY id")
    assert first["t3"] == datetime(2038, 1, 19, 3, 14, 8, 999000, tzinfo=UTC)
    assert first["t6"] == datetime(2040, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert first["s"] == datetime(2024, 3, 10, 7, 0, 1, tzinfo=UTC)
    assert (first["u"], first["n"]) == (u1, None)
    assert second["t3"] == datetime(2025, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert second["t6"] == datetime(2025, 6, 30, 12, 0, 0, 1, tzinfo=ny)
    assert second["s"] == datetime(2030, 1, 1, 0, 0, 0, tzinfo=ny)
    assert (second["u"], second["n"]) == (u2, u1)
