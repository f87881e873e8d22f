"""`make up` seeds a demo workspace: the printed login works and the dashboards have data at
once (the stack fixture starts the stack exactly as `make up` does, demo included)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from e2e_client import eventually
from e2e_stack import read_endpoints

from chorus_sandbox.demo import DEMO_EMAIL, DEMO_PASSWORD, DEMO_PLATFORMS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("CHORUS_E2E_TARGET") == "compose",
        reason="the demo is seeded by `make up`, not by compose",
    ),
]


async def test_demo_login_shows_accounts_calendar_and_charts(stack_state: Path) -> None:
    ep = read_endpoints(stack_state)
    async with httpx.AsyncClient(base_url=ep["GATEWAY_URL"], timeout=15) as gw:
        login = await gw.post(
            "/api/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
        )
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['accessToken']}"}

        accounts = (await gw.get("/api/v1/accounts", headers=auth)).json()["accounts"]
        assert sorted(a["platform"] for a in accounts) == sorted(DEMO_PLATFORMS)
        assert {a["status"] for a in accounts} == {"active"}

        statuses = sorted(
            p["status"] for p in (await gw.get("/api/v1/posts", headers=auth)).json()["posts"]
        )
        assert statuses.count("draft") == 1 and statuses.count("scheduled") == 1
        assert len(statuses) == 4

        async def overview() -> dict:  # type: ignore[type-arg]
            return (await gw.get("/api/v1/analytics/overview", headers=auth)).json()  # type: ignore[no-any-return]

        # 14 days × 3 accounts replayed, plus the live ones once they are out.
        data = await eventually(
            overview, lambda d: d["metrics"]["posts"]["current"] >= 42, timeout=60, interval=1
        )
        assert data["metrics"]["impressions"]["current"] > 0
        assert data["metrics"]["followers"]["current"] > 0
        charted = [day for day in data["charts"]["engagement"] if day["impressions"] > 0]
        assert len(charted) >= 10, "two weeks of daily points, not one lump"

        best = (await gw.get("/api/v1/analytics/best-time", headers=auth)).json()
        assert best["grid"], best
