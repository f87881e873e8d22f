"""Tenant isolation through the gateway (design.md §5): another workspace's ids are a 404 on
every identity/team/API-key endpoint, lists never show another tenant's rows, and a proxied
request carries only the caller's workspace, whatever headers the client adds."""

from __future__ import annotations

import uuid

import pytest
from gateway_support import (
    FakeUpstream,
    Tenant,
    assert_error,
    join,
    register,
    verify_with_gateway,
)

pytestmark = pytest.mark.integration

SEATS = '{"free": {"quotas": {"seats": null}}}'


@pytest.mark.usefixtures("fast_password_hashing")
async def test_other_workspace_ids_are_not_found(start_gateway) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(plans_override=SEATS)
    c = svc.client
    a = await register(c, "owner-a@example.com", "Alpha")
    b = await register(c, "owner-b@example.com", "Beta")
    b_editor = await join(c, b, "editor-b@example.com", "editor")
    b_key = await c.post(
        "/api/v1/api-keys", json={"name": "beta key", "scopes": ["post:read"]}, headers=b.headers
    )
    assert b_key.status_code == 201, b_key.text
    b_key_id = b_key.json()["apiKey"]["id"]

    # Team: B's members do not exist in A.
    for user_id in (b.user_id, b_editor.user_id):
        r = await c.put(
            f"/api/v1/team/members/{user_id}", json={"role": "viewer"}, headers=a.headers
        )
        assert_error(r, 404, "NOT_FOUND")
        r = await c.delete(f"/api/v1/team/members/{user_id}", headers=a.headers)
        assert_error(r, 404, "NOT_FOUND")
    # An id that exists nowhere answers exactly like another tenant's id.
    r = await c.delete(f"/api/v1/team/members/{uuid.uuid4()}", headers=a.headers)
    assert_error(r, 404, "NOT_FOUND")

    # API keys: B's key cannot be revoked from A, and is still there.
    r = await c.delete(f"/api/v1/api-keys/{b_key_id}", headers=a.headers)
    assert_error(r, 404, "NOT_FOUND")
    listed = await c.get("/api/v1/api-keys", headers=b.headers)
    assert [k["id"] for k in listed.json()["apiKeys"]] == [b_key_id]

    # Sessions: switching into a workspace you are not a member of is a 404, as is a
    # workspace that does not exist.
    for workspace_id in (b.workspace_id, str(uuid.uuid4())):
        r = await c.post(
            "/api/v1/auth/switch", json={"workspaceId": workspace_id}, headers=a.headers
        )
        assert_error(r, 404, "NOT_FOUND")
    # Logging in straight into another workspace is the same 404.
    r = await c.post(
        "/api/v1/auth/login",
        json={
            "email": "owner-a@example.com",
            "password": "correct horse 42!",
            "workspaceId": b.workspace_id,
        },
    )
    assert_error(r, 404, "NOT_FOUND")

    # Lists: each tenant sees only its own rows.
    a_members = (await c.get("/api/v1/team/members", headers=a.headers)).json()["members"]
    assert [m["userId"] for m in a_members] == [a.user_id]
    b_members = (await c.get("/api/v1/team/members", headers=b.headers)).json()["members"]
    assert {m["userId"] for m in b_members} == {b.user_id, b_editor.user_id}
    assert (await c.get("/api/v1/api-keys", headers=a.headers)).json() == {"apiKeys": []}
    a_workspaces = (await c.get("/api/v1/workspaces", headers=a.headers)).json()["workspaces"]
    assert [w["workspace"]["id"] for w in a_workspaces] == [a.workspace_id]
    me = (await c.get("/api/v1/auth/me", headers=a.headers)).json()
    assert me["workspace"]["id"] == a.workspace_id

    # Settings written by A never show in B.
    put = await c.put(
        "/api/v1/settings",
        json={"timezone": "Europe/Berlin", "defaultLocale": "de-DE"},
        headers=a.headers,
    )
    assert put.status_code == 200, put.text
    b_settings = (await c.get("/api/v1/settings", headers=b.headers)).json()
    assert b_settings["timezone"] == "UTC"

    # B's members and keys were untouched by all of the above.
    assert (await c.get("/api/v1/auth/me", headers=b_editor.headers)).json()["role"] == "editor"
    assert len((await c.get("/api/v1/api-keys", headers=b.headers)).json()["apiKeys"]) == 1


async def test_member_of_two_workspaces_switches_between_them(start_gateway) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(plans_override=SEATS)
    c = svc.client
    a = await register(c, "multi-a@example.com", "Alpha")
    b = await register(c, "multi-b@example.com", "Beta")
    # A's owner joins B as a viewer, proving the account with its password.
    created = await c.post(
        "/api/v1/team/invitations",
        json={"email": "multi-a@example.com", "role": "viewer"},
        headers=b.headers,
    )
    token = created.json()["token"]
    joined = await c.post(
        f"/api/v1/team/invitations/{token}/accept",
        json={"name": "Ann", "password": "correct horse 42!"},
    )
    assert joined.status_code == 200, joined.text
    assert joined.json()["user"]["id"] == a.user_id

    switched = await c.post(
        "/api/v1/auth/switch", json={"workspaceId": b.workspace_id}, headers=a.headers
    )
    assert switched.status_code == 200, switched.text
    in_b = Tenant(switched.json())
    me = (await c.get("/api/v1/auth/me", headers=in_b.headers)).json()
    assert (me["workspace"]["id"], me["role"]) == (b.workspace_id, "viewer")
    # The viewer session in B has B's rights, not A's owner rights.
    r = await c.get("/api/v1/api-keys", headers=in_b.headers)
    assert_error(r, 403, "FORBIDDEN")
    listed = (await c.get("/api/v1/workspaces", headers=a.headers)).json()["workspaces"]
    assert {(w["workspace"]["id"], w["role"]) for w in listed} == {
        (a.workspace_id, "owner"),
        (b.workspace_id, "viewer"),
    }


async def test_proxied_request_carries_only_the_callers_workspace(  # type: ignore[no-untyped-def]
    start_gateway, fake_upstream: FakeUpstream
) -> None:
    svc = await start_gateway(publishing_url=fake_upstream.url)
    c = svc.client
    a = await register(c, "proxy-a@example.com", "Alpha")
    b = await register(c, "proxy-b@example.com", "Beta")

    r = await c.get("/api/v1/posts?limit=5", headers=a.headers)
    assert r.status_code == 200, r.text
    seen = fake_upstream.last()
    assert (seen.method, seen.path) == ("GET", "/api/v1/posts")
    principal = await verify_with_gateway(c, seen.token)
    assert principal.workspace_id == a.workspace_id
    assert principal.subject == a.user_id
    assert principal.role == "owner"

    # Headers a client could use to pick another tenant never reach the upstream.
    forged = [
        ("Authorization", a.headers["Authorization"]),
        ("Authorization", b.headers["Authorization"]),
        ("X-Chorus-Workspace", b.workspace_id),
        ("X-Chorus-User", b.user_id),
        ("X-Workspace-Id", b.workspace_id),
        ("Cookie", f"workspace={b.workspace_id}"),
    ]
    # Two Authorization headers are ambiguous (RFC 9110: not a list field): refused, and
    # nothing reaches the upstream.
    fake_upstream.seen.clear()
    r = await c.post("/api/v1/posts", json={"text": "hi"}, headers=forged)
    assert_error(r, 401, "UNAUTHORIZED")
    r = await c.get("/api/v1/auth/me", headers=forged)
    assert_error(r, 401, "UNAUTHORIZED")
    # A bogus API key next to a valid token is not skipped in favour of the token.
    r = await c.get("/api/v1/posts", headers={**a.headers, "X-API-Key": "chk_forged_key"})
    assert_error(r, 401, "UNAUTHORIZED")
    assert fake_upstream.seen == []

    forged_single = [(k, v) for k, v in forged if k != "Authorization" or v == forged[0][1]]
    r = await c.post("/api/v1/posts", json={"text": "hi"}, headers=forged_single)
    assert r.status_code == 200, r.text
    seen = fake_upstream.last()
    names = {k for k, _ in seen.headers}
    assert not names & {"x-chorus-workspace", "x-chorus-user", "x-workspace-id"}
    assert "cookie" not in names
    assert len(seen.values("authorization")) == 1
    principal = await verify_with_gateway(c, seen.token)
    assert principal.workspace_id == a.workspace_id
    assert principal.subject == a.user_id
    assert b.workspace_id not in str(seen.headers)
    assert seen.body == b'{"text":"hi"}'
