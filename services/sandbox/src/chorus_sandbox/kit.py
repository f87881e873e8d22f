"""What every simulated platform shares: token checks, fault injection, call recording,
OAuth (authorization code + PKCE + refresh). Each platform module adds its own paths and
its own error shapes through an `ErrorStyle`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from chorus_sandbox.faults import FaultKind, Faults
from chorus_sandbox.settings import SandboxSettings
from chorus_sandbox.store import Store, Token

# kind → (status, message); a platform's ErrorStyle renders them in its own JSON shape.
ERROR_KINDS = {
    "rate_limit": 429,
    "server_error": 503,
    "token_expired": 401,
    "invalid_token": 401,
    "not_found": 404,
    "validation": 400,
    "forbidden": 403,
}


@dataclass
class ErrorStyle:
    """Renders a platform error: `render(kind, message) -> (status, body, headers)`."""

    render: Callable[[str, str], tuple[int, Any, dict[str, str]]]


_FAULT_WINDOW = {"seconds": 60.0}


def set_faults_window(seconds: float) -> None:
    """How long an injected rate limit says to wait (short in tests, a real window in dev)."""
    _FAULT_WINDOW["seconds"] = seconds


def faults_window() -> float:
    return _FAULT_WINDOW["seconds"]


def default_render(kind: str, message: str) -> tuple[int, Any, dict[str, str]]:
    status = ERROR_KINDS.get(kind, 400)
    headers = {"Retry-After": str(max(1, round(faults_window())))} if kind == "rate_limit" else {}
    return status, {"error": {"type": kind, "message": message}}, headers


class PlatformError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class PlatformKit:
    def __init__(
        self,
        platform: str,
        store: Store,
        faults: Faults,
        settings: SandboxSettings,
        style: ErrorStyle | None = None,
    ) -> None:
        self.platform = platform
        self.store = store
        self.faults = faults
        self.settings = settings
        self.style = style or ErrorStyle(default_render)

    def error(self, kind: str, message: str) -> Response:
        status, body, headers = self.style.render(kind, message)
        return JSONResponse(body, status_code=status, headers=headers)

    async def guard(self, request: Request, operation: str) -> tuple[Token | None, Response | None]:
        """Apply injected faults, then check the bearer token. Returns (token, error)."""
        kind = self.faults.take(self.platform, operation)
        if kind is FaultKind.TIMEOUT:
            await asyncio.sleep(self.settings.timeout_seconds)
            return None, self.error("server_error", "gateway timeout")
        if kind in (
            FaultKind.RATE_LIMIT,
            FaultKind.SERVER_ERROR,
            FaultKind.TOKEN_EXPIRED,
            FaultKind.INVALID_TOKEN,
        ):
            return None, self.error(kind.value, f"injected {kind.value}")
        if kind is FaultKind.TIMEOUT_AFTER_CREATE:
            request.state.timeout_after_create = True
        token = self.store.token(self.platform, bearer(request))
        if token is None:
            return None, self.error("invalid_token", "invalid or revoked access token")
        if token.expires_at < time.time():
            return None, self.error("token_expired", "access token expired")
        return token, None

    async def after_create(self, request: Request) -> None:
        """`timeout_after_create`: the post is stored, then the response never comes in time."""
        if getattr(request.state, "timeout_after_create", False):
            await asyncio.sleep(self.settings.timeout_seconds)

    # -- OAuth 2.0 authorization code with PKCE ------------------------------------------------

    def authorize(self, request: Request, *, account_id: str | None = None) -> Response:
        q = request.query_params
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri or not q.get("client_id"):
            return self.error("validation", "client_id and redirect_uri are required")
        account = self.store.account(self.platform, account_id or q.get("sandbox_account"))
        code = secrets.token_urlsafe(16)
        self.store.codes[code] = {
            "platform": self.platform,
            "account_id": account.id,
            "redirect_uri": redirect_uri,
            "challenge": q.get("code_challenge"),
            "method": q.get("code_challenge_method", "plain"),
            "scopes": (q.get("scope") or "").replace(",", " ").split(),
            "expires": time.time() + 600,
        }
        params = {"code": code}
        if q.get("state"):
            params["state"] = q["state"]
        sep = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{sep}{urlencode(params)}", status_code=302)

    def exchange(self, form: dict[str, Any]) -> tuple[Token | None, str | None]:
        """(token, error) for a token-endpoint request (authorization_code or refresh_token)."""
        grant = form.get("grant_type")
        if grant == "refresh_token":
            kind = self.faults.take(self.platform, "refresh")
            if kind in (FaultKind.INVALID_TOKEN, FaultKind.TOKEN_EXPIRED):
                return None, "invalid_grant"
            token = self.store.rotate(
                str(form.get("refresh_token", "")), self.settings.access_token_ttl_seconds
            )
            return (token, None) if token else (None, "invalid_grant")
        if grant != "authorization_code":
            return None, "unsupported_grant_type"
        entry = self.store.codes.pop(str(form.get("code", "")), None)
        if entry is None or entry["platform"] != self.platform or entry["expires"] < time.time():
            return None, "invalid_grant"
        if form.get("redirect_uri") and form["redirect_uri"] != entry["redirect_uri"]:
            return None, "invalid_grant"
        if entry["challenge"]:
            verifier = str(form.get("code_verifier", ""))
            if entry["method"] == "S256":
                digest = hashlib.sha256(verifier.encode()).digest()
                computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            else:
                computed = verifier
            if not verifier or not secrets.compare_digest(computed, entry["challenge"]):
                return None, "invalid_grant"
        token = self.store.issue_token(
            self.platform,
            entry["account_id"],
            entry["scopes"],
            self.settings.access_token_ttl_seconds,
        )
        return token, None


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.query_params.get("access_token", "")


def token_response(token: Token, **extra: Any) -> dict[str, Any]:
    return {
        "access_token": token.access_token,
        "refresh_token": token.refresh_token,
        "token_type": "bearer",
        "expires_in": int(token.expires_at - time.time()),
        "scope": " ".join(token.scopes),
        **extra,
    }
