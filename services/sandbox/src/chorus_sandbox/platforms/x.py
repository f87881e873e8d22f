"""X (Twitter) API v2, as far as the connector uses it.

OAuth 2.0 authorization code + PKCE (`/i/oauth2/authorize`, `/2/oauth2/token`), `/2/users/me`,
`POST /2/tweets`, `DELETE /2/tweets/:id`, `GET /2/tweets/:id` (public, non-public and organic
metrics), `GET /2/users/:id/tweets` (read-back), `GET /2/tweets/search/recent` (mentions, for
listening), and the v2 chunked media upload
(`/2/media/upload/initialize`, `/{id}/append`, `/{id}/finalize`, `GET ?command=STATUS`).

Errors are RFC 7807-style problems (`{"title","detail","type","status"}`); every answer carries
`x-rate-limit-limit/remaining/reset` for its endpoint window (15 minutes per user token), and
an exhausted window answers 429 like the real API.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chorus_sandbox.kit import ErrorStyle, PlatformKit, faults_window, token_response
from chorus_sandbox.store import StoredPost, Token

WINDOW_SECONDS = 900
# Requests per 15-minute window and user token (generous: the sandbox is for tests).
LIMITS = {"create": 200, "delete": 200, "read": 900, "media": 500}
MAX_WEIGHTED_LENGTH = 280
URL_WEIGHT = 23
_URL = re.compile(r"https?://\S+")
INVALID_REQUEST = "https://api.twitter.com/2/problems/invalid-request"
NOT_FOUND = "https://api.twitter.com/2/problems/resource-not-found"


def _problem(status: int, title: str, detail: str, type_: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": type_, "status": status}


def render(kind: str, message: str) -> tuple[int, Any, dict[str, str]]:
    if kind == "rate_limit":
        reset = int(time.time()) + max(1, round(faults_window()))
        headers = {
            "x-rate-limit-limit": str(LIMITS["create"]),
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(reset),
        }
        return 429, _problem(429, "Too Many Requests", "Too Many Requests"), headers
    if kind == "server_error":
        return 503, _problem(503, "Service Unavailable", "Service Unavailable"), {}
    if kind in ("token_expired", "invalid_token"):
        return 401, _problem(401, "Unauthorized", "Unauthorized"), {}
    if kind == "not_found":
        body = {
            "errors": [{"detail": message, "title": "Not Found Error", "type": NOT_FOUND}],
            **_problem(404, "Not Found Error", message, NOT_FOUND),
        }
        return 404, body, {}
    if kind == "forbidden":
        return 403, _problem(403, "Forbidden", message), {}
    body = {
        "errors": [{"parameters": {}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": INVALID_REQUEST,
    }
    return 400, body, {}


def weighted_length(text: str) -> int:
    """X counts every URL as 23 characters (t.co)."""
    return len(_URL.sub("x" * URL_WEIGHT, text))


def shorten_urls(text: str, post_id: str) -> str:
    """X echoes text back with its links wrapped in t.co."""
    count = iter(range(100))
    return _URL.sub(lambda _: f"https://t.co/{post_id[-6:]}{next(count)}", text)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


_QUERY_TOKEN = re.compile(r'"([^"]+)"|(\S+)')


def search_terms(query: str) -> list[str]:
    """The words and "quoted phrases" of a search query, lowercased; operators (`lang:en`,
    `-is:retweet`, `OR`, parentheses) are ignored: the sandbox matches every term."""
    terms = []
    for phrase, word in _QUERY_TOKEN.findall(query):
        term = (phrase or word).strip("()").lower()
        if not term or term in ("or", "and") or ":" in term or term.startswith("-"):
            continue
        terms.append(term)
    return terms


class Windows:
    """Per-token, per-endpoint 15-minute request windows → `x-rate-limit-*` headers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], list[float]] = {}

    def spend(self, token: str, group: str) -> tuple[dict[str, str], bool]:
        limit = LIMITS[group]
        now = time.time()
        with self._lock:
            window = self._windows.get((token, group))
            if window is None or window[0] + WINDOW_SECONDS <= now:
                window = [now, 0]
                self._windows[(token, group)] = window
            allowed = window[1] < limit
            if allowed:
                window[1] += 1
            remaining = max(0, limit - int(window[1]))
            reset = int(window[0] + WINDOW_SECONDS)
        headers = {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(reset),
        }
        return headers, allowed


class XSandbox:
    def __init__(self, kit: PlatformKit) -> None:
        self.kit = kit
        self.windows = Windows()

    def router(self) -> APIRouter:
        api = APIRouter(prefix="/x", tags=["sandbox: x"])
        api.add_api_route("/i/oauth2/authorize", self.authorize, methods=["GET"])
        api.add_api_route("/2/oauth2/token", self.token, methods=["POST"])
        api.add_api_route("/2/users/me", self.me, methods=["GET"])
        api.add_api_route("/2/users/{user_id}/tweets", self.timeline, methods=["GET"])
        api.add_api_route("/2/tweets", self.create, methods=["POST"])
        api.add_api_route("/2/tweets/search/recent", self.search, methods=["GET"])
        api.add_api_route("/2/tweets/{tweet_id}", self.delete, methods=["DELETE"])
        api.add_api_route("/2/tweets/{tweet_id}", self.lookup, methods=["GET"])
        api.add_api_route("/2/media/upload/initialize", self.media_init, methods=["POST"])
        api.add_api_route("/2/media/upload/{media_id}/append", self.media_append, methods=["POST"])
        api.add_api_route(
            "/2/media/upload/{media_id}/finalize", self.media_finalize, methods=["POST"]
        )
        api.add_api_route("/2/media/upload", self.media_status, methods=["GET"])
        return api

    async def authorized(
        self, request: Request, operation: str, group: str
    ) -> tuple[Token | None, Response | None, dict[str, str]]:
        token, error = await self.kit.guard(request, operation)
        if error is not None or token is None:
            return None, error, {}
        headers, allowed = self.windows.spend(token.access_token, group)
        if not allowed:
            status, body, _ = render("rate_limit", "")
            return None, JSONResponse(body, status_code=status, headers=headers), headers
        return token, None, headers

    def answer(self, body: Any, headers: dict[str, str], status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=headers)

    def tweet_json(self, post: StoredPost) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": post.id,
            "text": shorten_urls(post.text, post.id),
            "created_at": iso(post.created_at),
            "author_id": post.account_id,
            "edit_history_tweet_ids": [post.id],
        }
        media_keys = post.extra.get("media_keys") or []
        if media_keys:
            data["attachments"] = {"media_keys": media_keys}
        return data

    def own_post(self, token: Token, post_id: str) -> StoredPost | None:
        post = self.kit.store.get_post("x", post_id)
        if post is None or post.kind != "post" or post.status == "deleted":
            return None
        return post if post.account_id == token.account_id else None

    def following_of(self, account_id: str) -> int:
        return int(account_id[-3:]) if account_id[-3:].isdigit() else 150

    # -- OAuth 2.0 ------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("response_type") != "code":
            return self.kit.error("validation", "response_type must be code")
        if not q.get("code_challenge"):
            return self.kit.error("validation", "code_challenge is required (PKCE)")
        return self.kit.authorize(request)

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except ValueError:
                client_id, secret = "", ""
            if secret != self.kit.settings.app_secret:
                return JSONResponse(
                    {
                        "error": "unauthorized_client",
                        "error_description": "Missing valid authorization header",
                    },
                    status_code=401,
                )
            form.setdefault("client_id", client_id)
        if not form.get("client_id"):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "Missing required parameter"},
                status_code=400,
            )
        issued, error = self.kit.exchange(form)
        if issued is None:
            description = {
                "invalid_grant": "Value passed for the token was invalid.",
                "unsupported_grant_type": "Invalid grant_type.",
            }.get(error or "", "invalid request")
            return JSONResponse(
                {"error": "invalid_request", "error_description": description}, status_code=400
            )
        body = token_response(issued)
        body["expires_in"] = min(body["expires_in"], 7200)
        return JSONResponse(body)

    # -- users ------------------------------------------------------------------------------

    async def me(self, request: Request) -> Response:
        tok, error, headers = await self.authorized(request, "read", "read")
        if tok is None:
            return error  # type: ignore[return-value]
        account = self.kit.store.account("x", tok.account_id)
        posts = [p for p in self.kit.store.posts_of("x", account.id) if p.status != "deleted"]
        return self.answer(
            {
                "data": {
                    "id": account.id,
                    "name": account.display_name,
                    "username": account.username,
                    "public_metrics": {
                        "followers_count": account.followers,
                        "following_count": self.following_of(account.id),
                        "tweet_count": len(posts),
                        "listed_count": account.followers // 100,
                        "like_count": 0,
                    },
                }
            },
            headers,
        )

    async def timeline(self, request: Request, user_id: str) -> Response:
        tok, error, headers = await self.authorized(request, "read", "read")
        if tok is None:
            return error  # type: ignore[return-value]
        q = request.query_params
        since = parse_time(q.get("start_time"))
        try:
            limit = max(5, min(100, int(q.get("max_results", "10"))))
        except ValueError:
            return self.kit.error("validation", "max_results must be a number between 5 and 100")
        posts = [
            p
            for p in self.kit.store.posts_of("x", user_id)
            if p.status != "deleted" and (since is None or p.created_at >= since)
        ]
        posts.sort(key=lambda p: p.created_at, reverse=True)
        page = posts[:limit]
        if not page:
            return self.answer({"meta": {"result_count": 0}}, headers)
        meta = {"result_count": len(page), "newest_id": page[0].id, "oldest_id": page[-1].id}
        return self.answer({"data": [self.tweet_json(p) for p in page], "meta": meta}, headers)

    # -- tweets -----------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        reply_to = ((body or {}).get("reply") or {}).get("in_reply_to_tweet_id")
        operation = "comment" if reply_to else "publish"
        tok, error, headers = await self.authorized(request, operation, "create")
        if tok is None:
            return error  # type: ignore[return-value]
        if not isinstance(body, dict):
            return self.kit.error("validation", "request body must be a JSON object")
        text = body.get("text") or ""
        media_ids = [str(m) for m in ((body.get("media") or {}).get("media_ids") or [])]
        if not isinstance(text, str) or (not text.strip() and not media_ids):
            return self.kit.error("validation", "Post text or media is required.")
        if weighted_length(text) > MAX_WEIGHTED_LENGTH:
            return self.kit.error(
                "validation",
                f"Post text is too long: {weighted_length(text)} of {MAX_WEIGHTED_LENGTH} "
                "weighted characters.",
            )
        if len(media_ids) > 4:
            return self.kit.error("validation", "At most 4 media may be attached to a post.")
        uploads = [self.kit.store.get_post("x", m) for m in media_ids]
        if any(
            u is None
            or u.kind != "upload"
            or u.account_id != tok.account_id
            or u.extra.get("state") != "succeeded"
            for u in uploads
        ):
            return self.kit.error("validation", "Your media IDs are invalid.")
        if reply_to and self.own_post(tok, str(reply_to)) is None:
            return self.kit.error("validation", "The post you are replying to does not exist.")
        if not reply_to and text.strip():
            for p in self.kit.store.posts_of("x", tok.account_id):
                if p.status != "deleted" and p.text == text:
                    return self.kit.error(
                        "forbidden",
                        "You are not allowed to create a Tweet with duplicate content.",
                    )
        post_id = str(int(time.time() * 1000) << 22 | int(self.kit.store.next_id()) % (1 << 22))
        account = self.kit.store.account("x", tok.account_id)
        video = any(str(u.extra.get("media_type", "")).startswith("video/") for u in uploads if u)
        self.kit.store.add_post(
            StoredPost(
                platform="x",
                id=post_id,
                account_id=tok.account_id,
                text=text,
                body=body,
                created_at=datetime.now(UTC),
                url=f"https://x.com/{account.username}/status/{post_id}",
                kind="comment" if reply_to else "post",
                extra={
                    "media_keys": [u.extra["media_key"] for u in uploads if u],
                    "video": video,
                    "in_reply_to": reply_to,
                },
            )
        )
        await self.kit.after_create(request)
        return self.answer(
            {"data": {"id": post_id, "text": text, "edit_history_tweet_ids": [post_id]}},
            headers,
            201,
        )

    async def delete(self, request: Request, tweet_id: str) -> Response:
        tok, error, headers = await self.authorized(request, "delete", "delete")
        if tok is None:
            return error  # type: ignore[return-value]
        post = self.kit.store.get_post("x", tweet_id)
        if post is None or post.status == "deleted":
            return self.kit.error("not_found", f"Could not find tweet with id: [{tweet_id}].")
        if post.account_id != tok.account_id:
            return self.kit.error("forbidden", "You are not authorized to delete this Tweet.")
        post.status = "deleted"
        return self.answer({"data": {"deleted": True}}, headers)

    async def lookup(self, request: Request, tweet_id: str) -> Response:
        tok, error, headers = await self.authorized(request, "read", "read")
        if tok is None:
            return error  # type: ignore[return-value]
        post = self.kit.store.get_post("x", tweet_id)
        if post is None or post.status == "deleted" or post.kind != "post":
            return self.kit.error("not_found", f"Could not find tweet with id: [{tweet_id}].")
        fields = set((request.query_params.get("tweet.fields") or "").split(","))
        m = post.metrics()
        data = self.tweet_json(post)
        quotes = m["shares"] // 3
        if "public_metrics" in fields:
            data["public_metrics"] = {
                "retweet_count": m["shares"] - quotes,
                "reply_count": m["comments"],
                "like_count": m["likes"],
                "quote_count": quotes,
                "bookmark_count": m["saves"],
                "impression_count": m["impressions"],
            }
        own = post.account_id == tok.account_id
        if own and "non_public_metrics" in fields:
            data["non_public_metrics"] = {
                "impression_count": m["impressions"],
                "url_link_clicks": m["clicks"],
                "user_profile_clicks": m["clicks"] // 4,
            }
        if own and "organic_metrics" in fields:
            data["organic_metrics"] = {
                "impression_count": m["impressions"],
                "like_count": m["likes"],
                "reply_count": m["comments"],
                "retweet_count": m["shares"] - quotes,
                "url_link_clicks": m["clicks"],
                "user_profile_clicks": m["clicks"] // 4,
            }
        out: dict[str, Any] = {"data": data}
        media_fields = request.query_params.get("media.fields") or ""
        if post.extra.get("media_keys") and "attachments.media_keys" in (
            request.query_params.get("expansions") or ""
        ):
            media = []
            for key in post.extra["media_keys"]:
                item: dict[str, Any] = {
                    "media_key": key,
                    "type": "video" if post.extra.get("video") else "photo",
                }
                if "public_metrics" in media_fields and post.extra.get("video"):
                    item["public_metrics"] = {"view_count": m["video_views"]}
                media.append(item)
            out["includes"] = {"media": media}
        return self.answer(out, headers)

    async def search(self, request: Request) -> Response:
        """Recent search over public tweets: posts made here and the mentions and replies
        `POST /_sandbox/inbound` made up (listening reads mentions this way)."""
        tok, error, headers = await self.authorized(request, "search", "read")
        if tok is None:
            return error  # type: ignore[return-value]
        q = request.query_params
        terms = search_terms(q.get("query") or "")
        if not terms:
            return self.kit.error("validation", "query: one or more terms are required")
        try:
            limit = max(10, min(100, int(q.get("max_results", "10"))))
        except ValueError:
            return self.kit.error("validation", "max_results must be a number between 10 and 100")
        since = parse_time(q.get("start_time"))
        found: list[tuple[datetime, dict[str, Any], dict[str, Any]]] = []
        for post in self.kit.store.posts_of("x"):
            if post.status != "deleted":
                author = self.kit.store.account("x", post.account_id)
                user = {"id": author.id, "username": author.username, "name": author.display_name}
                found.append((post.created_at, self.tweet_json(post), user))
        for r in self.kit.store.inbound:
            if r.platform == "x" and r.kind != "message":
                owner = self.kit.store.account("x", r.account_id)
                text = r.text if f"@{owner.username}" in r.text else f"@{owner.username} {r.text}"
                tweet = {
                    "id": r.id,
                    "text": text,
                    "created_at": iso(r.created_at),
                    "author_id": r.author_id,
                    "edit_history_tweet_ids": [r.id],
                }
                if r.kind == "comment":
                    tweet["conversation_id"] = r.post_id
                    tweet["in_reply_to_user_id"] = owner.id
                user = {"id": r.author_id, "username": r.author_username, "name": r.author_name}
                found.append((r.created_at, tweet, user))
        hits = [
            (at, tweet, user)
            for at, tweet, user in found
            if (since is None or at >= since) and all(t in tweet["text"].lower() for t in terms)
        ]
        hits.sort(key=lambda h: h[0], reverse=True)
        page = hits[:limit]
        if not page:
            return self.answer({"meta": {"result_count": 0}}, headers)
        users = {user["id"]: user for _, _, user in page}
        meta = {
            "result_count": len(page),
            "newest_id": page[0][1]["id"],
            "oldest_id": page[-1][1]["id"],
        }
        body = {
            "data": [tweet for _, tweet, _ in page],
            "includes": {"users": list(users.values())},
            "meta": meta,
        }
        return self.answer(body, headers)

    # -- media upload (v2, chunked) -----------------------------------------------------------

    def media_json(self, upload: StoredPost) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": upload.id,
            "media_key": upload.extra["media_key"],
            "expires_after_secs": 86400,
        }
        if upload.extra.get("finalized"):
            data["size"] = upload.extra["received"]
        state = upload.extra.get("state")
        if state in ("pending", "in_progress"):
            data["processing_info"] = {"state": state, "check_after_secs": 1}
        elif state == "succeeded" and upload.extra.get("processed"):
            data["processing_info"] = {"state": "succeeded", "progress_percent": 100}
        return data

    def own_upload(self, tok: Token, media_id: str) -> StoredPost | None:
        upload = self.kit.store.get_post("x", media_id)
        if upload is None or upload.kind != "upload" or upload.account_id != tok.account_id:
            return None
        return upload

    async def media_init(self, request: Request) -> Response:
        tok, error, headers = await self.authorized(request, "upload", "media")
        if tok is None:
            return error  # type: ignore[return-value]
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self.kit.error("validation", "request body must be a JSON object")
        media_type = str(body.get("media_type") or "")
        total = body.get("total_bytes")
        if not re.fullmatch(r"(image|video)/[\w.+-]+", media_type):
            return self.kit.error("validation", "media_type must be an image or video MIME type")
        if not isinstance(total, int) or total <= 0:
            return self.kit.error("validation", "total_bytes must be a positive integer")
        limit = 512 * 1024 * 1024 if media_type.startswith("video/") else 5 * 1024 * 1024
        if total > limit:
            return self.kit.error("validation", f"File size exceeds {limit} bytes.")
        media_id = self.kit.store.next_id() + "0000"
        prefix = "7" if media_type.startswith("video/") else "3"
        self.kit.store.add_post(
            StoredPost(
                platform="x",
                id=media_id,
                account_id=tok.account_id,
                text="",
                body=body,
                created_at=datetime.now(UTC),
                url="",
                kind="upload",
                status="pending",
                extra={
                    "media_key": f"{prefix}_{media_id}",
                    "media_type": media_type,
                    "media_category": body.get("media_category"),
                    "total_bytes": total,
                    "received": 0,
                    "segments": [],
                    "state": "uploading",
                },
            )
        )
        upload = self.kit.store.get_post("x", media_id)
        assert upload is not None
        return self.answer({"data": self.media_json(upload)}, headers)

    async def media_append(self, request: Request, media_id: str) -> Response:
        tok, error, headers = await self.authorized(request, "upload", "media")
        if tok is None:
            return error  # type: ignore[return-value]
        upload = self.own_upload(tok, media_id)
        if upload is None:
            return self.kit.error("validation", "Your media IDs are invalid.")
        form = await request.form()
        chunk = form.get("media")
        try:
            segment = int(str(form.get("segment_index")))
        except ValueError:
            return self.kit.error("validation", "segment_index must be an integer")
        if chunk is None or isinstance(chunk, str):
            return self.kit.error("validation", "media (the chunk, as a file part) is required")
        data = await chunk.read()
        upload.extra["received"] += len(data)
        upload.extra["segments"].append(segment)
        return self.answer({"data": {"expires_at": int(time.time()) + 86400}}, headers)

    async def media_finalize(self, request: Request, media_id: str) -> Response:
        tok, error, headers = await self.authorized(request, "upload", "media")
        if tok is None:
            return error  # type: ignore[return-value]
        upload = self.own_upload(tok, media_id)
        if upload is None:
            return self.kit.error("validation", "Your media IDs are invalid.")
        if upload.extra["received"] != upload.extra["total_bytes"]:
            return self.kit.error(
                "validation",
                f"File size mismatch: received {upload.extra['received']} bytes, "
                f"expected {upload.extra['total_bytes']}.",
            )
        upload.extra["finalized"] = True
        if str(upload.extra["media_type"]).startswith("video/"):
            upload.extra["state"] = "pending"  # async processing: poll STATUS
            upload.extra["processed"] = True
        else:
            upload.extra["state"] = "succeeded"
        upload.status = "published"
        return self.answer({"data": self.media_json(upload)}, headers)

    async def media_status(self, request: Request) -> Response:
        tok, error, headers = await self.authorized(request, "upload", "media")
        if tok is None:
            return error  # type: ignore[return-value]
        q = request.query_params
        if q.get("command") != "STATUS":
            return self.kit.error("validation", "command must be STATUS")
        upload = self.own_upload(tok, q.get("media_id", ""))
        if upload is None:
            return self.kit.error("validation", "Your media IDs are invalid.")
        # Processing advances one step per STATUS call: pending → in_progress → succeeded.
        state = upload.extra.get("state")
        upload.extra["state"] = {"pending": "in_progress", "in_progress": "succeeded"}.get(
            state, state
        )
        return self.answer({"data": self.media_json(upload)}, headers)


def router(kit: PlatformKit) -> APIRouter:
    kit.style = ErrorStyle(render)
    return XSandbox(kit).router()
