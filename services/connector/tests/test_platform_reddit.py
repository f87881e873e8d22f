"""Reddit client against the sandbox: OAuth (Basic-authenticated token endpoint, permanent
duration, no PKCE), self/link/image submissions, `json.errors` and HTTP error classification,
read-back after an unknown outcome, delete, metrics, `x-ratelimit-*` headers."""

from __future__ import annotations

import time
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

from chorus_connector.platforms.reddit import (
    RedditClient,
    derive_title,
    error_from,
    parse_wait,
    rate_limit_state,
)
from chorus_connector.platforms.registry import client_class
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent

pytestmark = pytest.mark.integration

PLATFORM = "reddit"


connected = partial(connect_bearer, cls=RedditClient)


def content(
    text: str = "Weekly thread\n\nWhat are you building?",
    subreddit: str | None = "chorus_test",
    **extra: object,
) -> PublishContent:
    options = {"subreddit": subreddit} if subreddit else {}
    return PublishContent.model_validate({"text": text, "options": options, **extra})


async def test_registry_finds_the_client() -> None:
    assert client_class(Platform.REDDIT) is RedditClient


async def test_oauth_round_trip_with_permanent_duration(sandbox: Sandbox) -> None:
    client = sandbox.client(RedditClient)
    url = client.authorize_url(
        state="s", redirect_uri="https://x.test/cb", code_challenge="x", scopes=()
    )
    query = parse_qs(urlsplit(url).query)
    assert query["duration"] == ["permanent"]
    assert "code_challenge" not in query

    tokens = await connect(client, sandbox.http)
    assert tokens.access_token and tokens.refresh_token
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC)
    assert "submit" in tokens.scopes
    profile = await client.profile(tokens.access_token)
    assert profile.platform_account_id and profile.username
    assert profile.followers is not None

    grant = await authorize(client, sandbox.http)
    # Reddit answers a bad grant with a 200.
    wrong = await fails(
        client.exchange_code(
            code="not-the-code", redirect_uri=grant.redirect_uri, code_verifier=None
        )
    )
    assert wrong.kind is FailureKind.AUTH
    assert wrong.code == "invalid_grant"


async def test_self_post_makes_exactly_one_submission(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    post = content(
        link="https://example.com/thread", options={"subreddit": "r/chorus_test", "nsfw": "false"}
    )
    published = await client.publish(token, account, post, [])

    stored = await sandbox.posts(PLATFORM)
    assert len(stored) == 1
    body = stored[0]["body"]
    assert published.platform_post_id == f"t3_{stored[0]['id']}"
    assert body["sr"] == "chorus_test"
    assert body["kind"] == "self"
    assert body["title"] == "Weekly thread"
    assert body["text"] == "Weekly thread\n\nWhat are you building?\n\nhttps://example.com/thread"
    assert published.url and "/r/chorus_test/comments/" in published.url


async def test_link_and_image_submissions(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    await client.publish(
        token, account, content("", title="A link", link="https://example.com/l"), []
    )
    await client.publish(token, account, content("Look at this"), [media("photo.jpg")])
    bodies = [p["body"] for p in await sandbox.posts(PLATFORM)]
    assert [(b["kind"], b["title"]) for b in bodies] == [
        ("link", "A link"),
        ("image", "Look at this"),
    ]
    assert bodies[0]["url"] == "https://example.com/l"
    assert bodies[1]["url"].endswith("/photo.jpg")
    video = await fails(client.publish(token, account, content(), [media("clip.mp4")]))
    assert video.kind is FailureKind.PERMANENT


async def test_rate_limit_is_transient_with_retry_after_from_reset(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, "rate_limit", operation="publish")
    caught = await fails(client.publish(token, account, content(), []))
    assert caught.kind is FailureKind.TRANSIENT
    assert caught.status == 429
    assert caught.retry_after is not None and 0 < caught.retry_after <= 600
    assert client.rate_limit.remaining == 0
    assert await sandbox.posts(PLATFORM) == []


def test_submit_ratelimit_error_names_its_wait() -> None:
    assert parse_wait("Take a break for 9 minutes before trying again.") == 540
    assert parse_wait("Take a break for 30 seconds before trying again.") == 30
    assert parse_wait("no number here") is None
    assert derive_title("\n  First line  \nsecond") == "First line"
    assert len(derive_title("word " * 100)) <= 300


async def test_server_error_is_transient(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, "server_error")
    caught = await fails(client.publish(token, account, content(), []))
    assert caught.kind is FailureKind.TRANSIENT


@pytest.mark.parametrize("kind", ["token_expired", "invalid_token"])
async def test_token_problems_are_auth(sandbox: Sandbox, kind: str) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, kind)
    caught = await fails(client.publish(token, account, content(), []))
    assert caught.kind is FailureKind.AUTH
    assert caught.status == 401


async def test_missing_subreddit_is_permanent_with_the_platform_message(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    caught = await fails(client.publish(token, account, content(subreddit=None), []))
    assert caught.kind is FailureKind.PERMANENT
    assert caught.code == "SUBREDDIT_REQUIRED"
    assert caught.message == "you must specify a subreddit (field: sr)"
    bad = await fails(client.publish(token, account, content(subreddit="no such place!"), []))
    assert bad.code == "SUBREDDIT_NOEXIST"
    assert await sandbox.posts(PLATFORM) == []


async def test_timeout_after_create_is_unknown_and_read_back_finds_the_submission(
    sandbox: Sandbox,
) -> None:
    client, token, account = await connected(sandbox, timeout=0.2)
    since = datetime.now(UTC)
    await sandbox.fault(PLATFORM, "timeout_after_create")
    post = content("Did this go up?\n\nAsking for a friend.")
    caught = await fails(client.publish(token, account, post, []))
    assert caught.outcome_unknown

    stored = await sandbox.posts(PLATFORM)
    assert len(stored) == 1
    found = await client.find_recent(token, account, text=post.text, since=since)
    assert found is not None and found.platform_post_id == f"t3_{stored[0]['id']}"
    assert await client.find_recent(token, account, text="another", since=since) is None
    later = since + timedelta(minutes=5)
    assert await client.find_recent(token, account, text=post.text, since=later) is None


async def test_refresh_rotates_tokens(sandbox: Sandbox) -> None:
    client = sandbox.client(RedditClient)
    tokens = await connect(client, sandbox.http)
    assert tokens.refresh_token
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token
    assert (await client.profile(fresh.access_token)).username
    reused = await fails(client.refresh(tokens.refresh_token))
    assert reused.kind is FailureKind.AUTH


async def test_delete_removes_the_submission(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    published = await client.publish(token, account, content(), [])
    await client.delete(token, account, published.platform_post_id)
    assert [p["status"] for p in await sandbox.posts(PLATFORM)] == ["deleted"]
    await client.delete(token, account, published.platform_post_id)  # Reddit answers {} again


async def test_metrics_are_normalised_and_grow(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    published = await client.publish(token, account, content(), [])
    first = await client.post_metrics(token, account, published.platform_post_id)
    assert set(first) == METRIC_NAMES
    stored = sandbox.store.get_post(PLATFORM, published.platform_post_id.removeprefix("t3_"))
    assert stored is not None
    stored.created_at -= timedelta(days=1)
    later = await client.post_metrics(token, account, published.platform_post_id)
    assert later["likes"] > first["likes"]
    assert all(later[k] >= first[k] for k in first)

    totals = await client.account_metrics(token, account)
    assert totals == {"followers": account.followers, "following": 0, "posts": 0}


async def test_rate_limit_state_is_parsed_from_headers(sandbox: Sandbox) -> None:
    client, _, _ = await connected(sandbox)
    state = client.rate_limit
    assert state.limit == 1000
    assert state.remaining is not None and 0 < state.remaining < 1000
    assert state.reset_at is not None and time.time() < state.reset_at <= time.time() + 601


def test_non_json_server_errors_are_still_classified() -> None:
    request = httpx.Request("POST", "https://oauth.reddit.com/api/submit")
    response = httpx.Response(502, text="<html>Bad Gateway</html>", request=request)
    error = error_from(response, rate_limit_state(response))
    assert error.kind is FailureKind.TRANSIENT
    assert error.status == 502
