"""Issue journey: connect X, LinkedIn and Instagram through the sandbox's OAuth, schedule a
post with an image a few seconds ahead, and see it out exactly once per target, within 2 s of
its time — also when the platforms fail. Then the calendar lists it and the analytics
overview counts it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from e2e_client import connect, eventually, register, upload_image, wait_postable
from e2e_stack import read_endpoints

pytestmark = pytest.mark.e2e
PLATFORMS = ("x", "linkedin", "instagram")  # Instagram only takes posts with media


async def wait_final(
    gw: httpx.AsyncClient,
    auth: dict[str, str],
    post_id: str,
    timeout: float,
    interval: float = 0.25,
) -> dict:  # type: ignore[type-arg]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await gw.get(f"/api/v1/posts/{post_id}", headers=auth)
        if resp.status_code == 429:  # the free plan's API budget: wait as told
            await asyncio.sleep(float(resp.headers["Retry-After"]))
            continue
        post = resp.json()["post"]
        if post["status"] in ("published", "partially_published", "failed"):
            return post  # type: ignore[no-any-return]
        assert asyncio.get_running_loop().time() < deadline, post["targets"]
        await asyncio.sleep(interval)


async def schedule(
    gw: httpx.AsyncClient,
    auth: dict[str, str],
    accounts: dict[str, dict],  # type: ignore[type-arg]
    text: str,
    seconds: float,
) -> tuple[str, datetime]:
    await wait_postable(gw, auth, [a["id"] for a in accounts.values()])
    image = await upload_image(gw, auth)
    at = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    resp = await gw.post(
        "/api/v1/posts",
        headers=auth,
        json={
            "content": {"text": text, "media": [image]},
            "platforms": [{"platform": p, "accountId": a["id"]} for p, a in accounts.items()],
            "scheduledAt": at.isoformat().replace("+00:00", "Z"),
            "campaign": "journey",
        },
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["post"]["status"] == "scheduled"
    return resp.json()["post"]["id"], at


def published_at(target: dict) -> datetime:  # type: ignore[type-arg]
    return datetime.fromisoformat(target["publishedAt"].replace("Z", "+00:00"))


async def sandbox_posts(sandbox: str, platform: str, text: str) -> list[dict]:  # type: ignore[type-arg]
    async with httpx.AsyncClient(base_url=sandbox, timeout=10) as client:
        posts = (await client.get("/_sandbox/posts", params={"platform": platform})).json()
    return [p for p in posts["posts"] if text in (p.get("text") or "")]


async def test_scheduled_post_goes_out_once_per_target_on_time(stack_state: Path) -> None:
    ep = read_endpoints(stack_state)
    async with httpx.AsyncClient(base_url=ep["GATEWAY_URL"], timeout=15) as gw:
        owner = await register(gw, "publisher")
        auth = owner.auth
        accounts = {p: await connect(gw, auth, p) for p in PLATFORMS}
        listed = (await gw.get("/api/v1/accounts", headers=auth)).json()["accounts"]
        assert {a["platform"] for a in listed} == set(PLATFORMS)
        text = f"On time {uuid.uuid4().hex[:6]}"
        post_id, at = await schedule(gw, auth, accounts, text, seconds=3)
        post = await wait_final(gw, auth, post_id, timeout=30)
        assert post["status"] == "published", post
        for target in post["targets"]:
            assert target["status"] == "published"
            assert target["platformPostId"]
            assert target["attempts"] == 1
            late = (published_at(target) - at).total_seconds()
            assert 0 <= late <= 2.0, f"{target['platform']} out {late:.2f} s after its time"
        for platform in PLATFORMS:
            assert len(await sandbox_posts(ep["SANDBOX_URL"], platform, text)) == 1

        # The calendar shows it at its time, and the analytics overview counts it.
        window = {
            "startDate": (at - timedelta(hours=1)).isoformat(),
            "endDate": (at + timedelta(hours=1)).isoformat(),
        }
        calendar = await gw.get("/api/v1/posts", headers=auth, params=window)
        assert calendar.status_code == 200, calendar.text
        assert [p["id"] for p in calendar.json()["posts"]] == [post_id]

        async def overview() -> dict:  # type: ignore[type-arg]
            return (await gw.get("/api/v1/analytics/overview", headers=auth)).json()  # type: ignore[no-any-return]

        counted = await eventually(
            overview, lambda o: o["metrics"]["posts"]["current"] >= 1, timeout=30, interval=1
        )
        assert counted["metrics"]["posts"]["current"] == 1
        assert {b["platform"] for b in counted["charts"]["platformBreakdown"]} == set(PLATFORMS)


async def test_faults_still_publish_exactly_once(stack_state: Path) -> None:
    ep = read_endpoints(stack_state)
    async with httpx.AsyncClient(base_url=ep["SANDBOX_URL"], timeout=10) as sandbox:
        for fault in (
            {"platform": "x", "kind": "rate_limit", "count": 2, "operation": "publish"},
            {"platform": "linkedin", "kind": "timeout_after_create", "count": 1},
            {"platform": "instagram", "kind": "token_expired", "count": 1, "operation": "publish"},
        ):
            assert (await sandbox.post("/_sandbox/faults", json=fault)).status_code == 201
    async with httpx.AsyncClient(base_url=ep["GATEWAY_URL"], timeout=15) as gw:
        auth = (await register(gw, "faults")).auth
        accounts = {p: await connect(gw, auth, p) for p in PLATFORMS}
        text = f"Despite faults {uuid.uuid4().hex[:6]}"
        post_id, _ = await schedule(gw, auth, accounts, text, seconds=2)
        post = await wait_final(gw, auth, post_id, timeout=90, interval=1.0)
    assert post["status"] == "published", post
    by_platform = {t["platform"]: t for t in post["targets"]}
    assert by_platform["x"]["attempts"] == 3, by_platform
    assert by_platform["linkedin"]["attempts"] >= 1
    assert by_platform["instagram"]["attempts"] >= 1
    for platform in PLATFORMS:
        assert len(await sandbox_posts(ep["SANDBOX_URL"], platform, text)) == 1, platform
