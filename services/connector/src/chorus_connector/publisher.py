"""Executes publish and delete commands: one platform post per post target, ever.

Per command (design.md §4):
1. the ledger row of the target says what happened before — published: answer again
   without calling the platform; `sending` (a previous attempt's outcome is unknown): read
   back from the platform first;
2. wait for rate budget (shared with every replica) up to the command's deadline;
3. mark the row `sending` and commit *before* the call, so a crash right after sending is
   resolved by read-back on the next attempt instead of publishing twice;
4. call the platform; an unknown outcome (timeout after sending) is read back at once;
   a 401 refreshes the token once (one writer per account) and tries again;
5. record the outcome and emit the delivery result through the outbox.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert

from chorus_connector.accounts import AccountService, AccountUnavailable
from chorus_connector.clients import Clients
from chorus_connector.governor import BudgetExhausted, RateGovernor
from chorus_connector.platforms.base import MediaFile, PlatformClient, PlatformError, Published
from chorus_connector.tables import publish_ledger
from chorus_contracts.events.connector import (
    DeleteRequested,
    DeliveryDeleted,
    DeliveryFailed,
    DeliverySucceeded,
    FailureKind,
    PublishRequested,
)
from chorus_runtime import metrics
from chorus_runtime.consumer import Delivery, PoisonMessage
from chorus_runtime.db.database import Database
from chorus_runtime.failpoints import failpoint
from chorus_runtime.outbox import emit

log = logging.getLogger("chorus.connector.publisher")
SOURCE = "/chorus/connector"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Publisher:
    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        clients: Clients,
        governor: RateGovernor,
        *,
        readback_slack: timedelta = timedelta(seconds=120),
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.clients = clients
        self.governor = governor
        self.readback_slack = readback_slack

    async def handle(self, d: Delivery) -> None:
        cmd = d.data
        if isinstance(cmd, DeleteRequested):
            await self._delete(d, cmd)
            return
        if not isinstance(cmd, PublishRequested):
            raise PoisonMessage(f"unexpected command {type(cmd).__name__}")
        if d.event.tenantid != str(cmd.workspace_id):
            raise PoisonMessage("ce_tenantid does not match the command's workspace")
        assert d.uow is not None
        ledger = await self._claim(cmd)
        if ledger["status"] == "published":
            await self._succeeded(
                d,
                cmd,
                Published(ledger["platform_post_id"], ledger["url"], ledger["published_at"]),
                readback=False,
            )
            return
        try:
            account, token = await self.accounts.access_token(
                str(cmd.workspace_id), str(cmd.account_id)
            )
        except AccountUnavailable as exc:
            await self._failed(d, cmd, FailureKind.AUTH, exc.code, exc.message)
            return
        client = self.clients.get(cmd.platform)
        if ledger["status"] == "sending" and await self._settled_by_read_back(
            d, cmd, client, token, account.profile, ledger["sent_at"]
        ):
            return
        try:
            await self.governor.wait_for_budget(
                cmd.platform.value, str(cmd.account_id), cmd.deadline
            )
        except BudgetExhausted as exc:
            await self._release(cmd)
            await self._failed(
                d,
                cmd,
                FailureKind.TRANSIENT,
                "rate_limited",
                "waiting for rate budget would pass the deadline",
                retry_after=exc.retry_after,
            )
            return
        sent_at = await self._mark_sending(cmd)
        media = [
            MediaFile(m.url, m.mime_type, None, m.width, m.height, m.duration_seconds)
            for m in cmd.content.media
        ]
        for refreshed in (False, True):
            try:
                result = await client.publish_idempotent(
                    token,
                    account.profile,
                    cmd.content,
                    media,
                    idempotency_key=cmd.idempotency_key,
                )
            except PlatformError as exc:
                await self._observe(client, cmd, exc.retry_after)
                metrics.PLATFORM_CALLS.labels(cmd.platform.value, "publish", exc.kind.value).inc()
                if exc.outcome_unknown:
                    found = await self._read_back(client, token, account.profile, cmd, sent_at)
                    if found is not None:
                        await self._succeeded(d, cmd, found, readback=True)
                        return
                    # Still unknown: stay `sending` so the next attempt reads back first.
                    await self._failed(
                        d,
                        cmd,
                        FailureKind.TRANSIENT,
                        exc.code,
                        exc.message,
                        retry_after=exc.retry_after,
                    )
                    return
                if exc.kind is FailureKind.AUTH and not refreshed:
                    try:
                        account, token = await self.accounts.access_token(
                            str(cmd.workspace_id), str(cmd.account_id), force_refresh=True
                        )
                    except AccountUnavailable as unavailable:
                        await self._release(cmd, failed=True)
                        await self._failed(
                            d, cmd, FailureKind.AUTH, unavailable.code, unavailable.message
                        )
                        return
                    continue
                await self._release(cmd, failed=exc.kind is not FailureKind.TRANSIENT)
                await self._failed(
                    d, cmd, exc.kind, exc.code, exc.message, retry_after=exc.retry_after
                )
                return
            # Crash-safety tests die here: the platform holds the post, the ledger still
            # says `sending`, no result is staged and the command is not acknowledged.
            failpoint("connector.publish.after_send")
            await self._observe(client, cmd, None)
            metrics.PLATFORM_CALLS.labels(cmd.platform.value, "publish", "ok").inc()
            await self._succeeded(d, cmd, result, readback=False)
            return

    async def _settled_by_read_back(
        self,
        d: Delivery,
        cmd: PublishRequested,
        client: PlatformClient,
        token: str,
        profile,  # type: ignore[no-untyped-def]
        sent_at: datetime | None,
    ) -> bool:
        """An earlier attempt's outcome is unknown: read back before sending. True when that
        settled the command — the post exists (succeeded), or the look-up failed."""
        try:
            found = await self._read_back(client, token, profile, cmd, sent_at, raise_errors=True)
        except PlatformError as exc:
            # Whether the earlier attempt created the post is still unknown: sending now
            # could publish it twice. Stay `sending`; the retry reads back again.
            await self._failed(
                d,
                cmd,
                FailureKind.TRANSIENT,
                exc.code,
                f"read-back before resending failed: {exc.message}",
                retry_after=exc.retry_after,
            )
            return True
        if found is None:
            return False
        await self._succeeded(d, cmd, found, readback=True)
        return True

    # -- ledger --------------------------------------------------------------------------------

    async def _claim(self, cmd: PublishRequested) -> dict:  # type: ignore[type-arg]
        async with self.db.unit_of_work(tenant_id=str(cmd.workspace_id)) as uow:
            stmt = insert(publish_ledger).values(
                target_id=str(cmd.target_id),
                workspace_id=str(cmd.workspace_id),
                post_id=str(cmd.post_id),
                account_id=str(cmd.account_id),
                platform=cmd.platform.value,
                status="received",
                last_command_id=str(cmd.command_id),
                text_hash=text_hash(cmd.content.text),
            )
            await uow.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[publish_ledger.c.target_id],
                    set_={
                        # Counts distinct commands: a redelivery or retry of one command
                        # is not a new one.
                        "commands_received": case(
                            (
                                publish_ledger.c.last_command_id == stmt.excluded.last_command_id,
                                publish_ledger.c.commands_received,
                            ),
                            else_=publish_ledger.c.commands_received + 1,
                        ),
                        "last_command_id": stmt.excluded.last_command_id,
                        "updated_at": func.now(),
                    },
                )
            )
            row = (
                (
                    await uow.session.execute(
                        select(publish_ledger).where(
                            publish_ledger.c.target_id == str(cmd.target_id)
                        )
                    )
                )
                .mappings()
                .one()
            )
            await uow.commit()
        return dict(row)

    async def _mark_sending(self, cmd: PublishRequested) -> datetime:
        now = datetime.now(UTC)
        async with self.db.unit_of_work(tenant_id=str(cmd.workspace_id)) as uow:
            await uow.session.execute(
                update(publish_ledger)
                .where(publish_ledger.c.target_id == str(cmd.target_id))
                .values(status="sending", sent_at=now, attempt=cmd.attempt, updated_at=now)
            )
            await uow.commit()
        return now

    async def _release(self, cmd: PublishRequested, *, failed: bool = False) -> None:
        """The call was answered and nothing was created: the next attempt may send again."""
        async with self.db.unit_of_work(tenant_id=str(cmd.workspace_id)) as uow:
            await uow.session.execute(
                update(publish_ledger)
                .where(
                    publish_ledger.c.target_id == str(cmd.target_id),
                    publish_ledger.c.status != "published",
                )
                .values(status="failed" if failed else "received", updated_at=func.now())
            )
            await uow.commit()

    async def _read_back(
        self,
        client: PlatformClient,
        token: str,
        profile,
        cmd: PublishRequested,  # type: ignore[no-untyped-def]
        sent_at: datetime | None,
        *,
        raise_errors: bool = False,
    ) -> Published | None:
        """The post this target already made, if any; a failed look-up is None (absent)
        unless `raise_errors`."""
        since = (sent_at or cmd.requested_at) - self.readback_slack
        try:
            found = await client.find_recent(token, profile, text=cmd.content.text, since=since)
        except PlatformError as exc:
            log.warning(
                "read-back failed",
                extra={"fields": {"targetId": str(cmd.target_id), "error": exc.code}},
            )
            if raise_errors:
                raise
            return None
        metrics.PLATFORM_CALLS.labels(
            cmd.platform.value, "read_back", "found" if found else "absent"
        ).inc()
        return found

    async def _observe(
        self, client: PlatformClient, cmd: PublishRequested, retry_after: float | None
    ) -> None:
        state = client.rate_limit
        if retry_after is not None and state.retry_after is None:
            from dataclasses import replace

            state = replace(state, retry_after=retry_after)
        await self.governor.observe(cmd.platform.value, str(cmd.account_id), state)

    # -- results ---------------------------------------------------------------------------------

    async def _succeeded(
        self, d: Delivery, cmd: PublishRequested, result: Published, *, readback: bool
    ) -> None:
        assert d.uow is not None
        await d.uow.session.execute(
            update(publish_ledger)
            .where(publish_ledger.c.target_id == str(cmd.target_id))
            .values(
                status="published",
                platform_post_id=result.platform_post_id,
                url=result.url,
                published_at=result.published_at,
                last_error=None,
                updated_at=func.now(),
            )
        )
        await emit(
            d.uow.session,
            DeliverySucceeded(
                command_id=cmd.command_id,
                workspace_id=cmd.workspace_id,
                post_id=cmd.post_id,
                target_id=cmd.target_id,
                platform=cmd.platform,
                account_id=cmd.account_id,
                attempt=cmd.attempt,
                platform_post_id=result.platform_post_id,
                url=result.url,
                recovered_by_readback=readback,
                published_at=result.published_at,
            ),
            topic="connector.deliveries",
            key=str(cmd.post_id),
            source=SOURCE,
            tenant_id=str(cmd.workspace_id),
            subject=str(cmd.target_id),
        )

    async def _failed(
        self,
        d: Delivery,
        cmd: PublishRequested,
        kind: FailureKind,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        assert d.uow is not None
        await d.uow.session.execute(
            update(publish_ledger)
            .where(publish_ledger.c.target_id == str(cmd.target_id))
            .values(last_error=f"{code}: {message}"[:1000], updated_at=func.now())
        )
        await emit(
            d.uow.session,
            DeliveryFailed(
                command_id=cmd.command_id,
                workspace_id=cmd.workspace_id,
                post_id=cmd.post_id,
                target_id=cmd.target_id,
                platform=cmd.platform,
                account_id=cmd.account_id,
                attempt=cmd.attempt,
                kind=kind,
                error_code=code,
                error_message=message[:2000],
                retry_after_seconds=retry_after,
                failed_at=datetime.now(UTC),
            ),
            topic="connector.deliveries",
            key=str(cmd.post_id),
            source=SOURCE,
            tenant_id=str(cmd.workspace_id),
            subject=str(cmd.target_id),
        )

    async def _delete(self, d: Delivery, cmd: DeleteRequested) -> None:
        assert d.uow is not None
        try:
            account, token = await self.accounts.access_token(
                str(cmd.workspace_id), str(cmd.account_id)
            )
            await self.clients.get(cmd.platform).delete(
                token, account.profile, cmd.platform_post_id
            )
        except AccountUnavailable as exc:
            log.warning(
                "delete skipped",
                extra={"fields": {"targetId": str(cmd.target_id), "reason": exc.code}},
            )
            return
        except PlatformError as exc:
            if exc.kind is FailureKind.TRANSIENT:
                raise  # the runtime retries with backoff
            log.warning(
                "delete refused",
                extra={"fields": {"targetId": str(cmd.target_id), "error": exc.code}},
            )
            return
        await emit(
            d.uow.session,
            DeliveryDeleted(
                command_id=cmd.command_id,
                workspace_id=cmd.workspace_id,
                post_id=cmd.post_id,
                target_id=cmd.target_id,
                platform=cmd.platform,
                platform_post_id=cmd.platform_post_id,
                deleted_at=datetime.now(UTC),
            ),
            topic="connector.deliveries",
            key=str(cmd.post_id),
            source=SOURCE,
            tenant_id=str(cmd.workspace_id),
            subject=str(cmd.target_id),
        )


_ = uuid  # ids come typed from the contracts
