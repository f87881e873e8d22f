"""Approval workflow (component): the workspace's policy arrives on `identity.workspaces`;
a post by a role that needs approval waits in pending_approval — never dispatched — until a
manager approves it (then the scheduler sends it) or rejects it (back to draft, with the
comment in its history)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from publishing_testkit import Publishing

from chorus_contracts.catalog import build_event
from chorus_contracts.events.common import Role
from chorus_contracts.events.identity import WorkspaceCreated, WorkspaceSettingsChanged
from chorus_contracts.events.publishing import PostStatusChanged

pytestmark = pytest.mark.component


async def editor_schedules(
    p: Publishing, workspace: str, at: datetime, *platforms: str
) -> dict[str, Any]:
    resp = await p.client.post(
        "/api/v1/posts",
        json=await p.body(workspace, *(platforms or ("x", "linkedin")), scheduledAt=at.isoformat()),
        headers=p.headers(workspace, "editor"),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["post"]  # type: ignore[no-any-return]


async def act(
    p: Publishing, workspace: str, post_id: str, action: str, role: str, **body: Any
) -> Any:
    return await p.client.post(
        f"/api/v1/posts/{post_id}/{action}",
        json=body or None,
        headers=p.headers(workspace, role),
    )


async def test_the_policy_arrives_from_identity_events(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    await publishing.send(
        WorkspaceCreated(
            workspace_id=uuid.UUID(workspace),
            name="Acme",
            slug="acme",
            plan="free",
            owner_user_id=uuid.uuid4(),
            timezone="Europe/Berlin",
            created_at=datetime.now(UTC),
        ),
        topic="identity.workspaces",
        tenant=workspace,
        key=workspace,
    )
    row = (
        "SELECT timezone || ':' || array_to_string(approval_required_for, ',') "
        "FROM workspace_settings"
    )
    assert await publishing.scalar(row) == "Europe/Berlin:"
    await publishing.require_approval(workspace, "editor", "manager")
    assert await publishing.scalar(row) == "UTC:editor,manager"
    await publishing.require_approval(workspace, "editor")
    assert await publishing.scalar(row) == "UTC:editor"
    assert await publishing.scalar("SELECT count(*) FROM workspace_settings") == 1


async def test_a_post_needing_approval_waits_then_goes_out_once_approved(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    await publishing.require_approval(workspace, "editor")
    at = datetime.now(UTC) + timedelta(minutes=10)
    post = await editor_schedules(publishing, workspace, at)
    assert post["status"] == "pending_approval"
    assert datetime.fromisoformat(post["scheduledAt"]) == at

    # Its time comes and goes: nothing is sent while it waits.
    assert await publishing.tick(now=at + timedelta(hours=1)) == 0
    assert await publishing.commands() == []
    assert (await publishing.get(workspace, post["id"]))["status"] == "pending_approval"

    # An editor cannot approve (their own or anyone's post).
    denied = await act(publishing, workspace, post["id"], "approve", "editor")
    assert denied.status_code == 403, denied.text
    assert denied.json()["error"]["details"] == {"required": ["post:approve"]}

    approver = str(uuid.uuid4())
    resp = await publishing.client.post(
        f"/api/v1/posts/{post['id']}/approve",
        json={"comment": "Looks good"},
        headers=publishing.headers(workspace, "manager", user_id=approver),
    )
    assert resp.status_code == 200, resp.text
    approved = resp.json()["post"]
    assert approved["status"] == "scheduled"
    assert datetime.fromisoformat(approved["scheduledAt"]) == at

    assert await publishing.tick(now=at - timedelta(seconds=1)) == 0
    assert await publishing.tick(now=at) == 1
    commands = await publishing.commands()
    assert sorted(str(c.target_id) for c in commands) == sorted(t["id"] for t in post["targets"])

    done = await publishing.get(workspace, post["id"])
    assert done["status"] == "publishing"
    history = [(h["action"], h["fromStatus"], h["toStatus"]) for h in done["history"]]
    assert history == [
        ("created", None, "pending_approval"),
        ("approved", "pending_approval", "scheduled"),
        ("dispatched", "scheduled", "publishing"),
    ]
    (approval,) = [h for h in done["history"] if h["action"] == "approved"]
    assert (approval["comment"], approval["actorId"]) == ("Looks good", approver)

    changes = [
        (e.previous_status, e.status)
        for e in await publishing.post_events()
        if isinstance(e, PostStatusChanged)
    ]
    assert changes == [
        ("draft", "pending_approval"),
        ("pending_approval", "scheduled"),
        ("scheduled", "publishing"),
    ]


async def test_approved_after_its_time_goes_out_at_the_next_tick(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    await publishing.require_approval(workspace, "editor")
    at = datetime.now(UTC) + timedelta(seconds=2)
    post = await editor_schedules(publishing, workspace, at, "x")
    resp = await publishing.client.post(  # no body: the comment is optional
        f"/api/v1/posts/{post['id']}/approve", headers=publishing.headers(workspace, "manager")
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["post"]["status"] == "scheduled"
    assert await publishing.tick(now=at + timedelta(hours=2)) == 1
    assert len(await publishing.commands()) == 1


async def test_a_rejected_post_returns_to_draft_with_the_comment(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    await publishing.require_approval(workspace, "editor")
    at = datetime.now(UTC) + timedelta(minutes=10)
    post = await editor_schedules(publishing, workspace, at)

    no_comment = await act(publishing, workspace, post["id"], "reject", "manager")
    assert no_comment.status_code == 422, no_comment.text
    empty = await act(publishing, workspace, post["id"], "reject", "manager", comment="")
    assert empty.status_code == 422, empty.text

    resp = await act(
        publishing, workspace, post["id"], "reject", "manager", comment="Tone it down, please"
    )
    assert resp.status_code == 200, resp.text
    rejected = resp.json()["post"]
    assert rejected["status"] == "draft"
    assert rejected["scheduledAt"] is None

    fetched = await publishing.get(workspace, post["id"], role="editor")
    last = fetched["history"][-1]
    assert (last["action"], last["fromStatus"], last["toStatus"], last["comment"]) == (
        "rejected",
        "pending_approval",
        "draft",
        "Tone it down, please",
    )
    assert await publishing.tick(now=at + timedelta(hours=1)) == 0
    assert await publishing.commands() == []

    # Approving or rejecting again: it is not waiting any more.
    for action, body in (("approve", {}), ("reject", {"comment": "again"})):
        again = await act(publishing, workspace, post["id"], action, "manager", **body)
        assert again.status_code == 409, again.text
        assert again.json()["error"]["details"] == {"status": "draft"}


async def test_roles_outside_the_policy_schedule_directly(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    await publishing.require_approval(workspace, "editor")
    at = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    resp = await publishing.client.post(
        "/api/v1/posts",
        json=await publishing.body(workspace, "x", scheduledAt=at),
        headers=publishing.headers(workspace, "manager"),
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["post"]["status"] == "scheduled"


async def test_without_a_policy_an_editor_cannot_schedule(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    at = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    resp = await publishing.client.post(
        "/api/v1/posts",
        json=await publishing.body(workspace, "x", scheduledAt=at),
        headers=publishing.headers(workspace, "editor"),
    )
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["details"] == {"required": ["post:publish"]}
    assert await publishing.scalar("SELECT count(*) FROM posts") == 0


async def test_submit_then_approve_without_a_time_is_a_draft_again(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    await publishing.require_approval(workspace, "editor")
    post = await publishing.create(workspace, "x", role="editor")
    assert post.status_code == 201, post.text
    post_id = post.json()["post"]["id"]

    submitted = await act(publishing, workspace, post_id, "submit", "editor")
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["post"]["status"] == "pending_approval"
    twice = await act(publishing, workspace, post_id, "submit", "editor")
    assert twice.status_code == 409, twice.text

    approved = await act(publishing, workspace, post_id, "approve", "manager")
    assert approved.status_code == 200, approved.text
    assert approved.json()["post"]["status"] == "draft"
    assert await publishing.tick(now=datetime.now(UTC) + timedelta(days=1)) == 0


async def test_one_workspaces_policy_does_not_bind_another(publishing: Publishing) -> None:
    strict, relaxed = str(uuid.uuid4()), str(uuid.uuid4())
    await publishing.require_approval(strict, "editor", "manager")
    at = datetime.now(UTC) + timedelta(minutes=10)
    for workspace, expected in ((strict, "pending_approval"), (relaxed, "scheduled")):
        resp = await publishing.client.post(
            "/api/v1/posts",
            json=await publishing.body(workspace, "x", scheduledAt=at.isoformat()),
            headers=publishing.headers(workspace, "manager"),
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["post"]["status"] == expected


async def test_the_same_policy_event_twice_has_one_effect(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    event = build_event(
        WorkspaceSettingsChanged(
            workspace_id=uuid.UUID(workspace),
            timezone="Asia/Tokyo",
            default_locale="ja",
            approval_required_for=[Role.EDITOR],
            changed_by=uuid.uuid4(),
            changed_at=datetime.now(UTC),
        ),
        source="/chorus/gateway",
        subject=workspace,
        tenant_id=workspace,
    )
    await publishing.send_event(event, topic="identity.workspaces", key=workspace)
    stamp = await publishing.scalar("SELECT updated_at FROM workspace_settings")
    await publishing.send_event(event, topic="identity.workspaces", key=workspace)

    assert await publishing.scalar("SELECT updated_at FROM workspace_settings") == stamp
    assert await publishing.scalar("SELECT count(*) FROM processed_events") == 1
    assert publishing.runtime is not None
    (sub,) = [
        s for s in publishing.runtime.consumers.subscriptions if s.topic == "identity.workspaces"
    ]
    assert (sub.processed, sub.duplicates, sub.dead_lettered) == (1, 1, 0)
