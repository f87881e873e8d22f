"""ASGI middleware shared by every service: request ids and latency metrics."""

from __future__ import annotations

import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chorus_runtime import metrics
from chorus_runtime.context import reset_request_id, set_request_id

REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_STATE = "request_id"  # request.state.request_id
_SKIP_METRICS = {"/metrics", "/healthz", "/readyz"}


def _clean_request_id(raw: bytes | None) -> str:
    if raw:
        value = raw.decode("latin-1")[:128]
        if value.isascii() and value.replace("-", "").replace("_", "").replace(".", "").isalnum():
            return value
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Accepts a sane `X-Request-ID` (or makes one), exposes it to logs/errors, echoes it,
    and records latency per route template."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = _clean_request_id(headers.get(REQUEST_ID_HEADER))
        # Also in the scope: a 500 is answered by Starlette's outermost middleware, outside
        # this one (and its context), so the error handler reads the id from here.
        scope.setdefault("state", {})[REQUEST_ID_STATE] = request_id
        token = set_request_id(request_id)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            reset_request_id(token)
            path = scope.get("path", "")
            if path not in _SKIP_METRICS:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                metrics.HTTP_LATENCY.labels(
                    self.service, scope.get("method", ""), template, str(status["code"])
                ).observe(time.perf_counter() - started)
