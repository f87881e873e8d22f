"""LinkedIn client: versioned REST API (Posts API) for a member's own posts.

Every `/rest` call carries `LinkedIn-Version` (YYYYMM) and `X-Restli-Protocol-Version: 2.0.0`;
URNs in paths and query strings are percent-encoded (Rest.li 2.0). Posts are
`POST /rest/posts` (the URN comes back in `x-restli-id`); text is LinkedIn's "little text":
reserved characters escaped, hashtags as `{hashtag|\\#|tag}` templates. Images go through
`/rest/images?action=initializeUpload` + a `PUT` of the bytes; a video through
`/rest/videos?action=initializeUpload`, a `PUT` per part (collecting ETags) and
`?action=finalizeUpload`, then waits until the video is `AVAILABLE`. A link without media is
posted as an article. Read-back uses the posts finder (`q=author`); metrics come from
`memberCreatorPostAnalytics` (one call per metric type).

LinkedIn sends no rate-limit headers; its quotas are daily and reset at midnight UTC, so a 429
records the budget as exhausted until then and retries after `Retry-After` (or a minute).
OAuth: authorization code without PKCE (a confidential web client); refresh tokens are issued to
apps LinkedIn enabled for them.

Real endpoints: `Endpoints(api="https://api.linkedin.com", auth="https://www.linkedin.com")`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import httpx

from chorus_connector.platforms.base import (
    AccountProfile,
    MediaFile,
    OAuthTokens,
    PlatformClient,
    PlatformError,
    Published,
    RateLimitState,
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

_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
_ESCAPED = re.compile(r"\\([|{}@\[\]()<>#\\*_~])")
_HASHTAG_TEMPLATE = re.compile(r"\{hashtag\|\\?#\|([^}]*)\}")
_INLINE_HASHTAG = re.compile(r"(?<![\w&])#(\w+)")
METRICS = {
    "IMPRESSION": "impressions",
    "MEMBERS_REACHED": "reach",
    "REACTION": "likes",
    "COMMENT": "comments",
    "RESHARE": "shares",
    "POST_SAVE": "saves",
    "LINK_CLICKS": "clicks",
}


class LinkedInClient(PlatformClient):
    platform = Platform.LINKEDIN
    supports_pkce = False
    default_scopes = (
        "openid",
        "profile",
        "w_member_social",
        "r_member_postAnalytics",
        "r_member_profileAnalytics",
    )
    api_version: ClassVar[str] = "202506"
    max_images = 20
    poll_interval = 2.0  # seconds between video status reads
    poll_attempts = 60
    rate_limit_fallback = 60.0

    # -- OAuth ---------------------------------------------------------------------------------

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None, scopes: tuple[str, ...]
    ) -> str:
        params = {
            "response_type": "code",
            "client_id": self.app.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "scope": " ".join(scopes or self.default_scopes),
        }
        return f"{self.endpoints.auth_base}/oauth/v2/authorization?{urlencode(params)}"

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> OAuthTokens:
        return await self._token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        )

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def _token(self, form: dict[str, str]) -> OAuthTokens:
        form = {**form, "client_id": self.app.client_id, "client_secret": self.app.client_secret}
        request = self.http.build_request(
            "POST", f"{self.endpoints.auth_base.rstrip('/')}/oauth/v2/accessToken", data=form
        )
        response = await send(self, request)
        self._observe(response)
        body = json_object(response)
        if response.is_error or "access_token" not in body:
            error = self._error(response)
            if error.kind is FailureKind.PERMANENT:
                error.kind = FailureKind.AUTH  # bad code, client or refresh token: authorize again
            raise error
        return OAuthTokens(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_at=expires_at(body.get("expires_in")),
            scopes=tuple(str(body.get("scope") or "").replace(",", " ").split()),
        )

    async def profile(self, access_token: str) -> AccountProfile:
        me = json_object(await self._call("GET", "/v2/userinfo", access_token, rest=False))
        followers: int | None = None
        try:
            followers = await self._followers(access_token)
        except PlatformError as exc:  # needs r_member_profileAnalytics: optional here
            if exc.kind is FailureKind.TRANSIENT:
                raise
        name = str(
            me.get("name") or " ".join(filter(None, [me.get("given_name"), me.get("family_name")]))
        )
        return AccountProfile(str(me["sub"]), name or str(me["sub"]), name or None, followers)

    async def _followers(self, access_token: str) -> int:
        body = json_object(
            await self._call("GET", "/rest/memberFollowersCount", access_token, params={"q": "me"})
        )
        elements = body.get("elements") or [{}]
        return int(elements[0].get("memberFollowersCount") or 0)

    # -- content -------------------------------------------------------------------------------

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        author = _person(account)
        videos = [m for m in media if m.is_video]
        images = [m for m in media if not m.is_video]
        if videos and (images or len(videos) > 1):
            raise PlatformError(
                FailureKind.PERMANENT,
                "unsupported_media",
                "a LinkedIn post carries one video, or images, not both",
            )
        if len(images) > self.max_images:
            raise PlatformError(
                FailureKind.PERMANENT,
                "too_many_media",
                f"at most {self.max_images} images per LinkedIn post",
            )
        article = bool(content.link) and not media
        body: dict[str, Any] = {
            "author": author,
            "commentary": little_text(content, link=not article),
            "visibility": content.options.get("visibility", "PUBLIC"),
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        if videos:
            video = await self._upload_video(access_token, author, videos[0])
            body["content"] = {"media": {"id": video, "title": content.title or ""}}
        elif len(images) == 1:
            body["content"] = {
                "media": {"id": await self._upload_image(access_token, author, images[0])}
            }
        elif images:
            ids = [await self._upload_image(access_token, author, item) for item in images]
            body["content"] = {"multiImage": {"images": [{"id": i} for i in ids]}}
        elif article:
            body["content"] = {
                "article": {"source": content.link, "title": content.title or content.link}
            }
        response = await self._call("POST", "/rest/posts", access_token, json=body, creates=True)
        urn = response.headers.get("x-restli-id") or response.headers.get("x-linkedin-id")
        if not urn:
            raise PlatformError(
                FailureKind.TRANSIENT,
                "no_post_id",
                "LinkedIn accepted the post but returned no URN",
                status=response.status_code,
                outcome_unknown=True,
            )
        published = Published(urn, _post_url(urn), datetime.now(UTC))
        if content.first_comment:
            await self._comment(access_token, author, urn, content.first_comment)
        return published

    async def _comment(self, access_token: str, author: str, urn: str, text: str) -> None:
        """The first comment; the post exists already, so a failure is logged, not raised."""
        try:
            await self._call(
                "POST",
                f"/rest/socialActions/{_enc(urn)}/comments",
                access_token,
                json={"actor": author, "object": urn, "message": {"text": text}},
            )
        except PlatformError as exc:
            log.warning("linkedin: first comment on %s failed: %s", urn, exc)

    async def _upload_image(self, access_token: str, author: str, item: MediaFile) -> str:
        data = await self._download(item)
        init = json_object(
            await self._call(
                "POST",
                "/rest/images",
                access_token,
                params={"action": "initializeUpload"},
                json={"initializeUploadRequest": {"owner": author}},
            )
        )["value"]
        await self._put(access_token, init["uploadUrl"], data, item.mime_type)
        return str(init["image"])

    async def _upload_video(self, access_token: str, author: str, item: MediaFile) -> str:
        data = await self._download(item)
        init = json_object(
            await self._call(
                "POST",
                "/rest/videos",
                access_token,
                params={"action": "initializeUpload"},
                json={
                    "initializeUploadRequest": {
                        "owner": author,
                        "fileSizeBytes": len(data),
                        "uploadCaptions": False,
                        "uploadThumbnail": False,
                    }
                },
            )
        )["value"]
        video = str(init["video"])
        etags = []
        for part in init.get("uploadInstructions") or []:
            chunk = data[int(part["firstByte"]) : int(part["lastByte"]) + 1]
            response = await self._put(access_token, part["uploadUrl"], chunk, item.mime_type)
            etags.append(response.headers.get("etag", ""))
        await self._call(
            "POST",
            "/rest/videos",
            access_token,
            params={"action": "finalizeUpload"},
            json={
                "finalizeUploadRequest": {
                    "video": video,
                    "uploadToken": init.get("uploadToken", ""),
                    "uploadedPartIds": etags,
                }
            },
        )
        for attempt in range(self.poll_attempts):
            status = json_object(
                await self._call("GET", f"/rest/videos/{_enc(video)}", access_token)
            )
            state = str(status.get("status") or "")
            if state == "AVAILABLE":
                return video
            if state in ("PROCESSING_FAILED", "FAILED"):
                raise PlatformError(
                    FailureKind.PERMANENT,
                    "media_processing_failed",
                    f"LinkedIn could not process video {video}",
                )
            if attempt + 1 < self.poll_attempts:
                await asyncio.sleep(self.poll_interval)
        raise PlatformError(
            FailureKind.TRANSIENT,
            "media_processing_timeout",
            f"LinkedIn was still processing video {video}",
        )

    async def _put(
        self, access_token: str, url: str, data: bytes, mime_type: str
    ) -> httpx.Response:
        request = self.http.build_request(
            "PUT",
            url,
            content=data,
            headers={"Authorization": f"Bearer {access_token}", "Content-Type": mime_type},
        )
        response = await send(self, request)
        self._observe(response)
        if response.is_error:
            raise self._error(response)
        return response

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
        query = f"q=author&author={_enc(_person(account))}&count=50&sortBy=CREATED"
        response = await self._call(
            "GET", f"/rest/posts?{query}", access_token, method_header="FINDER"
        )
        matches = []
        for post in json_object(response).get("elements") or []:
            millis = post.get("publishedAt") or post.get("createdAt")
            created = datetime.fromtimestamp(millis / 1000, UTC) if millis else None
            commentary = unescape_little_text(str(post.get("commentary") or ""))
            if posted_since(created, since) and text_matches(commentary, text):
                matches.append((created, str(post["id"])))
        if not matches:
            return None
        created, urn = min(matches)
        return Published(urn, _post_url(urn), created)

    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None:
        try:
            await self._call(
                "DELETE",
                f"/rest/posts/{_enc(platform_post_id)}",
                access_token,
                method_header="DELETE",
            )
        except PlatformError as exc:
            if exc.status != 404:
                raise

    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]:
        kind = "ugc" if ":ugcPost:" in platform_post_id else "share"
        entity = f"({kind}:{_enc(platform_post_id)})"

        async def metric(query_type: str) -> int:
            response = await self._call(
                "GET",
                f"/rest/memberCreatorPostAnalytics?q=entity&entity={entity}"
                f"&queryType={query_type}&aggregation=TOTAL",
                access_token,
            )
            elements = json_object(response).get("elements") or []
            return sum(int(e.get("count") or 0) for e in elements)

        counts = await asyncio.gather(*(metric(q) for q in METRICS))
        values = dict(zip(METRICS.values(), counts, strict=True))
        return normalised(**values)  # video views are not part of member post analytics

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        # LinkedIn reports a member's followers; neither followings nor a post count.
        return {"followers": await self._followers(access_token), "following": 0, "posts": 0}

    # -- HTTP ----------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        access_token: str,
        *,
        creates: bool = False,
        rest: bool = True,
        method_header: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {access_token}"}
        if rest:
            headers |= {
                "LinkedIn-Version": self.api_version,
                "X-Restli-Protocol-Version": "2.0.0",
            }
        if method_header:
            headers["X-RestLi-Method"] = method_header
        request = self.http.build_request(
            method, self.endpoints.api.rstrip("/") + path, headers=headers, **kwargs
        )
        response = await send(self, request, creates=creates)
        self._observe(response)
        if response.is_error:
            raise self._error(response)
        return response

    def _observe(self, response: httpx.Response) -> None:
        if response.status_code != 429:
            self.rate_limit = RateLimitState()
            return
        now = datetime.now(UTC)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        self.rate_limit = RateLimitState(
            remaining=0,
            reset_at=midnight.timestamp(),
            retry_after=retry_after if retry_after is not None else self.rate_limit_fallback,
        )

    def _error(self, response: httpx.Response) -> PlatformError:
        body = json_object(response)
        status = response.status_code
        code = str(body.get("code") or body.get("error") or f"http_{status}").lower()
        message = str(
            body.get("message")
            or body.get("error_description")
            or response.reason_phrase
            or "LinkedIn API error"
        )
        retry_after = None
        if status == 401 or code == "access_denied":
            kind = FailureKind.AUTH
        elif status == 429 or status >= 500:
            kind = FailureKind.TRANSIENT
            retry_after = (
                self.rate_limit.retry_after
                if status == 429
                else parse_retry_after(response.headers.get("retry-after"))
            )
        else:
            kind = FailureKind.PERMANENT
        return PlatformError(kind, code, message, status=status, retry_after=retry_after)


# -- little text -------------------------------------------------------------------------------


def escape_little_text(text: str) -> str:
    """Escape reserved characters; inline `#tags` become hashtag templates."""
    out = []
    last = 0
    for match in _INLINE_HASHTAG.finditer(text):
        out.append(_RESERVED.sub(r"\\\1", text[last : match.start()]))
        out.append("{hashtag|\\#|" + match.group(1) + "}")
        last = match.end()
    out.append(_RESERVED.sub(r"\\\1", text[last:]))
    return "".join(out)


def unescape_little_text(commentary: str) -> str:
    return _ESCAPED.sub(r"\1", _HASHTAG_TEMPLATE.sub(lambda m: "#" + m.group(1), commentary))


def little_text(content: PublishContent, *, link: bool) -> str:
    """The commentary: text, then (if not in it) the link and hashtags, as little text."""
    text = content.text.strip()
    parts = [escape_little_text(text)] if text else []
    if link and content.link and content.link not in text:
        parts.append(escape_little_text(content.link))
    tags = [t.strip().lstrip("#") for t in content.hashtags if t.strip("# ")]
    missing = [t for t in tags if f"#{t}".lower() not in text.lower()]
    if missing:
        parts.append(" ".join("{hashtag|\\#|" + t + "}" for t in missing))
    return "\n\n".join(parts)


def _person(account: AccountProfile) -> str:
    return f"urn:li:person:{account.platform_account_id}"


def _enc(urn: str) -> str:
    return quote(urn, safe="")


def _post_url(urn: str) -> str:
    return f"https://www.linkedin.com/feed/update/{urn}/"


CLIENT = LinkedInClient
