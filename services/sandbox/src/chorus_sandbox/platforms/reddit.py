"""Simulated Reddit (OAuth API) under `/reddit`.

Paths: `GET /api/v1/authorize` (redirects straight back with a code),
`POST /api/v1/access_token` (HTTP Basic client authentication; like Reddit, a bad grant is
a 200 with `{"error": "invalid_grant"}`), `GET /api/v1/me`, `POST /api/submit`
(form-encoded, `api_type=json`: answers `{"json": {"errors": [], "data": {...}}}`, and
validation problems as `[code, message, field]` triples with a 200), `POST
/api/media/asset.json` with the object-store upload it points to (`POST /_media`),
`GET /user/{name}/submitted`, `POST /api/del`, `GET /api/info?id=t3_…`.

Every answer carries `x-ratelimit-used/remaining/reset` (reset in seconds); errors outside
`json.errors` are `{"message", "error": <status>}`.
"""

from __future__ import annotations

import base64
import re
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
RATE_WINDOW_SECONDS = 600
MAX_TITLE = 300
MAX_TEXT = 40_000
SUBREDDIT = re.compile(r"^(u_[A-Za-z0-9_-]{3,20}|[A-Za-z0-9][A-Za-z0-9_]{2,20})$")

_ERRORS = {
    "rate_limit": (429, "Too Many Requests"),
    "server_error": (503, "Service Unavailable"),
    "token_expired": (401, "Unauthorized"),
    "invalid_token": (401, "Unauthorized"),
    "not_found": (404, "Not Found"),
    "validation": (400, "Bad Request"),
    "forbidden": (403, "Forbidden"),
}


class _Budget:
    """Reddit's 10-minute window, reported in `x-ratelimit-used/remaining/reset`."""

    def __init__(self) -> None:
        self.window_start = time.time()
        self.used = 0

    def headers(self, *, spend: bool = True, exhausted: bool = False) -> dict[str, str]:
        now = time.time()
        if now - self.window_start >= RATE_WINDOW_SECONDS:
            self.window_start, self.used = now, 0
        if spend:
            self.used += 1
        remaining = 0 if exhausted else max(0, RATE_LIMIT - self.used)
        return {
            "x-ratelimit-used": str(RATE_LIMIT - remaining if exhausted else self.used),
            "x-ratelimit-remaining": f"{remaining:.1f}",
            "x-ratelimit-reset": str(max(1, int(self.window_start + RATE_WINDOW_SECONDS - now))),
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


def base36(value: str) -> str:
    """Reddit ids are base 36 (non-numeric sandbox ids are kept as they are)."""
    if not value.isdigit():
        return value.lower()
    number, digits = int(value), "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


class RedditSandbox:
    def __init__(self, kit: PlatformKit) -> None:
        self.kit = kit
        self.store = kit.store
        self.budget = _Budget()
        self.assets: dict[str, dict[str, Any]] = {}  # asset id → {account, key, uploaded}
        kit.style = ErrorStyle(self.render)

    def router(self) -> APIRouter:
        r = APIRouter(
            prefix="/reddit",
            tags=["sandbox: reddit"],
            route_class=_headed_route(self.budget.headers),
        )
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", "/api/v1/authorize", self.authorize),
            ("GET", "/api/v1/authorize.compact", self.authorize),
            ("POST", "/api/v1/access_token", self.access_token),
            ("GET", "/api/v1/me", self.me),
            ("POST", "/api/media/asset.json", self.media_asset),
            ("POST", "/_media", self.media_upload),
            ("POST", "/api/submit", self.submit),
            ("GET", "/user/{name}/submitted", self.submitted),
            ("POST", "/api/del", self.delete),
            ("GET", "/api/info", self.info),
        ]
        for method, path, endpoint in routes:
            r.add_api_route(path, endpoint, methods=[method])
        return r

    # -- rendering ---------------------------------------------------------------------------

    def render(self, kind: str, message: str) -> tuple[int, Any, dict[str, str]]:
        status, default = _ERRORS.get(kind, _ERRORS["validation"])
        text = message if kind in ("validation", "not_found") and message else default
        headers: dict[str, str] = {}
        if kind == "rate_limit":
            headers = self.budget.headers(spend=False, exhausted=True)
        if status == 401:
            headers["www-authenticate"] = 'Bearer realm="reddit", error="invalid_token"'
        return status, {"message": text, "error": status}, headers

    def account_of(self, token: Token) -> PlatformAccount:
        return self.store.account(self.kit.platform, token.account_id)

    def thing(self, post: StoredPost) -> dict[str, Any]:
        """A submission (`t3`) as listings show it; metrics grow with its age."""
        account = self.store.account(self.kit.platform, post.account_id)
        metrics = post.metrics()
        deleted = post.status == "deleted"
        body = post.body
        sr = body["sr"]
        return {
            "kind": "t3",
            "data": {
                "id": post.id,
                "name": f"t3_{post.id}",
                "title": body["title"],
                "selftext": "[deleted]" if deleted else body.get("text", ""),
                "url": body.get("url") or post.url,
                "permalink": post.url.removeprefix("https://www.reddit.com"),
                "subreddit": sr,
                "subreddit_name_prefixed": f"u/{sr[2:]}" if sr.startswith("u_") else f"r/{sr}",
                "author": "[deleted]" if deleted else account.username,
                "created_utc": post.created_at.timestamp(),
                "score": metrics["likes"],
                "ups": metrics["likes"],
                "downs": 0,
                "upvote_ratio": 0.97,
                "num_comments": metrics["comments"],
                "num_crossposts": metrics["shares"],
                "is_self": body["kind"] == "self",
                "is_video": False,
                "post_hint": "image" if body["kind"] == "image" else None,
                "view_count": None,
                "removed_by_category": "deleted" if deleted else None,
            },
        }

    # -- OAuth -------------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("response_type") != "code" or q.get("duration") not in ("temporary", "permanent"):
            return self.kit.error("validation", "response_type=code and duration are required")
        return self.kit.authorize(request)

    async def access_token(self, request: Request) -> Response:
        if _basic_client_id(request) is None:
            return JSONResponse({"message": "Unauthorized", "error": 401}, status_code=401)
        form = dict(await request.form())
        issued, problem = self.kit.exchange(form)
        if issued is None:
            return JSONResponse({"error": problem})  # Reddit answers a bad grant with a 200
        return JSONResponse(
            {
                "access_token": issued.access_token,
                "token_type": "bearer",
                "expires_in": int(issued.expires_at - time.time()),
                "scope": " ".join(issued.scopes),
                "refresh_token": issued.refresh_token,
            }
        )

    async def me(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "profile")
        if problem:
            return problem
        assert token is not None
        account = self.account_of(token)
        return JSONResponse(
            {
                "id": base36(account.id),
                "name": account.username,
                "created_utc": 1_600_000_000.0,
                "link_karma": account.followers * 3,
                "comment_karma": account.followers * 5,
                "total_karma": account.followers * 8,
                "icon_img": "https://www.redditstatic.com/avatars/defaults/v2/avatar_default_1.png",
                "verified": True,
                "subreddit": {
                    "display_name": f"u_{account.username}",
                    "display_name_prefixed": f"u/{account.username}",
                    "title": account.display_name,
                    "subscribers": account.followers,
                },
            }
        )

    # -- media -------------------------------------------------------------------------------

    async def media_asset(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "media")
        if problem:
            return problem
        assert token is not None
        form = await request.form()
        filepath, mime = str(form.get("filepath") or ""), str(form.get("mimetype") or "")
        if not filepath or not mime.startswith("image/"):
            return self.kit.error("validation", "filepath and an image mimetype are required")
        asset_id = secrets.token_hex(6)
        key = f"rte_images/{asset_id}/{filepath}"
        self.assets[asset_id] = {"account": token.account_id, "key": key, "uploaded": False}
        fields = [
            {"name": "acl", "value": "private"},
            {"name": "key", "value": key},
            {"name": "X-Amz-Credential", "value": "SANDBOX/us-east-1/s3/aws4_request"},
            {"name": "X-Amz-Algorithm", "value": "AWS4-HMAC-SHA256"},
            {"name": "X-Amz-Date", "value": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")},
            {"name": "success_action_status", "value": "201"},
            {"name": "content-type", "value": mime},
            {"name": "x-amz-storage-class", "value": "STANDARD"},
            {"name": "x-amz-meta-ext", "value": filepath.rsplit(".", 1)[-1]},
            {"name": "policy", "value": base64.b64encode(b'{"conditions": []}').decode()},
            {"name": "X-Amz-Signature", "value": secrets.token_hex(32)},
        ]
        return JSONResponse(
            {
                # Protocol-relative, like Reddit's (the object store's host).
                "args": {"action": f"//{request.url.netloc}/reddit/_media", "fields": fields},
                "asset": {
                    "asset_id": asset_id,
                    "processing_state": "incomplete",
                    "payload": {"filepath": filepath},
                    "websocket_url": f"wss://ws.sandbox.reddit/rte_images/{asset_id}",
                },
            }
        )

    async def media_upload(self, request: Request) -> Response:
        """The object-store side: a multipart POST with the signed fields and the file."""
        fields, files = await _form(request)
        key = fields.get("key", "")
        asset = next((a for a in self.assets.values() if a["key"] == key), None)
        if asset is None:
            return Response("<Error><Code>AccessDenied</Code></Error>", status_code=403)
        if not files.get("file", ("", "", b""))[2]:
            return Response("<Error><Code>InvalidArgument</Code></Error>", status_code=400)
        asset["uploaded"] = True
        location = f"{request.url.scheme}://{request.url.netloc}/reddit/_media/{key}"
        xml = f"<PostResponse><Location>{location}</Location><Key>{key}</Key></PostResponse>"
        return Response(xml, status_code=201, media_type="application/xml")

    # -- submissions -------------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "publish")
        if problem:
            return problem
        assert token is not None
        form = {k: str(v) for k, v in (await request.form()).items()}
        errors = self.invalid_submission(form, token)
        if errors:
            return JSONResponse({"json": {"errors": errors}})
        account = self.account_of(token)
        post_id = base36(self.store.next_id())
        sr, title = form["sr"].removeprefix("r/"), form["title"]
        slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:50] or "post"
        where = f"user/{sr[2:]}" if sr.startswith("u_") else f"r/{sr}"
        url = f"https://www.reddit.com/{where}/comments/{post_id}/{slug}/"
        kind = form.get("kind", "link")
        self.store.add_post(
            StoredPost(
                platform=self.kit.platform,
                id=post_id,
                account_id=account.id,
                text=form.get("text", "") if kind == "self" else title,
                body={
                    "sr": sr,
                    "title": title,
                    "kind": kind,
                    "text": form.get("text", "") if kind == "self" else "",
                    "url": form.get("url") if kind != "self" else None,
                    "nsfw": form.get("nsfw") == "true",
                    "spoiler": form.get("spoiler") == "true",
                    "flair_id": form.get("flair_id"),
                },
                created_at=datetime.now(UTC),
                url=url,
            )
        )
        await self.kit.after_create(request)
        data = {"url": url, "drafts_count": 0, "id": post_id, "name": f"t3_{post_id}"}
        return JSONResponse({"json": {"errors": [], "data": data}})

    def invalid_submission(self, form: dict[str, str], token: Token) -> list[list[str]]:
        sr = form.get("sr", "").removeprefix("r/")
        title = form.get("title", "")
        kind = form.get("kind", "link")
        if not sr:
            return [["SUBREDDIT_REQUIRED", "you must specify a subreddit", "sr"]]
        if not SUBREDDIT.match(sr):
            return [["SUBREDDIT_NOEXIST", "that community doesn't exist", "sr"]]
        if not title.strip():
            return [["NO_TEXT", "we need something here", "title"]]
        if len(title) > MAX_TITLE:
            return [["TOO_LONG", f"this is too long (max: {MAX_TITLE})", "title"]]
        if kind not in ("self", "link", "image"):
            return [["INVALID_OPTION", "that option is not valid", "kind"]]
        if kind == "self" and len(form.get("text", "")) > MAX_TEXT:
            return [["TOO_LONG", f"this is too long (max: {MAX_TEXT})", "text"]]
        url = form.get("url", "")
        if kind in ("link", "image") and not url.startswith(("http://", "https://")):
            return [["NO_URL", "a url is required", "url"]]
        if kind == "image":
            asset = next((a for a in self.assets.values() if url.endswith(a["key"])), None)
            if asset is None or not asset["uploaded"] or asset["account"] != token.account_id:
                return [["BAD_URL", "you should check that url", "url"]]
        return []

    async def submitted(self, name: str, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "read")
        if problem:
            return problem
        account = next(
            (
                a
                for (p, _), a in self.store.accounts.items()
                if p == self.kit.platform and a.username == name
            ),
            None,
        )
        if account is None:
            return self.kit.error("not_found", "Not Found")
        limit = max(1, min(int(request.query_params.get("limit") or 25), 100))
        posts = [
            p for p in self.store.posts_of(self.kit.platform, account.id) if p.status != "deleted"
        ]
        posts.sort(key=lambda p: p.created_at, reverse=True)
        return JSONResponse(_listing([self.thing(p) for p in posts[:limit]]))

    async def delete(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "delete")
        if problem:
            return problem
        assert token is not None
        fullname = str((await request.form()).get("id") or "")
        post = self.store.get_post(self.kit.platform, fullname.removeprefix("t3_"))
        if post is not None and post.account_id != token.account_id:
            return self.kit.error("forbidden", "")
        if post is not None:
            post.status = "deleted"
        return JSONResponse({})  # Reddit answers {} whether or not there was anything to delete

    async def info(self, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "metrics")
        if problem:
            return problem
        names = [n for n in (request.query_params.get("id") or "").split(",") if n]
        things = []
        for name in names[:100]:
            post = self.store.get_post(self.kit.platform, name.removeprefix("t3_"))
            if post is not None and name.startswith("t3_"):
                things.append(self.thing(post))
        return JSONResponse(_listing(things))


def router(kit: PlatformKit) -> APIRouter:
    return RedditSandbox(kit).router()


def _listing(children: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "Listing",
        "data": {"after": None, "before": None, "dist": len(children), "children": children},
    }


def _basic_client_id(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, _secret = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    return client_id or None


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
