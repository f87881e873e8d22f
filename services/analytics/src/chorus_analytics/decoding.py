"""Kafka record → (envelope, typed data), fast for the well-formed events of a batch.

The reference is the contracts' way: `chorus_contracts.envelope.decode` builds a pydantic
`CloudEvent` (its data json-decoded into a dict) and `catalog.parse_data` validates that dict
against the type's model. At analytics volumes that is most of the ingest's CPU (~25 µs an
event). `FastDecoder` takes a shorter road to the same result for a well-formed event: the
headers are checked with the contracts' own patterns, and the value is validated straight
from its bytes by the model's compiled validator (one pass in pydantic-core, no dict in
between), giving a light `Envelope` instead of a `CloudEvent`.

It only ever *accepts*: whatever it is not sure of (a missing or odd header, data that fails
validation, anything unusual) gets `None`, and the caller decodes that record the reference
way. So a bad message fails with exactly the error it always had (and is dead-lettered the
same way), and a good one the fast road declines is still ingested.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import ValidationError

from chorus_contracts.catalog import EventData
from chorus_contracts.envelope import (
    CONTENT_TYPE,
    H_CONTENT_TYPE,
    H_ID,
    H_SOURCE,
    H_SPECVERSION,
    H_SUBJECT,
    H_TENANT,
    H_TIME,
    H_TRACEPARENT,
    H_TYPE,
    RFC3339_PATTERN,
    SOURCE_PATTERN,
    SPEC_VERSION,
    TRACEPARENT_PATTERN,
    TYPE_PATTERN,
)

# A canonical lower-case UUIDv7 (version 7, RFC 4122 variant): a subset of what the
# reference's `is_uuid7` accepts, so an id passing here passes there.
_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_SOURCE_CACHE_SIZE = 1024


class Envelope(NamedTuple):
    """The CloudEvent attributes the mappings read (a `CloudEvent` has the same names)."""

    id: str
    type: str
    source: str
    time: datetime
    subject: str | None
    tenantid: str | None


Decoded = tuple[Envelope, EventData]


class FastDecoder:
    """Decodes the events of `models` (ce_type → data model); `None` means "not sure"."""

    def __init__(self, models: Mapping[str, type[EventData]]) -> None:
        # Only names the reference also finds well formed.
        self._validators: dict[str, Any] = {
            name: model.__pydantic_validator__
            for name, model in models.items()
            if TYPE_PATTERN.match(name)
        }
        self._sources: set[str] = set()  # sources already matched (a handful per topic)

    def decode(
        self, headers: Iterable[tuple[str, bytes | None]] | None, value: bytes | None
    ) -> Decoded | None:
        if value is None:
            return None
        try:
            h = {key.lower(): raw.decode() for key, raw in headers if raw is not None}  # type: ignore[union-attr]
        except (AttributeError, TypeError, ValueError):  # str values, bad UTF-8, no headers
            return None
        if h.get(H_SPECVERSION) != SPEC_VERSION:
            return None
        event_id = h.get(H_ID)
        if event_id is None or _UUID7.fullmatch(event_id) is None:
            return None
        event_type = h.get(H_TYPE)
        validator = self._validators.get(event_type) if event_type is not None else None
        if validator is None:
            return None
        source = h.get(H_SOURCE)
        if source is None or not self._source_ok(source):
            return None
        time = _parse_time(h.get(H_TIME))
        if time is None:
            return None
        content_type = h.get(H_CONTENT_TYPE)
        if content_type is not None and content_type.split(";")[0].strip() != CONTENT_TYPE:
            return None
        traceparent = h.get(H_TRACEPARENT)
        if traceparent is not None and not TRACEPARENT_PATTERN.match(traceparent):
            return None
        try:
            data = validator.validate_json(value)
        except (ValidationError, ValueError, TypeError):
            return None
        assert event_type is not None
        envelope = Envelope(event_id, event_type, source, time, h.get(H_SUBJECT), h.get(H_TENANT))
        return envelope, data

    def _source_ok(self, source: str) -> bool:
        if source in self._sources:
            return True
        if not SOURCE_PATTERN.match(source):
            return False
        if len(self._sources) >= _SOURCE_CACHE_SIZE:
            self._sources.clear()
        self._sources.add(source)
        return True


def _parse_time(raw: str | None) -> datetime | None:
    """The reference's `ce_time` parsing, `None` instead of an error."""
    if raw is None or not RFC3339_PATTERN.match(raw):
        return None
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        return None
    return t if t.tzinfo is UTC else t.astimezone(UTC)
