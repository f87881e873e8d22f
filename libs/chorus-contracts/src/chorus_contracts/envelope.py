"""CloudEvents 1.0 envelope in Kafka binary mode (design.md §3).

Headers carry the attributes (`ce_id`, `ce_type`, …); the Kafka value is the JSON data.
Decoding is strict: a missing or malformed attribute raises `EnvelopeError`, which the
consumer runtime turns into a dead letter instead of crashing the partition.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import uuid6
from pydantic import BaseModel, ConfigDict, Field, field_validator

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

TYPE_PATTERN = re.compile(r"^chorus(\.[a-z][a-z0-9_]*){3,}\.v[1-9][0-9]*$")
TRACEPARENT_PATTERN = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
RFC3339_PATTERN = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)
SOURCE_PATTERN = re.compile(r"^/?[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+$")

H_SPECVERSION = "ce_specversion"
H_ID = "ce_id"
H_TYPE = "ce_type"
H_SOURCE = "ce_source"
H_TIME = "ce_time"
H_SUBJECT = "ce_subject"
H_TENANT = "ce_tenantid"
H_TRACEPARENT = "traceparent"
H_TRACESTATE = "tracestate"
H_CONTENT_TYPE = "content-type"

Headers = Sequence[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """A Kafka message is not a valid Chorus CloudEvent (poison: goes to the DLQ)."""

    def __init__(self, reason: str, *, header: str | None = None) -> None:
        super().__init__(reason if header is None else f"{header}: {reason}")
        self.reason = reason
        self.header = header


class UnknownEventType(EnvelopeError):
    """`ce_type` is well formed but no contract is registered for it."""


def new_event_id() -> str:
    """UUIDv7: time-ordered, so ids sort by creation and index well."""
    return str(uuid6.uuid7())


def is_uuid7(value: str) -> bool:
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return parsed.version == 7 and str(parsed) == value.lower()


class CloudEvent(BaseModel):
    """One event: attributes plus JSON-serialisable data."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_event_id)
    type: str
    source: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    tenantid: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not is_uuid7(v):
            raise ValueError("must be a UUIDv7")
        return v

    @field_validator("type")
    @classmethod
    def _check_type(cls, v: str) -> str:
        if not TYPE_PATTERN.match(v):
            raise ValueError("must look like chorus.<domain>.<entity>.<action>.v<N>")
        return v

    @field_validator("time")
    @classmethod
    def _check_time(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("must be timezone-aware")
        return v.astimezone(UTC)

    @field_validator("traceparent")
    @classmethod
    def _check_traceparent(cls, v: str | None) -> str | None:
        if v is not None and not TRACEPARENT_PATTERN.match(v):
            raise ValueError("must be a W3C traceparent")
        return v

    @property
    def version(self) -> int:
        return int(self.type.rsplit(".v", 1)[1])


def encode(event: CloudEvent) -> tuple[list[tuple[str, bytes]], bytes]:
    """CloudEvent → (Kafka headers, value) in binary content mode."""
    headers: list[tuple[str, bytes]] = [
        (H_SPECVERSION, SPEC_VERSION.encode()),
        (H_ID, event.id.encode()),
        (H_TYPE, event.type.encode()),
        (H_SOURCE, event.source.encode()),
        (H_TIME, _format_time(event.time).encode()),
        (H_CONTENT_TYPE, CONTENT_TYPE.encode()),
    ]
    if event.subject is not None:
        headers.append((H_SUBJECT, event.subject.encode()))
    if event.tenantid is not None:
        headers.append((H_TENANT, event.tenantid.encode()))
    if event.traceparent is not None:
        headers.append((H_TRACEPARENT, event.traceparent.encode()))
    if event.tracestate is not None:
        headers.append((H_TRACESTATE, event.tracestate.encode()))
    value = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    return headers, value.encode()


def decode(
    headers: Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None,
    value: bytes | None,
    *,
    known_types: Iterable[str] | None = None,
) -> CloudEvent:
    """(Kafka headers, value) → CloudEvent, or `EnvelopeError` naming what is wrong."""
    h = _header_map(headers)
    spec = _required(h, H_SPECVERSION)
    if spec != SPEC_VERSION:
        raise EnvelopeError(f"unsupported specversion {spec!r}", header=H_SPECVERSION)
    event_id = _required(h, H_ID)
    if not is_uuid7(event_id):
        raise EnvelopeError("not a UUIDv7", header=H_ID)
    event_type = _required(h, H_TYPE)
    if not TYPE_PATTERN.match(event_type):
        raise EnvelopeError(f"malformed type {event_type!r}", header=H_TYPE)
    if known_types is not None and event_type not in set(known_types):
        raise UnknownEventType(f"unknown event type {event_type!r}", header=H_TYPE)
    source = _required(h, H_SOURCE)
    if not SOURCE_PATTERN.match(source):
        raise EnvelopeError("malformed source", header=H_SOURCE)
    time = _parse_time(_required(h, H_TIME))
    content_type = h.get(H_CONTENT_TYPE)
    if content_type is not None and content_type.split(";")[0].strip() != CONTENT_TYPE:
        raise EnvelopeError(f"unsupported content type {content_type!r}", header=H_CONTENT_TYPE)
    traceparent = h.get(H_TRACEPARENT)
    if traceparent is not None and not TRACEPARENT_PATTERN.match(traceparent):
        raise EnvelopeError("malformed traceparent", header=H_TRACEPARENT)
    if value is None:
        raise EnvelopeError("empty value (tombstones are not events)")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"value is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EnvelopeError("value must be a JSON object")
    return CloudEvent.model_construct(
        id=event_id,
        type=event_type,
        source=source,
        time=time,
        subject=h.get(H_SUBJECT),
        tenantid=h.get(H_TENANT),
        traceparent=traceparent,
        tracestate=h.get(H_TRACESTATE),
        data=data,
    )


def _header_map(
    headers: Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None,
) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    out: dict[str, str] = {}
    for key, raw in items:
        if raw is None:
            continue
        try:
            out[key.lower()] = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
        except UnicodeDecodeError:
            raise EnvelopeError("header is not UTF-8", header=key) from None
    return out


def _required(h: Mapping[str, str], name: str) -> str:
    v = h.get(name)
    if v is None or v == "":
        raise EnvelopeError("missing", header=name)
    return v


def _format_time(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(raw: str) -> datetime:
    if not RFC3339_PATTERN.match(raw):
        raise EnvelopeError("not an RFC 3339 timestamp", header=H_TIME)
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise EnvelopeError("not an RFC 3339 timestamp", header=H_TIME) from None
    if t.tzinfo is None:
        raise EnvelopeError("timestamp has no offset", header=H_TIME)
    return t.astimezone(UTC)
