"""Token-signing keys: stored encrypted in the gateway's database, published as the JWKS.

The newest key signs; retired keys stay in the JWKS until every token they signed has
expired, so a rotation never logs anybody out. Replicas reload the set periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import insert, select, update

from chorus_gateway.tables import signing_keys
from chorus_runtime.auth.tokens import JwtSigner, SigningKey
from chorus_runtime.crypto import Keyring
from chorus_runtime.db.database import Database

log = logging.getLogger("chorus.gateway.keys")


def _pem(key: SigningKey) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class KeyStore:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        *,
        algorithm: str,
        issuer: str,
        audience: str,
        token_ttl_seconds: int,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.grace = timedelta(seconds=token_ttl_seconds + 60)
        self._signer: JwtSigner | None = None

    @property
    def signer(self) -> JwtSigner:
        if self._signer is None:
            raise RuntimeError("signing keys not loaded")
        return self._signer

    def jwks(self) -> dict[str, Any]:
        return self.signer.jwks()

    async def load(self, *, create_if_missing: bool = True) -> None:
        keys = await self._read()
        if not keys and create_if_missing:
            await self.rotate()
            keys = await self._read()
        if not keys:
            raise RuntimeError("no signing keys")
        self._signer = JwtSigner(keys, issuer=self.issuer, audience=self.audience)

    async def rotate(self) -> str:
        """Add a new current key and retire the previous ones (still published for a while)."""
        key = SigningKey.generate(algorithm=self.algorithm)
        now = datetime.now(UTC)
        async with self.db.unit_of_work(system=True) as uow:
            await uow.session.execute(
                update(signing_keys)
                .where(signing_keys.c.retired_at.is_(None))
                .values(retired_at=now)
            )
            await uow.session.execute(
                insert(signing_keys).values(
                    kid=key.kid,
                    algorithm=key.algorithm,
                    private_key=self.keyring.encrypt(_pem(key), aad=key.kid.encode()),
                    created_at=now,
                )
            )
            await uow.commit()
        log.info("signing key rotated", extra={"fields": {"kid": key.kid}})
        return key.kid

    async def _read(self) -> list[SigningKey]:
        cutoff = datetime.now(UTC) - self.grace
        async with self.db.unit_of_work(system=True) as uow:
            rows = (
                await uow.session.execute(
                    select(signing_keys)
                    .where(
                        (signing_keys.c.retired_at.is_(None)) | (signing_keys.c.retired_at > cutoff)
                    )
                    .order_by(signing_keys.c.created_at.desc())
                )
            ).mappings()
            keys = []
            for row in rows:
                pem = self.keyring.decrypt(row["private_key"], aad=row["kid"].encode())
                private = serialization.load_pem_private_key(pem, password=None)
                keys.append(SigningKey(row["kid"], row["algorithm"], private))  # type: ignore[arg-type]
        return keys

    async def reload_forever(self, interval: float = 30.0) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await self.load(create_if_missing=False)
