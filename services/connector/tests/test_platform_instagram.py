"""Instagram (Instagram API with Instagram Login) against the sandbox: OAuth with the long-lived
exchange, the container flow (image, reel, carousel) with status polling, Graph error codes,
read-back after an unknown outcome, refresh, no deletion, insights and usage headers."""

from __future__ import annotations

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
from chorus_connector.platforms.instagram import InstagramClient
from chorus_contracts.events.connector import FailureKind, PublishContent

pytestmark = pytest.mark.integration

PHOTO = media("photo.jpg")


connected = partial(connect_client, cls=InstagramClient, poll_interval=0.001)


async def test_oauth_round_trip_exchanges_for_a_long_lived_token(sandbox: Sandbox) -> None:
    client = sandbox.client(InstagramClient)
    assert not client.supports_pkce
    url = client.authorize_url(
        state="s", redirect_uri="https://chorus.test/cb", code_challenge=None, scopes=()
    )
    assert url.startswith("http://sandbox/instagram/oauth/authorize?")
    assert "instagram_business_content_publish" in url

    tokens = await connect(client, sandbox.http)
    assert tokens.refresh_token == tokens.access_token
    assert "instagram_business_content_publish" in tokens.scopes
    profile = await client.profile(tokens.access_token)
    assert profile.username.startswith("instagram_user_") and profile.followers is not None

    grant = await authorize(client, sandbox.http)
    wrong = InstagramClient(
        sandbox.new_http(), client.endpoints, AppCredentials(APP.client_id, "not-the-secret")
    )
    bad_secret = await fails(
        wrong.exchange_code(code=grant.code, redirect_uri=grant.redirect_uri, code_verifier=None)
    )
    assert bad_secret.kind is FailureKind.AUTH
    await client.exchange_code(code=grant.code, redirect_uri=grant.redirect_uri, code_verifier=None)
    reused = await fails(
        client.exchange_code(code=grant.code, redirect_uri=grant.redirect_uri, code_verifier=None)
    )
    assert reused.kind is FailureKind.AUTH
    assert reused.message == "Matching code was not found or was already used"


async def test_publish_image_through_a_container(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    content = PublishContent(text="Sunrise", hashtags=["morning"])
    published = await client.publish(tokens.access_token, profile, content, [PHOTO])

    [post] = await sandbox.posts("instagram")
    assert post["id"] == published.platform_post_id
    assert post["accountId"] == profile.platform_account_id
    assert post["body"]["image_url"] == PHOTO.url
    assert post["body"]["caption"] == "Sunrise\n\n#morning"
    assert published.url == post["url"]


async def test_publish_reel_and_carousel_poll_their_containers(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    reel = await client.publish(
        tokens.access_token, profile, PublishContent(text="reel"), [media("clip.mp4")]
    )
    carousel = await client.publish(
        tokens.access_token,
        profile,
        PublishContent(text="album", first_comment="details below"),
        [PHOTO, media("clip.mp4")],
    )
    posts = {p["id"]: p for p in await sandbox.posts("instagram")}
    assert posts[reel.platform_post_id]["body"]["media_type"] == "REELS"
    children = posts[carousel.platform_post_id]["body"]["children"]
    assert [c.get("image_url") or c.get("video_url") for c in children] == [
        PHOTO.url,
        "http://media.test/clip.mp4",
    ]
    containers = [p for p in sandbox.store.posts.values() if p.kind == "container"]
    assert all(c.status == "published" or c.extra["carousel_item"] for c in containers)
    assert any(c.extra.get("polls", 0) >= 2 for c in containers)  # video waited for FINISHED
    comments = [p for p in sandbox.store.posts.values() if p.kind == "comment"]
    assert [c.extra["parent"] for c in comments] == [carousel.platform_post_id]


async def test_a_post_without_media_is_refused_before_calling(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="words"), [])
    )
    assert caught.kind is FailureKind.PERMANENT and caught.code == "media_required"


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        ("rate_limit", FailureKind.TRANSIENT, "graph_80002"),
        ("server_error", FailureKind.TRANSIENT, "graph_2"),
        ("token_expired", FailureKind.AUTH, "graph_190_463"),
        ("invalid_token", FailureKind.AUTH, "graph_190"),
    ],
)
async def test_faults_map_to_failure_kinds(
    sandbox: Sandbox, fault: str, kind: FailureKind, code: str
) -> None:
    client, tokens, profile = await connected(sandbox)
    await sandbox.fault("instagram", fault, operation="publish")
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="hi"), [PHOTO])
    )
    assert caught.kind is kind and caught.code == code
    assert not caught.outcome_unknown
    if fault == "rate_limit":
        assert caught.retry_after == 60.0
        assert client.rate_limit.remaining == 0
    assert await sandbox.posts("instagram") == []


async def test_validation_errors_are_permanent_with_the_graph_message(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="x" * 2300), [PHOTO])
    )
    assert caught.kind is FailureKind.PERMANENT and caught.code == "graph_100"
    assert "caption is too long" in caught.message


async def test_timeout_after_create_is_resolved_by_read_back(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox, timeout=0.2)
    since = datetime.now(UTC)
    await sandbox.fault("instagram", "timeout_after_create")
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="Once"), [PHOTO])
    )
    assert caught.outcome_unknown

    found = await client.find_recent(tokens.access_token, profile, text="Once", since=since)
    [post] = await sandbox.posts("instagram")
    assert found is not None and found.platform_post_id == post["id"] and found.url == post["url"]
    assert await client.find_recent(tokens.access_token, profile, text="Twice", since=since) is None


async def test_refresh_rotates_the_long_lived_token(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    assert tokens.refresh_token
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token and fresh.refresh_token == fresh.access_token
    assert await client.profile(fresh.access_token) == profile
    old = await fails(client.profile(tokens.access_token))
    assert old.kind is FailureKind.AUTH


async def test_delete_is_not_offered(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    published = await client.publish(
        tokens.access_token, profile, PublishContent(text="x"), [PHOTO]
    )
    caught = await fails(client.delete(tokens.access_token, profile, published.platform_post_id))
    assert caught.kind is FailureKind.PERMANENT and caught.code == "not_supported"
    [post] = await sandbox.posts("instagram")
    assert post["status"] == "published"


async def test_metrics_are_normalised_and_grow(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    published = await client.publish(
        tokens.access_token, profile, PublishContent(text="reel"), [media("clip.mp4")]
    )
    stored = sandbox.store.get_post("instagram", published.platform_post_id)
    assert stored is not None
    stored.created_at -= timedelta(hours=1)
    first = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert set(first) == METRIC_NAMES
    assert first["reach"] > 0 and first["video_views"] == first["impressions"] > 0
    stored.created_at -= timedelta(hours=24)
    second = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert second["reach"] > first["reach"]

    account = await client.account_metrics(tokens.access_token, profile)
    user = sandbox.store.account("instagram", profile.platform_account_id)
    assert account["followers"] == user.followers and account["posts"] == 1
    assert account["following"] > 0


async def test_rate_limit_state_is_parsed_from_usage_headers(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    await client.account_metrics(tokens.access_token, profile)
    state = client.rate_limit
    assert state.limit == 100 and state.remaining is not None and 0 < state.remaining < 100
