"""`chorus-connector rotate-token-key`: re-seal every stored token with the current key.

Operators add a new key in front of `CHORUS_CONNECTOR_TOKEN_ENCRYPTION_KEYS` (older keys
stay listed so existing tokens still open), roll the pods, then run this; once it reports
nothing left, the old key can be removed. Each account is re-sealed under its row lock —
the same lock the token refresh takes — so a concurrent refresh is never overwritten.
"""

from __future__ import annotations

import sys

from sqlalchemy import select, update

from chorus_connector.tables import accounts
from chorus_connector.vault import TokenVault
from chorus_runtime.db.database import Database


async def reseal_tokens(db: Database, vault: TokenVault, *, batch: int = 200) -> tuple[int, int]:
    """Re-encrypt tokens sealed with an older key. Returns (re-sealed, already current)."""
    resealed = current = 0
    after = ""
    while True:
        async with db.unit_of_work(system=True) as uow:
            query = select(accounts.c.id, accounts.c.tokens).order_by(accounts.c.id).limit(batch)
            if after:
                query = query.where(accounts.c.id > after)
            rows = (await uow.session.execute(query.with_for_update())).all()
            if not rows:
                return resealed, current
            for account_id, blob in rows:
                if not vault.needs_rotation(blob):
                    current += 1
                    continue
                fresh = vault.seal(account_id, vault.open(account_id, blob))
                await uow.session.execute(
                    update(accounts).where(accounts.c.id == account_id).values(tokens=fresh)
                )
                resealed += 1
            await uow.commit()
            after = str(rows[-1][0])
        print(f"[connector] re-sealed {resealed}, already current {current}", file=sys.stderr)
