"""First flows through the gateway's own API (real Postgres and Redis)."""

from __future__ import annotations

import pytest
from gateway_support import register

pytestmark = pytest.mark.integration


async def test_register_me_refresh_logout(gateway) -> None:  # type: ignore[no-untyped-def]
    c = gateway.client
    t = await register(c, "Ann@Example.com")
    assert t.body["user"]["email"] == "ann@example.com"
    assert t.body["workspace"]["plan"] == "free"
    assert t.body["tokenType"] == "Bearer" and t.body["expiresIn"] == 900
    me = await c.get("/api/v1/auth/me", headers=t.headers)
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "owner"
    assert "billing:manage" in me.json()["permissions"]
    assert me.headers["RateLimit-Limit"]
    r1 = await c.post("/api/v1/auth/refresh", json={"refreshToken": t.refresh})
    assert r1.status_code == 200, r1.text
    reuse = await c.post("/api/v1/auth/refresh", json={"refreshToken": t.refresh})
    assert reuse.status_code == 401
    # The family is revoked: the rotated token no longer works either.
    r2 = await c.post("/api/v1/auth/refresh", json={"refreshToken": r1.json()["refreshToken"]})
    assert r2.status_code == 401
    jwks = await c.get("/.well-known/jwks.json")
    assert jwks.json()["keys"][0]["alg"] == "EdDSA"


async def test_login_wrong_password_same_message(gateway) -> None:  # type: ignore[no-untyped-def]
    c = gateway.client
    await register(c, "bob@example.com")
    wrong = await c.post(
        "/api/v1/auth/login", json={"email": "bob@example.com", "password": "x" * 12}
    )
    unknown = await c.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x" * 12}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]
    ok = await c.post(
        "/api/v1/auth/login", json={"email": "BOB@example.com", "password": "correct horse 42!"}
    )
    assert ok.status_code == 200, ok.text
