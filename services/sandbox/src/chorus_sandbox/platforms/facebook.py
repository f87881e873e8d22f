"""Facebook Pages through the Graph API, as far as the connector uses it.

Facebook Login (`/{version}/dialog/oauth`, `/{version}/oauth/access_token` for the code and for
`fb_exchange_token`), `me/accounts` (the user's Pages with their Page access tokens),
`/{page-id}/feed`, `/{page-id}/photos` (published, or unpublished for multi-photo posts),
`/{page-id}/videos` (`file_url`), `/{page-id}/posts` (read-back), `/{page-id}/published_posts`,
`DELETE /{post-id}`, `/{post-id}?fields=shares,reactions.summary(…),comments.summary(…)`,
`/{post-id}/insights`, `/{post-id}/comments`.

Each user gets one Page (id `1<user-id>`); posts are `{page-id}_{n}`. Errors are Graph errors
(`{"error":{"message","type","code","error_subcode","fbtrace_id"}}`) — rate limits answer HTTP 400
with code 32 and the `X-Business-Use-Case-Usage` header, as Pages BUC limits do. Every answer
carries `X-App-Usage` and `X-Business-Use-Case-Usage` (percent of the hourly budget used).

The Graph helpers here (`GraphKit`, `graph_style`, `graph_params`, …) are shared by the
Instagram and Threads sandboxes, which speak the same dialect.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chorus_sandbox.kit import ErrorStyle, PlatformKit
from chorus_sandbox.store import StoredPost, Token

GRAPH_VERSION = re.compile(r"v\d+\.\d+")
HOURLY_CALLS = 200  # per token: 100 % of X-App-Usage / X-Business-Use-Case-Usage
PAGE_TOKEN_TTL = 10 * 365 * 86400  # Page tokens from long-lived user tokens do not expire
LONG_LIVED_EXPIRES_IN = 5183944  # what Meta reports for a 60-day token
MAX_MESSAGE = 63206


def fbtrace() -> str:
    return secrets.token_urlsafe(8)


def graph_error(
    message: str, *, code: int, type_: str = "OAuthException", subcode: int | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if code in (1, 2, 4, 17, 32, 613):
        error["is_transient"] = True
    error["fbtrace_id"] = fbtrace()
    return {"error": error}


def usage_headers(
    buc_type: str, object_id: str, percent: int, regain_minutes: int = 0
) -> dict[str, str]:
    app = {"call_count": percent, "total_cputime": percent // 4, "total_time": percent // 3}
    buc = {
        object_id: [
            {
                "type": buc_type,
                "call_count": percent,
                "total_cputime": percent // 4,
                "total_time": percent // 3,
                "estimated_time_to_regain_access": regain_minutes,
            }
        ]
    }
    return {"X-App-Usage": json.dumps(app), "X-Business-Use-Case-Usage": json.dumps(buc)}


def graph_style(
    *, rate_code: int, rate_message: str, buc_type: str, exception_type: str = "OAuthException"
) -> ErrorStyle:
    """Graph-shaped errors. Throttling answers HTTP 400 (the code, not the status, says so)."""

    def render(kind: str, message: str) -> tuple[int, Any, dict[str, str]]:
        if kind == "rate_limit":
            body = graph_error(rate_message, code=rate_code, type_=exception_type)
            return 400, body, usage_headers(buc_type, "0", 100, regain_minutes=1)
        if kind == "server_error":
            return (
                503,
                graph_error("Service temporarily unavailable", code=2, type_=exception_type),
                {},
            )
        if kind == "token_expired":
            body = graph_error(
                "Error validating access token: Session has expired.",
                code=190,
                subcode=463,
                type_=exception_type,
            )
            return 400, body, {}
        if kind == "invalid_token":
            body = graph_error(
                "Invalid OAuth access token - Cannot parse access token",
                code=190,
                type_=exception_type,
            )
            return 400, body, {}
        if kind == "not_found":
            body = graph_error(message, code=100, subcode=33, type_="GraphMethodException")
            return 400, body, {}
        if kind == "forbidden":
            return 403, graph_error(f"(#200) {message}", code=200, type_=exception_type), {}
        return 400, graph_error(f"(#100) {message}", code=100, type_=exception_type), {}

    return ErrorStyle(render)


async def graph_params(request: Request) -> dict[str, Any]:
    """Graph takes parameters in the query string, a form body or a JSON body alike; form keys
    like `attached_media[0]` become lists, JSON-looking values are decoded."""
    out: dict[str, Any] = dict(request.query_params)
    if request.method in ("POST", "DELETE"):
        kind = request.headers.get("content-type", "")
        if "application/json" in kind:
            try:
                body = await request.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                out.update(body)
        elif "form" in kind:
            out.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
    lists: dict[str, list[tuple[int, Any]]] = {}
    for key in list(out):
        m = re.fullmatch(r"(\w+)\[(\d+)\]", key)
        if m:
            lists.setdefault(m.group(1), []).append((int(m.group(2)), decode(out.pop(key))))
    for key, items in lists.items():
        out[key] = [v for _, v in sorted(items)]
    return out


def decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def as_list(value: Any) -> list[Any]:
    value = decode(value)
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [v.strip() for v in str(value).split(",") if v.strip()]


def truthy(value: Any, default: bool = True) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() not in ("false", "0", "no")


def graph_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def unix_or_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def insight(name: str, value: int, period: str = "lifetime") -> dict[str, Any]:
    return {
        "name": name,
        "period": period,
        "values": [{"value": value}],
        "title": name.replace("_", " ").title(),
        "description": f"Lifetime: {name.replace('_', ' ')}",
        "id": f"{name}/{period}",
    }


class GraphKit:
    """What the Graph-dialect sandboxes share: version check, usage headers, token guard."""

    def __init__(self, kit: PlatformKit, buc_type: str) -> None:
        self.kit = kit
        self.buc_type = buc_type
        self._lock = threading.Lock()
        self._calls: dict[str, list[float]] = {}

    def version_error(self, version: str) -> Response | None:
        if GRAPH_VERSION.fullmatch(version):
            return None
        body = graph_error(
            f"Unknown path components: /{version}", code=2500, type_="OAuthException"
        )
        return JSONResponse(body, status_code=400)

    def spend(self, token: Token) -> tuple[dict[str, str], bool]:
        now = time.time()
        with self._lock:
            calls = [t for t in self._calls.get(token.access_token, []) if t > now - 3600]
            allowed = len(calls) < HOURLY_CALLS
            if allowed:
                calls.append(now)
            self._calls[token.access_token] = calls
            percent = min(100, len(calls) * 100 // HOURLY_CALLS)
        regain = 0 if allowed else 60
        return usage_headers(self.buc_type, token.account_id, percent, regain), allowed

    async def guard(
        self, request: Request, version: str, operation: str
    ) -> tuple[Token | None, Response | None, dict[str, str]]:
        bad = self.version_error(version)
        if bad is not None:
            return None, bad, {}
        token, error = await self.kit.guard(request, operation)
        if error is not None or token is None:
            return None, error, {}
        headers, allowed = self.spend(token)
        if not allowed:
            status, body, _ = self.kit.style.render("rate_limit", "")
            return None, JSONResponse(body, status_code=status, headers=headers), headers
        return token, None, headers

    def check_secret(self, secret: str | None) -> Response | None:
        if secret == self.kit.settings.app_secret:
            return None
        body = graph_error("Error validating client secret.", code=1, type_="OAuthException")
        body["error"].pop("is_transient", None)
        return JSONResponse(body, status_code=400)

    def not_found(self, node: str, method: str = "get") -> Response:
        return self.kit.error(
            "not_found",
            f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation.",
        )

    def own(self, token: Token, node: str, kind: str = "post") -> StoredPost | None:
        """The token's account's `kind` object `node`, unless deleted."""
        post = self.kit.store.get_post(self.kit.platform, node)
        if post is None or post.kind != kind or post.status == "deleted":
            return None
        return post if post.account_id == token.account_id else None

    def recent(self, q: Any, owner: str) -> tuple[list[StoredPost], int]:
        """`owner`'s posts since `?since=` (newest first), and the page size `?limit=`."""
        since = unix_or_iso(q.get("since"))
        posts = [
            p
            for p in self.kit.store.posts_of(self.kit.platform, owner)
            if p.status != "deleted" and (since is None or p.created_at >= since)
        ]
        posts.sort(key=lambda p: p.created_at, reverse=True)
        limit = int(q["limit"]) if q.get("limit", "").isdigit() else 25
        return posts, limit


def answer(body: Any, headers: dict[str, str], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def field_names(fields: str | None) -> set[str]:
    """`reactions.summary(total_count).limit(0),shares` → {"reactions", "shares"}."""
    names = set()
    depth = 0
    current = ""
    for ch in fields or "":
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        elif ch == "," and depth == 0:
            names.add(current.split(".", maxsplit=1)[0].strip())
            current = ""
            continue
        if depth == 0:
            current += ch
    if current.strip():
        names.add(current.split(".")[0].strip())
    return names


class ContainerSandbox:
    """What the Instagram and Threads sandboxes share: long-lived tokens, container status,
    the user's timeline. A subclass names its grant types and renders its media (`media_json`)."""

    platform: ClassVar[str]
    exchange_grant: ClassVar[str]  # `GET /access_token`: short-lived → long-lived token
    refresh_grant: ClassVar[str]  # `GET /refresh_access_token`

    def __init__(self, kit: PlatformKit) -> None:
        self.kit = kit
        self.graph = GraphKit(kit, self.platform)

    def media_json(self, post: StoredPost, fields: set[str]) -> dict[str, Any]:
        raise NotImplementedError

    def rotated(self, access_token: str) -> Response:
        current = self.kit.store.token(self.platform, access_token)
        issued = None
        if current is not None:
            issued, _ = self.kit.exchange(
                {"grant_type": "refresh_token", "refresh_token": current.refresh_token}
            )
        if issued is None:
            status, body, _ = self.kit.style.render("invalid_token", "")
            return JSONResponse(body, status_code=status)
        expires_in = min(LONG_LIVED_EXPIRES_IN, int(issued.expires_at - time.time()))
        return JSONResponse(
            {"access_token": issued.access_token, "token_type": "bearer", "expires_in": expires_in}
        )

    async def long_lived(self, request: Request) -> Response:
        q = request.query_params
        if q.get("grant_type") != self.exchange_grant:
            return JSONResponse(graph_error("Invalid grant_type", code=100), status_code=400)
        wrong = self.graph.check_secret(q.get("client_secret"))
        return wrong or self.rotated(q.get("access_token", ""))

    async def refresh(self, request: Request) -> Response:
        q = request.query_params
        if q.get("grant_type") != self.refresh_grant:
            return JSONResponse(graph_error("Invalid grant_type", code=100), status_code=400)
        return self.rotated(q.get("access_token", ""))

    @staticmethod
    def container_status(container: StoredPost) -> str:
        """A video container is `IN_PROGRESS` on its first status read, then `FINISHED`."""
        if container.status == "pending" and container.extra.get("video"):
            container.extra["polls"] = container.extra.get("polls", 0) + 1
            if container.extra["polls"] > 1:
                container.status = "finished"
        return {"pending": "IN_PROGRESS", "finished": "FINISHED"}.get(container.status, "PUBLISHED")

    def timeline(self, q: Any, owner: str, headers: dict[str, str]) -> Response:
        """`GET /{user-id}/<edge>`: the read-back listing."""
        posts, limit = self.graph.recent(q, owner)
        fields = field_names(q.get("fields")) or {"id"}
        return answer(
            {
                "data": [self.media_json(p, fields) for p in posts[:limit]],
                "paging": {"cursors": {"before": "QVFI", "after": "QVFI"}},
            },
            headers,
        )


class FacebookSandbox:
    def __init__(self, kit: PlatformKit) -> None:
        self.kit = kit
        self.graph = GraphKit(kit, "pages")
        self.page_tokens: dict[tuple[str, str], str] = {}  # (user token, page id) → page token

    def router(self) -> APIRouter:
        api = APIRouter(prefix="/facebook", tags=["sandbox: facebook"])
        api.add_api_route("/{version}/dialog/oauth", self.dialog, methods=["GET"])
        api.add_api_route("/{version}/oauth/access_token", self.access_token, methods=["GET"])
        api.add_api_route("/{version}/me/accounts", self.accounts, methods=["GET"])
        api.add_api_route("/{version}/{node}", self.read_node, methods=["GET"])
        api.add_api_route("/{version}/{node}", self.delete_node, methods=["DELETE"])
        api.add_api_route("/{version}/{node}/{edge}", self.read_edge, methods=["GET"])
        api.add_api_route("/{version}/{node}/{edge}", self.create_edge, methods=["POST"])
        return api

    def page_of(self, user_id: str) -> str:
        return f"1{user_id}"

    def page_token_for(self, user: Token) -> Token:
        page_id = self.page_of(user.account_id)
        existing = self.kit.store.token(
            "facebook", self.page_tokens.get((user.access_token, page_id), "")
        )
        if existing is not None:
            return existing
        issued = self.kit.store.issue_token("facebook", page_id, user.scopes, PAGE_TOKEN_TTL)
        self.page_tokens[(user.access_token, page_id)] = issued.access_token
        return issued

    def page_json(self, page_id: str, fields: set[str], user: Token | None) -> dict[str, Any]:
        page = self.kit.store.account("facebook", page_id)
        posts = [p for p in self.kit.store.posts_of("facebook", page_id) if p.status != "deleted"]
        data: dict[str, Any] = {"id": page_id}
        values: dict[str, Any] = {
            "name": page.display_name,
            "username": page.username,
            "category": "Brand",
            "link": f"https://www.facebook.com/{page_id}",
            "followers_count": page.followers,
            "fan_count": int(page.followers * 0.9),
            "published_posts_count": len(posts),
        }
        for name in fields or {"name"}:
            if name in values:
                data[name] = values[name]
        if "access_token" in fields and user is not None:
            data["access_token"] = self.page_token_for(user).access_token
        return data

    def manages(self, token: Token, page_id: str) -> bool:
        return token.account_id == page_id or self.page_of(token.account_id) == page_id

    def post_json(self, post: StoredPost, fields: set[str]) -> dict[str, Any]:
        m = post.metrics()
        values: dict[str, Any] = {
            "message": post.text or None,
            "created_time": graph_time(post.created_at),
            "permalink_url": post.url,
            "shares": {"count": m["shares"]},
            "reactions": {"data": [], "summary": {"total_count": m["likes"]}},
            "likes": {"data": [], "summary": {"total_count": m["likes"]}},
            "comments": {
                "data": [],
                "summary": {"order": "ranked", "total_count": m["comments"], "can_comment": True},
            },
            "status_type": post.extra.get("status_type", "mobile_status_update"),
        }
        data: dict[str, Any] = {"id": post.id}
        for name in fields or {"message", "created_time"}:
            if name in values and values[name] is not None:
                data[name] = values[name]
        return data

    def visible_post(self, post_id: str) -> StoredPost | None:
        post = self.kit.store.get_post("facebook", post_id)
        if post is None or post.kind != "post" or post.status == "deleted":
            return None
        return post

    def new_post(
        self, page_id: str, text: str, body: Any, *, status_type: str, extra: dict[str, Any]
    ) -> StoredPost:
        n = self.kit.store.next_id()
        post_id = f"{page_id}_{n}"
        return self.kit.store.add_post(
            StoredPost(
                platform="facebook",
                id=post_id,
                account_id=page_id,
                text=text,
                body=body,
                created_at=datetime.now(UTC),
                url=f"https://www.facebook.com/{page_id}/posts/{n}",
                extra={"status_type": status_type, "object_id": n, **extra},
            )
        )

    def not_found(self, object_id: str, method: str = "get") -> Response:
        return self.graph.not_found(object_id, method)

    # -- Facebook Login -----------------------------------------------------------------------

    async def dialog(self, request: Request, version: str) -> Response:
        bad = self.graph.version_error(version)
        if bad is not None:
            return bad
        if request.query_params.get("response_type", "code") != "code":
            return self.kit.error("validation", "response_type must be code")
        return self.kit.authorize(request)

    async def access_token(self, request: Request, version: str) -> Response:
        bad = self.graph.version_error(version)
        if bad is not None:
            return bad
        q = dict(request.query_params)
        wrong_secret = self.graph.check_secret(q.get("client_secret"))
        if wrong_secret is not None:
            return wrong_secret
        if q.get("grant_type") == "fb_exchange_token":
            current = self.kit.store.token("facebook", q.get("fb_exchange_token", ""))
            if current is None:
                status, body, _ = self.kit.style.render("invalid_token", "")
                return JSONResponse(body, status_code=status)
            issued, error = self.kit.exchange(
                {"grant_type": "refresh_token", "refresh_token": current.refresh_token}
            )
        else:
            issued, error = self.kit.exchange({**q, "grant_type": "authorization_code"})
        if issued is None:
            body = graph_error(
                "This authorization code has expired or has been used."
                if error == "invalid_grant"
                else "Invalid request.",
                code=100,
                subcode=36009 if error == "invalid_grant" else None,
            )
            return JSONResponse(body, status_code=400)
        expires_in = min(LONG_LIVED_EXPIRES_IN, int(issued.expires_at - time.time()))
        return JSONResponse(
            {"access_token": issued.access_token, "token_type": "bearer", "expires_in": expires_in}
        )

    # -- users and pages ------------------------------------------------------------------------

    async def accounts(self, request: Request, version: str) -> Response:
        token, error, headers = await self.graph.guard(request, version, "read")
        if token is None:
            return error  # type: ignore[return-value]
        fields = field_names(request.query_params.get("fields")) or {"name", "access_token"}
        page_id = self.page_of(token.account_id)
        data = [self.page_json(page_id, fields | {"access_token"}, token)]
        if "access_token" not in fields:
            data[0].pop("access_token", None)
        return answer(
            {"data": data, "paging": {"cursors": {"before": "QVFI", "after": "QVFI"}}}, headers
        )

    async def read_node(self, request: Request, version: str, node: str) -> Response:
        token, error, headers = await self.graph.guard(request, version, "read")
        if token is None:
            return error  # type: ignore[return-value]
        fields = field_names(request.query_params.get("fields"))
        if node == "me":
            user = self.kit.store.account("facebook", token.account_id)
            return answer({"id": user.id, "name": user.display_name}, headers)
        if ("facebook", node) in self.kit.store.accounts and self.manages(token, node):
            user = token if token.account_id != node else None
            return answer(self.page_json(node, fields, user), headers)
        post = self.visible_post(node)
        if post is None or not self.manages(token, post.account_id):
            return self.not_found(node)
        return answer(self.post_json(post, fields), headers)

    async def delete_node(self, request: Request, version: str, node: str) -> Response:
        token, error, headers = await self.graph.guard(request, version, "delete")
        if token is None:
            return error  # type: ignore[return-value]
        post = self.visible_post(node)
        if post is None or not self.manages(token, post.account_id):
            return self.not_found(node, "delete")
        post.status = "deleted"
        return answer({"success": True}, headers)

    async def read_edge(self, request: Request, version: str, node: str, edge: str) -> Response:
        token, error, headers = await self.graph.guard(request, version, "read")
        if token is None:
            return error  # type: ignore[return-value]
        q = request.query_params
        if edge in ("posts", "feed", "published_posts"):
            if not self.manages(token, node):
                return self.not_found(node)
            posts, limit = self.graph.recent(q, node)
            fields = field_names(q.get("fields")) or {"message", "created_time"}
            body: dict[str, Any] = {"data": [self.post_json(p, fields) for p in posts[:limit]]}
            if q.get("summary") in ("total_count", "true", "1"):
                body["summary"] = {"total_count": len(posts)}
            return answer(body, headers)
        if edge == "insights":
            post = self.visible_post(node)
            if post is None or not self.manages(token, post.account_id):
                return self.not_found(node)
            m = post.metrics()
            known = {
                "post_impressions": m["impressions"],
                "post_impressions_unique": m["reach"],
                "post_clicks": m["clicks"],
                "post_reactions_by_type_total": m["likes"],
                "post_video_views": m["video_views"],
                "post_engaged_users": m["likes"] + m["comments"] + m["shares"],
            }
            metrics = as_list(q.get("metric"))
            unknown = [name for name in metrics if name not in known]
            if unknown or not metrics:
                return self.kit.error(
                    "validation",
                    "The value must be a valid insights metric"
                    + (f": {unknown[0]}" if unknown else ""),
                )
            return answer({"data": [insight(name, known[name]) for name in metrics]}, headers)
        return self.not_found(f"{node}/{edge}")

    # -- publishing ---------------------------------------------------------------------------

    async def create_edge(self, request: Request, version: str, node: str, edge: str) -> Response:
        params = await graph_params(request)
        publishing = edge in ("feed", "videos") or (
            edge == "photos" and truthy(params.get("published"))
        )
        operation = "publish" if publishing else ("comment" if edge == "comments" else "upload")
        token, error, headers = await self.graph.guard(request, version, operation)
        if token is None:
            return error  # type: ignore[return-value]
        if edge == "comments":
            return await self.comment(request, token, node, params, headers)
        if edge not in ("feed", "photos", "videos"):
            return self.not_found(f"{node}/{edge}", "post")
        if ("facebook", node) not in self.kit.store.accounts or token.account_id != node:
            if self.manages(token, node):
                return self.kit.error(
                    "forbidden",
                    "The user hasn't authorized the application to perform this action: "
                    "publishing to a Page needs a Page access token",
                )
            return self.not_found(node, "post")
        text = str(
            params.get("message") or params.get("caption") or params.get("description") or ""
        )
        if len(text) > MAX_MESSAGE:
            return self.kit.error(
                "validation", f"Param message must be at most {MAX_MESSAGE} characters long."
            )
        if edge == "feed":
            attached = [decode(a) for a in as_list(params.get("attached_media"))]
            fbids = [str(a.get("media_fbid")) if isinstance(a, dict) else str(a) for a in attached]
            photos = [self.kit.store.get_post("facebook", f) for f in fbids]
            if any(p is None or p.kind != "upload" or p.account_id != node for p in photos):
                return self.kit.error("validation", "attached_media: unknown media_fbid")
            if not text.strip() and not params.get("link") and not fbids:
                return self.kit.error("validation", "Missing message or attachment.")
            post = self.new_post(
                node,
                text,
                params,
                status_type="shared_story" if params.get("link") else "mobile_status_update",
                extra={"photos": fbids, "link": params.get("link")},
            )
            for photo in photos:
                if photo is not None:
                    photo.status = "published"
            await self.kit.after_create(request)
            return answer({"id": post.id}, headers)
        if edge == "photos":
            url = params.get("url")
            if not url:
                return self.kit.error("validation", "Photo url (or source) is required.")
            if not truthy(params.get("published")):
                n = self.kit.store.next_id()
                self.kit.store.add_post(
                    StoredPost(
                        platform="facebook",
                        id=n,
                        account_id=node,
                        text="",
                        body=params,
                        created_at=datetime.now(UTC),
                        url=str(url),
                        kind="upload",
                        status="pending",
                    )
                )
                return answer({"id": n}, headers)
            post = self.new_post(node, text, params, status_type="added_photos", extra={"url": url})
            await self.kit.after_create(request)
            return answer({"id": post.extra["object_id"], "post_id": post.id}, headers)
        if not params.get("file_url"):
            return self.kit.error("validation", "file_url (or a source upload) is required.")
        post = self.new_post(node, text, params, status_type="added_video", extra={"video": True})
        await self.kit.after_create(request)
        return answer({"id": post.extra["object_id"]}, headers)

    async def comment(
        self,
        request: Request,
        token: Token,
        node: str,
        params: dict[str, Any],
        headers: dict[str, str],
    ) -> Response:
        post = self.visible_post(node)
        if post is None or not self.manages(token, post.account_id):
            return self.not_found(node, "post")
        message = str(params.get("message") or "")
        if not message.strip():
            return self.kit.error("validation", "Missing message or attachment.")
        n = self.kit.store.next_id()
        self.kit.store.add_post(
            StoredPost(
                platform="facebook",
                id=f"{post.extra.get('object_id', node)}_{n}",
                account_id=post.account_id,
                text=message,
                body=params,
                created_at=datetime.now(UTC),
                url=f"{post.url}?comment_id={n}",
                kind="comment",
                extra={"parent": post.id},
            )
        )
        return answer({"id": f"{post.extra.get('object_id', node)}_{n}"}, headers)


def router(kit: PlatformKit) -> APIRouter:
    kit.style = graph_style(
        rate_code=32, rate_message="(#32) Page request limit reached", buc_type="pages"
    )
    return FacebookSandbox(kit).router()
