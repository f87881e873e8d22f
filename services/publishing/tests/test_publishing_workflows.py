"""Approval workflows configured in publishing (component): ordered steps, each approved by a
member holding one of its roles; the post is scheduled only after the last step, never
dispatched before; without a workflow the identity settings' policy applies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from publishing_testkit import Publishing

from chorus_contracts.events.publishing import PostStatusChanged

pytestmark = pytest.mark.component

WORKFLOWS = "/api/v1/publishing/workflows"
TWO_STEPS = {
    "requiredFor": ["editor"],
    "steps": [
        {"name": "Legal", "approverRoles": ["manager"]},
        {"name": "Brand", "approverRoles": ["admin", "owner"]},
    ],
}


async def put_workflow(p: Publishing, workspace: str, body: Any, role: str = "owner") -> Any:
    return await p.client.put(WORKFLOWS, json=body, headers=p.headers(workspace, role))


async def editor_schedules(p: Publishing, workspace: str, at: datetime) -> dict[str, Any]:
    resp = await p.client.post(
        "/api/v1/posts",
        json=await p.body(workspace, "x", "linkedin", scheduledAt=at.isoformat()),
        headers=p.headers(workspace, "editor"),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["post"]  # type: ignore[no-any-return]


async def approve(
    p: Publishing, workspace: str, post_id: str, role: str, user: str, **body: Any
) -> Any:
    return await p.client.post(
        f"/api/v1/posts/{post_id}/approve",
        json=body or None,
        headers=p.headers(workspace, role, user_id=user),
    )


async def test_without_a_workflow_get_shows_the_workspace_settings_policy(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    await publishing.require_approval(workspace, "editor")
    resp = await publishing.client.get(WORKFLOWS, headers=publishing.headers(workspace, "editor"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["workflow"] == {
        "requiredFor": ["editor"],
        "steps": [{"name": "approval", "approverRoles": []}],
        "source": "workspace_settings",
        "updatedAt": None,
    }


async def test_owner_and_admin_configure_it_others_cannot(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    for role in ("manager", "editor", "viewer"):
        resp = await put_workflow(publishing, workspace, TWO_STEPS, role)
        assert resp.status_code == 403, (role, resp.text)
        assert resp.json()["error"]["details"] == {"required": ["settings:update"]}
        denied = await publishing.client.delete(
            WORKFLOWS, headers=publishing.headers(workspace, role)
        )
        assert denied.status_code == 403, denied.text
    assert await publishing.scalar("SELECT count(*) FROM approval_workflows") == 0

    resp = await put_workflow(publishing, workspace, TWO_STEPS, "admin")
    assert resp.status_code == 200, resp.text
    got = resp.json()["workflow"]
    assert (got["requiredFor"], got["steps"], got["source"]) == (
        TWO_STEPS["requiredFor"],
        TWO_STEPS["steps"],
        "workflow",
    )
    again = await put_workflow(
        publishing, workspace, {"steps": [{"name": "One", "approverRoles": ["owner"]}]}
    )
    assert again.status_code == 200, again.text
    fetched = await publishing.client.get(
        WORKFLOWS, headers=publishing.headers(workspace, "viewer")
    )
    assert fetched.json()["workflow"]["steps"] == [{"name": "One", "approverRoles": ["owner"]}]
    assert fetched.json()["workflow"]["requiredFor"] == []
    assert await publishing.scalar("SELECT count(*) FROM approval_workflows") == 1


BAD_WORKFLOWS: dict[str, Any] = {
    "no steps": {"requiredFor": ["editor"], "steps": []},
    "step without roles": {"steps": [{"name": "A", "approverRoles": []}]},
    "viewer approves": {"steps": [{"name": "A", "approverRoles": ["viewer"]}]},
    "unknown role": {"steps": [{"name": "A", "approverRoles": ["boss"]}]},
    "unknown author role": {
        "requiredFor": ["intern"],
        "steps": [{"name": "A", "approverRoles": ["owner"]}],
    },
    "repeated step name": {
        "steps": [
            {"name": "A", "approverRoles": ["owner"]},
            {"name": "a", "approverRoles": ["admin"]},
        ]
    },
    "empty name": {"steps": [{"name": "", "approverRoles": ["owner"]}]},
    "unknown field": {"steps": [{"name": "A", "approverRoles": ["owner"]}], "extra": 1},
    "not an object": ["owner"],
}


@pytest.mark.parametrize("case", list(BAD_WORKFLOWS))
async def test_a_bad_workflow_is_422(publishing: Publishing, case: str) -> None:
    resp = await put_workflow(publishing, str(uuid.uuid4()), BAD_WORKFLOWS[case])
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "VALIDATION_ERROR"
    assert await publishing.scalar("SELECT count(*) FROM approval_workflows") == 0


async def test_every_step_in_order_then_scheduled_and_sent(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    assert (await put_workflow(publishing, workspace, TWO_STEPS)).status_code == 200
    at = datetime.now(UTC) + timedelta(minutes=10)
    post = await editor_schedules(publishing, workspace, at)
    assert post["status"] == "pending_approval"

    # The Brand step's approvers cannot skip Legal: the current step is Legal (managers).
    owner, manager, other_manager = (str(uuid.uuid4()) for _ in range(3))
    skipped = await approve(publishing, workspace, post["id"], "owner", owner)
    assert skipped.status_code == 403, skipped.text
    assert skipped.json()["error"]["details"] == {"step": "Legal", "approverRoles": ["manager"]}
    editor = await approve(publishing, workspace, post["id"], "editor", str(uuid.uuid4()))
    assert editor.status_code == 403, editor.text

    legal = await approve(publishing, workspace, post["id"], "manager", manager, comment="ok")
    assert legal.status_code == 200, legal.text
    assert legal.json()["post"]["status"] == "pending_approval"
    assert await publishing.tick(now=at + timedelta(hours=1)) == 0  # still not approved

    # The same member again (a double click) does not pass the next step.
    twice = await approve(publishing, workspace, post["id"], "manager", manager)
    assert twice.status_code == 409, twice.text
    assert twice.json()["error"]["details"] == {"step": "Legal", "reason": "already_approved"}
    # Another manager cannot approve Brand either: it needs admin or owner.
    wrong = await approve(publishing, workspace, post["id"], "manager", other_manager)
    assert wrong.status_code == 403, wrong.text
    assert await publishing.scalar("SELECT count(*) FROM post_approvals") == 1

    brand = await approve(publishing, workspace, post["id"], "owner", owner, comment="ship it")
    assert brand.status_code == 200, brand.text
    assert brand.json()["post"]["status"] == "scheduled"
    done = await approve(publishing, workspace, post["id"], "admin", str(uuid.uuid4()))
    assert done.status_code == 409, done.text

    assert await publishing.tick(now=at) == 1
    assert len(await publishing.publish_commands()) == 2
    fetched = await publishing.get(workspace, post["id"])
    steps = [
        (h["action"], h["step"], h["toStatus"], h["actorId"], h["comment"])
        for h in fetched["history"]
    ]
    assert steps == [
        ("created", None, "pending_approval", fetched["authorId"], None),
        ("approved", "Legal", "pending_approval", manager, "ok"),
        ("approved", "Brand", "scheduled", owner, "ship it"),
        ("dispatched", None, "publishing", None, None),
    ]
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


async def test_rejection_by_the_current_step_and_a_new_round_after_resubmission(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    await put_workflow(publishing, workspace, TWO_STEPS)
    at = datetime.now(UTC) + timedelta(minutes=10)
    post = await editor_schedules(publishing, workspace, at)
    manager = str(uuid.uuid4())
    assert (await approve(publishing, workspace, post["id"], "manager", manager)).status_code == 200

    # Rejecting belongs to the current step (Brand): a manager may not, an admin may.
    reject_url = f"/api/v1/posts/{post['id']}/reject"
    no = await publishing.client.post(
        reject_url, json={"comment": "no"}, headers=publishing.headers(workspace, "manager")
    )
    assert no.status_code == 403, no.text
    yes = await publishing.client.post(
        reject_url, json={"comment": "off brand"}, headers=publishing.headers(workspace, "admin")
    )
    assert yes.status_code == 200, yes.text
    assert yes.json()["post"]["status"] == "draft"
    last = (await publishing.get(workspace, post["id"]))["history"][-1]
    assert (last["action"], last["step"], last["comment"]) == ("rejected", "Brand", "off brand")

    # Scheduled again: a new round, the earlier Legal approval no longer counts.
    again = await publishing.client.post(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduledAt": at.isoformat()},
        headers=publishing.headers(workspace, "editor"),
    )
    assert again.status_code == 200, again.text
    assert again.json()["post"]["status"] == "pending_approval"
    assert await publishing.scalar("SELECT count(*) FROM post_approvals") == 0
    owner = await approve(publishing, workspace, post["id"], "owner", str(uuid.uuid4()))
    assert owner.status_code == 403, owner.text  # Legal first, again
    relegal = await approve(publishing, workspace, post["id"], "manager", manager)
    assert relegal.status_code == 200, relegal.text


async def test_the_workflow_wins_over_the_settings_and_delete_falls_back(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    await publishing.require_approval(workspace, "editor")  # identity: editors need approval
    await put_workflow(
        publishing,
        workspace,
        {"requiredFor": ["manager"], "steps": [{"name": "Boss", "approverRoles": ["owner"]}]},
    )
    at = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()

    async def create(role: str) -> Any:
        return await publishing.client.post(
            "/api/v1/posts",
            json=await publishing.body(workspace, "x", scheduledAt=at),
            headers=publishing.headers(workspace, role),
        )

    manager_post = await create("manager")
    assert manager_post.json()["post"]["status"] == "pending_approval"
    # Editors are not in the workflow's list, and cannot publish: refused as before.
    assert (await create("editor")).status_code == 403

    deleted = await publishing.client.delete(WORKFLOWS, headers=publishing.headers(workspace))
    assert deleted.status_code == 204, deleted.text
    assert (await create("manager")).json()["post"]["status"] == "scheduled"
    assert (await create("editor")).json()["post"]["status"] == "pending_approval"


async def test_a_draft_needing_approval_cannot_be_published_now(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    await put_workflow(
        publishing,
        workspace,
        {"requiredFor": ["manager"], "steps": [{"name": "Boss", "approverRoles": ["owner"]}]},
    )
    post = (await publishing.create(workspace, "x", role="manager")).json()["post"]
    resp = await publishing.client.post(
        f"/api/v1/posts/{post['id']}/publish", headers=publishing.headers(workspace, "manager")
    )
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["details"]["reason"] == "approval_required"
    assert await publishing.commands() == []

    # Submitted and approved (no time): a draft again, which the manager may now publish.
    submit = await publishing.client.post(
        f"/api/v1/posts/{post['id']}/submit", headers=publishing.headers(workspace, "manager")
    )
    assert submit.json()["post"]["status"] == "pending_approval"
    ok = await approve(publishing, workspace, post["id"], "owner", str(uuid.uuid4()))
    assert ok.json()["post"]["status"] == "draft"


async def test_an_editor_may_approve_when_the_workflow_names_editors(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    await put_workflow(
        publishing,
        workspace,
        {"requiredFor": ["editor"], "steps": [{"name": "Peer", "approverRoles": ["editor"]}]},
    )
    post = await editor_schedules(publishing, workspace, datetime.now(UTC) + timedelta(hours=1))
    manager = await approve(publishing, workspace, post["id"], "manager", str(uuid.uuid4()))
    assert manager.status_code == 403, manager.text
    peer = await approve(publishing, workspace, post["id"], "editor", str(uuid.uuid4()))
    assert peer.status_code == 200, peer.text
    assert peer.json()["post"]["status"] == "scheduled"


async def test_one_workspaces_workflow_is_invisible_to_another(publishing: Publishing) -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    await put_workflow(publishing, mine, TWO_STEPS)
    resp = await publishing.client.get(WORKFLOWS, headers=publishing.headers(theirs))
    assert resp.json()["workflow"]["source"] == "workspace_settings"
    assert resp.json()["workflow"]["requiredFor"] == []
    # Their DELETE removes nothing of mine.
    await publishing.client.delete(WORKFLOWS, headers=publishing.headers(theirs))
    kept = await publishing.client.get(WORKFLOWS, headers=publishing.headers(mine))
    assert kept.json()["workflow"]["source"] == "workflow"

    post = await editor_schedules(publishing, mine, datetime.now(UTC) + timedelta(hours=1))
    stranger = await approve(publishing, theirs, post["id"], "manager", str(uuid.uuid4()))
    assert stranger.status_code == 404, stranger.text
    assert await publishing.scalar("SELECT count(*) FROM post_approvals") == 0


async def test_a_workflow_losing_steps_mid_round_still_completes(publishing: Publishing) -> None:
    """Approvals that already cover every remaining step: the next approver finishes the
    post (no second approval row for a step, no error)."""
    workspace = str(uuid.uuid4())
    assert (await put_workflow(publishing, workspace, TWO_STEPS)).status_code == 200
    at = datetime.now(UTC) + timedelta(minutes=10)
    post = await editor_schedules(publishing, workspace, at)
    legal = await approve(publishing, workspace, post["id"], "manager", str(uuid.uuid4()))
    assert legal.status_code == 200, legal.text

    one_step = {
        "requiredFor": ["editor"],
        "steps": [{"name": "Legal", "approverRoles": ["manager"]}],
    }
    assert (await put_workflow(publishing, workspace, one_step)).status_code == 200
    done = await approve(publishing, workspace, post["id"], "manager", str(uuid.uuid4()))
    assert done.status_code == 200, done.text
    assert done.json()["post"]["status"] == "scheduled"
    assert await publishing.scalar("SELECT count(*) FROM post_approvals") == 1
    assert await publishing.tick(now=at) == 1
