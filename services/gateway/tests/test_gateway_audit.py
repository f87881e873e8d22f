"""Audit and identity events through the gateway's outbox (design.md §3–§5): every mutating
request leaves a `gateway.request.audited` event with the right tenant, status and request
id and no secrets; identity changes leave their `identity.*` events. Each row is decoded as
a CloudEvent and validated against its contract."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from gateway_support import PASSWORD, join, register

from chorus_contracts.catalog import EventData, parse_data
from chorus_contracts.envelope import CloudEvent, decode
from chorus_contracts.events.gateway import RequestAudited
from chorus_contracts.events.identity import (
    MemberJoined,
    MemberRoleChanged,
    WorkspaceCreated,
    WorkspacePlanChanged,
)
from chorus_testing.postgres import scalar
from chorus_testing.waiting import wait_for

pytestmark = pytest.mark.integration

AUDITED = "chorus.gateway.request.audited.v1"


@dataclass
class Row:
    topic: str
    key: str | None
    raw: str  # headers and value as stored, for "no secret anywhere" checks
    event: CloudEvent
    data: EventData


async def outbox(url: str) -> list[Row]:
    text = await scalar(
        url,
        "SELECT coalesce(json_agg(json_build_object('topic', topic, 'key', key, "
        "'headers', headers, 'value', convert_from(value, 'UTF8')) ORDER BY id), '[]') "
        "FROM outbox",
    )
    rows = []
    for r in json.loads(text) if isinstance(text, str) else text:  # type: ignore[union-attr]
        event = decode(r["headers"], r["value"].encode())
        rows.append(
            Row(
                r["topic"],
                r["key"],
                json.dumps(r["headers"]) + r["value"],
                event,
                parse_data(event),
            )
        )
    return rows


async def wait_for_rows(url: str, predicate: Any, *, count: int = 1) -> list[Row]:
    found: list[Row] = []

    async def check() -> bool:
        found[:] = [r for r in await outbox(url) if predicate(r)]
        return len(found) >= count

    await wait_for(check, timeout=10, interval=0.05, message="outbox rows")
    return found


def audited(request_id: str) -> Any:
    return lambda r: r.event.type == AUDITED and r.data.request_id == request_id


async def test_mutating_requests_are_audited(start_gateway, gateway_db) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway()
    c = svc.client
    url = gateway_db.owner_url
    secret_password = "Zebra-Quartz-9931!"
    reg = await c.post(
        "/api/v1/auth/register",
        json={
            "email": "audit@example.com",
            "password": secret_password,
            "name": "Audrey",
            "workspaceName": "Audit",
        },
        headers={"X-Request-ID": "req-register-1", "User-Agent": "audit-test/1.0"},
    )
    assert reg.status_code == 201, reg.text
    assert reg.headers["X-Request-ID"] == "req-register-1"
    session = reg.json()
    workspace_id = session["workspace"]["id"]
    user_id = session["user"]["id"]
    auth = {"Authorization": f"Bearer {session['accessToken']}"}

    (row,) = await wait_for_rows(url, audited("req-register-1"))
    data = row.data
    assert isinstance(data, RequestAudited)
    assert row.topic == "gateway.audit" and row.key == "anonymous"
    assert data.workspace_id is None and data.actor_type == "anonymous"
    assert (data.action, data.status_code) == ("POST /api/v1/auth/register", 201)
    assert data.user_agent == "audit-test/1.0" and data.ip == "127.0.0.1"
    assert row.event.tenantid is None

    # A settings change: audited with the caller's workspace and the response's status.
    put = await c.put(
        "/api/v1/settings",
        json={"timezone": "Asia/Tokyo", "defaultLocale": "ja-JP"},
        headers={**auth, "X-Request-ID": "req-settings-1"},
    )
    assert put.status_code == 200, put.text
    (row,) = await wait_for_rows(url, audited("req-settings-1"))
    data = row.data
    assert str(data.workspace_id) == workspace_id
    assert (data.actor_type, data.actor_id) == ("user", user_id)
    assert (data.action, data.resource_type, data.status_code) == (
        "PUT /api/v1/settings",
        "settings",
        200,
    )
    assert row.key == workspace_id and row.event.tenantid == workspace_id
    assert data.duration_ms >= 0

    # Refused requests are audited too, with their status; reads are not.
    bad = await c.put(
        "/api/v1/settings",
        json={"timezone": "Nowhere/Special", "defaultLocale": "en"},
        headers={**auth, "X-Request-ID": "req-settings-bad"},
    )
    assert bad.status_code == 422
    denied = await c.delete(
        "/api/v1/api-keys/00000000-0000-4000-8000-000000000000",
        headers={"X-Request-ID": "req-anon-delete"},
    )
    assert denied.status_code == 401
    await c.get("/api/v1/settings", headers={**auth, "X-Request-ID": "req-read"})
    (row,) = await wait_for_rows(url, audited("req-settings-bad"))
    assert row.data.status_code == 422
    (row,) = await wait_for_rows(url, audited("req-anon-delete"))
    assert (row.data.status_code, row.data.actor_type) == (401, "anonymous")
    assert (row.data.action, row.data.resource_id) == (
        "DELETE /api/v1/api-keys/{id}",
        "00000000-0000-4000-8000-000000000000",
    )
    # Login (a POST) is audited without the password as well.
    login = await c.post(
        "/api/v1/auth/login",
        json={"email": "audit@example.com", "password": secret_password},
        headers={"X-Request-ID": "req-login-1"},
    )
    assert login.status_code == 200
    await wait_for_rows(url, audited("req-login-1"))

    rows = await outbox(url)
    assert not [r for r in rows if r.event.type == AUDITED and r.data.request_id == "req-read"]
    for r in rows:
        # No secret anywhere: not the password, not a token, not a hash.
        assert secret_password not in r.raw
        assert session["accessToken"] not in r.raw
        assert session["refreshToken"] not in r.raw
        assert "argon2" not in r.raw
        assert "password" not in r.raw.lower()


async def test_identity_events(start_gateway, gateway_db) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(plans_override='{"free": {"quotas": {"seats": null}}}')
    c = svc.client
    url = gateway_db.owner_url
    owner = await register(c, "events@example.com", "Events Inc")

    def of(model: type[EventData]) -> Any:
        return lambda r: r.event.type == model.event_type

    (created,) = await wait_for_rows(url, of(WorkspaceCreated))
    assert created.topic == "identity.workspaces" and created.key == owner.workspace_id
    assert created.event.tenantid == owner.workspace_id
    assert created.event.source == "/chorus/gateway"
    data = created.data
    assert isinstance(data, WorkspaceCreated)
    assert (str(data.workspace_id), str(data.owner_user_id)) == (owner.workspace_id, owner.user_id)
    assert (data.name, data.plan.value, data.timezone) == ("Events Inc", "free", "UTC")

    (joined,) = await wait_for_rows(url, of(MemberJoined))
    assert joined.topic == "identity.members" and joined.key == owner.workspace_id
    assert joined.event.subject == owner.user_id
    assert (str(joined.data.user_id), joined.data.role.value) == (owner.user_id, "owner")

    editor = await join(c, owner, "editor@events.example", "editor", password=PASSWORD)
    rows = await wait_for_rows(url, of(MemberJoined), count=2)
    new = next(r.data for r in rows if str(r.data.user_id) == editor.user_id)
    assert new.role.value == "editor" and str(new.invited_by) == owner.user_id

    changed = await c.put(
        f"/api/v1/team/members/{editor.user_id}", json={"role": "manager"}, headers=owner.headers
    )
    assert changed.status_code == 200, changed.text
    (role_row,) = await wait_for_rows(url, of(MemberRoleChanged))
    role = role_row.data
    assert isinstance(role, MemberRoleChanged)
    assert role_row.topic == "identity.members" and role_row.event.subject == editor.user_id
    assert (role.previous_role.value, role.role.value) == ("editor", "manager")
    assert (str(role.user_id), str(role.changed_by)) == (editor.user_id, owner.user_id)

    plan = await c.put(
        "/api/v1/workspace/plan", json={"plan": "professional"}, headers=owner.headers
    )
    assert plan.status_code == 200, plan.text
    (plan_row,) = await wait_for_rows(url, of(WorkspacePlanChanged))
    p = plan_row.data
    assert isinstance(p, WorkspacePlanChanged)
    assert plan_row.topic == "identity.workspaces" and plan_row.key == owner.workspace_id
    assert (p.previous_plan.value, p.plan.value) == ("free", "professional")
    assert str(p.changed_by) == owner.user_id

    # Setting the same plan or role again is not a change: no second event.
    await c.put("/api/v1/workspace/plan", json={"plan": "professional"}, headers=owner.headers)
    await c.put(
        f"/api/v1/team/members/{editor.user_id}", json={"role": "manager"}, headers=owner.headers
    )
    rows = await outbox(url)
    assert len([r for r in rows if r.event.type == WorkspacePlanChanged.event_type]) == 1
    assert len([r for r in rows if r.event.type == MemberRoleChanged.event_type]) == 1
    # Every row in the outbox decodes and validates (checked by `outbox` itself).
    assert {r.topic for r in rows} >= {"identity.workspaces", "identity.members", "gateway.audit"}
