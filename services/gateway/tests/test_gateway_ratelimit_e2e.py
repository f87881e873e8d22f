"""Plan rate limits end to end (design.md §5): exact under concurrency, the common error body
with `Retry-After` and `RateLimit-*`, a plan upgrade applies at once, and the pre-auth routes
are limited per client IP."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from gateway_support import assert_error, register

pytestmark = pytest.mark.integration

ME = "/api/v1/auth/me"


async def test_plan_limit_is_exact_under_concurrency(start_gateway) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(
        plans_override='{"free": {"limits": {"api": {"requests": 50, "windowSeconds": 60}}}}'
    )
    c = svc.client
    t = await register(c, "burst@example.com", "Burst")

    responses = await asyncio.gather(*(c.get(ME, headers=t.headers) for _ in range(200)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 50, 429: 150}, statuses

    for r in responses:
        assert r.headers["RateLimit-Limit"] == "50"
        assert 0 < int(r.headers["RateLimit-Reset"]) <= 60
        assert r.headers["RateLimit-Policy"] == "50;w=60"
        if r.status_code == 429:
            err = assert_error(r, 429, "RATE_LIMIT_EXCEEDED")
            retry_after = int(r.headers["Retry-After"])
            assert 0 < retry_after <= 60
            assert err["details"]["retryAfter"] == retry_after
            assert err["details"]["limit"] == 50
            assert r.headers["RateLimit-Remaining"] == "0"
        else:
            assert "Retry-After" not in r.headers
    remaining = sorted(
        int(r.headers["RateLimit-Remaining"]) for r in responses if r.status_code == 200
    )
    assert remaining == list(range(50))  # every admitted hit counted exactly once

    # The owner upgrades; this replica applies the enterprise limits to the next request.
    up = await c.put("/api/v1/workspace/plan", json={"plan": "enterprise"}, headers=t.headers)
    assert up.status_code == 200, up.text
    assert up.json()["plan"] == "enterprise"
    after = await asyncio.gather(*(c.get(ME, headers=t.headers) for _ in range(20)))
    assert [r.status_code for r in after] == [200] * 20
    assert {r.headers["RateLimit-Limit"] for r in after} == {"6000"}
    # The window's count carried over: an upgrade lifts the limit, it does not reset usage.
    assert min(int(r.headers["RateLimit-Remaining"]) for r in after) == 6000 - 50 - 20


async def test_workspaces_have_separate_budgets(start_gateway) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(plans_override='{"free": {"limits": {"api": {"requests": 3}}}}')
    c = svc.client
    a = await register(c, "budget-a@example.com", "A")
    b = await register(c, "budget-b@example.com", "B")
    got_a = [(await c.get(ME, headers=a.headers)).status_code for _ in range(4)]
    assert got_a == [200, 200, 200, 429]
    assert (await c.get(ME, headers=b.headers)).status_code == 200


async def test_login_is_limited_per_client_ip(start_gateway) -> None:  # type: ignore[no-untyped-def]
    # Behind a trusted proxy the client address comes from X-Forwarded-For.
    svc = await start_gateway(
        plans_override='{"free": {"limits": {"auth": {"requests": 5}}}}',
        trusted_proxies=["127.0.0.1"],
    )
    c = svc.client
    ip_a = {"X-Forwarded-For": "203.0.113.7"}
    ip_b = {"X-Forwarded-For": "198.51.100.9"}
    bad = {"email": "who@example.com", "password": ""}  # 422: no password hashing needed

    statuses = [
        (await c.post("/api/v1/auth/login", json=bad, headers=ip_a)).status_code for _ in range(5)
    ]
    assert statuses == [422] * 5
    refused = await c.post("/api/v1/auth/login", json=bad, headers=ip_a)
    err = assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert err["details"]["limit"] == 5
    assert refused.headers["RateLimit-Remaining"] == "0"
    # The budget is the IP's, shared by every public auth route …
    r = await c.post("/api/v1/auth/refresh", json={"refreshToken": "x.y"}, headers=ip_a)
    assert_error(r, 429, "RATE_LIMIT_EXCEEDED")
    # … while another client address is unaffected.
    r = await c.post("/api/v1/auth/login", json=bad, headers=ip_b)
    assert r.status_code == 422
    assert r.headers["RateLimit-Remaining"] == "4"

    # Concurrent attempts from one address never get more than the limit through.
    ip_c = {"X-Forwarded-For": "192.0.2.55"}
    burst = await asyncio.gather(
        *(c.post("/api/v1/auth/login", json=bad, headers=ip_c) for _ in range(30))
    )
    assert Counter(r.status_code for r in burst) == {422: 5, 429: 25}
