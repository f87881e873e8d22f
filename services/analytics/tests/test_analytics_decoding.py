"""The ingest's fast decoding against the contracts' reference decoding, without I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from analytics_testkit import FakeRecord

from chorus_analytics.decoding import FastDecoder
from chorus_analytics.ingest import _map, _reference_decode, prepare
from chorus_contracts.catalog import catalog
from chorus_contracts.envelope import CloudEvent, encode
from chorus_contracts.examples import example_to_kafka, load_examples

pytestmark = pytest.mark.unit

EXAMPLES = load_examples()
KNOWN = frozenset(catalog())
DECODER = FastDecoder(catalog())


def _record(headers: list[tuple[str, Any]], value: bytes | None) -> FakeRecord:
    return FakeRecord("t", 0, 7, None, value, headers)


def _reference_rows(record: FakeRecord, now: Any) -> list[tuple[str, list[Any]]]:
    event, data = _reference_decode(record, KNOWN)
    return _map(record, event, data, now)


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=[f"{p.parent.name}/{p.stem}" for p, _ in EXAMPLES]
)
def test_every_example_decodes_fast_to_what_the_reference_gives(
    example: tuple[Path, CloudEvent],
) -> None:
    msg = example_to_kafka(example[1])
    record = FakeRecord(msg.topic, 1, 5, msg.key, msg.value, msg.headers)
    fast = DECODER.decode(record.headers, record.value)
    assert fast is not None, "a well-formed example takes the fast road"
    envelope, data = fast
    event, reference_data = _reference_decode(record, KNOWN)
    for attr in ("id", "type", "source", "time", "subject", "tenantid"):
        assert getattr(envelope, attr) == getattr(event, attr), attr
    assert data == reference_data
    batch = prepare([record])
    assert batch.dead == []
    assert batch.by_record[0].rows == _reference_rows(record, batch.rows["events"][0][6])


def _good() -> tuple[list[tuple[str, Any]], bytes]:
    for _, event in EXAMPLES:
        if event.type == "chorus.connector.post_metrics.collected.v1":
            headers, value = encode(event)
            return list(headers), value
    raise AssertionError("no post metrics example")


def _with(headers: list[tuple[str, Any]], key: str, value: Any) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in headers if k != key] + [(key, value)]


def _variants() -> dict[str, tuple[list[tuple[str, Any]], bytes | None]]:
    headers, value = _good()
    ce_id = dict(headers)["ce_id"]
    return {
        "specversion": (_with(headers, "ce_specversion", b"0.3"), value),
        "id upper case": (_with(headers, "ce_id", ce_id.upper()), value),
        "id not v7": (_with(headers, "ce_id", b"6ba7b810-9dad-11d1-80b4-00c04fd430c8"), value),
        "no id": ([(k, v) for k, v in headers if k != "ce_id"], value),
        "unknown type": (_with(headers, "ce_type", b"chorus.x.y.z.v1"), value),
        "malformed type": (_with(headers, "ce_type", b"nonsense"), value),
        "source": (_with(headers, "ce_source", b"has space"), value),
        "time": (_with(headers, "ce_time", b"2025-01-01 00:00:00"), value),
        "time offset": (_with(headers, "ce_time", b"2025-01-01T02:00:00.5+02:00"), value),
        "content type": (_with(headers, "content-type", b"text/plain"), value),
        "content type charset": (
            _with(headers, "content-type", b"application/json; charset=utf-8"),
            value,
        ),
        "traceparent": (_with(headers, "traceparent", b"00-bad"), value),
        "header not utf-8": (_with(headers, "ce_subject", b"\xff"), value),
        "str header values": ([(k, v.decode()) for k, v in headers], value),
        "tombstone": (headers, None),
        "not json": (headers, b"{not json"),
        "json array": (headers, b"[1, 2]"),
        "bad utf-8": (headers, value[:-1] + b'"\xff"}'),
        "breaks the contract": (headers, b'{"workspaceId": "nope"}'),
        "duplicate key": (headers, value[:-1] + b',"likes":5}'),
        "tenant mismatch": (
            _with(headers, "ce_tenantid", b"00000000-0000-4000-8000-000000000001"),
            value,
        ),
    }


@pytest.mark.parametrize("name", list(_variants()))
def test_odd_and_bad_messages_end_as_the_reference_decides(name: str) -> None:
    headers, value = _variants()[name]
    record = _record(headers, value)
    batch = prepare([record])
    try:
        expected: Any = _reference_rows(record, batch.rows["events"][0][6] if batch.rows else None)
    except Exception as exc:  # the reference refuses it: a dead letter with that error
        assert [type(d.error) for d in batch.dead] == [type(exc)], name
        assert str(batch.dead[0].error) == str(exc)
        assert batch.rows == {}
    else:  # the reference takes it: so does the ingest, with the same rows
        assert batch.dead == [], name
        assert batch.by_record[0].rows == expected
