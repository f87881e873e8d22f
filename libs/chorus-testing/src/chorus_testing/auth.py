"""Token minting for tests: the same signer the gateway uses, with a static JWKS source."""

from __future__ import annotations

import uuid
from typing import Any

from chorus_runtime.auth.jwks import TokenVerifier
from chorus_runtime.auth.permissions import permissions_for
from chorus_runtime.auth.tokens import JwtSigner, SigningKey

ISSUER = "chorus-gateway"
AUDIENCE = "chorus"


class TestTokens:
    __test__ = False  # not a test class

    def __init__(self) -> None:
        self.signer = JwtSigner([SigningKey.generate("test-key")], issuer=ISSUER, audience=AUDIENCE)

    def verifier(self) -> TokenVerifier:
        async def source() -> dict[str, Any]:
            return self.signer.jwks()

        return TokenVerifier(source, issuer=ISSUER, audience=AUDIENCE)

    def token(
        self,
        workspace_id: str | None = None,
        role: str = "owner",
        *,
        user_id: str | None = None,
        permissions: list[str] | None = None,
        ttl_seconds: int = 900,
        **claims: Any,
    ) -> str:
        perms = permissions if permissions is not None else sorted(permissions_for(role))
        return self.signer.issue(
            {
                "sub": user_id or str(uuid.uuid4()),
                "wid": workspace_id or str(uuid.uuid4()),
                "role": role,
                "perms": perms,
                "plan": "free",
                "typ": "user",
                **claims,
            },
            ttl_seconds=ttl_seconds,
        )

    def headers(self, workspace_id: str, role: str = "owner", **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(workspace_id, role, **kw)}"}
