"""Connected accounts (component): the `connector.accounts` projection decides which accounts
a post may target; `GET /api/v1/publishing/accounts` lists them per workspace."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from publishing_testkit import Publishing

from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import (
    AccountConnected,
    AccountDisconnected,
    AccountStatus,
    AccountStatusChanged,
)

pytestmark = pytest.mark.component


async def connected(p: Publishing, workspace: str, platform: str = "x") -> str:
    """An account connected through the real consumer of `connector.accounts`."""
    account = uuid.uuid4()
    await p.send(
        AccountConnected(
            account_id=account,
            workspace_id=uuid.UUID(workspace),
            platform=Platform(platform),
            platform_account_id=f"pa-{account.hex[:6]}",
            username=f"acme_{platform}",
            connected_at=datetime.now(UTC),
        ),
        topic="connector.accounts",
        tenant=workspace,
        key=str(account),
    )
    return str(account)


def body(*targets: tuple[str, str]) -> dict[str, Any]:
    return {
        "content": {"text": "hello"},
        "platforms": [{"platform": p, "accountId": a} for p, a in targets],
    }


async def create(p: Publishing, workspace: str, payload: dict[str, Any]) -> Any:
    return await p.client.post("/api/v1/posts", json=payload, headers=p.headers(workspace))


def rules(resp: Any) -> list[tuple[str, str]]:
    assert resp.status_code == 422, resp.text
    return [(d["field"], d["rule"]) for d in resp.json()["error"]["details"]]


async def test_a_post_may_target_only_this_workspaces_connected_accounts(
    publishing: Publishing,
) -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    x = await connected(publishing, mine, "x")
    foreign = await connected(publishing, theirs, "linkedin")

    ok = await create(publishing, mine, body(("x", x)))
    assert ok.status_code == 201, ok.text

    bad = await create(
        publishing,
        mine,
        body(("x", x), ("linkedin", foreign), ("threads", str(uuid.uuid4())), ("bluesky", x)),
    )
    assert rules(bad) == [
        ("platforms.1.accountId", "account_not_connected"),
        ("platforms.2.accountId", "account_not_connected"),
        ("platforms.3.accountId", "account_not_connected"),
    ]
    assert await publishing.scalar("SELECT count(*) FROM posts") == 1


async def test_a_revoked_account_is_refused_on_create_and_update(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    x = await connected(publishing, workspace, "x")
    post = (await create(publishing, workspace, body(("x", x)))).json()["post"]

    await publishing.send(
        AccountStatusChanged(
            account_id=uuid.UUID(x),
            workspace_id=uuid.UUID(workspace),
            platform=Platform.X,
            previous_status=AccountStatus.ACTIVE,
            status=AccountStatus.REVOKED,
            changed_at=datetime.now(UTC),
        ),
        topic="connector.accounts",
        tenant=workspace,
        key=x,
    )
    assert rules(await create(publishing, workspace, body(("x", x)))) == [
        ("platforms.0.accountId", "account_revoked")
    ]
    edit = await publishing.client.put(
        f"/api/v1/posts/{post['id']}",
        json=body(("x", x)),
        headers=publishing.headers(workspace),
    )
    assert rules(edit) == [("platforms.0.accountId", "account_revoked")]


async def test_a_disconnected_account_is_refused(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    threads = await connected(publishing, workspace, "threads")
    await publishing.send(
        AccountDisconnected(
            account_id=uuid.UUID(threads),
            workspace_id=uuid.UUID(workspace),
            platform=Platform.THREADS,
            disconnected_at=datetime.now(UTC),
        ),
        topic="connector.accounts",
        tenant=workspace,
        key=threads,
    )
    assert rules(await create(publishing, workspace, body(("threads", threads)))) == [
        ("platforms.0.accountId", "account_revoked")
    ]


async def test_the_accounts_list_shows_only_this_workspace(publishing: Publishing) -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    x = await connected(publishing, mine, "x")
    revoked = await publishing.connect(mine, "linkedin", status="revoked", username="old")
    await connected(publishing, theirs, "x")

    resp = await publishing.client.get(
        "/api/v1/publishing/accounts", headers=publishing.headers(mine, "viewer")
    )
    assert resp.status_code == 200, resp.text
    listed = {a["id"]: (a["platform"], a["status"], a["postable"]) for a in resp.json()["accounts"]}
    assert listed == {x: ("x", "active", True), revoked: ("linkedin", "revoked", False)}

    anonymous = await publishing.client.get("/api/v1/publishing/accounts")
    assert anonymous.status_code == 401
