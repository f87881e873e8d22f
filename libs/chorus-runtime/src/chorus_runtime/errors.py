"""The one error format (design.md §5) and the exceptions that produce it.

Body: {"error": {"code", "message", "details", "timestamp", "requestId"}}. Handlers raise
`ChorusError` subclasses; nothing else (and never a stack trace) reaches a client.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chorus_runtime.context import current_request_id, reset_request_id, set_request_id

log = logging.getLogger("chorus.errors")


class ChorusError(Exception):
    status_code = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code


class ValidationFailed(ChorusError):
    status_code = 422
    code = "VALIDATION_ERROR"


class Unauthorized(ChorusError):
    status_code = 401
    code = "UNAUTHORIZED"

    def __init__(self, message: str = "authentication required", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kw)


class Forbidden(ChorusError):
    status_code = 403
    code = "FORBIDDEN"


class NotFound(ChorusError):
    status_code = 404
    code = "NOT_FOUND"


class Conflict(ChorusError):
    status_code = 409
    code = "CONFLICT"


class AlreadyExists(Conflict):
    code = "ALREADY_EXISTS"


class PayloadTooLarge(ChorusError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class RateLimited(ChorusError):
    status_code = 429
    code = "RATE_LIMIT_EXCEEDED"


class QuotaExceeded(ChorusError):
    status_code = 403
    code = "QUOTA_EXCEEDED"


class PlatformApiError(ChorusError):
    status_code = 502
    code = "PLATFORM_API_ERROR"


class ServiceUnavailable(ChorusError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"


_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "requestId": current_request_id(),
        }
    }


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        out.append(
            {"field": ".".join(loc), "message": err.get("msg", "invalid"), "type": err.get("type")}
        )
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ChorusError)
    async def _chorus(_: Request, exc: ChorusError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(400, "INVALID_JSON", "request body is not valid JSON", details)
        return error_response(422, "VALIDATION_ERROR", "request validation failed", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "ERROR")
        message = exc.detail if isinstance(exc.detail, str) else code.lower().replace("_", " ")
        return error_response(exc.status_code, code, message, None, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this in its outermost middleware, after RequestContextMiddleware has
        # left: restore the request id it stored in the scope, and echo it ourselves.
        request_id = current_request_id() or getattr(request.state, "request_id", None)
        token = set_request_id(request_id)
        try:
            log.exception("unhandled error", exc_info=exc)
            headers = {"X-Request-ID": request_id} if request_id else None
            return error_response(500, "INTERNAL_ERROR", "internal error", headers=headers)
        finally:
            reset_request_id(token)
