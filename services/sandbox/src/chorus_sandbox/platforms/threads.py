"""Threads API (graph.threads.net), as the connector uses it.

OAuth: `GET /oauth/authorize` (threads.net), `POST /oauth/access_token` (code → short-lived token
and `user_id`), `GET /access_token?grant_type=th_exchange_token` and
`GET /refresh_access_token?grant_type=th_refresh_token` (long-lived tokens, 60 days).
Graph (`/{version}/…`, v1.0): `me`, `POST /{user-id}/threads` (containers: TEXT, IMAGE, VIDEO,
carousel items and CAROUSEL; `reply_to_id` for replies), `GET /{container-id}?fields=status,
error_message`, `POST /{user-id}/threads_publish`, `GET /{user-id}/threads` (read-back),
`GET|DELETE /{media-id}` (delete answers `{"success": true, "deleted_id"}`),
`/{media-id}/insights` (views, likes, replies, reposts, quotes, shares) and
`/{user-id}/threads_insights` (followers_count as a `total_value`).

Video containers are `IN_PROGRESS` on their first status read, then `FINISHED`. Errors and usage
headers are the Graph ones (throttling: code 4 with `X-Business-Use-Case-Usage`).
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

MAX_TEXT = 500
MAX_CAROUSEL = 20
MEDIA_TYPES = ("TEXT", "IMAGE", "VIDEO", "CAROUSEL")


class ThreadsSandbox(ContainerSandbox):
    platform = "threads"
    exchange_grant = "th_exchange_token"
    refresh_grant = "th_refresh_token"

    def router(self) -> APIRouter:
        api = APIRouter(prefix="/threads", tags=["sandbox: threads"])
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
            return self.kit.error("validation", "response_type must be code")
        return self.kit.authorize(request)

    async def code_exchange(self, request: Request) -> Response:
        form = {**dict(request.query_params), **dict(await request.form())}
        wrong = self.graph.check_secret(str(form.get("client_secret") or ""))
        if wrong is not None:
            return wrong
        if form.get("grant_type") != "authorization_code":
            return JSONResponse(graph_error("Invalid grant_type", code=100), status_code=400)
        issued, _ = self.kit.exchange(form)
        if issued is None:
            body = graph_error(
                "Matching code was not found or was already used", code=100, subcode=36009
            )
            return JSONResponse(body, status_code=400)
        return JSONResponse({"access_token": issued.access_token, "user_id": issued.account_id})

    # -- reading -------------------------------------------------------------------------------

    def media_json(self, post: StoredPost, fields: set[str]) -> dict[str, Any]:
        account = self.kit.store.account("threads", post.account_id)
        values = {
            "text": post.text or None,
            "timestamp": graph_time(post.created_at),
            "permalink": post.url,
            "media_type": post.extra.get("media_type", "TEXT_POST"),
            "media_product_type": "THREADS",
            "username": account.username,
            "shortcode": post.url.rstrip("/").rsplit("/", 1)[-1],
            "is_reply": post.kind == "comment",
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
        account = self.kit.store.account("threads", token.account_id)
        values = {
            "username": account.username,
            "name": account.display_name,
            "threads_profile_picture_url": f"https://threads.sandbox/{account.id}.jpg",
            "threads_biography": "Sandbox account",
        }
        fields = field_names(request.query_params.get("fields")) or {"username"}
        data: dict[str, Any] = {"id": account.id}
        data.update({k: v for k, v in values.items() if k in fields})
        return answer(data, headers)

    async def read_node(self, request: Request, version: str, node: str) -> Response:
        token, error, headers = await self.graph.guard(request, version, "read")
        if token is None:
            return error  # type: ignore[return-value]
        fields = field_names(request.query_params.get("fields"))
        container = self.graph.own(token, node, "container")
        if container is not None:
            return answer({"id": node, "status": self.container_status(container)}, headers)
        post = self.graph.own(token, node) or self.graph.own(token, node, "comment")
        if post is None:
            return self.graph.not_found(node)
        return answer(self.media_json(post, fields), headers)

    async def read_edge(self, request: Request, version: str, node: str, edge: str) -> Response:
        token, error, headers = await self.graph.guard(request, version, "read")
        if token is None:
            return error  # type: ignore[return-value]
        q = request.query_params
        if edge == "threads" and node in (token.account_id, "me"):
            return self.timeline(q, token.account_id, headers)
        if edge == "threads_insights" and node in (token.account_id, "me"):
            account = self.kit.store.account("threads", token.account_id)
            metrics = as_list(q.get("metric")) or ["followers_count"]
            if metrics != ["followers_count"]:
                return self.kit.error("validation", "metric: only followers_count is simulated")
            return answer(
                {
                    "data": [
                        {
                            "name": "followers_count",
                            "period": "day",
                            "title": "followers_count",
                            "description": "Total number of followers",
                            "total_value": {"value": account.followers},
                            "id": f"{account.id}/insights/followers_count/day",
                        }
                    ]
                },
                headers,
            )
        if edge == "insights":
            post = self.graph.own(token, node)
            if post is None:
                return self.graph.not_found(node)
            m = post.metrics()
            known = {
                "views": m["video_views"] if post.extra.get("video") else m["impressions"],
                "likes": m["likes"],
                "replies": m["comments"],
                "reposts": m["shares"] // 2,
                "quotes": m["shares"] // 4,
                "shares": m["shares"] - m["shares"] // 2 - m["shares"] // 4,
            }
            metrics = as_list(q.get("metric"))
            unknown = [name for name in metrics if name not in known]
            if unknown or not metrics:
                return self.kit.error("validation", f"metric must be one of: {', '.join(known)}")
            return answer({"data": [insight(name, known[name]) for name in metrics]}, headers)
        return self.graph.not_found(f"{node}/{edge}")

    async def delete_node(self, request: Request, version: str, node: str) -> Response:
        token, error, headers = await self.graph.guard(request, version, "delete")
        if token is None:
            return error  # type: ignore[return-value]
        post = self.graph.own(token, node) or self.graph.own(token, node, "comment")
        if post is None:
            return self.graph.not_found(node, "delete")
        post.status = "deleted"
        return answer({"success": True, "deleted_id": node}, headers)

    # -- publishing ---------------------------------------------------------------------------

    async def create_edge(self, request: Request, version: str, node: str, edge: str) -> Response:
        params = await graph_params(request)
        operation = "container"
        if edge == "threads_publish":
            target = self.kit.store.get_post("threads", str(params.get("creation_id") or ""))
            operation = "comment" if target and target.extra.get("reply_to") else "publish"
        token, error, headers = await self.graph.guard(request, version, operation)
        if token is None:
            return error  # type: ignore[return-value]
        if node not in (token.account_id, "me") or edge not in ("threads", "threads_publish"):
            return self.graph.not_found(f"{node}/{edge}", "post")
        if edge == "threads":
            return self.container(token, params, headers)
        return await self.publish(request, token, params, headers)

    def container(self, token: Token, params: dict[str, Any], headers: dict[str, str]) -> Response:
        media_type = str(params.get("media_type") or "").upper()
        text = str(params.get("text") or "")
        item = truthy(params.get("is_carousel_item"), default=False)
        reply_to = params.get("reply_to_id")
        if media_type not in MEDIA_TYPES:
            return self.kit.error(
                "validation", "Param media_type must be one of " + "|".join(MEDIA_TYPES)
            )
        if len(text) > MAX_TEXT:
            return self.kit.error(
                "validation", f"Param text must be at most {MAX_TEXT} characters long."
            )
        if reply_to and self.graph.own(token, str(reply_to)) is None:
            return self.kit.error("validation", "Param reply_to_id is not a valid Threads post.")
        children: list[str] = []
        url = None
        if media_type == "TEXT" and not text.strip():
            return self.kit.error("validation", "Param text is required for TEXT posts.")
        if media_type == "IMAGE":
            url = params.get("image_url")
        elif media_type == "VIDEO":
            url = params.get("video_url")
        elif media_type == "CAROUSEL":
            children = [str(c) for c in as_list(params.get("children"))]
            found = [self.graph.own(token, c, "container") for c in children]
            if not 2 <= len(children) <= MAX_CAROUSEL or any(
                c is None or not c.extra.get("carousel_item") for c in found
            ):
                return self.kit.error(
                    "validation", f"Param children must list 2 to {MAX_CAROUSEL} carousel items."
                )
        if media_type in ("IMAGE", "VIDEO") and not url:
            field = "image_url" if media_type == "IMAGE" else "video_url"
            return self.kit.error("validation", f"Param {field} is required for {media_type}.")
        container_id = self.kit.store.next_id() + "27"
        video = media_type == "VIDEO"
        self.kit.store.add_post(
            StoredPost(
                platform="threads",
                id=container_id,
                account_id=token.account_id,
                text=text,
                body=params,
                created_at=datetime.now(UTC),
                url=str(url or ""),
                kind="container",
                status="pending" if video else "finished",
                extra={
                    "media_type": "TEXT_POST" if media_type == "TEXT" else media_type,
                    "video": video,
                    "carousel_item": item,
                    "children": children,
                    "reply_to": reply_to,
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
            return self.kit.error("validation", "Param creation_id is not a valid container.")
        if container.status == "published":
            return self.kit.error("validation", "The media container was already published.")
        children = [self.graph.own(token, c, "container") for c in container.extra["children"]]
        if container.status != "finished" or any(c and c.status != "finished" for c in children):
            body = graph_error(
                "The media is not ready to be published. Please wait a moment.", code=24
            )
            return JSONResponse(body, status_code=400, headers=headers)
        container.status = "published"
        account = self.kit.store.account("threads", token.account_id)
        media_id = self.kit.store.next_id() + "28"
        reply = bool(container.extra.get("reply_to"))
        self.kit.store.add_post(
            StoredPost(
                platform="threads",
                id=media_id,
                account_id=token.account_id,
                text=container.text,
                body={
                    "creation_id": container_id,
                    **container.body,
                    "children": [c.body for c in children if c],
                },
                created_at=datetime.now(UTC),
                url=f"https://www.threads.net/@{account.username}/post/T{media_id[-8:]}",
                kind="comment" if reply else "post",
                extra={
                    "media_type": "CAROUSEL_ALBUM" if children else container.extra["media_type"],
                    "video": container.extra["video"]
                    or any(c and c.extra["video"] for c in children),
                    "reply_to": container.extra.get("reply_to"),
                },
            )
        )
        await self.kit.after_create(request)
        return answer({"id": media_id}, headers)


def router(kit: PlatformKit) -> APIRouter:
    kit.style = graph_style(
        rate_code=4, rate_message="(#4) Application request limit reached", buc_type="threads"
    )
    return ThreadsSandbox(kit).router()
