"""Simulated YouTube (Data API v3 and Google OAuth) under `/youtube`.

Paths: `GET /o/oauth2/v2/auth` (Google's consent page: redirects straight back with a
code), `POST /oauth2/v4/token` (also `/token`), `GET /youtube/v3/channels?mine=true`,
resumable upload (`POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status`
answers a session URL in `Location`; `PUT` of the bytes to it creates the video),
`GET /youtube/v3/videos?id=…&part=…`, `DELETE /youtube/v3/videos?id=…`,
`GET /youtube/v3/playlistItems?playlistId=UU…` (the channel's uploads, for read-back).

Errors are Google's `{"error": {"code", "message", "errors": [{"message", "domain",
"reason"}], "status"}}`. YouTube sends no rate-limit headers; a rate-limited call is a 403
`rateLimitExceeded` with `Retry-After`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chorus_sandbox.kit import ErrorStyle, PlatformKit, token_response
from chorus_sandbox.store import PlatformAccount, StoredPost

RETRY_AFTER_SECONDS = 30
MAX_TITLE = 100
MAX_DESCRIPTION_BYTES = 5000
PRIVACY = ("public", "private", "unlisted")

# kind → (status, reason, domain, message, status name)
_ERRORS = {
    "rate_limit": (
        403,
        "rateLimitExceeded",
        "youtube.quota",
        "Rate Limit Exceeded",
        "PERMISSION_DENIED",
    ),
    "server_error": (503, "backendError", "global", "Backend Error", "UNAVAILABLE"),
    "token_expired": (
        401,
        "authError",
        "global",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.",
        "UNAUTHENTICATED",
    ),
    "not_found": (
        404,
        "videoNotFound",
        "youtube.video",
        "The video could not be found.",
        "NOT_FOUND",
    ),
    "validation": (400, "badRequest", "global", "Bad Request", "INVALID_ARGUMENT"),
    "forbidden": (403, "forbidden", "youtube.video", "Forbidden", "PERMISSION_DENIED"),
}
_ERRORS["invalid_token"] = _ERRORS["token_expired"]


def google_error(
    status: int, reason: str, message: str, *, domain: str = "youtube.video", name: str = ""
) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": name or "INVALID_ARGUMENT",
        }
    }


def channel_id(account: PlatformAccount) -> str:
    return "UC" + account.id.rjust(22, "0")[-22:]


def uploads_playlist(account: PlatformAccount) -> str:
    return "UU" + channel_id(account)[2:]


class YouTubeSandbox:
    def __init__(self, kit: PlatformKit) -> None:
        self.kit = kit
        self.store = kit.store
        self.sessions: dict[str, dict[str, Any]] = {}  # upload_id → metadata of the upload
        kit.style = ErrorStyle(self.render)

    def router(self) -> APIRouter:
        r = APIRouter(prefix="/youtube", tags=["sandbox: youtube"])
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", "/o/oauth2/v2/auth", self.authorize),
            ("POST", "/oauth2/v4/token", self.token),
            ("POST", "/token", self.token),
            ("GET", "/youtube/v3/channels", self.channels),
            ("POST", "/upload/youtube/v3/videos", self.start_upload),
            ("PUT", "/upload/youtube/v3/videos", self.upload),
            ("GET", "/youtube/v3/videos", self.videos),
            ("DELETE", "/youtube/v3/videos", self.delete_video),
            ("GET", "/youtube/v3/playlistItems", self.playlist_items),
        ]
        for method, path, endpoint in routes:
            r.add_api_route(path, endpoint, methods=[method])
        return r

    # -- rendering ---------------------------------------------------------------------------

    def render(self, kind: str, message: str) -> tuple[int, Any, dict[str, str]]:
        status, reason, domain, default, name = _ERRORS.get(kind, _ERRORS["validation"])
        text = message if kind in ("validation", "not_found") and message else default
        headers: dict[str, str] = {}
        if kind == "rate_limit":
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        if status == 401:
            headers["WWW-Authenticate"] = (
                'Bearer realm="https://accounts.google.com/", error="invalid_token"'
            )
        return status, google_error(status, reason, text, domain=domain, name=name), headers

    def fail(self, status: int, reason: str, message: str) -> Response:
        return JSONResponse(google_error(status, reason, message), status_code=status)

    def accounts(self) -> list[PlatformAccount]:
        return [a for (p, _), a in self.store.accounts.items() if p == self.kit.platform]

    def live(self, video_id: str) -> StoredPost | None:
        post = self.store.get_post(self.kit.platform, video_id)
        return post if post is not None and post.status != "deleted" else None

    def video_json(self, post: StoredPost, parts: set[str]) -> dict[str, Any]:
        account = self.store.account(self.kit.platform, post.account_id)
        body: dict[str, Any] = {
            "kind": "youtube#video",
            "etag": secrets.token_urlsafe(20),
            "id": post.id,
        }
        if "snippet" in parts:
            snippet = post.body["snippet"]
            body["snippet"] = {
                "publishedAt": _iso(post.created_at),
                "channelId": channel_id(account),
                "title": snippet.get("title", ""),
                "description": snippet.get("description", ""),
                "thumbnails": {"default": {"url": f"https://i.ytimg.com/vi/{post.id}/default.jpg"}},
                "channelTitle": account.display_name,
                "tags": snippet.get("tags", []),
                "categoryId": str(snippet.get("categoryId", "22")),
                "liveBroadcastContent": "none",
            }
        if "status" in parts:
            status = post.body.get("status") or {}
            body["status"] = {
                "uploadStatus": "processed",
                "privacyStatus": status.get("privacyStatus", "public"),
                "license": "youtube",
                "embeddable": True,
                "publicStatsViewable": True,
                "madeForKids": bool(status.get("selfDeclaredMadeForKids")),
            }
        if "statistics" in parts:
            metrics = post.metrics()
            body["statistics"] = {
                "viewCount": str(metrics["video_views"]),
                "likeCount": str(metrics["likes"]),
                "favoriteCount": "0",
                "commentCount": str(metrics["comments"]),
            }
        return body

    # -- OAuth -------------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        if request.query_params.get("response_type") != "code":
            return JSONResponse(
                {"error": "unsupported_response_type", "error_description": "response_type"},
                status_code=400,
            )
        return self.kit.authorize(request)

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        if not form.get("client_id") or not form.get("client_secret"):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "The OAuth client was not found."},
                status_code=401,
            )
        issued, problem = self.kit.exchange(form)
        if issued is None:
            return JSONResponse(
                {"error": problem, "error_description": "Bad Request"}, status_code=400
            )
        return JSONResponse(token_response(issued, token_type="Bearer"))

    # -- channel -----------------------------------------------------------------------------

    async def channels(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "profile")
        if problem:
            return problem
        assert token is not None
        q = request.query_params
        if q.get("mine") != "true":
            return self.fail(
                400,
                "missingRequiredParameter",
                "No filter selected. Expected one of: mine, id, forHandle.",
            )
        account = self.store.account(self.kit.platform, token.account_id)
        parts = set((q.get("part") or "").split(","))
        videos = [
            p for p in self.store.posts_of(self.kit.platform, account.id) if p.status != "deleted"
        ]
        item: dict[str, Any] = {"kind": "youtube#channel", "id": channel_id(account)}
        if "snippet" in parts:
            item["snippet"] = {
                "title": account.display_name,
                "description": "",
                "customUrl": f"@{account.username}",
                "publishedAt": "2020-01-01T00:00:00Z",
            }
        if "statistics" in parts:
            item["statistics"] = {
                "viewCount": str(sum(v.metrics()["video_views"] for v in videos)),
                "subscriberCount": str(account.followers),
                "hiddenSubscriberCount": False,
                "videoCount": str(len(videos)),
            }
        if "contentDetails" in parts:
            item["contentDetails"] = {"relatedPlaylists": {"uploads": uploads_playlist(account)}}
        return JSONResponse(
            {
                "kind": "youtube#channelListResponse",
                "pageInfo": {"totalResults": 1, "resultsPerPage": 5},
                "items": [item],
            }
        )

    # -- upload ------------------------------------------------------------------------------

    async def start_upload(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "upload")
        if problem:
            return problem
        assert token is not None
        q = request.query_params
        if q.get("uploadType") != "resumable":
            return self.fail(400, "badRequest", "Only resumable uploads are simulated.")
        try:
            metadata = await request.json()
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict):
            return self.fail(400, "parseError", "Parse Error")
        invalid = _invalid_metadata(metadata)
        if invalid:
            return self.fail(400, *invalid)
        upload_id = secrets.token_urlsafe(24)
        self.sessions[upload_id] = {
            "account_id": token.account_id,
            "metadata": metadata,
            "length": request.headers.get("x-upload-content-length"),
            "mime": request.headers.get("x-upload-content-type", "video/*"),
        }
        location = request.url.include_query_params(upload_id=upload_id)
        return Response(status_code=200, headers={"Location": str(location)})

    async def upload(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "publish")
        if problem:
            return problem
        assert token is not None
        session = self.sessions.get(request.query_params.get("upload_id", ""))
        if session is None or session["account_id"] != token.account_id:
            return self.fail(404, "notFound", "The upload session does not exist or has expired.")
        data = await request.body()
        mime = request.headers.get("content-type", session["mime"])
        if not data:
            return self.fail(
                400, "mediaBodyRequired", "The request does not include the video content."
            )
        if not (mime.startswith("video/") or mime == "application/octet-stream"):
            return self.fail(400, "invalidContentType", f"Media type '{mime}' is not supported.")
        self.sessions.pop(request.query_params["upload_id"], None)
        metadata = session["metadata"]
        video_id = secrets.token_urlsafe(8)[:11]
        snippet = metadata.get("snippet") or {}
        post = self.store.add_post(
            StoredPost(
                platform=self.kit.platform,
                id=video_id,
                account_id=token.account_id,
                text=snippet.get("description", ""),
                body={
                    "snippet": snippet,
                    "status": metadata.get("status") or {"privacyStatus": "public"},
                    "bytes": len(data),
                    "mimeType": mime,
                },
                created_at=datetime.now(UTC),
                url=f"https://www.youtube.com/watch?v={video_id}",
                extra={"video": True, "title": snippet.get("title", "")},
            )
        )
        await self.kit.after_create(request)
        return JSONResponse(self.video_json(post, {"snippet", "status"}))

    # -- videos ------------------------------------------------------------------------------

    async def videos(self, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "metrics")
        if problem:
            return problem
        q = request.query_params
        parts = set((q.get("part") or "").split(","))
        ids = [i for i in (q.get("id") or "").split(",") if i]
        if not ids:
            return self.fail(
                400,
                "missingRequiredParameter",
                "No filter selected. Expected one of: id, chart, myRating.",
            )
        found = [p for p in (self.live(i) for i in ids[:50]) if p is not None]
        return JSONResponse(
            {
                "kind": "youtube#videoListResponse",
                "pageInfo": {"totalResults": len(found), "resultsPerPage": len(found)},
                "items": [self.video_json(p, parts) for p in found],
            }
        )

    async def delete_video(self, request: Request) -> Response:
        token, problem = await self.kit.guard(request, "delete")
        if problem:
            return problem
        assert token is not None
        post = self.live(request.query_params.get("id", ""))
        if post is None:
            return self.kit.error(
                "not_found",
                "The video that you are trying to delete cannot be found. Check the value of "
                "the id parameter in the request.",
            )
        if post.account_id != token.account_id:
            return self.fail(
                403, "forbidden", "The video that you are trying to delete cannot be deleted."
            )
        post.status = "deleted"
        return Response(status_code=204)

    async def playlist_items(self, request: Request) -> Response:
        _, problem = await self.kit.guard(request, "read")
        if problem:
            return problem
        q = request.query_params
        playlist = q.get("playlistId", "")
        account = next((a for a in self.accounts() if uploads_playlist(a) == playlist), None)
        if account is None:
            return self.fail(
                404,
                "playlistNotFound",
                "The playlist identified with the request's playlistId parameter cannot be found.",
            )
        limit = max(0, min(int(q.get("maxResults") or 5), 50))
        videos = [
            p for p in self.store.posts_of(self.kit.platform, account.id) if p.status != "deleted"
        ]
        videos.sort(key=lambda p: p.created_at, reverse=True)
        items = []
        for position, post in enumerate(videos[:limit]):
            snippet = post.body["snippet"]
            published = _iso(post.created_at)
            items.append(
                {
                    "kind": "youtube#playlistItem",
                    "id": secrets.token_urlsafe(12),
                    "snippet": {
                        "publishedAt": published,
                        "channelId": channel_id(account),
                        "title": snippet.get("title", ""),
                        "description": snippet.get("description", ""),
                        "playlistId": playlist,
                        "position": position,
                        "resourceId": {"kind": "youtube#video", "videoId": post.id},
                    },
                    "contentDetails": {"videoId": post.id, "videoPublishedAt": published},
                }
            )
        return JSONResponse(
            {
                "kind": "youtube#playlistItemListResponse",
                "pageInfo": {"totalResults": len(videos), "resultsPerPage": limit},
                "items": items,
            }
        )


def router(kit: PlatformKit) -> APIRouter:
    return YouTubeSandbox(kit).router()


def _invalid_metadata(metadata: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, message) of YouTube's validation of a video's metadata, or None."""
    snippet = metadata.get("snippet")
    if not isinstance(snippet, dict):
        return "invalidTitle", "The request metadata specifies an invalid or empty video title."
    title = snippet.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE or "<" in title:
        return "invalidTitle", "The request metadata specifies an invalid or empty video title."
    description = snippet.get("description") or ""
    if len(str(description).encode()) > MAX_DESCRIPTION_BYTES or "<" in str(description):
        return "invalidDescription", "The request metadata specifies an invalid video description."
    tags = snippet.get("tags") or []
    if not isinstance(tags, list) or sum(len(str(t)) for t in tags) > 500:
        return "invalidTags", "The request metadata specifies invalid video keywords."
    status = metadata.get("status") or {}
    if status.get("privacyStatus", "public") not in PRIVACY:
        return "invalidVideoMetadata", "The request metadata is invalid."
    return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
