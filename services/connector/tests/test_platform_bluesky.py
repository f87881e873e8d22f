"""Bluesky client against the sandbox: app-password connect (PKCE-bound code) and sessions,
records with facets and embeds, error classification by XRPC error name, read-back after an
unknown outcome, delete, metrics, rate limits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from platform_support import (
    METRIC_NAMES,
    Sandbox,
    authorize,
    connect,
    connect_bearer,
    fails,
    media,
    sandbox_fixture,  # noqa: F401 (the `sandbox` fixture)
)

from chorus_connector.platforms.bluesky import BlueskyClient, find_facets, post_text
from chorus_connector.platforms.registry import client_class
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent

pytestmark = pytest.mark.integration

PLATFORM = "bluesky"


connected = partial(connect_bearer, cls=BlueskyClient)


def content(text: str = "Hello Bluesky", **extra: object) -> PublishContent:
    return PublishContent.model_validate({"text": text, **extra})


async def test_registry_finds_the_client() -> None:
    assert client_class(Platform.BLUESKY) is BlueskyClient


async def test_connect_with_pkce_bound_code(sandbox: Sandbox) -> None:
    client = sandbox.client(BlueskyClient)
    tokens = await connect(client, sandbox.http)
    assert tokens.access_token and tokens.refresh_token
    assert tokens.expires_at is None  # sandbox tokens are opaque; real JWTs carry `exp`
    profile = await client.profile(tokens.access_token)
    assert profile.platform_account_id.startswith("did:plc:")
    assert profile.username.endswith(".bsky.social")
    assert profile.followers is not None

    grant = await authorize(client, sandbox.http)
    wrong = await fails(
        client.exchange_code(
            code=grant.code, redirect_uri=grant.redirect_uri, code_verifier="not-the-verifier"
        )
    )
    assert wrong.kind is FailureKind.AUTH


async def test_login_with_app_password(sandbox: Sandbox) -> None:
    client = sandbox.client(BlueskyClient)
    tokens = await client.login("someone.bsky.social", "abcd-efgh-ijkl-mnop")
    assert (await client.profile(tokens.access_token)).platform_account_id.startswith("did:")
    wrong = await fails(client.login("someone.bsky.social", "my real password"))
    assert wrong.kind is FailureKind.AUTH
    assert wrong.code == "AuthenticationRequired"


def test_facets_use_utf8_byte_offsets() -> None:
    text = "Café ☕ news #chorus at https://example.com/a?b=1, thanks @friend.bsky.social!"
    raw = text.encode()
    found = {f["$type"].rsplit("#", 1)[-1]: raw[s:e].decode() for s, e, f in find_facets(text)}
    assert found == {
        "tag": "#chorus",
        "link": "https://example.com/a?b=1",
        "mention": "@friend.bsky.social",
    }
    post = content("Hi", hashtags=["news"], link="https://x.test", mentions=["a.bsky.social"])
    assert post_text(post) == "Hi\n\nhttps://x.test\n\n#news\n\n@a.bsky.social"


async def test_publish_with_facets_and_images_makes_exactly_one_record(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    post = content(
        "Café ☕ launch with @friend.bsky.social",
        hashtags=["chorus"],
        link="https://example.com/launch",
    )
    published = await client.publish(token, account, post, [media("a.jpg"), media("b.png")])

    stored = await sandbox.posts(PLATFORM)
    assert len(stored) == 1
    record = stored[0]["body"]
    assert (
        published.platform_post_id
        == f"at://{account.platform_account_id}/app.bsky.feed.post/{stored[0]['id']}"
    )
    assert (
        record["text"]
        == "Café ☕ launch with @friend.bsky.social\n\nhttps://example.com/launch\n\n#chorus"
    )
    raw = record["text"].encode()
    spans = {
        raw[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in record["facets"]
    }
    assert spans == {"@friend.bsky.social", "#chorus", "https://example.com/launch"}
    mention = next(f for f in record["facets"] if f["features"][0]["$type"].endswith("#mention"))
    assert mention["features"][0]["did"].startswith("did:plc:")
    assert record["embed"]["$type"] == "app.bsky.embed.images"
    assert len(record["embed"]["images"]) == 2
    assert published.url and published.url.startswith(
        f"https://bsky.app/profile/{account.username}/post/"
    )


async def test_video_and_link_card_embeds(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    await client.publish(token, account, content("Watch"), [media("clip.mp4")])
    await client.publish(token, account, content("Read", link="https://example.com/r"), [])
    embeds = [p["body"]["embed"]["$type"] for p in await sandbox.posts(PLATFORM)]
    assert embeds == ["app.bsky.embed.video", "app.bsky.embed.external"]
    mixed = await fails(
        client.publish(token, account, content("Both"), [media("clip.mp4"), media("a.jpg")])
    )
    assert mixed.kind is FailureKind.PERMANENT


async def test_rate_limit_is_transient_with_retry_after(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, "rate_limit", operation="publish")
    caught = await fails(client.publish(token, account, content(), []))
    assert caught.kind is FailureKind.TRANSIENT
    assert caught.code == "RateLimitExceeded"
    assert caught.retry_after is not None and caught.retry_after > 0
    assert client.rate_limit.remaining == 0
    assert await sandbox.posts(PLATFORM) == []


async def test_server_error_is_transient(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, "server_error")
    caught = await fails(client.publish(token, account, content(), []))
    assert caught.kind is FailureKind.TRANSIENT


@pytest.mark.parametrize(
    ("kind", "name", "status"),
    [("token_expired", "ExpiredToken", 400), ("invalid_token", "InvalidToken", 401)],
)
async def test_token_problems_are_auth(sandbox: Sandbox, kind: str, name: str, status: int) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, kind)
    caught = await fails(client.publish(token, account, content(), []))
    assert caught.kind is FailureKind.AUTH
    assert (caught.code, caught.status) == (name, status)


async def test_validation_error_is_permanent_with_the_platform_message(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    caught = await fails(client.publish(token, account, content("x" * 301), []))
    assert caught.kind is FailureKind.PERMANENT
    assert caught.code == "InvalidRecord"
    assert "longer than 300 graphemes" in caught.message


async def test_timeout_after_create_is_unknown_and_read_back_finds_the_record(
    sandbox: Sandbox,
) -> None:
    client, token, account = await connected(sandbox, timeout=0.2)
    since = datetime.now(UTC)
    await sandbox.fault(PLATFORM, "timeout_after_create")
    post = content("Did this go out?")
    caught = await fails(client.publish(token, account, post, []))
    assert caught.outcome_unknown

    stored = await sandbox.posts(PLATFORM)
    assert len(stored) == 1
    found = await client.find_recent(token, account, text=post.text, since=since)
    assert found is not None and found.platform_post_id.endswith(stored[0]["id"])
    assert await client.find_recent(token, account, text="another text", since=since) is None
    later = since + timedelta(minutes=5)
    assert await client.find_recent(token, account, text=post.text, since=later) is None


async def test_refresh_session_rotates_tokens(sandbox: Sandbox) -> None:
    client = sandbox.client(BlueskyClient)
    tokens = await connect(client, sandbox.http)
    assert tokens.refresh_token
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token != tokens.refresh_token
    assert (await client.profile(fresh.access_token)).platform_account_id
    reused = await fails(client.refresh(tokens.refresh_token))
    assert reused.kind is FailureKind.AUTH


async def test_delete_removes_the_record(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    published = await client.publish(token, account, content("Short-lived"), [])
    await client.delete(token, account, published.platform_post_id)
    assert [p["status"] for p in await sandbox.posts(PLATFORM)] == ["deleted"]
    await client.delete(token, account, published.platform_post_id)  # idempotent on a PDS
    gone = await fails(client.post_metrics(token, account, published.platform_post_id))
    assert gone.kind is FailureKind.PERMANENT


async def test_metrics_are_normalised_and_grow(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    published = await client.publish(token, account, content("Count me"), [])
    first = await client.post_metrics(token, account, published.platform_post_id)
    assert set(first) == METRIC_NAMES
    stored = sandbox.store.get_post(PLATFORM, published.platform_post_id.rsplit("/", 1)[-1])
    assert stored is not None
    stored.created_at -= timedelta(days=1)
    later = await client.post_metrics(token, account, published.platform_post_id)
    assert later["likes"] > first["likes"]
    assert all(later[k] >= first[k] for k in first)

    totals = await client.account_metrics(token, account)
    assert totals == {"followers": account.followers, "following": totals["following"], "posts": 1}


async def test_rate_limit_state_is_parsed_from_headers(sandbox: Sandbox) -> None:
    client, _, _ = await connected(sandbox)
    state = client.rate_limit
    assert state.limit == 5000
    assert state.remaining is not None and 0 < state.remaining < 5000
    assert state.reset_at is not None and state.reset_at > time.time()
