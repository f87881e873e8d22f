-- Rollup target and the view feeding it; two statements, ';' separated.
-- The target needs its own dedup window: on a retried (deduplicated) insert into events the
-- view still runs, and its block is dropped here by the token ClickHouse derives from ours.
CREATE TABLE IF NOT EXISTS daily_counts
(
    workspace_id UUID,
    day Date,
    event_type LowCardinality(String),
    events UInt64
)
ENGINE = SummingMergeTree
ORDER BY (workspace_id, day, event_type)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS daily_counts_mv TO daily_counts AS
SELECT workspace_id, toDate(occurred_at) AS day, event_type, count() AS events
FROM events
GROUP BY workspace_id, day, event_type;
