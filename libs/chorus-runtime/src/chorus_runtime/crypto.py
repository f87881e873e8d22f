"""Secrets at rest: AES-256-GCM with the key id stored beside the ciphertext, so keys rotate
(new writes use the current key; old ciphertexts stay readable until re-encrypted).

Blob layout: b"v1." + kid + b"." + nonce(12) + ciphertext||tag. `aad` binds a ciphertext
to its row (e.g. the account id) so it cannot be swapped onto another row.
"""

from __future__ import annotations

import base64
import os
import re

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class CryptoError(ValueError):
    """A key is malformed or missing, or a ciphertext does not authenticate."""


class Keyring:
    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        for kid, key in keys.items():
            if not _KID.match(kid):
                raise CryptoError(f"bad key id {kid!r}")
            if len(key) != 32:
                raise CryptoError(f"key {kid} must be 32 bytes (AES-256)")
        if current not in keys:
            raise CryptoError(f"current key {current!r} is not in the keyring")
        self.keys = dict(keys)
        self.current = current

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """`kid:base64key[,kid:base64key…]`; the first is current. A bare base64 key is `k1`."""
        entries = [e.strip() for e in spec.split(",") if e.strip()]
        if not entries:
            raise CryptoError("empty keyring")
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for entry in entries:
            kid, sep, b64 = entry.partition(":")
            if not sep:
                kid, b64 = "k1", entry
            try:
                keys[kid] = base64.b64decode(b64, validate=True)
            except ValueError:
                raise CryptoError(f"key {kid} is not base64") from None
            order.append(kid)
        return cls(keys, order[0])

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, plaintext, aad)
        return b"v1." + self.current.encode() + b"." + nonce + sealed

    def decrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        try:
            version, kid_raw, rest = blob.split(b".", 2)
        except ValueError:
            raise CryptoError("malformed ciphertext") from None
        if version != b"v1":
            raise CryptoError("unknown ciphertext version")
        kid = kid_raw.decode(errors="replace")
        key = self.keys.get(kid)
        if key is None:
            raise CryptoError(f"ciphertext key {kid!r} is not in the keyring")
        try:
            return AESGCM(key).decrypt(rest[:12], rest[12:], aad)
        except Exception:
            raise CryptoError("ciphertext does not authenticate") from None

    def key_id(self, blob: bytes) -> str:
        return blob.split(b".", 2)[1].decode()

    def needs_rotation(self, blob: bytes) -> bool:
        return self.key_id(blob) != self.current
