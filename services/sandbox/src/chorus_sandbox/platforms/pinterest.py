"""Simulated Pinterest (API v5) under `/pinterest`.

Paths: `GET /oauth/` (the consent page on www.pinterest.com: redirects straight back with a
code), `POST /v5/oauth/token` (HTTP Basic client authentication), `GET /v5/user_account`,
`GET /v5/boards`, `POST /v5/pins`, `GET /v5/pins`, `GET /v5/pins/{id}?pin_metrics=true`,
`DELETE /v5/pins/{id}`, and the video flow: `POST /v5/media` registers an upload and answers
an upload URL and parameters (S3 in reality; `POST /_uploads/{media_id}` here),
`GET /v5/media/{id}` reports its processing status.

Errors are `{"code", "message"}`; every answer carries `x-ratelimit-limit/remaining/reset`
(reset in seconds).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from chorus_sandbox.kit import ErrorStyle, PlatformKit
from chorus_sandbox.store import PlatformAccount, StoredPost, Token

RATE_LIMIT = 1000
RATE_WINDOW_SECONDS = 60
MAX_TITLE = 100
MAX_DESCRIPTION = 800

# kind → (status, code, message)
_ERRORS = {
    "rate_limit": (429, 8, "You have exceeded your rate limit. Try again later."),
    "server_error": (503, 0, "Service unavailable. Please try again later."),
    "token_expired": (401, 2, "Authentication failed."),
    "invalid_token": (401, 2, "Authentication failed."),
    "not_found": (404, 50, "Pin not found."),
    "validation": (400, 1, "Invalid parameters."),
    "forbidden": (403, 29, "You are not permitted to access that resource."),
}


class _Budget:
    """One fixed window of calls, reported in Pinterest's `x-ratelimit-*` headers."""

    def __init__(self) -> None:
        self.window_start = time.time()
        self.used = 0

    def headers(self, *, spend: bool = True, exhausted: bool = False) -> dict[str, str]:
        now = time.time()
        if now - self.window_start >= RATE_WINDOW_SECONDS:
            self.window_start, self.used = now, 0
        if spend:
            self.used += 1
        reset = max(1, int(self.window_start + RATE_WINDOW_SECONDS - now))
        return {
            "x-ratelimit-limit": f"{RATE_LIMIT}, {RATE_LIMIT};w={RATE_WINDOW_SECONDS}",
            "x-ratelimit-remaining": "0" if exhausted else str(max(0, RATE_LIMIT - self.used)),
            "x-ratelimit-reset": str(reset),
        }


def _headed_route(headers: Callable[[], dict[str, str]]) -> type[APIRoute]:
    """Routes whose every answer carries the rate-limit headers (errors keep their own)."""

    class HeadedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handle = super().get_route_handler()

            async def with_headers(request: Request) -> Response:
                response = await handle(request)
                for name, value in headers().items():
                    response.headers.setdefault(name, value)
                return response

            return with_headers

    return HeadedRoute


def boards_of(account: PlatformAccount) -> dict[str, str]:
    """Every simulated account has two boards: id → name."""
    return {f"{account.id}01": "Inspiration", f"{account.id}02": "Products"}


class PinterestSandbox:
    def __init__(self, kit: PlatformKit) -> None:
        self.kit = kit
        self.store = kit.store
        self.budget = _Budget()
        self.media: dict[str, dict[str, Any]] = {}  # media_id → {account, status, bytes}
        kit.style = ErrorStyle(self.render)

    def router(self) -> APIRouter:
        r = APIRouter(
            prefix="/pinterest",
            tags=["sandbox: pinterest"],
            route_class=_headed_route(self.budget.headers),
        )
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", "/oauth/", self.authorize),
            ("POST", "/v5/oauth/token", self.token),
            ("GET", "/v5/user_account", self.user_account),
            ("GET", "/v5/boards", self.boards),
            ("POST", "/v5/media", self.register_media),
            ("POST", "/_uploads/{media_id}", self.upload_media),
            ("GET", "/v5/media/{media_id}", self.get_media),
            ("POST", "/v5/pins", self.create_pin),
            ("GET", "/v5/pins", self.list_pins),
            ("GET", "/v5/pins/{pin_id}", self.get_pin),
            ("DELETE", "/v5/pins/{pin_id}", self.delete_pin),
        ]
        for method, path, endpoint in routes:
            r.add_api_route(path, endpoint, methods=[method])
        return r

    # -- rendering ---------------------------------------------------------------------------

    def render(self, kind: str, message: str) -> tuple[int, Any, dict[str, str]]:
        status, code, default = _ERRORS.get(kind, _ERRORS["validation"])
        text = message if kind in ("validation", "not_found") and message else default
        headers = self.budget.headers(spend=False, exhausted=True) if kind == "rate_limit" else {}
        return status, {"code": code, "message": text}, headers

    def fail(self, status: int, code: int, message: str) -> Response:
        return JSONResponse({"code": code, "message": message}, status_code=status)

    def account_of(self, token: Token) -> PlatformAccount:
        return self.store.account(self.kit.platform, token.account_id)

    def live_pins(self, account_id: str) -> list[StoredPost]:
        pins = self.store.posts_of(self.kit.platform, account_id)
        return sorted(
            (p for p in pins if p.status != "deleted"), key=lambda p: p.created_at, reverse=True
        )

    def pin_json(self, post: StoredPost, *, metrics: bool = False) -> dict[str, Any]:
        account = self.store.account(self.kit.platform, post.account_id)
        body = post.body
        source = body["media_source"]
        media_type = {"video_id": "video", "multiple_image_urls": "multiple_images"}.get(
            source["source_type"], "image"
        )
        pin: dict[str, Any] = {
            "id": post.id,
            "created_at": post.created_at.strftime("%Y-%m-%dT%H:%M:%S"),
            "link": body.get("link"),
            "title": body.get("title"),
            "description": body.get("description"),
            "dominant_color": "#6E7874",
            "alt_text": body.get("alt_text"),
            "board_id": body["board_id"],
            "board_section_id": body.get("board_section_id"),
            "board_owner": {"username": account.username},
            "is_owner": True,
            "media": {"media_type": media_type},
            "parent_pin_id": None,
            "is_standard": True,
            "has_been_promoted": False,
            "note": "",
            "creative_type": "VIDEO" if media_type == "video" else "REGULAR",
        }
        if metrics:
            m = post.metrics()
            recent = {"pin_click": m["reach"] // 10, "impression": m["impressions"]}
            recent |= {"clickthrough": m["clicks"], "save": m["saves"]}
            lifetime = recent | {"reaction": m["likes"], "comment": m["comments"]}
            if media_type == "video":
                lifetime["video_mrc_view"] = m["video_views"]
            pin["pin_metrics"] = {"90d": recent, "lifetime_metrics": lifetime}
        return pin

    # -- OAuth -------------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        if request.query_params.get("response_type") != "code":
            return self.fail(400, 1, "response_type must be code")
        return self.kit.authorize(request)

    async def token(self, request: Request) -> Response:
        if _basic_client_id(request) is None:
            return self.fail(401, 2, "Authentication failed.")
        form = dict(await request.form())
        issued, problem = self.kit.exchange(form)
        if issued is None:
            return self.fail(400, 1, f"Invalid request: {problem}")
        return JSONResponse(
            {
                "access_token": issued.access_token,
                "refresh_token": issued.refresh_token,
                "response_type": form.get("grant_type"),
                "token_type": "bearer",
                "expires_in": int(issued.expires_at - time.time()),
                "refresh_token_expires_in": 365 * 24 * 3600,
                "scope": ",".join(issued.scopes),
            }
        )

    # -- account -----------------------------------------------------------------------------

    async def user_account(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "profile")
        if problem:
            return problem
        assert token is not None
        account = self.account_of(token)
        return JSONResponse(
            {
                "account_type": "BUSINESS",
                "id": account.id,
                "username": account.username,
                "business_name": account.display_name,
                "profile_image": f"https://i.pinimg.com/75x75_RS/{account.id}.jpg",
                "website_url": None,
                "about": "",
                "board_count": len(boards_of(account)),
                "pin_count": len(self.live_pins(account.id)),
                "follower_count": account.followers,
                "following_count": account.followers // 11,
                "monthly_views": account.followers * 30,
            }
        )

    async def boards(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "read")
        if problem:
            return problem
        assert token is not None
        account = self.account_of(token)
        items = [
            {
                "id": board_id,
                "name": name,
                "privacy": "PUBLIC",
                "owner": {"username": account.username},
            }
            for board_id, name in boards_of(account).items()
        ]
        return JSONResponse({"items": items, "bookmark": None})

    # -- video media -------------------------------------------------------------------------

    async def register_media(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "media")
        if problem:
            return problem
        assert token is not None
        body = await _json(request)
        if body.get("media_type") != "video":
            return self.fail(400, 1, "Invalid parameters: media_type must be video")
        media_id = self.store.next_id()
        self.media[media_id] = {"account": token.account_id, "status": "registered"}
        upload_url = f"{str(request.base_url).rstrip('/')}/pinterest/_uploads/{media_id}"
        parameters = {
            "x-amz-date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            "x-amz-signature": secrets.token_hex(32),
            "x-amz-security-token": secrets.token_urlsafe(32),
            "x-amz-algorithm": "AWS4-HMAC-SHA256",
            "key": f"uploads/{media_id}.mp4",
            "policy": base64.b64encode(b'{"conditions": []}').decode(),
            "x-amz-credential": "SANDBOX/us-east-1/s3/aws4_request",
            "Content-Type": "multipart/form-data",
        }
        return JSONResponse(
            {
                "media_id": media_id,
                "media_type": "video",
                "upload_url": upload_url,
                "upload_parameters": parameters,
            },
            status_code=201,
        )

    async def upload_media(self, media_id: str, request: Request) -> Response:
        """The object-store side: a multipart POST with the signed fields and the file."""
        item = self.media.get(media_id)
        fields, files = await _form(request)
        if item is None or fields.get("key") != f"uploads/{media_id}.mp4":
            return Response("<Error><Code>AccessDenied</Code></Error>", status_code=403)
        if not files.get("file", ("", "", b""))[2]:
            return Response("<Error><Code>InvalidArgument</Code></Error>", status_code=400)
        item["status"] = "succeeded"  # processing finishes at once here
        return Response(status_code=204)

    async def get_media(self, media_id: str, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "media")
        if problem:
            return problem
        assert token is not None
        item = self.media.get(media_id)
        if item is None or item["account"] != token.account_id:
            return self.fail(404, 50, "Media not found.")
        return JSONResponse({"media_id": media_id, "media_type": "video", "status": item["status"]})

    # -- pins --------------------------------------------------------------------------------

    async def create_pin(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "publish")
        if problem:
            return problem
        assert token is not None
        body = await _json(request)
        account = self.account_of(token)
        invalid = self.invalid_pin(body, token)
        if invalid:
            return self.fail(400, 1, invalid)
        if body["board_id"] not in boards_of(account):
            return self.fail(404, 40, "Board not found.")
        post = self.store.add_post(
            StoredPost(
                platform=self.kit.platform,
                id=self.store.next_id(),
                account_id=account.id,
                text=str(body.get("description") or ""),
                body=body,
                created_at=datetime.now(UTC),
                url="",
                extra={"video": body["media_source"]["source_type"] == "video_id"},
            )
        )
        post.url = f"https://www.pinterest.com/pin/{post.id}/"
        await self.kit.after_create(request)
        return JSONResponse(self.pin_json(post), status_code=201)

    def invalid_pin(self, body: dict[str, Any], token: Token) -> str | None:
        if not body.get("board_id"):
            return "Invalid request body: 'board_id' is a required property"
        source = body.get("media_source")
        if not isinstance(source, dict):
            return "Invalid request body: 'media_source' is a required property"
        if len(str(body.get("title") or "")) > MAX_TITLE:
            return f"Invalid request body: 'title' must be at most {MAX_TITLE} characters"
        if len(str(body.get("description") or "")) > MAX_DESCRIPTION:
            return (
                f"Invalid request body: 'description' must be at most {MAX_DESCRIPTION} characters"
            )
        link = body.get("link")
        if link and not str(link).startswith(("http://", "https://")):
            return "Invalid request body: 'link' must be a valid URL"
        kind = source.get("source_type")
        if kind == "image_url":
            return None if source.get("url") else "Invalid media_source: 'url' is required"
        if kind == "multiple_image_urls":
            items = source.get("items") or []
            if not 2 <= len(items) <= 5 or not all(i.get("url") for i in items):
                return "Invalid media_source: a carousel takes 2 to 5 items, each with a url"
            return None
        if kind == "video_id":
            item = self.media.get(str(source.get("media_id")))
            if item is None or item["account"] != token.account_id:
                return "Invalid media_source: unknown media_id"
            if item["status"] != "succeeded":
                return "Invalid media_source: the video has not finished processing"
            if (
                not source.get("cover_image_url")
                and source.get("cover_image_key_frame_time") is None
            ):
                return (
                    "Invalid media_source: a video needs cover_image_url or "
                    "cover_image_key_frame_time"
                )
            return None
        return f"Invalid media_source: unsupported source_type {kind!r}"

    async def list_pins(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "read")
        if problem:
            return problem
        assert token is not None
        size = _limit(request.query_params.get("page_size"), 25, 250)
        pins = self.live_pins(token.account_id)[:size]
        return JSONResponse({"items": [self.pin_json(p) for p in pins], "bookmark": None})

    async def get_pin(self, pin_id: str, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "metrics")
        if problem:
            return problem
        assert token is not None
        post = self.store.get_post(self.kit.platform, pin_id)
        if post is None or post.status == "deleted":
            return self.kit.error("not_found", "Pin not found.")
        with_metrics = request.query_params.get("pin_metrics") == "true"
        owner = post.account_id == token.account_id
        return JSONResponse(self.pin_json(post, metrics=with_metrics and owner))

    async def delete_pin(self, pin_id: str, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "delete")
        if problem:
            return problem
        assert token is not None
        post = self.store.get_post(self.kit.platform, pin_id)
        if post is None or post.status == "deleted":
            return self.kit.error("not_found", "Pin not found.")
        if post.account_id != token.account_id:
            return self.kit.error("forbidden", "")
        post.status = "deleted"
        return Response(status_code=204)


def router(kit: PlatformKit) -> APIRouter:
    return PinterestSandbox(kit).router()


def _basic_client_id(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    return client_id if client_id and secret else None


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _limit(value: str | None, default: int, maximum: int) -> int:
    try:
        return max(1, min(int(value or default), maximum))
    except ValueError:
        return default


async def _form(request: Request) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """Form fields and uploaded files `(filename, content type, bytes)`; the form is closed."""
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    async with request.form() as form:
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields[name] = value
            else:
                files[name] = (value.filename or "", value.content_type or "", await value.read())
    return fields, files
