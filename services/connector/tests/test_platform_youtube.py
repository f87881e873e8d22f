"""YouTube client against the sandbox: Google OAuth with PKCE, resumable video upload,
error classification by Google error reason, read-back through the uploads playlist after an
unknown outcome, delete, metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from urllib.parse import parse_qs, urlsplit

import httpx
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

from chorus_connector.platforms.registry import client_class
from chorus_connector.platforms.youtube import (
    YouTubeClient,
    error_from,
    seconds_until_quota_reset,
)
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent
from chorus_sandbox.platforms.youtube import google_error

pytestmark = pytest.mark.integration

PLATFORM = "youtube"


connected = partial(connect_bearer, cls=YouTubeClient)


def content(
    text: str = "A short film", title: str | None = "Our film", **extra: object
) -> PublishContent:
    return PublishContent.model_validate({"text": text, "title": title, **extra})


async def test_registry_finds_the_client() -> None:
    assert client_class(Platform.YOUTUBE) is YouTubeClient


async def test_oauth_round_trip_with_pkce_and_offline_access(sandbox: Sandbox) -> None:
    client = sandbox.client(YouTubeClient)
    url = client.authorize_url(
        state="s", redirect_uri="https://x.test/cb", code_challenge="c", scopes=()
    )
    query = parse_qs(urlsplit(url).query)
    assert query["access_type"] == ["offline"]
    assert query["code_challenge_method"] == ["S256"]

    tokens = await connect(client, sandbox.http)
    assert tokens.access_token and tokens.refresh_token
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC)
    profile = await client.profile(tokens.access_token)
    assert profile.platform_account_id.startswith("UC")
    assert profile.username.startswith("@")
    assert profile.followers is not None

    grant = await authorize(client, sandbox.http)
    wrong = await fails(
        client.exchange_code(
            code=grant.code, redirect_uri=grant.redirect_uri, code_verifier="not-the-verifier"
        )
    )
    assert wrong.kind is FailureKind.AUTH
    assert wrong.code == "invalid_grant"


async def test_publish_uploads_exactly_one_video(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    post = content(
        "Behind the scenes",
        hashtags=["chorus", "film"],
        link="https://example.com/film",
        options={"privacy_status": "unlisted"},
    )
    published = await client.publish(token, account, post, [media("clip.mp4")])

    stored = await sandbox.posts(PLATFORM)
    assert len(stored) == 1
    body = stored[0]["body"]
    assert stored[0]["id"] == published.platform_post_id
    assert body["snippet"]["title"] == "Our film"
    assert body["snippet"]["description"] == (
        "Behind the scenes\n\nhttps://example.com/film\n\n#chorus #film"
    )
    assert body["snippet"]["tags"] == ["chorus", "film"]
    assert body["status"]["privacyStatus"] == "unlisted"
    assert body["mimeType"] == "video/mp4" and body["bytes"] > 0
    assert published.url == f"https://www.youtube.com/watch?v={published.platform_post_id}"


async def test_a_post_without_exactly_one_video_is_refused(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    for files in ([], [media("a.jpg")], [media("a.mp4"), media("b.mp4")]):
        caught = await fails(client.publish(token, account, content(), files))
        assert caught.kind is FailureKind.PERMANENT
        assert caught.code == "video_required"
    assert await sandbox.posts(PLATFORM) == []


async def test_rate_limit_is_transient_with_retry_after(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, "rate_limit", operation="publish")
    caught = await fails(client.publish(token, account, content(), [media("clip.mp4")]))
    assert caught.kind is FailureKind.TRANSIENT
    assert (caught.status, caught.code) == (403, "rateLimitExceeded")
    assert caught.retry_after == 30
    assert client.rate_limit.remaining == 0 and client.rate_limit.retry_after == 30
    assert await sandbox.posts(PLATFORM) == []


def test_quota_exceeded_waits_for_the_pacific_midnight_reset() -> None:
    request = httpx.Request("GET", "https://www.googleapis.com/youtube/v3/videos")
    body = google_error(
        403,
        "quotaExceeded",
        "The request cannot be completed because you have exceeded your quota.",
    )
    error = error_from(httpx.Response(403, json=body, request=request))
    assert error.kind is FailureKind.TRANSIENT
    assert error.code == "quotaExceeded"
    assert error.retry_after is not None and 0 < error.retry_after <= 25 * 3600
    # 23:30 in Los Angeles (07:30 UTC in summer) is 30 minutes from the reset.
    assert seconds_until_quota_reset(datetime(2024, 7, 1, 6, 30, tzinfo=UTC)) == 30 * 60

    forbidden = google_error(403, "forbidden", "The video cannot be deleted.")
    assert (
        error_from(httpx.Response(403, json=forbidden, request=request)).kind
        is FailureKind.PERMANENT
    )


async def test_server_error_is_transient(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, "server_error")
    caught = await fails(client.publish(token, account, content(), [media("clip.mp4")]))
    assert caught.kind is FailureKind.TRANSIENT
    assert caught.code == "backendError"


@pytest.mark.parametrize("kind", ["token_expired", "invalid_token"])
async def test_token_problems_are_auth(sandbox: Sandbox, kind: str) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, kind)
    caught = await fails(client.publish(token, account, content(), [media("clip.mp4")]))
    assert caught.kind is FailureKind.AUTH
    assert caught.code == "authError"


async def test_missing_title_is_permanent_with_the_platform_message(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    caught = await fails(client.publish(token, account, content(title=None), [media("clip.mp4")]))
    assert caught.kind is FailureKind.PERMANENT
    assert caught.code == "invalidTitle"
    assert caught.message == "The request metadata specifies an invalid or empty video title."
    assert await sandbox.posts(PLATFORM) == []


async def test_timeout_after_create_is_unknown_and_read_back_finds_the_video(
    sandbox: Sandbox,
) -> None:
    client, token, account = await connected(sandbox, timeout=0.2)
    since = datetime.now(UTC)
    await sandbox.fault(PLATFORM, "timeout_after_create")
    post = content("Did this upload finish?")
    caught = await fails(client.publish(token, account, post, [media("clip.mp4")]))
    assert caught.outcome_unknown

    stored = await sandbox.posts(PLATFORM)
    assert len(stored) == 1
    found = await client.find_recent(token, account, text=post.text, since=since)
    assert found is not None and found.platform_post_id == stored[0]["id"]
    assert await client.find_recent(token, account, text="another video", since=since) is None
    later = since + timedelta(minutes=5)
    assert await client.find_recent(token, account, text=post.text, since=later) is None


async def test_refresh_keeps_working(sandbox: Sandbox) -> None:
    client = sandbox.client(YouTubeClient)
    tokens = await connect(client, sandbox.http)
    assert tokens.refresh_token
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token  # Google keeps it; the sandbox rotates it
    assert (await client.profile(fresh.access_token)).platform_account_id
    reused = await fails(client.refresh(tokens.refresh_token))
    assert reused.kind is FailureKind.AUTH


async def test_delete_removes_the_video(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    published = await client.publish(token, account, content(), [media("clip.mp4")])
    await client.delete(token, account, published.platform_post_id)
    assert [p["status"] for p in await sandbox.posts(PLATFORM)] == ["deleted"]
    await client.delete(token, account, published.platform_post_id)  # already gone: fine
    gone = await fails(client.post_metrics(token, account, published.platform_post_id))
    assert gone.kind is FailureKind.PERMANENT


async def test_metrics_are_normalised_and_grow(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    published = await client.publish(token, account, content(), [media("clip.mp4")])
    first = await client.post_metrics(token, account, published.platform_post_id)
    assert set(first) == METRIC_NAMES
    stored = sandbox.store.get_post(PLATFORM, published.platform_post_id)
    assert stored is not None
    stored.created_at -= timedelta(days=1)
    later = await client.post_metrics(token, account, published.platform_post_id)
    assert later["video_views"] > first["video_views"]
    assert later["likes"] > first["likes"]
    assert all(later[k] >= first[k] for k in first)

    totals = await client.account_metrics(token, account)
    assert totals == {"followers": account.followers, "following": 0, "posts": 1}


async def test_rate_limit_state_without_headers(sandbox: Sandbox) -> None:
    client, _, _ = await connected(sandbox)
    # YouTube reports no budget in headers: the state says nothing until a limit is hit.
    assert client.rate_limit.remaining is None
    assert client.rate_limit.retry_after is None
