"""Prometheus metrics shared by every service (design.md §7). Defined once, here."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

HTTP_LATENCY = Histogram(
    "chorus_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PROCESSED = Counter(
    "chorus_consumer_events_total",
    "Events handled by consumers, by outcome (processed, duplicate, dlq, retried)",
    ["service", "group", "topic", "outcome"],
)
CONSUMER_LAG = Gauge(
    "chorus_consumer_lag", "Messages behind the high watermark", ["service", "group", "topic"]
)
DLQ_TOTAL = Counter(
    "chorus_consumer_dlq_total", "Messages sent to a dead-letter topic", ["service", "topic"]
)
OUTBOX_BACKLOG = Gauge("chorus_outbox_backlog", "Unpublished outbox rows", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "chorus_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row", ["service"]
)
OUTBOX_PUBLISH_LATENCY = Histogram(
    "chorus_outbox_publish_latency_seconds",
    "Time from commit of an outbox row to its acknowledgement by Kafka",
    ["service"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
OUTBOX_PUBLISHED = Counter("chorus_outbox_published_total", "Outbox rows published", ["service"])
OUTBOX_ERRORS = Counter("chorus_outbox_errors_total", "Failed relay batches", ["service"])
SCHEDULER_LAG = Histogram(
    "chorus_scheduler_dispatch_lag_seconds",
    "now - scheduledAt when a due item is claimed",
    ["service"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
PLATFORM_CALLS = Counter(
    "chorus_platform_calls_total", "Calls to social platforms", ["platform", "operation", "outcome"]
)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
