"""Liveness and readiness (design.md §7): a failing or hanging dependency is reported, per
check, with a 503, and never hangs the probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from chorus_runtime.health import HealthChecks, health_router

pytestmark = pytest.mark.unit


async def ok() -> None:
    return None


async def broken() -> None:
    raise ConnectionRefusedError("connection refused by 127.0.0.1:5432")


async def hangs() -> None:
    await asyncio.sleep(30)


async def verbose() -> None:
    raise RuntimeError("x" * 2000)


def client_for(checks: HealthChecks) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(health_router(checks, "healthtest"))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    checks = HealthChecks(timeout_seconds=0.1)
    async with client_for(checks) as c:
        c.checks = checks  # type: ignore[attr-defined]
        yield c


async def test_healthz_is_200_even_when_dependencies_are_down(client: httpx.AsyncClient) -> None:
    client.checks.add("database", broken)  # type: ignore[attr-defined]
    resp = await client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "service": "healthtest"}


async def test_readyz_is_200_when_every_check_passes(client: httpx.AsyncClient) -> None:
    client.checks.add("database", ok)  # type: ignore[attr-defined]
    client.checks.add("broker", ok)  # type: ignore[attr-defined]
    resp = await client.get("/readyz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ready"
    assert body["service"] == "healthtest"
    assert set(body["checks"]) == {"database", "broker"}
    for check in body["checks"].values():
        assert check["status"] == "up"
        assert "error" not in check
        assert check["latencyMs"] >= 0


async def test_readyz_with_no_checks_is_ready(client: httpx.AsyncClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["checks"] == {}


async def test_readyz_is_503_naming_the_check_that_raised(client: httpx.AsyncClient) -> None:
    client.checks.add("database", broken)  # type: ignore[attr-defined]
    client.checks.add("broker", ok)  # type: ignore[attr-defined]
    resp = await client.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["broker"]["status"] == "up"
    db = body["checks"]["database"]
    assert db["status"] == "down"
    assert db["error"] == "ConnectionRefusedError: connection refused by 127.0.0.1:5432"


async def test_readyz_reports_a_hanging_check_as_timeout(client: httpx.AsyncClient) -> None:
    client.checks.add("redis", hangs)  # type: ignore[attr-defined]
    client.checks.add("database", ok)  # type: ignore[attr-defined]
    started = time.perf_counter()
    resp = await client.get("/readyz")
    elapsed = time.perf_counter() - started
    assert resp.status_code == 503
    checks = resp.json()["checks"]
    assert checks["redis"]["status"] == "down"
    assert checks["redis"]["error"] == "timeout"
    assert checks["redis"]["latencyMs"] >= 90
    assert checks["database"]["status"] == "up"
    assert elapsed < 2, "the probe is bounded by the timeout, not by the dependency"


async def test_checks_run_concurrently() -> None:
    async def slow() -> None:
        await asyncio.sleep(0.2)

    checks = HealthChecks(timeout_seconds=1)
    for name in ("a", "b", "c", "d", "e"):
        checks.add(name, slow)
    started = time.perf_counter()
    ready, results = await checks.run()
    assert ready
    assert len(results) == 5
    assert time.perf_counter() - started < 0.8, "five 0.2 s checks take ~0.2 s, not 1 s"


async def test_long_errors_are_truncated() -> None:
    checks = HealthChecks(timeout_seconds=1)
    checks.add("x", verbose)
    ready, results = await checks.run()
    assert not ready
    assert results["x"]["error"].startswith("RuntimeError: xxx")
    assert len(results["x"]["error"]) == 300
