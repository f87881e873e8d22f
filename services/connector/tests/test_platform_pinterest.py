"""Pinterest client against the sandbox: OAuth (Basic-authenticated token endpoint, no
PKCE), image/carousel/video Pins, error classification, read-back after an unknown outcome,
delete, metrics, `x-ratelimit-*` headers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

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

from chorus_connector.platforms.base import AccountProfile
from chorus_connector.platforms.pinterest import PinterestClient
from chorus_connector.platforms.registry import client_class
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent

pytestmark = pytest.mark.integration

PLATFORM = "pinterest"


class Connected:
    def __init__(self, client: PinterestClient, token: str, account: AccountProfile, board: str):
        self.client, self.token, self.account, self.board = client, token, account, board

    def content(
        self, text: str = "Pin this", options: dict[str, str] | None = None, **extra: object
    ) -> PublishContent:
        options = {"board_id": self.board, **(options or {})}
        return PublishContent.model_validate({"text": text, "options": options, **extra})


async def connected(sandbox: Sandbox, *, timeout: float = 5.0) -> Connected:
    client, token, account = await connect_bearer(sandbox, cls=PinterestClient, timeout=timeout)
    boards = await client.boards(token)
    return Connected(client, token, account, boards[0]["id"])


async def test_registry_finds_the_client() -> None:
    assert client_class(Platform.PINTEREST) is PinterestClient


async def test_oauth_round_trip_without_pkce(sandbox: Sandbox) -> None:
    client = sandbox.client(PinterestClient)
    url = client.authorize_url(
        state="s", redirect_uri="https://x.test/cb", code_challenge="ignored", scopes=()
    )
    query = parse_qs(urlsplit(url).query)
    assert "code_challenge" not in query
    assert query["scope"] == ["boards:read,pins:read,pins:write,user_accounts:read"]

    tokens = await connect(client, sandbox.http)
    assert tokens.access_token and tokens.refresh_token
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC)
    assert "pins:write" in tokens.scopes
    profile = await client.profile(tokens.access_token)
    assert profile.platform_account_id and profile.username
    assert profile.followers is not None

    grant = await authorize(client, sandbox.http)
    wrong_redirect = await fails(
        client.exchange_code(
            code=grant.code, redirect_uri="https://evil.test/cb", code_verifier=None
        )
    )
    assert wrong_redirect.kind is FailureKind.AUTH
    # The code was spent by the failed attempt.
    replayed = await fails(
        client.exchange_code(code=grant.code, redirect_uri=grant.redirect_uri, code_verifier=None)
    )
    assert replayed.kind is FailureKind.AUTH


async def test_publish_image_pin_makes_exactly_one_pin(sandbox: Sandbox) -> None:
    c = await connected(sandbox)
    post = c.content(
        "Spring palette",
        title="Spring",
        link="https://example.com/spring",
        hashtags=["design"],
        options={"alt_text": "Five colour swatches"},
    )
    published = await c.client.publish(c.token, c.account, post, [media("swatch.jpg")])

    stored = await sandbox.posts(PLATFORM)
    assert len(stored) == 1
    body = stored[0]["body"]
    assert stored[0]["id"] == published.platform_post_id
    assert body["board_id"] == c.board
    assert body["title"] == "Spring"
    assert body["description"] == "Spring palette\n\n#design"
    assert body["link"] == "https://example.com/spring"
    assert body["alt_text"] == "Five colour swatches"
    assert body["media_source"] == {"source_type": "image_url", "url": media("swatch.jpg").url}
    assert published.url == f"https://www.pinterest.com/pin/{published.platform_post_id}/"


async def test_carousel_and_video_pins(sandbox: Sandbox) -> None:
    c = await connected(sandbox)
    await c.client.publish(c.token, c.account, c.content("Set"), [media("a.jpg"), media("b.png")])
    await c.client.publish(c.token, c.account, c.content("Clip"), [media("clip.mp4")])
    sources = [p["body"]["media_source"] for p in await sandbox.posts(PLATFORM)]
    assert sources[0]["source_type"] == "multiple_image_urls"
    assert len(sources[0]["items"]) == 2
    assert sources[1]["source_type"] == "video_id"
    assert sources[1]["media_id"] and sources[1]["cover_image_key_frame_time"] == 1


async def test_rate_limit_is_transient_with_retry_after_from_reset(sandbox: Sandbox) -> None:
    c = await connected(sandbox)
    await sandbox.fault(PLATFORM, "rate_limit", operation="publish")
    caught = await fails(c.client.publish(c.token, c.account, c.content(), [media("a.jpg")]))
    assert caught.kind is FailureKind.TRANSIENT
    assert caught.status == 429
    assert caught.retry_after is not None and 0 < caught.retry_after <= 60
    assert c.client.rate_limit.remaining == 0
    assert await sandbox.posts(PLATFORM) == []


async def test_server_error_is_transient(sandbox: Sandbox) -> None:
    c = await connected(sandbox)
    await sandbox.fault(PLATFORM, "server_error")
    caught = await fails(c.client.publish(c.token, c.account, c.content(), [media("a.jpg")]))
    assert caught.kind is FailureKind.TRANSIENT


@pytest.mark.parametrize("kind", ["token_expired", "invalid_token"])
async def test_token_problems_are_auth(sandbox: Sandbox, kind: str) -> None:
    c = await connected(sandbox)
    await sandbox.fault(PLATFORM, kind)
    caught = await fails(c.client.publish(c.token, c.account, c.content(), [media("a.jpg")]))
    assert caught.kind is FailureKind.AUTH
    assert caught.message == "Authentication failed."


async def test_validation_errors_are_permanent_with_the_platform_message(sandbox: Sandbox) -> None:
    c = await connected(sandbox)
    no_board = PublishContent(text="Where does this go?")
    caught = await fails(c.client.publish(c.token, c.account, no_board, [media("a.jpg")]))
    assert caught.kind is FailureKind.PERMANENT
    assert caught.message == "Invalid request body: 'board_id' is a required property"

    no_media = await fails(c.client.publish(c.token, c.account, c.content(), []))
    assert no_media.kind is FailureKind.PERMANENT
    assert "'media_source' is a required property" in no_media.message
    assert await sandbox.posts(PLATFORM) == []


async def test_timeout_after_create_is_unknown_and_read_back_finds_the_pin(
    sandbox: Sandbox,
) -> None:
    c = await connected(sandbox, timeout=0.2)
    since = datetime.now(UTC)
    await sandbox.fault(PLATFORM, "timeout_after_create")
    post = c.content("Did this pin stick?")
    caught = await fails(c.client.publish(c.token, c.account, post, [media("a.jpg")]))
    assert caught.outcome_unknown

    stored = await sandbox.posts(PLATFORM)
    assert len(stored) == 1
    found = await c.client.find_recent(c.token, c.account, text=post.text, since=since)
    assert found is not None and found.platform_post_id == stored[0]["id"]
    assert await c.client.find_recent(c.token, c.account, text="other", since=since) is None
    later = since + timedelta(minutes=5)
    assert await c.client.find_recent(c.token, c.account, text=post.text, since=later) is None


async def test_refresh_rotates_tokens(sandbox: Sandbox) -> None:
    client = sandbox.client(PinterestClient)
    tokens = await connect(client, sandbox.http)
    assert tokens.refresh_token
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token
    assert (await client.profile(fresh.access_token)).username
    reused = await fails(client.refresh(tokens.refresh_token))
    assert reused.kind is FailureKind.AUTH


async def test_delete_removes_the_pin(sandbox: Sandbox) -> None:
    c = await connected(sandbox)
    published = await c.client.publish(c.token, c.account, c.content(), [media("a.jpg")])
    await c.client.delete(c.token, c.account, published.platform_post_id)
    assert [p["status"] for p in await sandbox.posts(PLATFORM)] == ["deleted"]
    await c.client.delete(c.token, c.account, published.platform_post_id)  # already gone: fine


async def test_metrics_are_normalised_and_grow(sandbox: Sandbox) -> None:
    c = await connected(sandbox)
    published = await c.client.publish(c.token, c.account, c.content(), [media("clip.mp4")])
    first = await c.client.post_metrics(c.token, c.account, published.platform_post_id)
    assert set(first) == METRIC_NAMES
    stored = sandbox.store.get_post(PLATFORM, published.platform_post_id)
    assert stored is not None
    stored.created_at -= timedelta(days=1)
    later = await c.client.post_metrics(c.token, c.account, published.platform_post_id)
    assert later["impressions"] > first["impressions"]
    assert later["video_views"] > first["video_views"]
    assert all(later[k] >= first[k] for k in first)

    totals = await c.client.account_metrics(c.token, c.account)
    assert totals["followers"] == c.account.followers
    assert totals["posts"] == 1


async def test_rate_limit_state_is_parsed_from_headers(sandbox: Sandbox) -> None:
    c = await connected(sandbox)
    state = c.client.rate_limit
    assert state.limit == 1000  # from "1000, 1000;w=60"
    assert state.remaining is not None and 0 < state.remaining < 1000
    assert state.reset_at is not None and time.time() < state.reset_at <= time.time() + 61
