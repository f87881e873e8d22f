"""Rate limiter and login lockout: exactness under concurrency against real Redis, window
reset, cost, headers, Redis-down behaviour (fail-open / fail-closed), lockouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from chorus_gateway.plans import Limit, RouteGroup
from chorus_gateway.ratelimit import (
    Decision,
    LoginGuard,
    RateLimiter,
    client_ip_key,
    headers,
    raise_if_refused,
    subject_key,
)
from chorus_runtime.errors import RateLimited, ServiceUnavailable
from chorus_testing.fixtures import REDIS_URL

unit = pytest.mark.unit
integration = pytest.mark.integration

PREFIX = "chorus:rl"


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def poll(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> float:
    """Wait until `condition()` holds; returns the seconds waited."""
    start = time.monotonic()
    while not await condition():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
async def dead_redis() -> AsyncIterator[aioredis.Redis]:
    """A client pointed at a port nothing listens on."""
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    yield client
    await client.aclose()


# --- exactness under concurrency -----------------------------------------------------------


@integration
async def test_200_concurrent_hits_against_50_admit_exactly_50(
    redis_client: aioredis.Redis,
) -> None:
    # Four limiters with their own connection pools stand in for four gateway replicas.
    pools = [
        aioredis.ConnectionPool.from_url(REDIS_URL, max_connections=100, client_name="rl-exact")
        for _ in range(4)
    ]
    clients = [aioredis.Redis(connection_pool=pool) for pool in pools]
    # fail_open=False: a Redis hiccup must fail the test, never hide behind the fallback.
    limiters = [RateLimiter(c, fail_open=False, timeout=10) for c in clients]
    limit = Limit(50, 60)
    try:
        decisions = await asyncio.gather(
            *(limiters[i % 4].hit("ws:exact:api", limit) for i in range(200))
        )
        names = [c.get("name") for c in await redis_client.client_list()]
        assert names.count("rl-exact") > 4  # truly concurrent: many connections were used
    finally:
        for c in clients:
            await c.aclose()

    allowed = [d for d in decisions if d.allowed]
    refused = [d for d in decisions if not d.allowed]
    assert len(allowed) == 50
    assert len(refused) == 150
    assert not any(d.degraded for d in decisions)
    # Every admitted hit saw a distinct count: remaining 49, 48, …, 0 exactly once each.
    assert sorted(d.remaining for d in allowed) == list(range(50))
    assert all(d.remaining >= 0 for d in decisions)
    for d in refused:
        assert d.remaining == 0
        assert d.retry_after is not None and 1 <= d.retry_after <= 60
    assert int(await redis_client.get(f"{PREFIX}:ws:exact:api:60")) == 50


@integration
async def test_a_burst_wider_than_the_default_pool_is_not_an_outage(
    redis_client: aioredis.Redis,
) -> None:
    # redis_client has redis-py's default pool (100 connections, raises when exhausted), like
    # the runtime's shared client: 200 concurrent hits must queue for connections, not fail.
    limiter = RateLimiter(redis_client, fail_open=False, timeout=10)
    decisions = await asyncio.gather(
        *(limiter.hit("ws:pool:api", Limit(50, 60)) for _ in range(200))
    )
    assert sum(d.allowed for d in decisions) == 50
    assert not any(d.degraded for d in decisions)


@integration
async def test_concurrent_hits_with_cost_never_overspend(redis_client: aioredis.Redis) -> None:
    pool = aioredis.ConnectionPool.from_url(REDIS_URL, max_connections=100)
    client = aioredis.Redis(connection_pool=pool)
    limiter = RateLimiter(client, fail_open=False, timeout=10)
    try:
        decisions = await asyncio.gather(
            *(limiter.hit("ws:cost:api", Limit(50, 60), cost=3) for _ in range(100))
        )
    finally:
        await client.aclose()
    assert sum(d.allowed for d in decisions) == 16  # 16 * 3 = 48 <= 50 < 51
    assert int(await redis_client.get(f"{PREFIX}:ws:cost:api:60")) == 48


# --- single-limiter behaviour ----------------------------------------------------------------


@integration
async def test_counts_down_and_sets_a_ttl(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client)
    first = await limiter.hit("ws:a:api", Limit(3, 60))
    assert first == Decision(True, 3, 2, 60, None, False, 60)
    assert (await limiter.hit("ws:a:api", Limit(3, 60))).remaining == 1
    assert (await limiter.hit("ws:a:api", Limit(3, 60))).remaining == 0
    refused = await limiter.hit("ws:a:api", Limit(3, 60))
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after == refused.reset_seconds and 1 <= refused.retry_after <= 60
    ttl = await redis_client.pttl(f"{PREFIX}:ws:a:api:60")
    assert 0 < ttl <= 60_000


@integration
async def test_window_resets(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client)
    limit = Limit(2, 1)
    assert (await limiter.hit("ws:w:api", limit)).allowed
    assert (await limiter.hit("ws:w:api", limit)).allowed
    refused = await limiter.hit("ws:w:api", limit)
    assert not refused.allowed and refused.retry_after == 1

    async def admitted() -> bool:
        return (await limiter.hit("ws:w:api", limit)).allowed

    waited = await poll(admitted, timeout=3)
    assert waited <= 1.5
    # The fresh window counted the admitted hit only (refused polls spent nothing).
    assert (await limiter.hit("ws:w:api", limit)).remaining == 0


@integration
async def test_keys_and_windows_are_independent(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client)
    for _ in range(2):
        assert (await limiter.hit("ws:one:api", Limit(2, 60))).allowed
    assert not (await limiter.hit("ws:one:api", Limit(2, 60))).allowed
    assert (await limiter.hit("ws:two:api", Limit(2, 60))).allowed
    assert (await limiter.hit("ws:one:ai", Limit(2, 60))).allowed
    # A changed window (ops override) is a new counter, not the old one's TTL.
    assert (await limiter.hit("ws:one:api", Limit(2, 30))).allowed


@integration
async def test_limit_change_applies_within_the_window(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client)
    for _ in range(2):
        await limiter.hit("ws:up:api", Limit(2, 60))
    assert not (await limiter.hit("ws:up:api", Limit(2, 60))).allowed
    upgraded = await limiter.hit("ws:up:api", Limit(10, 60))  # plan upgrade mid-window
    assert upgraded.allowed and upgraded.remaining == 7


@integration
async def test_cost_greater_than_one(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client)
    limit = Limit(10, 60)
    assert (await limiter.hit("ws:c:publish", limit, cost=4)).remaining == 6
    assert (await limiter.hit("ws:c:publish", limit, cost=4)).remaining == 2
    too_big = await limiter.hit("ws:c:publish", limit, cost=4)
    assert not too_big.allowed and too_big.remaining == 2  # a refusal spends nothing
    exact = await limiter.hit("ws:c:publish", limit, cost=2)
    assert exact.allowed and exact.remaining == 0
    # A cost above the limit can never pass, and does not create a counter.
    never = await limiter.hit("ws:c2:publish", limit, cost=11)
    assert not never.allowed and never.remaining == 10
    assert await redis_client.exists(f"{PREFIX}:ws:c2:publish:60") == 0
    with pytest.raises(ValueError):
        await limiter.hit("ws:c:publish", limit, cost=0)


@integration
async def test_key_without_ttl_is_repaired(redis_client: aioredis.Redis) -> None:
    await redis_client.set(f"{PREFIX}:ws:stuck:api:60", 999)  # no TTL: must not block forever
    decision = await RateLimiter(redis_client).hit("ws:stuck:api", Limit(5, 60))
    assert decision.allowed and decision.remaining == 4
    assert await redis_client.pttl(f"{PREFIX}:ws:stuck:api:60") > 0


@integration
async def test_decisions_are_counted(redis_client: aioredis.Redis) -> None:
    name = "chorus_gateway_ratelimit_decisions_total"
    allowed0 = sample(name, {"group": "analytics", "outcome": "allowed"})
    refused0 = sample(name, {"group": "analytics", "outcome": "refused"})
    limiter = RateLimiter(redis_client)
    for _ in range(3):
        await limiter.hit("ws:m:analytics", Limit(2, 60), group=RouteGroup.ANALYTICS)
    assert sample(name, {"group": "analytics", "outcome": "allowed"}) == allowed0 + 2
    assert sample(name, {"group": "analytics", "outcome": "refused"}) == refused0 + 1


# --- Redis down ----------------------------------------------------------------------------------


@integration
async def test_fail_open_admits_degraded_and_the_fallback_still_limits(
    dead_redis: aioredis.Redis,
) -> None:
    degraded0 = sample(
        "chorus_gateway_ratelimit_degraded_total", {"limiter": "ratelimit", "mode": "fail_open"}
    )
    limiter = RateLimiter(dead_redis, fail_open=True, timeout=0.5)
    limit = Limit(3, 1)
    start = time.monotonic()
    decisions = [await limiter.hit("ws:down:api", limit) for _ in range(4)]
    assert time.monotonic() - start < 1.0  # the breaker spares later calls the connect attempt
    assert all(d.degraded for d in decisions)
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].retry_after == 1
    assert (
        sample(
            "chorus_gateway_ratelimit_degraded_total",
            {"limiter": "ratelimit", "mode": "fail_open"},
        )
        == degraded0 + 4
    )
    with pytest.raises(RateLimited) as info:
        raise_if_refused(decisions[-1])
    assert info.value.headers["Retry-After"] == "1"

    async def admitted() -> bool:
        return (await limiter.hit("ws:down:api", limit)).allowed

    await poll(admitted, timeout=3)  # the fallback window resets too


@integration
async def test_fail_closed_refuses_with_503(dead_redis: aioredis.Redis) -> None:
    limiter = RateLimiter(dead_redis, fail_open=False, timeout=0.5)
    for _ in range(2):  # first via a failed call, then via the open breaker
        with pytest.raises(ServiceUnavailable) as info:
            await limiter.hit("ws:down:api", Limit(3, 60), group="api")
        assert info.value.status_code == 503
        assert info.value.code == "SERVICE_UNAVAILABLE"
        assert int(info.value.headers["Retry-After"]) >= 1


class _FlakyScript:
    """Stands in for a registered script: hangs, fails or answers as told."""

    def __init__(self) -> None:
        self.mode = "hang"
        self.calls = 0

    async def __call__(self, keys: list[str], args: list[Any]) -> list[int]:
        self.calls += 1
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode == "error":
            raise RedisConnectionError("boom")
        return [1, 1, 60_000]


class _StubRedis:
    def __init__(self) -> None:
        self.script = _FlakyScript()

    def register_script(self, _: str) -> _FlakyScript:
        return self.script


@unit
async def test_slow_redis_times_out_into_the_fallback_and_recovers() -> None:
    stub = _StubRedis()
    limiter = RateLimiter(stub, timeout=0.05, breaker_cooldown=0.2)  # type: ignore[arg-type]
    start = time.monotonic()
    first = await limiter.hit("k", Limit(5, 60))
    assert time.monotonic() - start < 1
    assert first.allowed and first.degraded
    # Breaker open: Redis is not even tried.
    assert (await limiter.hit("k", Limit(5, 60))).degraded
    assert stub.script.calls == 1
    stub.script.mode = "error"
    await asyncio.sleep(0.25)
    assert (await limiter.hit("k", Limit(5, 60))).degraded
    assert stub.script.calls == 2
    # Half-open: after the cooldown one request probes Redis; the others do not queue on it.
    stub.script.mode = "hang"
    await asyncio.sleep(0.25)
    burst = await asyncio.gather(*(limiter.hit("k", Limit(5, 60)) for _ in range(5)))
    assert all(d.degraded for d in burst)
    assert stub.script.calls == 3
    stub.script.mode = "ok"
    await asyncio.sleep(0.25)
    recovered = await limiter.hit("k", Limit(5, 60))
    assert not recovered.degraded and recovered.remaining == 4
    assert stub.script.calls == 4


# --- headers and errors ------------------------------------------------------------------------


@unit
def test_headers_when_allowed() -> None:
    d = Decision(True, 100, 42, 17, None, False, 60)
    assert headers(d) == {
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "42",
        "RateLimit-Reset": "17",
        "RateLimit-Policy": "100;w=60",
    }
    raise_if_refused(d)  # no-op


@unit
def test_headers_and_error_when_refused() -> None:
    d = Decision(False, 50, 0, 9, 9, False, 60)
    assert headers(d)["Retry-After"] == "9"
    assert headers(d)["RateLimit-Remaining"] == "0"
    with pytest.raises(RateLimited) as info:
        raise_if_refused(d)
    err = info.value
    assert err.status_code == 429 and err.code == "RATE_LIMIT_EXCEEDED"
    assert err.details == {"limit": 50, "windowSeconds": 60, "retryAfter": 9}
    assert err.headers == headers(d)


@unit
def test_headers_without_window_omit_the_policy() -> None:
    d = Decision(False, 5, 0, 3, 3, True)
    assert "RateLimit-Policy" not in headers(d)
    assert headers(d)["Retry-After"] == "3"


@unit
@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
        ("not-an-ip", "unknown"),
        ("", "unknown"),
    ],
)
def test_client_ip_key(ip: str, key: str) -> None:
    assert client_ip_key(ip) == key


@unit
def test_subject_key() -> None:
    assert subject_key(RouteGroup.AUTH, workspace_id="w1", ip="1.2.3.4") == "ip:1.2.3.4:auth"
    assert subject_key(RouteGroup.API, workspace_id="w1", ip="1.2.3.4") == "ws:w1:api"
    assert subject_key(RouteGroup.AI, workspace_id=None, ip="1.2.3.4") == "ip:1.2.3.4:ai"


# --- login lockout ---------------------------------------------------------------------------


def _lockouts(scope: str) -> float:
    return sample("chorus_gateway_login_lockouts_total", {"scope": scope})


@integration
async def test_account_locks_after_n_failures(redis_client: aioredis.Redis) -> None:
    guard = LoginGuard(redis_client, max_failures=3, lockout_seconds=60)
    for _ in range(2):
        await guard.check("alice@example.com", "198.51.100.1")
        await guard.record_failure("alice@example.com", "198.51.100.1")
    await guard.check("alice@example.com", "198.51.100.1")
    await guard.record_failure("Alice@Example.com ", "198.51.100.1")  # same account
    with pytest.raises(RateLimited) as info:
        await guard.check("alice@example.com", "198.51.100.1")
    err = info.value
    assert err.status_code == 429 and err.code == "RATE_LIMIT_EXCEEDED"
    assert 55 <= int(err.headers["Retry-After"]) <= 60
    assert err.details == {"retryAfter": int(err.headers["Retry-After"])}
    # The account is locked from any address; the address is not locked for other accounts.
    with pytest.raises(RateLimited):
        await guard.check("alice@example.com", "203.0.113.9")
    await guard.check("bob@example.com", "198.51.100.1")


@integration
async def test_keys_do_not_contain_raw_emails(redis_client: aioredis.Redis) -> None:
    guard = LoginGuard(redis_client, max_failures=3, lockout_seconds=60)
    await guard.record_failure("alice@example.com", "198.51.100.1")
    keys = [k.decode() for k in await redis_client.keys("*")]
    assert len(keys) == 2
    assert not any("alice" in k or "@" in k or "example" in k for k in keys)


@integration
async def test_ip_locks_across_accounts(redis_client: aioredis.Redis) -> None:
    guard = LoginGuard(redis_client, max_failures=2, lockout_seconds=60)
    assert guard.ip_max_failures == 8
    for i in range(8):  # one failure per account: no account reaches its threshold
        await guard.record_failure(f"user{i}@example.com", "192.0.2.50")
    with pytest.raises(RateLimited) as info:
        await guard.check("fresh@example.com", "192.0.2.50")
    assert int(info.value.headers["Retry-After"]) >= 1
    await guard.check("fresh@example.com", "192.0.2.51")


@integration
async def test_success_resets_the_account_but_not_the_ip(redis_client: aioredis.Redis) -> None:
    guard = LoginGuard(redis_client, max_failures=3, lockout_seconds=60, ip_max_failures=5)
    ip = "192.0.2.60"
    for _ in range(2):
        await guard.record_failure("carol@example.com", ip)
    await guard.record_success("carol@example.com", ip)
    for _ in range(2):
        await guard.record_failure("carol@example.com", ip)
    await guard.check("carol@example.com", ip)  # 2 since the success: not locked
    # The IP counter kept all four failures: one more (any account) locks the address.
    await guard.record_failure("mallory@example.com", ip)
    with pytest.raises(RateLimited):
        await guard.check("dave@example.com", ip)


@integration
async def test_lock_expires(redis_client: aioredis.Redis) -> None:
    guard = LoginGuard(redis_client, max_failures=2, lockout_seconds=1)
    for _ in range(2):
        await guard.record_failure("erin@example.com", "192.0.2.70")
    with pytest.raises(RateLimited) as info:
        await guard.check("erin@example.com", "192.0.2.70")
    assert info.value.headers["Retry-After"] == "1"

    async def unlocked() -> bool:
        try:
            await guard.check("erin@example.com", "192.0.2.70")
        except RateLimited:
            return False
        return True

    assert await poll(unlocked, timeout=3) <= 1.5


@integration
async def test_concurrent_failures_lock_exactly_once(redis_client: aioredis.Redis) -> None:
    pool = aioredis.ConnectionPool.from_url(REDIS_URL, max_connections=50)
    client = aioredis.Redis(connection_pool=pool)
    guard = LoginGuard(client, max_failures=5, lockout_seconds=60)
    acct0, ip0 = _lockouts("account"), _lockouts("ip")
    try:
        await asyncio.gather(
            *(guard.record_failure("frank@example.com", "192.0.2.80") for _ in range(30))
        )
        with pytest.raises(RateLimited) as info:
            await guard.check("frank@example.com", "192.0.2.80")
    finally:
        await client.aclose()
    assert _lockouts("account") == acct0 + 1
    assert _lockouts("ip") == ip0 + 1  # 30 >= 4 * 5
    # Failures landing after the lock do not extend it beyond the lockout length.
    assert int(info.value.headers["Retry-After"]) <= 60


@integration
async def test_login_guard_fail_open_uses_the_fallback(dead_redis: aioredis.Redis) -> None:
    guard = LoginGuard(dead_redis, max_failures=2, lockout_seconds=60, timeout=0.5)
    await guard.check("gina@example.com", "192.0.2.90")
    for _ in range(2):
        await guard.record_failure("gina@example.com", "192.0.2.90")
    with pytest.raises(RateLimited) as info:
        await guard.check("gina@example.com", "192.0.2.90")
    assert int(info.value.headers["Retry-After"]) >= 59
    await guard.record_success("gina@example.com", "192.0.2.90")
    await guard.check("gina@example.com", "192.0.2.90")


@integration
async def test_login_guard_fail_closed(dead_redis: aioredis.Redis) -> None:
    guard = LoginGuard(dead_redis, max_failures=2, lockout_seconds=60, fail_open=False)
    with pytest.raises(ServiceUnavailable):
        await guard.check("hank@example.com", "192.0.2.91")
    with pytest.raises(ServiceUnavailable):
        await guard.record_failure("hank@example.com", "192.0.2.91")


@unit
def test_login_guard_rejects_nonsense_config() -> None:
    with pytest.raises(ValueError):
        LoginGuard(_StubRedis(), max_failures=0, lockout_seconds=60)  # type: ignore[arg-type]
