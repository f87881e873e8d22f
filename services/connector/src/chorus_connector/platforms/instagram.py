"""Instagram client: Instagram API with Instagram Login (graph.instagram.com).

Content publishing is Graph's container flow: `POST /{ig-user-id}/media` makes a container per
image or video (carousel items first, then a `CAROUSEL` container), `GET /{container-id}
?fields=status_code` is polled until `FINISHED`, and `POST /{ig-user-id}/media_publish` publishes
it — the one creating call, whose unknown outcome is read back from `GET /{ig-user-id}/media`.
Instagram fetches the media from its URL itself. Posts need an image or a video.

OAuth: the code is exchanged at api.instagram.com for a short-lived token, which is exchanged at
once for a long-lived one (`ig_exchange_token`, 60 days). Instagram has no refresh tokens: the
long-lived token refreshes itself (`ig_refresh_token`), so it is also stored as the refresh token.
Instagram Login offers no PKCE and no deletion of media (Meta allows deleting only for accounts
connected through Facebook Login): `delete` fails permanently without calling Instagram.

Real endpoints: `Endpoints(api="https://graph.instagram.com", auth="https://www.instagram.com",
extra={"oauth": "https://api.instagram.com"})`.
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

VIDEO_TYPES = ("VIDEO", "REELS")


class InstagramClient(GraphClient):
    platform = Platform.INSTAGRAM
    supports_pkce = False
    default_scopes = (
        "instagram_business_basic",
        "instagram_business_content_publish",
        "instagram_business_manage_insights",
        "instagram_business_manage_comments",
    )
    max_carousel = 10

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
        return f"{self.endpoints.auth_base}/oauth/authorize?{urlencode(params)}"

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> OAuthTokens:
        oauth = self.endpoints.extra.get("oauth", self.endpoints.api).rstrip("/")
        body = await self._oauth(
            "POST",
            f"{oauth}/oauth/access_token",
            data={
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
                "grant_type": "authorization_code",
                "redirect_uri": redirect_uri,
                "code": code,
            },
        )
        granted = (body.get("data") or [body])[0]
        short = str(granted["access_token"])
        scopes = tuple(str(granted.get("permissions") or "").replace(",", " ").split())
        long_lived = await self._oauth(
            "GET",
            f"{self.endpoints.api.rstrip('/')}/access_token",
            params={
                "grant_type": "ig_exchange_token",
                "client_secret": self.app.client_secret,
                "access_token": short,
            },
        )
        return self._tokens(long_lived, scopes or self.default_scopes)

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        body = await self._oauth(
            "GET",
            f"{self.endpoints.api.rstrip('/')}/refresh_access_token",
            params={"grant_type": "ig_refresh_token", "access_token": refresh_token},
        )
        return self._tokens(body, self.default_scopes)

    def _tokens(self, body: dict[str, Any], scopes: tuple[str, ...]) -> OAuthTokens:
        token = str(body["access_token"])
        return OAuthTokens(token, token, expires_at(body.get("expires_in")), scopes)

    async def _oauth(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return await self._call(method, "", None, url=url, **kwargs)
        except PlatformError as exc:
            if exc.retry_after is None and (exc.status or 0) < 500:
                exc.kind = FailureKind.AUTH  # a bad code, token or secret: authorize again
            raise

    async def profile(self, access_token: str) -> AccountProfile:
        me = await self._call(
            "GET",
            "/me",
            access_token,
            params={"fields": "user_id,username,name,followers_count"},
        )
        return AccountProfile(
            platform_account_id=str(me.get("user_id") or me["id"]),
            username=str(me["username"]),
            display_name=me.get("name"),
            followers=me.get("followers_count"),
        )

    # -- content -------------------------------------------------------------------------------

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        user = account.platform_account_id
        if not media:
            raise PlatformError(
                FailureKind.PERMANENT, "media_required", "an Instagram post needs an image or video"
            )
        if len(media) > self.max_carousel:
            raise PlatformError(
                FailureKind.PERMANENT,
                "too_many_media",
                f"an Instagram carousel holds at most {self.max_carousel} items",
            )
        caption = compose_text(content)
        if len(media) == 1:
            container = await self._container(access_token, user, media[0], caption=caption)
        else:
            children = [
                await self._container(access_token, user, item, carousel_item=True)
                for item in media
            ]
            for child in children:
                await self._ready(access_token, child)
            created = await self._call(
                "POST",
                f"/{user}/media",
                access_token,
                data={"media_type": "CAROUSEL", "children": ",".join(children), "caption": caption},
            )
            container = str(created["id"])
        await self._ready(access_token, container)
        body = await self._call(
            "POST",
            f"/{user}/media_publish",
            access_token,
            data={"creation_id": container},
            creates=True,
        )
        media_id = str(body["id"])
        url = await self._permalink(access_token, media_id)
        if content.first_comment:
            await self._comment(access_token, media_id, content.first_comment)
        return Published(media_id, url, datetime.now(UTC))

    async def _container(
        self,
        access_token: str,
        user: str,
        item: MediaFile,
        *,
        caption: str | None = None,
        carousel_item: bool = False,
    ) -> str:
        form: dict[str, str] = {}
        if item.is_video:
            form["media_type"] = "VIDEO" if carousel_item else "REELS"
            form["video_url"] = item.url
        else:
            form["image_url"] = item.url
        if carousel_item:
            form["is_carousel_item"] = "true"
        if caption is not None:
            form["caption"] = caption
        body = await self._call("POST", f"/{user}/media", access_token, data=form)
        return str(body["id"])

    async def _ready(self, access_token: str, container_id: str) -> None:
        await self._wait_for(
            access_token,
            container_id,
            field="status_code",
            done="FINISHED",
            detail_field="status",
        )

    async def _permalink(self, access_token: str, media_id: str) -> str | None:
        """The post exists already: a failure here costs only the URL."""
        try:
            body = await self._call(
                "GET", f"/{media_id}", access_token, params={"fields": "permalink"}
            )
        except PlatformError as exc:
            log.warning("instagram: permalink of %s unavailable: %s", media_id, exc)
            return None
        return body.get("permalink")

    async def _comment(self, access_token: str, media_id: str, text: str) -> None:
        try:
            await self._call("POST", f"/{media_id}/comments", access_token, data={"message": text})
        except PlatformError as exc:
            log.warning("instagram: first comment on %s failed: %s", media_id, exc)

    async def find_recent(
        self, access_token: str, account: AccountProfile, *, text: str, since: datetime
    ) -> Published | None:
        body = await self._call(
            "GET",
            f"/{account.platform_account_id}/media",
            access_token,
            params={
                "fields": "id,caption,timestamp,permalink",
                "since": str(int((since - READBACK_SKEW).timestamp())),
                "limit": "50",
            },
        )
        matches = []
        for item in body.get("data") or []:
            created = graph_time(item.get("timestamp"))
            if posted_since(created, since) and text_matches(item.get("caption") or "", text):
                matches.append((created, str(item["id"]), item.get("permalink")))
        if not matches:
            return None
        created, media_id, url = min(matches, key=lambda m: m[0])
        return Published(media_id, url, created)

    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None:
        raise PlatformError(
            FailureKind.PERMANENT,
            "not_supported",
            "Instagram API with Instagram Login cannot delete media; delete it in the app",
        )

    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]:
        item = await self._call(
            "GET",
            f"/{platform_post_id}",
            access_token,
            params={"fields": "media_type,media_product_type,like_count,comments_count"},
        )
        insights = await self._call(
            "GET",
            f"/{platform_post_id}/insights",
            access_token,
            params={"metric": "reach,likes,comments,shares,saved,views"},
        )
        values = insight_values(insights)
        video = item.get("media_type") in VIDEO_TYPES or item.get("media_product_type") == "REELS"
        views = values.get("views", 0)
        return {
            "likes": values.get("likes", int(item.get("like_count") or 0)),
            "comments": values.get("comments", int(item.get("comments_count") or 0)),
            "shares": values.get("shares", 0),
            "saves": values.get("saved", 0),
            "impressions": views,  # "views" replaced "impressions" in Graph v22
            "reach": values.get("reach", 0),
            "clicks": 0,  # not reported per media
            "video_views": views if video else 0,
        }

    async def account_metrics(self, access_token: str, account: AccountProfile) -> dict[str, int]:
        me = await self._call(
            "GET",
            "/me",
            access_token,
            params={"fields": "followers_count,follows_count,media_count"},
        )
        return {
            "followers": int(me.get("followers_count") or 0),
            "following": int(me.get("follows_count") or 0),
            "posts": int(me.get("media_count") or 0),
        }


CLIENT = InstagramClient
