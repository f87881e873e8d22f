"""`/webhooks/{platform}` through the connector's real app and a real Postgres: signatures,
handshakes, mapping to the connected account, dedup of redeliveries, bad input, and the
sandbox's signed webhooks arriving as `connector.inbound` events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from connector_inbound_kit import insert_account, outbox_events
from platform_support import running_sandbox

from chorus_connector.main import build as build_connector
from chorus_connector.settings import ConnectorSettings
from chorus_contracts.catalog import parse_data
from chorus_contracts.envelope import CloudEvent
from chorus_contracts.events.connector import CommentReceived, MentionReceived, MessageReceived
from chorus_runtime.service import ServiceRuntime
from chorus_sandbox.settings import SandboxSettings
from chorus_testing.postgres import ServiceDatabase, scalar

pytestmark = pytest.mark.component

META_SECRET = "meta-app-secret"
X_SECRET = "x-consumer-secret"
VERIFY_TOKEN = "verify-me-7f3a"
INBOUND = "connector.inbound"
CONNECTOR = "http://connector"


@dataclass
class WebhookApp:
    runtime: ServiceRuntime
    http: httpx.AsyncClient
    db: ServiceDatabase

    async def events(self) -> list[CloudEvent]:
        return await outbox_events(self.db.owner_url, INBOUND)

    async def recorded(self) -> int:
        return int(await scalar(self.db.owner_url, "SELECT count(*) FROM inbound_events"))  # type: ignore[arg-type]

    async def account(self, workspace: str, platform: str, platform_account_id: str) -> str:
        return await insert_account(
            self.db.owner_url,
            workspace=workspace,
            platform=platform,
            platform_account_id=platform_account_id,
        )

    async def post(self, platform: str, body: Any, *, secret: str | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post(
            f"/webhooks/{platform}", content=raw, headers=signed(platform, raw, secret)
        )


def meta_header(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def x_header(secret: str, raw: bytes) -> str:
    mac = hmac.new(secret.encode(), raw, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


def signed(platform: str, raw: bytes, secret: str | None = None) -> dict[str, str]:
    if platform == "x":
        return {"x-twitter-webhooks-signature": x_header(secret or X_SECRET, raw)}
    return {"x-hub-signature-256": meta_header(secret or META_SECRET, raw)}


@pytest.fixture
async def webhooks(connector_db: ServiceDatabase, topic_prefix: str) -> AsyncIterator[WebhookApp]:
    settings = ConnectorSettings(
        database_url=connector_db.app_url,
        migrations_database_url=connector_db.owner_url,
        kafka_bootstrap_servers="127.0.0.1:9",  # nothing is relayed: the outbox is the result
        topic_prefix=topic_prefix,
        platform_client_secret=META_SECRET,
        webhook_secrets={"x": X_SECRET},
        webhook_verify_token=VERIFY_TOKEN,
        metrics_enabled=False,
    )
    runtime = build_connector(settings)
    app = runtime.create_app()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=CONNECTOR) as http:
        yield WebhookApp(runtime, http, connector_db)
    assert runtime.db is not None and runtime.redis is not None
    await runtime.db.dispose()
    await runtime.redis.aclose()


def facebook_comment(page: str, comment_id: str = "111_222", text: str = "Nice!") -> dict[str, Any]:
    return {
        "object": "page",
        "entry": [
            {
                "id": page,
                "time": 1741857300,
                "changes": [
                    {
                        "field": "feed",
                        "value": {
                            "from": {"id": "9001", "name": "Tom Becker"},
                            "item": "comment",
                            "verb": "add",
                            "comment_id": comment_id,
                            "post_id": f"{page}_111",
                            "parent_id": f"{page}_111",
                            "message": text,
                            "created_time": 1741857299,
                        },
                    }
                ],
            }
        ],
    }


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["requestId"]


# -- Meta ------------------------------------------------------------------------------------


async def test_signed_facebook_comment_emits_one_event_for_the_connected_account(
    webhooks: WebhookApp,
) -> None:
    workspace = str(uuid.uuid4())
    account = await webhooks.account(workspace, "facebook", "page-1")
    r = await webhooks.post("facebook", facebook_comment("page-1"))

    assert r.status_code == 200, r.text
    assert r.json() == {"received": 1, "emitted": 1, "duplicates": 0, "unmatched": 0}
    [event] = await webhooks.events()
    assert event.type == CommentReceived.event_type
    assert event.tenantid == workspace and event.source == "/chorus/connector"
    data = parse_data(event)
    assert isinstance(data, CommentReceived)
    assert (str(data.workspace_id), str(data.account_id)) == (workspace, account)
    assert data.platform.value == "facebook"
    assert data.platform_event_id == "111_222"
    assert data.platform_post_id == "page-1_111"
    assert data.platform_parent_id is None  # a top-level comment: its parent is the post
    assert (data.author.id, data.author.display_name) == ("9001", "Tom Becker")
    assert data.text == "Nice!"
    assert data.occurred_at.timestamp() == 1741857299


async def test_instagram_message_and_mention(webhooks: WebhookApp) -> None:
    workspace = str(uuid.uuid4())
    account = await webhooks.account(workspace, "instagram", "1784")
    body = {
        "object": "instagram",
        "entry": [
            {
                "id": "1784",
                "time": 1741857300,
                "changes": [{"field": "mentions", "value": {"media_id": "m1", "comment_id": "c1"}}],
                "messaging": [
                    {
                        "sender": {"id": "555"},
                        "recipient": {"id": "1784"},
                        "timestamp": 1741857300123,
                        "message": {"mid": "mid.1", "text": "Do you ship to Canada?"},
                    },
                    {  # the account's own reply comes back as an echo: not inbound
                        "sender": {"id": "1784"},
                        "recipient": {"id": "555"},
                        "timestamp": 1741857301000,
                        "message": {"mid": "mid.2", "text": "Yes!", "is_echo": True},
                    },
                ],
            }
        ],
    }
    r = await webhooks.post("instagram", body)

    assert r.status_code == 200 and r.json()["emitted"] == 2
    by_type = {e.type: parse_data(e) for e in await webhooks.events()}
    mention = by_type[MentionReceived.event_type]
    message = by_type[MessageReceived.event_type]
    assert isinstance(mention, MentionReceived) and isinstance(message, MessageReceived)
    assert str(mention.account_id) == str(message.account_id) == account
    assert (mention.platform_event_id, mention.platform_post_id) == ("c1", "m1")
    assert message.text == "Do you ship to Canada?"
    assert message.platform_conversation_id == "555"
    assert message.occurred_at.timestamp() == pytest.approx(1741857300.123)


async def test_threads_reply(webhooks: WebhookApp) -> None:
    account = await webhooks.account(str(uuid.uuid4()), "threads", "th-1")
    body = {
        "app_id": "1",
        "topic": "moderate",
        "target_id": "th-1",
        "time": 1723226877,
        "values": {
            "field": "replies",
            "value": {
                "id": "r-9",
                "username": "ana_codes",
                "text": "Same here",
                "replied_to": {"id": "p-1"},
                "root_post": {"id": "p-1", "owner_id": "th-1", "username": "brand"},
                "timestamp": "2024-08-09T18:07:57+0000",
            },
        },
    }
    r = await webhooks.post("threads", body)
    assert r.status_code == 200, r.text
    [event] = await webhooks.events()
    data = parse_data(event)
    assert isinstance(data, CommentReceived) and str(data.account_id) == account
    assert (data.platform_event_id, data.platform_post_id, data.text) == ("r-9", "p-1", "Same here")
    assert data.occurred_at.isoformat() == "2024-08-09T18:07:57+00:00"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-hub-signature-256": ""},
        {"x-hub-signature-256": "sha256=" + "0" * 64},
        {"x-hub-signature-256": "sha1=abc"},
    ],
    ids=["missing", "empty", "wrong", "other-algorithm"],
)
async def test_bad_meta_signature_is_401_and_nothing_is_recorded(
    webhooks: WebhookApp, headers: dict[str, str]
) -> None:
    await webhooks.account(str(uuid.uuid4()), "facebook", "page-1")
    r = await webhooks.http.post(
        "/webhooks/facebook", content=json.dumps(facebook_comment("page-1")), headers=headers
    )
    assert_error(r, 401, "UNAUTHORIZED")
    assert await webhooks.events() == [] and await webhooks.recorded() == 0


async def test_signature_with_another_secret_or_over_another_body_is_refused(
    webhooks: WebhookApp,
) -> None:
    await webhooks.account(str(uuid.uuid4()), "facebook", "page-1")
    raw = json.dumps(facebook_comment("page-1")).encode()
    r = await webhooks.post("facebook", raw, secret="not-the-app-secret")
    assert_error(r, 401, "UNAUTHORIZED")
    tampered = raw.replace(b"Nice!", b"Evil!")
    r = await webhooks.http.post(
        "/webhooks/facebook", content=tampered, headers=signed("facebook", raw)
    )
    assert_error(r, 401, "UNAUTHORIZED")
    # X's signature scheme on a Meta platform is no signature at all.
    r = await webhooks.http.post("/webhooks/facebook", content=raw, headers=signed("x", raw))
    assert_error(r, 401, "UNAUTHORIZED")
    assert await webhooks.events() == []


async def test_meta_subscription_handshake(webhooks: WebhookApp) -> None:
    good = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    r = await webhooks.http.get("/webhooks/instagram", params=good)
    assert r.status_code == 200 and r.text == "1158201444"
    assert r.headers["content-type"].startswith("text/plain")

    for bad in (
        {**good, "hub.verify_token": "guess"},
        {**good, "hub.mode": "unsubscribe"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {**good, "hub.challenge": ""},
    ):
        r = await webhooks.http.get("/webhooks/facebook", params=bad)
        assert_error(r, 403, "FORBIDDEN")
        assert "1158201444" not in r.text


# -- X ---------------------------------------------------------------------------------------


async def test_x_crc_response_is_the_hmac_of_the_token(webhooks: WebhookApp) -> None:
    crc = "ZjQ4ZmM5MzAtZjNmNi00NjBiLWE0YmMtODZlNzFjM2NmNmU3"
    r = await webhooks.http.get("/webhooks/x", params={"crc_token": crc})
    assert r.status_code == 200
    expected = base64.b64encode(
        hmac.new(X_SECRET.encode(), crc.encode(), hashlib.sha256).digest()
    ).decode()
    assert r.json() == {"response_token": f"sha256={expected}"}

    assert_error(await webhooks.http.get("/webhooks/x"), 422, "VALIDATION_ERROR")


async def test_x_activity_maps_replies_mentions_and_messages(webhooks: WebhookApp) -> None:
    workspace = str(uuid.uuid4())
    account = await webhooks.account(workspace, "x", "42")
    user = {"id_str": "7", "screen_name": "jdoe", "name": "Jane Doe"}
    body = {
        "for_user_id": "42",
        "tweet_create_events": [
            {
                "id_str": "100",
                "text": "@brand when does it ship?",
                "created_at": "Wed Oct 10 20:19:24 +0000 2018",
                "user": user,
                "in_reply_to_status_id_str": "90",
                "in_reply_to_user_id_str": "42",
                "entities": {"user_mentions": [{"id_str": "42"}]},
            },
            {
                "id_str": "101",
                "text": "Great launch by @brand",
                "timestamp_ms": "1741857300000",
                "user": user,
                "entities": {"user_mentions": [{"id_str": "42"}]},
            },
            {  # the account's own tweet
                "id_str": "102",
                "text": "Thanks @jdoe",
                "user": {"id_str": "42", "screen_name": "brand"},
                "entities": {"user_mentions": [{"id_str": "7"}]},
            },
        ],
        "direct_message_events": [
            {
                "type": "message_create",
                "id": "200",
                "created_timestamp": "1741857301000",
                "message_create": {
                    "target": {"recipient_id": "42"},
                    "sender_id": "7",
                    "message_data": {"text": "Order #4411?"},
                },
            }
        ],
        "users": {"7": {"id": "7", "name": "Jane Doe", "screen_name": "jdoe"}},
    }
    r = await webhooks.post("x", body)
    assert r.status_code == 200 and r.json()["emitted"] == 3, r.text

    events = {parse_data(e).platform_event_id: parse_data(e) for e in await webhooks.events()}  # type: ignore[attr-defined]
    assert set(events) == {"100", "101", "200"}
    reply, mention, dm = events["100"], events["101"], events["200"]
    assert isinstance(reply, CommentReceived) and reply.platform_post_id == "90"
    assert reply.occurred_at.isoformat() == "2018-10-10T20:19:24+00:00"
    assert isinstance(mention, MentionReceived)
    assert mention.url == "https://x.com/jdoe/status/101"
    assert isinstance(dm, MessageReceived) and dm.platform_conversation_id == "42-7"
    assert dm.author.username == "jdoe" and dm.text == "Order #4411?"
    assert {str(e.account_id) for e in events.values()} == {account}

    # Meta's header (or a signature with the Meta secret) is no X signature.
    raw = json.dumps(body).encode()
    r = await webhooks.http.post("/webhooks/x", content=raw, headers=signed("facebook", raw))
    assert_error(r, 401, "UNAUTHORIZED")
    r = await webhooks.post("x", raw, secret=META_SECRET)
    assert_error(r, 401, "UNAUTHORIZED")


# -- delivery semantics ----------------------------------------------------------------------


async def test_redelivery_emits_once(webhooks: WebhookApp) -> None:
    await webhooks.account(str(uuid.uuid4()), "facebook", "page-1")
    body = facebook_comment("page-1")
    first = await webhooks.post("facebook", body)
    again = await webhooks.post("facebook", body)
    assert first.json()["emitted"] == 1
    assert again.status_code == 200
    assert again.json() == {"received": 1, "emitted": 0, "duplicates": 1, "unmatched": 0}
    assert len(await webhooks.events()) == 1 and await webhooks.recorded() == 1
    # A new comment on the same post is new.
    await webhooks.post("facebook", facebook_comment("page-1", comment_id="111_333"))
    assert len(await webhooks.events()) == 2


async def test_unknown_account_is_accepted_and_ignored(webhooks: WebhookApp) -> None:
    # Connected on another platform with the same id: still unknown for facebook.
    await webhooks.account(str(uuid.uuid4()), "instagram", "page-1")
    r = await webhooks.post("facebook", facebook_comment("page-1"))
    assert r.status_code == 202
    assert r.json() == {"received": 1, "emitted": 0, "duplicates": 0, "unmatched": 1}
    assert await webhooks.events() == [] and await webhooks.recorded() == 0


async def test_each_workspace_that_connected_the_account_gets_its_own_event(
    webhooks: WebhookApp,
) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    account_a = await webhooks.account(a, "facebook", "page-1")
    account_b = await webhooks.account(b, "facebook", "page-1")
    other = await webhooks.account(a, "facebook", "page-2")
    r = await webhooks.post("facebook", facebook_comment("page-1"))
    assert r.json()["emitted"] == 2
    seen = {
        (e.tenantid, e.data["workspaceId"], e.data["accountId"]) for e in await webhooks.events()
    }
    assert seen == {(a, a, account_a), (b, b, account_b)}
    assert other not in {s[2] for s in seen}


@pytest.mark.parametrize(
    ("platform", "raw", "status", "code"),
    [
        ("facebook", b'{"object": "page", "entry": [', 400, "INVALID_JSON"),
        ("facebook", b"\xff\xfe", 400, "INVALID_JSON"),
        ("facebook", b"[1, 2]", 422, "VALIDATION_ERROR"),
        ("facebook", b'{"object": "page"}', 422, "VALIDATION_ERROR"),
        ("instagram", b'{"object": "instagram", "entry": [{"time": 1}]}', 422, "VALIDATION_ERROR"),
        ("threads", b'{"values": {}}', 422, "VALIDATION_ERROR"),
        ("x", b'{"tweet_create_events": []}', 422, "VALIDATION_ERROR"),
        ("x", b'{"for_user_id": "42", "tweet_create_events": {}}', 422, "VALIDATION_ERROR"),
    ],
)
async def test_malformed_bodies_are_4xx_and_record_nothing(
    webhooks: WebhookApp, platform: str, raw: bytes, status: int, code: str
) -> None:
    r = await webhooks.post(platform, raw)
    assert_error(r, status, code)
    assert await webhooks.events() == []


async def test_platforms_without_webhooks_and_unknown_ones_are_404(webhooks: WebhookApp) -> None:
    for path in ("/webhooks/linkedin", "/webhooks/youtube", "/webhooks/myspace"):
        raw = b"{}"
        assert_error(await webhooks.http.post(path, content=raw), 404, "NOT_FOUND")
        assert_error(await webhooks.http.get(path), 404, "NOT_FOUND")


async def test_oversized_body_is_413(webhooks: WebhookApp) -> None:
    raw = b'{"object": "page", "entry": [], "pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert_error(await webhooks.post("facebook", raw), 413, "PAYLOAD_TOO_LARGE")


# -- the sandbox's webhooks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "kind", "event_type"),
    [
        ("facebook", "comment", CommentReceived.event_type),
        ("facebook", "message", MessageReceived.event_type),
        ("instagram", "comment", CommentReceived.event_type),
        ("instagram", "mention", MentionReceived.event_type),
        ("threads", "comment", CommentReceived.event_type),
        ("threads", "mention", MentionReceived.event_type),
        ("x", "comment", CommentReceived.event_type),
        ("x", "message", MessageReceived.event_type),
        ("x", "mention", MentionReceived.event_type),
    ],
)
async def test_sandbox_webhooks_arrive_as_inbound_events(
    webhooks: WebhookApp, platform: str, kind: str, event_type: str
) -> None:
    workspace = str(uuid.uuid4())
    account = await webhooks.account(workspace, platform, "sbx-77")
    # The sandbox signs with its app secret: the connector is configured with the same one.
    secret = X_SECRET if platform == "x" else META_SECRET
    settings = SandboxSettings(webhook_url=f"{CONNECTOR}/webhooks", app_secret=secret)
    async with running_sandbox(settings) as sandbox:
        sender = sandbox.app.state.webhooks
        await sender.http.aclose()
        sender.http = webhooks.http  # deliveries go to the connector app in this process
        body = {"platform": platform, "accountId": "sbx-77", "kind": kind, "count": 3}
        r = await sandbox.http.post("http://sandbox/_sandbox/inbound", json=body)
        sender.http = httpx.AsyncClient()  # the sandbox closes its client on shutdown
    assert r.status_code == 201, r.text
    made = r.json()["events"]
    assert len(made) == 3
    assert all(d.get("status") == 200 for d in r.json()["deliveries"]), r.json()["deliveries"]

    events = await webhooks.events()
    assert [e.type for e in events] == [event_type] * 3
    assert {(e.data["workspaceId"], e.data["accountId"]) for e in events} == {(workspace, account)}
    assert [e.data["platformEventId"] for e in events] == [
        event_id(platform, kind, m) for m in made
    ]
    if not (platform == "instagram" and kind == "mention"):  # Instagram sends ids only
        # X puts the account's @handle in front of replies and mentions.
        assert all(m["text"] in e.data["text"] for m, e in zip(made, events, strict=True))


def event_id(platform: str, kind: str, made: dict[str, Any]) -> str:
    """The platform's id of a sandbox-made event, as its webhook names it."""
    if platform == "facebook" and kind == "comment":
        return f"{made['postId']}_{made['id']}"
    if platform in ("facebook", "instagram") and kind == "message":
        return f"m_{made['id']}"
    return str(made["id"])
