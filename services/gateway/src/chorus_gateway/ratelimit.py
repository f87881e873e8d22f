"""Plan rate limits and the login lockout, enforced atomically in Redis (design.md §5).

Algorithm: a fixed window per key, anchored at the key's first admitted hit and carried by
the Redis key TTL. One Lua script reads, checks and increments, so N concurrent callers on
any number of gateway replicas can never admit more than `limit` per window. Refused hits
do not consume budget. Time comes from Redis itself (PTTL), so replica clock skew does not
matter, and each call touches exactly one key (Redis Cluster safe).

When Redis errors or is slow (see docs/adr/0005-rate-limits-when-redis-is-down.md):
fail-open (default) admits through a per-process in-memory limiter with the same limits and
marks decisions `degraded=True`; fail-closed refuses with 503 SERVICE_UNAVAILABLE. A short
circuit breaker keeps a dead Redis from adding latency to every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import MaxConnectionsError, RedisError

from chorus_gateway.plans import Limit, RouteGroup
from chorus_runtime.errors import RateLimited, ServiceUnavailable

__all__ = [
    "LOGIN_LOCKOUTS",
    "RATE_LIMIT_DECISIONS",
    "RATE_LIMIT_DEGRADED",
    "Decision",
    "LoginGuard",
    "RateLimiter",
    "client_ip_key",
    "headers",
    "raise_if_refused",
    "subject_key",
]

log = logging.getLogger("chorus.gateway.ratelimit")

RATE_LIMIT_DECISIONS = Counter(
    "chorus_gateway_ratelimit_decisions_total",
    "Rate-limit decisions by route group and outcome (allowed, refused, unavailable)",
    ["group", "outcome"],
)
RATE_LIMIT_DEGRADED = Counter(
    "chorus_gateway_ratelimit_degraded_total",
    "Decisions taken without Redis, by limiter (ratelimit, login) and mode (fail_open, "
    "fail_closed)",
    ["limiter", "mode"],
)
LOGIN_LOCKOUTS = Counter(
    "chorus_gateway_login_lockouts_total",
    "Login lockouts started, by scope (account, ip)",
    ["scope"],
)

_T = TypeVar("_T")

# Errors that mean "Redis cannot answer now". TimeoutError covers our own deadline too.
_REDIS_DOWN = (RedisError, OSError, TimeoutError)


async def _pooled(op: Callable[[], Awaitable[_T]]) -> _T:
    """Run one Redis command, waiting for a free pooled connection if necessary.

    redis-py's default pool (100 connections) raises MaxConnectionsError instead of waiting.
    That is back-pressure, not an outage: treating it as "Redis down" would trip the breaker
    under any burst wider than the pool. The error is raised before anything is sent, so
    retrying is safe; the caller's deadline bounds the wait.
    """
    while True:
        try:
            return await op()
        except MaxConnectionsError:
            await asyncio.sleep(0.002)


# KEYS[1] counter; ARGV limit, window_ms, cost. Returns {allowed, used, ttl_ms}.
# A key without a TTL (PTTL -1, should never exist) is treated as a fresh window so that a
# stray PERSIST cannot block a tenant forever.
_HIT_LUA = """
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  local used = tonumber(redis.call('GET', KEYS[1])) or 0
  if used + cost > limit then
    return {0, used, ttl}
  end
  return {1, redis.call('INCRBY', KEYS[1], cost), ttl}
end
if cost > limit then
  return {0, 0, window_ms}
end
redis.call('SET', KEYS[1], cost, 'PX', window_ms)
return {1, cost, window_ms}
"""

# KEYS[1] failure counter; ARGV threshold, window_ms, lockout_ms. Returns {count, ttl_ms}.
# The counter is the lock: reaching the threshold re-arms its TTL to the lockout length,
# and `check` refuses while count >= threshold. Failures landing after the lock (requests
# already in flight) do not extend it.
_FAIL_LUA = """
local threshold = tonumber(ARGV[1])
local n = redis.call('INCR', KEYS[1])
if n == threshold then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
elseif n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], n > threshold and ARGV[3] or ARGV[2])
end
return {n, redis.call('PTTL', KEYS[1])}
"""

# KEYS[1] failure counter. Returns {count, ttl_ms}; count 0 when absent.
_PEEK_LUA = """
local n = tonumber(redis.call('GET', KEYS[1])) or 0
return {n, redis.call('PTTL', KEYS[1])}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int | None
    degraded: bool
    window_seconds: int = 0  # 0 = unknown; used for details and RateLimit-Policy


def _ceil_seconds(ms: float) -> int:
    return max(1, math.ceil(ms / 1000))


def headers(decision: Decision) -> dict[str, str]:
    """`RateLimit-*` headers for every response (+ `Retry-After` on a refusal)."""
    out = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(max(0, decision.remaining)),
        "RateLimit-Reset": str(decision.reset_seconds),
    }
    if decision.window_seconds:
        out["RateLimit-Policy"] = f"{decision.limit};w={decision.window_seconds}"
    if not decision.allowed:
        out["Retry-After"] = str(decision.retry_after or decision.reset_seconds or 1)
    return out


def raise_if_refused(decision: Decision) -> None:
    if decision.allowed:
        return
    retry_after = decision.retry_after or decision.reset_seconds or 1
    raise RateLimited(
        f"rate limit exceeded; retry in {retry_after} s",
        details={
            "limit": decision.limit,
            "windowSeconds": decision.window_seconds,
            "retryAfter": retry_after,
        },
        headers=headers(decision),
    )


def client_ip_key(ip: str) -> str:
    """Normalised client address for keys. IPv6 is bucketed per /64, because one client
    usually owns a whole /64 and could otherwise rotate addresses to dodge the limit."""
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return "unknown"  # all unparseable peers share one (strict) bucket
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False).network_address) + "/64"
    return str(addr)


def subject_key(group: RouteGroup, *, workspace_id: str | None, ip: str) -> str:
    """The limiter key for one request: per IP for `auth` (and anonymous traffic), per
    workspace otherwise. The group is part of the key: each group has its own budget."""
    if group is RouteGroup.AUTH or not workspace_id:
        return f"ip:{client_ip_key(ip)}:{group}"
    return f"ws:{workspace_id}:{group}"


# --- Redis health and the in-memory fallback ---------------------------------------------


class _Breaker:
    """Guards every Redis call with a deadline and a circuit breaker.

    After a failure Redis is skipped for `cooldown` seconds; then exactly one request probes
    it (half-open) while the others keep using the fallback, so an outage costs at most one
    request per cooldown the deadline's worth of latency.
    """

    def __init__(self, name: str, timeout: float, cooldown: float) -> None:
        self.name = name
        # A deadline of our own: the client's socket timeout and retry policy could
        # otherwise hold a request for seconds while Redis is unreachable.
        self.timeout = timeout
        self.cooldown = cooldown
        self._open_until = 0.0  # 0 = closed (healthy)
        self._probing = False

    def remaining(self) -> float:
        return max(0.0, self._open_until - time.monotonic())

    async def call(self, op: Callable[[], Awaitable[_T]]) -> _T | None:
        """`op()`'s result, or None when Redis is (known to be) unavailable."""
        probe = False
        if self._open_until:
            if self._probing or time.monotonic() < self._open_until:
                return None
            self._probing = probe = True
        try:
            async with asyncio.timeout(self.timeout):
                result = await op()
        except _REDIS_DOWN as exc:
            if not self._open_until:
                # Log transitions, not every request, so an outage does not flood the logs.
                detail = str(exc) or f"no answer within {self.timeout} s"
                log.warning("%s: Redis unavailable (%s: %s)", self.name, type(exc).__name__, detail)
            self._open_until = time.monotonic() + self.cooldown
            return None
        finally:
            if probe:  # also on cancellation, or no request would ever probe again
                self._probing = False
        if self._open_until:
            log.info("%s: Redis available again", self.name)
            self._open_until = 0.0
        return result


class _LocalWindows:
    """Per-process fixed windows with the same semantics as the Lua scripts. Single-threaded
    asyncio and no awaits inside, so every method is atomic within the process."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._max_keys = max_keys
        self._entries: dict[str, tuple[float, int]] = {}  # key -> (expires_at, count)

    def _live(self, key: str, now: float) -> tuple[float, int] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] <= now:
            del self._entries[key]
            return None
        return entry

    def _store(self, key: str, expires_at: float, count: int, now: float) -> None:
        if key not in self._entries and len(self._entries) >= self._max_keys:
            for k in [k for k, (exp, _) in self._entries.items() if exp <= now]:
                del self._entries[k]
            if len(self._entries) >= self._max_keys:  # still full: drop the oldest entry
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (expires_at, count)

    def hit(self, key: str, limit: int, window: float, cost: int) -> tuple[bool, int, float]:
        now = time.monotonic()
        entry = self._live(key, now)
        if entry is None:
            if cost > limit:
                return False, 0, window
            self._store(key, now + window, cost, now)
            return True, cost, window
        expires_at, used = entry
        if used + cost > limit:
            return False, used, expires_at - now
        self._entries[key] = (expires_at, used + cost)
        return True, used + cost, expires_at - now

    def fail(self, key: str, threshold: int, window: float, lockout: float) -> tuple[int, float]:
        now = time.monotonic()
        entry = self._live(key, now)
        n = 1 if entry is None else entry[1] + 1
        if n == threshold:
            expires_at = now + lockout
        elif entry is None:
            expires_at = now + window
        else:
            expires_at = entry[0]
        self._store(key, expires_at, n, now)
        return n, expires_at - now

    def peek(self, key: str) -> tuple[int, float]:
        now = time.monotonic()
        entry = self._live(key, now)
        return (0, 0.0) if entry is None else (entry[1], entry[0] - now)

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)


# --- rate limiter --------------------------------------------------------------------------


class RateLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        fail_open: bool = True,
        prefix: str = "chorus:rl",
        timeout: float = 0.5,
        breaker_cooldown: float = 1.0,
    ) -> None:
        self.redis = redis
        self.fail_open = fail_open
        self.prefix = prefix
        self._script = redis.register_script(_HIT_LUA)
        self._breaker = _Breaker("ratelimit", timeout, breaker_cooldown)
        self._local = _LocalWindows()

    def _key(self, key: str, limit: Limit) -> str:
        # The window is part of the key so that changing a plan's window starts a new counter
        # instead of inheriting a TTL of the old length. The limit is not: an upgrade takes
        # effect within the current window.
        return f"{self.prefix}:{key}:{limit.window_seconds}"

    async def hit(
        self, key: str, limit: Limit, *, cost: int = 1, group: str = "unknown"
    ) -> Decision:
        """Spend `cost` from `key`'s budget under `limit`. Never over-admits.

        A cost above `limit.requests` can never be admitted. Raises `ServiceUnavailable`
        (503) only in fail-closed mode when Redis cannot answer.
        """
        if cost < 1:
            raise ValueError("cost must be >= 1")
        rkey = self._key(key, limit)
        window_ms = limit.window_seconds * 1000
        result = await self._breaker.call(
            lambda: _pooled(
                lambda: self._script(keys=[rkey], args=[limit.requests, window_ms, cost])
            )
        )
        degraded = result is None
        if result is not None:
            allowed, used, ttl_ms = (int(v) for v in result)
        else:
            if not self.fail_open:
                RATE_LIMIT_DEGRADED.labels("ratelimit", "fail_closed").inc()
                RATE_LIMIT_DECISIONS.labels(group, "unavailable").inc()
                raise ServiceUnavailable(
                    "rate limiter unavailable; try again shortly",
                    headers={"Retry-After": str(_ceil_seconds(self._breaker.remaining() * 1000))},
                )
            RATE_LIMIT_DEGRADED.labels("ratelimit", "fail_open").inc()
            ok, used, ttl = self._local.hit(rkey, limit.requests, limit.window_seconds, cost)
            allowed, ttl_ms = int(ok), math.ceil(ttl * 1000)

        reset = _ceil_seconds(ttl_ms)
        decision = Decision(
            allowed=bool(allowed),
            limit=limit.requests,
            remaining=max(0, limit.requests - used),
            reset_seconds=reset,
            retry_after=None if allowed else reset,
            degraded=degraded,
            window_seconds=limit.window_seconds,
        )
        RATE_LIMIT_DECISIONS.labels(group, "allowed" if allowed else "refused").inc()
        return decision


# --- login lockout -------------------------------------------------------------------------


class LoginGuard:
    """Locks login attempts after repeated failures, per account and per client IP.

    Account threshold `max_failures`; IP threshold `ip_max_failures` (default 4x, as one IP
    may be an office NAT). Failures count within `failure_window_seconds` (default: the
    lockout length) from the first one; the threshold-reaching failure locks for
    `lockout_seconds`. A success clears the account counter only — never the IP counter, or
    an attacker could reset it by logging into an account of their own between guesses.

    Limitation: `check` does not reserve an attempt, so attempts already in flight when the
    lock lands are still verified; the per-IP `auth` route limit bounds that burst.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        max_failures: int,
        lockout_seconds: int,
        *,
        ip_max_failures: int | None = None,
        failure_window_seconds: int | None = None,
        fail_open: bool = True,
        prefix: str = "chorus:login",
        timeout: float = 0.5,
        breaker_cooldown: float = 1.0,
    ) -> None:
        if max_failures < 1 or lockout_seconds < 1:
            raise ValueError("max_failures and lockout_seconds must be >= 1")
        self.redis = redis
        self.max_failures = max_failures
        self.ip_max_failures = ip_max_failures or 4 * max_failures
        self.lockout_seconds = lockout_seconds
        self.failure_window_seconds = failure_window_seconds or lockout_seconds
        self.fail_open = fail_open
        self.prefix = prefix
        self._fail = redis.register_script(_FAIL_LUA)
        self._peek = redis.register_script(_PEEK_LUA)
        self._breaker = _Breaker("login", timeout, breaker_cooldown)
        self._local = _LocalWindows()

    def _keys(self, email: str, ip: str) -> tuple[tuple[str, int], tuple[str, int]]:
        # Key names never carry the raw address (keys show up in MONITOR, SCAN, dumps).
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        return (
            (f"{self.prefix}:acct:{digest}", self.max_failures),
            (f"{self.prefix}:ip:{client_ip_key(ip)}", self.ip_max_failures),
        )

    def _unavailable(self) -> None:
        RATE_LIMIT_DEGRADED.labels("login", "fail_open" if self.fail_open else "fail_closed").inc()
        if not self.fail_open:
            raise ServiceUnavailable(
                "login temporarily unavailable; try again shortly",
                headers={"Retry-After": str(_ceil_seconds(self._breaker.remaining() * 1000))},
            )

    async def check(self, email: str, ip: str) -> None:
        """Raise 429 RATE_LIMIT_EXCEEDED with Retry-After while the account or IP is locked."""
        keys = self._keys(email, ip)

        async def peek() -> list[Sequence[Any]]:
            return [await _pooled(lambda k=k: self._peek(keys=[k])) for k, _ in keys]

        results = await self._breaker.call(peek)
        if results is None:
            self._unavailable()
            results = [(n, ttl * 1000) for n, ttl in (self._local.peek(k) for k, _ in keys)]
        locked_ms = [
            int(ttl)
            for (n, ttl), (_, threshold) in zip(results, keys, strict=True)
            if int(n) >= threshold
        ]
        if locked_ms:
            retry_after = _ceil_seconds(max(locked_ms))
            raise RateLimited(
                "too many failed login attempts; try again later",
                details={"retryAfter": retry_after},
                headers={"Retry-After": str(retry_after)},
            )

    async def record_failure(self, email: str, ip: str) -> None:
        keys = self._keys(email, ip)
        window_ms = self.failure_window_seconds * 1000
        lockout_ms = self.lockout_seconds * 1000

        async def fail() -> list[Sequence[Any]]:
            # Two single-key scripts rather than one two-key script: the account and IP keys
            # may live in different Cluster slots, and each counter only needs to be atomic
            # on its own.
            return [
                await _pooled(
                    lambda k=k, t=t: self._fail(keys=[k], args=[t, window_ms, lockout_ms])
                )
                for k, t in keys
            ]

        results = await self._breaker.call(fail)
        if results is None:
            self._unavailable()
            results = [
                self._local.fail(k, t, self.failure_window_seconds, self.lockout_seconds)
                for k, t in keys
            ]
        for scope, (n, _), (_, threshold) in zip(("account", "ip"), results, keys, strict=True):
            if int(n) == threshold:
                LOGIN_LOCKOUTS.labels(scope).inc()
                log.info("login lockout started (scope=%s)", scope)

    async def record_success(self, email: str, ip: str) -> None:
        (acct_key, _), _ = self._keys(email, ip)

        async def clear() -> list[Sequence[Any]]:
            await _pooled(lambda: self.redis.delete(acct_key))
            return []

        if await self._breaker.call(clear) is None:
            self._unavailable()
            self._local.delete(acct_key)
