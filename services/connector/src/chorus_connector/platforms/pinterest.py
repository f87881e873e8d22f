"""Pinterest (API v5) client.

`endpoints.api` is `https://api.pinterest.com` (or the sandbox's `<sandbox>/pinterest`);
`endpoints.auth` is `https://www.pinterest.com` (consent page `/oauth/`). The token endpoint
`{api}/v5/oauth/token` takes the app's credentials as HTTP Basic auth; Pinterest documents
no PKCE, so none is sent. Refreshing asks for continuous refresh (a new refresh token each
time).

A post is a Pin on the board named by `options["board_id"]` (required by Pinterest; the
boards are listed by `boards`). Images are given to Pinterest by URL (`image_url`, or
`multiple_image_urls` for 2–5); a video is registered (`POST /v5/media`), uploaded to the
returned URL with its signed parameters, polled until processed, and pinned as `video_id`
with a cover (an image of the post, `options["cover_image_url"]`, or a key frame).
"""

from __future__ import annotations

import asyncio
import base64
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

MAX_IMAGES = 5
READ_BACK_LIMIT = 25
MEDIA_POLLS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
_LEADING_INT = re.compile(r"^\s*(\d+)")


class PinterestClient(PlatformClient):
    platform = Platform.PINTEREST
    supports_pkce = False
    default_scopes = ("boards:read", "pins:read", "pins:write", "user_accounts:read")

    # -- OAuth ---------------------------------------------------------------------------------

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None, scopes: tuple[str, ...]
    ) -> str:
        params = {
            "client_id": self.app.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": ",".join(scopes or self.default_scopes),
            "state": state,
        }
        return f"{self.endpoints.auth_base}/oauth/?{urlencode(params)}"

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> OAuthTokens:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "continuous_refresh": "true",
        }
        return await self._token(form)

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "continuous_refresh": "true",
        }
        return await self._token(form, previous_refresh=refresh_token)

    async def _token(
        self, form: dict[str, str], *, previous_refresh: str | None = None
    ) -> OAuthTokens:
        request = self.http.build_request(
            "POST",
            f"{self.endpoints.api}/v5/oauth/token",
            data=form,
            headers={"Authorization": basic_auth(self.app.client_id, self.app.client_secret)},
        )
        try:
            body = json_body(await self._request(request))
        except PlatformError as exc:
            if exc.status in (400, 401):  # a bad code or refresh token: the grant is gone
                raise PlatformError(
                    FailureKind.AUTH, "invalid_grant", exc.message, status=exc.status
                ) from exc
            raise
        return OAuthTokens(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token") or previous_refresh,
            expires_at=expires_at(body.get("expires_in")),
            scopes=tuple(s for s in re.split(r"[,\s]+", str(body.get("scope") or "")) if s),
        )

    async def profile(self, access_token: str) -> AccountProfile:
        body = json_body(await self._api("GET", "/v5/user_account", access_token))
        return AccountProfile(
            platform_account_id=str(body.get("id") or body["username"]),
            username=body["username"],
            display_name=body.get("business_name") or body["username"],
            followers=body.get("follower_count"),
        )

    async def boards(self, access_token: str) -> list[dict[str, Any]]:
        """The account's boards (`id`, `name`, …): where pins can go."""
        response = await self._api("GET", "/v5/boards", access_token, params={"page_size": 100})
        items: list[dict[str, Any]] = json_body(response).get("items") or []
        return items

    # -- content -------------------------------------------------------------------------------

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        options = content.options
        body: dict[str, Any] = {}
        if options.get("board_id"):
            body["board_id"] = options["board_id"]
        if options.get("board_section_id"):
            body["board_section_id"] = options["board_section_id"]
        if content.title:
            body["title"] = content.title
        description = compose_text(content, link=False)  # the link is the Pin's own
        if description:
            body["description"] = description
        if content.link:
            body["link"] = content.link
        if options.get("alt_text"):
            body["alt_text"] = options["alt_text"]
        source = await self._media_source(access_token, media, options)
        if source:
            body["media_source"] = source
        response = await self._api("POST", "/v5/pins", access_token, json=body, creates=True)
        return _published(json_body(response))

    async def _media_source(
        self, access_token: str, media: list[MediaFile], options: dict[str, str]
    ) -> dict[str, Any] | None:
        videos = [m for m in media if m.is_video]
        images = [m for m in media if not m.is_video]
        if len(videos) > 1 or len(images) > MAX_IMAGES:
            raise PlatformError(
                FailureKind.PERMANENT,
                "unsupported_media",
                f"A Pin is one video or up to {MAX_IMAGES} images",
            )
        if videos:
            source: dict[str, Any] = {
                "source_type": "video_id",
                "media_id": await self._upload_video(access_token, videos[0]),
            }
            cover = options.get("cover_image_url") or (images[0].url if images else None)
            if cover:
                source["cover_image_url"] = cover
            else:
                source["cover_image_key_frame_time"] = 1
            return source
        if len(images) == 1:
            return {"source_type": "image_url", "url": images[0].url}
        if images:
            return {"source_type": "multiple_image_urls", "items": [{"url": i.url} for i in images]}
        return None  # Pinterest refuses a Pin without media, in its own words

    async def _upload_video(self, access_token: str, video: MediaFile) -> str:
        download = await send(self, self.http.build_request("GET", video.url))
        if download.status_code != 200:
            raise PlatformError(
                classify_status(download.status_code),
                "media_unavailable",
                f"media {video.url} answered {download.status_code}",
                status=download.status_code,
            )
        registered = json_body(
            await self._api("POST", "/v5/media", access_token, json={"media_type": "video"})
        )
        media_id = str(registered["media_id"])
        filename = video.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "video.mp4"
        upload = await send(
            self,
            self.http.build_request(
                "POST",
                registered["upload_url"],
                data={k: str(v) for k, v in (registered.get("upload_parameters") or {}).items()},
                files={"file": (filename, download.content, video.mime_type)},
            ),
        )
        if upload.status_code not in (200, 201, 204):
            raise PlatformError(
                classify_status(upload.status_code),
                "video_upload_failed",
                f"the video upload answered {upload.status_code}",
                status=upload.status_code,
            )
        for delay in MEDIA_POLLS:
            await asyncio.sleep(delay)
            status = json_body(await self._api("GET", f"/v5/media/{media_id}", access_token))
            if status.get("status") == "succeeded":
                return media_id
            if status.get("status") == "failed":
                raise PlatformError(
                    FailureKind.PERMANENT, "video_failed", "Pinterest could not process the video"
                )
        raise PlatformError(
            FailureKind.TRANSIENT, "media_processing", "Pinterest is still processing the video"
        )

    async def find_recent(
        self, access_token: str, account: AccountProfile, *, text: str, since: datetime
    ) -> Published | None:
        params = {"page_size": READ_BACK_LIMIT}
        response = await self._api("GET", "/v5/pins", access_token, params=params)
        for pin in json_body(response).get("items") or []:
            if not posted_since(parse_time(pin.get("created_at")), since):
                continue
            title = normalise_text(pin.get("title") or "")
            if text_matches(pin.get("description") or "", text) or (
                text.strip() and title == normalise_text(text)
            ):
                return _published(pin)
        return None

    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None:
        try:
            await self._api("DELETE", f"/v5/pins/{platform_post_id}", access_token)
        except PlatformError as exc:
            if exc.status != 404:  # already gone: deleting is idempotent
                raise

    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]:
        response = await self._api(
            "GET", f"/v5/pins/{platform_post_id}", access_token, params={"pin_metrics": "true"}
        )
        metrics = json_body(response).get("pin_metrics") or {}
        values = metrics.get("lifetime_metrics") or metrics.get("90d") or {}
        return normalised(
            impressions=values.get("impression"),
            clicks=values.get("clickthrough") or values.get("outbound_click"),
            saves=values.get("save"),
            likes=values.get("reaction"),
            comments=values.get("comment"),
            video_views=values.get("video_mrc_view"),
        )

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        body = json_body(await self._api("GET", "/v5/user_account", access_token))
        return {
            "followers": int(body.get("follower_count") or 0),
            "following": int(body.get("following_count") or 0),
            "posts": int(body.get("pin_count") or 0),
        }

    # -- transport -------------------------------------------------------------------------------

    async def _api(
        self, method: str, path: str, access_token: str, *, creates: bool = False, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {access_token}"}
        url = f"{self.endpoints.api}{path}"
        request = self.http.build_request(method, url, headers=headers, **kwargs)
        return await self._request(request, creates=creates)

    async def _request(self, request: httpx.Request, *, creates: bool = False) -> httpx.Response:
        return await send_observed(self, request, creates, rate_limit_state, error_from)


CLIENT = PinterestClient


# -- helpers -----------------------------------------------------------------------------------


def basic_auth(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


def _published(pin: dict[str, Any]) -> Published:
    return Published(
        platform_post_id=str(pin["id"]),
        url=f"https://www.pinterest.com/pin/{pin['id']}/",
        published_at=parse_time(pin.get("created_at")) or datetime.now(UTC),
    )


def _leading_int(value: str | None) -> int | None:
    """`1000` or `1000, 1000;w=60` → 1000."""
    match = _LEADING_INT.match(value or "")
    return int(match.group(1)) if match else None


def rate_limit_state(response: httpx.Response) -> RateLimitState:
    """`x-ratelimit-limit/remaining` and `x-ratelimit-reset` (seconds until the reset)."""
    h = response.headers
    reset_in = _leading_int(h.get("x-ratelimit-reset"))
    retry_after = parse_retry_after(h.get("retry-after"))
    if response.status_code == 429 and retry_after is None and reset_in is not None:
        retry_after = float(reset_in)
    return RateLimitState(
        limit=_leading_int(h.get("x-ratelimit-limit")),
        remaining=_leading_int(h.get("x-ratelimit-remaining")),
        reset_at=time.time() + reset_in if reset_in is not None else None,
        retry_after=retry_after,
    )


def error_from(response: httpx.Response, rate: RateLimitState) -> PlatformError:
    status = response.status_code
    body = json_body(response)
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    message = message or response.reason_phrase or f"HTTP {status}"
    code = (
        f"pinterest_{body['code']}"
        if isinstance(body, dict) and "code" in body
        else f"http_{status}"
    )
    if status == 429:
        return PlatformError(
            FailureKind.TRANSIENT, code, message, status=status, retry_after=rate.retry_after
        )
    return status_error(response, code, message)
