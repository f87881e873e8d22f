"""Threads against the sandbox: OAuth with the long-lived exchange, text/image/video/carousel
containers with status polling, replies as first comments, Graph error codes, read-back after an
unknown outcome, refresh, delete, insights and usage headers."""

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
from chorus_connector.platforms.threads import ThreadsClient
from chorus_contracts.events.connector import FailureKind, PublishContent

pytestmark = pytest.mark.integration


connected = partial(connect_client, cls=ThreadsClient, poll_interval=0.001)


async def test_oauth_round_trip_exchanges_for_a_long_lived_token(sandbox: Sandbox) -> None:
    client = sandbox.client(ThreadsClient)
    url = client.authorize_url(
        state="s", redirect_uri="https://chorus.test/cb", code_challenge=None, scopes=()
    )
    assert url.startswith("http://sandbox/threads/oauth/authorize?")
    assert "threads_content_publish" in url

    tokens = await connect(client, sandbox.http)
    assert tokens.refresh_token == tokens.access_token and tokens.expires_at
    profile = await client.profile(tokens.access_token)
    account = sandbox.store.account("threads", profile.platform_account_id)
    assert profile.username == account.username and profile.followers == account.followers

    grant = await authorize(client, sandbox.http)
    wrong = ThreadsClient(
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
    assert reused.kind is FailureKind.AUTH and reused.code == "graph_100_36009"


async def test_publish_text_post(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    content = PublishContent(text="Hello Threads", link="https://chorus.test/t")
    published = await client.publish(tokens.access_token, profile, content, [])

    [post] = await sandbox.posts("threads")
    assert post["id"] == published.platform_post_id
    assert post["accountId"] == profile.platform_account_id
    assert post["body"]["media_type"] == "TEXT"
    assert post["body"]["text"] == "Hello Threads\n\nhttps://chorus.test/t"
    assert published.url == post["url"]


async def test_publish_video_and_carousel_with_a_reply(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    video = await client.publish(
        tokens.access_token, profile, PublishContent(text="clip"), [media("clip.mp4")]
    )
    carousel = await client.publish(
        tokens.access_token,
        profile,
        PublishContent(text="album", first_comment="and one more thing"),
        [media("a.jpg"), media("b.jpg")],
    )
    posts = {p["id"]: p for p in await sandbox.posts("threads")}
    assert set(posts) == {video.platform_post_id, carousel.platform_post_id}
    assert posts[video.platform_post_id]["body"]["video_url"] == "http://media.test/clip.mp4"
    assert len(posts[carousel.platform_post_id]["body"]["children"]) == 2
    replies = [p for p in sandbox.store.posts.values() if p.kind == "comment"]
    assert [(r.text, r.extra["reply_to"]) for r in replies] == [
        ("and one more thing", carousel.platform_post_id)
    ]


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        ("rate_limit", FailureKind.TRANSIENT, "graph_4"),
        ("server_error", FailureKind.TRANSIENT, "graph_2"),
        ("token_expired", FailureKind.AUTH, "graph_190_463"),
        ("invalid_token", FailureKind.AUTH, "graph_190"),
    ],
)
async def test_faults_map_to_failure_kinds(
    sandbox: Sandbox, fault: str, kind: FailureKind, code: str
) -> None:
    client, tokens, profile = await connected(sandbox)
    await sandbox.fault("threads", fault, operation="publish")
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="hi"), [])
    )
    assert caught.kind is kind and caught.code == code
    assert not caught.outcome_unknown
    if fault == "rate_limit":
        assert caught.retry_after == 60.0
        assert client.rate_limit.remaining == 0
    assert await sandbox.posts("threads") == []


async def test_validation_errors_are_permanent_with_the_graph_message(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="x" * 501), [])
    )
    assert caught.kind is FailureKind.PERMANENT and caught.code == "graph_100"
    assert "at most 500 characters" in caught.message


async def test_timeout_after_create_is_resolved_by_read_back(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox, timeout=0.2)
    since = datetime.now(UTC)
    await sandbox.fault("threads", "timeout_after_create")
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="Just once"), [])
    )
    assert caught.outcome_unknown

    found = await client.find_recent(tokens.access_token, profile, text="Just once", since=since)
    [post] = await sandbox.posts("threads")
    assert found is not None and found.platform_post_id == post["id"] and found.url == post["url"]
    assert await client.find_recent(tokens.access_token, profile, text="Twice", since=since) is None


async def test_refresh_rotates_the_long_lived_token(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    assert tokens.refresh_token
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token and fresh.refresh_token == fresh.access_token
    assert await client.profile(fresh.access_token) == profile
    old = await fails(client.refresh(tokens.refresh_token))
    assert old.kind is FailureKind.AUTH


async def test_delete(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    since = datetime.now(UTC)
    published = await client.publish(tokens.access_token, profile, PublishContent(text="bye"), [])
    await client.delete(tokens.access_token, profile, published.platform_post_id)
    [post] = await sandbox.posts("threads")
    assert post["status"] == "deleted"
    assert await client.find_recent(tokens.access_token, profile, text="bye", since=since) is None
    await client.delete(tokens.access_token, profile, published.platform_post_id)  # idempotent


async def test_metrics_are_normalised_and_grow(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    published = await client.publish(
        tokens.access_token, profile, PublishContent(text="clip"), [media("clip.mp4")]
    )
    stored = sandbox.store.get_post("threads", published.platform_post_id)
    assert stored is not None
    stored.created_at -= timedelta(hours=1)
    first = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert set(first) == METRIC_NAMES
    assert first["video_views"] == first["impressions"] > 0
    stored.created_at -= timedelta(hours=24)
    second = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert second["impressions"] > first["impressions"]

    account = await client.account_metrics(tokens.access_token, profile)
    followers = sandbox.store.account("threads", profile.platform_account_id).followers
    assert account == {"followers": followers, "following": 0, "posts": 0}


async def test_rate_limit_state_is_parsed_from_usage_headers(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    await client.account_metrics(tokens.access_token, profile)
    state = client.rate_limit
    assert state.limit == 100 and state.remaining is not None and 0 < state.remaining < 100
