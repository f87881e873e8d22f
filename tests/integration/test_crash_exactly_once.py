"""Exactly once per target when processes die mid-flight (design.md §1, §4).

Real processes, killed for real: the publishing scheduler role and the connector worker run
as children (`python -m chorus_<svc>.main serve --role …`) and are made to crash or stall at
named failpoints (`CHORUS_FAILPOINTS`, chorus_runtime.failpoints) — with a transaction
open, after a platform call, before an offset commit. Then a healthy process takes over,
and the outcome is counted where it lands: commands on `connector.commands` by target,
posts in the sandbox (a separate process too), results on `connector.deliveries`.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from chorus_contracts.catalog import build_event
from chorus_contracts.envelope import CloudEvent, decode, encode
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import (
    DeliveryFailed,
    DeliverySucceeded,
    PublishContent,
    PublishRequested,
)
from chorus_runtime.db.database import Database
from chorus_runtime.failpoints import CRASH_EXIT_CODE
from chorus_runtime.outbox import OutboxRelay, RelayConfig
from chorus_runtime.service import Role
from chorus_testing.apps import running
from chorus_testing.fixtures import REDIS_URL
from chorus_testing.kafka_io import read_records
from chorus_testing.postgres import scalar
from chorus_testing.processes import ServiceProcess, start_role
from chorus_testing.waiting import eventually_equals, wait_for

pytestmark = pytest.mark.integration

PUBLISHING = "chorus_publishing.main"
CONNECTOR = "chorus_connector.main"
SANDBOX = "chorus_sandbox.main"
SCHEDULED = "SELECT count(*) FROM posts WHERE status = 'scheduled'"
COMMAND_ROWS = "SELECT count(*) FROM outbox WHERE topic = 'connector.commands'"
UNPUBLISHED = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
LEDGER_STATUS = "SELECT status FROM publish_ledger WHERE target_id = :t"
RESULT_ROWS = "SELECT count(*) FROM outbox WHERE topic = 'connector.deliveries'"
PROCESSED = "SELECT count(*) FROM processed_events WHERE consumer_group = 'connector.commands'"


@pytest.fixture
def children(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    """Every child a test starts; whatever is still running at the end is killed."""
    started: list[ServiceProcess] = []
    yield started
    for child in started:
        child.kill()


def spawn(
    children: list[ServiceProcess], logs: Path, name: str, module: str, role: str, **env: str
) -> ServiceProcess:
    child = start_role(name, module, role, env, logs)
    children.append(child)
    return child


async def read_topic(bootstrap: str, topic: str, *, settle: float = 1.5) -> list[CloudEvent]:
    """Everything on `topic` from the start, read until nothing new arrives for `settle` s."""
    records = await read_records(bootstrap, topic, settle=settle)
    return [decode(r.headers, r.value) for r in records]


def publishing_env(stack: Any, **extra: str) -> dict[str, str]:
    return {
        "CHORUS_PUBLISHING_DATABASE_URL": stack.publishing_db.app_url,
        "CHORUS_PUBLISHING_MIGRATIONS_DATABASE_URL": stack.publishing_db.owner_url,
        "CHORUS_PUBLISHING_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
        "CHORUS_PUBLISHING_TOPIC_PREFIX": stack.prefix,
        "CHORUS_PUBLISHING_SCHEDULER_INTERVAL_SECONDS": "0.1",
        "CHORUS_PUBLISHING_LOG_LEVEL": "WARNING",
        **extra,
    }


async def connected_accounts(stack: Any, workspace: str) -> dict[str, str]:
    """An X and a LinkedIn account in publishing's projection of connected accounts (what
    `connector.accounts` events build), so posts may target them."""
    ids = {p: str(uuid.uuid4()) for p in ("x", "linkedin")}
    for platform, account_id in ids.items():
        await scalar(
            stack.publishing_db.owner_url,
            "INSERT INTO accounts (id, workspace_id, platform, username, status) "
            "VALUES (:id, :ws, :p, :u, 'active') RETURNING id",
            id=account_id,
            ws=workspace,
            p=platform,
            u=f"{platform}-crash-test",
        )
    return ids


async def schedule_posts(stack: Any, tokens: Any, workspace: str, n: int) -> list[dict[str, Any]]:
    """`n` posts with two targets each, due a second from now (through the real API)."""
    accounts = await connected_accounts(stack, workspace)
    at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    posts = []
    async with running(stack.publishing(), Role.API, verifier=tokens.verifier()) as pub:
        for i in range(n):
            resp = await pub.client.post(
                "/api/v1/posts",
                headers=tokens.headers(workspace),
                json={
                    "content": {"text": f"Crash-proof {i}"},
                    "platforms": [{"platform": p, "accountId": a} for p, a in accounts.items()],
                    "scheduledAt": at,
                },
            )
            assert resp.status_code == 201, resp.text
            assert resp.json()["post"]["status"] == "scheduled"
            posts.append(resp.json()["post"])
    return posts


async def relay_commands(stack: Any) -> None:
    """Publish the committed outbox (the worker role's relay) and wait until it is empty."""
    db = Database(stack.publishing_db.app_url, pool_size=2)
    relay = OutboxRelay(
        db,
        RelayConfig(
            service="publishing",
            bootstrap_servers=stack.bootstrap,
            topic_prefix=stack.prefix,
            poll_interval=0.1,
        ),
    )
    task = asyncio.create_task(relay.run())
    try:
        url = stack.publishing_db.owner_url
        await eventually_equals(lambda: scalar(url, UNPUBLISHED), 0, timeout=60)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 15)
        await db.dispose()


@pytest.mark.parametrize("death", ["crash", "stall-then-kill"])
async def test_scheduler_killed_while_claiming_each_target_is_dispatched_once(
    stack: Any, tokens: Any, tmp_path: Path, children: list[ServiceProcess], death: str
) -> None:
    """Scheduler A claims the due posts, stages their commands and dies before COMMIT —
    at once (`crash`), or after stalling with the row locks held while scheduler B runs
    (`stall-then-kill`: B must skip those rows, not wait, and take them once A is gone)."""
    workspace = str(uuid.uuid4())
    posts = await schedule_posts(stack, tokens, workspace, n=3)
    targets = {t["id"] for p in posts for t in p["targets"]}
    url = stack.publishing_db.owner_url
    action = "crash" if death == "crash" else "sleep:300"
    a = spawn(
        children,
        tmp_path,
        "scheduler-a",
        PUBLISHING,
        "scheduler",
        **publishing_env(stack, CHORUS_FAILPOINTS=f"publishing.dispatch.after_claim={action}"),
    )
    if death == "crash":
        assert await a.exited(timeout=90) == CRASH_EXIT_CODE, a.log_tail()
    else:
        await a.said("failpoint publishing.dispatch.after_claim: sleep", timeout=90)
    assert await scalar(url, SCHEDULED) == 3, "A's claim was never committed"
    assert await scalar(url, COMMAND_ROWS) == 0, "A's staged commands were never committed"

    b = spawn(children, tmp_path, "scheduler-b", PUBLISHING, "scheduler", **publishing_env(stack))
    await b.ready()
    if death != "crash":
        await asyncio.sleep(2)  # ~20 ticks of B while A holds the locks
        assert await scalar(url, SCHEDULED) == 3, "B skipped the rows A holds"
        assert await scalar(url, COMMAND_ROWS) == 0
        assert a.proc.poll() is None
        a.kill()  # the node dies: Postgres rolls A's transaction back, the locks go
    await eventually_equals(lambda: scalar(url, COMMAND_ROWS), len(targets), timeout=60)
    await asyncio.sleep(1)  # B keeps ticking: nothing more may come
    b.stop()
    assert b.proc.returncode in (0, -signal.SIGTERM), b.log_tail()  # uvicorn re-raises it

    await relay_commands(stack)
    commands = [
        e
        for e in await read_topic(stack.bootstrap, stack.prefix + "connector.commands")
        if e.type == PublishRequested.event_type
    ]
    sent = Counter(e.data["targetId"] for e in commands)
    assert set(sent) == targets
    assert set(sent.values()) == {1}, f"every target exactly once: {sent}"
    assert {e.data["attempt"] for e in commands} == {1}
    # …and the posts went on: dispatched once, each target waiting for its result.
    assert await scalar(url, "SELECT count(*) FROM posts WHERE status = 'publishing'") == 3
    assert (
        await scalar(
            url, "SELECT count(*) FROM post_targets WHERE status = 'dispatched' AND attempts = 1"
        )
        == 6
    )
    assert await scalar(url, "SELECT count(*) FROM post_history WHERE action = 'dispatched'") == 3


# -- the connector ---------------------------------------------------------------------------


@dataclass
class Connected:
    """A sandbox process and an X account connected to the connector through OAuth."""

    stack: Any
    sandbox: ServiceProcess
    workspace: str
    account_id: str
    logs: Path
    children: list[ServiceProcess]

    def worker(self, name: str, failpoint: str | None = None) -> ServiceProcess:
        env = {
            "CHORUS_CONNECTOR_DATABASE_URL": self.stack.connector_db.app_url,
            "CHORUS_CONNECTOR_MIGRATIONS_DATABASE_URL": self.stack.connector_db.owner_url,
            "CHORUS_CONNECTOR_KAFKA_BOOTSTRAP_SERVERS": self.stack.bootstrap,
            "CHORUS_CONNECTOR_TOPIC_PREFIX": self.stack.prefix,
            "CHORUS_CONNECTOR_REDIS_URL": REDIS_URL,
            "CHORUS_CONNECTOR_SANDBOX_URL": self.sandbox.url,
            "CHORUS_CONNECTOR_OUTBOX_POLL_INTERVAL_SECONDS": "0.1",
            "CHORUS_CONNECTOR_LOG_LEVEL": "WARNING",
        }
        if failpoint:
            env["CHORUS_FAILPOINTS"] = f"{failpoint}=crash"
        return spawn(self.children, self.logs, name, CONNECTOR, "worker", **env)

    def command(self, text: str, *, target: uuid.UUID, attempt: int = 1) -> PublishRequested:
        now = datetime.now(UTC)
        return PublishRequested(
            command_id=uuid.uuid4(),
            workspace_id=uuid.UUID(self.workspace),
            post_id=uuid.uuid4(),
            target_id=target,
            platform=Platform.X,  # no native idempotency key: only the ledger and read-back
            account_id=uuid.UUID(self.account_id),
            attempt=attempt,
            idempotency_key=str(target),
            deadline=now + timedelta(minutes=15),
            content=PublishContent(text=text),
            requested_at=now,
        )

    async def send(self, command: PublishRequested) -> None:
        event = build_event(
            command,
            source="/chorus/publishing",
            tenant_id=self.workspace,
            subject=str(command.target_id),
        )
        headers, value = encode(event)
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                self.stack.prefix + "connector.commands",
                value=value,
                key=self.account_id.encode(),
                headers=headers,
            )
        finally:
            await producer.stop()

    async def sandbox_posts(self, text: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.sandbox.url, timeout=10) as client:
            resp = await client.get("/_sandbox/posts", params={"platform": "x"})
        assert resp.status_code == 200, resp.text
        return [p for p in resp.json()["posts"] if p["text"] == text]

    async def fault(self, **fault: Any) -> None:
        async with httpx.AsyncClient(base_url=self.sandbox.url, timeout=10) as client:
            resp = await client.post("/_sandbox/faults", json={"platform": "x", **fault})
        assert resp.status_code == 201, resp.text

    async def results(self, target: uuid.UUID) -> list[CloudEvent]:
        events = await read_topic(self.stack.bootstrap, self.stack.prefix + "connector.deliveries")
        return [e for e in events if e.data.get("targetId") == str(target)]

    async def ledger(self, target: uuid.UUID) -> Any:
        return await scalar(self.stack.connector_db.owner_url, LEDGER_STATUS, t=str(target))

    async def count(self, sql: str) -> Any:
        return await scalar(self.stack.connector_db.owner_url, sql)


@pytest.fixture
async def connected(
    stack: Any, tokens: Any, tmp_path: Path, children: list[ServiceProcess]
) -> AsyncIterator[Connected]:
    sandbox = spawn(children, tmp_path, "sandbox", SANDBOX, "api")
    await sandbox.ready()
    workspace = str(uuid.uuid4())
    runtime = stack.connector(sandbox_url=sandbox.url, redis_url=REDIS_URL)
    async with (
        running(runtime, Role.API, verifier=tokens.verifier()) as api,
        httpx.AsyncClient(timeout=10) as browser,
    ):
        auth = tokens.headers(workspace)
        start = await api.client.post(
            "/api/v1/accounts/connect/x",
            headers=auth,
            json={"redirectUri": "https://app.example.com/oauth/callback"},
        )
        assert start.status_code == 200, start.text
        consent = await browser.get(start.json()["authorizeUrl"])  # redirects straight back
        assert consent.status_code in (302, 303, 307), consent.text
        code = httpx.URL(consent.headers["location"]).params["code"]
        done = await api.client.get(
            "/api/v1/accounts/callback/x",
            headers=auth,
            params={"code": code, "state": start.json()["state"]},
        )
        assert done.status_code == 201, done.text
    yield Connected(stack, sandbox, workspace, done.json()["account"]["id"], tmp_path, children)


@pytest.mark.parametrize(
    "failpoint",
    [
        # the platform holds the post; the ledger says `sending`; nothing staged or acked
        "connector.publish.after_send",
        # the outcome and its result are committed; the Kafka offset is not
        "consumer.connector.commands.before_ack",
    ],
)
async def test_connector_killed_after_sending_publishes_once(
    connected: Connected, failpoint: str
) -> None:
    target = uuid.uuid4()
    text = f"Exactly once {target.hex[:8]}"
    await connected.send(connected.command(text, target=target))

    first = connected.worker("connector-1", failpoint)
    assert await first.exited(timeout=90) == CRASH_EXIT_CODE, first.log_tail()
    assert len(await connected.sandbox_posts(text)) == 1, "the platform got the post"
    if failpoint == "connector.publish.after_send":
        assert await connected.ledger(target) == "sending"
        assert await connected.count(RESULT_ROWS) == 0
        assert await connected.count(PROCESSED) == 0
    else:
        assert await connected.ledger(target) == "published"
        assert await connected.count(RESULT_ROWS) == 1
        assert await connected.count(PROCESSED) == 1

    second = connected.worker("connector-2")
    await eventually_equals(lambda: connected.ledger(target), "published", timeout=90)
    unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    await eventually_equals(lambda: connected.count(unpublished), 0, timeout=60)
    second.stop()

    posts = await connected.sandbox_posts(text)
    assert len(posts) == 1, f"still exactly one post on the platform: {posts}"
    results = await connected.results(target)
    assert {e.type for e in results} == {DeliverySucceeded.event_type}, results
    assert len({e.id for e in results}) == 1, "one result (the relay may repeat an event id)"
    result = results[0].data
    assert result["platformPostId"] == posts[0]["id"]
    # Crashed before anything was recorded: only a read-back can know the post exists.
    assert result["recoveredByReadback"] is (failpoint == "connector.publish.after_send")
    assert await connected.count(RESULT_ROWS) == 1


async def test_connector_does_not_resend_while_the_read_back_fails(
    connected: Connected,
) -> None:
    """After a crash after sending, the redelivered command must find out whether the post
    exists before sending again; if the platform cannot say (read-back errors), sending
    anyway risks a second post — it reports a transient failure instead, and the retry reads
    back and recovers the post."""
    target = uuid.uuid4()
    text = f"Read back first {target.hex[:8]}"
    await connected.send(connected.command(text, target=target))
    first = connected.worker("connector-1", "connector.publish.after_send")
    assert await first.exited(timeout=90) == CRASH_EXIT_CODE, first.log_tail()

    await connected.fault(kind="server_error", operation="read", count=1)
    second = connected.worker("connector-2")
    await eventually_equals(lambda: connected.count(RESULT_ROWS), 1, timeout=90)
    assert await connected.ledger(target) == "sending", "still unknown, still to read back"
    assert len(await connected.sandbox_posts(text)) == 1, "nothing sent a second time"

    await connected.send(connected.command(text, target=target, attempt=2))  # the retry
    await eventually_equals(lambda: connected.ledger(target), "published", timeout=60)
    await wait_for(lambda: _all_published(connected), timeout=60)
    second.stop()

    posts = await connected.sandbox_posts(text)
    assert len(posts) == 1, posts
    results = {e.id: e for e in await connected.results(target)}.values()
    by_type = Counter(e.type for e in results)
    assert by_type == {DeliveryFailed.event_type: 1, DeliverySucceeded.event_type: 1}, by_type
    (failed,) = [e.data for e in results if e.type == DeliveryFailed.event_type]
    assert failed["kind"] == "transient"
    assert failed["attempt"] == 1
    assert "read-back" in failed["errorMessage"]
    (succeeded,) = [e.data for e in results if e.type == DeliverySucceeded.event_type]
    assert succeeded["attempt"] == 2
    assert succeeded["recoveredByReadback"] is True
    assert succeeded["platformPostId"] == posts[0]["id"]


async def _all_published(connected: Connected) -> bool:
    return bool(await connected.count("SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"))
