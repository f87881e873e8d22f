"""Access-token verification at the gateway (design.md §5): every malformed, forged or
out-of-date token is a 401 with the common error body; signing-key rotation keeps old
tokens valid while new ones carry the new key id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from gateway_support import (
    AUDIENCE,
    ISSUER,
    Tenant,
    assert_error,
    bearer,
    gateway_jwks,
    register,
    unverified_header,
    verify_with_gateway,
)

from chorus_runtime.auth.permissions import permissions_for

pytestmark = pytest.mark.integration

ME = "/api/v1/auth/me"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64_json(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def claims_for(t: Tenant, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "sub": t.user_id,
        "wid": t.workspace_id,
        "role": "owner",
        "perms": sorted(permissions_for("owner")),
        "plan": "free",
        "typ": "user",
    }
    claims.update(changes)
    return claims


def hmac_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{_b64_json(header)}.{_b64_json(claims)}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


async def test_token_matrix(gateway) -> None:  # type: ignore[no-untyped-def]
    c = gateway.client
    t = await register(c, "tokens@example.com", "Tokens")
    keys = gateway.app.state.gateway.keys
    current = keys.signer.current
    kid = current.kid
    jwk = (await gateway_jwks(c))["keys"][0]
    assert jwk["kid"] == kid

    def sign(claims: dict[str, Any], key: Any = None, header_kid: str | None = kid) -> str:
        headers = {"kid": header_kid} if header_kid is not None else {}
        return jwt.encode(claims, key or current.private_key, algorithm="EdDSA", headers=headers)

    # Baseline: a token built the same way, signed with the real key, is accepted — so each
    # refusal below is about the one thing that differs.
    ok = await c.get(ME, headers=bearer(sign(claims_for(t))))
    assert ok.status_code == 200, ok.text

    now = int(time.time())
    public = current.private_key.public_key()
    raw_public = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem_public = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    issued = t.access
    head, payload, signature = issued.split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert tampered_claims["role"] == "owner"
    viewer = {**tampered_claims, "role": "viewer", "perms": ["post:read"]}
    escalated = {**tampered_claims, "perms": [*tampered_claims["perms"], "root:everything"]}
    other_ws = {**tampered_claims, "wid": str(uuid.uuid4())}

    cases: dict[str, dict[str, str]] = {
        "expired": bearer(sign(claims_for(t, iat=now - 3600, nbf=now - 3600, exp=now - 120))),
        "not yet valid": bearer(sign(claims_for(t, nbf=now + 120))),
        "wrong signature, same kid": bearer(
            sign(claims_for(t), key=ed25519.Ed25519PrivateKey.generate())
        ),
        "unknown kid": bearer(sign(claims_for(t), header_kid="no-such-key")),
        "no kid": bearer(sign(claims_for(t), header_kid=None)),
        "alg none": bearer(
            f"{_b64_json({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_b64_json(claims_for(t))}."
        ),
        "HS256 with the raw public key": bearer(
            hmac_token({"alg": "HS256", "typ": "JWT", "kid": kid}, claims_for(t), raw_public)
        ),
        "HS256 with the PEM public key": bearer(
            hmac_token({"alg": "HS256", "typ": "JWT", "kid": kid}, claims_for(t), pem_public)
        ),
        "HS256 with the JWK x": bearer(
            hmac_token({"alg": "HS256", "typ": "JWT", "kid": kid}, claims_for(t), jwk["x"].encode())
        ),
        "wrong audience": bearer(sign(claims_for(t, aud="someone-else"))),
        "wrong issuer": bearer(sign(claims_for(t, iss="https://evil.example"))),
        "missing exp": bearer(sign({k: v for k, v in claims_for(t).items() if k != "exp"})),
        "tampered role/perms": bearer(f"{head}.{_b64_json(viewer)}.{signature}"),
        "tampered perms": bearer(f"{head}.{_b64_json(escalated)}.{signature}"),
        "tampered workspace": bearer(f"{head}.{_b64_json(other_ws)}.{signature}"),
        "signature stripped": bearer(f"{head}.{payload}."),
        "garbage": bearer("this-is-not-a-jwt"),
        "three garbage parts": bearer("a.b.c"),
        "empty bearer": {"Authorization": "Bearer "},
        "missing header": {},
        "basic scheme": {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()},
        "token without scheme": {"Authorization": issued},
        "malformed perms claim": bearer(sign(claims_for(t, perms="post:read"))),
        "malformed workspace claim": bearer(sign(claims_for(t, wid="not-a-uuid"))),
    }
    for name, headers in cases.items():
        r = await c.get(ME, headers=headers)
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert_error(r, 401, "UNAUTHORIZED")
        assert r.headers.get("www-authenticate", "").startswith("Bearer"), name

    # The real token still works after all of that.
    assert (await c.get(ME, headers=t.headers)).status_code == 200
    # Within the leeway a slightly early nbf is fine (clock skew between replicas).
    r = await c.get(ME, headers=bearer(sign(claims_for(t, nbf=now + 5))))
    assert r.status_code == 200, r.text


async def test_key_rotation_keeps_old_tokens_valid(gateway) -> None:  # type: ignore[no-untyped-def]
    c = gateway.client
    t = await register(c, "rotate@example.com", "Rotate")
    old_kid = unverified_header(t.access)["kid"]
    keys = gateway.app.state.gateway.keys

    # The `rotate-keys` command, as ops would run it, then the replica's reload.
    rotate = gateway.runtime.commands["rotate-keys"]
    assert await rotate(gateway.runtime) == 0
    await keys.load()
    new_kid = keys.signer.current.kid
    assert new_kid != old_kid

    jwks = await gateway_jwks(c)
    assert [k["kid"] for k in jwks["keys"]] == [new_kid, old_kid]
    # Tokens signed before the rotation still verify — at the gateway and for any service.
    assert (await c.get(ME, headers=t.headers)).status_code == 200
    assert (await verify_with_gateway(c, t.access)).workspace_id == t.workspace_id

    # New sessions are signed with the new key.
    refreshed = await c.post("/api/v1/auth/refresh", json={"refreshToken": t.refresh})
    assert refreshed.status_code == 200, refreshed.text
    fresh = refreshed.json()["accessToken"]
    assert unverified_header(fresh)["kid"] == new_kid
    assert (await c.get(ME, headers=bearer(fresh))).status_code == 200
    login = await c.post(
        "/api/v1/auth/login", json={"email": "rotate@example.com", "password": "correct horse 42!"}
    )
    assert unverified_header(login.json()["accessToken"])["kid"] == new_kid

    # A second rotation: both older keys stay published within their grace period.
    assert await rotate(gateway.runtime) == 0
    await keys.load()
    kids = [k["kid"] for k in (await gateway_jwks(c))["keys"]]
    assert kids[1:] == [new_kid, old_kid] and len(set(kids)) == 3
    assert (await c.get(ME, headers=t.headers)).status_code == 200
    assert (await c.get(ME, headers=bearer(fresh))).status_code == 200
