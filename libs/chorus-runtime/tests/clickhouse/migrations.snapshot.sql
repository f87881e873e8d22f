-- daily_counts
CREATE TABLE daily_counts
(
    `workspace_id` UUID,
    `day` Date,
    `event_type` LowCardinality(String),
    `events` UInt64
)
ENGINE = SummingMergeTree
ORDER BY (workspace_id, day, event_type)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- daily_counts_mv
CREATE MATERIALIZED VIEW daily_counts_mv TO daily_counts
(
    `workspace_id` UUID,
    `day` Date,
    `event_type` LowCardinality(String),
    `events` UInt64
)
AS SELECT
    workspace_id,
    toDate(occurred_at) AS day,
    event_type,
    count() AS events
FROM events
GROUP BY
    workspace_id,
    day,
    event_type;

-- events
CREATE TABLE events
(
    `event_id` UUID,
    `workspace_id` UUID,
    `event_type` LowCardinality(String),
    `platform` LowCardinality(String) DEFAULT 'none;unknown',
    `occurred_at` DateTime64(3, 'UTC'),
    `payload` String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, event_type, event_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;
