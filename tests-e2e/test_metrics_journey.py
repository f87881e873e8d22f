"""Deploy-issue journey 3: the sandbox grows a published post's metrics, the connector's
collector pulls them onto `connector.metrics`, and analytics shows them in the overview, the
post's page and best-time — all read through the gateway."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from e2e_client import connect, create_post, eventually, register
from e2e_stack import read_endpoints

pytestmark = pytest.mark.e2e


async def test_collected_metrics_reach_the_dashboards(stack_state: Path) -> None:
    ep = read_endpoints(stack_state)
    async with (
        httpx.AsyncClient(base_url=ep["GATEWAY_URL"], timeout=15) as gw,
        httpx.AsyncClient(base_url=ep["SANDBOX_URL"], timeout=15) as sandbox,
    ):
        owner = await register(gw, "metrics")
        account = await connect(gw, owner.auth, "x")
        created = await create_post(
            gw,
            owner.auth,
            {
                "content": {"text": "Numbers, please #metrics", "hashtags": ["metrics"]},
                "platforms": [{"platform": "x", "accountId": account["id"]}],
            },
        )
        assert created.status_code == 201, created.text
        post_id = created.json()["post"]["id"]
        published = await gw.post(f"/api/v1/posts/{post_id}/publish", headers=owner.auth)
        assert published.status_code == 202, published.text

        async def post() -> dict:  # type: ignore[type-arg]
            return (await gw.get(f"/api/v1/posts/{post_id}", headers=owner.auth)).json()["post"]  # type: ignore[no-any-return]

        await eventually(post, lambda p: p["status"] == "published", timeout=30)
        # A day passes on the platform: the post gathers impressions and likes.
        aged = await sandbox.post("/_sandbox/metrics/advance", json={"seconds": 86_400})
        assert aged.status_code == 200, aged.text

        async def analytics_post() -> httpx.Response:
            return await gw.get(f"/api/v1/analytics/posts/{post_id}", headers=owner.auth)

        page = await eventually(
            analytics_post,
            lambda r: r.status_code == 200 and r.json()["totals"]["impressions"] > 0,
            timeout=60,
            interval=1,
        )
        totals = page.json()["totals"]
        assert totals["likes"] >= 0 and totals["impressions"] > totals["likes"]
        assert [p["platform"] for p in page.json()["platforms"]] == ["x"]

        overview = (await gw.get("/api/v1/analytics/overview", headers=owner.auth)).json()
        assert overview["metrics"]["impressions"]["current"] >= totals["impressions"]
        assert overview["metrics"]["posts"]["current"] == 1
        assert overview["metrics"]["followers"]["current"] > 0, "account metrics collected too"

        best = (
            await gw.get(
                "/api/v1/analytics/best-time", headers=owner.auth, params={"minSamples": 1}
            )
        ).json()
        assert sum(cell["posts"] for cell in best["grid"]) == 1, best
