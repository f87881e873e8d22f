"""FastAPI dependencies: the verified principal and permission checks.

The verifier is wired by the service's `main.py` into `app.state.verifier`; services trust
no header a client could set, only the signed token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from chorus_runtime.auth.jwks import TokenVerifier
from chorus_runtime.auth.tokens import Principal, TokenError
from chorus_runtime.errors import Forbidden, ServiceUnavailable, Unauthorized


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return token.strip()


async def current_principal(request: Request) -> Principal:
    verifier: TokenVerifier | None = getattr(request.app.state, "verifier", None)
    if verifier is None:
        raise ServiceUnavailable("authentication is not configured")
    token = bearer_token(request)
    try:
        principal = await verifier.verify(token)
    except TokenError as exc:
        raise Unauthorized(str(exc)) from None
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_permission(*permissions: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller must hold every permission named."""

    async def check(principal: CurrentPrincipal) -> Principal:
        missing = [p for p in permissions if not principal.can(p)]
        if missing:
            raise Forbidden(
                f"missing permission {', '.join(missing)}", details={"required": list(missing)}
            )
        return principal

    return check
