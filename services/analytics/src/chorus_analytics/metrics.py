"""Prometheus metrics of the analytics ingest (the shared ones live in chorus_runtime.metrics).

Consumer-level counters reuse the runtime's `chorus_consumer_events_total` (outcomes
`processed` and `dlq`), `chorus_consumer_dlq_total` and `chorus_consumer_lag`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS_INSERTED = Counter(
    "chorus_analytics_rows_inserted_total", "Rows sent to ClickHouse, by table", ["table"]
)
BATCHES = Counter(
    "chorus_analytics_batches_total",
    "Ingest batches, by outcome (committed, isolated)",
    ["outcome"],
)
BATCH_SECONDS = Histogram(
    "chorus_analytics_batch_flush_seconds",
    "Time to write one batch to ClickHouse and commit its offsets",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_ROWS = Histogram(
    "chorus_analytics_batch_events",
    "Events per flushed batch",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000),
)
FRESHNESS = Histogram(
    "chorus_analytics_freshness_seconds",
    "Event time to committed insert in ClickHouse (newest event of each batch)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
INSERT_RETRIES = Counter(
    "chorus_analytics_insert_retries_total",
    "ClickHouse inserts retried, by reason (unavailable, rejected)",
    ["reason"],
)
CLICKHOUSE_UP = Gauge(
    "chorus_analytics_clickhouse_up", "1 when the last ClickHouse insert succeeded, else 0"
)
