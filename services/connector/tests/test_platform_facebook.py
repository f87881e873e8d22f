"""Facebook Pages client against the sandbox's Graph API: Facebook Login with the long-lived
exchange, Page tokens, feed/photo/video posts, Graph error codes (throttling as HTTP 400),
read-back, refresh by `fb_exchange_token`, delete, insights and usage headers."""

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

from chorus_connector.platforms.base import (
    AppCredentials,
    Endpoints,
)
from chorus_connector.platforms.facebook import FacebookClient
from chorus_contracts.events.connector import FailureKind, PublishContent

pytestmark = pytest.mark.integration


connected = partial(connect_client, cls=FacebookClient)


async def test_oauth_round_trip_exchanges_for_a_long_lived_token(sandbox: Sandbox) -> None:
    client = sandbox.client(FacebookClient)
    assert not client.supports_pkce
    url = client.authorize_url(
        state="s", redirect_uri="https://chorus.test/cb", code_challenge=None, scopes=()
    )
    assert url.startswith("http://sandbox/facebook/v21.0/dialog/oauth?")
    assert "pages_manage_posts" in url

    tokens = await connect(client, sandbox.http)
    assert tokens.refresh_token == tokens.access_token  # the long-lived token refreshes itself
    assert tokens.expires_at is not None
    profile = await client.profile(tokens.access_token)
    assert profile.platform_account_id.startswith("1")
    assert profile.display_name and profile.followers is not None

    grant = await authorize(client, sandbox.http)
    wrong = FacebookClient(
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
    assert "authorization code" in reused.message


async def test_publish_text_with_link_uses_the_page_feed(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    content = PublishContent(text="Hello Page", link="https://chorus.test/p", hashtags=["news"])
    published = await client.publish(tokens.access_token, profile, content, [])

    [post] = await sandbox.posts("facebook")
    assert post["id"] == published.platform_post_id
    assert post["accountId"] == profile.platform_account_id
    assert post["body"] == {"message": "Hello Page\n\n#news", "link": "https://chorus.test/p"}
    assert published.platform_post_id.startswith(profile.platform_account_id + "_")


async def test_publish_photos_and_video(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    # Videos go to Meta's video host when one is configured (graph-video.facebook.com).
    client.endpoints = Endpoints(api=client.endpoints.api, extra={"video": client.endpoints.api})
    one = await client.publish(
        tokens.access_token,
        profile,
        PublishContent(text="one photo", first_comment="first!"),
        [media("a.jpg")],
    )
    many = await client.publish(
        tokens.access_token, profile, PublishContent(text="album"), [media("a.jpg"), media("b.png")]
    )
    video = await client.publish(
        tokens.access_token, profile, PublishContent(text="clip"), [media("c.mp4")]
    )
    posts = {p["id"]: p for p in await sandbox.posts("facebook")}
    assert set(posts) == {one.platform_post_id, many.platform_post_id, video.platform_post_id}
    assert posts[one.platform_post_id]["body"]["url"] == "http://media.test/a.jpg"
    assert len(posts[many.platform_post_id]["body"]["attached_media"]) == 2
    assert posts[video.platform_post_id]["body"]["file_url"] == "http://media.test/c.mp4"
    comments = [p for p in sandbox.store.posts.values() if p.kind == "comment"]
    assert [c.extra["parent"] for c in comments] == [one.platform_post_id]


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        ("rate_limit", FailureKind.TRANSIENT, "graph_32"),
        ("server_error", FailureKind.TRANSIENT, "graph_2"),
        ("token_expired", FailureKind.AUTH, "graph_190_463"),
        ("invalid_token", FailureKind.AUTH, "graph_190"),
    ],
)
async def test_faults_map_to_failure_kinds(
    sandbox: Sandbox, fault: str, kind: FailureKind, code: str
) -> None:
    client, tokens, profile = await connected(sandbox)
    await sandbox.fault("facebook", fault, operation="publish")
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="hi"), [])
    )
    assert caught.kind is kind and caught.code == code
    assert not caught.outcome_unknown
    if fault == "rate_limit":
        assert caught.status == 400  # Graph throttles with 400 + code, not 429
        assert caught.retry_after == 60.0  # estimated_time_to_regain_access: 1 minute
        assert client.rate_limit.remaining == 0
    assert await sandbox.posts("facebook") == []


async def test_validation_errors_are_permanent_with_the_graph_message(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="x" * 70000), [])
    )
    assert caught.kind is FailureKind.PERMANENT
    assert caught.code == "graph_100"
    assert caught.message.startswith("(#100) Param message must be at most")


async def test_timeout_after_create_is_resolved_by_read_back(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox, timeout=0.2)
    since = datetime.now(UTC)
    await sandbox.fault("facebook", "timeout_after_create")
    content = PublishContent(text="Only once", hashtags=["once"])
    caught = await fails(client.publish(tokens.access_token, profile, content, []))
    assert caught.outcome_unknown

    found = await client.find_recent(tokens.access_token, profile, text="Only once", since=since)
    [post] = await sandbox.posts("facebook")
    assert found is not None and found.platform_post_id == post["id"]
    assert found.url == post["url"]
    assert await client.find_recent(tokens.access_token, profile, text="Other", since=since) is None


async def test_refresh_exchanges_the_long_lived_token(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    assert tokens.refresh_token
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token and fresh.refresh_token == fresh.access_token
    assert (await client.profile(fresh.access_token)) == profile
    old = await fails(client.refresh(tokens.refresh_token))
    assert old.kind is FailureKind.AUTH


async def test_delete(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    since = datetime.now(UTC)
    published = await client.publish(tokens.access_token, profile, PublishContent(text="bye"), [])
    await client.delete(tokens.access_token, profile, published.platform_post_id)
    [post] = await sandbox.posts("facebook")
    assert post["status"] == "deleted"
    assert await client.find_recent(tokens.access_token, profile, text="bye", since=since) is None
    await client.delete(tokens.access_token, profile, published.platform_post_id)  # idempotent


async def test_metrics_are_normalised_and_grow(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    published = await client.publish(
        tokens.access_token, profile, PublishContent(text="clip"), [media("c.mp4")]
    )
    stored = sandbox.store.get_post("facebook", published.platform_post_id)
    assert stored is not None
    stored.created_at -= timedelta(hours=1)
    first = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert set(first) == METRIC_NAMES
    assert first["impressions"] > first["reach"] > 0 and first["video_views"] > 0
    stored.created_at -= timedelta(hours=24)
    second = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert second["impressions"] > first["impressions"]

    account = await client.account_metrics(tokens.access_token, profile)
    page = sandbox.store.account("facebook", profile.platform_account_id)
    assert account == {"followers": page.followers, "following": 0, "posts": 1}


async def test_rate_limit_state_is_parsed_from_usage_headers(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    await client.account_metrics(tokens.access_token, profile)
    state = client.rate_limit
    assert state.limit == 100 and state.remaining is not None and 0 < state.remaining < 100
    assert state.retry_after is None and state.reset_at is None
