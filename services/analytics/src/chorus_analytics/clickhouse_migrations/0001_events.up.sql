-- Every envelope the analytics consumer reads, as received: the replayable history.
-- ReplacingMergeTree on the sorting key (which ends in the event id) folds redelivered
-- copies of one event; read with FINAL (or GROUP BY event_id) for exact counts before merges.
-- The deduplication window makes a re-sent batch (same insert_deduplication_token) a no-op.
CREATE TABLE IF NOT EXISTS events
(
    workspace_id UUID COMMENT 'ce_tenantid (00000000-0000-0000-0000-000000000000 when the event has no tenant)',
    event_id UUID COMMENT 'ce_id, a UUIDv7',
    event_type LowCardinality(String) COMMENT 'ce_type, e.g. chorus.publishing.post.created.v1',
    source LowCardinality(String) COMMENT 'ce_source',
    subject String COMMENT 'ce_subject (empty when absent)',
    event_time DateTime64(3, 'UTC') COMMENT 'ce_time',
    ingested_at DateTime64(3, 'UTC') COMMENT 'when the analytics consumer wrote the row',
    kafka_topic LowCardinality(String) COMMENT 'physical topic name',
    kafka_partition UInt32,
    kafka_offset UInt64,
    data String CODEC(ZSTD(3)) COMMENT 'the event data as JSON text (camelCase keys)'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (workspace_id, event_type, event_time, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
