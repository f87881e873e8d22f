"""Instagram API with Instagram Login (Business Login for Instagram), as the connector uses it.

OAuth: `GET /oauth/authorize` (www.instagram.com), `POST /oauth/access_token` (api.instagram.com:
the code for a short-lived token), `GET /access_token?grant_type=ig_exchange_token` and
`GET /refresh_access_token?grant_type=ig_refresh_token` (graph.instagram.com: long-lived tokens).
Graph (`/{version}/…`): `me`, `POST /{ig-user-id}/media` (containers: image, REELS video,
carousel items and CAROUSEL), `GET /{container-id}?fields=status_code`,
`POST /{ig-user-id}/media_publish`, `GET /{ig-user-id}/media` (read-back), `GET /{media-id}`,
`/{media-id}/insights`, `POST /{media-id}/comments`. Deleting media is not offered with
Instagram Login: `DELETE /{media-id}` answers Graph's "Unsupported delete request".

Video containers report `IN_PROGRESS` on their first status read, then `FINISHED`; publishing a
container that is not finished fails as on Instagram (code 9007). Errors and usage headers are
the Graph ones (`X-Business-Use-Case-Usage` of type `instagram`; throttling is code 80002).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chorus_sandbox.kit import PlatformKit
from chorus_sandbox.platforms.facebook import (
    ContainerSandbox,
    answer,
    as_list,
    field_names,
    graph_error,
    graph_params,
    graph_style,
    graph_time,
    insight,
    truthy,
)
from chorus_sandbox.store import StoredPost, Token

MAX_CAPTION = 2200
MAX_HASHTAGS = 30
MAX_CAROUSEL = 10


class InstagramSandbox(ContainerSandbox):
    platform = "instagram"
    exchange_grant = "ig_exchange_token"
    refresh_grant = "ig_refresh_token"

    def router(self) -> APIRouter:
        api = APIRouter(prefix="/instagram", tags=["sandbox: instagram"])
        api.add_api_route("/oauth/authorize", self.authorize, methods=["GET"])
        api.add_api_route("/oauth/access_token", self.code_exchange, methods=["POST"])
        api.add_api_route("/access_token", self.long_lived, methods=["GET"])
        api.add_api_route("/refresh_access_token", self.refresh, methods=["GET"])
        api.add_api_route("/{version}/me", self.me, methods=["GET"])
        api.add_api_route("/{version}/{node}", self.read_node, methods=["GET"])
        api.add_api_route("/{version}/{node}", self.delete_node, methods=["DELETE"])
        api.add_api_route("/{version}/{node}/{edge}", self.read_edge, methods=["GET"])
        api.add_api_route("/{version}/{node}/{edge}", self.create_edge, methods=["POST"])
        return api

    # -- OAuth ---------------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        if request.query_params.get("response_type") != "code":
            return self.oauth_error("response_type must be code")
        return self.kit.authorize(request)

    @staticmethod
    def oauth_error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse(
            {"error_type": "OAuthException", "code": status, "error_message": message},
            status_code=status,
        )

    async def code_exchange(self, request: Request) -> Response:
        form = dict(await request.form())
        if form.get("client_secret") != self.kit.settings.app_secret:
            return self.oauth_error("Error validating client secret.")
        if form.get("grant_type") != "authorization_code":
            return self.oauth_error("Invalid grant_type")
        issued, _ = self.kit.exchange(form)
        if issued is None:
            return self.oauth_error("Matching code was not found or was already used")
        return JSONResponse(
            {
                "data": [
                    {
                        "access_token": issued.access_token,
                        "user_id": issued.account_id,
                        "permissions": ",".join(issued.scopes),
                    }
                ]
            }
        )

    # -- reading -------------------------------------------------------------------------------

    def user_json(self, user_id: str, fields: set[str]) -> dict[str, Any]:
        account = self.kit.store.account("instagram", user_id)
        media = [p for p in self.kit.store.posts_of("instagram", user_id) if p.status != "deleted"]
        values = {
            "user_id": account.id,
            "username": account.username,
            "name": account.display_name,
            "account_type": "BUSINESS",
            "followers_count": account.followers,
            "follows_count": 50 + account.followers % 400,
            "media_count": len(media),
        }
        data: dict[str, Any] = {"id": account.id}
        for name in fields or {"user_id", "username"}:
            if name in values:
                data[name] = values[name]
        return data

    def media_json(self, post: StoredPost, fields: set[str]) -> dict[str, Any]:
        m = post.metrics()
        values = {
            "caption": post.text or None,
            "timestamp": graph_time(post.created_at),
            "permalink": post.url,
            "media_type": post.extra.get("media_type", "IMAGE"),
            "media_product_type": "REELS" if post.extra.get("video") else "FEED",
            "media_url": post.extra.get("media_url"),
            "like_count": m["likes"],
            "comments_count": m["comments"],
            "username": self.kit.store.account("instagram", post.account_id).username,
        }
        data: dict[str, Any] = {"id": post.id}
        for name in fields or {"id"}:
            if values.get(name) is not None:
                data[name] = values[name]
        return data

    async def me(self, request: Request, version: str) -> Response:
        token, error, headers = await self.graph.guard(request, version, "read")
        if token is None:
            return error  # type: ignore[return-value]
        fields = field_names(request.query_params.get("fields"))
        return answer(self.user_json(token.account_id, fields), headers)

    async def read_node(self, request: Request, version: str, node: str) -> Response:
        token, error, headers = await self.graph.guard(request, version, "read")
        if token is None:
            return error  # type: ignore[return-value]
        fields = field_names(request.query_params.get("fields"))
        if node == token.account_id:
            return answer(self.user_json(node, fields), headers)
        container = self.graph.own(token, node, "container")
        if container is not None:
            code = self.container_status(container)
            data: dict[str, Any] = {"id": node, "status_code": code}
            if "status" in fields:
                data["status"] = code.title().replace("_", " ")
            return answer(data, headers)
        post = self.graph.own(token, node)
        if post is None:
            return self.graph.not_found(node)
        return answer(self.media_json(post, fields), headers)

    async def read_edge(self, request: Request, version: str, node: str, edge: str) -> Response:
        token, error, headers = await self.graph.guard(request, version, "read")
        if token is None:
            return error  # type: ignore[return-value]
        q = request.query_params
        if edge == "media" and node == token.account_id:
            return self.timeline(q, node, headers)
        if edge == "insights":
            post = self.graph.own(token, node)
            if post is None:
                return self.graph.not_found(node)
            m = post.metrics()
            views = m["video_views"] if post.extra.get("video") else m["impressions"]
            known = {
                "reach": m["reach"],
                "likes": m["likes"],
                "comments": m["comments"],
                "shares": m["shares"],
                "saved": m["saves"],
                "views": views,
                "total_interactions": m["likes"] + m["comments"] + m["shares"] + m["saves"],
            }
            metrics = as_list(q.get("metric"))
            unknown = [name for name in metrics if name not in known]
            if unknown or not metrics:
                name = unknown[0] if unknown else ""
                return self.kit.error(
                    "validation", f"metric[0] must be one of the following values: {name}"
                )
            return answer({"data": [insight(name, known[name]) for name in metrics]}, headers)
        return self.graph.not_found(f"{node}/{edge}")

    async def delete_node(self, request: Request, version: str, node: str) -> Response:
        _, error, _ = await self.graph.guard(request, version, "delete")
        return error or self.graph.not_found(node, "delete")

    # -- publishing ---------------------------------------------------------------------------

    async def create_edge(self, request: Request, version: str, node: str, edge: str) -> Response:
        params = await graph_params(request)
        operation = {"media_publish": "publish", "comments": "comment"}.get(edge, "container")
        token, error, headers = await self.graph.guard(request, version, operation)
        if token is None:
            return error  # type: ignore[return-value]
        if edge == "comments":
            return self.comment(token, node, params, headers)
        if node != token.account_id or edge not in ("media", "media_publish"):
            return self.graph.not_found(f"{node}/{edge}", "post")
        if edge == "media":
            return self.container(token, params, headers)
        return await self.publish(request, token, params, headers)

    def container(self, token: Token, params: dict[str, Any], headers: dict[str, str]) -> Response:
        caption = str(params.get("caption") or "")
        media_type = str(params.get("media_type") or "IMAGE").upper()
        item = truthy(params.get("is_carousel_item"), default=False)
        if len(caption) > MAX_CAPTION:
            return self.kit.error(
                "validation", f"The caption is too long: at most {MAX_CAPTION} characters."
            )
        if caption.count("#") > MAX_HASHTAGS:
            return self.kit.error("validation", f"At most {MAX_HASHTAGS} hashtags are allowed.")
        children: list[str] = []
        if media_type == "CAROUSEL":
            children = [str(c) for c in as_list(params.get("children"))]
            found = [self.graph.own(token, c, "container") for c in children]
            if not 2 <= len(children) <= MAX_CAROUSEL or any(
                c is None or not c.extra.get("carousel_item") for c in found
            ):
                return self.kit.error(
                    "validation",
                    f"The parameter children must list 2 to {MAX_CAROUSEL} carousel item "
                    "containers.",
                )
            url = None
        elif media_type in ("REELS", "VIDEO", "STORIES") and params.get("video_url"):
            url = params.get("video_url")
        elif media_type in ("IMAGE", "STORIES") and params.get("image_url"):
            url = params.get("image_url")
        else:
            field = "video_url" if media_type in ("REELS", "VIDEO") else "image_url"
            return self.kit.error("validation", f"The parameter {field} is required.")
        video = media_type in ("REELS", "VIDEO") or (
            media_type == "STORIES" and bool(params.get("video_url"))
        )
        container_id = self.kit.store.next_id() + "17"
        self.kit.store.add_post(
            StoredPost(
                platform="instagram",
                id=container_id,
                account_id=token.account_id,
                text=caption,
                body=params,
                created_at=datetime.now(UTC),
                url=str(url or ""),
                kind="container",
                status="pending" if video else "finished",
                extra={
                    "media_type": "VIDEO" if video else media_type,
                    "video": video,
                    "carousel_item": item,
                    "children": children,
                    "media_url": url,
                },
            )
        )
        return answer({"id": container_id}, headers)

    async def publish(
        self, request: Request, token: Token, params: dict[str, Any], headers: dict[str, str]
    ) -> Response:
        container_id = str(params.get("creation_id") or "")
        container = self.graph.own(token, container_id, "container")
        if container is None or container.extra.get("carousel_item"):
            return self.kit.error("validation", "The parameter creation_id is required.")
        children = [self.graph.own(token, c, "container") for c in container.extra["children"]]
        if container.status == "published":
            return self.kit.error("validation", "The media has already been published.")
        if container.status != "finished" or any(c and c.status != "finished" for c in children):
            body = graph_error(
                "The media is not ready for publishing, please wait for a moment",
                code=9007,
                subcode=2207027,
            )
            return JSONResponse(body, status_code=400, headers=headers)
        media_id = self.kit.store.next_id() + "18"
        account = self.kit.store.account("instagram", token.account_id)
        container.status = "published"
        video = container.extra["video"] or any(c and c.extra["video"] for c in children)
        self.kit.store.add_post(
            StoredPost(
                platform="instagram",
                id=media_id,
                account_id=token.account_id,
                text=container.text,
                body={
                    "creation_id": container_id,
                    **container.body,
                    "children": [c.body for c in children if c],
                },
                created_at=datetime.now(UTC),
                url=f"https://www.instagram.com/p/{account.username[-4:]}{media_id[-6:]}/",
                extra={
                    "media_type": "CAROUSEL_ALBUM" if children else container.extra["media_type"],
                    "video": video,
                    "media_url": container.extra["media_url"],
                },
            )
        )
        await self.kit.after_create(request)
        return answer({"id": media_id}, headers)

    def comment(
        self, token: Token, node: str, params: dict[str, Any], headers: dict[str, str]
    ) -> Response:
        post = self.graph.own(token, node)
        if post is None:
            return self.graph.not_found(node, "post")
        message = str(params.get("message") or "")
        if not message.strip():
            return self.kit.error("validation", "The parameter message is required.")
        comment_id = self.kit.store.next_id() + "19"
        self.kit.store.add_post(
            StoredPost(
                platform="instagram",
                id=comment_id,
                account_id=token.account_id,
                text=message,
                body=params,
                created_at=datetime.now(UTC),
                url=post.url,
                kind="comment",
                extra={"parent": post.id},
            )
        )
        return answer({"id": comment_id}, headers)


def router(kit: PlatformKit) -> APIRouter:
    kit.style = graph_style(
        rate_code=80002,
        rate_message="(#80002) There have been too many calls to this Instagram account. "
        "Wait a bit and try again.",
        buc_type="instagram",
    )
    return InstagramSandbox(kit).router()
