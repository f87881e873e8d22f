"""API keys end to end: shown once, stored hashed, exchanged at the gateway for a short-lived
token carrying only the key's scopes (the upstream never sees the raw key), revocation and
expiry apply at once, and a key cannot manage keys or act as a user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from gateway_support import (
    FakeUpstream,
    assert_error,
    bearer,
    register,
    verify_with_gateway,
)

from chorus_testing.postgres import scalar
from chorus_testing.waiting import wait_for

pytestmark = pytest.mark.integration


async def test_api_key_lifecycle(  # type: ignore[no-untyped-def]
    start_gateway, gateway_db, fake_upstream: FakeUpstream
) -> None:
    svc = await start_gateway(publishing_url=fake_upstream.url)
    c = svc.client
    t = await register(c, "keys@example.com", "Keys")

    created = await c.post(
        "/api/v1/api-keys", json={"name": "reader", "scopes": ["post:read"]}, headers=t.headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    meta = body["apiKey"]
    assert key.startswith("chk_") and len(key) > 40
    assert key.startswith(f"chk_{meta['prefix']}_")
    assert meta["scopes"] == ["post:read"] and meta["expiresAt"] is None

    # Listed without the secret, ever.
    listed = await c.get("/api/v1/api-keys", headers=t.headers)
    assert listed.status_code == 200
    assert [k["id"] for k in listed.json()["apiKeys"]] == [meta["id"]]
    assert "key" not in listed.json()["apiKeys"][0]
    assert key not in listed.text and key.split("_", 2)[2] not in listed.text
    # Stored only as a hash.
    stored = await scalar(
        gateway_db.owner_url, "SELECT key_hash FROM api_keys WHERE id = :id", id=meta["id"]
    )
    assert stored and key not in str(stored)

    # Used as a bearer token and as X-API-Key: the upstream gets a gateway JWT instead.
    for headers in (bearer(key), {"X-API-Key": key}):
        fake_upstream.seen.clear()
        r = await c.get("/api/v1/posts", headers=headers)
        assert r.status_code == 200, r.text
        seen = fake_upstream.last()
        assert key not in str(seen.headers)
        assert seen.values("x-api-key") == []
        principal = await verify_with_gateway(c, seen.token)
        assert principal.token_type == "api_key"
        assert sorted(principal.permissions) == ["post:read"]
        assert principal.claims["perms"] == ["post:read"]
        assert principal.workspace_id == t.workspace_id
        assert principal.subject == f"apikey:{meta['id']}"
        assert principal.role == "api_key"
        assert principal.claims["exp"] - principal.claims["iat"] <= 300

    # The gateway passes a write on (publishing decides), but the token only says post:read.
    fake_upstream.seen.clear()
    r = await c.post("/api/v1/posts", json={"text": "x"}, headers=bearer(key))
    assert r.status_code == 200
    principal = await verify_with_gateway(c, fake_upstream.last().token)
    assert not principal.can("post:create")

    # A key is not a user: no /auth/me, no team or key management.
    assert_error(await c.get("/api/v1/auth/me", headers=bearer(key)), 403, "FORBIDDEN")
    r = await c.post(
        "/api/v1/api-keys", json={"name": "child", "scopes": ["post:read"]}, headers=bearer(key)
    )
    assert_error(r, 403, "FORBIDDEN")
    assert_error(await c.get("/api/v1/api-keys", headers=bearer(key)), 403, "FORBIDDEN")

    # Revocation applies at once (the key was just used, so it is in the exchange cache).
    revoked = await c.delete(f"/api/v1/api-keys/{meta['id']}", headers=t.headers)
    assert revoked.status_code == 204
    fake_upstream.seen.clear()
    for headers in (bearer(key), {"X-API-Key": key}):
        assert_error(await c.get("/api/v1/posts", headers=headers), 401, "UNAUTHORIZED")
    assert fake_upstream.seen == []
    assert_error(
        await c.delete(f"/api/v1/api-keys/{meta['id']}", headers=t.headers), 404, "NOT_FOUND"
    )
    assert (await c.get("/api/v1/api-keys", headers=t.headers)).json() == {"apiKeys": []}

    # Near misses of a real key are refused.
    for forged in (
        key[:-1] + ("A" if key[-1] != "A" else "B"),
        "chk_",
        "chk_nounderscore",
        key + "x",
    ):
        assert_error(
            await c.get("/api/v1/posts", headers={"X-API-Key": forged}), 401, "UNAUTHORIZED"
        )


async def test_api_key_cannot_manage_keys_or_the_team(gateway) -> None:  # type: ignore[no-untyped-def]
    c = gateway.client
    t = await register(c, "key-powers@example.com", "Key Powers")
    # Even a key holding apikeys:manage and team:manage cannot mint keys or manage members.
    manager = await c.post(
        "/api/v1/api-keys",
        json={"name": "manager", "scopes": ["apikeys:manage", "team:manage"]},
        headers=t.headers,
    )
    manager_key = manager.json()["key"]
    for headers in (bearer(manager_key), {"X-API-Key": manager_key}):
        r = await c.post(
            "/api/v1/api-keys", json={"name": "child", "scopes": ["post:read"]}, headers=headers
        )
        assert_error(r, 403, "FORBIDDEN")
        r = await c.put(
            f"/api/v1/team/members/{t.user_id}", json={"role": "viewer"}, headers=headers
        )
        assert_error(r, 403, "FORBIDDEN")
        assert_error(
            await c.post(
                "/api/v1/auth/switch", json={"workspaceId": t.workspace_id}, headers=headers
            ),
            403,
            "FORBIDDEN",
        )
    assert len((await c.get("/api/v1/api-keys", headers=t.headers)).json()["apiKeys"]) == 1
    me = (await c.get("/api/v1/auth/me", headers=t.headers)).json()
    assert me["role"] == "owner"


async def test_expired_api_key_is_refused(  # type: ignore[no-untyped-def]
    start_gateway, gateway_db, fake_upstream: FakeUpstream
) -> None:
    svc = await start_gateway(publishing_url=fake_upstream.url)
    c = svc.client
    t = await register(c, "expiring@example.com", "Expiring")

    # Expired in the database (as if created long ago).
    old = await c.post(
        "/api/v1/api-keys",
        json={
            "name": "old",
            "scopes": ["post:read"],
            "expiresAt": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        headers=t.headers,
    )
    await scalar(
        gateway_db.owner_url,
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id RETURNING id",
        id=old.json()["apiKey"]["id"],
    )
    assert_error(
        await c.get("/api/v1/posts", headers=bearer(old.json()["key"])), 401, "UNAUTHORIZED"
    )

    # Expiring while in use: accepted before, refused as soon as it expires (even though a
    # recently used key is cached by the gateway).
    expires_at = datetime.now(UTC) + timedelta(seconds=0.8)
    soon = await c.post(
        "/api/v1/api-keys",
        json={"name": "soon", "scopes": ["post:read"], "expiresAt": expires_at.isoformat()},
        headers=t.headers,
    )
    assert soon.status_code == 201, soon.text
    key = soon.json()["key"]
    assert (await c.get("/api/v1/posts", headers=bearer(key))).status_code == 200

    statuses: list[int] = []

    async def refused() -> bool:
        r = await c.get("/api/v1/posts", headers=bearer(key))
        statuses.append(r.status_code)
        return r.status_code == 401

    await wait_for(refused, timeout=5, interval=0.05, message="expired key refused")
    # Refused at its expiry, not up to the exchange cache's 30 s later.
    assert expires_at - timedelta(milliseconds=100) <= datetime.now(UTC)
    assert datetime.now(UTC) < expires_at + timedelta(seconds=2)
    assert set(statuses) <= {200, 401}
    r = await c.get("/api/v1/posts", headers={"X-API-Key": key})
    assert_error(r, 401, "UNAUTHORIZED")
