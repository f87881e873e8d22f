"""Connected accounts: OAuth connect/callback, and valid tokens with exactly one refresher.

Refresh happens before expiry (margin) and after a 401, under the account row's lock
(`SELECT … FOR UPDATE`), so two replicas never refresh one account at once: the second
waits, then finds the fresh token. A failed refresh marks the account `needs_reauth` and
emits an event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from chorus_connector.clients import Clients
from chorus_connector.platforms.base import AccountProfile, OAuthTokens, PlatformError
from chorus_connector.settings import ConnectorSettings
from chorus_connector.tables import accounts, oauth_states
from chorus_connector.vault import TokenVault
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import (
    AccountConnected,
    AccountStatus,
    AccountStatusChanged,
    FailureKind,
)
from chorus_runtime.db.database import Database, UnitOfWork
from chorus_runtime.errors import ChorusError, NotFound, ValidationFailed
from chorus_runtime.outbox import emit

SOURCE = "/chorus/connector"


@dataclass(frozen=True)
class Account:
    id: str
    workspace_id: str
    platform: Platform
    profile: AccountProfile
    status: AccountStatus
    scopes: tuple[str, ...]
    token_expires_at: datetime | None
    created_at: datetime | None = None
    status_reason: str | None = None


def _account(row: Any) -> Account:
    return Account(
        id=row["id"],
        workspace_id=row["workspace_id"],
        platform=Platform(row["platform"]),
        profile=AccountProfile(row["platform_account_id"], row["username"], row["display_name"]),
        status=AccountStatus(row["status"]),
        scopes=tuple(row["scopes"]),
        token_expires_at=row["token_expires_at"],
        created_at=row["created_at"],
        status_reason=row["status_reason"],
    )


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class AccountService:
    def __init__(
        self, db: Database, settings: ConnectorSettings, clients: Clients, vault: TokenVault
    ) -> None:
        self.db = db
        self.settings = settings
        self.clients = clients
        self.vault = vault

    # -- OAuth ---------------------------------------------------------------------------------

    def _sign(self, state_id: str) -> str:
        mac = hmac.new(
            self.settings.state_signing_secret.encode(), state_id.encode(), hashlib.sha256
        ).digest()
        return f"{state_id}.{base64.urlsafe_b64encode(mac[:18]).decode()}"

    def _verify(self, state: str) -> str | None:
        state_id, _, _sig = state.partition(".")
        return state_id if state_id and hmac.compare_digest(self._sign(state_id), state) else None

    async def start_connect(
        self, *, workspace_id: str, user_id: str, platform: Platform, redirect_uri: str
    ) -> tuple[str, str]:
        client = self.clients.get(platform)
        state_id = secrets.token_urlsafe(24)
        verifier, challenge = pkce_pair() if client.supports_pkce else (None, None)
        async with self.db.unit_of_work(tenant_id=workspace_id) as uow:
            await uow.session.execute(
                insert(oauth_states).values(
                    id=state_id,
                    workspace_id=workspace_id,
                    user_id=user_id,
                    platform=platform.value,
                    redirect_uri=redirect_uri,
                    code_verifier=self.vault.keyring.encrypt(verifier.encode(), state_id.encode())
                    if verifier
                    else None,
                    expires_at=datetime.now(UTC)
                    + timedelta(seconds=self.settings.oauth_state_ttl_seconds),
                )
            )
            await uow.commit()
        state = self._sign(state_id)
        url = client.authorize_url(
            state=state,
            redirect_uri=redirect_uri,
            code_challenge=challenge,
            scopes=client.default_scopes,
        )
        return url, state

    async def complete_connect(
        self, *, workspace_id: str, user_id: str, platform: Platform, code: str, state: str
    ) -> Account:
        state_id = self._verify(state)
        if state_id is None:
            raise ValidationFailed(
                "invalid OAuth state",
                details=[{"field": "state", "message": "bad signature", "type": "invalid_state"}],
            )
        now = datetime.now(UTC)
        async with self.db.unit_of_work(tenant_id=workspace_id) as uow:
            row = (
                (
                    await uow.session.execute(
                        select(oauth_states).where(oauth_states.c.id == state_id).with_for_update()
                    )
                )
                .mappings()
                .first()
            )
            # Bound to workspace, user and platform; single use; 10 minutes.
            if (
                row is None
                or row["user_id"] != user_id
                or row["platform"] != platform.value
                or row["used_at"] is not None
                or row["expires_at"] <= now
            ):
                raise ValidationFailed(
                    "invalid, used or expired OAuth state",
                    details=[{"field": "state", "message": "not usable", "type": "invalid_state"}],
                )
            await uow.session.execute(
                update(oauth_states).where(oauth_states.c.id == state_id).values(used_at=now)
            )
            await uow.commit()
        verifier = (
            self.vault.keyring.decrypt(row["code_verifier"], state_id.encode()).decode()
            if row["code_verifier"]
            else None
        )
        client = self.clients.get(platform)
        try:
            tokens = await client.exchange_code(
                code=code, redirect_uri=row["redirect_uri"], code_verifier=verifier
            )
            profile = await client.profile(tokens.access_token)
        except PlatformError as exc:
            raise ChorusError(
                f"{platform.value} refused the connection: {exc.message}",
                status_code=502,
                code="PLATFORM_API_ERROR",
                details={"platformCode": exc.code},
            ) from None
        return await self._store(workspace_id, user_id, platform, tokens, profile)

    async def _store(
        self,
        workspace_id: str,
        user_id: str,
        platform: Platform,
        tokens: OAuthTokens,
        profile: AccountProfile,
    ) -> Account:
        now = datetime.now(UTC)
        async with self.db.unit_of_work(tenant_id=workspace_id) as uow:
            existing = (
                await uow.session.execute(
                    select(accounts.c.id).where(
                        accounts.c.workspace_id == workspace_id,
                        accounts.c.platform == platform.value,
                        accounts.c.platform_account_id == profile.platform_account_id,
                    )
                )
            ).scalar()
            account_id = existing or str(uuid.uuid4())
            values = dict(
                username=profile.username,
                display_name=profile.display_name,
                status=AccountStatus.ACTIVE.value,
                status_reason=None,
                scopes=list(tokens.scopes),
                tokens=self.vault.seal(account_id, tokens),
                token_expires_at=tokens.expires_at,
                updated_at=now,
            )
            if existing:
                await uow.session.execute(
                    update(accounts).where(accounts.c.id == account_id).values(**values)
                )
            else:
                await uow.session.execute(
                    insert(accounts).values(
                        id=account_id,
                        workspace_id=workspace_id,
                        platform=platform.value,
                        platform_account_id=profile.platform_account_id,
                        connected_by=user_id if _is_uuid(user_id) else None,
                        **values,
                    )
                )
            await emit(
                uow.session,
                AccountConnected(
                    account_id=uuid.UUID(account_id),
                    workspace_id=uuid.UUID(workspace_id),
                    platform=platform,
                    platform_account_id=profile.platform_account_id,
                    username=profile.username,
                    display_name=profile.display_name,
                    scopes=list(tokens.scopes),
                    connected_by=uuid.UUID(user_id) if _is_uuid(user_id) else None,
                    connected_at=now,
                ),
                topic="connector.accounts",
                key=account_id,
                source=SOURCE,
                tenant_id=workspace_id,
            )
            row = (
                (await uow.session.execute(select(accounts).where(accounts.c.id == account_id)))
                .mappings()
                .one()
            )
            await uow.commit()
        return _account(row)

    # -- reads ---------------------------------------------------------------------------------

    async def list(self, workspace_id: str) -> list[Account]:
        async with self.db.unit_of_work(tenant_id=workspace_id) as uow:
            rows = (
                await uow.session.execute(
                    select(accounts)
                    .where(accounts.c.workspace_id == workspace_id)
                    .order_by(accounts.c.created_at)
                )
            ).mappings()
            return [_account(r) for r in rows]

    async def get(self, workspace_id: str, account_id: str) -> Account:
        async with self.db.unit_of_work(tenant_id=workspace_id) as uow:
            row = (
                (
                    await uow.session.execute(
                        select(accounts).where(
                            accounts.c.workspace_id == workspace_id, accounts.c.id == account_id
                        )
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound("account not found")
        return _account(row)

    async def load(self, uow: UnitOfWork, account_id: str, *, lock: bool = False) -> Any:
        q = select(accounts).where(accounts.c.id == account_id)
        if lock:
            q = q.with_for_update()
        return (await uow.session.execute(q)).mappings().first()

    # -- tokens --------------------------------------------------------------------------------

    async def access_token(
        self, workspace_id: str, account_id: str, *, force_refresh: bool = False
    ) -> tuple[Account, str]:
        """A token valid for a while: refreshed here, by one writer, when it is about to
        expire or when the platform just said 401 (`force_refresh`)."""
        async with self.db.unit_of_work(tenant_id=workspace_id) as uow:
            row = await self.load(uow, account_id)
        if row is None:
            raise AccountUnavailable("account_not_found", "the account is not connected")
        account = _account(row)
        if account.status is not AccountStatus.ACTIVE:
            raise AccountUnavailable(
                "account_" + account.status.value, f"the account is {account.status.value}"
            )
        tokens = self.vault.open(account_id, row["tokens"])
        margin = timedelta(seconds=self.settings.refresh_margin_seconds)
        expiring = tokens.expires_at is not None and tokens.expires_at - margin <= datetime.now(UTC)
        if not (expiring or force_refresh):
            return account, tokens.access_token
        return await self._refresh(workspace_id, account_id, seen=tokens.access_token)

    async def _refresh(
        self, workspace_id: str, account_id: str, *, seen: str
    ) -> tuple[Account, str]:
        async with self.db.unit_of_work(tenant_id=workspace_id) as uow:
            row = await self.load(uow, account_id, lock=True)  # one writer per account
            assert row is not None
            current = self.vault.open(account_id, row["tokens"])
            if current.access_token != seen:
                return _account(row), current.access_token  # another replica refreshed it
            account = _account(row)
            client = self.clients.get(account.platform)
            try:
                if not current.refresh_token:
                    raise PlatformError(
                        FailureKind.AUTH, "no_refresh_token", "the platform gave no refresh token"
                    )
                fresh = await client.refresh(current.refresh_token)
            except PlatformError as exc:
                if exc.kind is FailureKind.TRANSIENT:
                    raise
                await self._mark(
                    uow, account, AccountStatus.NEEDS_REAUTH, f"token refresh failed: {exc.message}"
                )
                await uow.commit()
                raise AccountUnavailable(
                    "needs_reauth", "reconnect the account: " + exc.message
                ) from None
            if fresh.refresh_token is None:
                fresh = OAuthTokens(
                    fresh.access_token,
                    current.refresh_token,
                    fresh.expires_at,
                    fresh.scopes or current.scopes,
                )
            now = datetime.now(UTC)
            await uow.session.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(
                    tokens=self.vault.seal(account_id, fresh),
                    token_expires_at=fresh.expires_at,
                    last_refreshed_at=now,
                    updated_at=now,
                )
            )
            await uow.commit()
        return account, fresh.access_token

    async def _mark(
        self, uow: UnitOfWork, account: Account, status: AccountStatus, reason: str
    ) -> None:
        now = datetime.now(UTC)
        await uow.session.execute(
            update(accounts)
            .where(accounts.c.id == account.id)
            .values(status=status.value, status_reason=reason, updated_at=now)
        )
        await emit(
            uow.session,
            AccountStatusChanged(
                account_id=uuid.UUID(account.id),
                workspace_id=uuid.UUID(account.workspace_id),
                platform=account.platform,
                previous_status=account.status,
                status=status,
                reason=reason,
                changed_at=now,
            ),
            topic="connector.accounts",
            key=account.id,
            source=SOURCE,
            tenant_id=account.workspace_id,
        )

    async def disconnect(self, workspace_id: str, account_id: str, user_id: str) -> None:
        from chorus_contracts.events.connector import AccountDisconnected

        now = datetime.now(UTC)
        async with self.db.unit_of_work(tenant_id=workspace_id) as uow:
            row = await self.load(uow, account_id, lock=True)
            if row is None or row["workspace_id"] != workspace_id:
                raise NotFound("account not found")
            await uow.session.execute(accounts.delete().where(accounts.c.id == account_id))
            await emit(
                uow.session,
                AccountDisconnected(
                    account_id=uuid.UUID(account_id),
                    workspace_id=uuid.UUID(workspace_id),
                    platform=Platform(row["platform"]),
                    disconnected_by=uuid.UUID(user_id) if _is_uuid(user_id) else None,
                    disconnected_at=now,
                ),
                topic="connector.accounts",
                key=account_id,
                source=SOURCE,
                tenant_id=workspace_id,
            )
            await uow.commit()


class AccountUnavailable(Exception):
    """The account cannot act: not connected, revoked, or needs re-authentication."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
