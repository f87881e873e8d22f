"""Simulated Mastodon (REST API v1/v2) under `/mastodon`.

Paths: `GET /oauth/authorize`, `POST /oauth/token`, `GET /api/v1/accounts/verify_credentials`,
`GET /api/v1/accounts/{id}`, `GET /api/v1/accounts/{id}/statuses`, `POST /api/v2/media`,
`GET /api/v1/media/{id}`, `POST /api/v1/statuses` (honours `Idempotency-Key`: the same key
from the same account answers the status it made, no second post), `GET|DELETE
/api/v1/statuses/{id}`. Errors are `{"error": "..."}` (422 for validation); every answer
carries `X-RateLimit-Limit/Remaining/Reset` (reset as an ISO 8601 time).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from chorus_sandbox.kit import ERROR_KINDS, ErrorStyle, PlatformKit, token_response
from chorus_sandbox.store import PlatformAccount, StoredPost, Token

HOST = "mastodon.sandbox"
RATE_LIMIT = 300
RATE_WINDOW_SECONDS = 300
MAX_CHARS = 500
MAX_MEDIA = 4

_MESSAGES = {
    "token_expired": "The access token expired",
    "invalid_token": "The access token is invalid",
    "rate_limit": "Too many requests",
    "server_error": "Service Unavailable",
    "forbidden": "This action is not allowed",
    "not_found": "Record not found",
}
_UNPROCESSED = (
    "Validation failed: Cannot attach files that have not finished processing. "
    "Try again in a moment!"
)


class _Budget:
    """One fixed window of calls, reported in Mastodon's headers."""

    def __init__(self) -> None:
        self.window_start = time.time()
        self.used = 0

    def headers(self, *, spend: bool = True, exhausted: bool = False) -> dict[str, str]:
        now = time.time()
        if now - self.window_start >= RATE_WINDOW_SECONDS:
            self.window_start, self.used = now, 0
        if spend:
            self.used += 1
        reset = datetime.fromtimestamp(self.window_start + RATE_WINDOW_SECONDS, UTC)
        remaining = 0 if exhausted else max(0, RATE_LIMIT - self.used)
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": _iso(reset, "microseconds"),
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


class MastodonSandbox:
    def __init__(self, kit: PlatformKit) -> None:
        self.kit = kit
        self.store = kit.store
        self.budget = _Budget()
        self.media: dict[str, dict[str, Any]] = {}
        kit.style = ErrorStyle(self.render)

    def router(self) -> APIRouter:
        r = APIRouter(
            prefix="/mastodon",
            tags=["sandbox: mastodon"],
            route_class=_headed_route(self.budget.headers),
        )
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", "/oauth/authorize", self.authorize),
            ("POST", "/oauth/token", self.token),
            ("GET", "/api/v1/accounts/verify_credentials", self.verify_credentials),
            ("GET", "/api/v1/accounts/{account_id}", self.get_account),
            ("GET", "/api/v1/accounts/{account_id}/statuses", self.account_statuses),
            ("POST", "/api/v2/media", self.upload_media),
            ("GET", "/api/v1/media/{media_id}", self.get_media),
            ("POST", "/api/v1/statuses", self.create_status),
            ("GET", "/api/v1/statuses/{status_id}", self.get_status),
            ("DELETE", "/api/v1/statuses/{status_id}", self.delete_status),
        ]
        for method, path, endpoint in routes:
            r.add_api_route(path, endpoint, methods=[method])
        return r

    # -- rendering ---------------------------------------------------------------------------

    def render(self, kind: str, message: str) -> tuple[int, Any, dict[str, str]]:
        status = 422 if kind == "validation" else ERROR_KINDS.get(kind, 400)
        text = message if kind == "validation" else _MESSAGES.get(kind, message)
        headers: dict[str, str] = {}
        if kind == "rate_limit":
            headers = self.budget.headers(spend=False, exhausted=True)
        if kind in ("token_expired", "invalid_token"):
            headers["WWW-Authenticate"] = (
                f'Bearer realm="Doorkeeper", error="invalid_token", error_description="{text}"'
            )
        return status, {"error": text}, headers

    def error(self, kind: str, message: str = "") -> Response:
        return self.kit.error(kind, message or _MESSAGES.get(kind, kind))

    def account_of(self, token: Token) -> PlatformAccount:
        return self.store.account(self.kit.platform, token.account_id)

    def live_posts(self, account_id: str) -> list[StoredPost]:
        posts = self.store.posts_of(self.kit.platform, account_id)
        return [p for p in posts if p.status != "deleted"]

    def account_json(self, account: PlatformAccount) -> dict[str, Any]:
        posts = self.live_posts(account.id)
        last = max((p.created_at for p in posts), default=None)
        return {
            "id": account.id,
            "username": account.username,
            "acct": account.username,
            "display_name": account.display_name,
            "locked": False,
            "bot": False,
            "created_at": "2023-01-01T00:00:00.000Z",
            "note": "",
            "url": f"https://{HOST}/@{account.username}",
            "avatar": f"https://{HOST}/avatars/original/missing.png",
            "followers_count": account.followers,
            "following_count": account.followers // 7,
            "statuses_count": len(posts),
            "last_status_at": last.date().isoformat() if last else None,
        }

    def status_json(self, post: StoredPost) -> dict[str, Any]:
        account = self.store.account(self.kit.platform, post.account_id)
        metrics = post.metrics()
        return {
            "id": post.id,
            "created_at": _iso(post.created_at),
            "in_reply_to_id": None,
            "in_reply_to_account_id": None,
            "sensitive": bool(post.body.get("sensitive")),
            "spoiler_text": post.body.get("spoiler_text") or "",
            "visibility": post.body.get("visibility") or "public",
            "language": post.body.get("language") or "en",
            "uri": f"https://{HOST}/users/{account.username}/statuses/{post.id}",
            "url": post.url,
            "replies_count": metrics["comments"],
            "reblogs_count": metrics["shares"],
            "favourites_count": metrics["likes"],
            "edited_at": None,
            "content": _html(post.text),
            "reblog": None,
            "application": {"name": "Chorus", "website": None},
            "account": self.account_json(account),
            "media_attachments": [
                _public(self.media[m]) for m in post.extra.get("media_ids", []) if m in self.media
            ],
            "mentions": [],
            "tags": [{"name": t, "url": f"https://{HOST}/tags/{t}"} for t in _tags(post.text)],
            "emojis": [],
            "card": None,
            "poll": None,
        }

    # -- OAuth -------------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        if request.query_params.get("response_type", "code") != "code":
            return self.error("validation", "unsupported response_type")
        return self.kit.authorize(request)

    async def token(self, request: Request) -> Response:
        form = await _params(request)
        if not form.get("client_id") or not form.get("client_secret"):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                status_code=401,
            )
        issued, problem = self.kit.exchange(form)
        if issued is None:
            return JSONResponse(
                {
                    "error": problem,
                    "error_description": "The provided authorization grant is invalid, "
                    "expired, revoked, does not match the redirection URI used in the "
                    "authorization request, or was issued to another client.",
                },
                status_code=400,
            )
        body = token_response(issued, created_at=int(time.time()))
        body["token_type"] = "Bearer"
        return JSONResponse(body)

    # -- accounts ----------------------------------------------------------------------------

    async def verify_credentials(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "profile")
        if problem:
            return problem
        assert token is not None
        return JSONResponse(self.account_json(self.account_of(token)))

    async def get_account(self, account_id: str, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "profile")
        if problem:
            return problem
        account = self.store.accounts.get((self.kit.platform, account_id))
        return JSONResponse(self.account_json(account)) if account else self.error("not_found")

    async def account_statuses(self, account_id: str, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "read")
        if problem:
            return problem
        if (self.kit.platform, account_id) not in self.store.accounts:
            return self.error("not_found")
        limit = _int(request.query_params.get("limit"), 20, 40)
        posts = sorted(self.live_posts(account_id), key=lambda p: int(p.id), reverse=True)
        return JSONResponse([self.status_json(p) for p in posts[:limit]])

    # -- media -------------------------------------------------------------------------------

    async def upload_media(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "media")
        if problem:
            return problem
        assert token is not None
        fields, files = await _form(request)
        if "file" not in files:
            return self.error("validation", "Validation failed: File can't be blank")
        filename, mime, data = files["file"]
        kind = mime.split("/", 1)[0]
        if not data or kind not in ("image", "video"):
            return self.error("validation", "Validation failed: File content type is invalid")
        media_id = self.store.next_id()
        url = f"https://{HOST}/media_attachments/files/{media_id}/original/{filename}"
        self.media[media_id] = {
            "id": media_id,
            "type": kind,
            "url": None if kind == "video" else url,
            "preview_url": f"https://{HOST}/media_attachments/files/{media_id}/small.jpg",
            "remote_url": None,
            "description": fields.get("description") or None,
            "blurhash": "UFBWY:8_0Jxv4mx]t8%M~qIpWBs:Rjt7xuRj",
            "_account": token.account_id,
            "_url": url,
            "_size": len(data),
        }
        # Video is processed asynchronously: 202 with no url until it is ready.
        status = 202 if kind == "video" else 200
        return JSONResponse(_public(self.media[media_id]), status_code=status)

    async def get_media(self, media_id: str, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "media")
        if problem:
            return problem
        assert token is not None
        item = self.media.get(media_id)
        if item is None or item["_account"] != token.account_id:
            return self.error("not_found")
        item["url"] = item["_url"]  # processing has finished by the first poll
        return JSONResponse(_public(item))

    # -- statuses ----------------------------------------------------------------------------

    async def create_status(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "publish")
        if problem:
            return problem
        assert token is not None
        body = await _params(request)
        key = request.headers.get("idempotency-key")
        if key:
            # The same key from the same account answers the status it made (no new post).
            for post in self.store.posts_of(self.kit.platform, token.account_id):
                if post.extra.get("idempotency_key") == key:
                    return JSONResponse(self.status_json(post))
        text = str(body.get("status") or "")
        media_ids = [str(m) for m in body.get("media_ids") or []]
        invalid = self.invalid_status(token, text, media_ids, body)
        if invalid:
            return self.error("validation", invalid)
        account = self.account_of(token)
        status_id = self.store.next_id()
        post = self.store.add_post(
            StoredPost(
                platform=self.kit.platform,
                id=status_id,
                account_id=account.id,
                text=text,
                body={
                    "status": text,
                    "media_ids": media_ids,
                    "visibility": str(body.get("visibility") or "public"),
                    "spoiler_text": body.get("spoiler_text") or "",
                    "sensitive": bool(body.get("sensitive")),
                    "language": body.get("language"),
                },
                created_at=datetime.now(UTC),
                url=f"https://{HOST}/@{account.username}/{status_id}",
                extra={
                    "idempotency_key": key,
                    "media_ids": media_ids,
                    "video": any(self.media[m]["type"] == "video" for m in media_ids),
                },
            )
        )
        await self.kit.after_create(request)
        return JSONResponse(self.status_json(post))

    def invalid_status(
        self, token: Token, text: str, media_ids: list[str], body: dict[str, Any]
    ) -> str | None:
        if not text.strip() and not media_ids:
            return "Validation failed: Text can't be blank"
        if len(text) > MAX_CHARS:
            return f"Validation failed: Text character limit of {MAX_CHARS} exceeded"
        if len(media_ids) > MAX_MEDIA:
            return f"Validation failed: Media attachments exceed {MAX_MEDIA}"
        for media_id in media_ids:
            item = self.media.get(media_id)
            if item is None or item["_account"] != token.account_id:
                return f"Validation failed: Media {media_id} not found"
            if item["url"] is None:
                return _UNPROCESSED
        if str(body.get("visibility") or "public") not in (
            "public",
            "unlisted",
            "private",
            "direct",
        ):
            return "Validation failed: Visibility is not included in the list"
        return None

    async def get_status(self, status_id: str, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "metrics")
        if problem:
            return problem
        post = self.store.get_post(self.kit.platform, status_id)
        if post is None or post.status == "deleted":
            return self.error("not_found")
        return JSONResponse(self.status_json(post))

    async def delete_status(self, status_id: str, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "delete")
        if problem:
            return problem
        assert token is not None
        post = self.store.get_post(self.kit.platform, status_id)
        if post is None or post.status == "deleted":
            return self.error("not_found")
        if post.account_id != token.account_id:
            return self.error("forbidden")
        post.status = "deleted"
        body = self.status_json(post)
        body["text"] = post.text  # the delete answer carries the source text (for redrafts)
        return JSONResponse(body)


def router(kit: PlatformKit) -> APIRouter:
    return MastodonSandbox(kit).router()


async def _params(request: Request) -> dict[str, Any]:
    """Mastodon takes JSON or form bodies (`media_ids[]` repeats in forms)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    form = await request.form()
    out: dict[str, Any] = {k: v for k, v in form.items() if not k.endswith("[]")}
    out["media_ids"] = [str(v) for v in form.getlist("media_ids[]")]
    return out


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def _iso(moment: datetime, timespec: str = "milliseconds") -> str:
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def _int(value: str | None, default: int, maximum: int) -> int:
    try:
        return max(1, min(int(value or default), maximum))
    except ValueError:
        return default


_URL = re.compile(r"https?://[^\s<]+")
_TAG = re.compile(r"(?<![\w/])#(\w+)")


def _tags(text: str) -> list[str]:
    return [t.lower() for t in _TAG.findall(text)]


def _html(text: str) -> str:
    """Mastodon renders statuses as HTML: paragraphs, line breaks, linked URLs and tags."""

    def link(match: re.Match[str]) -> str:
        url = match.group(0)
        scheme, _, rest = url.partition("://")
        return (
            f'<a href="{url}" target="_blank" rel="nofollow noopener noreferrer">'
            f'<span class="invisible">{scheme}://</span><span class="">{rest}</span></a>'
        )

    def tag(match: re.Match[str]) -> str:
        name = match.group(1)
        return (
            f'<a href="https://{HOST}/tags/{name.lower()}" class="mention hashtag" '
            f'rel="tag">#<span>{name}</span></a>'
        )

    paragraphs = []
    for block in html.escape(text, quote=False).split("\n\n"):
        linked = _TAG.sub(tag, _URL.sub(link, block))
        paragraphs.append("<p>" + linked.replace("\n", "<br />") + "</p>")
    return "".join(paragraphs)


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
