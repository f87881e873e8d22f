"""Streaming exports: CSV or JSON lines, one keyset page in memory at a time."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from chorus_analytics import domain
from chorus_analytics.domain import METRIC_FIELDS, Period
from chorus_analytics.repository import NIL, AnalyticsRepository


class Dataset(StrEnum):
    POSTS = "posts"
    ACCOUNTS = "accounts"
    EVENTS = "events"
    AUDIT = "audit"


class Format(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


MEDIA_TYPES = {Format.CSV: "text/csv; charset=utf-8", Format.JSONL: "application/x-ndjson"}

Row = dict[str, Any]


def _post_row(r: Row) -> Row:
    gained = {f: int(r[f]) for f in METRIC_FIELDS}
    totals = {f: int(r["total_" + f]) for f in METRIC_FIELDS}
    return {
        "postId": str(r["post_id"]) if r["post_id"] != NIL else None,
        "accountId": str(r["account_id"]),
        "platform": r["platform"],
        "platformPostId": r["platform_post_id"],
        **{_camel(f): v for f, v in gained.items()},
        "engagement": domain.engagement_of(gained),
        **{"total" + _camel(f)[0].upper() + _camel(f)[1:]: v for f, v in totals.items()},
        "totalEngagement": domain.engagement_of(totals),
    }


def _account_row(r: Row) -> Row:
    return {
        "date": r["day"],
        "accountId": str(r["account_id"]),
        "platform": r["platform"],
        "followers": int(r["followers"]),
        "following": int(r["following"]),
        "posts": int(r["posts"]),
    }


def _event_row(r: Row, *, structured: bool) -> Row:
    data: Any = r["data"]
    if structured:
        with contextlib.suppress(ValueError):
            data = json.loads(data)
    return {
        "eventId": str(r["event_id"]),
        "type": r["event_type"],
        "source": r["source"],
        "subject": r["subject"] or None,
        "time": r["event_time"],
        "ingestedAt": r["ingested_at"],
        "topic": r["kafka_topic"],
        "partition": int(r["kafka_partition"]),
        "offset": int(r["kafka_offset"]),
        "data": data,
    }


def _audit_row(r: Row) -> Row:
    return {
        "eventId": str(r["event_id"]),
        "occurredAt": r["occurred_at"],
        "actorType": r["actor_type"],
        "actorId": r["actor_id"],
        "action": r["action"],
        "resourceType": r["resource_type"],
        "resourceId": r["resource_id"],
        "statusCode": int(r["status_code"]),
        "ip": r["ip"],
        "userAgent": r["user_agent"],
        "requestId": r["request_id"],
        "durationMs": float(r["duration_ms"]),
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date | uuid.UUID):
        return str(value)
    return value


_METRIC_COLUMNS = [_camel(f) for f in METRIC_FIELDS]
COLUMNS: dict[Dataset, list[str]] = {
    Dataset.POSTS: [
        "postId",
        "accountId",
        "platform",
        "platformPostId",
        *_METRIC_COLUMNS,
        "engagement",
        *["total" + c[0].upper() + c[1:] for c in _METRIC_COLUMNS],
        "totalEngagement",
    ],
    Dataset.ACCOUNTS: ["date", "accountId", "platform", "followers", "following", "posts"],
    Dataset.EVENTS: [
        "eventId",
        "type",
        "source",
        "subject",
        "time",
        "ingestedAt",
        "topic",
        "partition",
        "offset",
        "data",
    ],
    Dataset.AUDIT: [
        "eventId",
        "occurredAt",
        "actorType",
        "actorId",
        "action",
        "resourceType",
        "resourceId",
        "statusCode",
        "ip",
        "userAgent",
        "requestId",
        "durationMs",
    ],
}


class Encoder:
    """Turns pages of rows into CSV (header first) or JSON-lines text chunks."""

    def __init__(self, fmt: Format, columns: list[str]) -> None:
        self.fmt = fmt
        self.columns = columns

    def header(self) -> str:
        if self.fmt is Format.JSONL:
            return ""
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(self.columns)
        return buf.getvalue()

    def encode(self, rows: list[Row]) -> str:
        if self.fmt is Format.JSONL:
            return "".join(
                json.dumps(
                    {c: _text(r.get(c)) for c in self.columns}, ensure_ascii=False, default=str
                )
                + "\n"
                for r in rows
            )
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for r in rows:
            writer.writerow([_cell(r.get(c)) for c in self.columns])
        return buf.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    return _text(value)


async def stream_export(
    repo: AnalyticsRepository, ws: uuid.UUID, dataset: Dataset, fmt: Format, period: Period
) -> AsyncIterator[str]:
    """Yield the export chunk by chunk (period days are UTC days)."""
    start = datetime.combine(period.start, time.min, UTC)
    end = datetime.combine(period.end + timedelta(days=1), time.min, UTC)
    pages: AsyncIterator[list[Row]]
    shape: Callable[[Row], Row]
    if dataset is Dataset.POSTS:
        pages, shape = repo.export_posts(ws, period), _post_row
    elif dataset is Dataset.ACCOUNTS:
        pages, shape = repo.export_accounts(ws, period), _account_row
    elif dataset is Dataset.EVENTS:
        pages = repo.export_events(ws, start, end)

        def shape(r: Row) -> Row:
            return _event_row(r, structured=fmt is Format.JSONL)
    else:
        pages, shape = repo.export_audit(ws, start, end), _audit_row
    encoder = Encoder(fmt, COLUMNS[dataset])
    header = encoder.header()
    if header:
        yield header
    async for page in pages:
        yield encoder.encode([shape(r) for r in page])
