"""TikTok against the sandbox: Login Kit OAuth, direct posting with PULL_FROM_URL (creator info,
init, status polling), private posts, TikTok's error envelope and per-minute limits, read-back
after an unknown outcome, refresh, no deletion, and Display API metrics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from platform_support import (
    APP,
    METRIC_NAMES,
    Sandbox,
    authorize,
    connect,
    connect_client,
    fails,
    media,
    sandbox_fixture,  # noqa: F401 (the `sandbox` fixture)
)

from chorus_connector.platforms.base import AppCredentials
from chorus_connector.platforms.tiktok import TikTokClient
from chorus_contracts.events.connector import FailureKind, PublishContent
from chorus_sandbox.platforms.tiktok import READY_AFTER_SECONDS

pytestmark = pytest.mark.integration

CLIP = media("clip.mp4")


connected = partial(connect_client, cls=TikTokClient, poll_interval=0.001)


async def test_oauth_round_trip(sandbox: Sandbox) -> None:
    client = sandbox.client(TikTokClient)
    url = client.authorize_url(
        state="s", redirect_uri="https://chorus.test/cb", code_challenge=None, scopes=()
    )
    assert url.startswith("http://sandbox/tiktok/v2/auth/authorize/?client_key=")
    assert "video.publish" in url

    tokens = await connect(client, sandbox.http)
    assert tokens.refresh_token and tokens.expires_at and "video.publish" in tokens.scopes
    profile = await client.profile(tokens.access_token)
    account = sandbox.store.account("tiktok", profile.platform_account_id)
    assert profile.username == account.username and profile.followers == account.followers

    grant = await authorize(client, sandbox.http)
    wrong = TikTokClient(
        sandbox.new_http(), client.endpoints, AppCredentials(APP.client_id, "not-the-secret")
    )
    bad_secret = await fails(
        wrong.exchange_code(code=grant.code, redirect_uri=grant.redirect_uri, code_verifier=None)
    )
    assert bad_secret.kind is FailureKind.AUTH and bad_secret.code == "invalid_client"
    await client.exchange_code(code=grant.code, redirect_uri=grant.redirect_uri, code_verifier=None)
    reused = await fails(
        client.exchange_code(code=grant.code, redirect_uri=grant.redirect_uri, code_verifier=None)
    )
    assert reused.kind is FailureKind.AUTH and reused.code == "invalid_grant"


async def test_publish_video_pulls_from_url_and_polls_status(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    content = PublishContent(text="Behind the scenes", hashtags=["bts"])
    published = await client.publish(tokens.access_token, profile, content, [CLIP])

    [post] = await sandbox.posts("tiktok")
    assert post["id"] == published.platform_post_id and post["status"] == "published"
    assert post["body"]["source_info"] == {"source": "PULL_FROM_URL", "video_url": CLIP.url}
    info = post["body"]["post_info"]
    assert info["title"] == "Behind the scenes\n\n#bts"
    assert info["privacy_level"] == "PUBLIC_TO_EVERYONE"
    assert published.url == f"https://www.tiktok.com/@{profile.username}/video/{post['id']}"


async def test_publish_photos_and_a_private_video(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    photos = await client.publish(
        tokens.access_token,
        profile,
        PublishContent(text="Gallery", title="Our week"),
        [media("a.jpg"), media("b.jpg")],
    )
    private = await client.publish(
        tokens.access_token,
        profile,
        PublishContent(text="Just us", options={"privacy_level": "SELF_ONLY"}),
        [CLIP],
    )
    posts = {p["id"]: p for p in await sandbox.posts("tiktok")}
    body = posts[photos.platform_post_id]["body"]
    assert body["media_type"] == "PHOTO" and len(body["source_info"]["photo_images"]) == 2
    assert body["post_info"]["title"] == "Our week"
    # TikTok reveals no post id for a private post: it is known by its publish_id.
    assert private.platform_post_id.startswith("v_pub_url~") and private.url is None


async def test_posts_without_exactly_one_video_or_photos_are_refused(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    for items in ([], [CLIP, media("a.jpg")]):
        caught = await fails(
            client.publish(tokens.access_token, profile, PublishContent(text="x"), items)
        )
        assert caught.kind is FailureKind.PERMANENT
    assert await sandbox.posts("tiktok") == []


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        ("rate_limit", FailureKind.TRANSIENT, "rate_limit_exceeded"),
        ("server_error", FailureKind.TRANSIENT, "internal_error"),
        ("token_expired", FailureKind.AUTH, "access_token_invalid"),
        ("invalid_token", FailureKind.AUTH, "access_token_invalid"),
    ],
)
async def test_faults_map_to_failure_kinds(
    sandbox: Sandbox, fault: str, kind: FailureKind, code: str
) -> None:
    client, tokens, profile = await connected(sandbox)
    await sandbox.fault("tiktok", fault, operation="publish")
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="hi"), [CLIP])
    )
    assert caught.kind is kind and caught.code == code
    assert not caught.outcome_unknown
    if fault == "rate_limit":
        assert caught.retry_after == 60.0  # one-minute windows, no headers
        assert client.rate_limit.remaining == 0
    assert await sandbox.posts("tiktok") == []


async def test_the_per_minute_init_limit_answers_429(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    for n in range(6):
        await client.publish(tokens.access_token, profile, PublishContent(text=f"#{n}"), [CLIP])
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="7th"), [CLIP])
    )
    assert caught.kind is FailureKind.TRANSIENT and caught.status == 429
    assert client.rate_limit.reset_at is not None
    await client.account_metrics(tokens.access_token, profile)
    assert client.rate_limit.remaining is None  # a successful call clears the throttle


async def test_validation_errors_are_permanent_with_the_platform_message(
    sandbox: Sandbox,
) -> None:
    client, tokens, profile = await connected(sandbox)
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="x" * 2201), [CLIP])
    )
    assert caught.kind is FailureKind.PERMANENT and caught.code == "invalid_params"
    assert "longer than 2200" in caught.message

    everyone = PublishContent(text="x", options={"privacy_level": "EVERYONE"})
    privacy = await fails(client.publish(tokens.access_token, profile, everyone, [CLIP]))
    assert privacy.kind is FailureKind.PERMANENT
    assert privacy.code == "privacy_level_option_mismatch"


async def test_timeout_after_create_is_resolved_by_read_back(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox, timeout=0.2)
    since = datetime.now(UTC)
    await sandbox.fault("tiktok", "timeout_after_create")
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="Once"), [CLIP])
    )
    assert caught.outcome_unknown

    await asyncio.sleep(READY_AFTER_SECONDS)
    found = await client.find_recent(tokens.access_token, profile, text="Once", since=since)
    [post] = await sandbox.posts("tiktok")
    assert found is not None and found.platform_post_id == post["id"] and found.url == post["url"]
    assert await client.find_recent(tokens.access_token, profile, text="Twice", since=since) is None


async def test_still_processing_is_an_unknown_outcome(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    client.poll_attempts = 1
    since = datetime.now(UTC)
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="Slow"), [CLIP])
    )
    assert caught.outcome_unknown and caught.code == "still_processing"
    await asyncio.sleep(READY_AFTER_SECONDS)
    found = await client.find_recent(tokens.access_token, profile, text="Slow", since=since)
    assert found is not None


async def test_refresh_rotates_tokens(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    assert tokens.refresh_token
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token and fresh.refresh_token != tokens.refresh_token
    assert await client.profile(fresh.access_token) == profile
    old = await fails(client.profile(tokens.access_token))
    assert old.kind is FailureKind.AUTH
    reused = await fails(client.refresh(tokens.refresh_token))
    assert reused.kind is FailureKind.AUTH


async def test_delete_is_not_offered(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    published = await client.publish(tokens.access_token, profile, PublishContent(text="x"), [CLIP])
    caught = await fails(client.delete(tokens.access_token, profile, published.platform_post_id))
    assert caught.kind is FailureKind.PERMANENT and caught.code == "not_supported"


async def test_metrics_are_normalised_and_grow(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    published = await client.publish(tokens.access_token, profile, PublishContent(text="m"), [CLIP])
    stored = sandbox.store.get_post("tiktok", published.platform_post_id)
    assert stored is not None
    stored.created_at -= timedelta(hours=1)
    first = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert set(first) == METRIC_NAMES
    assert first["video_views"] == first["impressions"] > 0
    stored.created_at -= timedelta(hours=24)
    second = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert second["video_views"] > first["video_views"]

    account = await client.account_metrics(tokens.access_token, profile)
    followers = sandbox.store.account("tiktok", profile.platform_account_id).followers
    assert account["followers"] == followers and account["posts"] == 1
    assert account["following"] > 0
