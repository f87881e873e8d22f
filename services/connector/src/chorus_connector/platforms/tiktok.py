"""TikTok client: Login Kit v2, Display API and Content Posting API (direct post).

Posting follows TikTok's required sequence: `creator_info/query` (the privacy levels this creator
may use), then `video/init` (or `content/init` for photos) with `PULL_FROM_URL` — TikTok fetches
the media itself, from a URL prefix verified for the app — then `status/fetch` until
`PUBLISH_COMPLETE`. The init call is the creating call. Processing is asynchronous: if the post
is still processing after the polling budget, the outcome is reported as unknown so the caller
reads back (`video/list`) before any retry. TikTok reveals a post's id only once it is public
(`publicaly_available_post_id`); a private post is identified by its `publish_id`. The API
cannot delete posts.

Every answer carries `{"data", "error": {"code", "message", "log_id"}}`; `code` is `ok` on
success. Rate limits are per user token and minute, signalled only by 429
`rate_limit_exceeded` (no headers): a throttled call retries after a minute.

OAuth (web): authorization code without PKCE (TikTok asks for PKCE from desktop/mobile apps only,
with a hex-encoded challenge). Access tokens live 24 hours, refresh tokens a year.

Real endpoints: `Endpoints(api="https://open.tiktokapis.com", auth="https://www.tiktok.com")`.
"""

from __future__ import annotations

import asyncio
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

AUTH_CODES = frozenset({"access_token_invalid", "scope_not_authorized", "scope_permission_missed"})
TRANSIENT_CODES = frozenset({"rate_limit_exceeded", "internal_error", "spam_risk_too_many_posts"})
PUBLIC = "PUBLIC_TO_EVERYONE"
MAX_PHOTO_TITLE = 90


class TikTokClient(PlatformClient):
    platform = Platform.TIKTOK
    supports_pkce = False
    default_scopes = ("user.info.basic", "user.info.stats", "video.publish", "video.list")
    poll_interval = 5.0  # seconds between status fetches (30 per minute allowed)
    poll_attempts = 24
    rate_limit_window = 60.0  # TikTok's limits are one-minute sliding windows
    post_cap_wait = 3600.0  # `spam_risk_too_many_posts`: the daily posting cap is reached
    max_photos = 35

    # -- OAuth ---------------------------------------------------------------------------------

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None, scopes: tuple[str, ...]
    ) -> str:
        params = {
            "client_key": self.app.client_id,
            "scope": ",".join(scopes or self.default_scopes),
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state,
        }
        return f"{self.endpoints.auth_base}/v2/auth/authorize/?{urlencode(params)}"

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> OAuthTokens:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            form["code_verifier"] = code_verifier
        return await self._token(form)

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def _token(self, form: dict[str, str]) -> OAuthTokens:
        form = {**form, "client_key": self.app.client_id, "client_secret": self.app.client_secret}
        request = self.http.build_request("POST", self._url("/v2/oauth/token/"), data=form)
        response = await send(self, request)
        self._observe(response)
        body = json_object(response)
        if response.is_error or "access_token" not in body:
            status = response.status_code
            transient = status == 429 or status >= 500
            raise PlatformError(
                FailureKind.TRANSIENT if transient else FailureKind.AUTH,
                str(body.get("error") or f"http_{status}"),
                str(body.get("error_description") or response.reason_phrase or "token error"),
                status=status,
                retry_after=self.rate_limit.retry_after if status == 429 else None,
            )
        return OAuthTokens(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_at=expires_at(body.get("expires_in")),
            scopes=tuple(str(body.get("scope") or "").replace(",", " ").split()),
        )

    async def profile(self, access_token: str) -> AccountProfile:
        user = await self._user(access_token, "open_id,display_name,username,follower_count")
        return AccountProfile(
            platform_account_id=str(user["open_id"]),
            username=str(user.get("username") or user.get("display_name") or user["open_id"]),
            display_name=user.get("display_name"),
            followers=user.get("follower_count"),
        )

    async def _user(self, access_token: str, fields: str) -> dict[str, Any]:
        data = await self._call("GET", "/v2/user/info/", access_token, params={"fields": fields})
        return dict(data.get("user") or {})

    # -- content -------------------------------------------------------------------------------

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        videos = [m for m in media if m.is_video]
        photos = [m for m in media if not m.is_video]
        if not media or (videos and (photos or len(videos) > 1)):
            raise PlatformError(
                FailureKind.PERMANENT,
                "unsupported_media",
                "a TikTok post is one video or 1 to 35 photos",
            )
        if len(photos) > self.max_photos:
            raise PlatformError(
                FailureKind.PERMANENT, "too_many_media", f"at most {self.max_photos} photos"
            )
        creator = await self._call("POST", "/v2/post/publish/creator_info/query/", access_token)
        privacy = self._privacy(content, creator)
        options = content.options
        caption = compose_text(content)
        if videos:
            limit = creator.get("max_video_post_duration_sec")
            duration = videos[0].duration_seconds
            if limit and duration and duration > float(limit):
                raise PlatformError(
                    FailureKind.PERMANENT,
                    "video_too_long",
                    f"this creator may post videos up to {limit} s; the video lasts {duration} s",
                )
            body: dict[str, Any] = {
                "post_info": {
                    "title": caption,
                    "privacy_level": privacy,
                    "disable_comment": _flag(options, "disable_comment", creator),
                    "disable_duet": _flag(options, "disable_duet", creator),
                    "disable_stitch": _flag(options, "disable_stitch", creator),
                    "video_cover_timestamp_ms": _int(options.get("video_cover_timestamp_ms"), 1000),
                    "is_aigc": options.get("is_aigc") == "true",
                },
                "source_info": {"source": "PULL_FROM_URL", "video_url": videos[0].url},
            }
            path = "/v2/post/publish/video/init/"
        else:
            body = {
                "post_info": {
                    "title": (content.title or "")[:MAX_PHOTO_TITLE],
                    "description": caption,
                    "privacy_level": privacy,
                    "disable_comment": _flag(options, "disable_comment", creator),
                    "auto_add_music": options.get("auto_add_music", "true") == "true",
                },
                "source_info": {
                    "source": "PULL_FROM_URL",
                    "photo_cover_index": 0,
                    "photo_images": [p.url for p in photos],
                },
                "post_mode": "DIRECT_POST",
                "media_type": "PHOTO",
            }
            path = "/v2/post/publish/content/init/"
        init = await self._call("POST", path, access_token, json=body, creates=True)
        publish_id = str(init["publish_id"])
        return await self._until_published(access_token, account, publish_id, bool(videos))

    def _privacy(self, content: PublishContent, creator: dict[str, Any]) -> str:
        """The requested privacy level, else public when this creator may post publicly, else
        the first level offered (unaudited apps are offered only SELF_ONLY)."""
        options = [str(o) for o in creator.get("privacy_level_options") or []]
        wanted = content.options.get("privacy_level")
        if wanted:
            return wanted  # TikTok rejects one the creator may not use
        if PUBLIC in options or not options:
            return PUBLIC
        return options[0]

    async def _until_published(
        self, access_token: str, account: AccountProfile, publish_id: str, video: bool
    ) -> Published:
        for attempt in range(self.poll_attempts):
            data = await self._call(
                "POST",
                "/v2/post/publish/status/fetch/",
                access_token,
                json={"publish_id": publish_id},
            )
            status = str(data.get("status") or "")
            if status in ("PUBLISH_COMPLETE", "SEND_TO_USER_INBOX"):
                ids = data.get("publicaly_available_post_id") or []
                if ids:
                    post_id = str(ids[0])
                    kind = "video" if video else "photo"
                    url = f"https://www.tiktok.com/@{account.username}/{kind}/{post_id}"
                    return Published(post_id, url, datetime.now(UTC))
                return Published(publish_id, None, datetime.now(UTC))
            if status == "FAILED":
                raise PlatformError(
                    FailureKind.PERMANENT,
                    str(data.get("fail_reason") or "publish_failed"),
                    f"TikTok could not publish the post: {data.get('fail_reason') or 'failed'}",
                )
            if attempt + 1 < self.poll_attempts:
                await asyncio.sleep(self.poll_interval)
        raise PlatformError(
            FailureKind.TRANSIENT,
            "still_processing",
            f"TikTok was still processing {publish_id}; read back before retrying",
            outcome_unknown=True,
        )

    async def find_recent(
        self, access_token: str, account: AccountProfile, *, text: str, since: datetime
    ) -> Published | None:
        """Read-back through `video/list` (public posts only: a private post cannot be found)."""
        data = await self._call(
            "POST",
            "/v2/video/list/",
            access_token,
            params={"fields": "id,title,video_description,create_time,share_url"},
            json={"max_count": 20},
        )
        matches = []
        for video in data.get("videos") or []:
            created = datetime.fromtimestamp(int(video.get("create_time") or 0), UTC)
            caption = str(video.get("video_description") or video.get("title") or "")
            if posted_since(created, since) and text_matches(caption, text):
                matches.append((created, str(video["id"]), video.get("share_url")))
        if not matches:
            return None
        created, post_id, url = min(matches, key=lambda m: m[0])
        return Published(post_id, url, created)

    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None:
        raise PlatformError(
            FailureKind.PERMANENT,
            "not_supported",
            "TikTok's API cannot delete posts; delete it in the TikTok app",
        )

    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]:
        data = await self._call(
            "POST",
            "/v2/video/query/",
            access_token,
            params={"fields": "id,like_count,comment_count,share_count,view_count"},
            json={"filters": {"video_ids": [platform_post_id]}},
        )
        videos = data.get("videos") or []
        if not videos:
            raise PlatformError(
                FailureKind.PERMANENT,
                "not_found",
                f"TikTok reports no public post {platform_post_id}",
            )
        video = videos[0]
        views = int(video.get("view_count") or 0)
        return normalised(
            likes=video.get("like_count"),
            comments=video.get("comment_count"),
            shares=video.get("share_count"),
            impressions=views,  # TikTok counts plays; it reports no separate impressions
            video_views=views,
        )

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        user = await self._user(access_token, "open_id,follower_count,following_count,video_count")
        return {
            "followers": int(user.get("follower_count") or 0),
            "following": int(user.get("following_count") or 0),
            "posts": int(user.get("video_count") or 0),
        }

    # -- HTTP ----------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.endpoints.api.rstrip("/") + path

    async def _call(
        self,
        method: str,
        path: str,
        access_token: str,
        *,
        creates: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        request = self.http.build_request(
            method,
            self._url(path),
            headers={"Authorization": f"Bearer {access_token}"},
            **kwargs,
        )
        response = await send(self, request, creates=creates)
        self._observe(response)
        body = json_object(response)
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        if response.is_error or (error and error.get("code") not in (None, "ok")):
            raise self._error(response, error)
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    def _observe(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            wait = retry_after if retry_after is not None else self.rate_limit_window
            self.rate_limit = RateLimitState(
                remaining=0, reset_at=time.time() + wait, retry_after=wait
            )
        else:
            self.rate_limit = RateLimitState()

    def _error(self, response: httpx.Response, error: dict[str, Any]) -> PlatformError:
        status = response.status_code
        code = str(error.get("code") or f"http_{status}")
        message = str(error.get("message") or response.reason_phrase or "TikTok API error")
        retry_after = None
        if code in AUTH_CODES or status == 401:
            kind = FailureKind.AUTH
        elif code in TRANSIENT_CODES or status == 429 or status >= 500:
            kind = FailureKind.TRANSIENT
            if status == 429 or code == "rate_limit_exceeded":
                retry_after = self.rate_limit.retry_after or self.rate_limit_window
            elif code == "spam_risk_too_many_posts":
                retry_after = self.post_cap_wait
        else:
            kind = FailureKind.PERMANENT
        return PlatformError(kind, code, message, status=status, retry_after=retry_after)


def _flag(options: dict[str, str], name: str, creator: dict[str, Any]) -> bool:
    """A post setting: what the post asks for, forced on where the creator disabled it."""
    creator_key = name.replace("disable_", "") + "_disabled"
    return options.get(name) == "true" or bool(creator.get(creator_key))


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


CLIENT = TikTokClient
