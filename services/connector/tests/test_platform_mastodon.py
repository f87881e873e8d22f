"""Mastodon client against the sandbox: OAuth, publishing with media, idempotency keys,
error classification, read-back after an unknown outcome, delete, metrics, rate limits."""

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

from chorus_connector.platforms.mastodon import MastodonClient
from chorus_connector.platforms.registry import client_class
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent

pytestmark = pytest.mark.integration

PLATFORM = "mastodon"


connected = partial(connect_bearer, cls=MastodonClient)


def content(text: str = "Hello fediverse", **extra: object) -> PublishContent:
    return PublishContent.model_validate({"text": text, **extra})


async def test_registry_finds_the_client() -> None:
    assert client_class(Platform.MASTODON) is MastodonClient


async def test_oauth_round_trip_with_pkce(sandbox: Sandbox) -> None:
    client = sandbox.client(MastodonClient)
    tokens = await connect(client, sandbox.http)
    assert tokens.access_token and tokens.refresh_token
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC)
    assert "write:statuses" in tokens.scopes
    profile = await client.profile(tokens.access_token)
    assert profile.platform_account_id and profile.username
    assert profile.followers is not None

    grant = await authorize(client, sandbox.http)
    wrong = await fails(
        client.exchange_code(
            code=grant.code, redirect_uri=grant.redirect_uri, code_verifier="not-the-verifier"
        )
    )
    assert wrong.kind is FailureKind.AUTH
    assert wrong.code == "invalid_grant"


async def test_publish_with_media_makes_exactly_one_status(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    post = content(
        "Launch day",
        link="https://example.com/launch",
        hashtags=["chorus"],
        options={"visibility": "unlisted"},
    )
    published = await client.publish(token, account, post, [media("photo.jpg"), media("clip.mp4")])

    stored = await sandbox.posts(PLATFORM)
    assert len(stored) == 1
    assert stored[0]["id"] == published.platform_post_id
    assert stored[0]["accountId"] == account.platform_account_id
    assert stored[0]["text"] == "Launch day\n\nhttps://example.com/launch\n\n#chorus"
    assert stored[0]["body"]["visibility"] == "unlisted"
    assert len(stored[0]["body"]["media_ids"]) == 2
    assert published.url and published.url.endswith(published.platform_post_id)


async def test_same_idempotency_key_twice_makes_one_status(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    first = await client.publish_idempotent(
        token, account, content("Only once"), [], idempotency_key="target-1"
    )
    second = await client.publish_idempotent(
        token, account, content("Only once"), [], idempotency_key="target-1"
    )
    assert first.platform_post_id == second.platform_post_id
    assert len(await sandbox.posts(PLATFORM)) == 1

    other = await client.publish_idempotent(
        token, account, content("Only once"), [], idempotency_key="target-2"
    )
    assert other.platform_post_id != first.platform_post_id
    assert len(await sandbox.posts(PLATFORM)) == 2


async def test_rate_limit_is_transient_with_retry_after(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, "rate_limit", operation="publish")
    caught = await fails(client.publish(token, account, content(), []))
    assert caught.kind is FailureKind.TRANSIENT
    assert caught.status == 429
    assert caught.retry_after is not None and caught.retry_after > 0
    assert client.rate_limit.remaining == 0
    assert await sandbox.posts(PLATFORM) == []


async def test_server_error_is_transient(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, "server_error")
    caught = await fails(client.publish(token, account, content(), []))
    assert caught.kind is FailureKind.TRANSIENT
    assert not caught.outcome_unknown


@pytest.mark.parametrize("kind", ["token_expired", "invalid_token"])
async def test_token_problems_are_auth(sandbox: Sandbox, kind: str) -> None:
    client, token, account = await connected(sandbox)
    await sandbox.fault(PLATFORM, kind)
    caught = await fails(client.publish(token, account, content(), []))
    assert caught.kind is FailureKind.AUTH
    assert caught.code == kind


async def test_validation_error_is_permanent_with_the_platform_message(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    caught = await fails(client.publish(token, account, content("x" * 501), []))
    assert caught.kind is FailureKind.PERMANENT
    assert caught.status == 422
    assert "character limit of 500" in caught.message


async def test_timeout_after_create_is_unknown_and_read_back_finds_the_status(
    sandbox: Sandbox,
) -> None:
    client, token, account = await connected(sandbox, timeout=0.2)
    since = datetime.now(UTC)
    await sandbox.fault(PLATFORM, "timeout_after_create")
    post = content("Did this go out? #maybe")
    caught = await fails(
        client.publish_idempotent(token, account, post, [], idempotency_key="target-9")
    )
    assert caught.outcome_unknown
    assert caught.kind is FailureKind.TRANSIENT

    found = await client.find_recent(token, account, text=post.text, since=since)
    stored = await sandbox.posts(PLATFORM)
    assert len(stored) == 1
    assert found is not None and found.platform_post_id == stored[0]["id"]
    assert await client.find_recent(token, account, text="something else", since=since) is None

    # A retry with the same key answers the same status instead of posting again.
    again = await client.publish_idempotent(token, account, post, [], idempotency_key="target-9")
    assert again.platform_post_id == found.platform_post_id
    assert len(await sandbox.posts(PLATFORM)) == 1


async def test_refresh_rotates_tokens(sandbox: Sandbox) -> None:
    client = sandbox.client(MastodonClient)
    tokens = await connect(client, sandbox.http)
    assert tokens.refresh_token
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token
    assert (await client.profile(fresh.access_token)).platform_account_id
    reused = await fails(client.refresh(tokens.refresh_token))
    assert reused.kind is FailureKind.AUTH


async def test_delete_removes_the_status_and_is_idempotent(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    published = await client.publish(token, account, content("Short-lived"), [])
    await client.delete(token, account, published.platform_post_id)
    assert [p["status"] for p in await sandbox.posts(PLATFORM)] == ["deleted"]
    await client.delete(token, account, published.platform_post_id)  # already gone: fine


async def test_metrics_are_normalised_and_grow(sandbox: Sandbox) -> None:
    client, token, account = await connected(sandbox)
    published = await client.publish(token, account, content("Count me"), [])
    first = await client.post_metrics(token, account, published.platform_post_id)
    assert set(first) == METRIC_NAMES
    stored = sandbox.store.get_post(PLATFORM, published.platform_post_id)
    assert stored is not None
    stored.created_at -= timedelta(days=1)
    later = await client.post_metrics(token, account, published.platform_post_id)
    assert later["likes"] > first["likes"]
    assert all(later[k] >= first[k] for k in first)

    totals = await client.account_metrics(token, account)
    assert totals["followers"] == account.followers
    assert totals["posts"] == 1
    assert totals["following"] >= 0


async def test_rate_limit_state_is_parsed_from_headers(sandbox: Sandbox) -> None:
    client, _, _ = await connected(sandbox)
    state = client.rate_limit
    assert state.limit == 300
    assert state.remaining is not None and 0 < state.remaining < 300
    assert state.reset_at is not None and state.reset_at > time.time()
    assert state.retry_after is None
