"""Pure logic: URL factory, SQL splitting, parameter text, type decoding, error parsing."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from chorus_runtime.clickhouse import (
    ClickHouseError,
    ClickHouseUnavailable,
    EmbeddedClickHouseClient,
    ServerClickHouseClient,
    create_clickhouse_client,
    redact_url,
)
from chorus_runtime.clickhouse._codec import (
    decode_json_compact,
    encode_column,
    encode_json_columns,
    encode_json_each_row,
    format_param,
    result_converter,
    split_args,
)
from chorus_runtime.clickhouse._sql import checked_params, split_statements
from chorus_runtime.clickhouse.base import error_from_message


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("chdb:///var/lib/chorus/ch", "/var/lib/chorus/ch"),
        ("chdb://data/ch", "data/ch"),
        ("chdb://:memory:", ":memory:"),
    ],
)
def test_factory_chdb_urls(url: str, path: str) -> None:
    client = create_clickhouse_client(url)
    assert isinstance(client, EmbeddedClickHouseClient)
    assert client.path == (path if path == ":memory:" else str(Path(path).resolve()))


@pytest.mark.unit
def test_factory_chdb_options() -> None:
    client = create_clickhouse_client(
        "chdb:///tmp/x?database=analytics&max_threads=2", settings={"max_memory_usage": 10**9}
    )
    assert isinstance(client, EmbeddedClickHouseClient)
    assert client.database == "analytics"
    assert client._session_settings["max_threads"] == "2"
    assert client._session_settings["max_memory_usage"] == str(10**9)
    override = create_clickhouse_client("chdb:///tmp/x?database=a", database="b")
    assert override.database == "b"  # type: ignore[attr-defined]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "clickhouse://chorus:p%40ss@ch.internal:8123/analytics",
            ("ch.internal", 8123, "chorus", "p@ss", "analytics", False),
        ),
        ("clickhouses://u:p@ch.example.com/db", ("ch.example.com", 8443, "u", "p", "db", True)),
        ("http://localhost:18123", ("localhost", 18123, "default", "", None, False)),
        ("https://u@h:9443/?database=x", ("h", 9443, "u", "", "x", True)),
    ],
)
def test_factory_server_urls(url: str, expected: tuple[object, ...]) -> None:
    client = create_clickhouse_client(url)
    assert isinstance(client, ServerClickHouseClient)
    kw = client._connect_kwargs
    got = (kw["host"], kw["port"], kw["username"], kw["password"], kw["database"], kw["secure"])
    assert got == expected
    assert kw["settings"]["session_timezone"] == "UTC"


@pytest.mark.unit
def test_factory_rejects_unknown_schemes_without_leaking_passwords() -> None:
    with pytest.raises(ValueError, match=r"postgres.*\*\*\*") as err:
        create_clickhouse_client("postgres://u:secret@h/db")
    assert "secret" not in str(err.value)
    with pytest.raises(ValueError, match="scheme"):
        create_clickhouse_client("/just/a/path")
    assert redact_url("clickhouse://u:pw@h:8123/db") == "clickhouse://u:***@h:8123/db"


@pytest.mark.integration
async def test_server_backend_maps_refused_connections_to_unavailable() -> None:
    # Nothing listens on port 1: the transport error must come back typed and retryable.
    client = create_clickhouse_client("http://127.0.0.1:1", connect_timeout=1)
    with pytest.raises(ClickHouseUnavailable):
        await client.query("SELECT 1")
    assert await client.ping() is False
    await client.close()


@pytest.mark.unit
def test_split_statements_respects_quotes_and_comments() -> None:
    sql = """
    -- leading comment; with a semicolon
    CREATE TABLE a (s String DEFAULT 'x;y', `we;ird` UInt8) ENGINE = Memory;
    /* block; comment */
    INSERT INTO a VALUES ('it\\'s;', 1);
    ;
    SELECT "a;b" FROM a -- trailing
    """
    statements = split_statements(sql)
    assert len(statements) == 3
    assert statements[0].endswith("ENGINE = Memory")
    assert "'it\\'s;'" in statements[1]
    assert statements[2].startswith('SELECT "a;b"')
    assert split_statements("-- only a comment\n;\n") == []


@pytest.mark.unit
def test_checked_params_requires_placeholders() -> None:
    sql = "SELECT {a:String}, { b : Array(DateTime64(3, 'UTC')) }"
    naive = datetime(2024, 1, 1, 12)
    assert checked_params(sql, {"a": "x", "b": [naive]}) == {
        "a": "x",
        "b": [naive.replace(tzinfo=UTC)],
    }
    with pytest.raises(ValueError, match=r"\['c'\]"):
        checked_params(sql, {"a": "x", "c": 1})
    with pytest.raises(TypeError, match="bytes"):
        checked_params(sql, {"a": b"raw"})


@pytest.mark.unit
@pytest.mark.parametrize(
    ("value", "type_name", "text"),
    [
        ("it's\t\n\\\x00", "String", "it\\'s\\t\\n\\\\\\0"),
        (None, "Nullable(String)", "\\N"),
        (True, "Bool", "1"),
        (Decimal("1E+3"), "Decimal(18, 2)", "1000"),
        (["a'b", None], "Array(Nullable(String))", "['a\\'b', NULL]"),
        ({"k": [1, 2]}, "Map(String, Array(UInt8))", "{'k': [1, 2]}"),
        ((1, "x"), "Tuple(UInt8, String)", "(1, 'x')"),
        (datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=UTC), "DateTime", "2024-01-02 03:04:05"),
        (
            datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
            "DateTime64(3, 'Asia/Tokyo')",
            "2024-01-02 12:04:05.600000",
        ),
        (datetime(2024, 1, 2, 3, 4, 5), "DateTime64(6)", "2024-01-02 03:04:05.000000"),
        (date(2024, 2, 29), "Date", "2024-02-29"),
        (uuid.UUID(int=1), "UUID", "00000000-0000-0000-0000-000000000001"),
    ],
)
def test_parameter_text(value: object, type_name: str, text: str) -> None:
    assert format_param(value, type_name, UTC) == text


@pytest.mark.unit
def test_type_strings_and_result_decoding() -> None:
    assert split_args("String, Tuple(a UInt8, b Map(String, Int8)), DateTime64(3, 'a,b')") == [
        "String",
        "Tuple(a UInt8, b Map(String, Int8))",
        "DateTime64(3, 'a,b')",
    ]
    tokyo = result_converter("DateTime('Asia/Tokyo')")("1704164645")
    assert tokyo == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert tokyo.tzinfo == ZoneInfo("Asia/Tokyo")
    assert result_converter("DateTime64(3)")("-0.500") == datetime(
        1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC
    )
    assert result_converter("Tuple(a UInt8, `b c` Nullable(Decimal(9, 2)))")(
        {"a": 1, "b c": "2.50"}
    ) == {"a": 1, "b c": Decimal("2.50")}
    assert result_converter("Map(UInt16, Array(Float64))")({"7": ["nan", 1.5]})[7][1] == 1.5
    payload = (
        b'{"meta":[{"name":"n","type":"UInt64"},{"name":"t","type":"Time"}],'
        b'"data":[[18446744073709551615,"-01:00:00.5"]],"rows":1}'
    )
    (row,) = decode_json_compact(payload)
    assert row["n"] == 2**64 - 1
    assert row["t"].total_seconds() == -3600.5


@pytest.mark.unit
def test_insert_encoding_uses_column_types() -> None:
    text = encode_json_each_row(
        [
            [
                datetime(2024, 7, 1, 12, tzinfo=UTC),
                datetime(2024, 7, 1, 12, 0, 0, 999999),  # naive: UTC; DateTime drops the fraction
                Decimal("1.10"),
                'q"\n',
                {"n": 1, "when": date(2024, 1, 2)},
                {"2": ["x"]},
            ]
        ],
        ["a", "b", "c", "d", "e", "f"],
        {
            "a": "DateTime64(3, 'America/New_York')",
            "b": "DateTime",
            "c": "Decimal(9, 2)",
            "e": "Tuple(n UInt8, when Date)",
            "f": "Map(UInt8, Array(String))",
        },
        UTC,
    )
    assert text == (
        '["2024-07-01 08:00:00.000000","2024-07-01 12:00:00","1.10","q\\"\\n",'
        '{"n":1,"when":"2024-01-02"},{"2":["x"]}]\n'
    )


@pytest.mark.unit
def test_column_encoding_means_what_the_row_encoding_means() -> None:
    u = uuid.UUID("0192a0b1-c2d3-7e4f-8a9b-0c1d2e3f4a5b")
    at = datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    # The common shapes take one pass per column.
    assert encode_column((u, None), "Nullable(UUID)", UTC) == [u.hex, None]
    assert encode_column((at, None), "DateTime64(3, 'UTC')", UTC) == [at.timestamp(), None]
    assert encode_column((at,), "DateTime('UTC')", UTC) == [int(at.timestamp())]
    assert encode_column(("a", 1, None), "String", UTC) == ("a", 1, None)
    # Outside the exact epoch range, and for anything else, the per-value converters.
    before = datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)
    assert encode_column((before,), "DateTime64(3, 'UTC')", UTC) == ["1969-12-31 23:59:59.999500"]
    assert encode_column((u,), "String", UTC) == [str(u)]
    assert encode_column(("x",), "Array(String)", UTC) == [["x"]]
    assert encode_column(('{"a":1}',), "JSON", UTC) == [{"a": 1}]
    text = encode_json_columns(
        [[u, 'q"\n', Decimal("1.10")], [u, "", Decimal("2")]],
        ["u", "s", "d"],
        {"u": "UUID", "s": "String", "d": "Decimal(9, 2)"},
        UTC,
    )
    assert text == f'[["{u.hex}","{u.hex}"],["q\\"\\n",""],["1.10","2"]]'


@pytest.mark.unit
def test_error_messages_become_typed_errors() -> None:
    err = error_from_message(
        "Streaming insert finish failed: Code: 60. DB::Exception: Unknown table (x). "
        "(UNKNOWN_TABLE) (version 26.9.2.1)"
    )
    assert (type(err), err.code, err.name) == (ClickHouseError, 60, "UNKNOWN_TABLE")
    assert str(err).startswith("Code: 60.")
    busy = error_from_message("Code: 202. DB::Exception: Too many. (TOO_MANY_SIMULTANEOUS_QUERIES)")
    assert isinstance(busy, ClickHouseUnavailable) and busy.code == 202
    assert error_from_message("boom").code is None
