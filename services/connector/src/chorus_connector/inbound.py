"""Inbound comments, messages and mentions → `connector.inbound`, once each.

A webhook names the platform's account, not the Chorus one: the connector's accounts table
maps it to every workspace that connected that account (a system transaction, since the
tenant is what we are looking up). Each (connected account, platform event) is recorded in
`inbound_events` in the same transaction as its outbox row, so a redelivery — platforms
deliver at least once — inserts nothing and emits nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from chorus_connector.tables import accounts, inbound_events
from chorus_connector.webhook_payloads import InboundItem, InboundKind
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import (
    CommentReceived,
    InboundAuthor,
    InboundReceived,
    MentionReceived,
    MessageReceived,
)
from chorus_runtime.db.database import Database
from chorus_runtime.outbox import emit

log = logging.getLogger("chorus.connector.inbound")
SOURCE = "/chorus/connector"
TOPIC = "connector.inbound"


@dataclass(frozen=True)
class InboundOutcome:
    emitted: int = 0
    duplicates: int = 0
    unmatched: int = 0  # items for platform accounts no workspace has connected


def inbound_event(
    item: InboundItem,
    *,
    workspace_id: str,
    account_id: str,
    platform: Platform,
    received_at: datetime,
) -> InboundReceived:
    """The contract event for one item and one connected account."""
    common = dict(
        workspace_id=uuid.UUID(workspace_id),
        account_id=uuid.UUID(account_id),
        platform=platform,
        platform_event_id=item.platform_event_id,
        platform_post_id=item.platform_post_id,
        author=InboundAuthor(
            id=item.author.id,
            username=item.author.username,
            display_name=item.author.display_name,
        ),
        text=item.text,
        occurred_at=item.occurred_at or received_at,
        received_at=received_at,
    )
    if item.kind is InboundKind.COMMENT:
        return CommentReceived(**common, platform_parent_id=item.parent_id)
    if item.kind is InboundKind.MESSAGE:
        return MessageReceived(
            **common, platform_conversation_id=item.conversation_id or item.author.id
        )
    return MentionReceived(**common, url=item.url)


class InboundService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self, platform: Platform, items: list[InboundItem], *, received_at: datetime
    ) -> InboundOutcome:
        if not items:
            return InboundOutcome()
        owners = sorted({i.platform_account_id for i in items})
        emitted = duplicates = unmatched = 0
        async with self.db.unit_of_work(system=True) as uow:
            rows = (
                await uow.session.execute(
                    select(accounts.c.id, accounts.c.workspace_id, accounts.c.platform_account_id)
                    .where(
                        accounts.c.platform == platform.value,
                        accounts.c.platform_account_id.in_(owners),
                    )
                    .order_by(accounts.c.id)
                )
            ).all()
            connected: dict[str, list[tuple[str, str]]] = {}
            for row in rows:
                connected.setdefault(row.platform_account_id, []).append((row.id, row.workspace_id))
            for item in items:
                targets = connected.get(item.platform_account_id, [])
                if not targets:
                    unmatched += 1
                for account_id, workspace_id in targets:
                    inserted = (
                        await uow.session.execute(
                            insert(inbound_events)
                            .values(
                                account_id=account_id,
                                platform_event_id=item.platform_event_id,
                                workspace_id=workspace_id,
                                kind=item.kind.value,
                            )
                            .on_conflict_do_nothing()
                            .returning(inbound_events.c.account_id)
                        )
                    ).first()
                    if inserted is None:
                        duplicates += 1
                        continue
                    await emit(
                        uow.session,
                        inbound_event(
                            item,
                            workspace_id=workspace_id,
                            account_id=account_id,
                            platform=platform,
                            received_at=received_at,
                        ),
                        topic=TOPIC,
                        key=account_id,
                        source=SOURCE,
                        tenant_id=workspace_id,
                    )
                    emitted += 1
            await uow.commit()
        if unmatched:
            # Platforms retry errors, so an account no one connected (or one disconnected
            # since) is accepted and dropped here, with a trace in the logs.
            log.info(
                "webhook for unconnected accounts ignored",
                extra={"fields": {"platform": platform.value, "items": unmatched}},
            )
        return InboundOutcome(emitted, duplicates, unmatched)
