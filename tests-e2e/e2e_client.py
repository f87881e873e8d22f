"""What a client of the public API does in the journeys: only the gateway's HTTP (and, for
the sandbox's OAuth consent page, a plain browser-like GET)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from chorus_testing.kafka_io import Records
from chorus_testing.media_files import png

PASSWORD = "a long e2e passphrase"


@dataclass
class Tenant:
    workspace_id: str
    user_id: str
    email: str
    auth: dict[str, str]


def _session(body: dict[str, Any], email: str) -> Tenant:
    return Tenant(
        workspace_id=body["workspace"]["id"],
        user_id=body["user"]["id"],
        email=email,
        auth={"Authorization": f"Bearer {body['accessToken']}"},
    )


async def register(gw: httpx.AsyncClient, label: str = "owner") -> Tenant:
    email = f"{label}-{uuid.uuid4().hex[:8]}@example.com"
    resp = await gw.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "name": label.title(), "workspaceName": label},
    )
    assert resp.status_code == 201, resp.text
    return _session(resp.json(), email)


async def set_plan(gw: httpx.AsyncClient, owner: Tenant, plan: str) -> None:
    resp = await gw.put("/api/v1/workspace/plan", headers=owner.auth, json={"plan": plan})
    assert resp.status_code == 200, resp.text


async def invite(gw: httpx.AsyncClient, owner: Tenant, role: str) -> Tenant:
    """Invite a new person with `role` and accept the invitation as them."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    sent = await gw.post(
        "/api/v1/team/invitations", headers=owner.auth, json={"email": email, "role": role}
    )
    assert sent.status_code == 201, sent.text
    accepted = await gw.post(
        f"/api/v1/team/invitations/{sent.json()['token']}/accept",
        json={"name": role.title(), "password": PASSWORD},
    )
    assert accepted.status_code == 200, accepted.text
    member = _session(accepted.json(), email)
    assert member.workspace_id == owner.workspace_id
    return member


async def connect(gw: httpx.AsyncClient, auth: dict[str, str], platform: str) -> dict[str, Any]:
    """Connect a sandbox account through its OAuth flow; returns the account."""
    start = await gw.post(
        f"/api/v1/accounts/connect/{platform}",
        headers=auth,
        json={"redirectUri": "https://app.example.com/oauth/callback"},
    )
    assert start.status_code == 200, start.text
    # The sandbox's authorize page redirects straight back with a code.
    async with httpx.AsyncClient(timeout=10) as browser:
        consent = await browser.get(start.json()["authorizeUrl"])
    assert consent.status_code in (302, 303), consent.text
    query = parse_qs(urlparse(consent.headers["location"]).query)
    assert query["state"] == [start.json()["state"]]
    done = await gw.get(
        f"/api/v1/accounts/callback/{platform}",
        headers=auth,
        params={"code": query["code"][0], "state": query["state"][0]},
    )
    assert done.status_code == 201, done.text
    return done.json()["account"]  # type: ignore[no-any-return]


async def wait_postable(
    gw: httpx.AsyncClient,
    auth: dict[str, str],
    account_ids: Iterable[str],
    timeout: float = 20.0,
) -> None:
    """Publishing learns of a connected account from `connector.accounts`, a moment after
    the connector answered: wait until it lists every account as postable, as a composer
    would before offering them."""
    wanted = set(account_ids)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        resp = await gw.get("/api/v1/publishing/accounts", headers=auth)
        if resp.status_code == 429:  # the free plan's API budget: wait as told
            await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
            continue
        assert resp.status_code == 200, resp.text
        postable = {a["id"] for a in resp.json()["accounts"] if a["postable"]}
        if wanted <= postable:
            return
        assert loop.time() < deadline, f"publishing never saw accounts {wanted - postable}"
        await asyncio.sleep(0.2)


async def upload_image(gw: httpx.AsyncClient, auth: dict[str, str], width: int = 1080) -> str:
    """Upload a square PNG through the gateway; returns the media id."""
    files = {"file": ("square.png", png(width, width), "image/png")}
    resp = await gw.post("/api/v1/media", headers=auth, files=files)
    assert resp.status_code == 201, resp.text
    assert resp.json()["media"]["width"] == width
    return resp.json()["media"]["id"]  # type: ignore[no-any-return]


async def create_post(
    gw: httpx.AsyncClient, auth: dict[str, str], payload: dict[str, Any], timeout: float = 20.0
) -> httpx.Response:
    """POST /posts; while publishing has not yet heard of a just-connected account (it learns
    of it from `connector.accounts`), retry as a client would."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await gw.post("/api/v1/posts", headers=auth, json=payload)
        details = resp.json().get("error", {}).get("details") if resp.status_code == 422 else None
        pending = any(d.get("rule") == "account_not_connected" for d in details or [])
        if not pending or asyncio.get_running_loop().time() > deadline:
            return resp
        await asyncio.sleep(0.25)


async def eventually(
    probe: Any, check: Any, *, timeout: float = 20.0, interval: float = 0.25
) -> Any:
    """Call `await probe()` until `check(result)` holds; returns that result."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await probe()
        if check(result):
            return result
        assert asyncio.get_running_loop().time() < deadline, f"gave up waiting: {result}"
        await asyncio.sleep(interval)


def of_tenant(records: Records, workspace_id: str) -> Records:
    return [r for r in records if dict(r.headers).get("ce_tenantid") == workspace_id.encode()]
