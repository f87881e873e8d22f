"""JWKS fetched from the gateway and cached; an unknown `kid` triggers one early refresh
(key rotation) at most every `min_refresh_seconds`, so bad tokens cannot hammer the gateway.

Verified tokens are remembered until they expire (bounded LRU): a client sends the same token
on every request, and a signature check costs more than the rest of authentication. A cached
token is accepted only while its signing key is still published, so removing a key revokes
its tokens at once, as without the cache."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt

from chorus_runtime.auth.tokens import Principal, TokenError, UnknownKeyError, verify_token

JwksSource = Callable[[], Awaitable[dict[str, Any]]]


def http_jwks_source(url: str, *, timeout: float = 3.0) -> JwksSource:
    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            resp = await client.get(url)
            resp.raise_for_status()
            body = resp.json()
            if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
                raise ValueError("malformed JWKS")
            return body

    return fetch


class TokenVerifier:
    def __init__(
        self,
        source: JwksSource,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: float = 300.0,
        min_refresh_seconds: float = 10.0,
        cache_size: int = 10_000,
        cache_seconds: float = 300.0,
    ) -> None:
        self.source = source
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl_seconds
        self.min_refresh = min_refresh_seconds
        self._jwks: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self.cache_size = cache_size
        self.cache_seconds = cache_seconds
        # token → (principal, valid until (epoch seconds), signing key id)
        self._verified: OrderedDict[str, tuple[Principal, float, str]] = OrderedDict()

    async def _keys(self, *, force: bool = False) -> dict[str, Any]:
        age = time.monotonic() - self._fetched_at
        if self._jwks is not None and not force and age < self.ttl:
            return self._jwks
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if self._jwks is None or (force and age >= self.min_refresh) or age >= self.ttl:
                try:
                    self._jwks = await self.source()
                    self._fetched_at = time.monotonic()
                except Exception as exc:
                    if self._jwks is None:
                        raise TokenError("signing keys unavailable") from exc
            return self._jwks

    async def verify(self, token: str) -> Principal:
        jwks = await self._keys()
        cached = self._cached(token, jwks)
        if cached is not None:
            return cached
        try:
            principal = verify_token(token, jwks, issuer=self.issuer, audience=self.audience)
        except UnknownKeyError:
            principal = verify_token(
                token, await self._keys(force=True), issuer=self.issuer, audience=self.audience
            )
        self._remember(token, principal)
        return principal

    def _cached(self, token: str, jwks: dict[str, Any]) -> Principal | None:
        hit = self._verified.get(token)
        if hit is None:
            return None
        principal, until, kid = hit
        if time.time() < until and any(k.get("kid") == kid for k in jwks.get("keys", [])):
            self._verified.move_to_end(token)
            return principal
        del self._verified[token]
        return None

    def _remember(self, token: str, principal: Principal) -> None:
        if self.cache_size <= 0:
            return
        exp, kid = principal.claims.get("exp"), jwt.get_unverified_header(token).get("kid")
        if not isinstance(exp, int | float) or not isinstance(kid, str):
            return
        # Until the token's own expiry (no leeway): past it, the full check decides again.
        self._verified[token] = (principal, min(float(exp), time.time() + self.cache_seconds), kid)
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
