"""Analytics dashboard queries: overview, best-time and post detail latency on ClickHouse,
and the same overview on Postgres for comparison.

    .venv/bin/python bench/queries.py [--events N] [--workspaces W] [--iterations I] [--json]

One run, one machine. A synthetic history of N metric snapshots (80 % post, 20 % account
snapshots) over W workspaces and 180 days, plus each post's delivery and creation, is
written once into a fresh embedded ClickHouse (chdb; the service's migrations, so the daily
rollups are filled by their materialized views) and into a throwaway Postgres database (the
same rows, indexed for these queries; Postgres has no rollups, it computes from snapshots).
Rows go straight into the typed tables (the Kafka path is measured by bench/ingest.py).

Measured per iteration for one workspace (1/W of the data), after warm-up:
* ClickHouse: `Reports.overview` (the 8 reads the API runs for GET /overview, 30 days
  against the previous 30), `Reports.best_time` (90 days) and `Reports.post` — the service
  code minus HTTP;
* Postgres: the same overview reads (same semantics, hand-written for Postgres), run
  sequentially on one connection.

The issue's scale (10M events) is cut to `--events` (default 1,000,000) so the run takes a
few minutes on a 2-core machine. Targets: overview p95 ≤ 150 ms on ClickHouse and ≥ 20×
faster than Postgres (p50 ratio). A measurement, not a test: exit 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from chorus_analytics.domain import Period
from chorus_analytics.mappings import TABLES
from chorus_analytics.reports import Reports
from chorus_analytics.repository import AnalyticsRepository, Filters
from chorus_analytics.store import MIGRATIONS, SESSION_SETTINGS
from chorus_runtime.clickhouse import EmbeddedClickHouseClient, migrate_up

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_P95_MS = 150.0
TARGET_SPEEDUP = 20.0
DAYS = 180
END = date(2025, 6, 30)
START = END - timedelta(days=DAYS - 1)
ACCOUNTS_PER_WORKSPACE = 5
SNAPSHOTS_PER_POST = 40  # every 6 hours for 10 days after publishing
PLATFORMS = ["linkedin", "x", "instagram", "facebook", "tiktok"]
CHUNK = 50_000


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- data ------------------------------------------------------------------------------------


class DataSet:
    def __init__(self, events: int, workspaces: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.workspaces = [uuid.UUID(int=self.rng.getrandbits(128)) for _ in range(workspaces)]
        self.accounts = {
            ws: [uuid.UUID(int=self.rng.getrandbits(128)) for _ in range(ACCOUNTS_PER_WORKSPACE)]
            for ws in self.workspaces
        }
        post_snapshots = int(events * 0.8)
        self.posts_per_workspace = max(1, post_snapshots // (SNAPSHOTS_PER_POST * workspaces))
        self.account_snapshots_per_account = max(
            1, (events - post_snapshots) // (ACCOUNTS_PER_WORKSPACE * workspaces)
        )
        self.sample_post: uuid.UUID | None = None

    def platform_of(self, ws: uuid.UUID, i: int) -> str:
        return PLATFORMS[i % len(PLATFORMS)]

    def posts(self) -> Iterator[dict[str, Any]]:
        t0 = datetime.combine(START, datetime.min.time(), UTC)
        for ws in self.workspaces:
            for n in range(self.posts_per_workspace):
                a = n % ACCOUNTS_PER_WORKSPACE
                published = t0 + timedelta(
                    seconds=self.rng.randrange(int(timedelta(days=DAYS - 10).total_seconds()))
                )
                post = uuid.UUID(int=self.rng.getrandbits(128))
                if ws == self.workspaces[0] and self.sample_post is None:
                    self.sample_post = post
                yield {
                    "ws": ws,
                    "post": post,
                    "target": uuid.UUID(int=self.rng.getrandbits(128)),
                    "account": self.accounts[ws][a],
                    "platform": self.platform_of(ws, a),
                    "ppid": f"{ws.hex[:6]}-{n}",
                    "published": published,
                    "hashtags": [f"tag{self.rng.randrange(30)}", f"tag{self.rng.randrange(30)}"],
                    "quality": self.rng.uniform(0.2, 3.0),
                }

    def snapshots(self, post: dict[str, Any]) -> Iterator[list[Any]]:
        q = post["quality"]
        for k in range(1, SNAPSHOTS_PER_POST + 1):
            at = post["published"] + timedelta(hours=6 * k)
            grow = k**0.7
            impressions = int(100 * q * grow)
            yield [
                post["ws"],
                str(uuid.UUID(int=self.rng.getrandbits(128))),
                post["account"],
                post["platform"],
                post["ppid"],
                post["post"],
                post["target"],
                int(5 * q * grow),  # likes
                int(q * grow),  # comments
                int(0.5 * q * grow),  # shares
                int(0.3 * q * grow),  # saves
                impressions,
                int(impressions * 0.8),  # reach
                int(2 * q * grow),  # clicks
                0,  # video views
                at,
            ]

    def account_snapshots(self) -> Iterator[list[Any]]:
        t0 = datetime.combine(START, datetime.min.time(), UTC)
        step = timedelta(days=DAYS) / self.account_snapshots_per_account
        for ws in self.workspaces:
            for a, account in enumerate(self.accounts[ws]):
                followers = 1000 * (a + 1)
                for k in range(self.account_snapshots_per_account):
                    followers += self.rng.randrange(-3, 8)
                    yield [
                        ws,
                        str(uuid.UUID(int=self.rng.getrandbits(128))),
                        account,
                        self.platform_of(ws, a),
                        max(0, followers),
                        100,
                        50 + k // 50,
                        t0 + step * k,
                    ]


def delivery_row(p: dict[str, Any]) -> list[Any]:
    return [
        p["ws"], str(uuid.uuid4()), "succeeded", p["post"], p["target"], p["account"],
        p["platform"], uuid.uuid4(), 1, p["ppid"], "", 0, "", "", "", p["published"],
    ]  # fmt: skip


def post_change_row(p: dict[str, Any]) -> list[Any]:
    return [
        p["ws"], str(uuid.uuid4()), p["post"], "created", p["published"] - timedelta(hours=1),
        1, "scheduled", None, f"post {p['ppid']}", p["hashtags"], None, [], None,
    ]  # fmt: skip


# -- loading ---------------------------------------------------------------------------------


class Loader:
    """Buffers rows per table and flushes them to ClickHouse and Postgres in chunks."""

    PG_TABLES = {
        "post_metric_snapshots": TABLES["post_metric_snapshots"].columns,
        "account_metric_snapshots": TABLES["account_metric_snapshots"].columns,
        "post_deliveries": TABLES["post_deliveries"].columns,
    }

    def __init__(self, ch: EmbeddedClickHouseClient, pg: asyncpg.Connection) -> None:
        self.ch, self.pg = ch, pg
        self.buffers: dict[str, list[list[Any]]] = {}
        self.counts: dict[str, int] = {}

    async def add(self, table: str, row: list[Any]) -> None:
        buf = self.buffers.setdefault(table, [])
        buf.append(row)
        if len(buf) >= CHUNK:
            await self.flush(table)

    async def flush(self, table: str) -> None:
        rows = self.buffers.pop(table, [])
        if not rows:
            return
        await self.ch.insert(table, rows, TABLES[table].columns)
        if table in self.PG_TABLES:
            await self.pg.copy_records_to_table(
                table,
                records=[[uuid.UUID(v) if c == "event_id" else v for c, v in zip(
                    TABLES[table].columns, r, strict=True)] for r in rows],
                columns=list(TABLES[table].columns),
            )  # fmt: skip
        self.counts[table] = self.counts.get(table, 0) + len(rows)

    async def flush_all(self) -> None:
        for table in list(self.buffers):
            await self.flush(table)


PG_SCHEMA = """
CREATE TABLE post_metric_snapshots (
    workspace_id uuid, event_id uuid PRIMARY KEY, account_id uuid, platform text,
    platform_post_id text, post_id uuid, target_id uuid, likes bigint, comments bigint,
    shares bigint, saves bigint, impressions bigint, reach bigint, clicks bigint,
    video_views bigint, collected_at timestamptz);
CREATE INDEX ON post_metric_snapshots (workspace_id, account_id, platform_post_id, collected_at);
CREATE INDEX ON post_metric_snapshots (workspace_id, collected_at);
CREATE TABLE account_metric_snapshots (
    workspace_id uuid, event_id uuid PRIMARY KEY, account_id uuid, platform text,
    followers bigint, following bigint, posts bigint, collected_at timestamptz);
CREATE INDEX ON account_metric_snapshots (workspace_id, account_id, collected_at);
CREATE TABLE post_deliveries (
    workspace_id uuid, event_id uuid PRIMARY KEY, outcome text, post_id uuid, target_id uuid,
    account_id uuid, platform text, command_id uuid, attempt int, platform_post_id text,
    url text, recovered_by_readback int, failure_kind text, error_code text,
    error_message text, occurred_at timestamptz);
CREATE INDEX ON post_deliveries (workspace_id, occurred_at);
"""


# -- the overview on Postgres ----------------------------------------------------------------

_M = ["likes", "comments", "shares", "saves", "impressions", "reach", "clicks", "video_views"]

PG_POST_GAINS = f"""
WITH last_end AS (
    SELECT DISTINCT ON (account_id, platform_post_id) account_id, platform, platform_post_id,
        post_id, collected_at, {", ".join(_M)}
    FROM post_metric_snapshots WHERE workspace_id = $1 AND collected_at < $3
    ORDER BY account_id, platform_post_id, collected_at DESC),
last_before AS (
    SELECT DISTINCT ON (account_id, platform_post_id) account_id, platform_post_id,
        {", ".join(_M)}
    FROM post_metric_snapshots WHERE workspace_id = $1 AND collected_at < $2
    ORDER BY account_id, platform_post_id, collected_at DESC)
SELECT e.account_id, e.platform, e.platform_post_id, e.post_id,
    {", ".join(f"e.{m} - coalesce(b.{m}, 0) AS {m}" for m in _M)}
FROM last_end e LEFT JOIN last_before b USING (account_id, platform_post_id)
WHERE e.collected_at >= $2"""

PG_DAILY = f"""
WITH d AS (
    SELECT DISTINCT ON (account_id, platform_post_id, day) account_id, platform_post_id,
        (collected_at AT TIME ZONE 'UTC')::date AS day, {", ".join(_M)}
    FROM post_metric_snapshots WHERE workspace_id = $1 AND collected_at < $3
    ORDER BY account_id, platform_post_id, day, collected_at DESC),
x AS (
    SELECT day, {", ".join(f"{m} - coalesce(lag({m}) OVER w, 0) AS {m}" for m in _M)}
    FROM d WINDOW w AS (PARTITION BY account_id, platform_post_id ORDER BY day))
SELECT day, {", ".join(f"sum({m}) AS {m}" for m in _M)}
FROM x WHERE day >= $2::timestamptz::date GROUP BY day ORDER BY day"""

PG_FOLLOWERS_AT = """
SELECT DISTINCT ON (account_id) account_id, platform, followers
FROM account_metric_snapshots WHERE workspace_id = $1 AND collected_at < $2
ORDER BY account_id, collected_at DESC"""

PG_FOLLOWER_POINTS = """
SELECT DISTINCT ON (account_id, day) account_id, platform,
    (collected_at AT TIME ZONE 'UTC')::date AS day, followers
FROM account_metric_snapshots WHERE workspace_id = $1 AND collected_at >= $2 AND collected_at < $3
ORDER BY account_id, day, collected_at DESC"""

PG_PUBLISHED = """
SELECT platform, count(DISTINCT post_id) AS posts FROM post_deliveries
WHERE workspace_id = $1 AND outcome = 'succeeded' AND occurred_at >= $2 AND occurred_at < $3
GROUP BY platform"""


def _bounds(p: Period) -> tuple[datetime, datetime]:
    start = datetime.combine(p.start, datetime.min.time(), UTC)
    return start, datetime.combine(p.end + timedelta(days=1), datetime.min.time(), UTC)


async def pg_overview(pg: asyncpg.Connection, ws: uuid.UUID, cur: Period, prev: Period) -> int:
    """The overview's reads on Postgres (same results as the ClickHouse reads)."""
    s, e = _bounds(cur)
    ps, pe = _bounds(prev)
    rows = 0
    for sql, args in (
        (PG_POST_GAINS, (ws, s, e)),
        (PG_POST_GAINS, (ws, ps, pe)),
        (PG_DAILY, (ws, s, e)),
        (PG_FOLLOWER_POINTS, (ws, s, e)),
        (PG_FOLLOWERS_AT, (ws, s)),
        (PG_FOLLOWERS_AT, (ws, e)),
        (PG_FOLLOWERS_AT, (ws, pe)),
        (PG_PUBLISHED, (ws, s, e)),
        (PG_PUBLISHED, (ws, ps, pe)),
    ):
        rows += len(await pg.fetch(sql, *args))
    return rows


# -- measuring -------------------------------------------------------------------------------


async def timed(fn: Callable[[], Awaitable[Any]], iterations: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        await fn()
    out = []
    for _ in range(iterations):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return sorted(out)


def pct(values: list[float], q: float) -> float:
    return round(values[min(len(values) - 1, int(len(values) * q))], 1)


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(values), 1), "p95_ms": pct(values, 0.95)}


async def load(data: DataSet, loader: Loader) -> None:
    for post in data.posts():
        await loader.add("post_deliveries", delivery_row(post))
        await loader.add("post_changes", post_change_row(post))
        for row in data.snapshots(post):
            await loader.add("post_metric_snapshots", row)
    for row in data.account_snapshots():
        await loader.add("account_metric_snapshots", row)
    await loader.flush_all()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="chorus-bench-queries-"))
    ch = EmbeddedClickHouseClient(tmp / "chdb", database="bench", settings=SESSION_SETTINGS)
    db = f"chorus_bench_analytics_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{db}"')
    pg = await asyncpg.connect(ADMIN_DSN.rsplit("/", 1)[0] + "/" + db)
    try:
        await migrate_up(ch, MIGRATIONS)
        await pg.execute(PG_SCHEMA)
        data = DataSet(args.events, args.workspaces)
        say(f"loading ~{args.events:,} snapshots over {args.workspaces} workspaces, {DAYS} days")
        t0 = time.perf_counter()
        loader = Loader(ch, pg)
        await load(data, loader)
        await pg.execute("VACUUM ANALYZE")
        say(f"loaded {loader.counts} in {time.perf_counter() - t0:.0f}s")

        ws = data.workspaces[0]
        repo = AnalyticsRepository(ch)
        reports = Reports(repo)
        current = Period(END - timedelta(days=29), END)
        previous = current.previous()
        last_90 = Period(END - timedelta(days=89), END)
        assert data.sample_post is not None
        post = data.sample_post

        say(f"measuring ({args.iterations} iterations each)")
        ch_overview = await timed(
            lambda: reports.overview(ws, current, previous, Filters()), args.iterations
        )
        best = await timed(
            lambda: reports.best_time(ws, last_90, Filters(), min_samples=3, top=3),
            args.iterations,
        )
        post_detail = await timed(lambda: reports.post(ws, post), args.iterations)
        pg_times = await timed(
            lambda: pg_overview(pg, ws, current, previous), max(5, args.iterations // 5)
        )
        ch_sum = summary(ch_overview)
        pg_sum = summary(pg_times)
        return {
            "events": sum(
                loader.counts.get(t, 0)
                for t in ("post_metric_snapshots", "account_metric_snapshots")
            ),
            "rows": loader.counts,
            "workspaces": args.workspaces,
            "clickhouse": {
                "overview": ch_sum,
                "best_time": summary(best),
                "post": summary(post_detail),
            },
            "postgres": {"overview": pg_sum},
            "overview_speedup_p50": round(pg_sum["p50_ms"] / max(ch_sum["p50_ms"], 0.1), 1),
            "targets": {"overview_p95_ms": TARGET_P95_MS, "speedup": TARGET_SPEEDUP},
        }
    finally:
        await ch.close()
        await pg.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}"')
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workspaces", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        result = asyncio.run(run(args))
    except Exception as exc:
        say(f"set-up failed: {type(exc).__name__}: {exc}")
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    ch, pg = result["clickhouse"], result["postgres"]
    p95_ok = ch["overview"]["p95_ms"] <= TARGET_P95_MS
    fast_ok = result["overview_speedup_p50"] >= TARGET_SPEEDUP
    print(
        f"snapshots {result['events']:,} over {result['workspaces']} workspaces: {result['rows']}"
    )
    for name, s in ch.items():
        print(f"clickhouse {name:<10} p50 {s['p50_ms']:>7} ms  p95 {s['p95_ms']:>7} ms")
    print(
        f"postgres   overview   p50 {pg['overview']['p50_ms']:>7} ms  "
        f"p95 {pg['overview']['p95_ms']:>7} ms"
    )
    print(
        f"overview p95 {ch['overview']['p95_ms']} ms (target <= {TARGET_P95_MS}) "
        f"{'PASS' if p95_ok else 'FAIL'}; ClickHouse {result['overview_speedup_p50']}x faster "
        f"than Postgres at p50 (target >= {TARGET_SPEEDUP}x) {'PASS' if fast_ok else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
