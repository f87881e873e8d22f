-- Raw analytics events; ReplacingMergeTree on the event id absorbs redelivered events.
CREATE TABLE IF NOT EXISTS events
(
    event_id UUID,
    workspace_id UUID,
    event_type LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    payload String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, event_type, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
