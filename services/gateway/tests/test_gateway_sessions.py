"""Sessions and invitations (design.md §5): refresh rotation with reuse detection, logout,
invitation expiry/reuse, existing accounts joining, the seats quota and login lockout."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from gateway_support import PASSWORD, Tenant, accept, assert_error, invite, register

from chorus_testing.postgres import scalar

pytestmark = pytest.mark.integration

ME = "/api/v1/auth/me"


async def test_refresh_rotation_reuse_and_logout(gateway) -> None:  # type: ignore[no-untyped-def]
    c = gateway.client
    t = await register(c, "sessions@example.com", "Sessions")

    # Rotation: each refresh token works once and yields a working pair.
    r1 = await c.post("/api/v1/auth/refresh", json={"refreshToken": t.refresh})
    assert r1.status_code == 200, r1.text
    pair1 = r1.json()
    assert pair1["refreshToken"] != t.refresh
    assert (await c.get(ME, headers={"Authorization": f"Bearer {pair1['accessToken']}"})).json()[
        "workspace"
    ]["id"] == t.workspace_id
    r2 = await c.post("/api/v1/auth/refresh", json={"refreshToken": pair1["refreshToken"]})
    assert r2.status_code == 200, r2.text
    latest = r2.json()["refreshToken"]

    # A second session (another device) is a family of its own.
    other = await c.post(
        "/api/v1/auth/login", json={"email": "sessions@example.com", "password": PASSWORD}
    )
    other_refresh = other.json()["refreshToken"]

    # Reuse of a rotated token: 401, and the whole family is revoked — the newest token too.
    reuse = await c.post("/api/v1/auth/refresh", json={"refreshToken": pair1["refreshToken"]})
    assert_error(reuse, 401, "UNAUTHORIZED")
    assert_error(
        await c.post("/api/v1/auth/refresh", json={"refreshToken": latest}), 401, "UNAUTHORIZED"
    )
    # The other device's family is untouched.
    r3 = await c.post("/api/v1/auth/refresh", json={"refreshToken": other_refresh})
    assert r3.status_code == 200, r3.text
    other_refresh = r3.json()["refreshToken"]

    # Logout revokes that family: refreshing afterwards is a 401 (and logout says 204 again).
    out = await c.post("/api/v1/auth/logout", json={"refreshToken": other_refresh})
    assert out.status_code == 204
    assert_error(
        await c.post("/api/v1/auth/refresh", json={"refreshToken": other_refresh}),
        401,
        "UNAUTHORIZED",
    )
    again = await c.post("/api/v1/auth/logout", json={"refreshToken": other_refresh})
    assert again.status_code == 204
    # Unknown or malformed refresh tokens: 401 for refresh, 204 (no oracle) for logout.
    for bogus in ("nope", "00000000-0000-0000-0000-000000000000.secret", f"{t.refresh}x"):
        assert_error(
            await c.post("/api/v1/auth/refresh", json={"refreshToken": bogus}), 401, "UNAUTHORIZED"
        )
        assert (
            await c.post("/api/v1/auth/logout", json={"refreshToken": bogus})
        ).status_code == 204


@pytest.mark.usefixtures("fast_password_hashing")
async def test_invitation_lifecycle(start_gateway, gateway_db) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(
        plans_override='{"free": {"quotas": {"seats": null}}}', invitation_ttl_seconds=3600
    )
    c = svc.client
    owner = await register(c, "inviter@example.com", "Inviter")

    # Expired (the row's expiry moved into the past, as the table owner would see it).
    created = await invite(c, owner, "late@example.com", "editor")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["invitation"]["role"] == "editor" and body["token"]
    # The validity comes from the settings (invitation_ttl_seconds).
    ttl = datetime.fromisoformat(body["invitation"]["expiresAt"]) - datetime.now(UTC)
    assert 3590 < ttl.total_seconds() <= 3600
    moved = await scalar(
        gateway_db.owner_url,
        "UPDATE invitations SET expires_at = now() - interval '1 second' "
        "WHERE id = :id RETURNING id",
        id=body["invitation"]["id"],
    )
    assert str(moved) == body["invitation"]["id"]
    assert_error(await accept(c, body["token"]), 410, "INVITATION_EXPIRED")

    # Unknown token.
    assert_error(await accept(c, "no-such-invitation-token"), 404, "NOT_FOUND")

    # Accepted once; a second use is a conflict.
    created = await invite(c, owner, "new@example.com", "viewer")
    token = created.json()["token"]
    first = await accept(c, token, name="New Person")
    assert first.status_code == 200, first.text
    joined = Tenant(first.json())
    assert joined.workspace_id == owner.workspace_id
    assert_error(await accept(c, token, name="New Person"), 409, "CONFLICT")

    # An invitation for an existing account needs that account's password.
    other = await register(c, "existing@example.com", "Elsewhere", password="an0ther-Secret!")
    created = await invite(c, owner, "Existing@Example.com", "manager")
    token = created.json()["token"]
    assert_error(await accept(c, token, password=PASSWORD), 401, "UNAUTHORIZED")
    ok = await accept(c, token, password="an0ther-Secret!")
    assert ok.status_code == 200, ok.text
    session = Tenant(ok.json())
    assert session.user_id == other.user_id
    assert session.workspace_id == owner.workspace_id
    me = (await c.get(ME, headers=session.headers)).json()
    assert (me["role"], me["user"]["email"]) == ("manager", "existing@example.com")
    # The account's password is unchanged and it now belongs to both workspaces.
    spaces = (await c.get("/api/v1/workspaces", headers=session.headers)).json()["workspaces"]
    assert {w["workspace"]["id"] for w in spaces} == {owner.workspace_id, other.workspace_id}

    # A new account's password is checked like at registration.
    created = await invite(c, owner, "weak@example.com", "viewer")
    weak = await accept(c, created.json()["token"], password="short")
    assert_error(weak, 422, "VALIDATION_ERROR")
    # The failed attempt did not use the invitation up.
    assert (await accept(c, created.json()["token"])).status_code == 200

    members = (await c.get("/api/v1/team/members", headers=owner.headers)).json()["members"]
    assert sorted(m["email"] for m in members) == [
        "existing@example.com",
        "inviter@example.com",
        "new@example.com",
        "weak@example.com",
    ]


async def test_seats_quota(start_gateway) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(plans_override='{"free": {"quotas": {"seats": 2}}}')
    c = svc.client
    owner = await register(c, "seats@example.com", "Seats")
    # 1 member + 1 pending invitation fill the 2 seats.
    first = await invite(c, owner, "one@example.com", "editor")
    assert first.status_code == 201, first.text
    err = assert_error(await invite(c, owner, "two@example.com", "editor"), 403, "QUOTA_EXCEEDED")
    assert err["details"] == {"quota": "seats", "limit": 2, "used": 2}
    # Accepting converts the pending seat into a member: still full.
    assert (await accept(c, first.json()["token"])).status_code == 200
    assert_error(await invite(c, owner, "two@example.com", "editor"), 403, "QUOTA_EXCEEDED")
    # A bigger plan makes room at once.
    up = await c.put("/api/v1/workspace/plan", json={"plan": "starter"}, headers=owner.headers)
    assert up.status_code == 200, up.text
    assert (await invite(c, owner, "two@example.com", "editor")).status_code == 201


async def test_default_free_plan_has_one_seat(gateway) -> None:  # type: ignore[no-untyped-def]
    c = gateway.client
    owner = await register(c, "solo@example.com", "Solo")
    assert_error(await invite(c, owner, "x@example.com", "viewer"), 403, "QUOTA_EXCEEDED")


async def test_login_lockout(start_gateway) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(login_max_failures=3, login_lockout_seconds=120)
    c = svc.client
    await register(c, "locked@example.com", "Locked")
    wrong = {"email": "locked@example.com", "password": "wrong password 1!"}
    for _ in range(3):
        assert_error(await c.post("/api/v1/auth/login", json=wrong), 401, "UNAUTHORIZED")
    # Locked: even the right password is refused until the lockout ends.
    for body in (wrong, {"email": "LOCKED@example.com", "password": PASSWORD}):
        r = await c.post("/api/v1/auth/login", json=body)
        err = assert_error(r, 429, "RATE_LIMIT_EXCEEDED")
        retry_after = int(r.headers["Retry-After"])
        assert 0 < retry_after <= 120
        assert err["details"]["retryAfter"] == retry_after
    # Other accounts are not locked by it.
    await register(c, "free-user@example.com", "Free")
    other = await c.post(
        "/api/v1/auth/login", json={"email": "free-user@example.com", "password": PASSWORD}
    )
    assert other.status_code == 200, other.text
