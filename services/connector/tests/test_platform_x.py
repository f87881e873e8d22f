"""X API v2 client against the sandbox's X: OAuth + PKCE, posting with media, error mapping,
read-back after an unknown outcome, refresh, delete, metrics and rate-limit headers."""

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
    connect_client,
    fails,
    media,
    sandbox_fixture,  # noqa: F401 (the `sandbox` fixture)
)

from chorus_connector.platforms.x import XClient
from chorus_contracts.events.connector import FailureKind, PublishContent

pytestmark = pytest.mark.integration


connected = partial(connect_client, cls=XClient, poll_interval=0.001)


async def test_oauth_pkce_round_trip(sandbox: Sandbox) -> None:
    client = sandbox.client(XClient)
    url = client.authorize_url(
        state="s1", redirect_uri="https://chorus.test/cb", code_challenge="abc", scopes=()
    )
    assert url.startswith("http://sandbox/x/i/oauth2/authorize?")
    assert "code_challenge_method=S256" in url and "offline.access" in url

    tokens = await connect(client, sandbox.http)
    assert tokens.access_token and tokens.refresh_token and tokens.expires_at
    assert "tweet.write" in tokens.scopes
    profile = await client.profile(tokens.access_token)
    assert profile.username.startswith("x_user_") and profile.followers is not None

    grant = await authorize(client, sandbox.http)
    caught = await fails(
        client.exchange_code(
            code=grant.code, redirect_uri=grant.redirect_uri, code_verifier="wrong-verifier"
        )
    )
    assert caught.kind is FailureKind.AUTH
    assert caught.code == "invalid_request"


async def test_publish_text_stores_exactly_one_post(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    content = PublishContent(text="Launch day", link="https://chorus.test/l", hashtags=["ship"])
    published = await client.publish(tokens.access_token, profile, content, [])

    posts = await sandbox.posts("x")
    assert len(posts) == 1
    assert posts[0]["id"] == published.platform_post_id
    assert posts[0]["accountId"] == profile.platform_account_id
    assert posts[0]["body"] == {"text": "Launch day\n\nhttps://chorus.test/l\n\n#ship"}
    assert published.url == f"https://x.com/{profile.username}/status/{published.platform_post_id}"


async def test_publish_with_image_and_video_uploads_media(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    client.chunk_size = 700  # several APPEND segments
    content = PublishContent(text="With media", first_comment="More in the thread")
    published = await client.publish(
        tokens.access_token, profile, content, [media("photo.jpg"), media("clip.mp4")]
    )

    [post] = await sandbox.posts("x")
    media_ids = post["body"]["media"]["media_ids"]
    assert len(media_ids) == 2
    uploads = [sandbox.store.get_post("x", m) for m in media_ids]
    assert [u.extra["media_category"] for u in uploads if u] == ["tweet_image", "tweet_video"]
    assert all(u and u.extra["state"] == "succeeded" for u in uploads)
    assert len(uploads[1].extra["segments"]) > 1  # type: ignore[union-attr]
    reply = [p for p in sandbox.store.posts.values() if p.kind == "comment"]
    assert [r.extra["in_reply_to"] for r in reply] == [published.platform_post_id]


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("rate_limit", FailureKind.TRANSIENT),
        ("server_error", FailureKind.TRANSIENT),
        ("token_expired", FailureKind.AUTH),
        ("invalid_token", FailureKind.AUTH),
    ],
)
async def test_faults_map_to_failure_kinds(sandbox: Sandbox, fault: str, kind: FailureKind) -> None:
    client, tokens, profile = await connected(sandbox)
    await sandbox.fault("x", fault, operation="publish")
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="hi"), [])
    )
    assert caught.kind is kind
    assert not caught.outcome_unknown
    if fault == "rate_limit":
        assert caught.status == 429
        assert caught.retry_after is not None and 0 < caught.retry_after <= 61
        assert client.rate_limit.remaining == 0
    assert await sandbox.posts("x") == []


async def test_validation_errors_are_permanent_with_the_platform_message(
    sandbox: Sandbox,
) -> None:
    client, tokens, profile = await connected(sandbox)
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="x" * 300), [])
    )
    assert caught.kind is FailureKind.PERMANENT
    assert caught.status == 400
    assert "too long" in caught.message

    await client.publish(tokens.access_token, profile, PublishContent(text="same"), [])
    duplicate = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="same"), [])
    )
    assert duplicate.kind is FailureKind.PERMANENT
    assert duplicate.code == "duplicate_content"


async def test_timeout_after_create_is_resolved_by_read_back(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox, timeout=0.2)
    since = datetime.now(UTC)
    await sandbox.fault("x", "timeout_after_create")
    content = PublishContent(text="Posted once, https://chorus.test/a only")
    caught = await fails(client.publish(tokens.access_token, profile, content, []))
    assert caught.outcome_unknown and caught.kind is FailureKind.TRANSIENT

    found = await client.find_recent(tokens.access_token, profile, text=content.text, since=since)
    [post] = await sandbox.posts("x")
    assert found is not None and found.platform_post_id == post["id"]
    # Nothing older than `since`, and no other text, matches.
    assert await client.find_recent(tokens.access_token, profile, text="other", since=since) is None
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert (
        await client.find_recent(tokens.access_token, profile, text=content.text, since=later)
        is None
    )


async def test_refresh_rotates_tokens(sandbox: Sandbox) -> None:
    client, tokens, _ = await connected(sandbox)
    assert tokens.refresh_token
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token and fresh.refresh_token != tokens.refresh_token
    assert (await client.profile(fresh.access_token)).platform_account_id
    old_access = await fails(client.profile(tokens.access_token))
    assert old_access.kind is FailureKind.AUTH
    reused = await fails(client.refresh(tokens.refresh_token))
    assert reused.kind is FailureKind.AUTH


async def test_delete(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    since = datetime.now(UTC)
    published = await client.publish(tokens.access_token, profile, PublishContent(text="bye"), [])
    await client.delete(tokens.access_token, profile, published.platform_post_id)
    [post] = await sandbox.posts("x")
    assert post["status"] == "deleted"
    assert await client.find_recent(tokens.access_token, profile, text="bye", since=since) is None
    await client.delete(tokens.access_token, profile, published.platform_post_id)  # idempotent


async def test_metrics_are_normalised_and_grow(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    published = await client.publish(
        tokens.access_token, profile, PublishContent(text="metrics"), [media("clip.mp4")]
    )
    stored = sandbox.store.get_post("x", published.platform_post_id)
    assert stored is not None
    stored.created_at -= timedelta(hours=1)
    first = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert set(first) == METRIC_NAMES
    assert first["impressions"] > 0 and first["video_views"] > 0
    stored.created_at -= timedelta(hours=24)
    second = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert second["impressions"] > first["impressions"] and second["likes"] >= first["likes"]

    account = await client.account_metrics(tokens.access_token, profile)
    followers = sandbox.store.account("x", profile.platform_account_id).followers
    assert account == {"followers": followers, "following": account["following"], "posts": 1}


async def test_rate_limit_state_is_parsed_from_headers(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    await client.account_metrics(tokens.access_token, profile)
    first = client.rate_limit
    assert first.limit == 900 and first.remaining is not None and first.remaining < 900
    assert first.reset_at is not None and first.reset_at > time.time()
    await client.account_metrics(tokens.access_token, profile)
    assert client.rate_limit.remaining == first.remaining - 1
