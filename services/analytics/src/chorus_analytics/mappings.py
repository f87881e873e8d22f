"""Event type → ClickHouse rows: the only place that knows how an event lands in a table.

Every event goes to `events` as received (`event_row`). An event type may also map to one
or more typed tables: one small builder per event type, registered with `@maps`. A new
domain (listening, inbox, AI) adds a migration with its table(s), the table's columns in
`TABLES`, and a builder here; the consumer, batching, dedup and DLQ stay as they are.

Builders are pure: (envelope, typed data) → one row as a dict holding every column of the
table. The envelope is a `CloudEvent` or the ingest's lighter `decoding.Envelope`: builders
read only the attributes of `EventEnvelope`.

The workspace a row belongs to is the event's tenant (`ce_tenantid`) and the data's
`workspaceId`; an event whose two disagree is refused (`TenantMismatch`, sent to the DLQ)
rather than filed under either.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from chorus_contracts.catalog import EventData
from chorus_contracts.envelope import CloudEvent
from chorus_contracts.events import connector, gateway, identity, publishing

NIL_UUID = uuid.UUID(int=0)
Row = dict[str, Any]


class EventEnvelope(Protocol):
    """What mappings read of an event besides its data (`CloudEvent` has all of it)."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def tenantid(self) -> str | None: ...


Builder = Callable[[EventEnvelope, Any], Row]


class TenantMismatch(ValueError):
    """`ce_tenantid` and the data's `workspaceId` name different workspaces."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]


def _table(name: str, columns: str) -> Table:
    return Table(name, tuple(columns.split()))


# Insert column order per table (the migrations define the types). `events` comes first:
# it is written before the typed tables of the same batch.
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        _table(
            "events",
            "workspace_id event_id event_type source subject event_time ingested_at "
            "kafka_topic kafka_partition kafka_offset data",
        ),
        _table(
            "post_deliveries",
            "workspace_id event_id outcome post_id target_id account_id platform command_id "
            "attempt platform_post_id url recovered_by_readback failure_kind error_code "
            "error_message occurred_at",
        ),
        _table(
            "post_metric_snapshots",
            "workspace_id event_id account_id platform platform_post_id post_id target_id "
            "likes comments shares saves impressions reach clicks video_views collected_at",
        ),
        _table(
            "account_metric_snapshots",
            "workspace_id event_id account_id platform followers following posts collected_at",
        ),
        _table(
            "audit_log",
            "workspace_id event_id occurred_at actor_type actor_id action resource_type "
            "resource_id status_code ip user_agent request_id duration_ms",
        ),
        _table(
            "workspace_changes",
            "workspace_id event_id change changed_at name slug plan timezone default_locale",
        ),
        _table(
            "post_changes",
            "workspace_id event_id post_id change changed_at has_content status author_id "
            "text hashtags campaign tags scheduled_at",
        ),
        _table(
            "account_changes",
            "workspace_id event_id account_id platform change changed_at status "
            "platform_account_id username display_name",
        ),
    )
}


@dataclass(frozen=True)
class EventMapping:
    event_type: str
    table: str
    build: Builder


_MAPPINGS: dict[str, list[EventMapping]] = {}


def maps(event_types: str | Iterable[str], table: str) -> Callable[[Builder], Builder]:
    """Register `build` as the row builder of `event_types` for `table`."""
    types = [event_types] if isinstance(event_types, str) else list(event_types)
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}: add it to TABLES (and a migration)")

    def register(build: Builder) -> Builder:
        for event_type in types:
            entries = _MAPPINGS.setdefault(event_type, [])
            if any(m.table == table for m in entries):
                raise ValueError(f"{event_type} already maps to {table}")
            entries.append(EventMapping(event_type, table, build))
        return build

    return register


def mappings_for(event_type: str) -> tuple[EventMapping, ...]:
    return tuple(_MAPPINGS.get(event_type, ()))


def mapped_types() -> dict[str, tuple[str, ...]]:
    """Event type → typed tables it lands in (besides `events`)."""
    return {t: tuple(m.table for m in ms) for t, ms in _MAPPINGS.items()}


# ------------------------------------------------------------------------------ helpers


def _uuid(value: uuid.UUID | str | None) -> uuid.UUID:
    if value is None:
        return NIL_UUID
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _text(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    return value


def tenant_of(event: EventEnvelope, data: EventData | None = None) -> uuid.UUID:
    """The workspace an event belongs to (nil UUID when it has none)."""
    declared = getattr(data, "workspace_id", None) if data is not None else None
    if isinstance(declared, uuid.UUID) and event.tenantid == str(declared):
        return declared  # the usual case: the header spells the data's id, nothing to parse
    tenant = _uuid(event.tenantid) if event.tenantid else None
    if declared is None and data is None:
        raw = event.data.get("workspaceId") if isinstance(event, CloudEvent) else None
        declared = raw if isinstance(raw, str) else None
    declared_id = _uuid(declared) if declared is not None else None
    if tenant is not None and declared_id is not None and tenant != declared_id:
        raise TenantMismatch(f"ce_tenantid {tenant} but data.workspaceId {declared_id}")
    return tenant or declared_id or NIL_UUID


def normalize_hashtag(tag: str) -> str:
    return tag.strip().lstrip("#").lower()


def event_values(
    event: EventEnvelope,
    *,
    workspace_id: uuid.UUID,
    topic: str,
    partition: int,
    offset: int,
    ingested_at: datetime,
    raw_data: bytes | None = None,
) -> list[Any]:
    """The `events` row in column order: the envelope as received, data as JSON text.

    Built as a list (not a dict then reordered): the ingest makes one per event.
    """
    if raw_data is not None:
        data = raw_data.decode("utf-8")
    elif isinstance(event, CloudEvent):
        data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    else:
        raise ValueError("an envelope without data needs the raw value")
    return [
        workspace_id,
        event.id,  # validated UUIDv7 text; one form per column in a batch
        event.type,
        event.source,
        event.subject or "",
        event.time,
        ingested_at,
        topic,
        partition,
        offset,
        data,
    ]


# The order `event_values` builds, which must be `TABLES["events"]`'s.
_EVENT_COLUMNS = (
    "workspace_id",
    "event_id",
    "event_type",
    "source",
    "subject",
    "event_time",
    "ingested_at",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "data",
)
assert TABLES["events"].columns == _EVENT_COLUMNS, "event_values must follow TABLES"


def event_row(
    event: EventEnvelope,
    *,
    workspace_id: uuid.UUID,
    topic: str,
    partition: int,
    offset: int,
    ingested_at: datetime,
    raw_data: bytes | None = None,
) -> Row:
    """The `events` row as a dict (see `event_values`)."""
    values = event_values(
        event,
        workspace_id=workspace_id,
        topic=topic,
        partition=partition,
        offset=offset,
        ingested_at=ingested_at,
        raw_data=raw_data,
    )
    return dict(zip(_EVENT_COLUMNS, values, strict=True))


def typed_rows(event: EventEnvelope, data: EventData) -> list[tuple[str, Row]]:
    """(table, row) for every typed table the event's type maps to."""
    out: list[tuple[str, Row]] = []
    for m in _MAPPINGS.get(event.type, ()):
        row = m.build(event, data)
        row.setdefault("event_id", event.id)
        out.append((m.table, row))
    return out


def as_sequence(table: str, row: Mapping[str, Any]) -> list[Any]:
    """The row in `TABLES[table]` column order; a missing or extra column is a bug."""
    columns = TABLES[table].columns
    if len(row) == len(columns):  # the usual case: then no column is missing, none extra
        try:
            return [row[c] for c in columns]
        except KeyError:
            pass
    extra = set(row) - set(columns)
    if extra:
        raise ValueError(f"{table}: unknown columns {sorted(extra)}")
    return [row[c] for c in columns]


# ------------------------------------------------------------------------------ identity


@maps(identity.WorkspaceCreated.event_type, "workspace_changes")
def _workspace_created(_: EventEnvelope, d: identity.WorkspaceCreated) -> Row:
    return {
        "workspace_id": d.workspace_id,
        "change": "created",
        "changed_at": d.created_at,
        "name": d.name,
        "slug": d.slug,
        "plan": _text(d.plan),
        "timezone": d.timezone,
        "default_locale": None,
    }


@maps(identity.WorkspacePlanChanged.event_type, "workspace_changes")
def _workspace_plan(_: EventEnvelope, d: identity.WorkspacePlanChanged) -> Row:
    return {
        "workspace_id": d.workspace_id,
        "change": "plan_changed",
        "changed_at": d.changed_at,
        "name": None,
        "slug": None,
        "plan": _text(d.plan),
        "timezone": None,
        "default_locale": None,
    }


@maps(identity.WorkspaceSettingsChanged.event_type, "workspace_changes")
def _workspace_settings(_: EventEnvelope, d: identity.WorkspaceSettingsChanged) -> Row:
    return {
        "workspace_id": d.workspace_id,
        "change": "settings_changed",
        "changed_at": d.changed_at,
        "name": None,
        "slug": None,
        "plan": None,
        "timezone": d.timezone,
        "default_locale": d.default_locale,
    }


@maps(identity.WorkspaceDeleted.event_type, "workspace_changes")
def _workspace_deleted(_: EventEnvelope, d: identity.WorkspaceDeleted) -> Row:
    return {
        "workspace_id": d.workspace_id,
        "change": "deleted",
        "changed_at": d.deleted_at,
        "name": None,
        "slug": None,
        "plan": None,
        "timezone": None,
        "default_locale": None,
    }


# ------------------------------------------------------------------------------ publishing


def _post_snapshot(d: publishing.PostSnapshot, change: str, at: datetime) -> Row:
    return {
        "workspace_id": d.workspace_id,
        "post_id": d.post_id,
        "change": change,
        "changed_at": at,
        "has_content": 1,
        "status": _text(d.status),
        "author_id": d.author_id,
        "text": d.text,
        "hashtags": [normalize_hashtag(h) for h in d.hashtags if normalize_hashtag(h)],
        "campaign": d.campaign,
        "tags": list(d.tags),
        "scheduled_at": d.scheduled_at,
    }


@maps(publishing.PostCreated.event_type, "post_changes")
def _post_created(_: EventEnvelope, d: publishing.PostCreated) -> Row:
    return _post_snapshot(d, "created", d.created_at)


@maps(publishing.PostUpdated.event_type, "post_changes")
def _post_updated(_: EventEnvelope, d: publishing.PostUpdated) -> Row:
    return _post_snapshot(d, "updated", d.updated_at)


def _post_change(
    workspace_id: uuid.UUID, post_id: uuid.UUID, change: str, at: datetime, **fields: Any
) -> Row:
    return {
        "workspace_id": workspace_id,
        "post_id": post_id,
        "change": change,
        "changed_at": at,
        "has_content": 0,
        "status": "",
        "author_id": None,
        "text": "",
        "hashtags": [],
        "campaign": None,
        "tags": [],
        "scheduled_at": None,
        **fields,
    }


@maps(publishing.PostStatusChanged.event_type, "post_changes")
def _post_status(_: EventEnvelope, d: publishing.PostStatusChanged) -> Row:
    return _post_change(
        d.workspace_id,
        d.post_id,
        "status_changed",
        d.changed_at,
        status=_text(d.status),
        scheduled_at=d.scheduled_at,
    )


@maps(publishing.PostDeleted.event_type, "post_changes")
def _post_deleted(_: EventEnvelope, d: publishing.PostDeleted) -> Row:
    return _post_change(d.workspace_id, d.post_id, "deleted", d.deleted_at)


# ------------------------------------------------------------------------------ connector


def _delivery(
    d: connector.DeliverySucceeded | connector.DeliveryFailed | connector.DeliveryDeleted,
    outcome: str,
    at: datetime,
    **fields: Any,
) -> Row:
    return {
        "workspace_id": d.workspace_id,
        "outcome": outcome,
        "post_id": d.post_id,
        "target_id": d.target_id,
        "account_id": getattr(d, "account_id", NIL_UUID),
        "platform": _text(d.platform),
        "command_id": d.command_id,
        "attempt": getattr(d, "attempt", 0),
        "platform_post_id": "",
        "url": "",
        "recovered_by_readback": 0,
        "failure_kind": "",
        "error_code": "",
        "error_message": "",
        "occurred_at": at,
        **fields,
    }


@maps(connector.DeliverySucceeded.event_type, "post_deliveries")
def _delivery_succeeded(_: EventEnvelope, d: connector.DeliverySucceeded) -> Row:
    return _delivery(
        d,
        "succeeded",
        d.published_at,
        platform_post_id=d.platform_post_id,
        url=d.url or "",
        recovered_by_readback=int(d.recovered_by_readback),
    )


@maps(connector.DeliveryFailed.event_type, "post_deliveries")
def _delivery_failed(_: EventEnvelope, d: connector.DeliveryFailed) -> Row:
    return _delivery(
        d,
        "failed",
        d.failed_at,
        failure_kind=_text(d.kind),
        error_code=d.error_code,
        error_message=d.error_message,
    )


@maps(connector.DeliveryDeleted.event_type, "post_deliveries")
def _delivery_deleted(_: EventEnvelope, d: connector.DeliveryDeleted) -> Row:
    return _delivery(d, "deleted", d.deleted_at, platform_post_id=d.platform_post_id)


@maps(connector.PostMetricsCollected.event_type, "post_metric_snapshots")
def _post_metrics(_: EventEnvelope, d: connector.PostMetricsCollected) -> Row:
    return {
        "workspace_id": d.workspace_id,
        "account_id": d.account_id,
        "platform": _text(d.platform),
        "platform_post_id": d.platform_post_id,
        "post_id": _uuid(d.post_id),
        "target_id": _uuid(d.target_id),
        "likes": d.likes,
        "comments": d.comments,
        "shares": d.shares,
        "saves": d.saves,
        "impressions": d.impressions,
        "reach": d.reach,
        "clicks": d.clicks,
        "video_views": d.video_views,
        "collected_at": d.collected_at,
    }


@maps(connector.AccountMetricsCollected.event_type, "account_metric_snapshots")
def _account_metrics(_: EventEnvelope, d: connector.AccountMetricsCollected) -> Row:
    return {
        "workspace_id": d.workspace_id,
        "account_id": d.account_id,
        "platform": _text(d.platform),
        "followers": d.followers,
        "following": d.following,
        "posts": d.posts,
        "collected_at": d.collected_at,
    }


def _account_change(
    d: connector.AccountConnected | connector.AccountStatusChanged | connector.AccountDisconnected,
    change: str,
    at: datetime,
    status: str,
    **fields: Any,
) -> Row:
    return {
        "workspace_id": d.workspace_id,
        "account_id": d.account_id,
        "platform": _text(d.platform),
        "change": change,
        "changed_at": at,
        "status": status,
        "platform_account_id": None,
        "username": None,
        "display_name": None,
        **fields,
    }


@maps(connector.AccountConnected.event_type, "account_changes")
def _account_connected(_: EventEnvelope, d: connector.AccountConnected) -> Row:
    return _account_change(
        d,
        "connected",
        d.connected_at,
        "active",
        platform_account_id=d.platform_account_id,
        username=d.username,
        display_name=d.display_name,
    )


@maps(connector.AccountStatusChanged.event_type, "account_changes")
def _account_status(_: EventEnvelope, d: connector.AccountStatusChanged) -> Row:
    return _account_change(d, "status_changed", d.changed_at, _text(d.status))


@maps(connector.AccountDisconnected.event_type, "account_changes")
def _account_disconnected(_: EventEnvelope, d: connector.AccountDisconnected) -> Row:
    return _account_change(d, "disconnected", d.disconnected_at, "disconnected")


# ------------------------------------------------------------------------------ gateway


@maps(gateway.RequestAudited.event_type, "audit_log")
def _audited(event: EventEnvelope, d: gateway.RequestAudited) -> Row:
    return {
        "workspace_id": _uuid(d.workspace_id or event.tenantid),
        "occurred_at": d.occurred_at,
        "actor_type": d.actor_type,
        "actor_id": d.actor_id,
        "action": d.action,
        "resource_type": d.resource_type,
        "resource_id": d.resource_id,
        "status_code": d.status_code,
        "ip": d.ip,
        "user_agent": d.user_agent,
        "request_id": d.request_id,
        "duration_ms": d.duration_ms,
    }
