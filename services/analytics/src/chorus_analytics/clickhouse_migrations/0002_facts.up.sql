-- Typed facts, one row per event, deduplicated by event id like `events`.

-- Outcomes of connector commands (chorus.connector.delivery.*).
CREATE TABLE IF NOT EXISTS post_deliveries
(
    workspace_id UUID,
    event_id UUID,
    outcome LowCardinality(String) COMMENT 'succeeded | failed | deleted',
    post_id UUID,
    target_id UUID,
    account_id UUID COMMENT 'nil UUID for deletions (the event does not carry it)',
    platform LowCardinality(String),
    command_id UUID,
    attempt UInt16 COMMENT '0 for deletions',
    platform_post_id String COMMENT 'empty for failures',
    url String,
    recovered_by_readback UInt8,
    failure_kind LowCardinality(String) COMMENT 'transient | permanent | auth; empty unless failed',
    error_code String,
    error_message String,
    occurred_at DateTime64(3, 'UTC') COMMENT 'publishedAt, failedAt or deletedAt'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, post_id, target_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- Cumulative post metrics as the platform reported them at collected_at.
CREATE TABLE IF NOT EXISTS post_metric_snapshots
(
    workspace_id UUID,
    event_id UUID,
    account_id UUID,
    platform LowCardinality(String),
    platform_post_id String,
    post_id UUID COMMENT 'nil UUID for posts not published through Chorus',
    target_id UUID COMMENT 'nil UUID for posts not published through Chorus',
    likes UInt64,
    comments UInt64,
    shares UInt64,
    saves UInt64,
    impressions UInt64,
    reach UInt64,
    clicks UInt64,
    video_views UInt64,
    collected_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(collected_at)
ORDER BY (workspace_id, account_id, platform_post_id, collected_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- Cumulative account metrics at collected_at.
CREATE TABLE IF NOT EXISTS account_metric_snapshots
(
    workspace_id UUID,
    event_id UUID,
    account_id UUID,
    platform LowCardinality(String),
    followers UInt64,
    following UInt64,
    posts UInt64,
    collected_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(collected_at)
ORDER BY (workspace_id, account_id, collected_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- One row per mutating request through the gateway (chorus.gateway.request.audited.v1).
CREATE TABLE IF NOT EXISTS audit_log
(
    workspace_id UUID COMMENT 'nil UUID for requests outside a workspace (e.g. failed logins)',
    event_id UUID,
    occurred_at DateTime64(3, 'UTC'),
    actor_type LowCardinality(String) COMMENT 'user | api_key | anonymous',
    actor_id Nullable(String),
    action String COMMENT 'HTTP method and route template',
    resource_type LowCardinality(Nullable(String)),
    resource_id Nullable(String),
    status_code UInt16,
    ip Nullable(String),
    user_agent Nullable(String),
    request_id String,
    duration_ms Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
