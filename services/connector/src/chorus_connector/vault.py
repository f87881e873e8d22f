"""Token vault: platform tokens sealed with AES-256-GCM (key id inside, bound to the
account id), so they never sit in the database readable and never leave the connector."""

from __future__ import annotations

import json
from datetime import datetime

from chorus_connector.platforms.base import OAuthTokens
from chorus_runtime.crypto import Keyring


class TokenVault:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def seal(self, account_id: str, tokens: OAuthTokens) -> bytes:
        payload = {
            "access": tokens.access_token,
            "refresh": tokens.refresh_token,
            "expiresAt": tokens.expires_at.isoformat() if tokens.expires_at else None,
            "scopes": list(tokens.scopes),
        }
        return self.keyring.encrypt(json.dumps(payload).encode(), aad=account_id.encode())

    def open(self, account_id: str, blob: bytes) -> OAuthTokens:
        payload = json.loads(self.keyring.decrypt(blob, aad=account_id.encode()))
        return OAuthTokens(
            access_token=payload["access"],
            refresh_token=payload["refresh"],
            expires_at=datetime.fromisoformat(payload["expiresAt"])
            if payload["expiresAt"]
            else None,
            scopes=tuple(payload.get("scopes", ())),
        )

    def needs_rotation(self, blob: bytes) -> bool:
        return self.keyring.needs_rotation(blob)
