-- Daily rollups (UTC days) fed by materialized views, so dashboards read small tables.
-- Only duplicate-insensitive aggregates are used (argMax of a cumulative snapshot, max,
-- uniqExact): a redelivered or replayed event changes nothing, whatever batch it arrives
-- in. Sums over posts and accounts are taken at query time from these per-day states.
-- Each target also has a deduplication window: a re-sent batch runs the view again, and its
-- block is dropped by the token ClickHouse derives from the batch's.

CREATE TABLE IF NOT EXISTS post_metrics_daily
(
    workspace_id UUID,
    account_id UUID,
    platform LowCardinality(String),
    platform_post_id String,
    day Date COMMENT 'UTC day of collected_at',
    post_id SimpleAggregateFunction(max, UUID) COMMENT 'nil UUID when never attributed',
    target_id SimpleAggregateFunction(max, UUID),
    last_collected_at SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    likes AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    comments AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    shares AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    saves AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    impressions AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    reach AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    clicks AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    video_views AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (workspace_id, account_id, platform, platform_post_id, day)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS post_metrics_daily_mv TO post_metrics_daily AS
SELECT
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
GROUP BY workspace_id, account_id, platform, platform_post_id, day;

CREATE TABLE IF NOT EXISTS account_metrics_daily
(
    workspace_id UUID,
    account_id UUID,
    platform LowCardinality(String),
    day Date COMMENT 'UTC day of collected_at',
    last_collected_at SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    followers AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    following AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC')),
    posts AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (workspace_id, account_id, platform, day)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS account_metrics_daily_mv TO account_metrics_daily AS
SELECT
    workspace_id,
    account_id,
    platform,
    toDate(collected_at) AS day,
    max(collected_at) AS last_collected_at,
    argMaxState(followers, collected_at) AS followers,
    argMaxState(following, collected_at) AS following,
    argMaxState(posts, collected_at) AS posts
FROM account_metric_snapshots
GROUP BY workspace_id, account_id, platform, day;

CREATE TABLE IF NOT EXISTS published_daily
(
    workspace_id UUID,
    account_id UUID,
    platform LowCardinality(String),
    day Date COMMENT 'UTC day of publishedAt',
    posts AggregateFunction(uniqExact, UUID) COMMENT 'distinct posts with a successful delivery',
    targets AggregateFunction(uniqExact, UUID) COMMENT 'distinct post targets published'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (workspace_id, account_id, platform, day)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS published_daily_mv TO published_daily AS
SELECT
    workspace_id,
    account_id,
    platform,
    toDate(occurred_at) AS day,
    uniqExactState(post_id) AS posts,
    uniqExactState(target_id) AS targets
FROM post_deliveries
WHERE outcome = 'succeeded'
GROUP BY workspace_id, account_id, platform, day;
