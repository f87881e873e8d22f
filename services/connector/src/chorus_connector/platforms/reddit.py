"""Reddit (OAuth API) client.

`endpoints.api` is `https://oauth.reddit.com` (or the sandbox's `<sandbox>/reddit`);
`endpoints.auth` is `https://www.reddit.com`, which serves both the consent page
(`/api/v1/authorize`) and the token endpoint (`/api/v1/access_token`, HTTP Basic client
authentication). Reddit supports no PKCE; `duration=permanent` gets a refresh token. Every
call sends a descriptive User-Agent, as Reddit's API rules require.

A post is a submission to `options["subreddit"]` (required; `u_<name>` is the account's
profile). The title is `title`, else the first line of the text. With text, the post is a
self post (text plus link); with only a link, a link post; with one image, an image post
(the image goes through Reddit's media asset upload). Validation problems come back as
`json.errors` in a 200 and are permanent, except `RATELIMIT`, which is transient with the
wait Reddit names.
"""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

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
    parse_float,
    parse_retry_after,
    posted_since,
    send,
    send_observed,
    status_error,
    text_matches,
)
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent

MAX_TITLE = 300
READ_BACK_LIMIT = 25
USER_AGENT = "server:chorus-connector:0.1 (social media management; by /u/chorus)"
_WAIT = re.compile(r"(\d+)\s*(second|minute|hour)", re.IGNORECASE)
_UNITS = {"second": 1, "minute": 60, "hour": 3600}


class RedditClient(PlatformClient):
    platform = Platform.REDDIT
    supports_pkce = False
    default_scopes = ("identity", "submit", "read", "edit", "history")

    # -- OAuth ---------------------------------------------------------------------------------

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None, scopes: tuple[str, ...]
    ) -> str:
        params = {
            "client_id": self.app.client_id,
            "response_type": "code",
            "state": state,
            "redirect_uri": redirect_uri,
            "duration": "permanent",
            "scope": " ".join(scopes or self.default_scopes),
        }
        return f"{self.endpoints.auth_base}/api/v1/authorize?{urlencode(params)}"

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> OAuthTokens:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        return await self._token(form)

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return await self._token(form, previous_refresh=refresh_token)

    async def _token(
        self, form: dict[str, str], *, previous_refresh: str | None = None
    ) -> OAuthTokens:
        secret = f"{self.app.client_id}:{self.app.client_secret}".encode()
        request = self.http.build_request(
            "POST",
            f"{self.endpoints.auth_base}/api/v1/access_token",
            data=form,
            headers={
                "Authorization": "Basic " + base64.b64encode(secret).decode(),
                "User-Agent": USER_AGENT,
            },
        )
        try:
            body = json_body(await self._request(request))
        except PlatformError as exc:
            if exc.status in (400, 401):
                raise PlatformError(
                    FailureKind.AUTH, "invalid_grant", exc.message, status=exc.status
                ) from exc
            raise
        if "error" in body or "access_token" not in body:  # Reddit: a bad grant is a 200
            raise PlatformError(
                FailureKind.AUTH, str(body.get("error") or "invalid_grant"), str(body)
            )
        # Reddit keeps the refresh token on refresh (older answers carry none).
        return OAuthTokens(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token") or previous_refresh,
            expires_at=expires_at(body.get("expires_in")),
            scopes=tuple(re.split(r"[,\s]+", str(body.get("scope") or "").strip()))
            if body.get("scope")
            else (),
        )

    async def profile(self, access_token: str) -> AccountProfile:
        me = json_body(await self._api("GET", "/api/v1/me", access_token))
        profile = me.get("subreddit") or {}
        return AccountProfile(
            platform_account_id=str(me["id"]),
            username=me["name"],
            display_name=profile.get("title") or me["name"],
            followers=profile.get("subscribers"),
        )

    # -- content -------------------------------------------------------------------------------

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        if any(m.is_video for m in media) or len(media) > 1:
            raise PlatformError(
                FailureKind.PERMANENT,
                "unsupported_media",
                "Reddit posts from Chorus take at most one image (no video or gallery)",
            )
        options = content.options
        form: dict[str, str] = {
            "api_type": "json",
            "sr": (options.get("subreddit") or "").removeprefix("/").removeprefix("r/"),
            "title": content.title or derive_title(content.text),
            "resubmit": "true",
            "sendreplies": options.get("send_replies", "true"),
        }
        for flag in ("nsfw", "spoiler"):
            if options.get(flag, "").lower() in ("1", "true", "yes"):
                form[flag] = "true"
        if options.get("flair_id"):
            form["flair_id"] = options["flair_id"]
        body = compose_text(content, hashtags=False)  # Reddit has no hashtags
        if media:
            form |= {"kind": "image", "url": await self._upload(access_token, media[0])}
        elif content.link and not content.text.strip():
            form |= {"kind": "link", "url": content.link}
        else:
            form |= {"kind": "self", "text": body}
        response = await self._api("POST", "/api/submit", access_token, data=form, creates=True)
        data = _submit_result(response)
        return Published(
            platform_post_id=str(data.get("name") or f"t3_{data['id']}"),
            url=data.get("url"),
            published_at=datetime.now(UTC),  # the answer carries no time
        )

    async def _upload(self, access_token: str, image: MediaFile) -> str:
        """Reddit's media asset flow: lease an upload, post the file to the object store,
        submit the object's URL."""
        download = await send(self, self.http.build_request("GET", image.url))
        if download.status_code != 200:
            raise PlatformError(
                classify_status(download.status_code),
                "media_unavailable",
                f"media {image.url} answered {download.status_code}",
                status=download.status_code,
            )
        filename = image.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "image.jpg"
        lease = json_body(
            await self._api(
                "POST",
                "/api/media/asset.json",
                access_token,
                data={"filepath": filename, "mimetype": image.mime_type},
            )
        )
        args = lease["args"]
        action = str(args["action"])
        if action.startswith("//"):  # protocol-relative
            action = f"{urlsplit(self.endpoints.api).scheme}:{action}"
        fields = {f["name"]: f["value"] for f in args["fields"]}
        upload = await send(
            self,
            self.http.build_request(
                "POST",
                action,
                data=fields,
                files={"file": (filename, download.content, image.mime_type)},
            ),
        )
        if upload.status_code not in (200, 201, 204):
            raise PlatformError(
                classify_status(upload.status_code),
                "media_upload_failed",
                f"the image upload answered {upload.status_code}",
                status=upload.status_code,
            )
        return f"{action}/{fields['key']}"

    async def find_recent(
        self, access_token: str, account: AccountProfile, *, text: str, since: datetime
    ) -> Published | None:
        params = {"sort": "new", "limit": READ_BACK_LIMIT, "raw_json": 1}
        response = await self._api(
            "GET", f"/user/{account.username}/submitted", access_token, params=params
        )
        # Self posts carry the text; link and image posts only a title made from it.
        titles = {normalise_text(text), normalise_text(derive_title(text))} - {""}
        for child in (json_body(response).get("data") or {}).get("children") or []:
            data = child.get("data") or {}
            created = datetime.fromtimestamp(float(data.get("created_utc") or 0), UTC)
            if not posted_since(created, since):
                continue
            selftext, title = data.get("selftext") or "", normalise_text(data.get("title") or "")
            if (data.get("is_self") and text_matches(selftext, text)) or title in titles:
                url = data.get("url") if not data.get("is_self") else None
                permalink = data.get("permalink")
                return Published(
                    platform_post_id=str(data.get("name") or f"t3_{data['id']}"),
                    url=f"https://www.reddit.com{permalink}" if permalink else url,
                    published_at=created,
                )
        return None

    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None:
        await self._api("POST", "/api/del", access_token, data={"id": _fullname(platform_post_id)})

    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]:
        params = {"id": _fullname(platform_post_id), "raw_json": 1}
        response = await self._api("GET", "/api/info", access_token, params=params)
        children = (json_body(response).get("data") or {}).get("children") or []
        if not children:
            raise PlatformError(FailureKind.PERMANENT, "not_found", "Reddit has no such post")
        data = children[0].get("data") or {}
        return normalised(
            likes=data.get("ups"),
            comments=data.get("num_comments"),
            shares=data.get("num_crossposts"),
            video_views=data.get("view_count"),
        )

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        me = json_body(await self._api("GET", "/api/v1/me", access_token))
        # Reddit reports followers of the profile and nothing for follows or a post count.
        return {
            "followers": int((me.get("subreddit") or {}).get("subscribers") or 0),
            "following": 0,
            "posts": 0,
        }

    # -- transport -------------------------------------------------------------------------------

    async def _api(
        self, method: str, path: str, access_token: str, *, creates: bool = False, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {access_token}", "User-Agent": USER_AGENT}
        url = f"{self.endpoints.api}{path}"
        request = self.http.build_request(method, url, headers=headers, **kwargs)
        return await self._request(request, creates=creates)

    async def _request(self, request: httpx.Request, *, creates: bool = False) -> httpx.Response:
        return await send_observed(self, request, creates, rate_limit_state, error_from)


CLIENT = RedditClient


# -- helpers -----------------------------------------------------------------------------------


def derive_title(text: str) -> str:
    """The first line of the text, cut at a word to Reddit's 300 characters."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) <= MAX_TITLE:
        return first
    cut = first[: MAX_TITLE - 1].rsplit(" ", 1)[0]
    return cut + "…"


def _submit_result(response: httpx.Response) -> dict[str, Any]:
    """`{"json": {"errors": [[code, message, field], ...], "data": {...}}}`."""
    answer = (json_body(response) or {}).get("json") or {}
    errors = answer.get("errors") or []
    if errors:
        code, message, field = [str(part) for part in [*errors[0], "", "", ""][:3]]
        text = f"{message} (field: {field})" if field else message
        if code == "RATELIMIT":
            raise PlatformError(
                FailureKind.TRANSIENT, code, text, status=200, retry_after=parse_wait(message)
            )
        raise PlatformError(FailureKind.PERMANENT, code, text, status=200)
    data: dict[str, Any] = answer.get("data") or {}
    if not data.get("id") and not data.get("name"):
        raise PlatformError(
            FailureKind.TRANSIENT,
            "no_post_id",
            "Reddit accepted the post but named no id",
            outcome_unknown=True,  # read back before any retry
        )
    return data


def parse_wait(message: str) -> float | None:
    """ "Take a break for 9 minutes before trying again." → 540."""
    match = _WAIT.search(message)
    return float(int(match.group(1)) * _UNITS[match.group(2).lower()]) if match else None


def _fullname(post_id: str) -> str:
    return post_id if post_id.startswith("t3_") else f"t3_{post_id}"


def rate_limit_state(response: httpx.Response) -> RateLimitState:
    """`x-ratelimit-used/remaining` (calls) and `x-ratelimit-reset` (seconds until reset)."""
    h = response.headers
    used, remaining = (
        parse_float(h.get("x-ratelimit-used")),
        parse_float(h.get("x-ratelimit-remaining")),
    )
    reset_in = parse_float(h.get("x-ratelimit-reset"))
    retry_after = parse_retry_after(h.get("retry-after"))
    if response.status_code == 429 and retry_after is None and reset_in is not None:
        retry_after = reset_in
    return RateLimitState(
        limit=int(used + remaining) if used is not None and remaining is not None else None,
        remaining=int(remaining) if remaining is not None else None,
        reset_at=time.time() + reset_in if reset_in is not None else None,
        retry_after=retry_after,
    )


def error_from(response: httpx.Response, rate: RateLimitState) -> PlatformError:
    status = response.status_code
    body = json_body(response)
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    message = message or response.reason_phrase or f"HTTP {status}"
    if status == 401:
        return PlatformError(FailureKind.AUTH, "unauthorized", message, status=status)
    if status == 429:
        return PlatformError(
            FailureKind.TRANSIENT,
            "rate_limited",
            message,
            status=status,
            retry_after=rate.retry_after,
        )
    codes = {400: "bad_request", 403: "forbidden", 404: "not_found"}
    code = codes.get(status, "server_error" if status >= 500 else f"http_{status}")
    return status_error(response, code, message)
