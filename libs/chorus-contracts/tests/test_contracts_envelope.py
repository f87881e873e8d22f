"""CloudEvents Kafka binary-mode envelope: round trip and strict decoding."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from chorus_contracts.catalog import DataValidationError, build_event, model_for, parse_data
from chorus_contracts.envelope import (
    H_CONTENT_TYPE,
    H_ID,
    H_SOURCE,
    H_SPECVERSION,
    H_SUBJECT,
    H_TENANT,
    H_TIME,
    H_TRACEPARENT,
    H_TYPE,
    CloudEvent,
    EnvelopeError,
    UnknownEventType,
    decode,
    encode,
    is_uuid7,
    new_event_id,
)
from chorus_contracts.events.identity import WorkspaceDeleted

pytestmark = pytest.mark.unit

TYPE = "chorus.identity.workspace.deleted.v1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WS = "0195807b-5e28-7c3e-8f5e-3a1b2c3d4e5f"


def _event(**overrides: object) -> CloudEvent:
    fields: dict[str, object] = {
        "type": TYPE,
        "source": "/chorus/gateway",
        "time": datetime(2025, 3, 12, 8, 0, 0, 123456, tzinfo=UTC),
        "subject": WS,
        "tenantid": WS,
        "traceparent": TRACEPARENT,
        "tracestate": "chorus=1",
        "data": {"workspaceId": WS, "deletedBy": WS, "deletedAt": "2025-03-12T08:00:00Z"},
    }
    fields.update(overrides)
    return CloudEvent(**fields)  # type: ignore[arg-type]


def _headers(event: CloudEvent | None = None) -> dict[str, bytes]:
    headers, _ = encode(event or _event())
    return dict(headers)


def _value(event: CloudEvent | None = None) -> bytes:
    return encode(event or _event())[1]


def test_round_trip_keeps_every_attribute() -> None:
    event = _event()
    headers, value = encode(event)
    decoded = decode(headers, value)
    assert decoded == event
    assert decoded.version == 1


def test_round_trip_without_optional_attributes() -> None:
    event = _event(subject=None, tenantid=None, traceparent=None, tracestate=None)
    headers, value = encode(event)
    names = [name for name, _ in headers]
    assert H_SUBJECT not in names and H_TENANT not in names and H_TRACEPARENT not in names
    assert decode(headers, value) == event


def test_encoding_is_binary_mode() -> None:
    """Attributes travel as headers; the value is only the data, as compact JSON."""
    event = _event()
    headers = _headers(event)
    assert headers[H_SPECVERSION] == b"1.0"
    assert headers[H_ID] == event.id.encode()
    assert headers[H_TYPE] == TYPE.encode()
    assert headers[H_TIME] == b"2025-03-12T08:00:00.123456Z"
    assert headers[H_CONTENT_TYPE] == b"application/json"
    assert _value(event).startswith(b'{"workspaceId":')


def test_decode_accepts_mapping_str_values_and_case_insensitive_names() -> None:
    headers = {k.upper(): v.decode() for k, v in _headers().items()}
    assert decode(headers, _value()).type == TYPE


def test_decode_converts_time_to_utc() -> None:
    headers = _headers()
    headers[H_TIME] = b"2025-03-12T09:00:00+01:00"
    decoded = decode(headers, _value())
    assert decoded.time == datetime(2025, 3, 12, 8, 0, tzinfo=UTC)
    assert decoded.time.tzinfo == UTC


@pytest.mark.parametrize("name", [H_SPECVERSION, H_ID, H_TYPE, H_SOURCE, H_TIME])
def test_missing_required_header_is_named(name: str) -> None:
    headers = _headers()
    del headers[name]
    with pytest.raises(EnvelopeError) as exc:
        decode(headers, _value())
    assert exc.value.header == name
    assert name in str(exc.value)


@pytest.mark.parametrize("name", [H_ID, H_TYPE, H_SOURCE, H_TIME])
def test_empty_required_header_counts_as_missing(name: str) -> None:
    headers = _headers()
    headers[name] = b""
    with pytest.raises(EnvelopeError) as exc:
        decode(headers, _value())
    assert exc.value.header == name


def test_no_headers_at_all() -> None:
    with pytest.raises(EnvelopeError) as exc:
        decode(None, _value())
    assert exc.value.header == H_SPECVERSION


@pytest.mark.parametrize(
    "bad_id",
    [
        str(uuid.uuid4()),  # right shape, wrong version: ids must sort by time
        "not-a-uuid",
        new_event_id().replace("-", ""),  # v7 but not canonical text
        "{" + new_event_id() + "}",
    ],
)
def test_malformed_id(bad_id: str) -> None:
    headers = _headers()
    headers[H_ID] = bad_id.encode()
    with pytest.raises(EnvelopeError) as exc:
        decode(headers, _value())
    assert exc.value.header == H_ID


@pytest.mark.parametrize(
    "bad_type",
    [
        "identity.workspace.deleted.v1",  # no chorus prefix
        "chorus.identity.workspace.deleted",  # no version
        "chorus.identity.workspace.deleted.v0",  # versions start at 1
        "chorus.Identity.workspace.deleted.v1",  # upper case
        "chorus.identity.v1",  # too few segments
        "chorus.identity.workspace deleted.v1",
    ],
)
def test_malformed_type(bad_type: str) -> None:
    headers = _headers()
    headers[H_TYPE] = bad_type.encode()
    with pytest.raises(EnvelopeError) as exc:
        decode(headers, _value())
    assert exc.value.header == H_TYPE
    assert not isinstance(exc.value, UnknownEventType)


@pytest.mark.parametrize(
    "bad_time", ["yesterday", "2025-03-12T08:00:00", "2025-13-12T08:00:00Z", "1741766400"]
)
def test_bad_time(bad_time: str) -> None:
    headers = _headers()
    headers[H_TIME] = bad_time.encode()
    with pytest.raises(EnvelopeError) as exc:
        decode(headers, _value())
    assert exc.value.header == H_TIME


def test_unsupported_specversion() -> None:
    headers = _headers()
    headers[H_SPECVERSION] = b"0.3"
    with pytest.raises(EnvelopeError) as exc:
        decode(headers, _value())
    assert exc.value.header == H_SPECVERSION


def test_malformed_source() -> None:
    headers = _headers()
    headers[H_SOURCE] = b"chorus gateway"
    with pytest.raises(EnvelopeError) as exc:
        decode(headers, _value())
    assert exc.value.header == H_SOURCE


@pytest.mark.parametrize("value", [b"{not json", b"\xff\xfe", b"", b"NaN-ish"])
def test_non_json_value(value: bytes) -> None:
    with pytest.raises(EnvelopeError, match="not JSON"):
        decode(_headers(), value)


@pytest.mark.parametrize("value", [b"[1, 2, 3]", b'"text"', b"42", b"null"])
def test_json_value_must_be_an_object(value: bytes) -> None:
    with pytest.raises(EnvelopeError, match="JSON object"):
        decode(_headers(), value)


def test_tombstone_is_not_an_event() -> None:
    with pytest.raises(EnvelopeError, match="tombstone"):
        decode(_headers(), None)


@pytest.mark.parametrize(
    "bad",
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case
        "garbage",
    ],
)
def test_bad_traceparent(bad: str) -> None:
    headers = _headers()
    headers[H_TRACEPARENT] = bad.encode()
    with pytest.raises(EnvelopeError) as exc:
        decode(headers, _value())
    assert exc.value.header == H_TRACEPARENT


def test_content_type_must_be_json() -> None:
    headers = _headers()
    headers[H_CONTENT_TYPE] = b"application/json; charset=utf-8"
    assert decode(headers, _value()).type == TYPE
    headers[H_CONTENT_TYPE] = b"application/avro"
    with pytest.raises(EnvelopeError) as exc:
        decode(headers, _value())
    assert exc.value.header == H_CONTENT_TYPE


def test_header_that_is_not_utf8() -> None:
    headers = _headers()
    headers[H_SUBJECT] = b"\xff"
    with pytest.raises(EnvelopeError) as exc:
        decode(headers, _value())
    assert exc.value.header == H_SUBJECT


def test_unknown_type_with_known_types() -> None:
    headers = _headers()
    headers[H_TYPE] = b"chorus.identity.workspace.renamed.v1"
    with pytest.raises(UnknownEventType) as exc:
        decode(headers, _value(), known_types={TYPE})
    assert exc.value.header == H_TYPE
    assert isinstance(exc.value, EnvelopeError)  # the runtime dead-letters both alike
    # Without known_types any well-formed type passes the envelope.
    assert decode(headers, _value()).type == "chorus.identity.workspace.renamed.v1"
    assert decode(_headers(), _value(), known_types=[TYPE]).type == TYPE


def test_cloudevent_model_rejects_bad_attributes() -> None:
    with pytest.raises(ValidationError, match="UUIDv7"):
        _event(id=str(uuid.uuid4()))
    with pytest.raises(ValidationError, match="timezone-aware"):
        _event(time=datetime(2025, 3, 12, 8, 0))
    with pytest.raises(ValidationError, match="traceparent"):
        _event(traceparent="nope")
    with pytest.raises(ValidationError):
        _event(type="chorus.Bad")
    plus_two = _event(time=datetime(2025, 3, 12, 10, 0, tzinfo=timezone(timedelta(hours=2))))
    assert plus_two.time == datetime(2025, 3, 12, 8, 0, tzinfo=UTC)


def test_new_event_ids_are_uuid7_and_sortable() -> None:
    ids = [new_event_id() for _ in range(50)]
    assert all(is_uuid7(i) for i in ids)
    assert not is_uuid7(str(uuid.uuid4()))
    assert not is_uuid7(None)  # type: ignore[arg-type]


def test_build_event_and_parse_data_round_trip() -> None:
    data = WorkspaceDeleted(
        workspace_id=uuid.UUID(WS),
        deleted_by=uuid.UUID(WS),
        deleted_at=datetime(2025, 3, 12, 8, 0, tzinfo=UTC),
    )
    event = build_event(data, source="/chorus/gateway", subject=WS, tenant_id=WS)
    assert event.type == TYPE
    assert event.data["workspaceId"] == WS  # camelCase on the wire
    headers, value = encode(event)
    assert parse_data(decode(headers, value)) == data


def test_parse_data_rejects_data_that_breaks_the_contract() -> None:
    event = _event(data={"workspaceId": "not-a-uuid"})
    with pytest.raises(DataValidationError) as exc:
        parse_data(event)
    assert isinstance(exc.value, EnvelopeError)


def test_model_for_unknown_type() -> None:
    with pytest.raises(UnknownEventType):
        model_for("chorus.identity.workspace.renamed.v1")
