"""The scheduler's due-queue (component, real Postgres): a scheduled post becomes one
`connector.commands` command per target at its time — not before, never twice, even with
several dispatchers claiming the same rows (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from publishing_testkit import Publishing

from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import PublishRequested
from chorus_contracts.events.publishing import (
    PostStatus,
    PostStatusChanged,
    TargetStatusChanged,
)
from chorus_publishing import domain
from chorus_publishing.dispatcher import Dispatcher, Step, decide
from chorus_runtime.db.database import Database, to_asyncpg_dsn
from chorus_runtime.errors import Conflict

pytestmark = pytest.mark.component

LAG = "chorus_scheduler_dispatch_lag_seconds"


def lag(sample: str) -> float:
    return REGISTRY.get_sample_value(f"{LAG}_{sample}", {"service": "publishing"}) or 0.0


def iso(at: datetime) -> str:
    return at.isoformat()


async def schedule_post(
    p: Publishing, workspace: str, *platforms: str, at: datetime, role: str = "owner"
) -> dict[str, Any]:
    resp = await p.client.post(
        "/api/v1/posts",
        json=await p.body(workspace, *platforms, scheduledAt=iso(at)),
        headers=p.headers(workspace, role),
    )
    assert resp.status_code == 201, resp.text
    post = resp.json()["post"]
    assert post["status"] == "scheduled"
    return post  # type: ignore[no-any-return]


@asynccontextmanager
async def dispatchers(p: Publishing, n: int, **kw: Any) -> AsyncIterator[list[Dispatcher]]:
    """`n` dispatchers as separate replicas would run them: each its own pool, as the app role."""
    dbs = [Database(p.db.app_url, pool_size=2) for _ in range(n)]
    try:
        yield [Dispatcher(db, deadline=timedelta(minutes=15), **kw) for db in dbs]
    finally:
        for db in dbs:
            await db.dispose()


async def test_a_scheduled_post_goes_out_at_its_time_and_not_before(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    due = datetime.now(UTC) + timedelta(seconds=2)
    post = await schedule_post(publishing, workspace, "x", "linkedin", at=due)
    at = datetime.fromisoformat(post["scheduledAt"])
    assert at == due, "stored to the microsecond, in UTC"
    staged = len(await publishing.outbox())

    assert await publishing.tick(now=at - timedelta(milliseconds=1)) == 0
    assert await publishing.commands() == []
    assert len(await publishing.outbox()) == staged
    assert (await publishing.get(workspace, post["id"]))["status"] == "scheduled"

    lag_count, lag_sum = lag("count"), lag("sum")
    claimed_at = at + timedelta(milliseconds=400)
    assert await publishing.tick(now=claimed_at) == 1

    after = await publishing.get(workspace, post["id"])
    assert after["status"] == "publishing"
    assert [t["status"] for t in after["targets"]] == ["dispatched", "dispatched"]
    assert [t["attempts"] for t in after["targets"]] == [1, 1]
    assert [h["action"] for h in after["history"]] == ["created", "dispatched"]
    assert after["history"][-1]["fromStatus"] == "scheduled"
    assert after["history"][-1]["toStatus"] == "publishing"

    rows = [r for r in await publishing.outbox() if r.topic == "connector.commands"]
    assert len(rows) == 2, "one command per target"
    targets = {t["id"]: t for t in after["targets"]}
    for row in rows:
        command = row.data
        assert isinstance(command, PublishRequested)
        target = targets[str(command.target_id)]
        assert command.idempotency_key == target["id"]
        assert command.attempt == 1
        assert str(command.post_id) == post["id"]
        assert str(command.workspace_id) == workspace
        assert command.platform == target["platform"]
        assert row.key == target["accountId"]
        assert row.headers["ce_tenantid"] == workspace
        assert row.headers["ce_subject"] == target["id"]
        assert command.requested_at == claimed_at
        assert command.deadline == claimed_at + timedelta(minutes=15)
        assert command.content.text == "Hello from Chorus"
    assert {str(c.target_id) for c in await publishing.publish_commands()} == set(targets)

    # The scheduler's lag: one observation of how late the claim was.
    assert lag("count") == lag_count + 1
    assert lag("sum") - lag_sum == pytest.approx(0.4, abs=1e-6)

    events = (await publishing.post_events())[-3:]
    (post_change,) = [e for e in events if isinstance(e, PostStatusChanged)]
    assert (post_change.previous_status, post_change.status) == ("scheduled", "publishing")
    target_changes = [e for e in events if isinstance(e, TargetStatusChanged)]
    assert sorted(str(e.target_id) for e in target_changes) == sorted(targets)
    assert {(e.previous_status, e.status, e.attempts) for e in target_changes} == {
        ("pending", "dispatched", 1)
    }

    # Ticking again, however late, sends nothing more.
    assert await publishing.tick(now=at + timedelta(minutes=1)) == 0
    assert len(await publishing.commands()) == 2


async def test_only_due_posts_are_claimed(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    now = datetime.now(UTC)
    soon = await schedule_post(publishing, workspace, "x", at=now + timedelta(minutes=5))
    later = await schedule_post(publishing, workspace, "x", at=now + timedelta(hours=5))
    draft = await publishing.create_ok(workspace, "x")

    assert await publishing.tick(now=now + timedelta(minutes=10)) == 1
    statuses = {
        pid: (await publishing.get(workspace, pid))["status"]
        for pid in (soon["id"], later["id"], draft["id"])
    }
    assert statuses == {soon["id"]: "publishing", later["id"]: "scheduled", draft["id"]: "draft"}
    assert [str(c.post_id) for c in await publishing.commands()] == [soon["id"]]


async def test_an_unscheduled_post_is_not_dispatched(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    at = datetime.now(UTC) + timedelta(minutes=1)
    post = await schedule_post(publishing, workspace, "x", at=at)
    resp = await publishing.client.post(
        f"/api/v1/posts/{post['id']}/unschedule", headers=publishing.headers(workspace)
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["post"]["status"] == "draft"
    assert resp.json()["post"]["scheduledAt"] is None
    assert await publishing.tick(now=at + timedelta(minutes=1)) == 0
    assert await publishing.commands() == []


async def test_two_dispatchers_ticking_together_send_each_target_once(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    at = datetime.now(UTC) + timedelta(seconds=2)
    posts = [
        await schedule_post(publishing, workspace, "x", "linkedin", "threads", at=at)
        for _ in range(10)
    ]
    targets = {t["id"] for p in posts for t in p["targets"]}
    assert len(targets) == 30

    async with dispatchers(publishing, 2) as (a, b):
        moved = await asyncio.gather(*(d.tick(now=at + timedelta(seconds=1)) for d in (a, b)))
        assert sum(moved) == 10, moved
        assert await a.tick(now=at + timedelta(seconds=2)) == 0

    commands = await publishing.commands()
    sent = Counter(str(c.target_id) for c in commands)
    assert set(sent) == targets
    assert set(sent.values()) == {1}, "every target exactly once"
    assert {c.idempotency_key for c in commands} == targets
    assert await publishing.scalar("SELECT count(*) FROM posts WHERE status = 'publishing'") == 10
    assert await publishing.scalar("SELECT max(attempts) FROM post_targets") == 1


async def test_many_dispatchers_draining_in_small_batches_send_each_target_once(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    at = datetime.now(UTC) + timedelta(seconds=2)
    for _ in range(12):
        await schedule_post(publishing, workspace, "x", "bluesky", at=at)

    async def drain(d: Dispatcher) -> int:
        total = 0
        while moved := await d.tick(now=at):
            total += moved
        return total

    async with dispatchers(publishing, 4, batch_size=2) as ds:
        moved = await asyncio.gather(*(drain(d) for d in ds))
    assert sum(moved) == 12, moved

    sent = Counter(str(c.target_id) for c in await publishing.commands())
    assert len(sent) == 24
    assert set(sent.values()) == {1}
    history = await publishing.scalar(
        "SELECT count(*) FROM post_history WHERE action = 'dispatched'"
    )
    assert history == 12, "one dispatch per post"


async def test_the_dispatcher_loop_sends_due_posts_by_itself(publishing: Publishing) -> None:
    """`run()` (what the scheduler role starts) ticks on its own with the real clock."""
    workspace = str(uuid.uuid4())
    post = await schedule_post(
        publishing, workspace, "x", at=datetime.now(UTC) + timedelta(milliseconds=300)
    )
    async with dispatchers(publishing, 1, interval=0.05) as (d,):
        task = asyncio.create_task(d.run())
        try:
            for _ in range(100):
                if await publishing.commands():
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    (command,) = await publishing.commands()
    assert str(command.post_id) == post["id"]


# -- batches: one transaction and one statement per table for up to `batch_size` posts ------


async def test_one_batch_dispatches_posts_of_several_workspaces_each_under_its_tenant(
    publishing: Publishing,
) -> None:
    at = datetime.now(UTC) + timedelta(seconds=2)
    workspaces = [str(uuid.uuid4()) for _ in range(3)]
    posts = {
        w: [await schedule_post(publishing, w, "x", "linkedin", at=at) for _ in range(2)]
        for w in workspaces
    }
    owner = {p["id"]: w for w, ps in posts.items() for p in ps}
    target_owner = {t["id"]: w for w, ps in posts.items() for p in ps for t in p["targets"]}

    staged = len(await publishing.outbox())
    async with dispatchers(publishing, 1, batch_size=50) as (d,):
        assert await d.tick(now=at) == 6

    rows = (await publishing.outbox())[staged:]  # what the one batch staged
    assert len(rows) == 6 + 12 + 12, "per post: its status, its two targets', two commands"
    for row in rows:
        data = row.data
        post_id = str(data.post_id)  # type: ignore[attr-defined]
        assert row.headers["ce_tenantid"] == owner[post_id], "the event names its own tenant"
        assert str(data.workspace_id) == owner[post_id]  # type: ignore[attr-defined]
        if isinstance(data, PublishRequested):
            assert target_owner[str(data.target_id)] == owner[post_id]
            assert data.idempotency_key == str(data.target_id)
    sent = Counter(str(c.target_id) for c in await publishing.commands())
    assert set(sent) == set(target_owner) and set(sent.values()) == {1}

    # Each workspace sees its own posts moved, with their history, through RLS…
    for w, ps in posts.items():
        for p in ps:
            got = await publishing.get(w, p["id"])
            assert got["status"] == "publishing"
            assert {t["status"] for t in got["targets"]} == {"dispatched"}
            assert [h["action"] for h in got["history"]] == ["created", "dispatched"]
    # …and not another's.
    other = await publishing.client.get(
        f"/api/v1/posts/{posts[workspaces[0]][0]['id']}",
        headers=publishing.headers(workspaces[1]),
    )
    assert other.status_code == 404, other.text
    mismatched = await publishing.scalar(
        "SELECT count(*) FROM post_history h JOIN posts p ON p.id = h.post_id "
        "WHERE h.workspace_id <> p.workspace_id"
    )
    assert mismatched == 0

    # Per post, the outbox keeps the order one post at a time had: status, targets, commands.
    order = [(str(r.data.post_id), type(r.data).__name__) for r in rows]  # type: ignore[attr-defined]
    for post_id in owner:
        kinds = [k for pid, k in order if pid == post_id]
        assert kinds == [
            "PostStatusChanged",
            "TargetStatusChanged",
            "TargetStatusChanged",
            "PublishRequested",
            "PublishRequested",
        ]


async def test_posts_that_cannot_go_do_not_hold_up_the_rest_of_the_batch(
    publishing: Publishing,
) -> None:
    """A post awaiting approval is never claimed; one locked by an edit in flight (being
    unscheduled) is skipped, not waited for; the others of the batch go out."""
    at = datetime.now(UTC) + timedelta(seconds=2)
    workspace, strict = str(uuid.uuid4()), str(uuid.uuid4())
    ready = [await schedule_post(publishing, workspace, "x", at=at) for _ in range(3)]
    being_edited = await schedule_post(publishing, workspace, "bluesky", at=at)
    await publishing.require_approval(strict, "editor")
    resp = await publishing.client.post(
        "/api/v1/posts",
        json=await publishing.body(strict, "x", scheduledAt=iso(at)),
        headers=publishing.headers(strict, "editor"),
    )
    assert resp.status_code == 201, resp.text
    waiting = resp.json()["post"]
    assert waiting["status"] == "pending_approval"

    edit = await asyncpg.connect(to_asyncpg_dsn(publishing.db.owner_url))
    try:
        tx = edit.transaction()
        await tx.start()
        await edit.execute("SELECT set_config('app.system', 'on', true)")  # RLS is forced
        await edit.execute("SELECT 1 FROM posts WHERE id = $1 FOR UPDATE", being_edited["id"])
        async with dispatchers(publishing, 1, batch_size=10) as (d,):
            assert await asyncio.wait_for(d.tick(now=at), 10) == 3, "no wait on the lock"
            await edit.execute(
                "UPDATE posts SET status = 'draft', scheduled_at = NULL WHERE id = $1",
                being_edited["id"],
            )
            await tx.commit()
            assert await d.tick(now=at + timedelta(minutes=1)) == 0
    finally:
        await edit.close()

    sent = [str(c.post_id) for c in await publishing.commands()]
    assert sorted(sent) == sorted(p["id"] for p in ready)
    assert (await publishing.get(workspace, being_edited["id"]))["status"] == "draft"
    assert (await publishing.get(strict, waiting["id"]))["status"] == "pending_approval"


async def test_one_more_post_than_a_batch_goes_out_in_two_batches_each_target_once(
    publishing: Publishing,
) -> None:
    batch = 4
    at = datetime.now(UTC) + timedelta(seconds=2)
    workspaces = [str(uuid.uuid4()), str(uuid.uuid4())]
    posts = [
        await schedule_post(publishing, workspaces[i % 2], "x", "threads", at=at)
        for i in range(batch + 1)
    ]
    targets = {t["id"] for p in posts for t in p["targets"]}

    async with dispatchers(publishing, 1, batch_size=batch) as (d,):
        assert await d.tick(now=at) == batch
        assert await d.tick(now=at) == 1
        assert await d.tick(now=at) == 0

    sent = Counter(str(c.target_id) for c in await publishing.commands())
    assert set(sent) == targets
    assert set(sent.values()) == {1}, "every target exactly once"
    assert await publishing.scalar("SELECT count(*) FROM posts WHERE status = 'publishing'") == 5
    history = "SELECT count(*) FROM post_history WHERE action = 'dispatched'"
    assert await publishing.scalar(history) == batch + 1


async def test_the_loop_goes_again_at_once_after_a_full_batch(publishing: Publishing) -> None:
    """With an idle tick far longer than the test, the posts beyond the first (full) batch
    still go out: the loop only sleeps after a batch that was not full."""
    workspace = str(uuid.uuid4())
    at = datetime.now(UTC) - timedelta(seconds=1)
    posts = [await schedule_post_at_past(publishing, workspace, at) for _ in range(7)]
    async with dispatchers(publishing, 1, batch_size=3, interval=60) as (d,):
        task = asyncio.create_task(d.run())
        try:
            for _ in range(200):
                if len(await publishing.commands()) == len(posts):
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    sent = Counter(str(c.post_id) for c in await publishing.commands())
    assert set(sent) == {p["id"] for p in posts}
    assert set(sent.values()) == {1}


async def schedule_post_at_past(p: Publishing, workspace: str, at: datetime) -> dict[str, Any]:
    """A post scheduled for the future, then moved into the past (the API refuses past
    times): already due when the loop starts."""
    post = await schedule_post(p, workspace, "x", at=datetime.now(UTC) + timedelta(hours=1))
    await p.scalar(
        "UPDATE posts SET scheduled_at = :at WHERE id = :id RETURNING 1", at=at, id=post["id"]
    )
    return post


@pytest.mark.unit
def test_a_claimed_post_that_cannot_be_sent_fails_loudly_without_holding_up_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = datetime.now(UTC)
    workspace = str(uuid.uuid4())

    def post(status: PostStatus, text: str = "hi") -> domain.Post:
        return domain.Post(
            id=str(uuid.uuid4()),
            workspace_id=workspace,
            author_id=None,
            status=status,
            content=domain.Content(text=text),
            targets=(domain.Target(str(uuid.uuid4()), Platform.X, str(uuid.uuid4())),),
            scheduled_at=now,
        )

    good, broken, finished, also_good = (
        post(PostStatus.SCHEDULED),
        post(PostStatus.SCHEDULED, text="boom"),
        post(PostStatus.CANCELLED),
        post(PostStatus.SCHEDULED),
    )

    def step(p: domain.Post) -> Step:
        if p.content.text == "boom":
            raise Conflict("the post's media are gone")
        after, commands = domain.dispatch(p, now=now, deadline=timedelta(minutes=15))
        return Step(p, after, commands, history="dispatched")

    with caplog.at_level(logging.ERROR, logger="chorus.publishing.dispatcher"):
        steps = decide([good, broken, finished, also_good], step, now=now)
    assert [s.before.id for s in steps] == [good.id, broken.id, also_good.id]
    logged = [r.fields["postId"] for r in caplog.records]  # type: ignore[attr-defined]
    assert logged == [broken.id, finished.id]
    for s in (steps[0], steps[2]):
        kinds = [type(e.data).__name__ for e in s.emissions]
        assert kinds == ["PostStatusChanged", "TargetStatusChanged", "PublishRequested"]
        assert {e.tenant_id for e in s.emissions} == {workspace}
    failed = steps[1]
    assert failed.after.status is PostStatus.FAILED and failed.history == "failed"
    assert failed.after.status_reason == "not dispatchable: the post's media are gone"
    assert [t.last_error_code for t in failed.after.targets] == ["not_dispatchable"]
    assert not failed.commands
    kinds = [type(e.data).__name__ for e in failed.emissions]
    assert kinds == ["PostStatusChanged", "TargetStatusChanged"]
