"""How platforms sign their webhooks, and the handshakes that prove we own the endpoint.

Pure functions: the handlers feed them the raw body and the configured secret.

* Meta (Facebook, Instagram, Threads): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
  raw body, keyed with the app secret>`; subscribing is a GET with `hub.mode=subscribe`,
  `hub.verify_token` (ours) and `hub.challenge` (echoed back as plain text).
* X (Account Activity API): `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256 of the
  raw body, keyed with the consumer secret>`; the CRC check is a GET with `crc_token`,
  answered with `{"response_token": "sha256=" + base64(HMAC-SHA256(secret, crc_token))}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

META_SIGNATURE_HEADER = "x-hub-signature-256"
X_SIGNATURE_HEADER = "x-twitter-webhooks-signature"
_PREFIX = "sha256="


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()


def meta_signature(secret: str, body: bytes) -> str:
    return _PREFIX + _mac(secret, body).hex()


def x_signature(secret: str, payload: bytes) -> str:
    return _PREFIX + base64.b64encode(_mac(secret, payload)).decode()


def _matches(expected: str, given: str | None) -> bool:
    if not given:
        return False
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def meta_signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    # An empty secret verifies nothing: a misconfigured install refuses every delivery.
    if not secret or not header:
        return False
    # Meta sends lowercase hex; accept either case of the digits, never of the prefix.
    given = header.strip()
    if not given.startswith(_PREFIX):
        return False
    return _matches(meta_signature(secret, body), _PREFIX + given[len(_PREFIX) :].lower())


def x_signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    return bool(secret) and _matches(x_signature(secret, body), header)


def x_crc_response(secret: str, crc_token: str) -> dict[str, str]:
    return {"response_token": x_signature(secret, crc_token.encode())}


def meta_handshake_valid(
    expected_token: str, mode: str | None, token: str | None, challenge: str | None
) -> bool:
    return (
        bool(expected_token)
        and mode == "subscribe"
        and bool(challenge)
        and token is not None
        and hmac.compare_digest(expected_token.encode(), token.encode())
    )
