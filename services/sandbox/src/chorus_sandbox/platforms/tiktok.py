"""TikTok (Login Kit v2, Display API, Content Posting API), as the connector uses it.

OAuth: `GET /v2/auth/authorize/` (www.tiktok.com; `client_key`, comma-separated scopes) and
`POST /v2/oauth/token/` (codes and refresh tokens). `GET /v2/user/info/`,
`POST /v2/post/publish/creator_info/query/`, `POST /v2/post/publish/video/init/` and
`POST /v2/post/publish/content/init/` (photos) with `PULL_FROM_URL`,
`POST /v2/post/publish/status/fetch/`, `POST /v2/video/list/` (read-back: public posts only) and
`POST /v2/video/query/` (metrics). TikTok offers no API to delete posts.

Publishing is asynchronous: a post is `PROCESSING_DOWNLOAD` until its second status fetch (or
for `READY_AFTER_SECONDS`), then `PUBLISH_COMPLETE`; its public id is reported in
`publicaly_available_post_id` (TikTok's spelling) only for public posts. Every answer carries
`{"data": …, "error": {"code", "message", "log_id"}}` (`code` is `ok` on success). Limits are
per user token and minute (init 6, status 30, display 600) and answer 429
`rate_limit_exceeded` without rate-limit headers, as TikTok does.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chorus_sandbox.kit import ErrorStyle, PlatformKit, token_response
from chorus_sandbox.store import StoredPost, Token

READY_AFTER_SECONDS = 0.2
MAX_TITLE = 2200
MAX_PHOTO_TITLE = 90
MAX_DESCRIPTION = 4000
MAX_PHOTOS = 35
PRIVACY_LEVELS = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"]
LIMITS = {"init": 6, "status": 30, "display": 600}
_MESSAGES = {
    "rate_limit": (
        "rate_limit_exceeded",
        "The API rate limit was exceeded. Please try again later.",
    ),
    "server_error": ("internal_error", "Something went wrong. Please try again later."),
    "token_expired": (
        "access_token_invalid",
        "The access token is invalid or not found in the request.",
    ),
    "invalid_token": (
        "access_token_invalid",
        "The access token is invalid or not found in the request.",
    ),
}


def envelope(data: Any, code: str = "ok", message: str = "") -> dict[str, Any]:
    return {"data": data, "error": {"code": code, "message": message, "log_id": log_id()}}


def log_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(10).upper()


def render(kind: str, message: str) -> tuple[int, Any, dict[str, str]]:
    if kind in _MESSAGES:
        code, text = _MESSAGES[kind]
        status = {"rate_limit": 429, "server_error": 500}.get(kind, 401)
        return status, envelope({}, code, text), {}
    if kind == "forbidden":
        return 403, envelope({}, "scope_permission_missed", message), {}
    return 400, envelope({}, "invalid_params", message), {}


class Minutes:
    """Sliding one-minute windows per token and endpoint group."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], list[float]] = {}

    def allow(self, token: str, group: str) -> bool:
        now = time.time()
        with self._lock:
            calls = [t for t in self._calls.get((token, group), []) if t > now - 60]
            allowed = len(calls) < LIMITS[group]
            if allowed:
                calls.append(now)
            self._calls[(token, group)] = calls
        return allowed


class TikTokSandbox:
    def __init__(self, kit: PlatformKit) -> None:
        self.kit = kit
        self.minutes = Minutes()
        self.publishes: dict[str, str] = {}  # publish_id → post id

    def router(self) -> APIRouter:
        api = APIRouter(prefix="/tiktok", tags=["sandbox: tiktok"])
        api.add_api_route("/v2/auth/authorize/", self.authorize, methods=["GET"])
        api.add_api_route("/v2/oauth/token/", self.token, methods=["POST"])
        api.add_api_route("/v2/user/info/", self.user_info, methods=["GET"])
        api.add_api_route(
            "/v2/post/publish/creator_info/query/", self.creator_info, methods=["POST"]
        )
        api.add_api_route("/v2/post/publish/video/init/", self.video_init, methods=["POST"])
        api.add_api_route("/v2/post/publish/content/init/", self.content_init, methods=["POST"])
        api.add_api_route("/v2/post/publish/status/fetch/", self.status, methods=["POST"])
        api.add_api_route("/v2/video/list/", self.video_list, methods=["POST"])
        api.add_api_route("/v2/video/query/", self.video_query, methods=["POST"])
        return api

    # -- helpers -------------------------------------------------------------------------------

    def fail(self, status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse(envelope({}, code, message), status_code=status)

    async def guard(
        self, request: Request, operation: str, group: str
    ) -> tuple[Token | None, Response | None]:
        token, error = await self.kit.guard(request, operation)
        if token is None:
            return None, error
        if not self.minutes.allow(token.access_token, group):
            status, body, headers = render("rate_limit", "")
            return None, JSONResponse(body, status_code=status, headers=headers)
        return token, None

    @staticmethod
    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def advance(self, post: StoredPost, *, polled: bool = False) -> None:
        """Processing ends at the second status fetch, or after READY_AFTER_SECONDS."""
        if post.status != "pending":
            return
        if polled:
            post.extra["polls"] = post.extra.get("polls", 0) + 1
        age = time.time() - post.created_at.timestamp()
        if post.extra.get("polls", 0) >= 2 or age >= READY_AFTER_SECONDS:
            post.status = "published"

    def public_posts(self, account_id: str) -> list[StoredPost]:
        posts = []
        for post in self.kit.store.posts_of("tiktok", account_id):
            self.advance(post)
            if post.status == "published" and post.extra.get("public"):
                posts.append(post)
        return sorted(posts, key=lambda p: p.created_at, reverse=True)

    # -- OAuth ---------------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if not q.get("client_key") or q.get("response_type") != "code":
            return self.fail(400, "invalid_request", "client_key and response_type=code required")
        # The kit's authorize speaks OAuth's `client_id`; TikTok calls it `client_key`.
        scope = dict(request.scope)
        scope["query_string"] = (
            request.url.query + "&" + urlencode({"client_id": q["client_key"]})
        ).encode()
        return self.kit.authorize(Request(scope))

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        if not form.get("client_key") or form.get("client_secret") != self.kit.settings.app_secret:
            return JSONResponse(
                {
                    "error": "invalid_client",
                    "error_description": "Client key or secret is incorrect.",
                    "log_id": log_id(),
                },
                status_code=401,
            )
        issued, error = self.kit.exchange(form)
        if issued is None:
            description = (
                "Authorization code is expired."
                if form.get("grant_type") == "authorization_code"
                else "Refresh token is invalid or expired."
            )
            return JSONResponse(
                {"error": error, "error_description": description, "log_id": log_id()},
                status_code=400,
            )
        body = token_response(
            issued, open_id=issued.account_id, refresh_expires_in=31536000, token_type="Bearer"
        )
        body["scope"] = ",".join(issued.scopes)
        return JSONResponse(body)

    # -- display -------------------------------------------------------------------------------

    async def user_info(self, request: Request) -> Response:
        token, error = await self.guard(request, "read", "display")
        if token is None:
            return error  # type: ignore[return-value]
        account = self.kit.store.account("tiktok", token.account_id)
        posts = self.public_posts(account.id)
        values = {
            "open_id": account.id,
            "union_id": f"u{account.id}",
            "avatar_url": f"https://p16.tiktok.sandbox/{account.id}.jpeg",
            "display_name": account.display_name,
            "username": account.username,
            "follower_count": account.followers,
            "following_count": 20 + account.followers % 300,
            "likes_count": sum(p.metrics()["likes"] for p in posts),
            "video_count": len(posts),
        }
        fields = [f for f in (request.query_params.get("fields") or "").split(",") if f]
        unknown = [f for f in fields if f not in values]
        if not fields or unknown:
            return self.kit.error("validation", f"Invalid fields: {','.join(unknown) or '(none)'}")
        return JSONResponse(envelope({"user": {f: values[f] for f in fields}}))

    async def video_list(self, request: Request) -> Response:
        token, error = await self.guard(request, "read", "display")
        if token is None:
            return error  # type: ignore[return-value]
        body = await self.json_body(request)
        max_count = body.get("max_count", 10)
        if not isinstance(max_count, int) or not 1 <= max_count <= 20:
            return self.kit.error("validation", "max_count must be between 1 and 20")
        cursor = body.get("cursor")
        posts = self.public_posts(token.account_id)
        if isinstance(cursor, int):
            posts = [p for p in posts if int(p.created_at.timestamp() * 1000) < cursor]
        page = posts[:max_count]
        fields = [f for f in (request.query_params.get("fields") or "id").split(",") if f]
        videos = [{k: v for k, v in self.video_json(p).items() if k in fields} for p in page]
        next_cursor = int(page[-1].created_at.timestamp() * 1000) if page else 0
        return JSONResponse(
            envelope({"videos": videos, "cursor": next_cursor, "has_more": len(posts) > len(page)})
        )

    def video_json(self, post: StoredPost) -> dict[str, Any]:
        m = post.metrics()
        account = self.kit.store.account("tiktok", post.account_id)
        return {
            "id": post.id,
            "create_time": int(post.created_at.timestamp()),
            "title": post.extra.get("title", ""),
            "video_description": post.text,
            "share_url": post.url,
            "embed_link": f"https://www.tiktok.com/player/v1/{post.id}",
            "duration": 15,
            "like_count": m["likes"],
            "comment_count": m["comments"],
            "share_count": m["shares"],
            "view_count": m["video_views"] or m["impressions"],
            "username": account.username,
        }

    async def video_query(self, request: Request) -> Response:
        token, error = await self.guard(request, "read", "display")
        if token is None:
            return error  # type: ignore[return-value]
        body = await self.json_body(request)
        ids = ((body.get("filters") or {}).get("video_ids")) or []
        if not isinstance(ids, list) or not 1 <= len(ids) <= 20:
            return self.kit.error("validation", "filters.video_ids must list 1 to 20 ids")
        fields = [f for f in (request.query_params.get("fields") or "id").split(",") if f]
        public = {p.id: p for p in self.public_posts(token.account_id)}
        videos = [
            {k: v for k, v in self.video_json(public[i]).items() if k in fields}
            for i in map(str, ids)
            if i in public
        ]
        return JSONResponse(envelope({"videos": videos, "cursor": 0, "has_more": False}))

    # -- posting -------------------------------------------------------------------------------

    async def creator_info(self, request: Request) -> Response:
        token, error = await self.guard(request, "read", "status")
        if token is None:
            return error  # type: ignore[return-value]
        account = self.kit.store.account("tiktok", token.account_id)
        return JSONResponse(
            envelope(
                {
                    "creator_avatar_url": f"https://p16.tiktok.sandbox/{account.id}.jpeg",
                    "creator_username": account.username,
                    "creator_nickname": account.display_name,
                    "privacy_level_options": PRIVACY_LEVELS,
                    "comment_disabled": False,
                    "duet_disabled": False,
                    "stitch_disabled": False,
                    "max_video_post_duration_sec": 600,
                }
            )
        )

    def check_post_info(self, info: dict[str, Any], *, photo: bool) -> Response | None:
        privacy = info.get("privacy_level")
        if privacy not in PRIVACY_LEVELS:
            return self.fail(
                400,
                "privacy_level_option_mismatch",
                f"privacy_level must be one of the creator's options: {', '.join(PRIVACY_LEVELS)}",
            )
        title = str(info.get("title") or "")
        limit = MAX_PHOTO_TITLE if photo else MAX_TITLE
        if len(title.encode("utf-16-le")) // 2 > limit:
            return self.kit.error(
                "validation", f"post_info.title is longer than {limit} characters"
            )
        if len(str(info.get("description") or "")) > MAX_DESCRIPTION:
            return self.kit.error(
                "validation", f"post_info.description is longer than {MAX_DESCRIPTION} characters"
            )
        return None

    def create(
        self, token: Token, body: dict[str, Any], *, text: str, title: str, photo: bool, url: str
    ) -> tuple[str, StoredPost]:
        account = self.kit.store.account("tiktok", token.account_id)
        post_id = f"7{int(time.time())}{self.kit.store.next_id()}"[:19]
        prefix = "p_pub_url" if photo else "v_pub_url"
        publish_id = f"{prefix}~v2-1.{post_id}"
        info = body.get("post_info") or {}
        post = self.kit.store.add_post(
            StoredPost(
                platform="tiktok",
                id=post_id,
                account_id=token.account_id,
                text=text,
                body=body,
                created_at=datetime.now(UTC),
                url=f"https://www.tiktok.com/@{account.username}/{'photo' if photo else 'video'}/"
                f"{post_id}",
                status="pending",
                extra={
                    "publish_id": publish_id,
                    "video": not photo,
                    "title": title,
                    "public": info.get("privacy_level") == "PUBLIC_TO_EVERYONE",
                    "source_url": url,
                },
            )
        )
        self.publishes[publish_id] = post_id
        return publish_id, post

    async def video_init(self, request: Request) -> Response:
        token, error = await self.guard(request, "publish", "init")
        if token is None:
            return error  # type: ignore[return-value]
        body = await self.json_body(request)
        info = body.get("post_info") or {}
        source = body.get("source_info") or {}
        if source.get("source") != "PULL_FROM_URL" or not str(
            source.get("video_url", "")
        ).startswith(("http://", "https://")):
            return self.kit.error(
                "validation", "source_info: source PULL_FROM_URL with a video_url is required"
            )
        problem = self.check_post_info(info, photo=False)
        if problem is not None:
            return problem
        title = str(info.get("title") or "")
        publish_id, _ = self.create(
            token, body, text=title, title=title, photo=False, url=source["video_url"]
        )
        await self.kit.after_create(request)
        return JSONResponse(envelope({"publish_id": publish_id}))

    async def content_init(self, request: Request) -> Response:
        token, error = await self.guard(request, "publish", "init")
        if token is None:
            return error  # type: ignore[return-value]
        body = await self.json_body(request)
        info = body.get("post_info") or {}
        source = body.get("source_info") or {}
        images = source.get("photo_images") or []
        if body.get("media_type") != "PHOTO" or body.get("post_mode") != "DIRECT_POST":
            return self.kit.error("validation", "media_type PHOTO and post_mode DIRECT_POST")
        if source.get("source") != "PULL_FROM_URL" or not 1 <= len(images) <= MAX_PHOTOS:
            return self.kit.error(
                "validation", f"source_info: PULL_FROM_URL with 1 to {MAX_PHOTOS} photo_images"
            )
        problem = self.check_post_info(info, photo=True)
        if problem is not None:
            return problem
        publish_id, _ = self.create(
            token,
            body,
            text=str(info.get("description") or ""),
            title=str(info.get("title") or ""),
            photo=True,
            url=str(images[0]),
        )
        await self.kit.after_create(request)
        return JSONResponse(envelope({"publish_id": publish_id}))

    async def status(self, request: Request) -> Response:
        token, error = await self.guard(request, "read", "status")
        if token is None:
            return error  # type: ignore[return-value]
        body = await self.json_body(request)
        post = self.kit.store.get_post(
            "tiktok", self.publishes.get(str(body.get("publish_id")), "")
        )
        if post is None or post.account_id != token.account_id:
            return self.kit.error("validation", "publish_id does not exist")
        self.advance(post, polled=True)
        data: dict[str, Any] = {"fail_reason": "", "publicaly_available_post_id": []}
        if post.status == "pending":
            data |= {"status": "PROCESSING_DOWNLOAD", "downloaded_bytes": 0}
        else:
            data |= {"status": "PUBLISH_COMPLETE", "uploaded_bytes": 2048}
            if post.extra["public"]:
                data["publicaly_available_post_id"] = [int(post.id)]
        return JSONResponse(envelope(data))


def router(kit: PlatformKit) -> APIRouter:
    kit.style = ErrorStyle(render)
    return TikTokSandbox(kit).router()
