"""Pulls post and account metrics from the platforms on a schedule → `connector.metrics`.

Runs in the worker role on every replica. Each account is collected once per interval by
exactly one replica: a replica *claims* due accounts by stamping `metrics_collected_at` in one
`UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`, so a concurrent replica skips the
rows being claimed and, once the claim commits, no longer finds them due. The platform calls
happen after the claim's commit (no transaction is held across HTTP).

Calls go through the shared rate-limit governor like publishing: when an account's or the
app's budget is spent the account is left for the next round rather than waited for (metrics
are never urgent; publishing keeps the budget). Posts are the ones published through Chorus
in the last `metrics_lookback_days` (the publish ledger), so every snapshot carries its post
and target ids.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from chorus_connector.accounts import Account, AccountService, AccountUnavailable
from chorus_connector.clients import Clients
from chorus_connector.governor import BudgetExhausted, RateGovernor
from chorus_connector.platforms.base import METRIC_KEYS, PlatformClient, PlatformError
from chorus_connector.settings import ConnectorSettings
from chorus_connector.tables import publish_ledger
from chorus_contracts.catalog import EventData
from chorus_contracts.events.connector import (
    AccountMetricsCollected,
    FailureKind,
    PostMetricsCollected,
)
from chorus_runtime import metrics
from chorus_runtime.db.database import Database
from chorus_runtime.outbox import emit

log = logging.getLogger("chorus.connector.metrics")
SOURCE = "/chorus/connector"
TOPIC = "connector.metrics"

_CLAIM = text(
    """
    UPDATE accounts SET metrics_collected_at = now()
    WHERE id IN (
        SELECT id FROM accounts
        WHERE status = 'active'
          AND (metrics_collected_at IS NULL
               OR metrics_collected_at <= now() - make_interval(secs => :interval))
        ORDER BY metrics_collected_at NULLS FIRST, id
        LIMIT :n
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, workspace_id
    """
)


@dataclass(frozen=True)
class RoundReport:
    accounts: int = 0
    posts: int = 0
    skipped: int = 0  # accounts claimed but not collected (unavailable, no budget, errors)


@dataclass(frozen=True)
class PublishedPost:
    post_id: str
    target_id: str
    platform_post_id: str


class MetricsCollector:
    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        clients: Clients,
        governor: RateGovernor,
        settings: ConnectorSettings,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.clients = clients
        self.governor = governor
        self.interval = settings.metrics_interval_seconds
        self.lookback = timedelta(days=settings.metrics_lookback_days)
        self.batch_size = settings.metrics_batch_size

    async def run(self) -> None:
        """Forever: collect whatever is due, then look again a little later."""
        poll = min(60.0, self.interval / 4)
        while True:
            report = await self.collect_round()
            if report.accounts or report.skipped:
                log.info(
                    "metrics round",
                    extra={
                        "fields": {
                            "accounts": report.accounts,
                            "posts": report.posts,
                            "skipped": report.skipped,
                        }
                    },
                )
            await asyncio.sleep(poll)

    async def collect_round(self) -> RoundReport:
        """Claim and collect due accounts, batch by batch, until none is due."""
        collected = posts = skipped = 0
        while claimed := await self._claim():
            for account_id, workspace_id in claimed:
                n = await self.collect_account(workspace_id, account_id)
                if n is None:
                    skipped += 1
                else:
                    collected += 1
                    posts += n
        return RoundReport(collected, posts, skipped)

    async def _claim(self) -> list[tuple[str, str]]:
        async with self.db.unit_of_work(system=True) as uow:
            rows = (
                await uow.session.execute(_CLAIM, {"interval": self.interval, "n": self.batch_size})
            ).all()
            await uow.commit()
        return [(str(r.id), str(r.workspace_id)) for r in rows]

    async def collect_account(self, workspace_id: str, account_id: str) -> int | None:
        """Collect one account: its metrics and its recent posts'. Returns how many posts
        were collected, or None if the account could not be collected this round."""
        try:
            account, token = await self.accounts.access_token(workspace_id, account_id)
        except (AccountUnavailable, PlatformError) as exc:  # PlatformError: a failed refresh
            log.info(
                "metrics skipped", extra={"fields": {"accountId": account_id, "why": exc.code}}
            )
            return None
        client = self.clients.get(account.platform)
        now = datetime.now(UTC)
        events: list[EventData] = []
        try:
            counts = await self._call(
                client,
                account,
                "account_metrics",
                lambda: client.account_metrics(token, account.profile),
            )
            events.append(
                AccountMetricsCollected(
                    workspace_id=uuid.UUID(workspace_id),
                    account_id=uuid.UUID(account_id),
                    platform=account.platform,
                    followers=max(0, counts.get("followers", 0)),
                    following=max(0, counts.get("following", 0)),
                    posts=max(0, counts.get("posts", 0)),
                    collected_at=now,
                )
            )
            for post in await self._published_posts(workspace_id, account_id, now):
                try:
                    values = await self._call(
                        client,
                        account,
                        "post_metrics",
                        lambda p=post: client.post_metrics(  # type: ignore[misc]
                            token, account.profile, p.platform_post_id
                        ),
                    )
                except PlatformError as exc:
                    if exc.kind is not FailureKind.PERMANENT:
                        raise
                    continue  # deleted on the platform, or never public: nothing to measure
                events.append(post_metrics_event(workspace_id, account, post, values, now))
        except (BudgetExhausted, PlatformError) as exc:
            # Keep what was collected; the rest waits for the next round.
            log.info(
                "metrics collection cut short",
                extra={"fields": {"accountId": account_id, "why": type(exc).__name__}},
            )
            if not events:
                return None
        async with self.db.unit_of_work(tenant_id=workspace_id) as uow:
            for event in events:
                await emit(
                    uow.session,
                    event,
                    topic=TOPIC,
                    key=account_id,
                    source=SOURCE,
                    tenant_id=workspace_id,
                )
            await uow.commit()
        return len(events) - 1

    async def _call(
        self,
        client: PlatformClient,
        account: Account,
        operation: str,
        call: Callable[[], Awaitable[dict[str, int]]],
    ) -> dict[str, int]:
        """One platform call through the governor: no budget → BudgetExhausted (no wait)."""
        platform = account.platform.value
        await self.governor.wait_for_budget(platform, account.id, datetime.now(UTC))
        try:
            result = await call()
        except PlatformError as exc:
            state = client.rate_limit
            if exc.retry_after is not None and state.retry_after is None:
                state = replace(state, retry_after=exc.retry_after)
            await self.governor.observe(platform, account.id, state)
            metrics.PLATFORM_CALLS.labels(platform, operation, exc.kind.value).inc()
            raise
        await self.governor.observe(platform, account.id, client.rate_limit)
        metrics.PLATFORM_CALLS.labels(platform, operation, "ok").inc()
        return result

    async def _published_posts(
        self, workspace_id: str, account_id: str, now: datetime
    ) -> list[PublishedPost]:
        async with self.db.unit_of_work(tenant_id=workspace_id) as uow:
            rows = (
                await uow.session.execute(
                    select(
                        publish_ledger.c.post_id,
                        publish_ledger.c.target_id,
                        publish_ledger.c.platform_post_id,
                    )
                    .where(
                        publish_ledger.c.account_id == account_id,
                        publish_ledger.c.status == "published",
                        publish_ledger.c.platform_post_id.is_not(None),
                        publish_ledger.c.published_at >= now - self.lookback,
                    )
                    .order_by(publish_ledger.c.published_at.desc())
                )
            ).all()
        return [PublishedPost(r.post_id, r.target_id, r.platform_post_id) for r in rows]


def post_metrics_event(
    workspace_id: str,
    account: Account,
    post: PublishedPost,
    values: dict[str, int],
    collected_at: datetime,
) -> PostMetricsCollected:
    counts = {k: max(0, int(values.get(k) or 0)) for k in METRIC_KEYS}
    return PostMetricsCollected(
        workspace_id=uuid.UUID(workspace_id),
        account_id=uuid.UUID(account.id),
        platform=account.platform,
        post_id=uuid.UUID(post.post_id),
        target_id=uuid.UUID(post.target_id),
        platform_post_id=post.platform_post_id,
        collected_at=collected_at,
        **counts,
    )
