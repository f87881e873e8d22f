"""Simulated Bluesky (AT Protocol XRPC on a PDS + AppView) under `/bluesky`.

Connecting uses app-password sessions. `GET /app-password/authorize` stands for the page
where a user gives Chorus a handle and an app password (here it redirects straight back with
a code, PKCE-bound through `kit.authorize`); `POST /app-password/token` turns the code into
the session `com.atproto.server.createSession` would answer. The XRPC methods:
`com.atproto.server.createSession|refreshSession|getSession`,
`com.atproto.identity.resolveHandle`, `com.atproto.repo.uploadBlob|createRecord|deleteRecord`,
`app.bsky.actor.getProfile`, `app.bsky.feed.getAuthorFeed|getPosts|getPostThread`.

Errors are `{"error", "message"}` (`ExpiredToken` comes back as a 400, like a real PDS);
every answer carries `ratelimit-limit/remaining/reset/policy` (reset in epoch seconds).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from chorus_sandbox.kit import ErrorStyle, PlatformKit, bearer
from chorus_sandbox.store import PlatformAccount, StoredPost, Token

POST = "app.bsky.feed.post"
RATE_LIMIT = 5000
RATE_WINDOW_SECONDS = 3600
MAX_GRAPHEMES = 300
MAX_IMAGE_BYTES = 1_000_000
MAX_VIDEO_BYTES = 100_000_000
APP_PASSWORD = re.compile(r"^[a-z0-9]{4}(-[a-z0-9]{4}){3}$")
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"

# kind → (status, error name, message)
_ERRORS = {
    "rate_limit": (429, "RateLimitExceeded", "Rate Limit Exceeded"),
    "server_error": (500, "InternalServerError", "Internal Server Error"),
    "token_expired": (400, "ExpiredToken", "Token has expired"),
    "invalid_token": (401, "InvalidToken", "Token could not be verified"),
    "not_found": (400, "NotFound", "Not found"),
    "validation": (400, "InvalidRequest", "Invalid request"),
    "forbidden": (403, "Forbidden", "Forbidden"),
}
_FEATURES = {
    "app.bsky.richtext.facet#link": "uri",
    "app.bsky.richtext.facet#mention": "did",
    "app.bsky.richtext.facet#tag": "tag",
}


class _Budget:
    """One fixed window of calls, reported in the IETF draft `ratelimit-*` headers."""

    def __init__(self) -> None:
        self.window_start = time.time()
        self.used = 0

    def headers(self, *, spend: bool = True, exhausted: bool = False) -> dict[str, str]:
        now = time.time()
        if now - self.window_start >= RATE_WINDOW_SECONDS:
            self.window_start, self.used = now, 0
        if spend:
            self.used += 1
        return {
            "ratelimit-limit": str(RATE_LIMIT),
            "ratelimit-remaining": "0" if exhausted else str(max(0, RATE_LIMIT - self.used)),
            "ratelimit-reset": str(int(self.window_start + RATE_WINDOW_SECONDS)),
            "ratelimit-policy": f"{RATE_LIMIT};w={RATE_WINDOW_SECONDS}",
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


def did_of(account: PlatformAccount) -> str:
    return f"did:plc:sbx{account.id}"


def handle_of(account: PlatformAccount) -> str:
    return f"{account.username.replace('_', '-')}.bsky.social"


class BlueskySandbox:
    def __init__(self, kit: PlatformKit) -> None:
        self.kit = kit
        self.store = kit.store
        self.budget = _Budget()
        self.blobs: dict[str, dict[str, Any]] = {}  # cid → {mimeType, size, account}
        kit.style = ErrorStyle(self.render)

    def router(self) -> APIRouter:
        r = APIRouter(
            prefix="/bluesky",
            tags=["sandbox: bluesky"],
            route_class=_headed_route(self.budget.headers),
        )
        x = "/xrpc/"
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", "/app-password/authorize", self.authorize),
            ("POST", "/app-password/token", self.token),
            ("POST", x + "com.atproto.server.createSession", self.create_session),
            ("POST", x + "com.atproto.server.refreshSession", self.refresh_session),
            ("GET", x + "com.atproto.server.getSession", self.get_session),
            ("GET", x + "com.atproto.identity.resolveHandle", self.resolve_handle),
            ("GET", x + "app.bsky.actor.getProfile", self.get_profile),
            ("POST", x + "com.atproto.repo.uploadBlob", self.upload_blob),
            ("POST", x + "com.atproto.repo.createRecord", self.create_record),
            ("POST", x + "com.atproto.repo.deleteRecord", self.delete_record),
            ("GET", x + "app.bsky.feed.getAuthorFeed", self.get_author_feed),
            ("GET", x + "app.bsky.feed.getPosts", self.get_posts),
            ("GET", x + "app.bsky.feed.getPostThread", self.get_post_thread),
        ]
        for method, path, endpoint in routes:
            r.add_api_route(path, endpoint, methods=[method])
        return r

    # -- rendering ---------------------------------------------------------------------------

    def render(self, kind: str, message: str) -> tuple[int, Any, dict[str, str]]:
        status, name, default = _ERRORS.get(kind, (400, "InvalidRequest", "Invalid request"))
        text = message if kind in ("validation", "not_found") and message else default
        headers = self.budget.headers(spend=False, exhausted=True) if kind == "rate_limit" else {}
        return status, {"error": name, "message": text}, headers

    def fail(self, name: str, message: str, status: int = 400) -> Response:
        return JSONResponse({"error": name, "message": message}, status_code=status)

    def accounts(self) -> list[PlatformAccount]:
        return [a for (p, _), a in self.store.accounts.items() if p == self.kit.platform]

    def actor(self, ref: str | None) -> PlatformAccount | None:
        """An account by DID or handle."""
        for account in self.accounts():
            if ref in (did_of(account), handle_of(account)):
                return account
        return None

    def session(self, token: Token, *, with_tokens: bool = True) -> dict[str, Any]:
        account = self.store.account(self.kit.platform, token.account_id)
        body: dict[str, Any] = {
            "did": did_of(account),
            "handle": handle_of(account),
            "email": f"{account.username}@example.com",
            "emailConfirmed": True,
            "active": True,
        }
        if with_tokens:
            body |= {"accessJwt": token.access_token, "refreshJwt": token.refresh_token}
        return body

    def post_view(self, post: StoredPost) -> dict[str, Any]:
        account = self.store.account(self.kit.platform, post.account_id)
        metrics = post.metrics()
        view: dict[str, Any] = {
            "uri": post.extra["uri"],
            "cid": post.extra["cid"],
            "author": {
                "did": did_of(account),
                "handle": handle_of(account),
                "displayName": account.display_name,
            },
            "record": post.body,
            "replyCount": metrics["comments"],
            "repostCount": metrics["shares"],
            "likeCount": metrics["likes"],
            "quoteCount": metrics["clicks"] // 10,
            "bookmarkCount": metrics["saves"],
            "indexedAt": _iso(post.created_at),
            "labels": [],
        }
        embed = post.body.get("embed")
        if embed and embed.get("$type") == "app.bsky.embed.images":
            view["embed"] = {
                "$type": "app.bsky.embed.images#view",
                "images": [
                    {
                        "thumb": f"https://cdn.bsky.app/img/feed_thumbnail/plain/{i['image']['ref']['$link']}",
                        "fullsize": f"https://cdn.bsky.app/img/feed_fullsize/plain/{i['image']['ref']['$link']}",
                        "alt": i.get("alt", ""),
                    }
                    for i in embed["images"]
                ],
            }
        return view

    def live_post(self, uri: str) -> StoredPost | None:
        rkey = uri.rsplit("/", 1)[-1]
        post = self.store.get_post(self.kit.platform, rkey)
        if post is None or post.status == "deleted" or post.extra.get("uri") != uri:
            return None
        return post

    # -- connecting --------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        return self.kit.authorize(request)

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        issued, problem = self.kit.exchange(form)
        if issued is None:
            return self.fail("InvalidGrant", f"{problem}: the code is invalid or was used")
        return JSONResponse(self.session(issued))

    async def create_session(self, request: Request) -> Response:
        body = await _json(request)
        identifier = str(body.get("identifier") or "")
        password = str(body.get("password") or "")
        if not identifier or not APP_PASSWORD.match(password):
            return self.fail("AuthenticationRequired", "Invalid identifier or password", 401)
        account = self.actor(identifier) or self.store.account(self.kit.platform)
        issued = self.store.issue_token(
            self.kit.platform,
            account.id,
            ["atproto", "transition:generic"],
            self.kit.settings.access_token_ttl_seconds,
        )
        return JSONResponse(self.session(issued))

    async def refresh_session(self, request: Request) -> Response:
        grant = {"grant_type": "refresh_token", "refresh_token": bearer(request)}
        issued, _ = self.kit.exchange(grant)
        if issued is None:
            return self.fail("ExpiredToken", "Token has been revoked")
        return JSONResponse(self.session(issued))

    async def get_session(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "profile")
        if problem:
            return problem
        assert token is not None
        return JSONResponse(self.session(token, with_tokens=False))

    async def resolve_handle(self, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "read")
        if problem:
            return problem
        handle = (request.query_params.get("handle") or "").lstrip("@").lower()
        account = self.actor(handle)
        if account:
            return JSONResponse({"did": did_of(account)})
        if "." not in handle or handle.endswith(".invalid"):
            return self.fail("InvalidRequest", "Unable to resolve handle")
        digest = base64.b32encode(hashlib.sha256(handle.encode()).digest()).decode().lower()
        return JSONResponse({"did": f"did:plc:{digest[:24]}"})

    async def get_profile(self, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "profile")
        if problem:
            return problem
        account = self.actor(request.query_params.get("actor"))
        if account is None:
            return self.fail("InvalidRequest", "Profile not found")
        posts = [
            p for p in self.store.posts_of(self.kit.platform, account.id) if p.status != "deleted"
        ]
        return JSONResponse(
            {
                "did": did_of(account),
                "handle": handle_of(account),
                "displayName": account.display_name,
                "description": "",
                "followersCount": account.followers,
                "followsCount": account.followers // 9,
                "postsCount": len(posts),
                "createdAt": "2023-05-01T00:00:00.000Z",
                "indexedAt": "2023-05-01T00:00:00.000Z",
            }
        )

    # -- repo --------------------------------------------------------------------------------

    async def upload_blob(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "media")
        if problem:
            return problem
        assert token is not None
        data = await request.body()
        mime = request.headers.get("content-type", "application/octet-stream").split(";")[0]
        if not data:
            return self.fail("InvalidRequest", "Request body is empty")
        limit = MAX_VIDEO_BYTES if mime.startswith("video/") else MAX_IMAGE_BYTES
        if len(data) > limit:
            return self.fail("BlobTooLarge", f"This file is too large. It is {len(data)} bytes")
        cid = _cid(data, raw=True)
        self.blobs[cid] = {"mimeType": mime, "size": len(data), "account": token.account_id}
        blob = {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(data)}
        return JSONResponse({"blob": blob})

    async def create_record(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "publish")
        if problem:
            return problem
        assert token is not None
        body = await _json(request)
        account = self.store.account(self.kit.platform, token.account_id)
        if body.get("repo") not in (did_of(account), handle_of(account)):
            return self.fail("InvalidRequest", "Input/repo must be the authenticated account")
        if body.get("collection") != POST:
            return self.fail(
                "InvalidRequest", f"Collection not supported here: {body.get('collection')}"
            )
        record = body.get("record")
        invalid = (
            self.invalid_post(record, token)
            if isinstance(record, dict)
            else "Record must be an object"
        )
        if invalid:
            return self.fail("InvalidRecord", f"Invalid {POST} record: {invalid}")
        assert isinstance(record, dict)
        rkey = str(body.get("rkey") or _tid())
        if self.store.get_post(self.kit.platform, rkey) is not None:
            return self.fail("InvalidRequest", f"Record already exists: {rkey}")
        did = did_of(account)
        uri = f"at://{did}/{POST}/{rkey}"
        cid = _cid(repr(sorted(record.items())).encode() + rkey.encode())
        embed = record.get("embed") or {}
        self.store.add_post(
            StoredPost(
                platform=self.kit.platform,
                id=rkey,
                account_id=account.id,
                text=record.get("text", ""),
                body=record,
                created_at=datetime.now(UTC),
                url=f"https://bsky.app/profile/{handle_of(account)}/post/{rkey}",
                extra={
                    "uri": uri,
                    "cid": cid,
                    "did": did,
                    "video": embed.get("$type") == "app.bsky.embed.video",
                },
            )
        )
        await self.kit.after_create(request)
        commit = {"cid": _cid(cid.encode()), "rev": _tid()}
        return JSONResponse({"uri": uri, "cid": cid, "commit": commit, "validationStatus": "valid"})

    def invalid_post(self, record: dict[str, Any], token: Token) -> str | None:
        text = record.get("text")
        if record.get("$type") not in (None, POST):
            return f"Record/$type must be {POST}"
        if not isinstance(text, str):
            return 'Record must have the property "text"'
        if len(text) > MAX_GRAPHEMES:  # code points: close enough to graphemes here
            return f"Record/text must not be longer than {MAX_GRAPHEMES} graphemes"
        try:
            datetime.fromisoformat(str(record.get("createdAt")).replace("Z", "+00:00"))
        except ValueError:
            return "Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)"
        size = len(text.encode())
        for i, facet in enumerate(record.get("facets") or []):
            index = facet.get("index") or {}
            start, end = index.get("byteStart"), index.get("byteEnd")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= size):
                return f"Record/facets/{i}/index must be a byte range inside the text"
            for feature in facet.get("features") or []:
                field = _FEATURES.get(feature.get("$type"))
                if field is None or not feature.get(field):
                    return f"Record/facets/{i}/features must be a link, mention or tag"
        return self.invalid_embed(record.get("embed"), token)

    def invalid_embed(self, embed: Any, token: Token) -> str | None:
        if not embed:
            return None
        kind = embed.get("$type")
        refs: list[Any] = []
        if kind == "app.bsky.embed.images":
            images = embed.get("images") or []
            if not 1 <= len(images) <= 4:
                return "Record/embed/images must have 1 to 4 items"
            refs = [i.get("image") for i in images]
        elif kind == "app.bsky.embed.video":
            refs = [embed.get("video")]
        elif kind == "app.bsky.embed.external":
            external = embed.get("external") or {}
            return None if external.get("uri") else "Record/embed/external must have a uri"
        else:
            return f"Record/embed has an unsupported type: {kind}"
        for ref in refs:
            link = ((ref or {}).get("ref") or {}).get("$link")
            blob = self.blobs.get(link or "")
            if blob is None or blob["account"] != token.account_id:
                return f"Could not find blob: {link}"
        return None

    async def delete_record(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "delete")
        if problem:
            return problem
        assert token is not None
        body = await _json(request)
        account = self.store.account(self.kit.platform, token.account_id)
        if body.get("repo") not in (did_of(account), handle_of(account)):
            return self.fail("InvalidRequest", "Input/repo must be the authenticated account")
        post = self.store.get_post(self.kit.platform, str(body.get("rkey") or ""))
        if post is not None and post.account_id == account.id:
            post.status = "deleted"
        # Deleting a record that is not there succeeds: the repo ends in the asked state.
        return JSONResponse({"commit": {"cid": _cid(str(time.time()).encode()), "rev": _tid()}})

    # -- AppView -----------------------------------------------------------------------------

    async def get_author_feed(self, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "read")
        if problem:
            return problem
        account = self.actor(request.query_params.get("actor"))
        if account is None:
            return self.fail("InvalidRequest", "Profile not found")
        limit = _limit(request.query_params.get("limit"), 50, 100)
        posts = [
            p for p in self.store.posts_of(self.kit.platform, account.id) if p.status != "deleted"
        ]
        posts.sort(key=lambda p: p.created_at, reverse=True)
        return JSONResponse({"feed": [{"post": self.post_view(p)} for p in posts[:limit]]})

    async def get_posts(self, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "metrics")
        if problem:
            return problem
        uris = request.query_params.getlist("uris")
        if len(uris) > 25:
            return self.fail("InvalidRequest", "uris must not have more than 25 elements")
        posts = [p for p in (self.live_post(u) for u in uris) if p is not None]
        return JSONResponse({"posts": [self.post_view(p) for p in posts]})

    async def get_post_thread(self, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "metrics")
        if problem:
            return problem
        post = self.live_post(request.query_params.get("uri") or "")
        if post is None:
            return self.fail("NotFound", "Post not found")
        thread = {
            "$type": "app.bsky.feed.defs#threadViewPost",
            "post": self.post_view(post),
            "replies": [],
        }
        return JSONResponse({"thread": thread})


def router(kit: PlatformKit) -> APIRouter:
    return BlueskySandbox(kit).router()


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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cid(data: bytes, *, raw: bool = False) -> str:
    """A CIDv1-looking string (base32, `bafkrei…` for raw blobs, `bafyrei…` for records)."""
    digest = base64.b32encode(hashlib.sha256(data).digest()).decode().lower().rstrip("=")
    return ("bafkrei" if raw else "bafyrei") + digest[:52]


_last_tid = 0


def _tid() -> str:
    """A record key in TID form: 13 base32-sortable characters from microseconds (monotonic)."""
    global _last_tid
    now = max(int(time.time() * 1_000_000), _last_tid + 1)
    _last_tid = now
    value = (now << 10) | 0x1F  # clock id
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
