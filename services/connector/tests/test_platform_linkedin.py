"""LinkedIn (versioned REST, Posts API) against the sandbox: OAuth with refresh tokens, little
text, image/multi-image/video uploads, articles, error mapping (no rate-limit headers: daily
quotas), read-back after an unknown outcome, delete and member post analytics."""

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
    PlatformError,
)
from chorus_connector.platforms.linkedin import (
    LinkedInClient,
    escape_little_text,
    unescape_little_text,
)
from chorus_contracts.events.connector import FailureKind, PublishContent

pytestmark = pytest.mark.integration


connected = partial(connect_client, cls=LinkedInClient, poll_interval=0.001)


def test_little_text_round_trip() -> None:
    text = "Q&A (live) with @chorus_team at 5*2 #launch [today]"
    escaped = escape_little_text(text)
    assert escaped == (
        "Q&A \\(live\\) with \\@chorus\\_team at 5\\*2 {hashtag|\\#|launch} \\[today\\]"
    )
    assert unescape_little_text(escaped) == text


async def test_oauth_round_trip(sandbox: Sandbox) -> None:
    client = sandbox.client(LinkedInClient)
    url = client.authorize_url(
        state="s", redirect_uri="https://chorus.test/cb", code_challenge=None, scopes=()
    )
    assert url.startswith("http://sandbox/linkedin/oauth/v2/authorization?")
    assert "w_member_social" in url

    tokens = await connect(client, sandbox.http)
    assert tokens.refresh_token and tokens.expires_at and "w_member_social" in tokens.scopes
    profile = await client.profile(tokens.access_token)
    account = sandbox.store.account("linkedin", profile.platform_account_id)
    assert profile.username == account.display_name and profile.followers == account.followers

    grant = await authorize(client, sandbox.http)
    wrong = LinkedInClient(
        sandbox.new_http(), client.endpoints, AppCredentials(APP.client_id, "not-the-secret")
    )
    bad_secret = await fails(
        wrong.exchange_code(code=grant.code, redirect_uri=grant.redirect_uri, code_verifier=None)
    )
    assert bad_secret.kind is FailureKind.AUTH and bad_secret.code == "invalid_client"
    wrong_redirect = await fails(
        client.exchange_code(
            code=grant.code, redirect_uri="https://elsewhere.test/cb", code_verifier=None
        )
    )
    assert wrong_redirect.kind is FailureKind.AUTH
    assert wrong_redirect.code == "invalid_grant"


async def test_publish_text_sends_little_text_and_versioned_headers(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    content = PublishContent(text="Big news (really) #launch", hashtags=["launch", "b2b"])
    published = await client.publish(tokens.access_token, profile, content, [])

    [post] = await sandbox.posts("linkedin")
    assert post["id"] == published.platform_post_id
    assert published.platform_post_id.startswith("urn:li:share:")
    body = post["body"]
    assert body["author"] == f"urn:li:person:{profile.platform_account_id}"
    assert body["commentary"] == ("Big news \\(really\\) {hashtag|\\#|launch}\n\n{hashtag|\\#|b2b}")
    assert body["lifecycleState"] == "PUBLISHED" and body["visibility"] == "PUBLIC"
    assert post["text"] == "Big news (really) #launch\n\n#b2b"
    assert published.url == f"https://www.linkedin.com/feed/update/{published.platform_post_id}/"


async def test_publish_article_images_and_video(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    article = await client.publish(
        tokens.access_token,
        profile,
        PublishContent(text="Read this", link="https://chorus.test/blog", title="Blog"),
        [],
    )
    one = await client.publish(
        tokens.access_token,
        profile,
        PublishContent(text="one", first_comment="Details in the comments"),
        [media("a.jpg")],
    )
    many = await client.publish(
        tokens.access_token, profile, PublishContent(text="many"), [media("a.jpg"), media("b.png")]
    )
    video = await client.publish(
        tokens.access_token, profile, PublishContent(text="clip"), [media("clip.mp4")]
    )
    posts = {p["id"]: p["body"] for p in await sandbox.posts("linkedin")}
    assert posts[article.platform_post_id]["content"] == {
        "article": {"source": "https://chorus.test/blog", "title": "Blog"}
    }
    assert posts[one.platform_post_id]["content"]["media"]["id"].startswith("urn:li:image:")
    assert len(posts[many.platform_post_id]["content"]["multiImage"]["images"]) == 2
    assert posts[video.platform_post_id]["content"]["media"]["id"].startswith("urn:li:video:")
    comments = [p for p in sandbox.store.posts.values() if p.kind == "comment"]
    assert [c.extra["parent"] for c in comments] == [one.platform_post_id]


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        ("rate_limit", FailureKind.TRANSIENT, "too_many_requests"),
        ("server_error", FailureKind.TRANSIENT, "http_503"),
        ("token_expired", FailureKind.AUTH, "expired_access_token"),
        ("invalid_token", FailureKind.AUTH, "invalid_access_token"),
    ],
)
async def test_faults_map_to_failure_kinds(
    sandbox: Sandbox, fault: str, kind: FailureKind, code: str
) -> None:
    client, tokens, profile = await connected(sandbox)
    await sandbox.fault("linkedin", fault, operation="publish")
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="hi"), [])
    )
    assert caught.kind is kind and caught.code == code
    assert not caught.outcome_unknown
    if fault == "rate_limit":
        # No Retry-After from LinkedIn: a minute, and the daily budget is spent until midnight.
        assert caught.retry_after == 60.0
        assert client.rate_limit.remaining == 0
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        assert (
            client.rate_limit.reset_at
            == datetime.combine(tomorrow, datetime.min.time(), UTC).timestamp()
        )
    assert await sandbox.posts("linkedin") == []


async def test_validation_errors_are_permanent_with_the_platform_message(
    sandbox: Sandbox,
) -> None:
    client, tokens, profile = await connected(sandbox)
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text="x" * 3001), [])
    )
    assert caught.kind is FailureKind.PERMANENT and caught.status == 422
    assert "/commentary" in caught.message and "3000" in caught.message

    client.api_version = "202001"
    sunset = await fails(client.publish(tokens.access_token, profile, PublishContent(text="x"), []))
    assert sunset.kind is FailureKind.PERMANENT
    assert sunset.code == "nonexistent_version"


async def test_timeout_after_create_is_resolved_by_read_back(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox, timeout=0.2)
    since = datetime.now(UTC)
    await sandbox.fault("linkedin", "timeout_after_create")
    text = "Once (and only once) #reliability"
    caught = await fails(
        client.publish(tokens.access_token, profile, PublishContent(text=text), [])
    )
    assert caught.outcome_unknown

    found = await client.find_recent(tokens.access_token, profile, text=text, since=since)
    [post] = await sandbox.posts("linkedin")
    assert found is not None and found.platform_post_id == post["id"]
    assert await client.find_recent(tokens.access_token, profile, text="Twice", since=since) is None


async def test_refresh_rotates_tokens(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    assert tokens.refresh_token
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token and fresh.refresh_token != tokens.refresh_token
    assert (await client.profile(fresh.access_token)).platform_account_id == (
        profile.platform_account_id
    )
    reused = await fails(client.refresh(tokens.refresh_token))
    assert reused.kind is FailureKind.AUTH


async def test_delete(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    since = datetime.now(UTC)
    published = await client.publish(tokens.access_token, profile, PublishContent(text="bye"), [])
    await client.delete(tokens.access_token, profile, published.platform_post_id)
    [post] = await sandbox.posts("linkedin")
    assert post["status"] == "deleted"
    assert await client.find_recent(tokens.access_token, profile, text="bye", since=since) is None
    await client.delete(tokens.access_token, profile, published.platform_post_id)  # idempotent


async def test_metrics_are_normalised_and_grow(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    published = await client.publish(
        tokens.access_token, profile, PublishContent(text="metrics"), []
    )
    stored = sandbox.store.get_post("linkedin", published.platform_post_id)
    assert stored is not None
    stored.created_at -= timedelta(hours=1)
    first = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert set(first) == METRIC_NAMES
    assert first["impressions"] > first["reach"] > 0
    stored.created_at -= timedelta(hours=24)
    second = await client.post_metrics(tokens.access_token, profile, published.platform_post_id)
    assert second["impressions"] > first["impressions"]

    account = await client.account_metrics(tokens.access_token, profile)
    followers = sandbox.store.account("linkedin", profile.platform_account_id).followers
    assert account == {"followers": followers, "following": 0, "posts": 0}


async def test_rate_limit_state_resets_after_a_successful_call(sandbox: Sandbox) -> None:
    client, tokens, profile = await connected(sandbox)
    await sandbox.fault("linkedin", "rate_limit")
    with pytest.raises(PlatformError):
        await client.account_metrics(tokens.access_token, profile)
    assert client.rate_limit.remaining == 0
    await client.account_metrics(tokens.access_token, profile)
    assert client.rate_limit.remaining is None and client.rate_limit.retry_after is None
