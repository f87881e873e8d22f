"""Who is calling: a user's access JWT (verified with the gateway's own keys) or an API key,
exchanged for a short-lived token that carries only the key's scopes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from chorus_contracts.events.common import Plan
from chorus_gateway import domain
from chorus_gateway.api_keys import KEY_PREFIX
from chorus_gateway.repository import IdentityRepository
from chorus_gateway.security import same, token_hash
from chorus_gateway.state import Gateway
from chorus_runtime.auth.jwks import TokenVerifier
from chorus_runtime.auth.tokens import Principal, TokenError
from chorus_runtime.errors import Unauthorized

API_KEY_CACHE_SECONDS = 30.0
PLAN_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Caller:
    principal: Principal
    token: str  # what upstream services receive (never the raw API key)


def local_verifier(gw: Gateway) -> TokenVerifier:
    async def source() -> dict:  # type: ignore[type-arg]
        return gw.keys.jwks()

    # The keys are in memory: no cache delay on rotation.
    return TokenVerifier(
        source,
        issuer=gw.settings.jwt_issuer,
        audience=gw.settings.jwt_audience,
        ttl_seconds=0,
        min_refresh_seconds=0,
    )


def credentials(authorization: str | None, api_key: str | None) -> tuple[str, str] | None:
    """('jwt'|'api_key', value) from the request headers, or None."""
    if api_key:
        return "api_key", api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return ("api_key", value) if value.startswith(KEY_PREFIX) else ("jwt", value)
    return None


async def authenticate(
    gw: Gateway, verifier: TokenVerifier, authorization: str | None, api_key: str | None
) -> Caller:
    creds = credentials(authorization, api_key)
    if creds is None:
        raise Unauthorized("missing credentials: send a bearer token or an API key")
    kind, value = creds
    if kind == "jwt":
        try:
            return Caller(await verifier.verify(value), value)
        except TokenError as exc:
            raise Unauthorized(str(exc)) from None
    return await _exchange_api_key(gw, value)


async def _exchange_api_key(gw: Gateway, key: str) -> Caller:
    digest = token_hash(key)
    cached = gw.api_key_cache.get(digest)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]  # type: ignore[no-any-return]
    parts = key[len(KEY_PREFIX) :].split("_", 1)
    if len(parts) != 2:
        raise Unauthorized("invalid API key")
    now = datetime.now(UTC)
    async with gw.db.unit_of_work(system=True) as uow:
        repo = IdentityRepository(uow)
        row = await repo.api_key_by_prefix(parts[0])
        if (
            row is None
            or not same(row["key_hash"], digest)
            or row["revoked_at"] is not None
            or (row["expires_at"] is not None and row["expires_at"] <= now)
        ):
            raise Unauthorized("invalid API key")
        plan = await repo.plan_of(row["workspace_id"]) or Plan.FREE
        last = row["last_used_at"]
        if last is None or (now - last).total_seconds() > 60:
            await repo.touch_api_key(row["id"], now)
            await uow.commit()
    claims = domain.api_key_claims(
        key_id=row["id"], workspace_id=row["workspace_id"], scopes=list(row["scopes"]), plan=plan
    )
    token = gw.keys.signer.issue(claims, ttl_seconds=gw.settings.api_key_token_ttl_seconds)
    caller = Caller(Principal.from_claims({**claims, "jti": None}), token)
    ttl = min(API_KEY_CACHE_SECONDS, gw.settings.api_key_token_ttl_seconds / 2)
    if row["expires_at"] is not None:
        # Never serve a key from the cache past its own expiry.
        ttl = min(ttl, (row["expires_at"] - now).total_seconds())
    gw.api_key_cache[digest] = (caller, time.monotonic() + ttl)
    return caller


async def current_plan(gw: Gateway, workspace_id: str, claimed: str) -> Plan:
    """The workspace's plan now (a plan change applies before old tokens expire)."""
    cached = gw.plan_cache.get(workspace_id)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]  # type: ignore[no-any-return]
    try:
        async with gw.db.unit_of_work(system=True) as uow:
            plan = await IdentityRepository(uow).plan_of(workspace_id)
    except Exception:
        plan = None  # the token's claim is a safe fallback while the database is away
    if plan is None:
        plan = Plan(claimed) if claimed in {p.value for p in Plan} else Plan.FREE
    gw.plan_cache[workspace_id] = (plan, time.monotonic() + PLAN_CACHE_SECONDS)
    return plan
