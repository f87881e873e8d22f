"""Publishing HTTP API against a real Postgres (component): drafts, validation, roles,
tenant isolation (with RLS as the second wall) and "publish now" through the outbox."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from publishing_testkit import OutboxRow, Publishing, post_body
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from chorus_contracts.catalog import catalog, parse_data
from chorus_contracts.envelope import TRACEPARENT_PATTERN, decode, is_uuid7
from chorus_contracts.events.connector import PublishRequested
from chorus_contracts.events.publishing import PostCreated, PostStatusChanged
from chorus_runtime.db.database import Database

pytestmark = pytest.mark.component

CAMEL = re.compile(r"^[a-z]+([A-Z][a-z0-9]*)*$")
POST_KEYS = {
    "id",
    "workspaceId",
    "authorId",
    "status",
    "statusReason",
    "content",
    "scheduledAt",
    "timezone",
    "campaign",
    "tags",
    "targets",
    "createdAt",
    "updatedAt",
    "history",
}
TARGET_KEYS = {
    "id",
    "platform",
    "accountId",
    "status",
    "platformPostId",
    "url",
    "attempts",
    "lastError",
    "nextAttemptAt",
    "publishedAt",
    "customContent",
}


def new_workspace() -> str:
    return str(uuid.uuid4())


def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"code", "message", "details", "timestamp", "requestId"}
    assert err["code"] == code
    assert err["requestId"] == resp.headers["x-request-id"]
    return err  # type: ignore[no-any-return]


def assert_cloudevent(row: OutboxRow, *, ce_type: str, tenant: str, subject: str) -> Any:
    """The staged row is a valid binary-mode CloudEvent whose data matches its contract."""
    h = row.headers
    for name in ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "content-type"):
        assert h.get(name), f"missing header {name}"
    assert h["ce_specversion"] == "1.0"
    assert is_uuid7(h["ce_id"])
    assert h["ce_type"] == ce_type
    assert h["ce_source"] == "/chorus/publishing"
    assert h["ce_tenantid"] == tenant
    assert h["ce_subject"] == subject
    assert h["content-type"] == "application/json"
    stamp = datetime.fromisoformat(h["ce_time"].replace("Z", "+00:00"))
    assert stamp.tzinfo is not None
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert TRACEPARENT_PATTERN.match(h["traceparent"]), "the request's trace travels along"
    event = decode(row.kafka_headers, row.value, known_types=catalog())
    return parse_data(event)


async def rows_in(p: Publishing, table: str) -> int:
    return int(await p.scalar(f"SELECT count(*) FROM {table}"))


# -- create ---------------------------------------------------------------------------------


async def test_create_draft_is_201_with_a_camel_case_body(publishing: Publishing) -> None:
    workspace = new_workspace()
    body = await publishing.body(workspace, "x", "linkedin", text="Launch day")
    resp = await publishing.client.post(
        "/api/v1/posts", json=body, headers=publishing.headers(workspace, "editor")
    )
    assert resp.status_code == 201, resp.text
    post = resp.json()["post"]
    assert set(post) == POST_KEYS
    assert all(CAMEL.match(k) for k in post)
    assert uuid.UUID(post["id"])
    assert post["workspaceId"] == workspace
    assert post["status"] == "draft"
    assert post["content"]["text"] == "Launch day"
    assert post["content"]["hashtags"] == ["launch"]
    assert post["scheduledAt"] is None
    assert post["timezone"] is None
    sent = {(t["platform"], t["accountId"]) for t in body["platforms"]}
    assert {(t["platform"], t["accountId"]) for t in post["targets"]} == sent
    for target in post["targets"]:
        assert set(target) == TARGET_KEYS
        assert target["status"] == "pending"
        assert target["attempts"] == 0
    assert await rows_in(publishing, "posts") == 1
    assert await rows_in(publishing, "post_targets") == 2


async def test_create_stages_a_post_created_event(publishing: Publishing) -> None:
    workspace = new_workspace()
    post = await publishing.create_ok(workspace, "x", "threads")
    (row,) = await publishing.outbox()
    assert row.topic == "publishing.posts"
    assert row.key == post["id"]
    assert row.published_at is None, "Role.API runs no relay"
    data = assert_cloudevent(
        row,
        ce_type="chorus.publishing.post.created.v1",
        tenant=workspace,
        subject=post["id"],
    )
    assert isinstance(data, PostCreated)
    assert str(data.post_id) == post["id"]
    assert str(data.workspace_id) == workspace
    assert data.status == "draft"
    assert {str(t.target_id) for t in data.targets} == {t["id"] for t in post["targets"]}


BAD_BODIES: dict[str, tuple[dict[str, Any], str, str]] = {
    "empty text": (post_body("x", text=""), "content", "value_error"),
    "missing content": (
        {"platforms": [{"platform": "x", "accountId": str(uuid.uuid4())}]},
        "content",
        "missing",
    ),
    "no targets": ({"content": {"text": "hi"}, "platforms": []}, "platforms", "too_short"),
    "unknown platform": (post_body("myspace"), "platforms.0.platform", "enum"),
    "account id not a uuid": (
        {"content": {"text": "hi"}, "platforms": [{"platform": "x", "accountId": "acct-1"}]},
        "platforms.0.accountId",
        "uuid_parsing",
    ),
    "unknown top-level field": (post_body("x", publishAt="now"), "publishAt", "extra_forbidden"),
    "unknown nested field": (
        {
            "content": {"text": "hi", "colour": "red"},
            "platforms": [{"platform": "x", "accountId": str(uuid.uuid4())}],
        },
        "content.colour",
        "extra_forbidden",
    ),
    "text not a string": (
        {
            "content": {"text": 42},
            "platforms": [{"platform": "x", "accountId": str(uuid.uuid4())}],
        },
        "content.text",
        "string_type",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_invalid_bodies_are_422_with_field_details(publishing: Publishing, case: str) -> None:
    body, field, error_type = BAD_BODIES[case]
    resp = await publishing.client.post(
        "/api/v1/posts", json=body, headers=publishing.headers(new_workspace())
    )
    err = assert_error(resp, 422, "VALIDATION_ERROR")
    assert {"field": field, "type": error_type} in [
        {"field": d["field"], "type": d["type"]} for d in err["details"]
    ], err["details"]
    assert await rows_in(publishing, "posts") == 0
    assert await rows_in(publishing, "outbox") == 0


async def test_duplicate_targets_are_422(publishing: Publishing) -> None:
    account = str(uuid.uuid4())
    body = {
        "content": {"text": "twice"},
        "platforms": [
            {"platform": "x", "accountId": account},
            {"platform": "x", "accountId": account},
        ],
    }
    resp = await publishing.client.post(
        "/api/v1/posts", json=body, headers=publishing.headers(new_workspace())
    )
    err = assert_error(resp, 422, "VALIDATION_ERROR")
    assert any("once" in d["message"] for d in err["details"]), err["details"]
    assert await rows_in(publishing, "posts") == 0


async def test_one_account_id_per_platform_must_match_its_connection(
    publishing: Publishing,
) -> None:
    # An account is connected for one platform: the same id on another platform is refused.
    workspace = new_workspace()
    account = await publishing.connect(workspace, "x")
    body = {
        "content": {"text": "cross-post"},
        "platforms": [
            {"platform": "x", "accountId": account},
            {"platform": "threads", "accountId": account},
        ],
    }
    resp = await publishing.client.post(
        "/api/v1/posts", json=body, headers=publishing.headers(workspace)
    )
    err = assert_error(resp, 422, "VALIDATION_ERROR")
    assert [(d["field"], d["rule"]) for d in err["details"]] == [
        ("platforms.1.accountId", "account_not_connected")
    ]


async def test_malformed_json_is_400(publishing: Publishing) -> None:
    resp = await publishing.client.post(
        "/api/v1/posts",
        content=b'{"content": {"text": "hi"},',
        headers={**publishing.headers(new_workspace()), "Content-Type": "application/json"},
    )
    assert_error(resp, 400, "INVALID_JSON")
    assert await rows_in(publishing, "posts") == 0


async def test_viewer_cannot_create(publishing: Publishing) -> None:
    resp = await publishing.create(new_workspace(), "x", role="viewer")
    err = assert_error(resp, 403, "FORBIDDEN")
    assert err["details"] == {"required": ["post:create"]}
    assert await rows_in(publishing, "posts") == 0
    assert await rows_in(publishing, "outbox") == 0


async def test_without_a_token_is_401(publishing: Publishing) -> None:
    resp = await publishing.client.post("/api/v1/posts", json=post_body("x"))
    assert_error(resp, 401, "UNAUTHORIZED")
    resp = await publishing.client.get(f"/api/v1/posts/{uuid.uuid4()}")
    assert_error(resp, 401, "UNAUTHORIZED")


async def test_an_expired_token_is_401(publishing: Publishing) -> None:
    resp = await publishing.client.post(
        "/api/v1/posts",
        json=post_body("x"),
        headers=publishing.headers(new_workspace(), ttl_seconds=-120),
    )
    assert assert_error(resp, 401, "UNAUTHORIZED")["message"] == "token expired"


# -- read and tenant isolation ------------------------------------------------------------------


async def test_get_own_post(publishing: Publishing) -> None:
    workspace = new_workspace()
    post = await publishing.create_ok(workspace, "x")
    resp = await publishing.client.get(
        f"/api/v1/posts/{post['id']}", headers=publishing.headers(workspace, "viewer")
    )
    assert resp.status_code == 200, resp.text
    fetched = resp.json()["post"]
    assert [h["action"] for h in fetched.pop("history")] == ["created"]
    assert fetched == {k: v for k, v in post.items() if k != "history"}


async def test_another_workspaces_post_is_404(publishing: Publishing) -> None:
    owner, stranger = new_workspace(), new_workspace()
    post = await publishing.create_ok(owner, "x")
    resp = await publishing.client.get(
        f"/api/v1/posts/{post['id']}", headers=publishing.headers(stranger)
    )
    missing = await publishing.client.get(
        f"/api/v1/posts/{uuid.uuid4()}", headers=publishing.headers(stranger)
    )
    err = assert_error(resp, 404, "NOT_FOUND")
    # Indistinguishable from an id that does not exist at all.
    assert err["message"] == assert_error(missing, 404, "NOT_FOUND")["message"]
    assert err["details"] is None


async def test_a_malformed_post_id_is_422(publishing: Publishing) -> None:
    resp = await publishing.client.get(
        "/api/v1/posts/not-a-uuid", headers=publishing.headers(new_workspace())
    )
    err = assert_error(resp, 422, "VALIDATION_ERROR")
    assert err["details"][0]["field"] == "path.post_id"


async def test_row_level_security_is_the_second_wall(publishing: Publishing) -> None:
    a, b = new_workspace(), new_workspace()
    await publishing.create_ok(a, "x")
    await publishing.create_ok(b, "x", "linkedin")
    await publishing.create_ok(b, "threads")

    db = Database(publishing.db.app_url, pool_size=2)  # the app role, as the service connects
    try:
        async with db.connect() as conn:
            role = (
                await conn.execute(
                    text(
                        "SELECT r.rolsuper OR r.rolbypassrls, "
                        "(SELECT tableowner FROM pg_tables WHERE tablename = 'posts') "
                        "FROM pg_roles r WHERE r.rolname = current_user"
                    )
                )
            ).one()
            assert role[0] is False, "the app role must not bypass RLS"
            assert role[1] != publishing.db.app_url.split("//")[1].split("@")[0]
            # No tenant set at all: nothing is visible.
            assert (await conn.execute(text("SELECT count(*) FROM posts"))).scalar() == 0

        # Queries with no workspace filter: the policy alone scopes them.
        for tenant, posts, targets in ((a, 1, 1), (b, 2, 3)):
            async with db.unit_of_work(tenant_id=tenant) as uow:
                s = uow.session
                assert (await s.execute(text("SELECT count(*) FROM posts"))).scalar() == posts
                assert (
                    await s.execute(text("SELECT count(*) FROM post_targets"))
                ).scalar() == targets
                seen = await s.execute(text("SELECT DISTINCT workspace_id::text FROM posts"))
                assert seen.scalars().all() == [tenant]
                # Writes to other tenants' rows silently match nothing.
                changed = await s.execute(text("UPDATE posts SET text = 'pwned'"))
                assert changed.rowcount == posts
                await s.rollback()

        async with db.unit_of_work(system=True) as uow:
            assert (await uow.session.execute(text("SELECT count(*) FROM posts"))).scalar() == 3

        # Writing a row for another tenant is refused by the policy's WITH CHECK.
        with pytest.raises(DBAPIError, match="row-level security"):
            async with db.unit_of_work(tenant_id=a) as uow:
                await uow.session.execute(
                    text(
                        "INSERT INTO posts (id, workspace_id, status) "
                        "VALUES (gen_random_uuid(), :b, 'draft')"
                    ),
                    {"b": b},
                )
    finally:
        await db.dispose()
    assert await publishing.scalar("SELECT count(*) FROM posts WHERE text = 'pwned'") == 0


# -- publish now -----------------------------------------------------------------------------------


async def test_publish_dispatches_every_target_through_the_outbox(publishing: Publishing) -> None:
    workspace = new_workspace()
    post = await publishing.create_ok(workspace, "x", "linkedin", "threads")
    resp = await publishing.client.post(
        f"/api/v1/posts/{post['id']}/publish", headers=publishing.headers(workspace, "manager")
    )
    assert resp.status_code == 202, resp.text
    published = resp.json()["post"]
    assert published["id"] == post["id"]
    assert published["status"] == "publishing"
    assert [t["status"] for t in published["targets"]] == ["dispatched"] * 3
    assert [t["attempts"] for t in published["targets"]] == [1] * 3

    rows = await publishing.outbox()
    # created + the post's status change + one status change per target
    assert [r.topic for r in rows].count("publishing.posts") == 2 + 3
    commands = [r for r in rows if r.topic == "connector.commands"]
    assert len(commands) == 3, "one command per target"
    targets = {t["id"]: t for t in published["targets"]}
    seen_targets = set()
    for row in commands:
        data = row.headers["ce_subject"]
        command = assert_cloudevent(
            row,
            ce_type="chorus.connector.post.publish_requested.v1",
            tenant=workspace,
            subject=data,
        )
        assert isinstance(command, PublishRequested)
        target = targets[str(command.target_id)]
        assert row.key == target["accountId"] == str(command.account_id), "keyed by account"
        assert command.platform == target["platform"]
        assert command.idempotency_key == target["id"], "one platform post per target, ever"
        assert str(command.post_id) == post["id"]
        assert str(command.workspace_id) == workspace
        assert command.attempt == 1
        assert command.content.text == "Hello from Chorus"
        assert command.content.hashtags == ["launch"]
        assert command.deadline > command.requested_at
        seen_targets.add(target["id"])
    assert seen_targets == set(targets)

    (status_row,) = [
        r for r in rows if r.headers["ce_type"] == "chorus.publishing.post.status_changed.v1"
    ]
    change = assert_cloudevent(
        status_row,
        ce_type="chorus.publishing.post.status_changed.v1",
        tenant=workspace,
        subject=post["id"],
    )
    assert isinstance(change, PostStatusChanged)
    assert (change.previous_status, change.status) == ("draft", "publishing")
    # The commands and the status change were written by one request: one trace.
    publish_rows = [status_row, *commands]
    assert len({r.headers["traceparent"].split("-")[1] for r in publish_rows}) == 1

    again = await publishing.client.get(
        f"/api/v1/posts/{post['id']}", headers=publishing.headers(workspace)
    )
    fetched = again.json()["post"]
    assert [h["action"] for h in fetched.pop("history")] == ["created", "published_now"]
    assert fetched == {k: v for k, v in published.items() if k != "history"}


async def test_publishing_twice_is_409(publishing: Publishing) -> None:
    workspace = new_workspace()
    post = await publishing.create_ok(workspace, "x", "linkedin")
    url = f"/api/v1/posts/{post['id']}/publish"
    first = await publishing.client.post(url, headers=publishing.headers(workspace))
    assert first.status_code == 202, first.text
    staged = len(await publishing.outbox())

    second = await publishing.client.post(url, headers=publishing.headers(workspace))
    err = assert_error(second, 409, "CONFLICT")
    assert err["details"] == {"status": "publishing"}
    assert len(await publishing.outbox()) == staged, "nothing more was staged"


async def test_concurrent_publishes_dispatch_once(publishing: Publishing) -> None:
    workspace = new_workspace()
    post = await publishing.create_ok(workspace, "x", "linkedin")
    url = f"/api/v1/posts/{post['id']}/publish"
    responses = await asyncio.gather(
        *(publishing.client.post(url, headers=publishing.headers(workspace)) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [202, 409, 409, 409]
    commands = [r for r in await publishing.outbox() if r.topic == "connector.commands"]
    assert len(commands) == 2, "one command per target, not per request"


async def test_editor_cannot_publish(publishing: Publishing) -> None:
    workspace = new_workspace()
    post = await publishing.create_ok(workspace, "x")
    resp = await publishing.client.post(
        f"/api/v1/posts/{post['id']}/publish", headers=publishing.headers(workspace, "editor")
    )
    assert assert_error(resp, 403, "FORBIDDEN")["details"] == {"required": ["post:publish"]}
    assert await publishing.scalar("SELECT status FROM posts") == "draft"


async def test_publishing_another_workspaces_post_is_404(publishing: Publishing) -> None:
    owner = new_workspace()
    post = await publishing.create_ok(owner, "x")
    staged = len(await publishing.outbox())
    resp = await publishing.client.post(
        f"/api/v1/posts/{post['id']}/publish", headers=publishing.headers(new_workspace())
    )
    assert_error(resp, 404, "NOT_FOUND")
    assert await publishing.scalar("SELECT status FROM posts") == "draft"
    assert await publishing.scalar("SELECT count(*) FROM post_targets WHERE attempts > 0") == 0
    assert len(await publishing.outbox()) == staged
