"""X (Twitter) API v2 client.

OAuth 2.0 authorization code with PKCE (confidential client: Basic auth at the token endpoint),
posts through `POST /2/tweets`, media through the v2 chunked upload (`initialize` → `append` →
`finalize` → `STATUS` while processing), read-back through the user's timeline, metrics from
`public_metrics` / `non_public_metrics` / `organic_metrics`. Rate limits come from
`x-rate-limit-limit/remaining/reset` (epoch seconds); a 429 retries after the reset.

Real endpoints: `Endpoints(api="https://api.x.com", auth="https://x.com")`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from chorus_connector.platforms.base import (
    READBACK_SKEW,
    AccountProfile,
    MediaFile,
    OAuthTokens,
    PlatformClient,
    PlatformError,
    Published,
    RateLimitState,
    compose_text,
    expires_at,
    json_object,
    normalised,
    parse_retry_after,
    posted_since,
    send,
    text_matches,
)
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    429: "rate_limited",
}


class XClient(PlatformClient):
    platform = Platform.X
    supports_pkce = True
    default_scopes = ("tweet.read", "tweet.write", "users.read", "offline.access", "media.write")
    chunk_size = 4 * 1024 * 1024
    max_media = 4
    poll_interval = 1.0  # seconds between media STATUS polls (X's check_after_secs wins if larger)
    poll_attempts = 120
    rate_limit_fallback = 60.0  # seconds to wait on a 429 that names no reset

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
        return f"{self.endpoints.auth_base}/i/oauth2/authorize?{urlencode(params)}"

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> OAuthTokens:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.app.client_id,
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
            }
        )

    async def _token(self, form: dict[str, str]) -> OAuthTokens:
        request = self.http.build_request(
            "POST",
            self._url("/2/oauth2/token"),
            data=form,
            headers={"Authorization": _basic(self.app.client_id, self.app.client_secret)},
        )
        response = await send(self, request)
        self._observe(response)
        body = json_object(response)
        if response.is_error or "access_token" not in body:
            kind = (
                FailureKind.TRANSIENT
                if response.status_code == 429 or response.status_code >= 500
                else FailureKind.AUTH
            )
            raise PlatformError(
                kind,
                str(body.get("error") or _STATUS_CODES.get(response.status_code, "oauth_error")),
                str(body.get("error_description") or body.get("detail") or response.text[:200]),
                status=response.status_code,
                retry_after=self.rate_limit.retry_after if kind is FailureKind.TRANSIENT else None,
            )
        return OAuthTokens(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_at=expires_at(body.get("expires_in")),
            scopes=tuple(str(body.get("scope") or "").split()),
        )

    async def profile(self, access_token: str) -> AccountProfile:
        data = (await self._me(access_token))["data"]
        return AccountProfile(
            platform_account_id=str(data["id"]),
            username=data["username"],
            display_name=data.get("name"),
            followers=(data.get("public_metrics") or {}).get("followers_count"),
        )

    async def _me(self, access_token: str) -> dict[str, Any]:
        response = await self._call(
            "GET",
            "/2/users/me",
            access_token,
            params={"user.fields": "public_metrics,created_at"},
        )
        return json_object(response)

    # -- content -----------------------------------------------------------------------------

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        if len(media) > self.max_media:
            raise PlatformError(
                FailureKind.PERMANENT,
                "too_many_media",
                f"X allows at most {self.max_media} media per post, got {len(media)}",
            )
        media_ids = [await self._upload(access_token, item) for item in media]
        body: dict[str, Any] = {"text": compose_text(content)}
        if media_ids:
            body["media"] = {"media_ids": media_ids}
        if content.options.get("reply_settings"):
            body["reply_settings"] = content.options["reply_settings"]
        response = await self._call("POST", "/2/tweets", access_token, json=body, creates=True)
        data = json_object(response).get("data") or {}
        post_id = str(data.get("id") or "")
        if not post_id:
            raise PlatformError(
                FailureKind.TRANSIENT,
                "no_post_id",
                "X accepted the post but returned no id",
                status=response.status_code,
                outcome_unknown=True,
            )
        published = Published(post_id, self._post_url(account, post_id), datetime.now(UTC))
        if content.first_comment:
            await self._reply(access_token, post_id, content.first_comment)
        return published

    async def _reply(self, access_token: str, post_id: str, text: str) -> None:
        """The first comment, as a reply. The post exists already: a failure here is logged,
        never raised, so the post is not published again."""
        try:
            await self._call(
                "POST",
                "/2/tweets",
                access_token,
                json={"text": text, "reply": {"in_reply_to_tweet_id": post_id}},
            )
        except PlatformError as exc:
            log.warning("x: first comment on %s failed: %s", post_id, exc)

    async def _upload(self, access_token: str, item: MediaFile) -> str:
        data = await self._download(item)
        if item.mime_type == "image/gif":
            category = "tweet_gif"
        elif item.is_video:
            category = "tweet_video"
        else:
            category = "tweet_image"
        init = json_object(
            await self._call(
                "POST",
                "/2/media/upload/initialize",
                access_token,
                json={
                    "media_type": item.mime_type,
                    "total_bytes": len(data),
                    "media_category": category,
                },
            )
        )["data"]
        media_id = str(init["id"])
        for index, start in enumerate(range(0, len(data), self.chunk_size)):
            chunk = data[start : start + self.chunk_size]
            await self._call(
                "POST",
                f"/2/media/upload/{media_id}/append",
                access_token,
                data={"segment_index": str(index)},
                files={"media": ("chunk", chunk, "application/octet-stream")},
            )
        result = json_object(
            await self._call("POST", f"/2/media/upload/{media_id}/finalize", access_token)
        )["data"]
        for _ in range(self.poll_attempts):
            info = result.get("processing_info")
            if not info or info.get("state") == "succeeded":
                return media_id
            if info.get("state") == "failed":
                error = info.get("error") or {}
                raise PlatformError(
                    FailureKind.PERMANENT,
                    "media_processing_failed",
                    str(error.get("message") or "X could not process the media"),
                )
            wait = max(self.poll_interval, float(info.get("check_after_secs") or 0))
            await asyncio.sleep(min(wait, self.poll_interval * 10))
            status = await self._call(
                "GET",
                "/2/media/upload",
                access_token,
                params={"command": "STATUS", "media_id": media_id},
            )
            result = json_object(status)["data"]
        raise PlatformError(
            FailureKind.TRANSIENT,
            "media_processing_timeout",
            f"X was still processing media {media_id}",
        )

    async def _download(self, item: MediaFile) -> bytes:
        try:
            response = await self.http.get(item.url, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise PlatformError(
                FailureKind.TRANSIENT, "media_unavailable", f"{item.url}: {type(exc).__name__}"
            ) from exc
        if response.is_error:
            kind = FailureKind.TRANSIENT if response.status_code >= 500 else FailureKind.PERMANENT
            raise PlatformError(
                kind, "media_unavailable", f"{item.url}: HTTP {response.status_code}"
            )
        return response.content

    async def find_recent(
        self, access_token: str, account: AccountProfile, *, text: str, since: datetime
    ) -> Published | None:
        start = (since - READBACK_SKEW).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        response = await self._call(
            "GET",
            f"/2/users/{account.platform_account_id}/tweets",
            access_token,
            params={
                "start_time": start,
                "max_results": "100",
                "tweet.fields": "created_at",
                "exclude": "replies,retweets",
            },
        )
        matches = []
        for tweet in json_object(response).get("data") or []:
            created = _parse_time(tweet.get("created_at"))
            if posted_since(created, since) and text_matches(tweet.get("text") or "", text):
                matches.append((created, str(tweet["id"])))
        if not matches:
            return None
        created, post_id = min(matches)
        return Published(post_id, self._post_url(account, post_id), created)

    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None:
        try:
            await self._call("DELETE", f"/2/tweets/{platform_post_id}", access_token)
        except PlatformError as exc:
            if exc.status == 404:
                return  # already gone: deleting is idempotent
            raise

    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]:
        response = await self._call(
            "GET",
            f"/2/tweets/{platform_post_id}",
            access_token,
            params={
                "tweet.fields": "public_metrics,non_public_metrics,organic_metrics",
                "expansions": "attachments.media_keys",
                "media.fields": "public_metrics",
            },
        )
        body = json_object(response)
        data = body.get("data") or {}
        public = data.get("public_metrics") or {}
        private = data.get("non_public_metrics") or {}
        media = (body.get("includes") or {}).get("media") or []
        views = sum(int((m.get("public_metrics") or {}).get("view_count") or 0) for m in media)
        return normalised(  # X reports no unique reach
            likes=public.get("like_count"),
            comments=public.get("reply_count"),
            shares=int(public.get("retweet_count") or 0) + int(public.get("quote_count") or 0),
            saves=public.get("bookmark_count"),
            impressions=public.get("impression_count") or private.get("impression_count"),
            clicks=private.get("url_link_clicks"),
            video_views=views,
        )

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        metrics = (await self._me(access_token))["data"].get("public_metrics") or {}
        return {
            "followers": int(metrics.get("followers_count") or 0),
            "following": int(metrics.get("following_count") or 0),
            "posts": int(metrics.get("tweet_count") or 0),
        }

    # -- HTTP ----------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.endpoints.api.rstrip("/") + path

    @staticmethod
    def _post_url(account: AccountProfile, post_id: str) -> str:
        return f"https://x.com/{account.username}/status/{post_id}"

    async def _call(
        self,
        method: str,
        path: str,
        access_token: str,
        *,
        creates: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        request = self.http.build_request(
            method,
            self._url(path),
            headers={"Authorization": f"Bearer {access_token}"},
            **kwargs,
        )
        response = await send(self, request, creates=creates)
        self._observe(response)
        if response.is_error:
            raise self._error(response)
        return response

    def _observe(self, response: httpx.Response) -> None:
        h = response.headers
        limit = _int(h.get("x-rate-limit-limit"))
        remaining = _int(h.get("x-rate-limit-remaining"))
        reset = _int(h.get("x-rate-limit-reset"))
        if limit is None and remaining is None and reset is None and response.status_code != 429:
            return
        retry_after = None
        if response.status_code == 429:
            retry_after = parse_retry_after(h.get("retry-after"))
            if retry_after is None and reset is not None:
                retry_after = max(1.0, reset - time.time())
            if retry_after is None:
                retry_after = self.rate_limit_fallback
        self.rate_limit = RateLimitState(
            limit=limit,
            remaining=remaining,
            reset_at=float(reset) if reset is not None else None,
            retry_after=retry_after,
        )

    def _error(self, response: httpx.Response) -> PlatformError:
        body = json_object(response)
        status = response.status_code
        errors = body.get("errors") or []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        message = str(
            first.get("message")
            or first.get("detail")
            or body.get("detail")
            or body.get("title")
            or response.reason_phrase
        )
        code = _STATUS_CODES.get(status, "server_error" if status >= 500 else "error")
        if "duplicate" in message.lower():
            code = "duplicate_content"
        if status == 401:
            kind = FailureKind.AUTH
        elif status == 429 or status >= 500:
            kind = FailureKind.TRANSIENT
        else:
            kind = FailureKind.PERMANENT
        retry_after = self.rate_limit.retry_after if status == 429 else None
        if status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        return PlatformError(kind, code, message, status=status, retry_after=retry_after)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


CLIENT = XClient
