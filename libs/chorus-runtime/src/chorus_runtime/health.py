"""Liveness (`/healthz`) and readiness (`/readyz`) with a timeout per dependency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[Any]]


@dataclass
class HealthChecks:
    timeout_seconds: float = 2.0
    checks: dict[str, Check] = field(default_factory=dict)

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def run(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        async def one(name: str, check: Check) -> tuple[str, dict[str, Any]]:
            started = time.perf_counter()
            try:
                await asyncio.wait_for(check(), self.timeout_seconds)
            except TimeoutError:
                result: dict[str, Any] = {"status": "down", "error": "timeout"}
            except Exception as exc:  # a failing dependency is data here, not a crash
                result = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
            else:
                result = {"status": "up"}
            result["latencyMs"] = round((time.perf_counter() - started) * 1000, 2)
            return name, result

        results = dict(await asyncio.gather(*(one(n, c) for n, c in self.checks.items())))
        ok = all(r["status"] == "up" for r in results.values())
        return ok, results


def health_router(checks: HealthChecks, service: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process is running")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/readyz", summary="Readiness: database, broker and Redis reachable")
    async def readyz() -> JSONResponse:
        ok, results = await checks.run()
        body = {"status": "ready" if ok else "not_ready", "service": service, "checks": results}
        return JSONResponse(body, status_code=200 if ok else 503)

    return router
