"""LinkedIn (versioned REST API, Posts API), as the connector uses it.

OAuth 2.0 (`/oauth/v2/authorization`, `/oauth/v2/accessToken` for codes and refresh tokens),
`/v2/userinfo` (OpenID Connect), `/rest/memberFollowersCount?q=me`, `POST /rest/posts` (201 with
the post URN in `x-restli-id`), `GET /rest/posts?q=author` (finder, read-back),
`GET|DELETE /rest/posts/{urn}`, images (`/rest/images?action=initializeUpload` → `PUT` the
bytes to the upload URL → `GET /rest/images/{urn}`), videos (`/rest/videos?action=
initializeUpload` → `PUT` each part, answered with an `ETag` → `?action=finalizeUpload`),
`/rest/socialActions/{urn}/comments` and `/rest/memberCreatorPostAnalytics?q=entity`.

Every `/rest` call needs `LinkedIn-Version: YYYYMM` and `X-Restli-Protocol-Version: 2.0.0`.
Errors are `{"status","serviceErrorCode","code","message"}`; validation fails with 422.
Throttling is a bare 429 (LinkedIn documents daily quotas that reset at midnight UTC and sends
no rate-limit headers); answers carry `x-li-uuid` and, for created entities, `x-restli-id`.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chorus_sandbox.kit import ErrorStyle, PlatformKit, token_response
from chorus_sandbox.store import StoredPost, Token

MAX_COMMENTARY = 3000
PART_SIZE = 4 * 1024 * 1024
MIN_VERSION = "202401"
VERSION = re.compile(r"\d{6}(\.\d{2})?")
METRIC_TYPE = "com.linkedin.adsexternalapi.memberanalytics.v1.CreatorPostAnalyticsMetricTypeV1"
_ESCAPED = re.compile(r"\\([|{}@\[\]()<>#\\*_~])")
_HASHTAG = re.compile(r"\{hashtag\|\\?#\|([^}]*)\}")


def render(kind: str, message: str) -> tuple[int, Any, dict[str, str]]:
    if kind == "rate_limit":
        body = {
            "status": 429,
            "serviceErrorCode": 101,
            "code": "TOO_MANY_REQUESTS",
            "message": "Resource level throttle APPLICATION DAY limit for calls to this resource "
            "is reached.",
        }
        return 429, body, {}
    if kind == "server_error":
        return 503, {"status": 503, "message": "Service Unavailable"}, {}
    if kind == "token_expired":
        body = {
            "status": 401,
            "serviceErrorCode": 65602,
            "code": "EXPIRED_ACCESS_TOKEN",
            "message": "The token used in the request has expired",
        }
        return 401, body, {}
    if kind == "invalid_token":
        body = {
            "status": 401,
            "serviceErrorCode": 65600,
            "code": "INVALID_ACCESS_TOKEN",
            "message": "Invalid access token",
        }
        return 401, body, {}
    if kind == "not_found":
        return 404, {"status": 404, "code": "NOT_FOUND", "message": message}, {}
    if kind == "forbidden":
        body = {"status": 403, "serviceErrorCode": 100, "code": "ACCESS_DENIED", "message": message}
        return 403, body, {}
    return 422, {"status": 422, "code": "UNPROCESSABLE_ENTITY", "message": message}, {}


def little_text(commentary: str) -> str:
    """LinkedIn's "little text" as members see it: hashtag templates and escapes resolved."""
    return _ESCAPED.sub(r"\1", _HASHTAG.sub(lambda m: "#" + m.group(1), commentary))


def millis(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


class LinkedInSandbox:
    def __init__(self, kit: PlatformKit) -> None:
        self.kit = kit

    def router(self) -> APIRouter:
        api = APIRouter(prefix="/linkedin", tags=["sandbox: linkedin"])
        api.add_api_route("/oauth/v2/authorization", self.authorize, methods=["GET"])
        api.add_api_route("/oauth/v2/accessToken", self.access_token, methods=["POST"])
        api.add_api_route("/v2/userinfo", self.userinfo, methods=["GET"])
        api.add_api_route("/rest/memberFollowersCount", self.followers, methods=["GET"])
        api.add_api_route("/rest/posts", self.create_post, methods=["POST"])
        api.add_api_route("/rest/posts", self.find_posts, methods=["GET"])
        api.add_api_route("/rest/posts/{urn}", self.get_post, methods=["GET"])
        api.add_api_route("/rest/posts/{urn}", self.delete_post, methods=["DELETE"])
        api.add_api_route("/rest/images", self.images_action, methods=["POST"])
        api.add_api_route("/rest/images/{urn}", self.get_image, methods=["GET"])
        api.add_api_route("/rest/videos", self.videos_action, methods=["POST"])
        api.add_api_route("/rest/videos/{urn}", self.get_video, methods=["GET"])
        api.add_api_route("/dms-uploads/{asset}", self.upload_bytes, methods=["PUT"])
        api.add_api_route("/rest/socialActions/{urn}/comments", self.comment, methods=["POST"])
        api.add_api_route("/rest/memberCreatorPostAnalytics", self.post_analytics, methods=["GET"])
        return api

    # -- helpers -------------------------------------------------------------------------------

    def answer(self, body: Any, status: int = 200, **headers: str) -> Response:
        headers = {"x-li-uuid": secrets.token_urlsafe(12), **headers}
        if body is None:
            return Response(status_code=status, headers=headers)
        return JSONResponse(body, status_code=status, headers=headers)

    async def rest(self, request: Request, operation: str) -> tuple[Token | None, Response | None]:
        """Versioned-API preconditions, then faults and the token."""
        version = request.headers.get("linkedin-version", "")
        if not version:
            return None, self.kit.error(
                "validation",
                "A version must be present. Please specify a version by adding "
                "the LinkedIn-Version header.",
            )
        if not VERSION.fullmatch(version) or version[:6] < MIN_VERSION:
            body = {
                "status": 426,
                "code": "NONEXISTENT_VERSION",
                "message": f"Requested version {version} is not active",
            }
            return None, JSONResponse(body, status_code=426)
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            return None, self.kit.error("validation", "X-Restli-Protocol-Version 2.0.0 is required")
        return await self.kit.guard(request, operation)

    @staticmethod
    def person(token: Token) -> str:
        return f"urn:li:person:{token.account_id}"

    def own(self, token: Token, urn: str, kind: str = "post") -> StoredPost | None:
        post = self.kit.store.get_post("linkedin", unquote(urn))
        if post is None or post.kind != kind or post.status == "deleted":
            return None
        return post if post.account_id == token.account_id else None

    def post_json(self, post: StoredPost) -> dict[str, Any]:
        body = dict(post.body)
        created = millis(post.created_at)
        return {
            **body,
            "id": post.id,
            "createdAt": created,
            "lastModifiedAt": created,
            "publishedAt": created,
        }

    # -- OAuth ---------------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        if request.query_params.get("response_type") != "code":
            return JSONResponse(
                {"error": "invalid_request", "error_description": "response_type must be code"},
                status_code=400,
            )
        return self.kit.authorize(request)

    async def access_token(self, request: Request) -> Response:
        form = dict(await request.form())
        if form.get("client_secret") != self.kit.settings.app_secret or not form.get("client_id"):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                status_code=401,
            )
        issued, error = self.kit.exchange(form)
        if issued is None:
            description = (
                "Unable to retrieve access token: appid/redirect uri/code verifier does not "
                "match authorization code. Or authorization code expired."
                if form.get("grant_type") == "authorization_code"
                else "The provided refresh token is invalid or has been revoked"
            )
            return JSONResponse(
                {"error": error or "invalid_request", "error_description": description},
                status_code=400,
            )
        body = token_response(issued, refresh_token_expires_in=31536000)
        body.pop("token_type", None)
        return JSONResponse(body)

    # -- members -------------------------------------------------------------------------------

    async def userinfo(self, request: Request) -> Response:
        token, error = await self.kit.guard(request, "read")
        if token is None:
            return error  # type: ignore[return-value]
        account = self.kit.store.account("linkedin", token.account_id)
        given, _, family = account.display_name.partition(" ")
        return self.answer(
            {
                "sub": account.id,
                "name": account.display_name,
                "given_name": given,
                "family_name": family,
                "picture": f"https://media.licdn.sandbox/{account.id}.jpg",
                "locale": {"country": "US", "language": "en"},
                "email": f"{account.username}@example.com",
                "email_verified": True,
            }
        )

    async def followers(self, request: Request) -> Response:
        token, error = await self.rest(request, "read")
        if token is None:
            return error  # type: ignore[return-value]
        if request.query_params.get("q") != "me":
            return self.kit.error("validation", "q=me is required")
        account = self.kit.store.account("linkedin", token.account_id)
        return self.answer(
            {
                "elements": [{"memberFollowersCount": account.followers}],
                "paging": {"count": 10, "start": 0, "links": []},
            }
        )

    # -- posts -----------------------------------------------------------------------------

    def validate_post(self, token: Token, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "ERROR :: / :: the request body must be a JSON object"
        if body.get("author") != self.person(token):
            return f"ERROR :: /author :: must be the authenticated member {self.person(token)}"
        for field in ("visibility", "distribution", "lifecycleState"):
            if field not in body:
                return f"ERROR :: /{field} :: field is required but not found and has no default"
        commentary = body.get("commentary", "")
        if not isinstance(commentary, str):
            return "ERROR :: /commentary :: must be a string"
        if len(commentary) > MAX_COMMENTARY:
            return (
                f'ERROR :: /commentary :: length of "{len(commentary)}" exceeds the maximum '
                f"allowed of {MAX_COMMENTARY}"
            )
        content = body.get("content") or {}
        ids = [(content.get("media") or {}).get("id")] if content.get("media") else []
        ids += [i.get("id") for i in (content.get("multiImage") or {}).get("images") or []]
        for urn in ids:
            kind = "image" if str(urn).startswith("urn:li:image:") else "video"
            asset = self.own(token, str(urn), kind)
            if asset is None or asset.status != "available":
                return f"ERROR :: /content :: {urn} is not an available {kind} of the author"
        if not commentary.strip() and not content:
            return "ERROR :: /commentary :: a post needs commentary or content"
        return None

    async def create_post(self, request: Request) -> Response:
        token, error = await self.rest(request, "publish")
        if token is None:
            return error  # type: ignore[return-value]
        try:
            body = await request.json()
        except ValueError:
            body = None
        problem = self.validate_post(token, body)
        if problem:
            return self.kit.error("validation", problem)
        n = self.kit.store.next_id()
        urn = f"urn:li:share:{n}"
        content = body.get("content") or {}
        self.kit.store.add_post(
            StoredPost(
                platform="linkedin",
                id=urn,
                account_id=token.account_id,
                text=little_text(body.get("commentary", "")),
                body=body,
                created_at=datetime.now(UTC),
                url=f"https://www.linkedin.com/feed/update/{urn}/",
                extra={
                    "video": str((content.get("media") or {}).get("id", "")).startswith(
                        "urn:li:video:"
                    )
                },
            )
        )
        await self.kit.after_create(request)
        return self.answer(None, 201, **{"x-restli-id": urn, "x-linkedin-id": urn})

    async def find_posts(self, request: Request) -> Response:
        token, error = await self.rest(request, "read")
        if token is None:
            return error  # type: ignore[return-value]
        q = request.query_params
        if q.get("q") != "author" or request.headers.get("x-restli-method", "").upper() != "FINDER":
            return self.kit.error("validation", "q=author with X-RestLi-Method: FINDER is required")
        author = unquote(q.get("author", ""))
        if author != self.person(token):
            return self.kit.error(
                "forbidden", f"Not enough permissions to access: posts of {author}"
            )
        start = int(q["start"]) if q.get("start", "").isdigit() else 0
        count = min(100, int(q["count"])) if q.get("count", "").isdigit() else 10
        posts = [
            p
            for p in self.kit.store.posts_of("linkedin", token.account_id)
            if p.status != "deleted"
        ]
        posts.sort(key=lambda p: p.created_at, reverse=True)
        page = posts[start : start + count]
        return self.answer(
            {
                "elements": [self.post_json(p) for p in page],
                "paging": {"start": start, "count": count, "links": [], "total": len(posts)},
            }
        )

    async def get_post(self, request: Request, urn: str) -> Response:
        token, error = await self.rest(request, "read")
        if token is None:
            return error  # type: ignore[return-value]
        post = self.own(token, urn)
        if post is None:
            return self.kit.error("not_found", f"Post {unquote(urn)} does not exist")
        return self.answer(self.post_json(post))

    async def delete_post(self, request: Request, urn: str) -> Response:
        token, error = await self.rest(request, "delete")
        if token is None:
            return error  # type: ignore[return-value]
        post = self.own(token, urn)
        if post is None:
            return self.kit.error("not_found", f"Post {unquote(urn)} does not exist")
        post.status = "deleted"
        return self.answer(None, 204)

    async def comment(self, request: Request, urn: str) -> Response:
        token, error = await self.rest(request, "comment")
        if token is None:
            return error  # type: ignore[return-value]
        post = self.own(token, urn)
        try:
            body = await request.json()
        except ValueError:
            body = {}
        text = ((body or {}).get("message") or {}).get("text", "")
        if post is None:
            return self.kit.error("not_found", f"Post {unquote(urn)} does not exist")
        if body.get("actor") != self.person(token) or not text.strip():
            return self.kit.error("validation", "ERROR :: /message/text :: actor and text required")
        n = self.kit.store.next_id()
        comment_urn = f"urn:li:comment:({post.id},{n})"
        self.kit.store.add_post(
            StoredPost(
                platform="linkedin",
                id=comment_urn,
                account_id=token.account_id,
                text=text,
                body=body,
                created_at=datetime.now(UTC),
                url=post.url,
                kind="comment",
                extra={"parent": post.id},
            )
        )
        return self.answer({**body, "id": n, "object": post.id}, 201, **{"x-restli-id": n})

    # -- media ---------------------------------------------------------------------------------

    def upload_url(self, request: Request, asset: str) -> str:
        return f"{str(request.base_url).rstrip('/')}/linkedin/dms-uploads/{quote(asset, safe='')}"

    def new_asset(self, token: Token, urn: str, kind: str, size: int | None) -> StoredPost:
        return self.kit.store.add_post(
            StoredPost(
                platform="linkedin",
                id=urn,
                account_id=token.account_id,
                text="",
                body={},
                created_at=datetime.now(UTC),
                url="",
                kind=kind,
                status="waiting_upload",
                extra={"size": size, "received": {}, "etags": []},
            )
        )

    async def images_action(self, request: Request) -> Response:
        token, error = await self.rest(request, "upload")
        if token is None:
            return error  # type: ignore[return-value]
        if request.query_params.get("action") != "initializeUpload":
            return self.kit.error("validation", "action=initializeUpload is required")
        body = await request.json()
        owner = ((body or {}).get("initializeUploadRequest") or {}).get("owner")
        if owner != self.person(token):
            return self.kit.error(
                "validation", "ERROR :: /initializeUploadRequest/owner :: invalid"
            )
        urn = f"urn:li:image:D4E10AQ{secrets.token_hex(8)}"
        self.new_asset(token, urn, "image", None)
        return self.answer(
            {
                "value": {
                    "uploadUrlExpiresAt": millis(datetime.now(UTC)) + 86_400_000,
                    "uploadUrl": self.upload_url(request, urn),
                    "image": urn,
                }
            }
        )

    async def videos_action(self, request: Request) -> Response:
        token, error = await self.rest(request, "upload")
        if token is None:
            return error  # type: ignore[return-value]
        action = request.query_params.get("action")
        body = await request.json()
        if action == "initializeUpload":
            init = (body or {}).get("initializeUploadRequest") or {}
            size = init.get("fileSizeBytes")
            if init.get("owner") != self.person(token) or not isinstance(size, int) or size <= 0:
                return self.kit.error(
                    "validation", "ERROR :: /initializeUploadRequest :: owner and fileSizeBytes"
                )
            urn = f"urn:li:video:D4E10AQ{secrets.token_hex(8)}"
            self.new_asset(token, urn, "video", size)
            instructions = [
                {
                    "uploadUrl": f"{self.upload_url(request, urn)}?part={i}",
                    "firstByte": start,
                    "lastByte": min(size, start + PART_SIZE) - 1,
                }
                for i, start in enumerate(range(0, size, PART_SIZE))
            ]
            return self.answer(
                {
                    "value": {
                        "uploadUrlsExpireAt": millis(datetime.now(UTC)) + 86_400_000,
                        "video": urn,
                        "uploadInstructions": instructions,
                        "uploadToken": "",
                    }
                }
            )
        if action == "finalizeUpload":
            final = (body or {}).get("finalizeUploadRequest") or {}
            video = self.own(token, str(final.get("video", "")), "video")
            if video is None:
                return self.kit.error("not_found", f"Video {final.get('video')} does not exist")
            received = sum(video.extra["received"].values())
            if (
                final.get("uploadedPartIds") != video.extra["etags"]
                or received != video.extra["size"]
            ):
                return self.kit.error(
                    "validation", "ERROR :: /finalizeUploadRequest/uploadedPartIds :: mismatch"
                )
            video.status = "available"
            return self.answer(None, 200)
        return self.kit.error("validation", "action must be initializeUpload or finalizeUpload")

    async def upload_bytes(self, request: Request, asset: str) -> Response:
        token, error = await self.kit.guard(request, "upload")
        if token is None:
            return error  # type: ignore[return-value]
        urn = unquote(asset)
        kind = "image" if urn.startswith("urn:li:image:") else "video"
        target = self.own(token, urn, kind)
        if target is None:
            return self.kit.error("not_found", f"No upload for {urn}")
        data = await request.body()
        part = request.query_params.get("part", "0")
        target.extra["received"][part] = len(data)
        if kind == "image":
            target.status = "available"
            return self.answer(None, 201)
        etag = f'"{secrets.token_hex(8)}"'
        target.extra["etags"].append(etag)
        return self.answer(None, 200, etag=etag)

    def asset_json(self, asset: StoredPost) -> dict[str, Any]:
        return {
            "id": asset.id,
            "owner": f"urn:li:person:{asset.account_id}",
            "status": asset.status.upper(),
        }

    async def get_image(self, request: Request, urn: str) -> Response:
        token, error = await self.rest(request, "read")
        if token is None:
            return error  # type: ignore[return-value]
        image = self.own(token, urn, "image")
        if image is None:
            return self.kit.error("not_found", f"Image {unquote(urn)} does not exist")
        return self.answer(self.asset_json(image))

    async def get_video(self, request: Request, urn: str) -> Response:
        token, error = await self.rest(request, "read")
        if token is None:
            return error  # type: ignore[return-value]
        video = self.own(token, urn, "video")
        if video is None:
            return self.kit.error("not_found", f"Video {unquote(urn)} does not exist")
        return self.answer(self.asset_json(video))

    # -- analytics -----------------------------------------------------------------------------

    async def post_analytics(self, request: Request) -> Response:
        token, error = await self.rest(request, "read")
        if token is None:
            return error  # type: ignore[return-value]
        q = request.query_params
        m = re.fullmatch(r"\((share|ugc|post):(.+)\)", q.get("entity", ""))
        if q.get("q") != "entity" or m is None:
            return self.kit.error("validation", "q=entity&entity=(share:{urn}) is required")
        post = self.own(token, m.group(2))
        if post is None:
            return self.kit.error("not_found", f"Post {unquote(m.group(2))} does not exist")
        metrics = post.metrics()
        values = {
            "IMPRESSION": metrics["impressions"],
            "MEMBERS_REACHED": metrics["reach"],
            "RESHARE": metrics["shares"],
            "REACTION": metrics["likes"],
            "COMMENT": metrics["comments"],
            "POST_SAVE": metrics["saves"],
            "POST_SEND": metrics["shares"] // 3,
            "LINK_CLICKS": metrics["clicks"],
        }
        query_type = q.get("queryType", "")
        if query_type not in values:
            return self.kit.error("validation", f"queryType must be one of {', '.join(values)}")
        return self.answer(
            {
                "elements": [
                    {
                        "count": values[query_type],
                        "metricType": {METRIC_TYPE: query_type},
                        "targetEntity": {m.group(1): post.id},
                    }
                ],
                "paging": {"count": 10, "start": 0, "links": []},
            }
        )


def router(kit: PlatformKit) -> APIRouter:
    kit.style = ErrorStyle(render)
    return LinkedInSandbox(kit).router()
