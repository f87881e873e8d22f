"""`POST /_sandbox/inbound`: people comment, write and mention — pushed as signed webhooks.

The sandbox makes up `count` comments, direct messages or mentions for a connected account
(deterministic from the seed), keeps them (X's recent search finds the public ones) and
delivers them to `<webhook_url>/<platform>` in the platform's own webhook shape, signed the
platform's way with the shared app secret:

* Facebook and Instagram: one delivery with `entry[].changes[]` / `entry[].messaging[]`,
  `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`;
* Threads: one delivery per item (`{"target_id", "values": {"field", "value"}}`), same header;
* X: one Account Activity delivery (`for_user_id`, `tweet_create_events`,
  `direct_message_events`), `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Literal

import httpx
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from chorus_runtime.errors import NotFound
from chorus_sandbox.settings import SandboxSettings
from chorus_sandbox.store import InboundRecord, PlatformAccount, Store

WEBHOOK_PLATFORMS = ("facebook", "instagram", "threads", "x")
Kind = Literal["comment", "message", "mention"]

_PEOPLE = (
    ("ana_codes", "Ana Souza"),
    ("bjorn.makes", "Björn Lind"),
    ("chen_wei", "Chen Wei"),
    ("dee_reviews", "Deepa Rao"),
    ("eli.travels", "Eli Cohen"),
    ("fatima_k", "Fatima Khan"),
    ("gus_outdoors", "Gustavo Reyes"),
    ("hana.design", "Hana Sato"),
)
_TEXTS = {
    "comment": (
        "Love this! When is it available in Europe?",
        "Does this work with the older model?",
        "Great post, thanks for sharing",
        "My order still hasn't shipped, can someone help?",
        "Is there a student discount?",
    ),
    "message": (
        "Hi, I have a question about my invoice",
        "Can I change the delivery address of my order?",
        "Do you ship to Canada?",
        "The app keeps logging me out, any idea why?",
    ),
    "mention": (
        "Just tried {handle} and I'm impressed",
        "Anyone else having trouble with {handle} today?",
        "Shoutout to {handle} for the quick support",
        "Comparing {handle} with the alternatives, thread below",
    ),
}


class InboundIn(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    platform: Literal["facebook", "instagram", "threads", "x"]
    account_id: str | None = Field(
        default=None, max_length=200, description="the platform's account id (default: latest)"
    )
    kind: Kind
    text: str | None = Field(default=None, min_length=1, max_length=2000)
    count: int = Field(default=1, ge=1, le=100)


def sign(platform: str, secret: str, body: bytes) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if platform == "x":
        return {"x-twitter-webhooks-signature": "sha256=" + base64.b64encode(mac).decode()}
    return {"x-hub-signature-256": "sha256=" + mac.hex()}


def make_records(
    store: Store, account: PlatformAccount, kind: str, text: str | None, count: int
) -> list[InboundRecord]:
    rng = store.rng("inbound", account.platform, account.id, len(store.inbound))
    posts = [p for p in store.posts_of(account.platform, account.id) if p.status != "deleted"]
    records = []
    for _ in range(count):
        username, name = rng.choice(_PEOPLE)
        record_id = store.next_id()
        body = text or rng.choice(_TEXTS[kind]).format(handle="@" + account.username)
        post_id = None
        if kind == "comment":
            post_id = max(posts, key=lambda p: p.created_at).id if posts else store.next_id()
        elif kind == "mention":
            post_id = record_id  # a mention is a post (or comment) of its own
        records.append(
            store.add_inbound(
                InboundRecord(
                    platform=account.platform,
                    kind=kind,
                    id=record_id,
                    account_id=account.id,
                    author_id=str(rng.randint(10**9, 10**10)),
                    author_username=username,
                    author_name=name,
                    text=body,
                    created_at=store.now(),
                    post_id=post_id,
                )
            )
        )
    return records


# -- webhook bodies ------------------------------------------------------------------------------


def payloads(account: PlatformAccount, records: list[InboundRecord]) -> list[dict[str, Any]]:
    if account.platform == "x":
        return [_x(account, records)]
    if account.platform == "threads":
        return [_threads(account, r) for r in records]
    return [_meta(account, records)]


def _meta(account: PlatformAccount, records: list[InboundRecord]) -> dict[str, Any]:
    instagram = account.platform == "instagram"
    changes: list[dict[str, Any]] = []
    messaging: list[dict[str, Any]] = []
    for r in records:
        at = int(r.created_at.timestamp())
        if r.kind == "message":
            messaging.append(
                {
                    "sender": {"id": r.author_id},
                    "recipient": {"id": account.id},
                    "timestamp": at * 1000,
                    "message": {"mid": f"m_{r.id}", "text": r.text},
                }
            )
        elif r.kind == "comment" and instagram:
            value = {
                "id": r.id,
                "text": r.text,
                "from": {"id": r.author_id, "username": r.author_username},
                "media": {"id": r.post_id, "media_product_type": "FEED"},
            }
            changes.append({"field": "comments", "value": value})
        elif r.kind == "comment":
            value = {
                "from": {"id": r.author_id, "name": r.author_name},
                "item": "comment",
                "verb": "add",
                "comment_id": f"{r.post_id}_{r.id}",
                "post_id": r.post_id,
                "parent_id": r.post_id,
                "message": r.text,
                "created_time": at,
            }
            changes.append({"field": "feed", "value": value})
        elif instagram:  # Instagram says only where the mention is
            changes.append({"field": "mentions", "value": {"media_id": r.id, "comment_id": r.id}})
        else:
            value = {
                "item": "post",
                "verb": "add",
                "post_id": f"{r.author_id}_{r.id}",
                "sender_id": r.author_id,
                "sender_name": r.author_name,
                "message": r.text,
                "created_time": at,
            }
            changes.append({"field": "mention", "value": value})
    entry: dict[str, Any] = {"id": account.id, "time": int(records[0].created_at.timestamp())}
    if changes:
        entry["changes"] = changes
    if messaging:
        entry["messaging"] = messaging
    return {"object": "instagram" if instagram else "page", "entry": [entry]}


def _threads(account: PlatformAccount, r: InboundRecord) -> dict[str, Any]:
    value: dict[str, Any] = {
        "id": r.id,
        "username": r.author_username,
        "text": r.text,
        "media_type": "TEXT_POST",
        "permalink": f"https://www.threads.net/@{r.author_username}/post/{r.id}",
        "timestamp": r.created_at.strftime("%Y-%m-%dT%H:%M:%S+0000"),
    }
    if r.kind == "comment":
        value["replied_to"] = {"id": r.post_id}
        value["root_post"] = {"id": r.post_id, "owner_id": account.id, "username": account.username}
    return {
        "app_id": "sandbox-app",
        "topic": "moderate",
        "target_id": account.id,
        "time": int(r.created_at.timestamp()),
        "values": {"field": "replies" if r.kind == "comment" else "mentions", "value": value},
    }


def x_tweet(account: PlatformAccount, r: InboundRecord) -> dict[str, Any]:
    """A v1.1 tweet object (the Account Activity API's shape)."""
    text = r.text if f"@{account.username}" in r.text else f"@{account.username} {r.text}"
    tweet: dict[str, Any] = {
        "id_str": r.id,
        "text": text,
        "created_at": r.created_at.strftime("%a %b %d %H:%M:%S +0000 %Y"),
        "timestamp_ms": str(int(r.created_at.timestamp() * 1000)),
        "user": {"id_str": r.author_id, "screen_name": r.author_username, "name": r.author_name},
        "entities": {"user_mentions": [{"id_str": account.id, "screen_name": account.username}]},
    }
    if r.kind == "comment":
        tweet["in_reply_to_status_id_str"] = r.post_id
        tweet["in_reply_to_user_id_str"] = account.id
        tweet["in_reply_to_screen_name"] = account.username
    return tweet


def _x(account: PlatformAccount, records: list[InboundRecord]) -> dict[str, Any]:
    body: dict[str, Any] = {"for_user_id": account.id}
    tweets = [x_tweet(account, r) for r in records if r.kind != "message"]
    messages = [r for r in records if r.kind == "message"]
    if tweets:
        body["tweet_create_events"] = tweets
    if messages:
        body["direct_message_events"] = [
            {
                "type": "message_create",
                "id": r.id,
                "created_timestamp": str(int(r.created_at.timestamp() * 1000)),
                "message_create": {
                    "target": {"recipient_id": account.id},
                    "sender_id": r.author_id,
                    "message_data": {"text": r.text},
                },
            }
            for r in messages
        ]
        body["users"] = {
            r.author_id: {
                "id": r.author_id,
                "name": r.author_name,
                "screen_name": r.author_username,
            }
            for r in messages
        }
    return body


# -- delivery ------------------------------------------------------------------------------------


class WebhookSender:
    """Delivers webhook bodies to the connector (`http` may be swapped in tests)."""

    def __init__(self, settings: SandboxSettings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.http = http or httpx.AsyncClient(timeout=10.0)

    async def deliver(self, platform: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.settings.webhook_url.rstrip('/')}/{platform}"
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {"content-type": "application/json"}
        headers |= sign(platform, self.settings.app_secret, raw)
        try:
            response = await self.http.post(url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            return {"url": url, "error": f"{type(exc).__name__}: {exc}"}
        return {"url": url, "status": response.status_code}

    async def aclose(self) -> None:
        await self.http.aclose()


def record_json(r: InboundRecord) -> dict[str, Any]:
    return {
        "platform": r.platform,
        "kind": r.kind,
        "id": r.id,
        "accountId": r.account_id,
        "authorId": r.author_id,
        "authorUsername": r.author_username,
        "text": r.text,
        "postId": r.post_id,
        "createdAt": r.created_at.isoformat(),
    }


def inbound_router(store: Store, sender: WebhookSender) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox"])

    @router.post("/inbound", status_code=201)
    async def inbound(body: InboundIn) -> dict[str, Any]:
        if body.account_id:
            account = store.account(body.platform, body.account_id)
        else:
            known = [a for (p, _), a in store.accounts.items() if p == body.platform]
            if not known:
                raise NotFound(f"no {body.platform} account has authorized yet; pass accountId")
            account = max(known, key=lambda a: a.created_at)
        records = make_records(store, account, body.kind, body.text, body.count)
        deliveries = []
        if sender.settings.webhook_url:
            for payload in payloads(account, records):
                deliveries.append(await sender.deliver(body.platform, payload))
        return {"events": [record_json(r) for r in records], "deliveries": deliveries}

    @router.get("/inbound")
    async def listed(platform: str | None = None) -> dict[str, Any]:
        return {"events": [record_json(r) for r in store.inbound if platform in (None, r.platform)]}

    return router
