"""The gateway's wired dependencies, reachable from handlers through `app.state.gateway`."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request

from chorus_gateway.keys import KeyStore
from chorus_gateway.sessions import Sessions
from chorus_gateway.settings import GatewaySettings
from chorus_runtime.auth.tokens import Principal
from chorus_runtime.db.database import Database
from chorus_runtime.errors import Unauthorized

if TYPE_CHECKING:
    from chorus_gateway.plans import PlanSpec
    from chorus_gateway.proxy import ReverseProxy
    from chorus_gateway.ratelimit import LoginGuard, RateLimiter


@dataclass
class Gateway:
    settings: GatewaySettings
    db: Database
    keys: KeyStore
    sessions: Sessions
    limiter: RateLimiter
    login_guard: LoginGuard
    plans: dict[Any, PlanSpec]
    proxy: ReverseProxy
    plan_cache: dict[str, tuple[Any, float]] = field(default_factory=dict)
    api_key_cache: dict[str, tuple[Any, float]] = field(default_factory=dict)
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Fire-and-forget work (audit writes) that shutdown still waits for."""
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def drain(self) -> None:
        if self.background:
            await asyncio.wait(list(self.background), timeout=10)


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


def client_ip(request: Request) -> str:
    """The address the pipeline resolved (X-Forwarded-For only from trusted proxies)."""
    ip = request.scope.get("state", {}).get("client_ip")
    if ip:
        return str(ip)
    return request.client.host if request.client else "unknown"


async def principal_from_pipeline(request: Request) -> Principal:
    """Replaces the runtime's `current_principal`: the pipeline already authenticated."""
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:
        raise Unauthorized("missing credentials: send a bearer token or an API key")
    return principal  # type: ignore[no-any-return]
