"""Delivery results (component): encoded CloudEvents on `connector.deliveries` fed through the
service's own consumer (FastStream's in-memory broker) into a real Postgres. Each target
ends published or failed loudly with the platform's reason; transient failures retry with
backoff; missing results are re-sent at the deadline; stale and repeated results change
nothing; every status change is an event on `publishing.posts`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from publishing_testkit import Publishing, failed, succeeded

from chorus_contracts.catalog import build_event
from chorus_contracts.events.connector import DeliveryDeleted, FailureKind, PublishRequested
from chorus_contracts.events.publishing import PostStatusChanged, TargetStatusChanged
from chorus_publishing.lifecycle import MAX_ATTEMPTS

pytestmark = pytest.mark.component


async def publish_now(p: Publishing, *platforms: str) -> tuple[str, dict[str, Any]]:
    """A post published now by a manager: (workspace, post) with every target dispatched."""
    workspace = str(uuid.uuid4())
    post = await p.create_ok(workspace, *platforms)
    resp = await p.client.post(
        f"/api/v1/posts/{post['id']}/publish", headers=p.headers(workspace, "manager")
    )
    assert resp.status_code == 202, resp.text
    return workspace, resp.json()["post"]


async def latest_commands(p: Publishing) -> dict[str, PublishRequested]:
    """The newest publish command per target id."""
    return {str(c.target_id): c for c in await p.publish_commands()}


def deliveries_sub(p: Publishing) -> Any:
    assert p.runtime is not None
    (sub,) = [s for s in p.runtime.consumers.subscriptions if s.topic == "connector.deliveries"]
    return sub


def by_platform(post: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["platform"]: t for t in post["targets"]}


async def target_row(p: Publishing, target_id: str, column: str) -> Any:
    return await p.scalar(f"SELECT {column} FROM post_targets WHERE id = :t", t=target_id)


async def test_success_on_every_target_publishes_the_post(publishing: Publishing) -> None:
    workspace, post = await publish_now(publishing, "x", "linkedin")
    commands = await latest_commands(publishing)
    published_at = datetime(2026, 5, 1, 12, 0, 7, tzinfo=UTC)
    for command in commands.values():
        await publishing.deliver(succeeded(command, published_at=published_at))

    done = await publishing.get(workspace, post["id"])
    assert done["status"] == "published"
    assert done["statusReason"] is None
    for t in done["targets"]:
        assert t["status"] == "published"
        assert t["platformPostId"] == f"pp-{uuid.UUID(t['id']).hex[:12]}"
        assert t["url"] == f"https://{t['platform']}.example/p/{t['platformPostId']}"
        assert datetime.fromisoformat(t["publishedAt"]) == published_at
        assert t["lastError"] is None
        assert t["nextAttemptAt"] is None
    assert [h["action"] for h in done["history"]] == ["created", "published_now", "finished"]
    assert done["history"][-1]["toStatus"] == "published"
    assert await publishing.scalar("SELECT count(*) FROM post_targets WHERE deadline_at IS NULL")

    events = await publishing.post_events()
    published = [
        e for e in events if isinstance(e, TargetStatusChanged) and e.status == "published"
    ]
    assert sorted(str(e.target_id) for e in published) == sorted(commands)
    for e in published:
        assert e.previous_status == "dispatched"
        assert e.platform_post_id == f"pp-{e.target_id.hex[:12]}"
        assert e.url is not None
    (final,) = [e for e in events if isinstance(e, PostStatusChanged) and e.status == "published"]
    assert final.previous_status == "publishing"
    assert final.reason is None


async def test_one_permanent_failure_makes_it_partially_published(
    publishing: Publishing,
) -> None:
    workspace, post = await publish_now(publishing, "x", "linkedin")
    targets = by_platform(post)
    commands = await latest_commands(publishing)
    await publishing.deliver(succeeded(commands[targets["x"]["id"]]))
    mid = await publishing.get(workspace, post["id"])
    assert mid["status"] == "publishing", "not final while a target is still out"

    await publishing.deliver(
        failed(
            commands[targets["linkedin"]["id"]],
            FailureKind.PERMANENT,
            code="duplicate_content",
            message="LinkedIn refuses duplicate content",
        )
    )
    done = await publishing.get(workspace, post["id"])
    assert done["status"] == "partially_published"
    assert done["statusReason"] == "linkedin: duplicate_content: LinkedIn refuses duplicate content"
    outcome = by_platform(done)
    assert outcome["x"]["status"] == "published"
    assert outcome["linkedin"]["status"] == "failed"
    assert outcome["linkedin"]["lastError"] == (
        "duplicate_content: LinkedIn refuses duplicate content"
    )
    assert outcome["linkedin"]["nextAttemptAt"] is None
    assert await target_row(publishing, targets["linkedin"]["id"], "last_error_code") == (
        "duplicate_content"
    )

    events = await publishing.post_events()
    (final,) = [e for e in events if isinstance(e, PostStatusChanged) and e.status != "publishing"]
    assert final.status == "partially_published"
    assert final.reason == done["statusReason"]
    (target_failed,) = [
        e for e in events if isinstance(e, TargetStatusChanged) and e.status == "failed"
    ]
    assert target_failed.error_code == "duplicate_content"
    assert str(target_failed.target_id) == targets["linkedin"]["id"]


async def test_every_target_failing_fails_the_post_with_each_reason(
    publishing: Publishing,
) -> None:
    workspace, post = await publish_now(publishing, "x", "threads")
    targets = by_platform(post)
    commands = await latest_commands(publishing)
    await publishing.deliver(
        failed(commands[targets["x"]["id"]], FailureKind.AUTH, code="token_revoked", message="no")
    )
    await publishing.deliver(
        failed(commands[targets["threads"]["id"]], code="media_rejected", message="bad image")
    )
    done = await publishing.get(workspace, post["id"])
    assert done["status"] == "failed"
    reason = done["statusReason"]
    assert "x: token_revoked: no (reconnect the account)" in reason
    assert "threads: media_rejected: bad image" in reason
    assert {t["status"] for t in done["targets"]} == {"failed"}


async def test_a_transient_failure_retries_after_retry_after(publishing: Publishing) -> None:
    workspace, post = await publish_now(publishing, "x")
    (target,) = post["targets"]
    (first,) = (await latest_commands(publishing)).values()
    before = datetime.now(UTC)
    await publishing.deliver(
        failed(first, FailureKind.TRANSIENT, code="rate_limited", message="429", retry_after=30)
    )

    waiting = await publishing.get(workspace, post["id"])
    assert waiting["status"] == "publishing"
    (t,) = waiting["targets"]
    assert t["status"] == "retrying"
    assert t["lastError"] == "rate_limited: 429 (retrying)"
    next_at = datetime.fromisoformat(t["nextAttemptAt"])
    assert next_at >= before + timedelta(seconds=30), "never sooner than Retry-After"
    assert next_at <= datetime.now(UTC) + timedelta(seconds=31)
    retrying = [e for e in await publishing.post_events() if isinstance(e, TargetStatusChanged)][-1]
    assert (retrying.previous_status, retrying.status) == ("dispatched", "retrying")

    assert await publishing.tick(now=next_at - timedelta(milliseconds=1)) == 0
    assert len(await publishing.commands()) == 1

    assert await publishing.tick(now=next_at) == 1
    commands = await publishing.publish_commands()
    assert len(commands) == 2
    second = commands[-1]
    assert second.attempt == 2
    assert second.target_id == first.target_id
    assert second.idempotency_key == first.idempotency_key == target["id"]
    assert second.command_id != first.command_id
    assert second.requested_at == next_at

    again = await publishing.get(workspace, post["id"])
    (t,) = again["targets"]
    assert (t["status"], t["attempts"], t["nextAttemptAt"]) == ("dispatched", 2, None)
    assert await publishing.tick(now=next_at + timedelta(seconds=1)) == 0, "sent once"
    redispatched = [
        e for e in await publishing.post_events() if isinstance(e, TargetStatusChanged)
    ][-1]
    assert (redispatched.previous_status, redispatched.status) == ("retrying", "dispatched")
    assert redispatched.attempts == 2

    await publishing.deliver(succeeded(second))
    assert (await publishing.get(workspace, post["id"]))["status"] == "published"


async def test_transient_failures_give_up_after_max_attempts(publishing: Publishing) -> None:
    workspace, post = await publish_now(publishing, "x", "linkedin")
    targets = by_platform(post)
    commands = await latest_commands(publishing)
    await publishing.deliver(succeeded(commands[targets["linkedin"]["id"]]))

    flaky = targets["x"]["id"]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        command = (await latest_commands(publishing))[flaky]
        assert command.attempt == attempt
        await publishing.deliver(
            failed(command, FailureKind.TRANSIENT, code="server_error", message="502")
        )
        if attempt < MAX_ATTEMPTS:
            next_at = await target_row(publishing, flaky, "next_attempt_at")
            assert await target_row(publishing, flaky, "status") == "retrying"
            assert await publishing.tick(now=next_at) == 1

    done = await publishing.get(workspace, post["id"])
    assert done["status"] == "partially_published"
    x = by_platform(done)["x"]
    assert x["status"] == "failed"
    assert x["attempts"] == MAX_ATTEMPTS
    assert x["lastError"] == f"server_error: 502 (gave up after {MAX_ATTEMPTS} attempts)"
    assert done["statusReason"] == f"x: {x['lastError']}"
    sent = [c for c in await publishing.publish_commands() if str(c.target_id) == flaky]
    assert [c.attempt for c in sent] == list(range(1, MAX_ATTEMPTS + 1))
    assert await publishing.tick(now=datetime.now(UTC) + timedelta(days=1)) == 0


async def test_a_stale_result_of_an_earlier_attempt_changes_nothing(
    publishing: Publishing,
) -> None:
    workspace, post = await publish_now(publishing, "x")
    (first,) = (await latest_commands(publishing)).values()
    await publishing.deliver(failed(first, FailureKind.TRANSIENT, code="timeout", message="t/o"))
    next_at = await target_row(publishing, str(first.target_id), "next_attempt_at")
    assert await publishing.tick(now=next_at) == 1
    snapshot = await publishing.get(workspace, post["id"])
    staged = len(await publishing.outbox())

    # Attempt 1's result turns up late (a redelivery from the connector, new event id).
    await publishing.deliver(failed(first, FailureKind.PERMANENT, code="late", message="old"))
    await publishing.deliver(failed(first, FailureKind.TRANSIENT, code="late", message="old"))

    assert await publishing.get(workspace, post["id"]) == snapshot
    assert len(await publishing.outbox()) == staged, "no event, no command"
    (t,) = snapshot["targets"]
    assert (t["status"], t["attempts"]) == ("dispatched", 2)


async def test_a_result_after_the_outcome_changes_nothing(publishing: Publishing) -> None:
    workspace, post = await publish_now(publishing, "x")
    (command,) = (await latest_commands(publishing)).values()
    await publishing.deliver(succeeded(command, platform_post_id="first"))
    snapshot = await publishing.get(workspace, post["id"])
    staged = len(await publishing.outbox())

    await publishing.deliver(succeeded(command, platform_post_id="second"))
    await publishing.deliver(failed(command, FailureKind.PERMANENT))
    assert await publishing.get(workspace, post["id"]) == snapshot
    assert snapshot["targets"][0]["platformPostId"] == "first"
    assert len(await publishing.outbox()) == staged


async def test_the_same_delivery_event_twice_has_one_effect(publishing: Publishing) -> None:
    workspace, post = await publish_now(publishing, "x", "linkedin")
    targets = by_platform(post)
    commands = await latest_commands(publishing)
    transient = failed(
        commands[targets["x"]["id"]], FailureKind.TRANSIENT, code="busy", message="later"
    )
    event = build_event(
        transient, source="/chorus/connector", subject=targets["x"]["id"], tenant_id=workspace
    )
    await publishing.send_event(event, topic="connector.deliveries", key=post["id"])
    first = await publishing.get(workspace, post["id"])
    staged = len(await publishing.outbox())

    await publishing.send_event(event, topic="connector.deliveries", key=post["id"])
    assert await publishing.get(workspace, post["id"]) == first, "next attempt not moved"
    assert len(await publishing.outbox()) == staged
    assert (
        await publishing.scalar(
            "SELECT count(*) FROM processed_events WHERE event_id = :e", e=event.id
        )
        == 1
    )
    sub = deliveries_sub(publishing)
    assert (sub.processed, sub.duplicates) == (1, 1)

    # The same for a success: one "published" event, however often it is delivered.
    success = build_event(
        succeeded(commands[targets["linkedin"]["id"]]),
        source="/chorus/connector",
        subject=targets["linkedin"]["id"],
        tenant_id=workspace,
    )
    for _ in range(3):
        await publishing.send_event(success, topic="connector.deliveries", key=post["id"])
    published = [
        e
        for e in await publishing.post_events()
        if isinstance(e, TargetStatusChanged) and e.status == "published"
    ]
    assert len(published) == 1
    assert (sub.processed, sub.duplicates, sub.dead_lettered) == (2, 3, 0)


async def test_no_result_by_the_deadline_resends_then_fails_loudly(
    publishing: Publishing,
) -> None:
    workspace, post = await publish_now(publishing, "x")
    (target,) = post["targets"]
    deadline = await target_row(publishing, target["id"], "deadline_at")
    (first,) = await publishing.publish_commands()
    assert deadline > first.deadline, "a grace period after the connector's own deadline"

    assert await publishing.tick(now=deadline - timedelta(seconds=1)) == 0
    for attempt in range(2, MAX_ATTEMPTS + 1):
        assert await publishing.tick(now=deadline) == 1
        command = (await publishing.publish_commands())[-1]
        assert command.attempt == attempt
        assert command.idempotency_key == target["id"], "the connector's ledger dedupes"
        assert command.requested_at == deadline
        (t,) = (await publishing.get(workspace, post["id"]))["targets"]
        assert (t["status"], t["attempts"]) == ("dispatched", attempt)
        new_deadline = await target_row(publishing, target["id"], "deadline_at")
        assert new_deadline > deadline
        deadline = new_deadline

    assert await publishing.tick(now=deadline) == 1
    assert len(await publishing.commands()) == MAX_ATTEMPTS, "no sixth attempt"
    done = await publishing.get(workspace, post["id"])
    assert done["status"] == "failed"
    (t,) = done["targets"]
    assert t["status"] == "failed"
    assert t["lastError"].startswith("no result")
    assert done["statusReason"] == f"x: {t['lastError']}"
    assert [h["action"] for h in done["history"]][-1] == "finished"
    assert await target_row(publishing, target["id"], "last_error_code") == "no_result"
    events = await publishing.post_events()
    (final,) = [e for e in events if isinstance(e, PostStatusChanged) and e.status == "failed"]
    assert final.reason is not None and "no result" in final.reason
    assert await publishing.tick(now=deadline + timedelta(days=1)) == 0


async def test_a_late_success_after_a_resend_still_counts(publishing: Publishing) -> None:
    """The first attempt did publish, its result was just slow: the post is published."""
    workspace, post = await publish_now(publishing, "x")
    (first,) = await publishing.publish_commands()
    deadline = await target_row(publishing, str(first.target_id), "deadline_at")
    assert await publishing.tick(now=deadline) == 1
    await publishing.deliver(succeeded(first))
    done = await publishing.get(workspace, post["id"])
    assert done["status"] == "published"
    assert await target_row(publishing, str(first.target_id), "deadline_at") is None
    assert await publishing.tick(now=deadline + timedelta(hours=1)) == 0


async def test_results_for_unknown_posts_or_other_tenants_are_ignored(
    publishing: Publishing,
) -> None:
    workspace, post = await publish_now(publishing, "x")
    (command,) = await publishing.publish_commands()
    snapshot = await publishing.get(workspace, post["id"])
    staged = len(await publishing.outbox())

    unknown_post = command.model_copy(update={"post_id": uuid.uuid4()})
    unknown_target = command.model_copy(update={"target_id": uuid.uuid4()})
    await publishing.deliver(succeeded(unknown_post))
    await publishing.deliver(succeeded(unknown_target))
    # Claimed by another tenant: row-level security hides the post from that transaction.
    await publishing.send(
        succeeded(command), topic="connector.deliveries", tenant=str(uuid.uuid4())
    )
    # A delivery type this consumer does not act on.
    await publishing.send(
        DeliveryDeleted(
            command_id=uuid.uuid4(),
            workspace_id=command.workspace_id,
            post_id=command.post_id,
            target_id=command.target_id,
            platform=command.platform,
            platform_post_id="gone",
            deleted_at=datetime.now(UTC),
        ),
        topic="connector.deliveries",
        tenant=workspace,
    )
    assert await publishing.get(workspace, post["id"]) == snapshot
    assert len(await publishing.outbox()) == staged
    sub = deliveries_sub(publishing)
    assert (sub.processed, sub.dead_lettered) == (3, 0), "ignored, not dead-lettered"
