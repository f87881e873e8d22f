-- account_changes
CREATE TABLE account_changes
(
    `workspace_id` UUID,
    `event_id` UUID,
    `account_id` UUID,
    `platform` LowCardinality(String),
    `change` LowCardinality(String) COMMENT 'connected | status_changed | disconnected',
    `changed_at` DateTime64(3, 'UTC'),
    `status` LowCardinality(String) COMMENT 'active | needs_reauth | revoked | disconnected',
    `platform_account_id` Nullable(String),
    `username` Nullable(String),
    `display_name` Nullable(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (workspace_id, account_id, changed_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- account_metric_snapshots
CREATE TABLE account_metric_snapshots
(
    `workspace_id` UUID,
    `event_id` UUID,
    `account_id` UUID,
    `platform` LowCardinality(String),
    `followers` UInt64,
    `following` UInt64,
    `posts` UInt64,
    `collected_at` DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(collected_at)
ORDER BY (workspace_id, account_id, collected_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- account_metrics_daily
CREATE TABLE account_metrics_daily
(
    `workspace_id` UUID,
    `account_id` UUID,
    `platform` LowCardinality(String),
    `day` Date COMMENT 'UTC day of collected_at',
    `last_collected_at` SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    `followers` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `following` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `posts` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (workspace_id, account_id, platform, day)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- account_metrics_daily_mv
CREATE MATERIALIZED VIEW account_metrics_daily_mv TO account_metrics_daily
(
    `workspace_id` UUID,
    `account_id` UUID,
    `platform` LowCardinality(String),
    `day` Date,
    `last_collected_at` DateTime64(3, 'UTC'),
    `followers` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `following` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `posts` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC'))
)
AS SELECT
    workspace_id,
    account_id,
    platform,
    toDate(collected_at) AS day,
    max(collected_at) AS last_collected_at,
    argMaxState(followers, collected_at) AS followers,
    argMaxState(following, collected_at) AS following,
    argMaxState(posts, collected_at) AS posts
FROM account_metric_snapshots
GROUP BY
    workspace_id,
    account_id,
    platform,
    day;

-- accounts
CREATE VIEW accounts
(
    `workspace_id` UUID,
    `account_id` UUID,
    `platform` String,
    `status` String,
    `platform_account_id` Nullable(String),
    `username` Nullable(String),
    `display_name` Nullable(String),
    `first_seen_at` DateTime64(3, 'UTC'),
    `updated_at` DateTime64(3, 'UTC')
)
AS SELECT
    workspace_id,
    account_id,
    any(platform) AS platform,
    argMax(status, changed_at) AS status,
    argMaxIf(platform_account_id, changed_at, platform_account_id IS NOT NULL) AS platform_account_id,
    argMaxIf(username, changed_at, username IS NOT NULL) AS username,
    argMaxIf(display_name, changed_at, display_name IS NOT NULL) AS display_name,
    min(changed_at) AS first_seen_at,
    max(changed_at) AS updated_at
FROM account_changes
GROUP BY
    workspace_id,
    account_id;

-- audit_log
CREATE TABLE audit_log
(
    `workspace_id` UUID COMMENT 'nil UUID for requests outside a workspace (e.g. failed logins)',
    `event_id` UUID,
    `occurred_at` DateTime64(3, 'UTC'),
    `actor_type` LowCardinality(String) COMMENT 'user | api_key | anonymous',
    `actor_id` Nullable(String),
    `action` String COMMENT 'HTTP method and route template',
    `resource_type` LowCardinality(Nullable(String)),
    `resource_id` Nullable(String),
    `status_code` UInt16,
    `ip` Nullable(String),
    `user_agent` Nullable(String),
    `request_id` String,
    `duration_ms` Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- events
CREATE TABLE events
(
    `workspace_id` UUID COMMENT 'ce_tenantid (00000000-0000-0000-0000-000000000000 when the event has no tenant)',
    `event_id` UUID COMMENT 'ce_id, a UUIDv7',
    `event_type` LowCardinality(String) COMMENT 'ce_type, e.g. chorus.publishing.post.created.v1',
    `source` LowCardinality(String) COMMENT 'ce_source',
    `subject` String COMMENT 'ce_subject (empty when absent)',
    `event_time` DateTime64(3, 'UTC') COMMENT 'ce_time',
    `ingested_at` DateTime64(3, 'UTC') COMMENT 'when the analytics consumer wrote the row',
    `kafka_topic` LowCardinality(String) COMMENT 'physical topic name',
    `kafka_partition` UInt32,
    `kafka_offset` UInt64,
    `data` String COMMENT 'the event data as JSON text (camelCase keys)' CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (workspace_id, event_type, event_time, event_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- post_changes
CREATE TABLE post_changes
(
    `workspace_id` UUID,
    `event_id` UUID,
    `post_id` UUID,
    `change` LowCardinality(String) COMMENT 'created | updated | status_changed | deleted',
    `changed_at` DateTime64(3, 'UTC'),
    `has_content` UInt8 COMMENT '1 when the row carries the post snapshot (created, updated)',
    `status` LowCardinality(String) COMMENT 'empty when the event does not carry one',
    `author_id` Nullable(UUID),
    `text` String,
    `hashtags` Array(String) COMMENT 'lower case, without #',
    `campaign` Nullable(String),
    `tags` Array(String),
    `scheduled_at` Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree
ORDER BY (workspace_id, post_id, changed_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- post_deliveries
CREATE TABLE post_deliveries
(
    `workspace_id` UUID,
    `event_id` UUID,
    `outcome` LowCardinality(String) COMMENT 'succeeded | failed | deleted',
    `post_id` UUID,
    `target_id` UUID,
    `account_id` UUID COMMENT 'nil UUID for deletions (the event does not carry it)',
    `platform` LowCardinality(String),
    `command_id` UUID,
    `attempt` UInt16 COMMENT '0 for deletions',
    `platform_post_id` String COMMENT 'empty for failures',
    `url` String,
    `recovered_by_readback` UInt8,
    `failure_kind` LowCardinality(String) COMMENT 'transient | permanent | auth; empty unless failed',
    `error_code` String,
    `error_message` String,
    `occurred_at` DateTime64(3, 'UTC') COMMENT 'publishedAt, failedAt or deletedAt'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, post_id, target_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- post_metric_snapshots
CREATE TABLE post_metric_snapshots
(
    `workspace_id` UUID,
    `event_id` UUID,
    `account_id` UUID,
    `platform` LowCardinality(String),
    `platform_post_id` String,
    `post_id` UUID COMMENT 'nil UUID for posts not published through Chorus',
    `target_id` UUID COMMENT 'nil UUID for posts not published through Chorus',
    `likes` UInt64,
    `comments` UInt64,
    `shares` UInt64,
    `saves` UInt64,
    `impressions` UInt64,
    `reach` UInt64,
    `clicks` UInt64,
    `video_views` UInt64,
    `collected_at` DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(collected_at)
ORDER BY (workspace_id, account_id, platform_post_id, collected_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- post_metrics_daily
CREATE TABLE post_metrics_daily
(
    `workspace_id` UUID,
    `account_id` UUID,
    `platform` LowCardinality(String),
    `platform_post_id` String,
    `day` Date COMMENT 'UTC day of collected_at',
    `post_id` SimpleAggregateFunction(max, UUID) COMMENT 'nil UUID when never attributed',
    `target_id` SimpleAggregateFunction(max, UUID),
    `last_collected_at` SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    `likes` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `comments` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `shares` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `saves` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `impressions` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `reach` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `clicks` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `video_views` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (workspace_id, account_id, platform, platform_post_id, day)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- post_metrics_daily_mv
CREATE MATERIALIZED VIEW post_metrics_daily_mv TO post_metrics_daily
(
    `workspace_id` UUID,
    `account_id` UUID,
    `platform` LowCardinality(String),
    `platform_post_id` String,
    `day` Date,
    `post_id` UUID,
    `target_id` UUID,
    `last_collected_at` DateTime64(3, 'UTC'),
    `likes` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `comments` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `shares` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `saves` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `impressions` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `reach` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `clicks` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    `video_views` AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC'))
)
AS SELECT
    workspace_id,
    account_id,
    platform,
    platform_post_id,
    toDate(collected_at) AS day,
    max(post_id) AS post_id,
    max(target_id) AS target_id,
    max(collected_at) AS last_collected_at,
    argMaxState(likes, collected_at) AS likes,
    argMaxState(comments, collected_at) AS comments,
    argMaxState(shares, collected_at) AS shares,
    argMaxState(saves, collected_at) AS saves,
    argMaxState(impressions, collected_at) AS impressions,
    argMaxState(reach, collected_at) AS reach,
    argMaxState(clicks, collected_at) AS clicks,
    argMaxState(video_views, collected_at) AS video_views
FROM post_metric_snapshots
GROUP BY
    workspace_id,
    account_id,
    platform,
    platform_post_id,
    day;

-- posts
CREATE VIEW posts
(
    `workspace_id` UUID,
    `post_id` UUID,
    `status` String,
    `author_id` Nullable(UUID),
    `text` String,
    `hashtags` Array(String),
    `campaign` Nullable(String),
    `tags` Array(String),
    `scheduled_at` Nullable(DateTime64(3, 'UTC')),
    `deleted` UInt8,
    `first_seen_at` DateTime64(3, 'UTC'),
    `updated_at` DateTime64(3, 'UTC')
)
AS SELECT
    workspace_id,
    post_id,
    argMaxIf(status, changed_at, status != '') AS status,
    argMaxIf(author_id, changed_at, has_content = 1) AS author_id,
    argMaxIf(text, changed_at, has_content = 1) AS text,
    argMaxIf(hashtags, changed_at, has_content = 1) AS hashtags,
    argMaxIf(campaign, changed_at, has_content = 1) AS campaign,
    argMaxIf(tags, changed_at, has_content = 1) AS tags,
    argMaxIf(scheduled_at, changed_at, scheduled_at IS NOT NULL) AS scheduled_at,
    max(change = 'deleted') AS deleted,
    min(changed_at) AS first_seen_at,
    max(changed_at) AS updated_at
FROM post_changes
GROUP BY
    workspace_id,
    post_id;

-- published_daily
CREATE TABLE published_daily
(
    `workspace_id` UUID,
    `account_id` UUID,
    `platform` LowCardinality(String),
    `day` Date COMMENT 'UTC day of publishedAt',
    `posts` AggregateFunction(uniqExact, UUID) COMMENT 'distinct posts with a successful delivery',
    `targets` AggregateFunction(uniqExact, UUID) COMMENT 'distinct post targets published'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (workspace_id, account_id, platform, day)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- published_daily_mv
CREATE MATERIALIZED VIEW published_daily_mv TO published_daily
(
    `workspace_id` UUID,
    `account_id` UUID,
    `platform` LowCardinality(String),
    `day` Date,
    `posts` AggregateFunction(uniqExact, UUID),
    `targets` AggregateFunction(uniqExact, UUID)
)
AS SELECT
    workspace_id,
    account_id,
    platform,
    toDate(occurred_at) AS day,
    uniqExactState(post_id) AS posts,
    uniqExactState(target_id) AS targets
FROM post_deliveries
WHERE outcome = 'succeeded'
GROUP BY
    workspace_id,
    account_id,
    platform,
    day;

-- workspace_changes
CREATE TABLE workspace_changes
(
    `workspace_id` UUID,
    `event_id` UUID,
    `change` LowCardinality(String) COMMENT 'created | plan_changed | settings_changed | deleted',
    `changed_at` DateTime64(3, 'UTC'),
    `name` Nullable(String),
    `slug` Nullable(String),
    `plan` LowCardinality(Nullable(String)),
    `timezone` Nullable(String) COMMENT 'IANA zone',
    `default_locale` Nullable(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (workspace_id, changed_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;

-- workspaces
CREATE VIEW workspaces
(
    `workspace_id` UUID,
    `name` Nullable(String),
    `slug` Nullable(String),
    `plan` Nullable(String),
    `timezone` String,
    `default_locale` Nullable(String),
    `deleted` UInt8,
    `first_seen_at` DateTime64(3, 'UTC'),
    `updated_at` DateTime64(3, 'UTC')
)
AS SELECT
    workspace_id,
    argMaxIf(name, changed_at, name IS NOT NULL) AS name,
    argMaxIf(slug, changed_at, slug IS NOT NULL) AS slug,
    argMaxIf(plan, changed_at, plan IS NOT NULL) AS plan,
    ifNull(argMaxIf(timezone, changed_at, timezone IS NOT NULL), 'UTC') AS timezone,
    argMaxIf(default_locale, changed_at, default_locale IS NOT NULL) AS default_locale,
    max(change = 'deleted') AS deleted,
    min(changed_at) AS first_seen_at,
    max(changed_at) AS updated_at
FROM workspace_changes
GROUP BY workspace_id;
