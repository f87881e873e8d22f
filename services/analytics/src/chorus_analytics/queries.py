"""Every SQL statement the API runs, in one place.

Rules: values are bound server-side (`{name:Type}`), never formatted into the text; every
statement is scoped by `workspace_id = {ws:UUID}` (a unit test checks it); dashboards read
the daily rollups, never the raw `events`.
"""

from __future__ import annotations

# Optional filters; their parameters are always bound ([] / '' mean "all").
ACCOUNTS = "(length({accounts:Array(UUID)}) = 0 OR has({accounts:Array(UUID)}, account_id))"
PLATFORM = "({platform:String} = '' OR platform = {platform:String})"

_METRICS = ("likes", "comments", "shares", "saves", "impressions", "reach", "clicks", "video_views")


def _final(alias_prefix: str = "") -> str:
    return ",\n        ".join(f"finalizeAggregation({m}) AS {alias_prefix}{m}" for m in _METRICS)


# Reading a daily rollup: its sorting key is exactly (workspace, target or account, day), so
# `FINAL` (which merges the partial states of one key at read time, in key order) gives what a
# GROUP BY over the key with the -Merge combinators gives, several times faster. Filters
# only ever use key columns, so filtering before or after the merge is the same.


# Per post target and day: the cumulative metrics (c_*) at the end of the day (days ≤ end).
def _post_daily(filters: str = f"{ACCOUNTS} AND {PLATFORM}", until: str = "end") -> str:
    return f"""
    SELECT account_id, platform, platform_post_id, day, post_id,
        {_final("c_")}
    FROM post_metrics_daily FINAL
    WHERE workspace_id = {{ws:UUID}} AND day <= {{{until}:Date}} AND {filters}"""


_POST_DAILY = _post_daily()


def _active(first: str, last: str) -> str:
    """Targets with a snapshot in [first, last]: the others gained nothing there, so only
    their history is read (dashboards stay fast as the history grows)."""
    return f"""(account_id, platform_post_id) IN (
        SELECT account_id, platform_post_id FROM post_metrics_daily
        WHERE workspace_id = {{ws:UUID}} AND day >= {first} AND day <= {last})"""


_ACTIVE = _active("{start:Date}", "{end:Date}")
_POST_DAILY_ACTIVE = _post_daily(f"{ACCOUNTS} AND {PLATFORM} AND {_ACTIVE}")

_GAINS = ",\n    ".join(
    f"argMaxIf(c_{m}, day, day <= {{end:Date}}) - argMaxIf(c_{m}, day, day < {{start:Date}}) AS {m}"
    for m in _METRICS
)
_TOTALS = ",\n    ".join(
    f"argMaxIf(c_{m}, day, day <= {{end:Date}}) AS total_{m}" for m in _METRICS
)

# Per post target: what it gained in [start, end] and its cumulative totals at `end`.
POST_GAINS = f"""
SELECT account_id, platform, platform_post_id, max(post_id) AS post_id,
    {_GAINS},
    {_TOTALS}
FROM ({_POST_DAILY_ACTIVE})
GROUP BY account_id, platform, platform_post_id
HAVING max(day) >= {{start:Date}}"""

_GAINS_TWO = ",\n    ".join(
    f"argMaxIf(c_{m}, day, day <= {{end:Date}}) "
    f"- argMaxIf(c_{m}, day, day < {{start:Date}}) AS {m}, "
    f"argMaxIf(c_{m}, day, day <= {{cmp_end:Date}}) "
    f"- argMaxIf(c_{m}, day, day < {{cmp_start:Date}}) AS cmp_{m}"
    for m in _METRICS
)

# Per post target: what it gained in the period and in the comparison period (`cmp_*`), in
# one pass over the rollup (`last` = the later of the two end days).
POST_GAINS_TWO = f"""
SELECT account_id, platform, platform_post_id, max(post_id) AS post_id,
    maxIf(day, day <= {{end:Date}}) AS last_day,
    {_GAINS_TWO}
FROM ({
    _post_daily(
        f"{ACCOUNTS} AND {PLATFORM} AND "
        + _active("least({start:Date}, {cmp_start:Date})", "{last:Date}"),
        until="last",
    )
})
GROUP BY account_id, platform, platform_post_id"""

_DELTAS = ",\n        ".join(f"c_{m} - lagInFrame(c_{m}, 1, 0) OVER w AS {m}" for m in _METRICS)
_DELTA_SUMS = ",\n    ".join(f"sum({m}) AS {m}" for m in _METRICS)

# Per day of [start, end]: the sum over post targets of what each gained that day.
DAILY_GAINS = f"""
SELECT day, {_DELTA_SUMS}
FROM (
    SELECT day,
        {_DELTAS}
    FROM ({_POST_DAILY_ACTIVE})
    WINDOW w AS (PARTITION BY account_id, platform_post_id ORDER BY day
                 ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
WHERE day >= {{start:Date}}
GROUP BY day
ORDER BY day"""

# Per account: followers before the period (baseline), at its end and at the comparison
# period's end, and the per-day values inside the period — one pass over the rollup.
FOLLOWERS_SUMMARY = f"""
SELECT account_id, platform,
    countIf(day < {{start:Date}}) > 0 AS has_baseline,
    argMaxIf(f, day, day < {{start:Date}}) AS baseline,
    argMaxIf(f, day, day <= {{end:Date}}) AS at_end,
    argMaxIf(f, day, day <= {{cmp_end:Date}}) AS at_cmp_end,
    arraySort(groupArrayIf((day, f), day >= {{start:Date}} AND day <= {{end:Date}})) AS points
FROM (
    SELECT account_id, platform, day, finalizeAggregation(followers) AS f
    FROM account_metrics_daily FINAL
    WHERE workspace_id = {{ws:UUID}} AND day <= {{last:Date}} AND {ACCOUNTS} AND {PLATFORM}
)
GROUP BY account_id, platform"""

# Distinct posts published in the period and in the comparison period, per platform and in
# total (the ROLLUP row, platform = '').
PUBLISHED_TWO = f"""
SELECT platform,
    uniqExactMergeIf(posts, day >= {{start:Date}} AND day <= {{end:Date}}) AS cur_posts,
    uniqExactMergeIf(posts, day >= {{cmp_start:Date}} AND day <= {{cmp_end:Date}}) AS cmp_posts
FROM published_daily
WHERE workspace_id = {{ws:UUID}} AND day >= least({{start:Date}}, {{cmp_start:Date}})
    AND day <= greatest({{end:Date}}, {{cmp_end:Date}}) AND {ACCOUNTS} AND {PLATFORM}
GROUP BY ROLLUP(platform)"""

POST_TEXTS = """
SELECT post_id, text, hashtags, status
FROM posts
WHERE workspace_id = {ws:UUID} AND has({ids:Array(UUID)}, post_id)"""

WORKSPACE_TIMEZONE = """
SELECT timezone FROM workspaces WHERE workspace_id = {ws:UUID}"""

# --- one post -------------------------------------------------------------------------------

POST_EXISTS = """
SELECT
    (SELECT count() FROM post_changes WHERE workspace_id = {ws:UUID} AND post_id = {post:UUID})
  + (SELECT count() FROM post_deliveries WHERE workspace_id = {ws:UUID} AND post_id = {post:UUID})
  + (SELECT count() FROM post_metrics_daily
     WHERE workspace_id = {ws:UUID} AND post_id = {post:UUID}) AS n"""

POST_INFO = """
SELECT text, hashtags, status, campaign, tags, scheduled_at, deleted
FROM posts
WHERE workspace_id = {ws:UUID} AND post_id = {post:UUID}"""

POST_TARGETS = """
SELECT target_id, account_id, platform,
    argMax(outcome, (occurred_at, event_id)) AS last_outcome,
    argMaxIf(platform_post_id, occurred_at, platform_post_id != '') AS platform_post_id,
    argMaxIf(url, occurred_at, url != '') AS url,
    minIf(occurred_at, outcome = 'succeeded') AS published_at,
    countIf(outcome = 'succeeded') > 0 AS published
FROM post_deliveries FINAL
WHERE workspace_id = {ws:UUID} AND post_id = {post:UUID} AND outcome != 'deleted'
GROUP BY target_id, account_id, platform
ORDER BY platform, target_id"""

_POST_MATCH = """workspace_id = {ws:UUID} AND (post_id = {post:UUID}
    OR (account_id, platform_post_id) IN (
        SELECT account_id, platform_post_id FROM post_deliveries
        WHERE workspace_id = {ws:UUID} AND post_id = {post:UUID} AND platform_post_id != ''))"""

POST_METRIC_DAYS = f"""
SELECT account_id, platform, platform_post_id, day, max(target_id) AS target_id,
    {", ".join(f"argMaxMerge({m}) AS {m}" for m in _METRICS)}
FROM post_metrics_daily
WHERE {_POST_MATCH}
GROUP BY account_id, platform, platform_post_id, day
ORDER BY day"""

# --- one account ----------------------------------------------------------------------------

ACCOUNT_EXISTS = """
SELECT
    (SELECT count() FROM account_changes
     WHERE workspace_id = {ws:UUID} AND account_id = {account:UUID})
  + (SELECT count() FROM account_metrics_daily
     WHERE workspace_id = {ws:UUID} AND account_id = {account:UUID})
  + (SELECT count() FROM post_metrics_daily
     WHERE workspace_id = {ws:UUID} AND account_id = {account:UUID}) AS n"""

ACCOUNT_INFO = """
SELECT platform, status, username, display_name, platform_account_id
FROM accounts
WHERE workspace_id = {ws:UUID} AND account_id = {account:UUID}"""

ACCOUNT_PLATFORM = """
SELECT any(platform) AS platform FROM account_metrics_daily
WHERE workspace_id = {ws:UUID} AND account_id = {account:UUID}"""

# --- hashtags -------------------------------------------------------------------------------

# Posts published in [start, end] (UTC days), their hashtags, and each post's cumulative
# metrics at the end of `end` summed over its targets.
HASHTAGS = f"""
WITH published AS (
    SELECT DISTINCT post_id FROM post_deliveries
    WHERE workspace_id = {{ws:UUID}} AND outcome = 'succeeded'
        AND toDate(occurred_at) >= {{start:Date}} AND toDate(occurred_at) <= {{end:Date}}
        AND {ACCOUNTS} AND {PLATFORM}
),
tagged AS (
    SELECT post_id, arrayJoin(arrayDistinct(hashtags)) AS tag
    FROM posts
    WHERE workspace_id = {{ws:UUID}} AND post_id IN (SELECT post_id FROM published)
),
per_target AS (
    SELECT account_id, platform_post_id, max(post_id) AS post_key,
        {", ".join(f"argMax(c_{m}, day) AS {m}" for m in _METRICS)}
    FROM ({_POST_DAILY})
    GROUP BY account_id, platform_post_id
    HAVING post_key IN (SELECT post_id FROM published)
),
per_post AS (
    SELECT post_key, {", ".join(f"sum({m}) AS {m}" for m in _METRICS)}
    FROM per_target GROUP BY post_key
)
SELECT tag, count() AS posts, {", ".join(f"sum(m.{m}) AS {m}" for m in _METRICS)}
FROM tagged AS t LEFT JOIN per_post AS m ON t.post_id = m.post_key
GROUP BY tag
ORDER BY likes + comments + shares + saves DESC, posts DESC, tag
LIMIT {{limit:UInt32}}"""

# --- best time ------------------------------------------------------------------------------

# Published targets in [from, to) with their latest metrics, bucketed by weekday × hour in
# the zone `tz` (a constant per query, validated before it is bound).
BEST_TIME = f"""
WITH targets AS (
    SELECT account_id, platform_post_id, min(occurred_at) AS published_at
    FROM post_deliveries
    WHERE workspace_id = {{ws:UUID}} AND outcome = 'succeeded' AND platform_post_id != ''
        AND occurred_at >= {{from:DateTime64(3)}} AND occurred_at < {{to:DateTime64(3)}}
        AND {ACCOUNTS} AND {PLATFORM}
    GROUP BY account_id, platform_post_id
),
latest AS (
    SELECT account_id, platform_post_id,
        argMax(c_likes + c_comments + c_shares + c_saves, day) AS engagement,
        argMax(c_impressions, day) AS impressions
    FROM ({_POST_DAILY})
    GROUP BY account_id, platform_post_id
)
SELECT toDayOfWeek(published_at, 0, {{tz:String}}) AS weekday,
    toHour(toTimeZone(published_at, {{tz:String}})) AS hour,
    count() AS posts,
    sum(l.engagement) AS engagement,
    sum(l.impressions) AS impressions
FROM targets AS t
INNER JOIN latest AS l ON t.account_id = l.account_id AND t.platform_post_id = l.platform_post_id
WHERE l.impressions > 0
GROUP BY weekday, hour"""

# --- audit ----------------------------------------------------------------------------------

AUDIT = """
SELECT event_id, occurred_at, actor_type, actor_id, action, resource_type, resource_id,
    status_code, ip, user_agent, request_id, duration_ms
FROM audit_log FINAL
WHERE workspace_id = {ws:UUID}
    AND occurred_at >= {from:DateTime64(3)} AND occurred_at < {to:DateTime64(3)}
    AND ({actor_id:String} = '' OR actor_id = {actor_id:String})
    AND ({actor_type:String} = '' OR actor_type = {actor_type:String})
    AND ({action:String} = '' OR startsWith(action, {action:String}))
    AND ({resource_type:String} = '' OR resource_type = {resource_type:String})
    AND ({resource_id:String} = '' OR resource_id = {resource_id:String})
    AND ({status_min:UInt16} = 0 OR status_code >= {status_min:UInt16})
    AND ({status_max:UInt16} = 0 OR status_code <= {status_max:UInt16})
    AND (occurred_at, event_id) < ({before_at:DateTime64(3)}, {before_id:UUID})
ORDER BY occurred_at DESC, event_id DESC
LIMIT {limit:UInt32}"""

# --- exports (keyset pages: each page starts after the previous page's last key) ------------

EXPORT_EVENTS = """
SELECT event_id, event_type, source, subject, event_time, ingested_at,
    kafka_topic, kafka_partition, kafka_offset, data
FROM events FINAL
WHERE workspace_id = {ws:UUID}
    AND event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)}
    AND (event_time, event_id) > ({after_at:DateTime64(3)}, {after_id:UUID})
ORDER BY event_time, event_id
LIMIT {limit:UInt32}"""

EXPORT_AUDIT = """
SELECT event_id, occurred_at, actor_type, actor_id, action, resource_type, resource_id,
    status_code, ip, user_agent, request_id, duration_ms
FROM audit_log FINAL
WHERE workspace_id = {ws:UUID}
    AND occurred_at >= {from:DateTime64(3)} AND occurred_at < {to:DateTime64(3)}
    AND (occurred_at, event_id) > ({after_at:DateTime64(3)}, {after_id:UUID})
ORDER BY occurred_at, event_id
LIMIT {limit:UInt32}"""

EXPORT_ACCOUNTS = """
SELECT day, account_id, platform,
    argMaxMerge(followers) AS followers,
    argMaxMerge(following) AS following,
    argMaxMerge(posts) AS posts
FROM account_metrics_daily
WHERE workspace_id = {ws:UUID} AND day >= {start:Date} AND day <= {end:Date}
    AND (day, account_id) > ({after_day:Date}, {after_id:UUID})
GROUP BY day, account_id, platform
ORDER BY day, account_id
LIMIT {limit:UInt32}"""

_EXPORT_POST_DAILY = _post_daily(
    "(account_id, platform_post_id) > ({after_account:UUID}, {after_post:String})"
)
EXPORT_POSTS = f"""
SELECT account_id, platform, platform_post_id, max(post_id) AS post_id,
    {_GAINS},
    {_TOTALS}
FROM ({_EXPORT_POST_DAILY})
GROUP BY account_id, platform, platform_post_id
HAVING max(day) >= {{start:Date}}
ORDER BY account_id, platform_post_id
LIMIT {{limit:UInt32}}"""

ALL_STATEMENTS: dict[str, str] = {
    name: value
    for name, value in dict(globals()).items()
    if name.isupper() and not name.startswith("_") and isinstance(value, str) and "SELECT" in value
}
