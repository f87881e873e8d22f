"""Run a service in the test process: its real lifespan (broker, relay, consumers) and an
HTTP client bound to its ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from chorus_runtime.auth.jwks import TokenVerifier
from chorus_runtime.service import Role, ServiceRuntime


@dataclass
class RunningService:
    runtime: ServiceRuntime
    app: FastAPI
    client: httpx.AsyncClient


@asynccontextmanager
async def running(
    runtime: ServiceRuntime, role: Role = Role.ALL, *, verifier: TokenVerifier | None = None
) -> AsyncIterator[RunningService]:
    app = runtime.create_app(role)
    if verifier is not None:
        app.state.verifier = verifier
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield RunningService(runtime, app, client)
