"""Scheduler: dispatch lag and command throughput for a minute's worth of due posts.

    .venv/bin/python bench/scheduler.py [--posts N] [--accounts A] [--schedulers S] [--json]

One run, one machine. A fresh publishing database (migrated like the tests'), the embedded
Kafka-protocol broker, and the publishing service as real processes: S scheduler roles
(`serve --role scheduler`, the due-queue with FOR UPDATE SKIP LOCKED) and one worker role
(its outbox relay publishes the commands). N posts (one target each, spread over A accounts
in A/10 workspaces and five platforms) are bulk-copied into the tables, then armed to fall
due evenly over `--spread` seconds (default 60) starting `--lead` seconds ahead. A plain
aiokafka consumer reads `connector.commands` as the commands appear.

Per command, against its post's scheduledAt:
* visible lag: when the consumer saw it (what a connector would see);
* claim lag: the command's requestedAt, stamped at the claim — the scheduler's own
  `chorus_scheduler_dispatch_lag_seconds`, whose histogram is also scraped from each role;
and commands/s from the first to the last command seen.

Baseline, same run, before the schedulers get any work: a plain producer sends probe
messages on the same schedule shape (same rate, `--probe-seconds` long) and the same consumer
reads them — the lag the broker and the consumer add by themselves.

The issue's scale is the default: 10,000 posts across 1,000 accounts in one minute. Target:
visible lag p99 ≤ 2 s. A measurement, not a test: exit 0 whatever the numbers, 1 if set-up
fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from chorus_contracts.envelope import decode
from chorus_contracts.events.connector import PublishRequested
from chorus_contracts.registry import load_registry
from chorus_publishing.main import MIGRATIONS
from chorus_runtime.db.database import to_asyncpg_dsn
from chorus_testing.broker import BrokerProcess
from chorus_testing.postgres import DatabaseFactory, ServiceDatabase
from chorus_testing.processes import ServiceProcess, start_role

TARGET_P99_SECONDS = 2.0
COMMANDS = "connector.commands"
PROBE = "bench.probe"
PLATFORMS = ("x", "linkedin", "threads", "bluesky", "mastodon")  # text-only posts
LAG_METRIC = "chorus_scheduler_dispatch_lag_seconds"
FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)  # seeded posts wait here until armed


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return float("nan")
    return values[max(0, min(len(values) - 1, math.ceil(q / 100 * len(values)) - 1))]


# -- seeding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    post_ids: list[str]  # in the order they fall due
    accounts: int
    workspaces: int


async def seed(db: ServiceDatabase, posts: int, accounts: int) -> Seeded:
    """Accounts (publishing's projection), scheduled posts and their targets, COPYed in as
    the table owner (a superuser: RLS does not apply to the bulk load)."""
    workspaces = [str(uuid.uuid4()) for _ in range(max(1, accounts // 10))]
    account_rows = [
        (str(uuid.uuid4()), workspaces[i % len(workspaces)], PLATFORMS[i % len(PLATFORMS)])
        for i in range(accounts)
    ]
    post_rows, target_rows, post_ids = [], [], []
    for i in range(posts):
        account_id, workspace, platform = account_rows[i % accounts]
        post_id = str(uuid.uuid4())
        post_ids.append(post_id)
        post_rows.append((post_id, workspace, "scheduled", f"Bench post {i}", FAR_FUTURE, "UTC"))
        target_rows.append((str(uuid.uuid4()), post_id, workspace, platform, account_id, "pending"))
    conn = await asyncpg.connect(to_asyncpg_dsn(db.owner_url))
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "accounts",
                records=[
                    (a, w, p, f"bench-{n}", "active") for n, (a, w, p) in enumerate(account_rows)
                ],
                columns=["id", "workspace_id", "platform", "username", "status"],
            )
            await conn.copy_records_to_table(
                "posts",
                records=post_rows,
                columns=["id", "workspace_id", "status", "text", "scheduled_at", "timezone"],
            )
            await conn.copy_records_to_table(
                "post_targets",
                records=target_rows,
                columns=["id", "post_id", "workspace_id", "platform", "account_id", "status"],
            )
        await conn.execute("ANALYZE posts; ANALYZE post_targets")
    finally:
        await conn.close()
    return Seeded(post_ids, accounts, len(workspaces))


async def arm(db: ServiceDatabase, seeded: Seeded, start: datetime, spread: float) -> list[float]:
    """Make post i due at start + spread·i/N in one statement; the due times (epoch s)."""
    n = len(seeded.post_ids)
    step = spread / n if n else 0.0
    due = [start + timedelta(seconds=step * i) for i in range(n)]
    conn = await asyncpg.connect(to_asyncpg_dsn(db.owner_url))
    try:
        await conn.execute(
            "UPDATE posts p SET scheduled_at = d.at FROM unnest($1::uuid[], $2::timestamptz[]) "
            "AS d(id, at) WHERE p.id = d.id",
            seeded.post_ids,
            due,
        )
    finally:
        await conn.close()
    return [d.timestamp() for d in due]


# -- observing -------------------------------------------------------------------------------


@dataclass
class Observed:
    visible: dict[str, float] = field(default_factory=dict)  # postId → first seen (epoch s)
    requested: dict[str, float] = field(default_factory=dict)  # postId → requestedAt
    commands: int = 0  # every PublishRequested seen, duplicates included
    probes: dict[int, float] = field(default_factory=dict)  # probe no → seen


async def start_reader(bootstrap: str, topics: list[str]) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"bench-reader-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,  # the default 500 ms would dominate the lag being measured
    )
    await consumer.start()
    deadline = time.monotonic() + 60
    while not consumer.assignment():  # joined: nothing produced from now on is missed
        if time.monotonic() > deadline:
            raise TimeoutError("the reader did not join its group")
        await consumer.getmany(timeout_ms=200)
    return consumer


async def read(consumer: AIOKafkaConsumer, seen: Observed, stop: asyncio.Event) -> None:
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=100, max_records=5000)
        now = time.time()
        for records in batch.values():
            for r in records:
                if r.topic.endswith(PROBE):
                    seen.probes.setdefault(int(r.value), now)
                    continue
                event = decode(r.headers, r.value)
                if event.type != PublishRequested.event_type:
                    continue
                seen.commands += 1
                post = event.data["postId"]
                seen.visible.setdefault(post, now)
                seen.requested.setdefault(
                    post, datetime.fromisoformat(event.data["requestedAt"]).timestamp()
                )


async def probe(
    bootstrap: str, topic: str, seen: Observed, rate: float, seconds: float
) -> list[float]:
    """Baseline: messages produced at their due time on the same schedule shape."""
    n = max(1, int(rate * seconds))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    due: list[float] = []
    try:
        start = time.time() + 0.5
        for i in range(n):
            at = start + i / rate
            await asyncio.sleep(max(0.0, at - time.time()))
            due.append(at)
            await producer.send(topic, value=str(i).encode(), key=str(i % 1000).encode())
        await producer.flush()
    finally:
        await producer.stop()
    for _ in range(600):  # up to 30 s for the last probes to be read
        if len(seen.probes) >= n:
            break
        await asyncio.sleep(0.05)
    return sorted(seen.probes[i] - due[i] for i in range(n) if i in seen.probes)


async def scrape_lag(schedulers: list[ServiceProcess]) -> dict[str, float]:
    """The schedulers' own dispatch-lag histogram, summed over the roles."""
    count = total = within = 0.0
    async with httpx.AsyncClient(timeout=5) as client:
        for s in schedulers:
            text = (await client.get(f"{s.url}/metrics")).text
            for family in text_string_to_metric_families(text):
                if family.name != LAG_METRIC:
                    continue
                for sample in family.samples:
                    if sample.name.endswith("_count"):
                        count += sample.value
                    elif sample.name.endswith("_sum"):
                        total += sample.value
                    elif sample.name.endswith("_bucket") and sample.labels.get("le") == "2.0":
                        within += sample.value
    return {
        "claims": int(count),
        "mean_s": round(total / count, 3) if count else float("nan"),
        "share_within_2s": round(within / count, 4) if count else float("nan"),
    }


# -- the run ---------------------------------------------------------------------------------


def role_env(
    db: ServiceDatabase, bootstrap: str, prefix: str, args: argparse.Namespace
) -> dict[str, str]:
    env = {
        "CHORUS_PUBLISHING_DATABASE_URL": db.app_url,
        "CHORUS_PUBLISHING_MIGRATIONS_DATABASE_URL": db.owner_url,
        "CHORUS_PUBLISHING_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CHORUS_PUBLISHING_TOPIC_PREFIX": prefix,
        "CHORUS_PUBLISHING_LOG_LEVEL": args.log_level,
    }
    if args.scheduler_interval is not None:
        env["CHORUS_PUBLISHING_SCHEDULER_INTERVAL_SECONDS"] = str(args.scheduler_interval)
    if args.relay_poll is not None:
        env["CHORUS_PUBLISHING_OUTBOX_POLL_INTERVAL_SECONDS"] = str(args.relay_poll)
    if args.scheduler_batch is not None:
        env["CHORUS_PUBLISHING_SCHEDULER_BATCH_SIZE"] = str(args.scheduler_batch)
    return env


async def start_roles(
    procs: list[ServiceProcess], env: dict[str, str], logs: Path, args: argparse.Namespace
) -> None:
    """One worker role (the outbox relay) and `--schedulers` scheduler roles, ready."""
    module = "chorus_publishing.main"
    procs.append(start_role("publishing-worker", module, "worker", env, logs))
    for i in range(args.schedulers):
        procs.append(start_role(f"publishing-scheduler-{i + 1}", module, "scheduler", env, logs))
    for p in procs:
        await p.ready(args.ready_timeout)
    say(f"ready: 1 worker (outbox relay) + {args.schedulers} scheduler role(s)")


async def wait_for_commands(
    seen: Observed, reader: asyncio.Task[None], start: datetime, args: argparse.Namespace
) -> None:
    deadline = time.monotonic() + args.lead + args.spread + args.drain_timeout
    last_report = time.monotonic()
    while len(seen.visible) < args.posts and time.monotonic() < deadline:
        if reader.done():
            reader.result()
        await asyncio.sleep(0.2)
        if time.monotonic() - last_report > 5:
            last_report = time.monotonic()
            late = time.time() - start.timestamp()
            say(f"  t={late:5.1f}s  {len(seen.visible):,} of {args.posts:,} commands seen")
    await asyncio.sleep(1.0)  # anything duplicated arrives too


async def run(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    factory = DatabaseFactory()
    broker = await asyncio.to_thread(BrokerProcess.start)
    procs: list[ServiceProcess] = []
    consumer: AIOKafkaConsumer | None = None
    try:
        prefix = f"b{uuid.uuid4().hex[:6]}."
        names = [prefix + PROBE]
        for spec in load_registry().topics.values():
            names += [prefix + spec.name, prefix + spec.dlq_name]
        await asyncio.to_thread(broker.ensure_topics, names)
        bootstrap = broker.bootstrap_servers
        db = await factory.create("publishing", MIGRATIONS)
        say(f"database {db.name}; broker {bootstrap}; topics {prefix}*")

        t0 = time.perf_counter()
        seeded = await seed(db, args.posts, args.accounts)
        say(
            f"seeded {args.posts:,} posts over {seeded.accounts:,} accounts in "
            f"{seeded.workspaces} workspaces in {time.perf_counter() - t0:.1f}s"
        )

        await start_roles(procs, role_env(db, bootstrap, prefix, args), logs, args)

        seen = Observed()
        consumer = await start_reader(bootstrap, [prefix + COMMANDS, prefix + PROBE])
        stop = asyncio.Event()
        reader = asyncio.create_task(read(consumer, seen, stop))

        rate = args.posts / args.spread if args.spread > 0 else args.posts / 1.0
        say(f"baseline: plain producer → consumer, {rate:.0f} msg/s for {args.probe_seconds}s")
        floor = await probe(bootstrap, prefix + PROBE, seen, rate, args.probe_seconds)

        start = datetime.now(UTC) + timedelta(seconds=args.lead)
        due = await arm(db, seeded, start, args.spread)
        due_at = dict(zip(seeded.post_ids, due, strict=True))
        say(f"armed: due from {start:%H:%M:%S} over {args.spread:g}s; waiting for commands")
        await wait_for_commands(seen, reader, start, args)
        stop.set()
        await reader
        lag = await scrape_lag(procs[1:])
    finally:
        if consumer is not None:
            await consumer.stop()
        for p in procs:
            p.stop()
        broker.stop()
        await factory.drop_all()

    visible = sorted(seen.visible[p] - due_at[p] for p in seen.visible)
    claimed = sorted(seen.requested[p] - due_at[p] for p in seen.requested)
    first, last = (min(seen.visible.values()), max(seen.visible.values())) if visible else (0, 0)
    return {
        "posts": args.posts,
        "accounts": args.accounts,
        "workspaces": seeded.workspaces,
        "schedulers": args.schedulers,
        "spread_s": args.spread,
        "commands_seen": len(seen.visible),
        "duplicate_commands": seen.commands - len(seen.visible),
        "missing_commands": args.posts - len(seen.visible),
        "commands_per_s": round(len(visible) / (last - first), 1) if last > first else None,
        "arrival_per_s": round(rate, 1),
        "visible_p50_s": round(percentile(visible, 50), 3),
        "visible_p99_s": round(percentile(visible, 99), 3),
        "visible_max_s": round(visible[-1], 3) if visible else None,
        "claim_p50_s": round(percentile(claimed, 50), 3),
        "claim_p99_s": round(percentile(claimed, 99), 3),
        "scheduler_metric": lag,
        "baseline_p50_s": round(percentile(floor, 50), 3),
        "baseline_p99_s": round(percentile(floor, 99), 3),
        "target_p99_s": TARGET_P99_SECONDS,
    }


def print_table(r: dict[str, Any]) -> None:
    ok = r["missing_commands"] == 0 and r["visible_p99_s"] <= TARGET_P99_SECONDS
    print(
        f"Scheduler: {r['posts']:,} posts due over {r['spread_s']:g}s across {r['accounts']:,} "
        f"accounts ({r['workspaces']} workspaces), {r['schedulers']} scheduler role(s)"
    )
    print(f"{'':26}{'p50 s':>9}{'p99 s':>9}")
    print(f"{'baseline (produce→read)':26}{r['baseline_p50_s']:>9.3f}{r['baseline_p99_s']:>9.3f}")
    print(f"{'claim lag (requestedAt)':26}{r['claim_p50_s']:>9.3f}{r['claim_p99_s']:>9.3f}")
    print(f"{'visible lag (on topic)':26}{r['visible_p50_s']:>9.3f}{r['visible_p99_s']:>9.3f}")
    m = r["scheduler_metric"]
    print(
        f"scheduler metric           {m['claims']:,} claims, mean {m['mean_s']} s, "
        f"{m['share_within_2s']:.2%} within 2 s"
    )
    print(
        f"commands                   {r['commands_seen']:,} seen, {r['missing_commands']} missing, "
        f"{r['duplicate_commands']} duplicated"
    )
    print(
        f"throughput                 {r['commands_per_s']} commands/s "
        f"(posts fall due at {r['arrival_per_s']}/s)"
    )
    if r["baseline_p99_s"] > 0:
        print(f"p99 / baseline p99         {r['visible_p99_s'] / r['baseline_p99_s']:.1f}x")
    print(
        f"visible lag p99            {r['visible_p99_s']:.3f} s  target <= {TARGET_P99_SECONDS} s"
        f"  {'PASS' if ok else 'FAIL'}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=10_000, help="posts (one target each)")
    parser.add_argument("--accounts", type=int, default=1_000, help="accounts (10 per workspace)")
    parser.add_argument("--schedulers", type=int, default=1, help="scheduler role processes")
    parser.add_argument(
        "--spread", type=float, default=60.0, help="seconds the posts fall due over"
    )
    parser.add_argument("--lead", type=float, default=5.0, help="seconds before the first is due")
    parser.add_argument("--probe-seconds", type=float, default=5.0, help="baseline length")
    parser.add_argument(
        "--drain-timeout", type=float, default=120.0, help="wait after the last due"
    )
    parser.add_argument(
        "--scheduler-interval", type=float, default=None, help="idle tick (service default 0.25)"
    )
    parser.add_argument(
        "--scheduler-batch",
        type=int,
        default=None,
        help="due posts per scheduler transaction (service default 200)",
    )
    parser.add_argument(
        "--relay-poll", type=float, default=None, help="outbox poll (service default 0.5)"
    )
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    parser.add_argument("--log-level", default="WARNING", help="the roles' log level")
    parser.add_argument("--keep-logs", action="store_true", help="keep the roles' logs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.posts < 1 or args.accounts < 1 or args.schedulers < 1 or args.spread < 0:
        parser.error("--posts, --accounts and --schedulers must be >= 1, --spread >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="chorus-bench-scheduler-"))
    try:
        result = asyncio.run(run(args, logs))
    except Exception as exc:
        say(f"set-up failed: {type(exc).__name__}: {exc} (logs kept in {logs})")
        return 1
    if args.keep_logs:
        say(f"logs in {logs}")
    else:
        for log in logs.glob("*.log"):
            log.unlink()
        logs.rmdir()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
