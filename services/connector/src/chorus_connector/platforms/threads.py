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
from urllib.parse import urlencode

from chorus_connector.platforms.base import AccountProfile, MediaFile, PlatformError, normalised
from chorus_connector.platforms.facebook import insight_values
from chorus_connector.platforms.meta_containers import ContainerClient
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind

log = logging.getLogger(__name__)


class ThreadsClient(ContainerClient):
    platform = Platform.THREADS
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
    carousel_name = "a Threads carousel"
    exchange_grant = "th_exchange_token"
    refresh_grant = "th_refresh_token"
    container_edge = "threads"
    publish_edge = "threads_publish"
    text_field = "text"
    status_field = "status"
    status_detail_field = "error_message"

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

    def _media_form(self, item: MediaFile, *, carousel_item: bool = False) -> dict[str, str]:
        form = (
            {"media_type": "VIDEO", "video_url": item.url}
            if item.is_video
            else {"media_type": "IMAGE", "image_url": item.url}
        )
        if carousel_item:
            form["is_carousel_item"] = "true"
        return form

    async def _first_comment(self, access_token: str, user: str, media_id: str, text: str) -> None:
        """The first comment, as a reply; the post exists already, so failures are logged."""
        try:
            container = await self._container(
                access_token, user, {"media_type": "TEXT", "text": text, "reply_to_id": media_id}
            )
            await self._ready(access_token, container)
            await self._publish_container(access_token, user, container)
        except PlatformError as exc:
            log.warning("threads: first comment on %s failed: %s", media_id, exc)

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
        return normalised(  # no saves, reach or clicks per post
            likes=values.get("likes"),
            comments=values.get("replies"),
            shares=values.get("reposts", 0) + values.get("quotes", 0) + values.get("shares", 0),
            impressions=views,
            video_views=views if item.get("media_type") == "VIDEO" else 0,
        )

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        followers = await self._followers(access_token, account.platform_account_id)
        # Threads reports neither followings nor a post count.
        return {"followers": followers, "following": 0, "posts": 0}


CLIENT = ThreadsClient
