"""The connected accounts a workspace may post to (the `connector.accounts` projection).

A post may only target an account this workspace connected, on the platform it was
connected for, and not revoked. The projection arrives asynchronously, so a just-connected
account can take a moment to become postable (`GET /api/v1/publishing/accounts` shows it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chorus_publishing.domain import Post
from chorus_publishing.tables import accounts
from chorus_runtime.db.repository import TenantRepository
from chorus_runtime.errors import ValidationFailed

REVOKED = frozenset({"revoked", "disconnected"})


@dataclass(frozen=True)
class Account:
    id: str
    platform: str
    username: str
    status: str

    @property
    def postable(self) -> bool:
        return self.status not in REVOKED


def violations(post: Post, known: dict[str, Account]) -> list[dict[str, str]]:
    """One detail per target whose account is not a usable account of this workspace."""
    out: list[dict[str, str]] = []
    for i, t in enumerate(post.targets):
        field = f"platforms.{i}.accountId"  # the dotted path request validation uses
        account = known.get(t.account_id)
        if account is None or account.platform != t.platform.value:
            out.append(
                {
                    "platform": t.platform.value,
                    "field": field,
                    "rule": "account_not_connected",
                    "message": f"account {t.account_id} is not a connected "
                    f"{t.platform.value} account of this workspace",
                }
            )
        elif not account.postable:
            out.append(
                {
                    "platform": t.platform.value,
                    "field": field,
                    "rule": "account_revoked",
                    "message": f"account @{account.username} was disconnected; reconnect it",
                }
            )
    return out


class AccountDirectory(TenantRepository):
    async def find(self, ids: Sequence[str]) -> dict[str, Account]:
        if not ids:
            return {}
        rows = await self.session.execute(self.select(accounts).where(accounts.c.id.in_(list(ids))))
        return {
            r["id"]: Account(r["id"], r["platform"], r["username"], r["status"])
            for r in rows.mappings().all()
        }

    async def all(self) -> list[Account]:
        rows = await self.session.execute(
            self.select(accounts).order_by(accounts.c.platform, accounts.c.username, accounts.c.id)
        )
        return [
            Account(r["id"], r["platform"], r["username"], r["status"])
            for r in rows.mappings().all()
        ]

    async def check(self, post: Post) -> None:
        """422 naming each target whose account is unknown, foreign, mismatched or revoked."""
        found = violations(post, await self.find([t.account_id for t in post.targets]))
        if found:
            raise ValidationFailed("the post targets accounts it cannot post to", details=found)
