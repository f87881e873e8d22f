"""Mastodon (REST API v1/v2) client.

One instance per Mastodon server: `endpoints.api` is the server's base URL (e.g.
`https://mastodon.social`, or the sandbox's `<sandbox>/mastodon`). OAuth is the server's
authorization-code flow with PKCE (S256). Statuses are created with the caller's idempotency
key in `Idempotency-Key` (`publish_idempotent`), which Mastodon honours natively, so a retry
after an unknown outcome cannot post twice; `find_recent` still reads back by text and time.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from chorus_connector.platforms.base import (
    AccountProfile,
    MediaFile,
    OAuthTokens,
    PlatformClient,
    PlatformError,
    Published,
    RateLimitState,
    classify_status,
    compose_text,
    expires_at,
    json_body,
    normalise_text,
    normalised,
    parse_retry_after,
    parse_time,
    posted_since,
    send,
    send_observed,
    status_error,
    text_matches,
)
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent

MAX_MEDIA = 4
READ_BACK_LIMIT = 40
MEDIA_POLLS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # seconds between processing polls


class MastodonClient(PlatformClient):
    platform = Platform.MASTODON
    supports_pkce = True
    default_scopes = ("read:accounts", "read:statuses", "write:statuses", "write:media")

    # -- OAuth ---------------------------------------------------------------------------------

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None, scopes: tuple[str, ...]
    ) -> str:
        params = {
            "response_type": "code",
            "client_id": self.app.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes or self.default_scopes),
            "state": state,
        }
        if code_challenge:
            params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
        return f"{self.endpoints.auth_base}/oauth/authorize?{urlencode(params)}"

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> OAuthTokens:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
        }
        if code_verifier:
            form["code_verifier"] = code_verifier
        return await self._token(form)

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        return await self._token(
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
            },
            previous_refresh=refresh_token,
        )

    async def _token(
        self, form: dict[str, str], *, previous_refresh: str | None = None
    ) -> OAuthTokens:
        response = await self._send("POST", "/oauth/token", data=form)
        body = json_body(response)
        # Older servers issue tokens that never expire and no refresh token.
        return OAuthTokens(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token") or previous_refresh,
            expires_at=expires_at(body.get("expires_in")),
            scopes=tuple(str(body.get("scope") or "").split()),
        )

    async def profile(self, access_token: str) -> AccountProfile:
        body = json_body(
            await self._send("GET", "/api/v1/accounts/verify_credentials", access_token)
        )
        return AccountProfile(
            platform_account_id=str(body["id"]),
            username=body.get("acct") or body["username"],
            display_name=body.get("display_name") or None,
            followers=body.get("followers_count"),
        )

    # -- content -------------------------------------------------------------------------------

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        return await self._publish(access_token, content, media, idempotency_key=None)

    async def publish_idempotent(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
        *,
        idempotency_key: str,
    ) -> Published:
        return await self._publish(access_token, content, media, idempotency_key=idempotency_key)

    async def _publish(
        self,
        access_token: str,
        content: PublishContent,
        media: list[MediaFile],
        *,
        idempotency_key: str | None,
    ) -> Published:
        if len(media) > MAX_MEDIA:
            raise PlatformError(
                FailureKind.PERMANENT,
                "too_many_media",
                f"Mastodon accepts at most {MAX_MEDIA} attachments",
            )
        media_ids = [await self._upload(access_token, item) for item in media]
        body: dict[str, Any] = {"status": status_text(content), "media_ids": media_ids}
        options = content.options
        if options.get("visibility"):
            body["visibility"] = options["visibility"]
        if options.get("spoiler_text") or options.get("content_warning"):
            body["spoiler_text"] = options.get("spoiler_text") or options["content_warning"]
        if options.get("language"):
            body["language"] = options["language"]
        if options.get("sensitive", "").lower() in ("1", "true", "yes"):
            body["sensitive"] = True
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = await self._send(
            "POST", "/api/v1/statuses", access_token, json=body, headers=headers, creates=True
        )
        return _published(json_body(response))

    async def _upload(self, access_token: str, item: MediaFile) -> str:
        data = await self._download(item)
        filename = item.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "upload"
        response = await self._send(
            "POST",
            "/api/v2/media",
            access_token,
            files={"file": (filename, data, item.mime_type)},
        )
        body = json_body(response)
        media_id = str(body["id"])
        if response.status_code == 202 or body.get("url") is None:
            await self._wait_processed(access_token, media_id)
        return media_id

    async def _wait_processed(self, access_token: str, media_id: str) -> None:
        for delay in MEDIA_POLLS:
            await asyncio.sleep(delay)
            response = await self._send("GET", f"/api/v1/media/{media_id}", access_token)
            if response.status_code == 200 and json_body(response).get("url"):
                return
        raise PlatformError(
            FailureKind.TRANSIENT, "media_processing", "Mastodon is still processing the media"
        )

    async def _download(self, item: MediaFile) -> bytes:
        response = await send(self, self.http.build_request("GET", item.url))
        if response.status_code != 200:
            raise PlatformError(
                classify_status(response.status_code),
                "media_unavailable",
                f"media {item.url} answered {response.status_code}",
                status=response.status_code,
            )
        return response.content

    async def find_recent(
        self, access_token: str, account: AccountProfile, *, text: str, since: datetime
    ) -> Published | None:
        response = await self._send(
            "GET",
            f"/api/v1/accounts/{account.platform_account_id}/statuses",
            access_token,
            params={"limit": READ_BACK_LIMIT, "exclude_replies": "true", "exclude_reblogs": "true"},
        )
        for status in json_body(response):
            posted = html_to_text(status.get("content") or "")
            if posted_since(parse_time(status.get("created_at")), since) and text_matches(
                posted, text
            ):
                return _published(status)
        return None

    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None:
        try:
            await self._send("DELETE", f"/api/v1/statuses/{platform_post_id}", access_token)
        except PlatformError as exc:
            if exc.status != 404:  # already gone: deleting is idempotent
                raise

    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]:
        body = json_body(
            await self._send("GET", f"/api/v1/statuses/{platform_post_id}", access_token)
        )
        return normalised(
            likes=body.get("favourites_count"),
            comments=body.get("replies_count"),
            shares=body.get("reblogs_count"),
        )

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        body = json_body(
            await self._send("GET", "/api/v1/accounts/verify_credentials", access_token)
        )
        return {
            "followers": int(body.get("followers_count") or 0),
            "following": int(body.get("following_count") or 0),
            "posts": int(body.get("statuses_count") or 0),
        }

    # -- transport -------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        access_token: str | None = None,
        *,
        creates: bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(headers or {})
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        request = self.http.build_request(
            method, f"{self.endpoints.api}{path}", headers=headers, **kwargs
        )
        return await send_observed(self, request, creates, rate_limit_state, error_from)


CLIENT = MastodonClient


# -- helpers -----------------------------------------------------------------------------------


def status_text(content: PublishContent) -> str:
    """The status: the text, its link and hashtags, then any mention it does not name yet."""
    text = compose_text(content)
    mentions = [f"@{m.lstrip('@')}" for m in content.mentions if m.strip("@ ")]
    missing = " ".join(m for m in mentions if m.lower() not in normalise_text(text))
    return f"{text}\n\n{missing}" if text and missing else text or missing


def html_to_text(markup: str) -> str:
    """Status HTML back to plain text: paragraphs and breaks become newlines, tags go."""
    markup = re.sub(r"<br\s*/?>", "\n", markup)
    markup = re.sub(r"</p>\s*<p>", "\n\n", markup)
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _published(status: dict[str, Any]) -> Published:
    return Published(
        platform_post_id=str(status["id"]),
        url=status.get("url") or status.get("uri"),
        published_at=parse_time(status.get("created_at")) or datetime.now(UTC),
    )


def rate_limit_state(response: httpx.Response) -> RateLimitState:
    """`X-RateLimit-Limit/Remaining` (counts) and `X-RateLimit-Reset` (an ISO 8601 time)."""
    h = response.headers
    reset = parse_time(h.get("x-ratelimit-reset"))
    reset_at = reset.timestamp() if reset else None
    retry_after = parse_retry_after(h.get("retry-after"))
    if response.status_code == 429 and retry_after is None and reset_at is not None:
        retry_after = max(0.0, reset_at - time.time())
    return RateLimitState(
        limit=_int(h.get("x-ratelimit-limit")),
        remaining=_int(h.get("x-ratelimit-remaining")),
        reset_at=reset_at,
        retry_after=retry_after,
    )


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def error_from(response: httpx.Response, rate: RateLimitState) -> PlatformError:
    status = response.status_code
    body = json_body(response)
    message = ""
    if isinstance(body, dict):
        message = str(body.get("error_description") or body.get("error") or "")
    message = message or response.reason_phrase or f"HTTP {status}"
    if status == 401:
        code = "token_expired" if "expired" in message.lower() else "invalid_token"
        return PlatformError(FailureKind.AUTH, code, message, status=status)
    if status == 400 and isinstance(body, dict) and body.get("error") == "invalid_grant":
        return PlatformError(FailureKind.AUTH, "invalid_grant", message, status=status)
    if status == 429:
        return PlatformError(
            FailureKind.TRANSIENT,
            "rate_limited",
            message,
            status=status,
            retry_after=rate.retry_after,
        )
    codes = {403: "forbidden", 404: "not_found", 422: "validation"}
    code = codes.get(status, "server_error" if status >= 500 else f"http_{status}")
    return status_error(response, code, message)
