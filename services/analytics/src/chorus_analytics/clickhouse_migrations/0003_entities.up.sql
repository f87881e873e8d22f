-- Entity changes (workspaces, posts, social accounts): one row per event; the views fold
-- them into the current state with argMax over the change time, so a field an event does
-- not carry (NULL here) never overwrites a known value.

CREATE TABLE IF NOT EXISTS workspace_changes
(
    workspace_id UUID,
    event_id UUID,
    change LowCardinality(String) COMMENT 'created | plan_changed | settings_changed | deleted',
    changed_at DateTime64(3, 'UTC'),
    name Nullable(String),
    slug Nullable(String),
    plan LowCardinality(Nullable(String)),
    timezone Nullable(String) COMMENT 'IANA zone',
    default_locale Nullable(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (workspace_id, changed_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE VIEW IF NOT EXISTS workspaces AS
SELECT
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

CREATE TABLE IF NOT EXISTS post_changes
(
    workspace_id UUID,
    event_id UUID,
    post_id UUID,
    change LowCardinality(String) COMMENT 'created | updated | status_changed | deleted',
    changed_at DateTime64(3, 'UTC'),
    has_content UInt8 COMMENT '1 when the row carries the post snapshot (created, updated)',
    status LowCardinality(String) COMMENT 'empty when the event does not carry one',
    author_id Nullable(UUID),
    text String,
    hashtags Array(String) COMMENT 'lower case, without #',
    campaign Nullable(String),
    tags Array(String),
    scheduled_at Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree
ORDER BY (workspace_id, post_id, changed_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE VIEW IF NOT EXISTS posts AS
SELECT
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
GROUP BY workspace_id, post_id;

CREATE TABLE IF NOT EXISTS account_changes
(
    workspace_id UUID,
    event_id UUID,
    account_id UUID,
    platform LowCardinality(String),
    change LowCardinality(String) COMMENT 'connected | status_changed | disconnected',
    changed_at DateTime64(3, 'UTC'),
    status LowCardinality(String) COMMENT 'active | needs_reauth | revoked | disconnected',
    platform_account_id Nullable(String),
    username Nullable(String),
    display_name Nullable(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (workspace_id, account_id, changed_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE VIEW IF NOT EXISTS accounts AS
SELECT
    workspace_id,
    account_id,
    any(platform) AS platform,
    argMax(status, changed_at) AS status,
    argMaxIf(platform_account_id, changed_at, platform_account_id IS NOT NULL)
        AS platform_account_id,
    argMaxIf(username, changed_at, username IS NOT NULL) AS username,
    argMaxIf(display_name, changed_at, display_name IS NOT NULL) AS display_name,
    min(changed_at) AS first_seen_at,
    max(changed_at) AS updated_at
FROM account_changes
GROUP BY workspace_id, account_id;
