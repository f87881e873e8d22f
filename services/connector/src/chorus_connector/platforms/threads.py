"""Threads client (graph.threads.net, Graph API v1.0).

Posting is the container flow: `POST /{user-id}/threads` (TEXT, IMAGE, VIDEO, or carousel items
then a CAROUSEL container), `GET /{container-id}?fields=status,error_message` until `FINISHED`,
then `POST /{user-id}/threads_publish` — the one creating call, whose unknown outcome is read
back from `GET /{user-id}/threads`. Threads fetches media from its URL. A first comment is a
reply (`reply_to_id`) published the same way.

OAuth: code → short-lived token (`POST /oauth/access_token`) → long-lived token at once
(`th_exchange_token`, 60 days). Threads has no refresh tokens: the long-lived token refreshes
itself (`th_refresh_token`), so it is also stored as the refresh token. No PKCE.

Real endpoints: `Endpoints(api="https://graph.threads.net", auth="https://threads.net")`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from chorus_connector.platforms.base import (
    READBACK_SKEW,
    AccountProfile,
    MediaFile,
    OAuthTokens,
    PlatformError,
    Published,
    compose_text,
    expires_at,
    posted_since,
    text_matches,
)
from chorus_connector.platforms.facebook import GraphClient, graph_time, insight_values
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent

log = logging.getLogger(__name__)


class ThreadsClient(GraphClient):
    platform = Platform.THREADS
    supports_pkce = False
    graph_version = "v1.0"
    default_scopes = (
        "threads_basic",
        "threads_content_publish",
        "threads_manage_insights",
        "threads_manage_replies",
        "threads_read_replies",
        "threads_delete",
    )
    max_carousel = 20

    # -- OAuth ---------------------------------------------------------------------------------

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None, scopes: tuple[str, ...]
    ) -> str:
        params = {
            "client_id": self.app.client_id,
            "redirect_uri": redirect_uri,
            "scope": ",".join(scopes or self.default_scopes),
            "response_type": "code",
            "state": state,
        }
        return f"{self.endpoints.auth_base}/oauth/authorize?{urlencode(params)}"

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> OAuthTokens:
        base = self.endpoints.api.rstrip("/")
        short = await self._oauth(
            "POST",
            f"{base}/oauth/access_token",
            data={
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
                "grant_type": "authorization_code",
                "redirect_uri": redirect_uri,
                "code": code,
            },
        )
        long_lived = await self._oauth(
            "GET",
            f"{base}/access_token",
            params={
                "grant_type": "th_exchange_token",
                "client_secret": self.app.client_secret,
                "access_token": str(short["access_token"]),
            },
        )
        return self._tokens(long_lived)

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        body = await self._oauth(
            "GET",
            f"{self.endpoints.api.rstrip('/')}/refresh_access_token",
            params={"grant_type": "th_refresh_token", "access_token": refresh_token},
        )
        return self._tokens(body)

    def _tokens(self, body: dict[str, Any]) -> OAuthTokens:
        token = str(body["access_token"])
        return OAuthTokens(token, token, expires_at(body.get("expires_in")), self.default_scopes)

    async def _oauth(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return await self._call(method, "", None, url=url, **kwargs)
        except PlatformError as exc:
            if exc.retry_after is None and (exc.status or 0) < 500:
                exc.kind = FailureKind.AUTH  # a bad code, token or secret: authorize again
            raise

    async def profile(self, access_token: str) -> AccountProfile:
        me = await self._call("GET", "/me", access_token, params={"fields": "id,username,name"})
        user_id = str(me["id"])
        followers: int | None = None
        try:
            followers = await self._followers(access_token, user_id)
        except PlatformError as exc:  # insights need threads_manage_insights: optional here
            if exc.kind is not FailureKind.PERMANENT:
                raise
        return AccountProfile(user_id, str(me["username"]), me.get("name"), followers)

    async def _followers(self, access_token: str, user_id: str) -> int:
        body = await self._call(
            "GET",
            f"/{user_id}/threads_insights",
            access_token,
            params={"metric": "followers_count"},
        )
        return insight_values(body).get("followers_count", 0)

    # -- content -------------------------------------------------------------------------------

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        user = account.platform_account_id
        if len(media) > self.max_carousel:
            raise PlatformError(
                FailureKind.PERMANENT,
                "too_many_media",
                f"a Threads carousel holds at most {self.max_carousel} items",
            )
        text = compose_text(content)
        if len(media) > 1:
            children = [
                await self._container(access_token, user, _media_form(item, carousel_item=True))
                for item in media
            ]
            for child in children:
                await self._ready(access_token, child)
            form = {"media_type": "CAROUSEL", "children": ",".join(children), "text": text}
        elif media:
            form = {**_media_form(media[0]), "text": text}
        else:
            form = {"media_type": "TEXT", "text": text}
        container = await self._container(access_token, user, form)
        await self._ready(access_token, container)
        body = await self._call(
            "POST",
            f"/{user}/threads_publish",
            access_token,
            data={"creation_id": container},
            creates=True,
        )
        media_id = str(body["id"])
        url = await self._permalink(access_token, media_id)
        if content.first_comment:
            await self._reply(access_token, user, media_id, content.first_comment)
        return Published(media_id, url, datetime.now(UTC))

    async def _container(self, access_token: str, user: str, form: dict[str, str]) -> str:
        body = await self._call("POST", f"/{user}/threads", access_token, data=form)
        return str(body["id"])

    async def _ready(self, access_token: str, container_id: str) -> None:
        await self._wait_for(
            access_token,
            container_id,
            field="status",
            done="FINISHED",
            detail_field="error_message",
        )

    async def _permalink(self, access_token: str, media_id: str) -> str | None:
        try:
            body = await self._call(
                "GET", f"/{media_id}", access_token, params={"fields": "permalink"}
            )
        except PlatformError as exc:
            log.warning("threads: permalink of %s unavailable: %s", media_id, exc)
            return None
        return body.get("permalink")

    async def _reply(self, access_token: str, user: str, media_id: str, text: str) -> None:
        """The first comment, as a reply; the post exists already, so failures are logged."""
        try:
            container = await self._container(
                access_token, user, {"media_type": "TEXT", "text": text, "reply_to_id": media_id}
            )
            await self._ready(access_token, container)
            await self._call(
                "POST", f"/{user}/threads_publish", access_token, data={"creation_id": container}
            )
        except PlatformError as exc:
            log.warning("threads: first comment on %s failed: %s", media_id, exc)

    async def find_recent(
        self, access_token: str, account: AccountProfile, *, text: str, since: datetime
    ) -> Published | None:
        body = await self._call(
            "GET",
            f"/{account.platform_account_id}/threads",
            access_token,
            params={
                "fields": "id,text,timestamp,permalink",
                "since": str(int((since - READBACK_SKEW).timestamp())),
                "limit": "50",
            },
        )
        matches = []
        for item in body.get("data") or []:
            created = graph_time(item.get("timestamp"))
            if posted_since(created, since) and text_matches(item.get("text") or "", text):
                matches.append((created, str(item["id"]), item.get("permalink")))
        if not matches:
            return None
        created, media_id, url = min(matches, key=lambda m: m[0])
        return Published(media_id, url, created)

    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None:
        try:
            await self._call("DELETE", f"/{platform_post_id}", access_token)
        except PlatformError as exc:
            if not self._is_missing(exc):
                raise

    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]:
        item = await self._call(
            "GET", f"/{platform_post_id}", access_token, params={"fields": "media_type"}
        )
        body = await self._call(
            "GET",
            f"/{platform_post_id}/insights",
            access_token,
            params={"metric": "views,likes,replies,reposts,quotes,shares"},
        )
        values = insight_values(body)
        views = values.get("views", 0)
        return {
            "likes": values.get("likes", 0),
            "comments": values.get("replies", 0),
            "shares": values.get("reposts", 0) + values.get("quotes", 0) + values.get("shares", 0),
            "saves": 0,
            "impressions": views,
            "reach": 0,  # not reported per post
            "clicks": 0,
            "video_views": views if item.get("media_type") == "VIDEO" else 0,
        }

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        followers = await self._followers(access_token, account.platform_account_id)
        # Threads reports neither followings nor a post count.
        return {"followers": followers, "following": 0, "posts": 0}


def _media_form(item: MediaFile, *, carousel_item: bool = False) -> dict[str, str]:
    form = (
        {"media_type": "VIDEO", "video_url": item.url}
        if item.is_video
        else {"media_type": "IMAGE", "image_url": item.url}
    )
    if carousel_item:
        form["is_carousel_item"] = "true"
    return form


CLIENT = ThreadsClient
