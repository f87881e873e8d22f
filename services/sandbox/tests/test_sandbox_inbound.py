"""The sandbox's `/_sandbox/inbound` (signed webhooks), `/_sandbox/metrics/advance` and X's
recent search, through the sandbox app in process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from chorus_sandbox.main import build
from chorus_sandbox.settings import SandboxSettings
from chorus_sandbox.store import Store

pytestmark = pytest.mark.integration

SECRET = "shared-app-secret"
HOOKS = "http://connector.test/webhooks"


@dataclass
class Running:
    http: httpx.AsyncClient
    store: Store
    delivered: list[httpx.Request] = field(default_factory=list)

    async def inbound(self, **body: Any) -> httpx.Response:
        return await self.http.post("/_sandbox/inbound", json=body)


@pytest.fixture
async def sandbox() -> AsyncIterator[Running]:
    app = build(SandboxSettings(webhook_url=HOOKS, app_secret=SECRET)).create_app()
    delivered: list[httpx.Request] = []

    def connector(request: httpx.Request) -> httpx.Response:
        delivered.append(request)
        return httpx.Response(200, json={"emitted": 1})

    async with app.router.lifespan_context(app):
        sender = app.state.webhooks
        await sender.http.aclose()
        sender.http = httpx.AsyncClient(transport=httpx.MockTransport(connector))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
            yield Running(http, app.state.sandbox[0], delivered)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_facebook_comments_are_delivered_signed_in_metas_shape(sandbox: Running) -> None:
    r = await sandbox.inbound(platform="facebook", accountId="page-9", kind="comment", count=2)
    assert r.status_code == 201, r.text
    made = r.json()["events"]
    assert [e["accountId"] for e in made] == ["page-9", "page-9"]
    assert r.json()["deliveries"] == [{"url": f"{HOOKS}/facebook", "status": 200}]

    [request] = sandbox.delivered
    raw = request.content
    expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert request.headers["x-hub-signature-256"] == expected
    body = json.loads(raw)
    assert body["object"] == "page" and body["entry"][0]["id"] == "page-9"
    changes = body["entry"][0]["changes"]
    assert [c["field"] for c in changes] == ["feed", "feed"]
    assert [c["value"]["message"] for c in changes] == [e["text"] for e in made]
    assert all(c["value"]["item"] == "comment" and c["value"]["verb"] == "add" for c in changes)


async def test_x_activity_is_signed_with_base64_and_names_the_user(sandbox: Running) -> None:
    r = await sandbox.inbound(platform="x", accountId="42", kind="message", text="Where is it?")
    assert r.status_code == 201
    [request] = sandbox.delivered
    raw = request.content
    mac = hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()
    assert request.headers["x-twitter-webhooks-signature"] == (
        "sha256=" + base64.b64encode(mac).decode()
    )
    body = json.loads(raw)
    assert body["for_user_id"] == "42"
    [dm] = body["direct_message_events"]
    assert dm["message_create"]["message_data"]["text"] == "Where is it?"
    assert dm["message_create"]["sender_id"] in body["users"]


async def test_threads_delivers_one_change_per_item(sandbox: Running) -> None:
    r = await sandbox.inbound(platform="threads", accountId="th", kind="mention", count=3)
    assert r.status_code == 201 and len(r.json()["deliveries"]) == 3
    fields = [json.loads(q.content)["values"]["field"] for q in sandbox.delivered]
    assert fields == ["mentions"] * 3


async def test_the_latest_authorized_account_is_the_default(sandbox: Running) -> None:
    assert_error(await sandbox.inbound(platform="instagram", kind="comment"), 404, "NOT_FOUND")
    sandbox.store.account("instagram", "first")
    sandbox.store.clock.advance(1)
    sandbox.store.account("instagram", "second")
    r = await sandbox.inbound(platform="instagram", kind="comment")
    assert r.json()["events"][0]["accountId"] == "second"


@pytest.mark.parametrize(
    "body",
    [
        {"platform": "linkedin", "kind": "comment"},
        {"platform": "x", "kind": "like"},
        {"platform": "x", "kind": "comment", "count": 0},
        {"platform": "x", "kind": "comment", "count": 101},
        {"platform": "x", "kind": "comment", "text": ""},
        {"platform": "x", "kind": "comment", "surprise": True},
        {"kind": "comment"},
    ],
)
async def test_bad_inbound_requests_are_422(sandbox: Running, body: dict[str, Any]) -> None:
    assert_error(await sandbox.http.post("/_sandbox/inbound", json=body), 422, "VALIDATION_ERROR")
    assert sandbox.delivered == []


async def test_same_seed_makes_up_the_same_people_and_words() -> None:
    async def made() -> list[tuple[str, str]]:
        app = build(SandboxSettings(seed=7)).create_app()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
            r = await http.post(
                "/_sandbox/inbound",
                json={"platform": "x", "accountId": "42", "kind": "mention", "count": 5},
            )
        assert r.json()["deliveries"] == []  # no webhook URL: nothing is sent
        return [(e["authorUsername"], e["text"]) for e in r.json()["events"]]

    assert await made() == await made()


async def test_advancing_the_clock_grows_metrics(sandbox: Running) -> None:
    for bad in ({"seconds": 0}, {"seconds": -5}, {}, {"seconds": "soon"}):
        r = await sandbox.http.post("/_sandbox/metrics/advance", json=bad)
        assert_error(r, 422, "VALIDATION_ERROR")
    token = sandbox.store.issue_token("x", "42", ["tweet.write"], 3600)
    headers = {"Authorization": f"Bearer {token.access_token}"}
    created = await sandbox.http.post("/x/2/tweets", json={"text": "hello"}, headers=headers)
    assert created.status_code == 201, created.text
    before = (await sandbox.http.get("/_sandbox/posts")).json()["posts"][0]["metrics"]

    r = await sandbox.http.post("/_sandbox/metrics/advance", json={"seconds": 3600})
    assert r.status_code == 200 and r.json()["offsetSeconds"] == 3600
    r = await sandbox.http.post("/_sandbox/metrics/advance", json={"seconds": 1800})
    assert r.json()["offsetSeconds"] == 5400

    after = (await sandbox.http.get("/_sandbox/posts")).json()["posts"][0]["metrics"]
    assert after["impressions"] > before["impressions"]
    assert all(after[k] >= before[k] for k in before)
    await sandbox.http.post("/_sandbox/reset")
    assert sandbox.store.clock.offset == 0


async def test_x_recent_search_finds_mentions(sandbox: Running) -> None:
    sandbox.store.account("x", "42")
    token = sandbox.store.issue_token("x", "42", ["tweet.read"], 3600)
    headers = {"Authorization": f"Bearer {token.access_token}"}
    await sandbox.inbound(platform="x", accountId="42", kind="mention", text="Loving the new app")
    await sandbox.inbound(platform="x", accountId="42", kind="message", text="Loving it in DMs")
    await sandbox.inbound(platform="x", accountId="42", kind="comment", text="Not a fan")

    r = await sandbox.http.get(
        "/x/2/tweets/search/recent",
        params={"query": '"new app" -is:retweet lang:en'},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    [tweet] = r.json()["data"]
    assert "Loving the new app" in tweet["text"] and "@x_user_42" in tweet["text"]
    [user] = r.json()["includes"]["users"]
    assert user["id"] == tweet["author_id"]
    assert r.json()["meta"]["result_count"] == 1

    none = await sandbox.http.get(
        "/x/2/tweets/search/recent", params={"query": "DMs"}, headers=headers
    )
    assert none.json() == {"meta": {"result_count": 0}}  # messages are private
    missing = await sandbox.http.get("/x/2/tweets/search/recent", headers=headers)
    assert missing.status_code == 400
    anonymous = await sandbox.http.get("/x/2/tweets/search/recent", params={"query": "app"})
    assert anonymous.status_code == 401
