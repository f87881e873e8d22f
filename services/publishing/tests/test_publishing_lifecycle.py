"""The post and target status machines (unit: `lifecycle` and `domain`, pure) and what the API
lets a user do to a post in each status — edit, delete, delete from the platforms
(component, real Postgres)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from publishing_testkit import Publishing, failed, succeeded

from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind
from chorus_contracts.events.publishing import (
    PostDeleted,
    PostStatus,
    PostStatusChanged,
    PostUpdated,
    TargetStatus,
)
from chorus_publishing import domain, lifecycle, workflows
from chorus_runtime.errors import Conflict

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
DEADLINE = timedelta(minutes=15)

# -- status machines (unit) -----------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("draft", "scheduled"),
        ("draft", "pending_approval"),
        ("draft", "publishing"),
        ("pending_approval", "scheduled"),
        ("pending_approval", "draft"),
        ("scheduled", "publishing"),
        ("scheduled", "draft"),
        ("scheduled", "cancelled"),
        ("publishing", "published"),
        ("publishing", "partially_published"),
        ("publishing", "failed"),
    ],
)
def test_allowed_transitions(current: str, target: str) -> None:
    lifecycle.check_transition(PostStatus(current), PostStatus(target))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("publishing", "draft"),
        ("publishing", "cancelled"),
        ("published", "draft"),
        ("published", "publishing"),
        ("partially_published", "publishing"),
        ("failed", "scheduled"),
        ("cancelled", "draft"),
        ("draft", "published"),
        ("scheduled", "failed"),
    ],
)
def test_refused_transitions_are_conflicts(current: str, target: str) -> None:
    with pytest.raises(Conflict) as info:
        lifecycle.check_transition(PostStatus(current), PostStatus(target))
    assert info.value.details == {"status": current, "requested": target}


@pytest.mark.unit
def test_terminal_posts_go_nowhere() -> None:
    for status in ("published", "partially_published", "failed", "cancelled"):
        assert lifecycle.POST_TRANSITIONS[PostStatus(status)] == frozenset()
    assert {"draft", "pending_approval", "scheduled"} == lifecycle.EDITABLE


@pytest.mark.unit
@pytest.mark.parametrize(
    ("targets", "outcome"),
    [
        (["published", "published"], "published"),
        (["published", "failed"], "partially_published"),
        (["failed", "failed"], "failed"),
        (["failed", "cancelled"], "failed"),
        (["published", "retrying"], None),
        (["published", "dispatched"], None),
        (["pending"], None),
        ([], None),
    ],
)
def test_final_status(targets: list[str], outcome: str | None) -> None:
    assert lifecycle.final_status([TargetStatus(t) for t in targets]) == outcome


@pytest.mark.unit
def test_retry_delay_backs_off_with_jitter_and_respects_retry_after() -> None:
    rng = random.Random(7)
    for attempt, (lo, hi) in {1: (2.5, 5), 2: (5, 10), 3: (10, 20), 4: (20, 40)}.items():
        delays = [lifecycle.retry_delay(attempt, None, rng=rng) for _ in range(50)]
        assert all(lo <= d <= hi for d in delays), (attempt, delays)
        assert len(set(delays)) > 1, "jittered"
    assert all(150 <= lifecycle.retry_delay(20, None, rng=rng) <= 300 for _ in range(20))
    assert lifecycle.retry_delay(1, 30, rng=rng) == 30
    assert lifecycle.retry_delay(4, 600, rng=rng) == 600


@pytest.mark.unit
def test_failure_decisions() -> None:
    transient = lifecycle.on_failure(
        attempt=1,
        kind=FailureKind.TRANSIENT,
        code="rate_limited",
        message="slow down",
        retry_after=30,
        now=NOW,
    )
    assert transient.status is TargetStatus.RETRYING
    assert transient.next_attempt_at is not None
    assert transient.next_attempt_at >= NOW + timedelta(seconds=30)
    assert transient.reason == "rate_limited: slow down (retrying)"

    last = lifecycle.on_failure(
        attempt=lifecycle.MAX_ATTEMPTS,
        kind=FailureKind.TRANSIENT,
        code="e",
        message="m",
        retry_after=None,
        now=NOW,
    )
    assert (last.status, last.next_attempt_at) == (TargetStatus.FAILED, None)
    assert last.reason == f"e: m (gave up after {lifecycle.MAX_ATTEMPTS} attempts)"

    auth = lifecycle.on_failure(
        attempt=1,
        kind=FailureKind.AUTH,
        code="token_revoked",
        message="401",
        retry_after=None,
        now=NOW,
    )
    assert (auth.status, auth.reason) == (
        TargetStatus.FAILED,
        "token_revoked: 401 (reconnect the account)",
    )
    permanent = lifecycle.on_failure(
        attempt=1,
        kind=FailureKind.PERMANENT,
        code="too_long",
        message="text",
        retry_after=5,
        now=NOW,
    )
    assert (permanent.status, permanent.reason) == (TargetStatus.FAILED, "too_long: text")


# -- domain (unit) ------------------------------------------------------------------------------


def a_post(*platforms: Platform, status: PostStatus = PostStatus.DRAFT) -> domain.Post:
    post = domain.new_post(
        workspace_id=str(uuid.uuid4()),
        author_id=str(uuid.uuid4()),
        author_role="owner",
        content=domain.Content(text="hi", hashtags=("launch",)),
        targets=[(p, str(uuid.uuid4()), None) for p in platforms or (Platform.X,)],
    )
    return domain.dataclasses_replace(post, status=status)


@pytest.mark.unit
def test_dispatch_sends_one_command_per_pending_target() -> None:
    post = a_post(Platform.X, Platform.LINKEDIN)
    after, commands = domain.dispatch(post, now=NOW, deadline=DEADLINE)
    assert after.status is PostStatus.PUBLISHING
    assert [t.status for t in after.targets] == [TargetStatus.DISPATCHED] * 2
    assert [c.idempotency_key for c in commands] == [t.id for t in post.targets]
    assert {c.attempt for c in commands} == {1}
    assert all(t.deadline_at == NOW + DEADLINE + domain.RESULT_GRACE for t in after.targets)
    # Dispatching again sends nothing: nothing is pending any more.
    again, more = domain.dispatch(after, now=NOW, deadline=DEADLINE)
    assert (again, more) == (after, [])
    for status in (PostStatus.PENDING_APPROVAL, PostStatus.PUBLISHED, PostStatus.CANCELLED):
        with pytest.raises(Conflict):
            domain.dispatch(a_post(status=status), now=NOW, deadline=DEADLINE)


@pytest.mark.unit
def test_custom_content_overrides_the_posts_per_target() -> None:
    post = domain.new_post(
        workspace_id=str(uuid.uuid4()),
        author_id=None,
        author_role=None,
        content=domain.Content(text="shared", hashtags=("a",), options={"k": "v"}),
        targets=[
            (Platform.X, str(uuid.uuid4()), {"text": "short for X", "hashtags": []}),
            (Platform.REDDIT, str(uuid.uuid4()), {"title": "T", "options": {"subreddit": "s"}}),
        ],
    )
    _, (x, reddit) = domain.dispatch(post, now=NOW, deadline=DEADLINE)
    assert (x.content.text, x.content.hashtags) == ("short for X", [])
    assert (reddit.content.text, reddit.content.title) == ("shared", "T")
    assert reddit.content.options == {"k": "v", "subreddit": "s"}


@pytest.mark.unit
def test_results_move_targets_and_finish_the_post() -> None:
    post, (cx, cl) = domain.dispatch(
        a_post(Platform.X, Platform.LINKEDIN), now=NOW, deadline=DEADLINE
    )
    x, li = (str(cx.target_id), str(cl.target_id))
    one = domain.succeed(post, x, platform_post_id="p1", url="u", at=NOW, now=NOW)
    assert one.status is PostStatus.PUBLISHING
    assert one.target(x).deadline_at is None
    # A repeated success changes nothing.
    assert domain.succeed(one, x, platform_post_id="p2", url=None, at=NOW, now=NOW) == one
    done = domain.fail(
        one,
        li,
        attempt=1,
        kind=FailureKind.PERMANENT,
        code="c",
        message="m",
        retry_after=None,
        now=NOW,
    )
    assert (done.status, done.status_reason) == (PostStatus.PARTIALLY_PUBLISHED, "linkedin: c: m")
    # Anything after the outcome is ignored.
    assert (
        domain.fail(
            done,
            x,
            attempt=1,
            kind=FailureKind.PERMANENT,
            code="late",
            message="",
            retry_after=None,
            now=NOW,
        )
        == done
    )


@pytest.mark.unit
def test_a_stale_failure_is_ignored() -> None:
    post, (c1,) = domain.dispatch(a_post(), now=NOW, deadline=DEADLINE)
    tid = str(c1.target_id)
    retrying = domain.fail(
        post,
        tid,
        attempt=1,
        kind=FailureKind.TRANSIENT,
        code="t",
        message="m",
        retry_after=None,
        now=NOW,
    )
    assert retrying.target(tid).status is TargetStatus.RETRYING
    second, (c2,) = domain.dispatch(retrying, now=NOW, deadline=DEADLINE, targets=[tid])
    assert c2.attempt == 2
    stale = domain.fail(
        second,
        tid,
        attempt=1,
        kind=FailureKind.PERMANENT,
        code="old",
        message="m",
        retry_after=None,
        now=NOW,
    )
    assert stale == second


@pytest.mark.unit
def test_overdue_targets_are_resent_until_attempts_run_out() -> None:
    post, _ = domain.dispatch(a_post(), now=NOW, deadline=DEADLINE)
    for attempt in range(2, lifecycle.MAX_ATTEMPTS + 1):
        (target,) = post.targets
        post, (command,) = domain.redispatch_overdue(post, target, now=NOW, deadline=DEADLINE)
        assert command.attempt == attempt
        assert command.idempotency_key == target.id
    (target,) = post.targets
    final, commands = domain.redispatch_overdue(post, target, now=NOW, deadline=DEADLINE)
    assert commands == []
    assert final.status is PostStatus.FAILED
    assert final.target(target.id).last_error_code == "no_result"
    assert final.status_reason == "x: no result from the connector before the deadline"


@pytest.mark.unit
def test_delete_commands_only_for_targets_that_exist_on_a_platform() -> None:
    post, (cx, cl) = domain.dispatch(
        a_post(Platform.X, Platform.LINKEDIN), now=NOW, deadline=DEADLINE
    )
    post = domain.succeed(post, str(cx.target_id), platform_post_id="p1", url=None, at=NOW, now=NOW)
    post = domain.fail(
        post,
        str(cl.target_id),
        attempt=1,
        kind=FailureKind.PERMANENT,
        code="c",
        message="m",
        retry_after=None,
        now=NOW,
    )
    (command,) = domain.delete_commands(post, now=NOW)
    assert (command.target_id, command.platform_post_id) == (cx.target_id, "p1")


@pytest.mark.unit
def test_approval_steps() -> None:
    policy = workflows.fallback(["editor"])
    assert policy.needs_approval("editor")
    assert not policy.needs_approval("manager")
    assert not policy.needs_approval(None)
    pending = domain.schedule(a_post(), at=NOW, timezone="UTC", approval_needed=True)
    assert pending.status is PostStatus.PENDING_APPROVAL
    perms = frozenset({"post:approve"})
    done = workflows.approve(
        pending, policy, [], approver_id="u1", role="manager", permissions=perms
    )
    assert (done.post.status, done.final) == (PostStatus.SCHEDULED, True)
    rejected, _ = workflows.reject(pending, policy, [], role="manager", permissions=perms)
    assert (rejected.status, rejected.scheduled_at) == (PostStatus.DRAFT, None)
    with pytest.raises(Conflict):
        workflows.approve(rejected, policy, [], approver_id="u1", role="owner", permissions=perms)
    with pytest.raises(Conflict):
        domain.unschedule(rejected)


# -- edit and delete through the API (component) -------------------------------------------------


async def publish_now(p: Publishing, workspace: str, *platforms: str) -> dict[str, Any]:
    post = await p.create_ok(workspace, *platforms)
    resp = await p.client.post(f"/api/v1/posts/{post['id']}/publish", headers=p.headers(workspace))
    assert resp.status_code == 202, resp.text
    return resp.json()["post"]  # type: ignore[no-any-return]


async def put(p: Publishing, workspace: str, post_id: str, body: dict[str, Any]) -> Any:
    return await p.client.put(f"/api/v1/posts/{post_id}", json=body, headers=p.headers(workspace))


@pytest.mark.component
@pytest.mark.parametrize("scheduled", [False, True])
async def test_edit_keeps_target_ids_of_unchanged_pairs(
    publishing: Publishing, scheduled: bool
) -> None:
    workspace = str(uuid.uuid4())
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = await publishing.body(
        workspace, "x", "linkedin", text="first", **({"scheduledAt": at} if scheduled else {})
    )
    created = await publishing.client.post(
        "/api/v1/posts", json=body, headers=publishing.headers(workspace)
    )
    assert created.status_code == 201, created.text
    post = created.json()["post"]
    assert post["status"] == ("scheduled" if scheduled else "draft")
    kept = next(t for t in body["platforms"] if t["platform"] == "x")
    new_account = await publishing.connect(workspace, "threads")
    edit = {
        "content": {"text": "second", "hashtags": ["news"]},
        "platforms": [
            kept,
            {"platform": "threads", "accountId": new_account},
        ],
        "campaign": "summer",
        "tags": ["t1"],
        **({"scheduledAt": at} if scheduled else {}),
    }
    resp = await put(publishing, workspace, post["id"], edit)
    assert resp.status_code == 200, resp.text
    updated = resp.json()["post"]
    assert updated["id"] == post["id"]
    assert updated["status"] == post["status"]
    assert updated["content"]["text"] == "second"
    assert (updated["campaign"], updated["tags"]) == ("summer", ["t1"])
    before_ids = {(t["platform"], t["accountId"]): t["id"] for t in post["targets"]}
    after_ids = {(t["platform"], t["accountId"]): t["id"] for t in updated["targets"]}
    assert set(after_ids) == {("x", kept["accountId"]), ("threads", new_account)}
    assert after_ids[("x", kept["accountId"])] == before_ids[("x", kept["accountId"])]
    assert after_ids[("threads", new_account)] not in before_ids.values()
    assert await publishing.scalar("SELECT count(*) FROM post_targets") == 2

    fetched = await publishing.get(workspace, post["id"])
    assert [h["action"] for h in fetched["history"]] == ["created", "updated"]
    update_event = [e for e in await publishing.post_events() if isinstance(e, PostUpdated)]
    (event,) = update_event
    assert {str(t.target_id) for t in event.targets} == set(after_ids.values())
    assert event.text == "second"

    if scheduled:  # the edited schedule still goes out, to the edited targets
        assert await publishing.tick(now=datetime.fromisoformat(at)) == 1
        sent = {str(c.target_id) for c in await publishing.commands()}
        assert sent == set(after_ids.values())


@pytest.mark.component
async def test_edit_without_a_time_unschedules(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    post = (
        await publishing.client.post(
            "/api/v1/posts",
            json=await publishing.body(workspace, "x", scheduledAt=at),
            headers=publishing.headers(workspace),
        )
    ).json()["post"]
    resp = await put(
        publishing, workspace, post["id"], await publishing.body(workspace, "x", text="no time")
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["post"]["status"], resp.json()["post"]["scheduledAt"]) == ("draft", None)
    changes = [e for e in await publishing.post_events() if isinstance(e, PostStatusChanged)]
    assert (changes[-1].previous_status, changes[-1].status) == ("scheduled", "draft")


@pytest.mark.component
async def test_edit_is_checked_against_platform_rules(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    post = await publishing.create_ok(workspace, "x")
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    resp = await put(
        publishing,
        workspace,
        post["id"],
        await publishing.body(workspace, "x", text="a" * 300, scheduledAt=at),
    )
    assert resp.status_code == 422, resp.text
    (detail,) = resp.json()["error"]["details"]
    assert (detail["platform"], detail["field"], detail["rule"]) == ("x", "text", "max_length")
    assert (await publishing.get(workspace, post["id"]))["content"]["text"] == "Hello from Chorus"


@pytest.mark.component
async def test_edit_while_publishing_or_after_is_409(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    post = await publish_now(publishing, workspace, "x")
    resp = await put(
        publishing, workspace, post["id"], await publishing.body(workspace, "x", text="too late")
    )
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["details"] == {"status": "publishing"}

    (command,) = await publishing.publish_commands()
    await publishing.deliver(succeeded(command))
    resp = await put(
        publishing, workspace, post["id"], await publishing.body(workspace, "x", text="too late")
    )
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["details"] == {"status": "published"}
    fetched = await publishing.get(workspace, post["id"])
    assert fetched["content"]["text"] == "Hello from Chorus"


@pytest.mark.component
async def test_delete_a_draft(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    post = await publishing.create_ok(workspace, "x", "linkedin")
    user = str(uuid.uuid4())
    resp = await publishing.client.delete(
        f"/api/v1/posts/{post['id']}", headers=publishing.headers(workspace, user_id=user)
    )
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    for table in ("posts", "post_targets", "post_history"):
        assert await publishing.scalar(f"SELECT count(*) FROM {table}") == 0, table
    event = (await publishing.post_events())[-1]
    assert isinstance(event, PostDeleted)
    assert (str(event.post_id), str(event.deleted_by), event.from_platforms) == (
        post["id"],
        user,
        False,
    )
    assert await publishing.commands() == []
    gone = await publishing.client.get(
        f"/api/v1/posts/{post['id']}", headers=publishing.headers(workspace)
    )
    assert gone.status_code == 404


@pytest.mark.component
async def test_a_scheduled_post_deleted_is_never_sent(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    at = datetime.now(UTC) + timedelta(minutes=5)
    created = await publishing.client.post(
        "/api/v1/posts",
        json=await publishing.body(workspace, "x", scheduledAt=at.isoformat()),
        headers=publishing.headers(workspace),
    )
    resp = await publishing.client.delete(
        f"/api/v1/posts/{created.json()['post']['id']}", headers=publishing.headers(workspace)
    )
    assert resp.status_code == 204, resp.text
    assert await publishing.tick(now=at + timedelta(minutes=1)) == 0
    assert await publishing.commands() == []


@pytest.mark.component
async def test_delete_while_publishing_is_409(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    post = await publish_now(publishing, workspace, "x")
    resp = await publishing.client.delete(
        f"/api/v1/posts/{post['id']}", headers=publishing.headers(workspace)
    )
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["details"] == {"status": "publishing"}
    assert await publishing.scalar("SELECT count(*) FROM posts") == 1
    assert not any(isinstance(e, PostDeleted) for e in await publishing.post_events())


@pytest.mark.component
async def test_delete_from_platforms_asks_the_connector_for_published_targets(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    post = await publish_now(publishing, workspace, "x", "linkedin", "threads")
    commands = {c.platform: c for c in await publishing.publish_commands()}
    await publishing.deliver(succeeded(commands[Platform.X], platform_post_id="x-1"))
    await publishing.deliver(succeeded(commands[Platform.THREADS], platform_post_id="th-1"))
    await publishing.deliver(failed(commands[Platform.LINKEDIN]))
    assert (await publishing.get(workspace, post["id"]))["status"] == "partially_published"
    staged = len(await publishing.commands())

    resp = await publishing.client.delete(
        f"/api/v1/posts/{post['id']}",
        params={"fromPlatforms": "true"},
        headers=publishing.headers(workspace),
    )
    assert resp.status_code == 204, resp.text
    assert len(await publishing.commands()) == staged + 2
    deletes = await publishing.delete_commands()
    assert sorted((c.platform.value, c.platform_post_id) for c in deletes) == [
        ("threads", "th-1"),
        ("x", "x-1"),
    ]
    targets = {t["platform"]: t for t in post["targets"]}
    for c in deletes:
        assert str(c.target_id) == targets[c.platform.value]["id"]
        assert str(c.account_id) == targets[c.platform.value]["accountId"]
        assert str(c.workspace_id) == workspace
    rows = [r for r in await publishing.outbox() if r.topic == "connector.commands"][staged:]
    assert {r.headers["ce_type"] for r in rows} == {"chorus.connector.post.delete_requested.v1"}
    event = (await publishing.post_events())[-1]
    assert isinstance(event, PostDeleted) and event.from_platforms is True
    assert await publishing.scalar("SELECT count(*) FROM posts") == 0


@pytest.mark.component
async def test_delete_a_published_post_without_from_platforms_sends_nothing(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    post = await publish_now(publishing, workspace, "x")
    (command,) = await publishing.publish_commands()
    await publishing.deliver(succeeded(command))
    resp = await publishing.client.delete(
        f"/api/v1/posts/{post['id']}", headers=publishing.headers(workspace)
    )
    assert resp.status_code == 204, resp.text
    assert len(await publishing.commands()) == 1


@pytest.mark.component
async def test_another_workspaces_post_is_404_on_every_endpoint(publishing: Publishing) -> None:
    owner, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    post = await publishing.create_ok(owner, "x")
    snapshot = await publishing.get(owner, post["id"])
    staged = len(await publishing.outbox())
    base = f"/api/v1/posts/{post['id']}"
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", base, None),
        ("PUT", base, await publishing.body(stranger, "x", text="mine now")),
        ("DELETE", base, None),
        ("DELETE", base + "?fromPlatforms=true", None),
        ("POST", base + "/schedule", {"scheduledAt": at}),
        ("POST", base + "/unschedule", None),
        ("POST", base + "/publish", None),
        ("POST", base + "/submit", None),
        ("POST", base + "/approve", None),
        ("POST", base + "/reject", {"comment": "no"}),
    ]
    for method, url, body in calls:
        resp = await publishing.client.request(
            method, url, json=body, headers=publishing.headers(stranger)
        )
        assert resp.status_code == 404, (method, url, resp.text)
        assert resp.json()["error"]["code"] == "NOT_FOUND"
    assert await publishing.get(owner, post["id"]) == snapshot
    assert len(await publishing.outbox()) == staged
