"""Rate-limit governor shared by every replica and command type (Redis).

Budgets are kept per (platform, app) and per (platform, account). Platforms tell us where
we stand through their headers; when a budget is spent (remaining 0, a 429, Retry-After)
the key is blocked until the platform's reset time. A command then waits for budget up to
its deadline instead of failing, and fails transiently (with Retry-After) past it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import redis.asyncio as aioredis

from chorus_connector.platforms.base import RateLimitState

PREFIX = "chorus:governor"


class BudgetExhausted(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate budget exhausted for {retry_after:.0f} s")
        self.retry_after = retry_after


class RateGovernor:
    def __init__(self, redis: aioredis.Redis, *, max_wait_step: float = 5.0) -> None:
        self.redis = redis
        self.max_wait_step = max_wait_step

    @staticmethod
    def keys(platform: str, account_id: str) -> tuple[str, str]:
        return f"{PREFIX}:{platform}:app", f"{PREFIX}:{platform}:account:{account_id}"

    async def blocked_until(self, platform: str, account_id: str) -> float:
        values = await self.redis.mget(self.keys(platform, account_id))
        return max((float(v) for v in values if v is not None), default=0.0)

    async def wait_for_budget(self, platform: str, account_id: str, deadline: datetime) -> None:
        """Return when both budgets are open; raise BudgetExhausted if not before `deadline`."""
        while True:
            until = await self.blocked_until(platform, account_id)
            now = time.time()
            if until <= now:
                return
            if until > deadline.timestamp():
                raise BudgetExhausted(until - now)
            await asyncio.sleep(min(self.max_wait_step, until - now))

    async def observe(
        self, platform: str, account_id: str, state: RateLimitState, *, app_wide: bool = False
    ) -> None:
        """Feed what the platform said; block the budget until it resets."""
        until: float | None = None
        if state.retry_after is not None:
            until = time.time() + state.retry_after
        elif state.remaining is not None and state.remaining <= 0 and state.reset_at:
            until = state.reset_at
        if until is None or until <= time.time():
            return
        app_key, account_key = self.keys(platform, account_id)
        key = app_key if app_wide else account_key
        ttl = max(1, int(until - time.time()) + 1)
        # Keep the later of two block times when replicas report at once.
        current = await self.redis.get(key)
        if current is None or float(current) < until:
            await self.redis.set(key, str(until), ex=ttl)
