"""Signing (gateway) and verification (every service) of access JWTs.

Verification: algorithm allowlist (EdDSA, RS256), the key picked by `kid` from the JWKS,
the header's `alg` must equal the key's, `exp`/`nbf`/`iss`/`aud` enforced.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

ALLOWED_ALGORITHMS = ("EdDSA", "RS256")


class TokenError(Exception):
    """The token is not acceptable; the message is safe to show to the client."""


@dataclass(frozen=True)
class Principal:
    subject: str
    workspace_id: str
    role: str
    permissions: frozenset[str]
    plan: str
    token_type: str = "user"  # user | api_key
    token_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        try:
            perms = claims.get("perms", [])
            if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
                raise TokenError("malformed permissions claim")
            return cls(
                subject=str(claims["sub"]),
                workspace_id=str(uuid.UUID(str(claims["wid"]))),
                role=str(claims.get("role", "")),
                permissions=frozenset(perms),
                plan=str(claims.get("plan", "free")),
                token_type=str(claims.get("typ", "user")),
                token_id=claims.get("jti"),
                claims=dict(claims),
            )
        except (KeyError, ValueError) as exc:
            raise TokenError(f"token is missing or has a malformed claim: {exc}") from None


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

    @classmethod
    def generate(cls, kid: str | None = None, algorithm: str = "EdDSA") -> SigningKey:
        kid = kid or uuid.uuid4().hex[:16]
        if algorithm == "EdDSA":
            return cls(kid, algorithm, ed25519.Ed25519PrivateKey.generate())
        if algorithm == "RS256":
            return cls(
                kid, algorithm, rsa.generate_private_key(public_exponent=65537, key_size=2048)
            )
        raise ValueError(f"unsupported algorithm {algorithm}")

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if self.algorithm == "EdDSA":
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


class JwtSigner:
    """Signs with the newest key; publishes every key it still knows in the JWKS."""

    def __init__(self, keys: list[SigningKey], *, issuer: str, audience: str) -> None:
        if not keys:
            raise ValueError("at least one signing key")
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self._jwks: dict[str, Any] | None = None
        self._jwks_kids: tuple[str, ...] = ()

    @property
    def current(self) -> SigningKey:
        return self.keys[0]

    def issue(self, claims: Mapping[str, Any], *, ttl_seconds: int = 900) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        key = self.current
        return jwt.encode(
            payload, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid}
        )

    def jwks(self) -> dict[str, Any]:
        # Built once per key set: serialising public keys on every request is wasted work.
        kids = tuple(k.kid for k in self.keys)
        if self._jwks is None or self._jwks_kids != kids:
            self._jwks = {"keys": [k.public_jwk() for k in self.keys]}
            self._jwks_kids = kids
        return self._jwks


def verify_token(
    token: str,
    jwks: Mapping[str, Any],
    *,
    issuer: str,
    audience: str,
    leeway: float = 30.0,
) -> Principal:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenError("malformed token") from None
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise TokenError("token algorithm not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenError("token has no key id")
    jwk = next((k for k in jwks.get("keys", []) if k.get("kid") == kid), None)
    if jwk is None:
        raise UnknownKeyError("unknown signing key")
    if jwk.get("alg") != alg:
        raise TokenError("token algorithm does not match its key")
    try:
        key = _public_key(jwk)
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("token not yet valid") from None
    except jwt.InvalidAudienceError:
        raise TokenError("token audience not accepted") from None
    except jwt.InvalidIssuerError:
        raise TokenError("token issuer not accepted") from None
    except jwt.PyJWTError:
        raise TokenError("invalid token") from None
    return Principal.from_claims(claims)


_KEY_CACHE: dict[str, Any] = {}


def _public_key(jwk: Mapping[str, Any]) -> Any:
    """Parsed public keys, cached by their JWK (parsing costs more than verifying)."""
    cache_key = json.dumps(jwk, sort_keys=True)
    key = _KEY_CACHE.get(cache_key)
    if key is None:
        if len(_KEY_CACHE) > 64:
            _KEY_CACHE.clear()
        key = _KEY_CACHE[cache_key] = jwt.PyJWK(dict(jwk)).key
    return key


class UnknownKeyError(TokenError):
    """`kid` not in the cached JWKS: the caller may refresh the JWKS once and retry."""
