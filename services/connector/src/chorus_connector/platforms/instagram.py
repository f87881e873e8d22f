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
from typing import Any
from urllib.parse import urlencode

from chorus_connector.platforms.base import AccountProfile, MediaFile, PlatformError, normalised
from chorus_connector.platforms.facebook import insight_values
from chorus_connector.platforms.meta_containers import ContainerClient
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind

log = logging.getLogger(__name__)

VIDEO_TYPES = ("VIDEO", "REELS")


class InstagramClient(ContainerClient):
    platform = Platform.INSTAGRAM
    default_scopes = (
        "instagram_business_basic",
        "instagram_business_content_publish",
        "instagram_business_manage_insights",
        "instagram_business_manage_comments",
    )
    max_carousel = 10
    carousel_name = "an Instagram carousel"
    exchange_grant = "ig_exchange_token"
    refresh_grant = "ig_refresh_token"
    container_edge = "media"
    publish_edge = "media_publish"
    text_field = "caption"
    status_field = "status_code"
    status_detail_field = "status"

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

    def _oauth_base(self) -> str:
        return self.endpoints.extra.get("oauth", self.endpoints.api).rstrip("/")

    def _short_lived(self, body: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        granted = (body.get("data") or [body])[0]
        scopes = tuple(str(granted.get("permissions") or "").replace(",", " ").split())
        return str(granted["access_token"]), scopes

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

    def _check_media(self, media: list[MediaFile]) -> None:
        if not media:
            raise PlatformError(
                FailureKind.PERMANENT, "media_required", "an Instagram post needs an image or video"
            )
        super()._check_media(media)

    def _media_form(self, item: MediaFile, *, carousel_item: bool = False) -> dict[str, str]:
        form: dict[str, str] = {}
        if item.is_video:
            form["media_type"] = "VIDEO" if carousel_item else "REELS"
            form["video_url"] = item.url
        else:
            form["image_url"] = item.url
        if carousel_item:
            form["is_carousel_item"] = "true"
        return form

    async def _first_comment(self, access_token: str, user: str, media_id: str, text: str) -> None:
        try:
            await self._call("POST", f"/{media_id}/comments", access_token, data={"message": text})
        except PlatformError as exc:
            log.warning("instagram: first comment on %s failed: %s", media_id, exc)

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
        return normalised(  # clicks are not reported per media
            likes=values.get("likes", item.get("like_count")),
            comments=values.get("comments", item.get("comments_count")),
            shares=values.get("shares"),
            saves=values.get("saved"),
            impressions=views,  # "views" replaced "impressions" in Graph v22
            reach=values.get("reach"),
            video_views=views if video else 0,
        )

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
