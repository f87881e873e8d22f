"""Facebook Pages client (Graph API), and the Graph dialect shared with Instagram and Threads.

`GraphClient` speaks Meta's Graph conventions: versioned paths, bearer tokens, errors as
`{"error":{"message","type","code","error_subcode","is_transient","fbtrace_id"}}` classified by
*code* (throttling arrives as HTTP 400 with code 4/17/32/613/80001+; expired or invalid tokens
as code 190), and usage in `X-App-Usage` / `X-Business-Use-Case-Usage` (percent of the budget,
with `estimated_time_to_regain_access` in minutes when throttled).

`FacebookClient` publishes to a Page. Facebook Login gives a user token; it is exchanged for a
long-lived one at once (Facebook has no refresh tokens: "refresh" is another
`fb_exchange_token`, so the long-lived token is also stored as the refresh token). The
connected account is the user's first Page; every Page call uses that Page's access token,
fetched with the user token and cached in memory.

Real endpoints: `Endpoints(api="https://graph.facebook.com", auth="https://www.facebook.com",
extra={"video": "https://graph-video.facebook.com"})` (video uploads go to the video host).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, ClassVar
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
    normalised,
    posted_since,
    send,
    text_matches,
)
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent

log = logging.getLogger(__name__)

THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
AUTH_CODES = frozenset({102, 190, 10, *range(200, 300)})
TRANSIENT_CODES = frozenset({1, 2})


class GraphClient(PlatformClient):
    """Graph API plumbing: URLs, calls, usage headers, error classification."""

    graph_version: ClassVar[str] = "v21.0"
    poll_interval: float = 2.0  # seconds between container/processing status polls
    poll_attempts: int = 60
    throttle_fallback: float = 60.0  # seconds to wait when throttled without a regain estimate

    def _url(self, path: str) -> str:
        return f"{self.endpoints.api.rstrip('/')}/{self.graph_version}{path}"

    async def _call(
        self,
        method: str,
        path: str,
        access_token: str | None,
        *,
        creates: bool = False,
        url: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
        request = self.http.build_request(method, url or self._url(path), headers=headers, **kwargs)
        response = await send(self, request, creates=creates)
        self._observe(response)
        body = _json(response)
        if response.is_error or "error" in body:
            raise self._error(response, body)
        return body

    def _observe(self, response: httpx.Response) -> None:
        usage = _usage(response.headers)
        if usage is None:
            return
        percent, regain_minutes = usage
        regain = regain_minutes * 60.0 if regain_minutes else None
        self.rate_limit = RateLimitState(
            limit=100,  # Meta reports usage as a percentage of the budget
            remaining=max(0, 100 - percent),
            reset_at=time.time() + regain if regain else None,
            retry_after=regain,
        )

    def _error(self, response: httpx.Response, body: dict[str, Any]) -> PlatformError:
        # Graph nests the error; Instagram's OAuth host answers it flat
        # (`{"error_type","code","error_message"}`).
        error = body["error"] if isinstance(body.get("error"), dict) else body
        status = response.status_code
        code = _int(error.get("code"))
        subcode = _int(error.get("error_subcode"))
        message = str(
            error.get("error_user_msg")
            or error.get("message")
            or error.get("error_message")
            or body.get("error_description")
            or response.reason_phrase
            or "Graph API error"
        )
        name = f"graph_{code}" if code is not None else f"http_{status}"
        if subcode:
            name += f"_{subcode}"
        retry_after = None
        if code in THROTTLE_CODES or status == 429:
            kind = FailureKind.TRANSIENT
            retry_after = self.rate_limit.retry_after or self.throttle_fallback
        elif code in AUTH_CODES or status == 401:
            kind = FailureKind.AUTH
        elif code in TRANSIENT_CODES or error.get("is_transient") is True or status >= 500:
            kind = FailureKind.TRANSIENT
        else:
            kind = FailureKind.PERMANENT
        return PlatformError(kind, name, message, status=status, retry_after=retry_after)

    async def _token_call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """An unauthenticated OAuth call (code or token exchange)."""
        try:
            return await self._call(method, path, None, **kwargs)
        except PlatformError as exc:
            if exc.retry_after is None and (exc.status or 0) < 500:
                # A bad code, token or app secret (Graph says code 1/100/190 here): no retry
                # helps, the user must authorize again.
                exc.kind = FailureKind.AUTH
            raise

    @staticmethod
    def _is_missing(exc: PlatformError) -> bool:
        """Graph's "object does not exist" (code 100, subcode 33)."""
        return exc.code == "graph_100_33" or exc.status == 404

    async def _wait_for(
        self,
        access_token: str,
        container_id: str,
        *,
        field: str,
        done: str,
        failed: tuple[str, ...] = ("ERROR", "EXPIRED"),
        detail_field: str | None = None,
    ) -> None:
        """Poll a media container until its `field` reads `done` (a permanent failure if it
        reads one of `failed`; transient if it is still processing after all attempts)."""
        fields = field if detail_field is None else f"{field},{detail_field}"
        for attempt in range(self.poll_attempts):
            body = await self._call(
                "GET", f"/{container_id}", access_token, params={"fields": fields}
            )
            state = str(body.get(field) or "")
            if state == done:
                return
            if state in failed:
                detail = body.get(detail_field or "") or body.get("status") or state
                raise PlatformError(
                    FailureKind.PERMANENT,
                    "media_processing_failed",
                    f"{self.platform.value} could not process the media: {detail}",
                )
            if attempt + 1 < self.poll_attempts:
                await asyncio.sleep(self.poll_interval)
        raise PlatformError(
            FailureKind.TRANSIENT,
            "media_processing_timeout",
            f"{self.platform.value} was still processing container {container_id}",
        )


class FacebookClient(GraphClient):
    platform = Platform.FACEBOOK
    # Facebook Login's PKCE support is limited to its (still experimental) OIDC flow; a server
    # with an app secret uses the standard code flow.
    supports_pkce = False
    default_scopes = (
        "pages_show_list",
        "pages_read_engagement",
        "pages_manage_posts",
        "read_insights",
    )
    max_photos = 10

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._page_tokens: dict[tuple[str, str], str] = {}

    # -- OAuth ---------------------------------------------------------------------------------

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None, scopes: tuple[str, ...]
    ) -> str:
        params = {
            "client_id": self.app.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "response_type": "code",
            "scope": ",".join(scopes or self.default_scopes),
        }
        return f"{self.endpoints.auth_base}/{self.graph_version}/dialog/oauth?{urlencode(params)}"

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> OAuthTokens:
        short = await self._token(
            {
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
                "redirect_uri": redirect_uri,
                "code": code,
            }
        )
        return await self.refresh(short.access_token)

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        """Facebook has no refresh token: a valid (long-lived) user token is exchanged for a
        new long-lived one, which doubles as the next "refresh token"."""
        tokens = await self._token(
            {
                "grant_type": "fb_exchange_token",
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
                "fb_exchange_token": refresh_token,
            }
        )
        return OAuthTokens(
            tokens.access_token, tokens.access_token, tokens.expires_at, self.default_scopes
        )

    async def _token(self, params: dict[str, str]) -> OAuthTokens:
        body = await self._token_call("GET", "/oauth/access_token", params=params)
        return OAuthTokens(
            body["access_token"], None, expires_at(body.get("expires_in")), self.default_scopes
        )

    async def profile(self, access_token: str) -> AccountProfile:
        body = await self._call(
            "GET",
            "/me/accounts",
            access_token,
            params={"fields": "id,name,username,access_token,followers_count,fan_count"},
        )
        pages = body.get("data") or []
        if not pages:
            raise PlatformError(
                FailureKind.PERMANENT,
                "no_page",
                "this Facebook user manages no Page the app was granted access to",
            )
        page = pages[0]
        page_id = str(page["id"])
        if page.get("access_token"):
            self._page_tokens[(access_token, page_id)] = page["access_token"]
        return AccountProfile(
            platform_account_id=page_id,
            username=str(page.get("username") or page.get("name") or page_id),
            display_name=page.get("name"),
            followers=page.get("followers_count", page.get("fan_count")),
        )

    async def _page_token(self, access_token: str, page_id: str) -> str:
        cached = self._page_tokens.get((access_token, page_id))
        if cached:
            return cached
        body = await self._call(
            "GET", f"/{page_id}", access_token, params={"fields": "access_token"}
        )
        token = body.get("access_token")
        if not token:
            raise PlatformError(
                FailureKind.AUTH,
                "no_page_token",
                f"no Page access token for {page_id}: the user lost access to the Page",
            )
        self._page_tokens[(access_token, page_id)] = token
        return str(token)

    async def _page_call(
        self, access_token: str, page_id: str, method: str, path: str, **kwargs: Any
    ) -> dict[str, Any]:
        page_token = await self._page_token(access_token, page_id)
        try:
            return await self._call(method, path, page_token, **kwargs)
        except PlatformError as exc:
            if exc.kind is FailureKind.AUTH:
                self._page_tokens.pop((access_token, page_id), None)
            raise

    # -- content -------------------------------------------------------------------------------

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        page = account.platform_account_id
        videos = [m for m in media if m.is_video]
        photos = [m for m in media if not m.is_video]
        # A text post carries its link as `link` (Facebook renders the preview); with media
        # the link can only go in the text.
        message = compose_text(content, link=bool(media))
        if videos and (photos or len(videos) > 1):
            raise PlatformError(
                FailureKind.PERMANENT,
                "unsupported_media",
                "a Facebook post carries one video, or photos, not both",
            )
        if len(photos) > self.max_photos:
            raise PlatformError(
                FailureKind.PERMANENT,
                "too_many_media",
                f"at most {self.max_photos} photos per Facebook post",
            )
        if videos:
            video_host = self.endpoints.extra.get("video")  # graph-video.facebook.com
            body = await self._page_call(
                access_token,
                page,
                "POST",
                f"/{page}/videos",
                json={"file_url": videos[0].url, "description": message},
                creates=True,
                url=f"{video_host.rstrip('/')}/{self.graph_version}/{page}/videos"
                if video_host
                else None,
            )
            post_id = f"{page}_{body['id']}"
        elif len(photos) == 1:
            body = await self._page_call(
                access_token,
                page,
                "POST",
                f"/{page}/photos",
                json={"url": photos[0].url, "message": message, "published": True},
                creates=True,
            )
            post_id = str(body.get("post_id") or f"{page}_{body['id']}")
        else:
            fbids = []
            for photo in photos:
                uploaded = await self._page_call(
                    access_token,
                    page,
                    "POST",
                    f"/{page}/photos",
                    json={"url": photo.url, "published": False},
                )
                fbids.append({"media_fbid": str(uploaded["id"])})
            payload: dict[str, Any] = {"message": message}
            if fbids:
                payload["attached_media"] = fbids
            elif content.link:
                payload["link"] = content.link
            body = await self._page_call(
                access_token, page, "POST", f"/{page}/feed", json=payload, creates=True
            )
            post_id = str(body["id"])
        published = Published(post_id, _permalink(post_id), datetime.now(UTC))
        if content.first_comment:
            await self._comment(access_token, page, post_id, content.first_comment)
        return published

    async def _comment(self, access_token: str, page: str, post_id: str, text: str) -> None:
        """The first comment; the post exists already, so a failure is logged, not raised."""
        try:
            await self._page_call(
                access_token, page, "POST", f"/{post_id}/comments", json={"message": text}
            )
        except PlatformError as exc:
            log.warning("facebook: first comment on %s failed: %s", post_id, exc)

    async def find_recent(
        self, access_token: str, account: AccountProfile, *, text: str, since: datetime
    ) -> Published | None:
        page = account.platform_account_id
        body = await self._page_call(
            access_token,
            page,
            "GET",
            f"/{page}/posts",
            params={
                "fields": "id,message,created_time,permalink_url",
                "since": str(int((since - READBACK_SKEW).timestamp())),
                "limit": "50",
            },
        )
        matches = []
        for post in body.get("data") or []:
            created = graph_time(post.get("created_time"))
            if posted_since(created, since) and text_matches(post.get("message") or "", text):
                matches.append((created, str(post["id"]), post.get("permalink_url")))
        if not matches:
            return None
        created, post_id, url = min(matches, key=lambda m: m[0])
        return Published(post_id, url or _permalink(post_id), created)

    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None:
        try:
            await self._page_call(
                access_token, account.platform_account_id, "DELETE", f"/{platform_post_id}"
            )
        except PlatformError as exc:
            if not self._is_missing(exc):
                raise

    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]:
        page = account.platform_account_id
        fields = await self._page_call(
            access_token,
            page,
            "GET",
            f"/{platform_post_id}",
            params={
                "fields": "shares,reactions.summary(total_count).limit(0),"
                "comments.summary(total_count).limit(0)"
            },
        )
        insights = await self._page_call(
            access_token,
            page,
            "GET",
            f"/{platform_post_id}/insights",
            params={
                "metric": "post_impressions,post_impressions_unique,post_clicks,post_video_views"
            },
        )
        values = insight_values(insights)
        return normalised(  # saves are not reported for Page posts
            likes=_summary(fields.get("reactions")),
            comments=_summary(fields.get("comments")),
            shares=(fields.get("shares") or {}).get("count"),
            impressions=values.get("post_impressions"),
            reach=values.get("post_impressions_unique"),
            clicks=values.get("post_clicks"),
            video_views=values.get("post_video_views"),
        )

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        page = account.platform_account_id
        fields = await self._page_call(
            access_token, page, "GET", f"/{page}", params={"fields": "followers_count,fan_count"}
        )
        posts = await self._page_call(
            access_token,
            page,
            "GET",
            f"/{page}/published_posts",
            params={"summary": "total_count", "limit": "0"},
        )
        return {
            "followers": int(fields.get("followers_count") or fields.get("fan_count") or 0),
            "following": 0,  # Pages follow no one
            "posts": int((posts.get("summary") or {}).get("total_count") or 0),
        }


# -- Graph helpers ------------------------------------------------------------------------------


def graph_time(value: Any) -> datetime | None:
    """Graph timestamps: `2024-05-01T12:00:00+0000` (or ISO 8601, or Unix seconds)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def insight_values(body: dict[str, Any]) -> dict[str, int]:
    """Insights (`{"data":[{"name","values":[{"value"}]} or {"name","total_value":{"value"}}]}`)
    as name → value."""
    out: dict[str, int] = {}
    for item in body.get("data") or []:
        value: Any = None
        if isinstance(item.get("total_value"), dict):
            value = item["total_value"].get("value")
        elif item.get("values"):
            value = item["values"][-1].get("value")
        if isinstance(value, dict):  # e.g. reactions by type
            value = sum(v for v in value.values() if isinstance(v, int | float))
        if isinstance(value, int | float):
            out[str(item.get("name"))] = int(value)
    return out


def _usage(headers: httpx.Headers) -> tuple[int, int] | None:
    """(highest percent used, minutes until access is regained) from Meta's usage headers."""
    percents: list[int] = []
    regain = 0
    app = _decode(headers.get("x-app-usage"))
    if isinstance(app, dict):
        percents += [int(v) for v in app.values() if isinstance(v, int | float)]
    buc = _decode(headers.get("x-business-use-case-usage"))
    if isinstance(buc, dict):
        for entries in buc.values():
            for entry in entries if isinstance(entries, list) else []:
                for key in ("call_count", "total_cputime", "total_time"):
                    if isinstance(entry.get(key), int | float):
                        percents.append(int(entry[key]))
                regain = max(regain, int(entry.get("estimated_time_to_regain_access") or 0))
    if not percents and not regain:
        return None
    return max(percents or [0]), regain


def _decode(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _summary(edge: Any) -> int:
    if isinstance(edge, dict):
        return int((edge.get("summary") or {}).get("total_count") or 0)
    return 0


def _permalink(post_id: str) -> str:
    page, _, post = post_id.partition("_")
    return (
        f"https://www.facebook.com/{page}/posts/{post}"
        if post
        else f"https://www.facebook.com/{page}"
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"data": body}


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


CLIENT = FacebookClient
