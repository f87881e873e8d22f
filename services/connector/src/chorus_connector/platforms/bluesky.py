"""Bluesky (AT Protocol XRPC) client.

`endpoints.api` is the account's PDS (e.g. `https://bsky.social`, or the sandbox's
`<sandbox>/bluesky`); XRPC calls go to `{api}/xrpc/<nsid>` with the session's access JWT.

Connecting uses **app-password sessions**, not atproto OAuth (which needs PAR, DPoP-bound
tokens and a published client-metadata document: a larger piece of work, recorded as a
follow-up). To fit the connector's authorization-code shape, `authorize_url` points at an
app-password page under `endpoints.auth_base` (`/app-password/authorize`): the user gives a
handle and an app password there, the page opens the session (`login`, i.e.
`com.atproto.server.createSession`) and redirects back with a one-time, PKCE-bound code that
`exchange_code` redeems at `/app-password/token` for the session. In the sandbox both are
simulated; in production the page is Chorus's own. Sessions are refreshed with
`com.atproto.server.refreshSession`, which rotates the refresh JWT.

Posts are `app.bsky.feed.post` records made with `com.atproto.repo.createRecord`: links,
mentions (handles resolved to DIDs) and hashtags become facets with UTF-8 byte offsets;
images (up to 4) and one video are uploaded with `com.atproto.repo.uploadBlob` and embedded;
a link without media becomes an external embed. The post id is the record's `at://` URI.
"""

from __future__ import annotations

import base64
import json
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
    json_body,
    normalise_text,
    normalised,
    parse_float,
    parse_retry_after,
    parse_time,
    posted_since,
    send,
    send_observed,
    text_matches,
)
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent

POST = "app.bsky.feed.post"
MAX_IMAGES = 4
READ_BACK_LIMIT = 30
AUTH_ERRORS = {"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing"}

_URL = re.compile(r"https?://[^\s<>\"']+")
_MENTION = re.compile(r"(?:^|(?<=[\s(]))@([a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?\.[a-zA-Z]+)")
_TAG = re.compile(r"(?:^|(?<=\s))#([^\s#]*[^\d\s#.,;:!?)\]'\"][^\s#]*)")
_TRAILING = ".,;:!?)]'\""


class BlueskyClient(PlatformClient):
    platform = Platform.BLUESKY
    supports_pkce = True
    default_scopes = ("atproto", "transition:generic")

    # -- connecting ------------------------------------------------------------------------

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
        return f"{self.endpoints.auth_base}/app-password/authorize?{urlencode(params)}"

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
        url = f"{self.endpoints.auth_base}/app-password/token"
        response = await self._request(self.http.build_request("POST", url, data=form))
        return _tokens(json_body(response))

    async def login(self, identifier: str, app_password: str) -> OAuthTokens:
        """Open a session with a handle (or DID) and an app password."""
        body = {"identifier": identifier, "password": app_password}
        response = await self._xrpc("POST", "com.atproto.server.createSession", json=body)
        return _tokens(json_body(response))

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        response = await self._xrpc("POST", "com.atproto.server.refreshSession", refresh_token)
        return _tokens(json_body(response))

    async def profile(self, access_token: str) -> AccountProfile:
        session = json_body(await self._xrpc("GET", "com.atproto.server.getSession", access_token))
        profile = await self._profile(access_token, session["did"])
        return AccountProfile(
            platform_account_id=session["did"],
            username=session.get("handle") or profile.get("handle") or session["did"],
            display_name=profile.get("displayName") or None,
            followers=profile.get("followersCount"),
        )

    async def _profile(self, access_token: str, actor: str) -> dict[str, Any]:
        params = {"actor": actor}
        response = await self._xrpc("GET", "app.bsky.actor.getProfile", access_token, params=params)
        body: dict[str, Any] = json_body(response)
        return body

    # -- content -----------------------------------------------------------------------------

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        videos = [m for m in media if m.is_video]
        images = [m for m in media if not m.is_video]
        if videos and (images or len(videos) > 1):
            raise PlatformError(
                FailureKind.PERMANENT, "unsupported_media", "Bluesky posts take one video alone"
            )
        if len(images) > MAX_IMAGES:
            raise PlatformError(
                FailureKind.PERMANENT,
                "too_many_media",
                f"Bluesky posts take at most {MAX_IMAGES} images",
            )
        text = post_text(content)
        record: dict[str, Any] = {
            "$type": POST,
            "text": text,
            "createdAt": _iso(datetime.now(UTC)),
        }
        facets = await self._facets(access_token, text)
        if facets:
            record["facets"] = facets
        embed = await self._embed(access_token, content, images, videos)
        if embed:
            record["embed"] = embed
        if content.options.get("language"):
            record["langs"] = [content.options["language"]]
        body = {"repo": account.platform_account_id, "collection": POST, "record": record}
        response = await self._xrpc(
            "POST", "com.atproto.repo.createRecord", access_token, json=body, creates=True
        )
        uri = json_body(response)["uri"]
        return Published(
            platform_post_id=uri,
            url=post_url(account, uri),
            published_at=parse_time(record["createdAt"]) or datetime.now(UTC),
        )

    async def _facets(self, access_token: str, text: str) -> list[dict[str, Any]]:
        facets = []
        for start, end, feature in find_facets(text):
            if feature["$type"].endswith("#mention"):
                did = await self._resolve(access_token, feature.pop("handle"))
                if did is None:
                    continue  # an unknown handle stays plain text
                feature["did"] = did
            facets.append({"index": {"byteStart": start, "byteEnd": end}, "features": [feature]})
        return facets

    async def _resolve(self, access_token: str, handle: str) -> str | None:
        try:
            response = await self._xrpc(
                "GET",
                "com.atproto.identity.resolveHandle",
                access_token,
                params={"handle": handle},
            )
        except PlatformError as exc:
            if exc.kind is FailureKind.PERMANENT:
                return None
            raise
        did = json_body(response).get("did")
        return str(did) if did else None

    async def _embed(
        self,
        access_token: str,
        content: PublishContent,
        images: list[MediaFile],
        videos: list[MediaFile],
    ) -> dict[str, Any] | None:
        if videos:
            video = videos[0]
            embed: dict[str, Any] = {
                "$type": "app.bsky.embed.video",
                "video": await self._upload(access_token, video),
            }
            if video.width and video.height:
                embed["aspectRatio"] = {"width": video.width, "height": video.height}
            return embed
        if images:
            items = []
            for image in images:
                item: dict[str, Any] = {"alt": "", "image": await self._upload(access_token, image)}
                if image.width and image.height:
                    item["aspectRatio"] = {"width": image.width, "height": image.height}
                items.append(item)
            return {"$type": "app.bsky.embed.images", "images": items}
        if content.link:
            external = {"uri": content.link, "title": content.title or content.link}
            return {"$type": "app.bsky.embed.external", "external": external | {"description": ""}}
        return None

    async def _upload(self, access_token: str, item: MediaFile) -> dict[str, Any]:
        download = await send(self, self.http.build_request("GET", item.url))
        if download.status_code != 200:
            raise PlatformError(
                classify_status(download.status_code),
                "media_unavailable",
                f"media {item.url} answered {download.status_code}",
                status=download.status_code,
            )
        response = await self._xrpc(
            "POST",
            "com.atproto.repo.uploadBlob",
            access_token,
            content=download.content,
            headers={"Content-Type": item.mime_type},
        )
        blob: dict[str, Any] = json_body(response)["blob"]
        return blob

    async def find_recent(
        self, access_token: str, account: AccountProfile, *, text: str, since: datetime
    ) -> Published | None:
        params = {
            "actor": account.platform_account_id,
            "limit": READ_BACK_LIMIT,
            "filter": "posts_no_replies",
        }
        response = await self._xrpc(
            "GET", "app.bsky.feed.getAuthorFeed", access_token, params=params
        )
        for item in json_body(response).get("feed", []):
            post = item.get("post") or {}
            if (
                item.get("reason")
                or (post.get("author") or {}).get("did") != account.platform_account_id
            ):
                continue  # a repost, not this account's own post
            record = post.get("record") or {}
            created = parse_time(record.get("createdAt"))
            matches = text_matches(record.get("text") or "", text)
            if created and posted_since(created, since) and matches:
                return Published(post["uri"], post_url(account, post["uri"]), created)
        return None

    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None:
        repo, collection, rkey = parse_at_uri(platform_post_id)
        body = {"repo": repo, "collection": collection, "rkey": rkey}
        await self._xrpc("POST", "com.atproto.repo.deleteRecord", access_token, json=body)

    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]:
        params = {"uris": [platform_post_id]}
        response = await self._xrpc("GET", "app.bsky.feed.getPosts", access_token, params=params)
        posts = json_body(response).get("posts") or []
        if not posts:
            raise PlatformError(FailureKind.PERMANENT, "not_found", "Bluesky has no such post")
        post = posts[0]
        return normalised(
            likes=post.get("likeCount"),
            comments=post.get("replyCount"),
            shares=int(post.get("repostCount") or 0) + int(post.get("quoteCount") or 0),
            saves=post.get("bookmarkCount"),
        )

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        profile = await self._profile(access_token, account.platform_account_id)
        return {
            "followers": int(profile.get("followersCount") or 0),
            "following": int(profile.get("followsCount") or 0),
            "posts": int(profile.get("postsCount") or 0),
        }

    # -- transport -------------------------------------------------------------------------------

    async def _xrpc(
        self,
        method: str,
        nsid: str,
        token: str | None = None,
        *,
        creates: bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = f"{self.endpoints.api}/xrpc/{nsid}"
        request = self.http.build_request(method, url, headers=headers, **kwargs)
        return await self._request(request, creates=creates)

    async def _request(self, request: httpx.Request, *, creates: bool = False) -> httpx.Response:
        return await send_observed(self, request, creates, rate_limit_state, error_from)


CLIENT = BlueskyClient


# -- helpers -----------------------------------------------------------------------------------


def post_text(content: PublishContent) -> str:
    """The post: the text, its link and hashtags, then any mention it does not name yet."""
    text = compose_text(content)
    mentions = [f"@{m.lstrip('@')}" for m in content.mentions if m.strip("@ ")]
    missing = " ".join(m for m in mentions if m.lower() not in normalise_text(text))
    return f"{text}\n\n{missing}" if text and missing else text or missing


def find_facets(text: str) -> list[tuple[int, int, dict[str, Any]]]:
    """(byteStart, byteEnd, feature) for links, mentions and hashtags, in UTF-8 byte offsets.

    Mention features carry the `handle` to resolve into a `did`."""

    def span(start: int, end: int) -> tuple[int, int]:
        return len(text[:start].encode()), len(text[:end].encode())

    found: list[tuple[int, int, dict[str, Any]]] = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        start, end = span(match.start(), match.start() + len(url))
        found.append((start, end, {"$type": "app.bsky.richtext.facet#link", "uri": url}))
    links = [(s, e) for s, e, _ in found]
    for match in _MENTION.finditer(text):
        start, end = span(match.start(), match.end())
        handle = match.group(1).lower()
        found.append((start, end, {"$type": "app.bsky.richtext.facet#mention", "handle": handle}))
    for match in _TAG.finditer(text):
        tag = match.group(1).rstrip(_TRAILING)
        begin = match.start(1) - 1  # the '#'
        start, end = span(begin, match.start(1) + len(tag))
        if any(s <= start < e for s, e in links) or not tag or len(tag) > 64:
            continue  # a '#' inside a URL is not a tag
        found.append((start, end, {"$type": "app.bsky.richtext.facet#tag", "tag": tag}))
    return sorted(found, key=lambda f: f[0])


def parse_at_uri(uri: str) -> tuple[str, str, str]:
    """`at://<repo>/<collection>/<rkey>` → (repo, collection, rkey)."""
    parts = uri.removeprefix("at://").split("/")
    if not uri.startswith("at://") or len(parts) != 3 or not all(parts):
        raise PlatformError(FailureKind.PERMANENT, "bad_post_id", f"not an at:// record URI: {uri}")
    return parts[0], parts[1], parts[2]


def post_url(account: AccountProfile, uri: str) -> str:
    repo, _, rkey = parse_at_uri(uri)
    return f"https://bsky.app/profile/{account.username or repo}/post/{rkey}"


def _tokens(session: dict[str, Any]) -> OAuthTokens:
    access = session["accessJwt"]
    return OAuthTokens(
        access_token=access,
        refresh_token=session.get("refreshJwt"),
        expires_at=jwt_expiry(access),
        scopes=("atproto", "transition:generic"),
    )


def jwt_expiry(token: str) -> datetime | None:
    """The `exp` of a JWT access token (None for an opaque token: refresh on `ExpiredToken`)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.fromtimestamp(float(payload["exp"]), UTC)
    except (ValueError, KeyError, TypeError):
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rate_limit_state(response: httpx.Response) -> RateLimitState:
    """`ratelimit-limit/remaining` (counts) and `ratelimit-reset` (epoch seconds)."""
    h = response.headers
    reset_at = parse_float(h.get("ratelimit-reset"))
    retry_after = parse_retry_after(h.get("retry-after"))
    if response.status_code == 429 and retry_after is None and reset_at is not None:
        retry_after = max(1.0, reset_at - time.time())
    limit, remaining = (
        parse_float(h.get("ratelimit-limit")),
        parse_float(h.get("ratelimit-remaining")),
    )
    return RateLimitState(
        limit=int(limit) if limit is not None else None,
        remaining=int(remaining) if remaining is not None else None,
        reset_at=reset_at,
        retry_after=retry_after,
    )


def error_from(response: httpx.Response, rate: RateLimitState) -> PlatformError:
    """XRPC errors name themselves (`{"error", "message"}`): classify by name first, since
    a PDS answers `ExpiredToken` with a 400."""
    status = response.status_code
    body = json_body(response)
    name = str(body.get("error") or "") if isinstance(body, dict) else ""
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    message = message or name or response.reason_phrase or f"HTTP {status}"
    code = name or f"http_{status}"
    if name in AUTH_ERRORS or name == "InvalidGrant" or status == 401:
        return PlatformError(FailureKind.AUTH, code, message, status=status)
    if name == "RateLimitExceeded" or status == 429:
        return PlatformError(
            FailureKind.TRANSIENT, code, message, status=status, retry_after=rate.retry_after
        )
    return PlatformError(classify_status(status), code, message, status=status)
