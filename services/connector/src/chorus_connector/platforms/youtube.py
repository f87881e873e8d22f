"""YouTube (Data API v3) client.

`endpoints.api` is `https://www.googleapis.com` (or the sandbox's `<sandbox>/youtube`);
`endpoints.auth` is `https://accounts.google.com`; the token endpoint defaults to
`{api}/oauth2/v4/token` and can be set as `endpoints.extra["token"]` (e.g.
`https://oauth2.googleapis.com/token`). OAuth is Google's authorization-code flow with PKCE
(S256), `access_type=offline` and `prompt=consent` so a refresh token is always issued.

A post is one video: its bytes are fetched from the media URL and sent through a resumable
upload (`POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status`, then a
`PUT` of the bytes to the session URL, which is the call that creates the video). The
title is required (YouTube rejects an empty one); the description is the text plus the link
and hashtags; hashtags also become tags. Read-back lists the channel's uploads playlist.

YouTube sends no rate-limit headers: `403 rateLimitExceeded`/`userRateLimitExceeded` and
`403 quotaExceeded` are transient (the daily quota resets at midnight Pacific time, which
is the `retry_after` given when the platform names none).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

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
    status_error,
    text_matches,
)
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent

READ_BACK_LIMIT = 25
RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
QUOTA_REASONS = {"quotaExceeded", "dailyLimitExceeded"}
PACIFIC = ZoneInfo("America/Los_Angeles")


class YouTubeClient(PlatformClient):
    platform = Platform.YOUTUBE
    supports_pkce = True
    default_scopes = (
        "https://www.googleapis.com/auth/youtube.upload",
        "https://www.googleapis.com/auth/youtube",
    )

    # -- OAuth ---------------------------------------------------------------------------------

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None, scopes: tuple[str, ...]
    ) -> str:
        params = {
            "client_id": self.app.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": " ".join(scopes or self.default_scopes),
            "state": state,
            "access_type": "offline",
            "prompt": "consent",
            "include_granted_scopes": "true",
        }
        if code_challenge:
            params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
        return f"{self.endpoints.auth_base}/o/oauth2/v2/auth?{urlencode(params)}"

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
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
        }
        return await self._token(form, previous_refresh=refresh_token)

    async def _token(
        self, form: dict[str, str], *, previous_refresh: str | None = None
    ) -> OAuthTokens:
        url = self.endpoints.extra.get("token") or f"{self.endpoints.api}/oauth2/v4/token"
        response = await self._request(self.http.build_request("POST", url, data=form))
        body = json_body(response)
        # Google keeps the refresh token on refresh (no new one in the answer).
        return OAuthTokens(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token") or previous_refresh,
            expires_at=expires_at(body.get("expires_in")),
            scopes=tuple(str(body.get("scope") or "").split()),
        )

    async def profile(self, access_token: str) -> AccountProfile:
        channel = await self._channel(access_token)
        snippet = channel.get("snippet") or {}
        stats = channel.get("statistics") or {}
        hidden = stats.get("hiddenSubscriberCount")
        return AccountProfile(
            platform_account_id=channel["id"],
            username=snippet.get("customUrl") or snippet.get("title") or channel["id"],
            display_name=snippet.get("title"),
            followers=None if hidden else _int(stats.get("subscriberCount")),
        )

    async def _channel(self, access_token: str) -> dict[str, Any]:
        params = {"mine": "true", "part": "snippet,statistics,contentDetails"}
        response = await self._api("GET", "/youtube/v3/channels", access_token, params=params)
        items = json_body(response).get("items") or []
        if not items:
            raise PlatformError(
                FailureKind.PERMANENT, "no_channel", "This Google account has no YouTube channel"
            )
        channel: dict[str, Any] = items[0]
        return channel

    # -- content -------------------------------------------------------------------------------

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        videos = [m for m in media if m.is_video]
        if len(videos) != 1:
            raise PlatformError(
                FailureKind.PERMANENT, "video_required", "A YouTube post is exactly one video"
            )
        video = videos[0]
        metadata = video_metadata(content)
        data = await self._download(video)
        start = await self._api(
            "POST",
            "/upload/youtube/v3/videos",
            access_token,
            params={"uploadType": "resumable", "part": "snippet,status"},
            json=metadata,
            headers={
                "X-Upload-Content-Length": str(len(data)),
                "X-Upload-Content-Type": video.mime_type,
            },
        )
        session_url = start.headers.get("location")
        if not session_url:
            raise PlatformError(
                FailureKind.TRANSIENT, "no_upload_session", "YouTube gave no upload session URL"
            )
        response = await self._request(
            self.http.build_request(
                "PUT",
                session_url,
                content=data,
                headers={
                    "Authorization": f"Bearer {access_token}",
                    "Content-Type": video.mime_type,
                },
            ),
            creates=True,
        )
        created = json_body(response)
        return _published(created["id"], (created.get("snippet") or {}).get("publishedAt"))

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
        # A channel's uploads playlist is its id with `UU` for `UC`.
        playlist = "UU" + account.platform_account_id.removeprefix("UC")
        params = {"playlistId": playlist, "part": "snippet", "maxResults": READ_BACK_LIMIT}
        response = await self._api("GET", "/youtube/v3/playlistItems", access_token, params=params)
        for item in json_body(response).get("items") or []:
            snippet = item.get("snippet") or {}
            if not posted_since(parse_time(snippet.get("publishedAt")), since):
                continue
            title = normalise_text(snippet.get("title") or "")
            if text_matches(snippet.get("description") or "", text) or (
                text.strip() and title == normalise_text(text)
            ):
                video_id = (snippet.get("resourceId") or {}).get("videoId")
                return _published(video_id, snippet.get("publishedAt"))
        return None

    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None:
        try:
            await self._api(
                "DELETE", "/youtube/v3/videos", access_token, params={"id": platform_post_id}
            )
        except PlatformError as exc:
            if exc.status != 404:  # already gone: deleting is idempotent
                raise

    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]:
        params = {"id": platform_post_id, "part": "statistics"}
        response = await self._api("GET", "/youtube/v3/videos", access_token, params=params)
        items = json_body(response).get("items") or []
        if not items:
            raise PlatformError(FailureKind.PERMANENT, "not_found", "YouTube has no such video")
        stats = items[0].get("statistics") or {}
        return normalised(
            likes=_int(stats.get("likeCount")),
            comments=_int(stats.get("commentCount")),
            video_views=_int(stats.get("viewCount")),
        )

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        stats = (await self._channel(access_token)).get("statistics") or {}
        return {
            "followers": _int(stats.get("subscriberCount")) or 0,
            "following": 0,  # channels do not follow in the Data API's sense
            "posts": _int(stats.get("videoCount")) or 0,
        }

    # -- transport -------------------------------------------------------------------------------

    async def _api(
        self,
        method: str,
        path: str,
        access_token: str,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {access_token}", **(headers or {})}
        url = f"{self.endpoints.api}{path}"
        return await self._request(self.http.build_request(method, url, headers=headers, **kwargs))

    async def _request(self, request: httpx.Request, *, creates: bool = False) -> httpx.Response:
        response = await send(self, request, creates=creates)
        error = error_from(response) if response.is_error else None
        self.rate_limit = RateLimitState(
            remaining=0 if error and error.code in RATE_REASONS | QUOTA_REASONS else None,
            retry_after=error.retry_after if error else None,
        )
        if error:
            raise error
        return response


CLIENT = YouTubeClient


# -- helpers -----------------------------------------------------------------------------------


def video_metadata(content: PublishContent) -> dict[str, Any]:
    """The `snippet` and `status` of the video resource (no title: YouTube rejects it)."""
    options = content.options
    tags = [t.lstrip("#") for t in content.hashtags]
    snippet: dict[str, Any] = {
        "description": compose_text(content),
        "categoryId": options.get("category_id", "22"),  # 22 = People & Blogs
    }
    if content.title:
        snippet["title"] = content.title
    if tags:
        snippet["tags"] = tags
    status: dict[str, Any] = {"privacyStatus": options.get("privacy_status", "public")}
    if "made_for_kids" in options:
        status["selfDeclaredMadeForKids"] = options["made_for_kids"].lower() in ("1", "true", "yes")
    return {"snippet": snippet, "status": status}


def seconds_until_quota_reset(now: datetime | None = None) -> float:
    """YouTube's daily quota resets at midnight Pacific time."""
    local = (now or datetime.now(UTC)).astimezone(PACIFIC)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (midnight - local).total_seconds())


def _published(video_id: str, published_at: Any) -> Published:
    return Published(
        platform_post_id=video_id,
        url=f"https://www.youtube.com/watch?v={video_id}",
        published_at=parse_time(published_at) or datetime.now(UTC),
    )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def error_from(response: httpx.Response) -> PlatformError:
    """Google's error body names a `reason`; classify by it (a 403 may be a rate limit)."""
    status = response.status_code
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if isinstance(error, str):  # the OAuth token endpoint: {"error", "error_description"}
        message = str(body.get("error_description") or error)
        kind = (
            FailureKind.AUTH
            if error in ("invalid_grant", "invalid_client")
            else classify_status(status)
        )
        return PlatformError(kind, error, message, status=status, retry_after=retry_after)
    error = error if isinstance(error, dict) else {}
    reasons = [e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict)]
    reason = next((r for r in reasons if r), None) or f"http_{status}"
    message = str(error.get("message") or response.reason_phrase or f"HTTP {status}")
    if reason in QUOTA_REASONS:
        wait = retry_after if retry_after is not None else seconds_until_quota_reset()
        return PlatformError(
            FailureKind.TRANSIENT, reason, message, status=status, retry_after=wait
        )
    if reason in RATE_REASONS or status == 429:
        return PlatformError(
            FailureKind.TRANSIENT, reason, message, status=status, retry_after=retry_after
        )
    if status == 401 or reason in ("authError", "insufficientPermissions"):
        return PlatformError(FailureKind.AUTH, reason, message, status=status)
    return status_error(response, reason, message)
