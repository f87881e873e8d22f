"""Metrics: the platform clients read the sandbox's growing numbers, and the collector turns
them into `connector.metrics` events — once per account and round, however many replicas
collect (real Postgres for the claim and outbox, real Redis for the rate governor)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis
from connector_inbound_kit import outbox_events
from platform_support import APP, SANDBOX, Sandbox, connect, media, running_sandbox

from chorus_connector.accounts import Account, AccountService
from chorus_connector.clients import Clients
from chorus_connector.governor import RateGovernor
from chorus_connector.metrics_collector import MetricsCollector
from chorus_connector.platforms.base import PlatformClient, RateLimitState
from chorus_connector.settings import ConnectorSettings
from chorus_connector.vault import TokenVault
from chorus_contracts.catalog import parse_data
from chorus_contracts.envelope import CloudEvent
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import (
    AccountMetricsCollected,
    PostMetricsCollected,
    PublishContent,
)
from chorus_runtime.crypto import Keyring
from chorus_runtime.db.database import Database, to_asyncpg_dsn
from chorus_sandbox.store import PlatformAccount
from chorus_testing.postgres import ServiceDatabase

pytestmark = pytest.mark.component

HOUR = 3600.0
METRICS = "connector.metrics"


@dataclass
class Replica:
    """What one connector process holds: its pool, clients and collector."""

    db: Database
    clients: Clients
    accounts: AccountService
    collector: MetricsCollector


@dataclass
class Env:
    sandbox: Sandbox
    db: ServiceDatabase
    settings: ConnectorSettings
    redis: aioredis.Redis
    replicas: list[Replica] = field(default_factory=list)

    def replica(self) -> Replica:
        db = Database(self.db.app_url, pool_size=4)
        clients = Clients(self.settings, http=self.sandbox.new_http())
        vault = TokenVault(Keyring.parse(self.settings.token_encryption_keys))
        accounts = AccountService(db, self.settings, clients, vault)
        collector = MetricsCollector(db, accounts, clients, RateGovernor(self.redis), self.settings)
        replica = Replica(db, clients, accounts, collector)
        self.replicas.append(replica)
        return replica

    async def connect(self, replica: Replica, platform: Platform) -> tuple[Account, str]:
        """Connect a new sandbox account in a new workspace: (account, access token)."""
        client = replica.clients.get(platform)
        tokens = await connect(client, self.sandbox.http)
        profile = await client.profile(tokens.access_token)
        account = await replica.accounts._store(  # the OAuth callback's last step
            str(uuid.uuid4()), str(uuid.uuid4()), platform, tokens, profile
        )
        return account, tokens.access_token

    async def ledger(
        self, account: Account, platform_post_id: str, *, age: timedelta, status: str = "published"
    ) -> tuple[str, str]:
        """A publish-ledger row as publishing through Chorus leaves it: (post id, target id)."""
        post_id, target_id = str(uuid.uuid4()), str(uuid.uuid4())
        conn = await asyncpg.connect(to_asyncpg_dsn(self.db.owner_url))
        try:
            await conn.execute(
                "INSERT INTO publish_ledger (target_id, workspace_id, post_id, account_id, "
                "platform, status, last_command_id, platform_post_id, published_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                target_id,
                account.workspace_id,
                post_id,
                account.id,
                account.platform.value,
                status,
                str(uuid.uuid4()),
                platform_post_id,
                datetime.now(UTC) - age,
            )
        finally:
            await conn.close()
        return post_id, target_id

    async def execute(self, sql: str, *args: object) -> None:
        conn = await asyncpg.connect(to_asyncpg_dsn(self.db.owner_url))
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    async def events(self) -> list[CloudEvent]:
        return await outbox_events(self.db.owner_url, METRICS)

    async def advance(self, seconds: float) -> None:
        r = await self.sandbox.http.post(
            f"{SANDBOX}/_sandbox/metrics/advance", json={"seconds": seconds}
        )
        assert r.status_code == 200, r.text


@pytest.fixture
async def env(connector_db: ServiceDatabase, redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    settings = ConnectorSettings(
        database_url=connector_db.app_url,
        migrations_database_url=connector_db.owner_url,
        kafka_bootstrap_servers="127.0.0.1:9",
        sandbox_url=SANDBOX,
        platform_client_id=APP.client_id,
        platform_client_secret=APP.client_secret,
        metrics_batch_size=2,
        metrics_interval_seconds=HOUR,
    )
    async with running_sandbox() as sandbox:
        environment = Env(sandbox, connector_db, settings, redis_client)
        try:
            yield environment
        finally:
            for replica in environment.replicas:
                await replica.db.dispose()


CASES = {
    Platform.X: (PublishContent(text="metrics on x"), []),
    Platform.INSTAGRAM: (PublishContent(text="metrics on instagram"), [media("photo.jpg")]),
    Platform.LINKEDIN: (PublishContent(text="metrics on linkedin"), []),
    Platform.YOUTUBE: (
        PublishContent(text="metrics on youtube", title="A film"),
        [media("clip.mp4")],
    ),
}


async def publish(client: PlatformClient, token: str, account: Account, platform: Platform) -> str:
    content, files = CASES[platform]
    if hasattr(client, "poll_interval"):
        client.poll_interval = 0.001  # type: ignore[attr-defined]
    published = await client.publish(token, account.profile, content, files)
    return published.platform_post_id


def sandbox_account(env: Env, platform: Platform, token: str) -> PlatformAccount:
    """The sandbox's account behind a token (its ids need not be the profile's)."""
    issued = env.sandbox.store.token(platform.value, token)
    assert issued is not None
    return env.sandbox.store.account(platform.value, issued.account_id)


# -- the clients against the sandbox's generator -------------------------------------------------


@pytest.mark.parametrize("platform", list(CASES), ids=lambda p: p.value)
async def test_clients_read_the_sandbox_metrics_as_they_grow(env: Env, platform: Platform) -> None:
    replica = env.replica()
    account, token = await env.connect(replica, platform)
    client = replica.clients.get(platform)
    post_id = await publish(client, token, account, platform)
    env.sandbox.store.clock.freeze()  # exact numbers: only `advance` moves time now
    await env.advance(HOUR)

    first = await client.post_metrics(token, account.profile, post_id)
    stored = env.sandbox.store.get_post(platform.value, post_id)
    assert stored is not None
    truth = stored.metrics()
    assert (first["likes"], first["comments"]) == (truth["likes"], truth["comments"])
    assert first["likes"] > 0

    await env.advance(48 * HOUR)
    later = await client.post_metrics(token, account.profile, post_id)
    assert all(later[k] >= first[k] for k in first), (first, later)
    assert later["likes"] > first["likes"] and later["comments"] >= first["comments"]

    followers = (await client.account_metrics(token, account.profile))["followers"]
    assert followers == sandbox_account(env, platform, token).followers
    await env.advance(30 * 24 * HOUR)
    assert (await client.account_metrics(token, account.profile))["followers"] > followers


# -- the collector -------------------------------------------------------------------------------


async def test_round_emits_account_and_post_metrics_for_recent_published_posts(env: Env) -> None:
    replica = env.replica()
    account, token = await env.connect(replica, Platform.X)
    client = replica.clients.get(Platform.X)
    ids = [
        (
            await client.publish(token, account.profile, PublishContent(text=f"post {i}"), [])
        ).platform_post_id
        for i in range(4)
    ]
    recent = [await env.ledger(account, ids[i], age=timedelta(days=i + 1)) for i in range(2)]
    await env.ledger(account, ids[2], age=timedelta(days=40))  # older than the lookback
    await env.ledger(account, ids[3], age=timedelta(hours=1), status="failed")
    gone_id = await client.publish(token, account.profile, PublishContent(text="gone"), [])
    await client.delete(token, account.profile, gone_id.platform_post_id)
    await env.ledger(account, gone_id.platform_post_id, age=timedelta(hours=2))
    env.sandbox.store.clock.freeze()
    await env.advance(6 * HOUR)

    report = await replica.collector.collect_round()

    assert (report.accounts, report.posts, report.skipped) == (1, 2, 0)
    events = await env.events()
    assert {e.tenantid for e in events} == {account.workspace_id}
    data = [parse_data(e) for e in events]
    [totals] = [d for d in data if isinstance(d, AccountMetricsCollected)]
    assert (str(totals.workspace_id), str(totals.account_id)) == (account.workspace_id, account.id)
    assert totals.followers == sandbox_account(env, Platform.X, token).followers
    assert totals.posts == 4
    posts = {d.platform_post_id: d for d in data if isinstance(d, PostMetricsCollected)}
    assert set(posts) == {ids[0], ids[1]}
    for platform_post_id, (post_id, target_id) in zip(ids[:2], recent, strict=True):
        event = posts[platform_post_id]
        assert (str(event.post_id), str(event.target_id)) == (post_id, target_id)
        stored = env.sandbox.store.get_post("x", platform_post_id)
        assert stored is not None
        truth = stored.metrics()
        assert (event.likes, event.impressions, event.clicks) == (
            truth["likes"],
            truth["impressions"],
            truth["clicks"],
        )

    # Collected this round: not due again until the interval has passed.
    assert (await replica.collector.collect_round()).accounts == 0
    assert len(await env.events()) == 3

    # The next round (an interval later) sees the numbers grown.
    await env.execute("UPDATE accounts SET metrics_collected_at = now() - interval '2 hours'")
    await env.advance(24 * HOUR)
    assert (await replica.collector.collect_round()).posts == 2
    later = [parse_data(e) for e in (await env.events())[3:]]
    grown = {
        d.platform_post_id: d.impressions for d in later if isinstance(d, PostMetricsCollected)
    }
    assert all(grown[p] > posts[p].impressions for p in ids[:2])


async def test_two_collectors_collect_each_account_once_per_round(env: Env) -> None:
    first, second = env.replica(), env.replica()
    accounts = [(await env.connect(first, Platform.X))[0] for _ in range(7)]

    reports = await asyncio.gather(
        first.collector.collect_round(), second.collector.collect_round()
    )

    assert sum(r.accounts for r in reports) == len(accounts)
    per_account = Counter(
        e.data["accountId"]
        for e in await env.events()
        if e.type == AccountMetricsCollected.event_type
    )
    assert per_account == Counter({a.id: 1 for a in accounts})
    tenants = {e.data["accountId"]: e.tenantid for e in await env.events()}
    assert tenants == {a.id: a.workspace_id for a in accounts}
    again = await asyncio.gather(first.collector.collect_round(), second.collector.collect_round())
    assert [r.accounts for r in again] == [0, 0]


async def test_spent_rate_budget_leaves_the_account_for_the_next_round(env: Env) -> None:
    replica = env.replica()
    account, _ = await env.connect(replica, Platform.X)
    governor = RateGovernor(env.redis)
    await governor.observe("x", account.id, RateLimitState(retry_after=600))

    report = await replica.collector.collect_round()

    assert (report.accounts, report.skipped) == (0, 1)
    assert await env.events() == []


async def test_accounts_that_cannot_act_are_not_collected(env: Env) -> None:
    replica = env.replica()
    account, _ = await env.connect(replica, Platform.X)
    await env.execute("UPDATE accounts SET status = 'needs_reauth' WHERE id = $1", account.id)
    report = await replica.collector.collect_round()
    assert (report.accounts, report.skipped) == (0, 0)
    assert await env.events() == []
