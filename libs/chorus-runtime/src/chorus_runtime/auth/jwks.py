"""JWKS fetched from the gateway and cached; an unknown `kid` triggers one early refresh
(key rotation) at most every `min_refresh_seconds`, so bad tokens cannot hammer the gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

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
    ) -> None:
        self.source = source
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl_seconds
        self.min_refresh = min_refresh_seconds
        self._jwks: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

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
        try:
            return verify_token(
                token, await self._keys(), issuer=self.issuer, audience=self.audience
            )
        except UnknownKeyError:
            return verify_token(
                token, await self._keys(force=True), issuer=self.issuer, audience=self.audience
            )
