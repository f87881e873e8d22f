"""`POST /api/v1/posts/bulk` (component): each post succeeds or fails on its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from publishing_testkit import Publishing

from chorus_contracts.events.publishing import PostDeleted, PostUpdated

pytestmark = pytest.mark.component

BULK = "/api/v1/posts/bulk"


async def bulk(p: Publishing, workspace: str, role: str = "owner", **body: Any) -> Any:
    return await p.client.post(BULK, json=body, headers=p.headers(workspace, role))


async def test_schedule_many_with_one_failure_keeps_the_others(publishing: Publishing) -> None:
    workspace, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    ok1 = await publishing.create_ok(workspace, "x")
    ok2 = await publishing.create_ok(workspace, "linkedin")
    # Too long for X: the rules refuse it at scheduling time.
    long = (await publishing.create(workspace, "x", text="a" * 300)).json()["post"]
    foreign = await publishing.create_ok(stranger, "x")
    missing = str(uuid.uuid4())
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)

    resp = await bulk(
        publishing,
        workspace,
        action="schedule",
        postIds=[ok1["id"], long["id"], foreign["id"], ok2["id"], missing, ok1["id"]],
        data={"scheduledAt": at.isoformat()},
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["success"] == [ok1["id"], ok2["id"]]
    assert out["failed"] == [long["id"], foreign["id"], missing]
    codes = {e["postId"]: e["error"]["code"] for e in out["errors"]}
    assert codes == {
        long["id"]: "VALIDATION_ERROR",
        foreign["id"]: "NOT_FOUND",
        missing: "NOT_FOUND",
    }
    for post in (ok1, ok2):
        got = await publishing.get(workspace, post["id"])
        assert (got["status"], datetime.fromisoformat(got["scheduledAt"])) == ("scheduled", at)
    assert (await publishing.get(workspace, long["id"]))["status"] == "draft"
    assert (await publishing.get(stranger, foreign["id"]))["status"] == "draft"

    unscheduled = await bulk(
        publishing, workspace, action="unschedule", postIds=[ok1["id"], long["id"]]
    )
    assert unscheduled.json()["success"] == [ok1["id"]]
    assert unscheduled.json()["errors"][0]["error"]["code"] == "CONFLICT"
    assert (await publishing.get(workspace, ok1["id"]))["status"] == "draft"


async def test_update_relabels_and_delete_removes(publishing: Publishing) -> None:
    workspace, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    a = await publishing.create_ok(workspace, "x")
    b = await publishing.create_ok(workspace, "x")
    foreign = await publishing.create_ok(stranger, "x")

    relabel = await bulk(
        publishing,
        workspace,
        action="update",
        postIds=[a["id"], b["id"], foreign["id"]],
        data={"campaign": "spring", "tags": ["promo", "q2"]},
    )
    assert relabel.json()["success"] == [a["id"], b["id"]]
    assert relabel.json()["failed"] == [foreign["id"]]
    got = await publishing.get(workspace, a["id"])
    assert (got["campaign"], got["tags"]) == ("spring", ["promo", "q2"])
    assert (await publishing.get(stranger, foreign["id"]))["campaign"] is None
    updated = [e for e in await publishing.post_events() if isinstance(e, PostUpdated)]
    assert {str(e.post_id) for e in updated} == {a["id"], b["id"]}

    only_tags = await bulk(
        publishing, workspace, action="update", postIds=[a["id"]], data={"tags": []}
    )
    assert only_tags.json()["success"] == [a["id"]]
    got = await publishing.get(workspace, a["id"])
    assert (got["campaign"], got["tags"]) == ("spring", [])

    removed = await bulk(publishing, workspace, action="delete", postIds=[a["id"], foreign["id"]])
    assert removed.json()["success"] == [a["id"]]
    assert removed.json()["errors"] == [
        {
            "postId": foreign["id"],
            "error": {"code": "NOT_FOUND", "message": "post not found", "details": None},
        }
    ]
    assert await publishing.scalar("SELECT count(*) FROM posts") == 2
    deleted = [e for e in await publishing.post_events() if isinstance(e, PostDeleted)]
    assert [str(e.post_id) for e in deleted] == [a["id"]]


BAD: dict[str, dict[str, Any]] = {
    "unknown action": {"action": "publish", "postIds": [str(uuid.uuid4())]},
    "no ids": {"action": "unschedule", "postIds": []},
    "101 ids": {"action": "unschedule", "postIds": [str(uuid.uuid4()) for _ in range(101)]},
    "id not a uuid": {"action": "unschedule", "postIds": ["nope"]},
    "schedule without data": {"action": "schedule", "postIds": [str(uuid.uuid4())]},
    "schedule with a bad field": {
        "action": "schedule",
        "postIds": [str(uuid.uuid4())],
        "data": {"when": "tomorrow"},
    },
    "update without changes": {"action": "update", "postIds": [str(uuid.uuid4())], "data": {}},
    "unschedule with data": {
        "action": "unschedule",
        "postIds": [str(uuid.uuid4())],
        "data": {"x": 1},
    },
}


@pytest.mark.parametrize("case", list(BAD))
async def test_a_bad_bulk_request_is_422(publishing: Publishing, case: str) -> None:
    resp = await bulk(publishing, str(uuid.uuid4()), **BAD[case])
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_a_bad_time_fails_each_post_with_the_reason(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    post = await publishing.create_ok(workspace, "x")
    resp = await bulk(
        publishing,
        workspace,
        action="schedule",
        postIds=[post["id"]],
        data={"scheduledAt": "2020-01-01T00:00:00Z"},
    )
    assert resp.json()["failed"] == [post["id"]]
    (error,) = resp.json()["errors"]
    assert error["error"]["details"][0]["type"] == "past_datetime"


async def test_roles(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    post = await publishing.create_ok(workspace, "x")
    for role, action in (("viewer", "unschedule"), ("viewer", "delete"), ("editor", "delete")):
        resp = await bulk(publishing, workspace, role, action=action, postIds=[post["id"]])
        assert resp.status_code == 403, (role, action, resp.text)
    ok = await bulk(
        publishing, workspace, "editor", action="update", postIds=[post["id"]], data={"tags": ["a"]}
    )
    assert ok.json()["success"] == [post["id"]]
    # Editors may not schedule directly (no post:publish): a per-post 403.
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    sched = await bulk(
        publishing,
        workspace,
        "editor",
        action="schedule",
        postIds=[post["id"]],
        data={"scheduledAt": at},
    )
    assert sched.json()["errors"][0]["error"]["code"] == "FORBIDDEN"
