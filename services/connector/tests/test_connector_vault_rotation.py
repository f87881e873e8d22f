"""Key rotation of the token vault: every stored token re-sealed with the new key, still
opening to the same tokens, and a second run finds nothing to do."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from chorus_connector.platforms.base import OAuthTokens
from chorus_connector.tables import accounts
from chorus_connector.vault import TokenVault
from chorus_connector.vault_rotation import reseal_tokens
from chorus_runtime.crypto import CryptoError, Keyring
from chorus_runtime.db.database import Database
from chorus_testing.postgres import ServiceDatabase

pytestmark = pytest.mark.component


def key(kid: str) -> str:
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


async def test_rotation_reseals_every_token_with_the_new_key(
    connector_db: ServiceDatabase,
) -> None:
    old = key("old")
    new = key("new")
    before = TokenVault(Keyring.parse(old))
    tokens = {
        str(uuid.uuid4()): OAuthTokens(f"access-{i}", f"refresh-{i}", datetime.now(UTC), ("w",))
        for i in range(5)
    }
    db = Database(connector_db.owner_url)
    try:
        async with db.unit_of_work(system=True) as uow:
            for account_id, t in tokens.items():
                await uow.session.execute(
                    insert(accounts).values(
                        id=account_id,
                        workspace_id=str(uuid.uuid4()),
                        platform="x",
                        platform_account_id=account_id[:8],
                        username="u",
                        status="active",
                        tokens=before.seal(account_id, t),
                    )
                )
            await uow.commit()

        after = TokenVault(Keyring.parse(f"{new},{old}"))
        assert await reseal_tokens(db, after, batch=2) == (5, 0)
        async with db.unit_of_work(system=True) as uow:
            rows = (await uow.session.execute(select(accounts.c.id, accounts.c.tokens))).all()
        for account_id, blob in rows:
            assert after.keyring.key_id(blob) == "new"
            assert after.open(account_id, blob) == tokens[account_id]
            with pytest.raises(CryptoError):
                before.open(account_id, blob)  # the old key alone no longer opens it

        assert await reseal_tokens(db, after) == (0, 5), "nothing left on the old key"
    finally:
        await db.dispose()
